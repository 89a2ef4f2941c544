"""Driving a run on this machine: in-process, or in a pool of worker processes.

Both loops hand the engine's work out, record outcomes in batches (one
transaction per batch), and stop cleanly on a failure (`on_error="stop"`), a
cancel from another process, or Ctrl-C, leaving a store the next command can
resume from.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import io
import itertools
import multiprocessing
import multiprocessing.connection as mp_connection
import os
import pickle
import select
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TextIO

from .engine import Engine, fewer_collections
from .instances import Outcome, Work, execute, failure
from .results import log_files, run_files
from .states import RunState
from .stores import Store

__all__ = ["drive"]

_FLUSH_SECONDS = 0.5  # how long finished work may wait before it is committed
_GROUP_SECONDS = 0.05  # how long the inline driver keeps its writes in one transaction
_COMMIT_SHARE = 0.1  # ... unless committing would take more than this share of the time
_CANCEL_POLL_SECONDS = 1.0
_MARK_RUNNING_UP_TO = 16  # batches up to this size are marked RUNNING before they run


class _CancelWatch:
    """Notices, cheaply, when another process cancelled the run."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.last = time.monotonic()

    def check(self) -> bool:
        now = time.monotonic()
        if now - self.last < _CANCEL_POLL_SECONDS:
            return self.engine.cancelled
        self.last = now
        status = self.engine.store.get_run(self.engine.run_id)["status"]
        if status == RunState.CANCELLED.value:
            self.engine.stop(cancelled=True)
        return self.engine.cancelled


def _wait_for_retry(engine: Engine, watch: _CancelWatch) -> None:
    """Sleep until the soonest retry waiting for its delay is due, or the run is cancelled."""
    while (due := engine.next_due) is not None and not watch.check():
        left = due - time.time()
        if left <= 0:
            return
        time.sleep(min(left, _CANCEL_POLL_SECONDS / 4))


def drive(engine: Engine, max_workers: int = 1) -> RunState:
    """Run the graph to the end on this machine and return the run's final state."""
    try:
        with fewer_collections():
            if max_workers > 1:
                _drive_pool(engine, max_workers)
            else:
                _drive_inline(engine)
    except KeyboardInterrupt:
        engine.stop(cancelled=True)
        engine.write_pending()
        engine.store.cancel_instances(engine.run_id, None, "interrupted (Ctrl-C)")
        engine.store.set_run_status(engine.run_id, RunState.CANCELLED.value, release=True)
        raise
    # instances never started (a failure stopped the run, or a cancel) are written now,
    # PENDING, as if written when their task expanded; a cancel makes them CANCELLED
    engine.write_pending()
    if engine.cancelled:
        engine.store.cancel_instances(engine.run_id, None, "the run was cancelled")
    state = engine.final_state()
    engine.store.set_run_status(engine.run_id, state.value, release=True)
    return state


class _Capture:
    """Catches what instances write to stdout and stderr, at the file descriptors.

    While instances run, fds 1 and 2 (and `sys.stdout` / `sys.stderr`) point at
    two nameless scratch files, so the output of subprocesses a task starts is
    caught too.  After each instance whatever it wrote is appended to its log
    files (`results.log_files`, the layout a cluster job writes) and the scratch
    is emptied: an instance that wrote nothing costs two `lseek` calls and no file.
    (`sys.stdout` and `sys.stderr` are unbuffered meanwhile: nothing waits in them.)
    """

    def __init__(self, run_dir: str | os.PathLike[str], run_id: str) -> None:
        self.run_dir, self.run_id = run_dir, run_id
        folder = run_files(run_dir, run_id, "logs")
        folder.mkdir(parents=True, exist_ok=True)
        self.scratch = (_scratch(str(folder)), _scratch(str(folder)))
        self.saved: tuple[int, int] | None = None
        self.streams: tuple[TextIO | None, TextIO | None] = (None, None)
        # sys.stdout and sys.stderr meanwhile: unbuffered, so nothing waits in them
        # when an instance ends, and on the scratch files themselves (fd 1 may be closed)
        self.mine = tuple(
            io.TextIOWrapper(
                io.FileIO(fd, "w", closefd=False),
                encoding="utf-8",
                errors="backslashreplace",
                write_through=True,
            )
            for fd in self.scratch
        )

    def start(self) -> None:
        """Send fds 1 and 2 to the scratch files (until `stop`)."""
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                with contextlib.suppress(OSError, ValueError):
                    stream.flush()
        self.saved = (_dup(1), _dup(2))
        os.dup2(self.scratch[0], 1)
        os.dup2(self.scratch[1], 2)
        self.streams = (sys.stdout, sys.stderr)
        sys.stdout, sys.stderr = self.mine

    def keep(self, work: Work) -> None:
        """Move what `work` wrote (if anything) to its log files."""
        # fds 1 and 2 share the scratches' offsets, which O_APPEND keeps at their ends
        out, err = self.scratch
        if os.lseek(out, 0, os.SEEK_CUR) or os.lseek(err, 0, os.SEEK_CUR):
            paths = log_files(self.run_dir, self.run_id, work.task, work.index, work.attempt)
            for fd, path in zip(self.scratch, paths, strict=True):
                if os.lseek(fd, 0, os.SEEK_CUR):
                    _append(fd, path)
                    os.ftruncate(fd, 0)
                    os.lseek(fd, 0, os.SEEK_SET)

    def stop(self) -> None:
        """Give fds 1 and 2 (and `sys.stdout` / `sys.stderr`) back."""
        if self.saved is None:
            return
        sys.stdout, sys.stderr = self.streams
        for fd, saved in zip((1, 2), self.saved, strict=True):
            if saved < 0:  # it was closed (a daemon's): closed again
                os.close(fd)
                continue
            os.dup2(saved, fd)
            os.close(saved)
        self.saved = None

    def close(self) -> None:
        self.stop()
        # a task may have kept `sys.stdout` / `sys.stderr` (a logging handler it set up):
        # closed, a later write fails instead of landing in a file that reuses the fd
        for stream in self.mine:
            stream.close()
        for fd in self.scratch:
            os.close(fd)


def _dup(fd: int) -> int:
    """A copy of `fd` numbered 3 or above (not one that fd 1 or 2 is about to become).

    -1 when `fd` is not open.
    """
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    except OSError:
        return -1


def _scratch(folder: str) -> int:
    """A file with no name in `folder`, open for appending (gone when closed).

    Its descriptor is 3 or above: were stdout closed, the file would otherwise
    become fd 1 itself.
    """
    flags = os.O_RDWR | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    nameless = getattr(os, "O_TMPFILE", 0)
    fd = -1
    if nameless:
        # a file system without O_TMPFILE: a name, removed at once
        with contextlib.suppress(OSError):
            fd = os.open(folder, flags | nameless, 0o600)
    if fd < 0:
        path = os.path.join(folder, f".scratch-{os.getpid()}-{time.monotonic_ns()}")
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(path)
    if fd > 2:
        return fd
    try:
        return _dup(fd)
    finally:
        os.close(fd)


def _append(scratch: int, path: str) -> None:
    """Append the whole of the scratch file to `path` (its folder made when missing)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        target = os.open(path, flags, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        target = os.open(path, flags, 0o644)
    try:
        offset = 0
        while chunk := os.pread(scratch, 1 << 20, offset):
            offset += len(chunk)
            view = memoryview(chunk)
            while view:
                view = view[os.write(target, view) :]
    finally:
        os.close(target)


def _func(engine: Engine, task: str) -> Callable[..., Any]:
    return engine.graph.tasks[task].func


def _hold_for(store: Store) -> float:
    """How long a driver keeps its writes in one transaction before it commits them.

    `_GROUP_SECONDS`, or longer when commits take long: in a big run each commit
    rewrites pages of the cache index all over it (identities are random), so at
    a fixed interval the time spent committing grew with the store; holding ten
    times as long as the last commit took keeps it under a tenth of the time.
    """
    return max(_GROUP_SECONDS, store.last_commit_seconds / _COMMIT_SHARE)


class _Committer:
    """Commits the transaction the inline driver holds once it is `_hold_for` old.

    A thread, because the driver cannot know beforehand whether the next task
    takes a millisecond or an hour: a long one must not keep its RUNNING mark
    (nor the instances finished before it) uncommitted, nor other writers waiting.
    """

    def __init__(self, engine: Engine) -> None:
        self.store = engine.store
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="reflow-committer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(_GROUP_SECONDS / 4):
            held = self.store.held_for()
            if held is not None and held >= _hold_for(self.store):
                try:
                    self.store.release()
                except BaseException as exc:  # the driver raises it at its next step
                    self.error = exc
                    return

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join()


def _drive_inline(engine: Engine) -> None:
    watch = _CancelWatch(engine)
    store = engine.store
    queue: Iterator[Work] = iter(())  # the wave being run, its Works made as they are taken
    finished: list[Outcome] = []
    chunk = 1
    funcs = {name: spec.func for name, spec in engine.graph.tasks.items()}
    stop_on_error = engine.on_error == "stop"
    capture = _Capture(engine.run_dir, engine.run_id)
    committer = _Committer(engine)
    try:
        while True:
            if committer.error is not None:
                raise committer.error
            # Writes join one held transaction, committed after _hold_for(store) (here
            # or by the committer thread): a chain of tiny tasks is not bound by commits.
            held = store.held_for()
            if held is not None and held >= _hold_for(store):
                store.release()
            store.hold()
            engine.record(finished)
            finished = []
            if engine.stopping:
                break
            batch = list(itertools.islice(queue, chunk))
            if not batch:
                queue = engine.advance()
                chunk = 1  # a new wave: its first instance may be slow, start small again
                batch = list(itertools.islice(queue, chunk))
            if engine.stopping:
                break
            if not batch:  # nothing to run now: the run ends, unless a retry is due later
                if engine.next_due is None:
                    break
                store.release()
                _wait_for_retry(engine, watch)
                continue
            # Shown RUNNING only while batches are small, i.e. while instances take long
            # enough for anyone to see it; a batch of hundreds of tiny instances is
            # recorded once, as it finishes (an interrupted one reruns either way).
            marked = len(batch) <= _MARK_RUNNING_UP_TO
            if marked:
                engine.mark_running(batch)
            started = time.monotonic()
            try:
                capture.start()
                try:
                    for w in batch:
                        try:
                            o = execute(funcs[w.task], w)
                        finally:
                            capture.keep(w)
                        finished.append(o)
                        if not o.ok and stop_on_error and not engine.retrying(o):
                            break
                finally:
                    capture.stop()
            except BaseException:  # Ctrl-C: keep what finished, free what never started
                engine.record(finished)
                if marked:
                    engine.unmark_running(batch[len(finished) :])
                raise
            if len(finished) < len(batch) and marked:  # stopped at a failure
                engine.unmark_running(batch[len(finished) :])
            # grow batches while they are quick, so tiny tasks cost few transactions
            elapsed = time.monotonic() - started
            chunk = min(chunk * 2, 4096) if elapsed < _FLUSH_SECONDS / 2 else max(1, chunk // 2)
            if watch.check():
                engine.record(finished)
                finished = []
    finally:
        committer.stop()
        capture.close()
        store.release()


def _picklable(func: Callable[..., Any]) -> bool:
    try:
        pickle.dumps(func)
    except Exception:
        return False
    return True


def _die_with_parent() -> None:
    """Ask Linux to SIGTERM this worker if the driving process dies (even by SIGKILL)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def _worker_main(conn: Connection, parent: int, run: tuple[str, str]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled by the parent
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before we could ask
        return
    capture = _Capture(*run)  # for the worker's life: it is killed, never asked to stop
    capture.start()
    while True:
        try:
            batch = conn.recv()
        except EOFError:
            return
        if batch is None:
            return
        for func, work in batch:
            outcome = execute(func, work)
            capture.keep(work)
            conn.send(outcome)


class _Slot:
    """One worker process and the works it has been sent but not reported."""

    def __init__(self, ctx: Any, engine: Engine) -> None:
        parent_end, child_end = ctx.Pipe()
        run = (str(engine.run_dir), engine.run_id)
        self.proc = ctx.Process(
            target=_worker_main, args=(child_end, os.getpid(), run), daemon=True
        )
        self.proc.start()
        child_end.close()
        self.conn: Connection = parent_end
        self.works: collections.deque[Work] = collections.deque()

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.proc.is_alive():
            self.proc.terminate()
        self.proc.join(5)
        if self.proc.is_alive():  # pragma: no cover - a worker ignoring SIGTERM
            self.proc.kill()
            self.proc.join()


def _death_reason(proc: Any) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"the worker process was killed by {name} while running this instance"
    return f"the worker process exited with code {code} while running this instance"


def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def _drive_pool(engine: Engine, max_workers: int) -> None:
    """Run ready instances in `max_workers` processes, fed in batches."""
    watch = _CancelWatch(engine)
    ctx = _context()
    queue_: collections.deque[Work] = collections.deque()
    inline: list[Work] = []
    sendable: dict[str, bool] = {}
    slots: list[_Slot] = []
    store = engine.store
    capture: _Capture | None = None  # for instances run in this process
    try:
        while True:
            # as inline: writes join one transaction, committed after _hold_for(store) (no
            # committer thread here: worker processes are forked, and the loop below
            # never waits longer than that with the transaction held)
            held = store.held_for()
            if held is not None and held >= _hold_for(store):
                store.release()
            store.hold()
            if not engine.stopping:
                for w in engine.advance():
                    if w.task not in sendable:
                        sendable[w.task] = _picklable(_func(engine, w.task))
                        if not sendable[w.task]:
                            warnings.warn(
                                f"task '{w.task}' cannot be sent to a worker process (it is not "
                                "importable by name, e.g. a closure); running it in this "
                                "process instead",
                                RuntimeWarning,
                                stacklevel=5,  # the caller of run_local
                            )
                    (queue_ if sendable[w.task] else inline).append(w)
            if engine.stopping:
                queue_.clear()
                inline.clear()
            busy = [s for s in slots if s.works]
            if not queue_ and not inline and not busy:
                if engine.next_due is None:
                    break
                store.release()  # nothing to run until a retry is due
                _wait_for_retry(engine, watch)
                continue
            # an idle worker may have died (e.g. the kernel's OOM killer): replace it
            for dead in [s for s in slots if not s.works and not s.proc.is_alive()]:
                dead.stop()
                slots.remove(dead)
            # feed idle workers, starting processes as they are needed
            while queue_ and (len(slots) < max_workers or any(not s.works for s in slots)):
                slot = next((s for s in slots if not s.works), None)
                if slot is None:
                    slot = _Slot(ctx, engine)
                    slots.append(slot)
                size = max(1, min(64, len(queue_) // (max_workers * 4)))
                batch = [queue_.popleft() for _ in range(min(size, len(queue_)))]
                engine.mark_running(batch)
                slot.works.extend(batch)
                try:
                    slot.conn.send([(_func(engine, w.task), w) for w in batch])
                except OSError:  # it died between the check and the send: try another
                    slot.works.clear()
                    queue_.extendleft(reversed(batch))
                    slot.stop()
                    slots.remove(slot)
            if inline:  # it may take long: nothing stays uncommitted meanwhile
                store.release()
                w = inline.pop(0)
                engine.mark_running([w])
                capture = capture or _Capture(engine.run_dir, engine.run_id)
                capture.start()
                try:
                    o = execute(_func(engine, w.task), w)
                finally:
                    capture.keep(w)
                    capture.stop()
                engine.record([o])
            held = store.held_for()
            wait = _hold_for(store) - held if held is not None else _FLUSH_SECONDS
            done = _collect(engine, slots, 0.0 if inline else max(0.0, wait))
            engine.record(done)
            if watch.check():
                break
    finally:
        for s in slots:
            s.stop()
        if capture is not None:
            capture.close()
        store.release()


# The driver wakes once per outcome: multiprocessing's own wait() and poll() build a
# selector each time (a quarter of the driver's CPU with two workers on 5 ms tasks,
# taken from the cores the workers need); select.poll does the same in one C call.
_POLL = getattr(select, "poll", None)


def _wait(waitables: list[Any], timeout: float) -> list[Any]:
    """The connections and sentinels among `waitables` that are ready within `timeout`."""
    if _POLL is None:  # pragma: no cover - no poll(2) on this platform
        return list(mp_connection.wait(waitables, timeout))
    poller = _POLL()
    by_fd = {}
    for w in waitables:
        fd = w if isinstance(w, int) else w.fileno()
        by_fd[fd] = w
        poller.register(fd, select.POLLIN)
    return [by_fd[fd] for fd, _ in poller.poll(timeout * 1000)]


def _readable(conn: Connection) -> bool:
    """Whether a message (or end of file) is waiting on `conn`, without blocking."""
    if _POLL is None:  # pragma: no cover
        return bool(conn.poll())
    poller = _POLL()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _collect(engine: Engine, slots: list[_Slot], timeout: float) -> list[Outcome]:
    """Outcomes that arrive within `timeout`; a dead worker fails its current instance."""
    done: list[Outcome] = []
    deadline = time.monotonic() + timeout
    while True:
        busy = [s for s in slots if s.works]
        if not busy:
            return done
        waitables: list[Any] = [s.conn for s in busy] + [s.proc.sentinel for s in busy]
        ready = _wait(waitables, max(0.0, deadline - time.monotonic()))
        if not ready:
            return done
        for s in busy:
            # a dead worker's pipe polls as readable forever (EOF): note it, or this spins
            eof = False
            while s.works and _readable(s.conn):
                try:
                    o: Outcome = s.conn.recv()
                except (EOFError, OSError):
                    eof = True
                    break
                s.works.popleft()
                done.append(o)
            if s.works and (eof or (s.proc.sentinel in ready and not _readable(s.conn))):
                s.proc.join()
                w = s.works.popleft()
                done.append(failure(w, _death_reason(s.proc), kind="ERROR"))
                # the rest of its batch never started: run it on a new worker
                rest = list(s.works)
                s.works.clear()
                s.stop()
                slots.remove(s)
                replacement = _Slot(_context(), engine)
                slots.append(replacement)
                if rest:
                    replacement.works.extend(rest)
                    replacement.conn.send([(_func(engine, w.task), w) for w in rest])
        if done:
            return done
