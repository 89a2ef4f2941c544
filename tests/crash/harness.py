"""Kill a reflow pipeline with SIGKILL at chosen points, resume it, and check what it promises.

The crash tests (tests/crash) and `benchmarks/crash_soak.py` drive `pipeline.py`
(split -> an array of n tiny tasks -> gather) as real subprocesses:

- `RunCrasher` runs `pipeline.py run` (1 or 2 workers), kills it, then kills the
  `retry` processes that resume it, at points chosen by time or by watching the
  store and the execution log, and finally retries until the run completes.
- `SubmitCrasher` runs `pipeline.py submit --executor local` and kills the
  submitting process, or dispatcher passes of the chain, at points found by
  watching the store and the local executor's job files; whenever `status`
  says the run will not move on its own it resumes it with `retry`.

After every kill it snapshots the store (which instances were SUCCESS) and the
execution log, checks that the killed process's children die with it and that
`status` says the run's owner is gone; at the end it checks the outputs, that
no instance that was SUCCESS at a kill ran again afterwards, and that no
worker result was lost.  Problems are collected, not raised, so a soak run can
count them; `Crasher.assert_ok()` fails a test with all of them.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PIPELINE = HERE / "pipeline.py"
POLL = 0.002  # how often a trigger looks at the store and the log

# --------------------------------------------------------------------------- processes


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of a process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def running(pid: int) -> bool:
    """Whether a process still runs (a zombie waiting to be reaped does not)."""
    st = _proc_stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, grandchildren, ...)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _proc_stat(int(entry))
            if st is not None and st[0] not in ("Z", "X"):
                children.setdefault(st[1], []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def processes_matching(*words: str) -> list[int]:
    """Live processes whose command line contains every one of `words`."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            line = cmdline(int(entry))
            if line and all(w in line for w in words) and running(int(entry)):
                found.append(int(entry))
    return found


def wait_gone(pids: set[int], timeout: float) -> set[int]:
    """Wait until none of `pids` runs; return those still running after `timeout`."""
    deadline = time.monotonic() + timeout
    left = {p for p in pids if running(p)}
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = {p for p in left if running(p)}
    return left


# --------------------------------------------------------------------------- the store


class StoreView:
    """Looks at the store as a bystander takes them (raw SQL; never creates the store).

    On an SQLite file or a PostgreSQL URL alike.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path
        self._conn: Any = None
        self.postgres = str(path).startswith(("postgresql://", "postgres://"))

    def _db(self) -> Any:
        if self._conn is None:
            if self.postgres:
                import psycopg

                self._conn = psycopg.connect(str(self.path), autocommit=True)
                return self._conn
            path = Path(self.path)
            if not path.exists() or path.stat().st_size == 0:
                return None
            self._conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=60)
        return self._conn

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self._db()
        if db is None:
            return []
        if self.postgres:
            import psycopg

            try:
                cur = db.execute(sql.replace("?", "%s"), args) if args else db.execute(sql)
                return list(cur.fetchall())
            except psycopg.errors.UndefinedTable:  # being created this instant
                return []
        try:
            return list(db.execute(sql, args).fetchall())
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # being created this instant
                return []
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_ids(self) -> list[str]:
        return [r[0] for r in self.query("SELECT run_id FROM runs ORDER BY created_at")]

    def run(self, run_id: str | None) -> dict[str, Any]:
        rows = self.query(
            "SELECT status, owner_host, owner_pid, dispatcher FROM runs WHERE run_id = ?",
            (run_id,),
        )
        if not rows:
            return {}
        status, host, pid, dispatcher = rows[0]
        return {"status": status, "owner_host": host, "owner_pid": pid, "dispatcher": dispatcher}

    def successes(self, run_id: str) -> set[tuple[str, int]]:
        return {
            (t, i)
            for t, i in self.query(
                "SELECT task_name, array_index FROM instances WHERE run_id = ? AND current = 1 "
                "AND state = 'SUCCESS'",
                (run_id,),
            )
        }

    def counts(self, run_id: str | None) -> dict[str, int]:
        """Current instances by state."""
        return {
            s: n
            for s, n in self.query(
                "SELECT state, COUNT(*) FROM instances WHERE run_id = ? AND current = 1 "
                "GROUP BY state",
                (run_id,),
            )
        }

    def states(self, run_id: str, task: str) -> dict[str, int]:
        return {
            s: n
            for s, n in self.query(
                "SELECT state, COUNT(*) FROM instances WHERE run_id = ? AND current = 1 "
                "AND task_name = ? GROUP BY state",
                (run_id, task),
            )
        }

    def attempt_state(self, run_id: str, task: str, index: int, attempt: int) -> str | None:
        rows = self.query(
            "SELECT state FROM instances WHERE run_id = ? AND task_name = ? AND array_index = ? "
            "AND attempt = ?",
            (run_id, task, index, attempt),
        )
        return rows[0][0] if rows else None

    def empty_successes(self) -> list[tuple[Any, ...]]:
        """SUCCESS rows with no output of their own nor a SUCCESS source (cached_from)."""
        return self.query(
            "SELECT i.run_id, i.task_name, i.array_index, i.attempt, i.cached_from "
            "FROM instances i LEFT JOIN instances s ON s.id = i.cached_from "
            "WHERE i.state = 'SUCCESS' AND (i.output_hash IS NULL "
            "OR (i.cached_from IS NULL AND i.output IS NULL) "
            "OR (i.cached_from IS NOT NULL AND (s.id IS NULL OR s.state <> 'SUCCESS' "
            "OR s.output IS NULL OR s.output_hash <> i.output_hash)))"
        )


def status_text(store: Path | str, run_id: str) -> str:
    """What `status RUN_ID` prints, by the code the command runs (thread-safe: no stdout)."""
    from reflow.render import render_status
    from reflow.run import status_dict
    from reflow.stores import open_store

    with open_store(store) as st:  # type: ignore[attr-defined]
        return render_status(status_dict(st, run_id))


def warnings_of(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("warning:")]


class ExecutionLog:
    """The log the pipeline's tasks append to: one (task, index, pid) line per execution."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, int, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            task, index, pid = line.split()
            out.append((task, int(index), int(pid)))
        return out

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0


# --------------------------------------------------------------------------- triggers


@dataclass
class Seen:
    """What a trigger looks at while the process it may kill runs."""

    elapsed: float = 0.0  # seconds since the process started
    driving: float | None = None  # seconds since it showed up in the store as the driver
    lines: int = 0  # executions logged since it started
    committed: int = 0  # instances committed SUCCESS since it started
    tasks: set[str] = field(default_factory=set)  # tasks that logged an execution since
    grew: dict[str, int] = field(default_factory=dict)  # state / "jobs" -> growth since


@dataclass
class Trigger:
    """When to kill: a named predicate over what is seen."""

    label: str
    fire: Callable[[Seen], bool]


def at_time(seconds: float) -> Trigger:
    """`seconds` after the process started (it may not have touched the store yet)."""
    return Trigger(f"{seconds * 1000:.0f} ms after start", lambda s: s.elapsed >= seconds)


def while_driving(seconds: float) -> Trigger:
    """`seconds` after the process showed up in the store as the run's driver."""
    return Trigger(
        f"{seconds * 1000:.0f} ms into driving",
        lambda s: s.driving is not None and s.driving >= seconds,
    )


def after_lines(n: int) -> Trigger:
    """Right after the `n`-th execution of this process was logged (not yet recorded)."""
    return Trigger(f"after {n} executions", lambda s: s.lines >= n)


def after_commits(n: int) -> Trigger:
    """Right after `n` more instances were committed SUCCESS."""
    return Trigger(f"after {n} commits", lambda s: s.committed >= n)


def at_task(task: str) -> Trigger:
    """Right after `task` logged an execution (it ran; its outcome is not recorded yet)."""
    return Trigger(f"when '{task}' ran", lambda s: task in s.tasks)


def after_growth(what: str, n: int = 1, label: str = "") -> Trigger:
    """When the store's `what` instances (or "jobs": local jobs submitted) grew by `n`."""
    return Trigger(label or f"after {n} more {what}", lambda s: s.grew.get(what, 0) >= n)


def random_mid(rng: random.Random, remaining: int, seconds: float) -> Trigger:
    """A kill somewhere in the first half of what is left (`remaining` instances, about
    `seconds` of work), of a random kind: by time, executions or commits."""
    half = max(1, remaining // 2)
    kind = rng.choice(["time", "driving", "driving", "lines", "commits", "commits"])
    if kind == "time":
        return at_time(rng.uniform(0.05, 0.35 + seconds / 2))
    if kind == "driving":
        return while_driving(rng.uniform(0.0, seconds / 2))
    if kind == "lines":
        return after_lines(rng.randint(1, half))
    return after_commits(rng.randint(1, half))


# --------------------------------------------------------------------------- scenarios


@dataclass
class Kill:
    """One kill point and what the store and the log said right after it."""

    label: str
    pid: int
    what: str  # "run", "retry", "submit", "dispatcher"
    successes: set[tuple[str, int]]
    log_lines: int
    run_status: str | None
    children: frozenset[int] = frozenset()  # processes below the killed one at the kill


class Crasher:
    """One crash scenario: one store, one run, the kills made and the problems found."""

    def __init__(
        self,
        root: Path,
        *,
        n: int = 1000,
        task_seconds: float = 0.0,
        name: str = "",
        store: str | None = None,
    ) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.name = name or root.name
        self.n = n
        # an SQLite file of its own, or (`store`) a PostgreSQL URL of a store of its own
        self.store_path: Path | str = store or root / "manifest.db"
        self.run_dir = root / "run"
        self.log = ExecutionLog(root / "executions.log")
        self.store = StoreView(self.store_path)
        self.run_id: str | None = None
        self.kills: list[Kill] = []
        self.problems: list[str] = []
        self.reruns: list[str] = []  # succeeded instances that ran again
        self.lost: list[str] = []  # worker results never ingested
        self.leftovers: list[str] = []  # children that outlived their killed parent
        self.env = dict(os.environ)
        self.env.update(
            CRASH_LOG=str(self.log.path),
            CRASH_TASK_SECONDS=str(task_seconds),
            PYTHONUNBUFFERED="1",
        )
        self.env.pop("REFLOW_DEBUG", None)
        self.outputs = root / "outputs"
        self.outputs.mkdir(exist_ok=True)
        self._started = 0

    @property
    def total(self) -> int:
        """Instances of a complete run: split, n elements, gather."""
        return self.n + 2

    # ------------------------------------------------------------------ processes

    def _start(self, argv: list[str]) -> tuple[subprocess.Popen[bytes], Path]:
        self._started += 1
        out = self.outputs / f"{self._started:03d}-{argv[0]}.txt"
        with open(out, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, str(PIPELINE), *argv],
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.root,
            )
        return proc, out

    def _complete(self, argv: list[str], timeout: float = 120) -> tuple[int, str]:
        """Run a command to its end (no kill); report a hang, a lock error or a traceback."""
        proc, out = self._start(argv)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            self.problems.append(f"{self.name}: '{' '.join(argv)}' hung for {timeout} s")
            return -9, out.read_text(errors="replace")
        text = out.read_text(errors="replace")
        self._scan(argv[0], text)
        return code, text

    def _scan(self, what: str, text: str) -> None:
        for bad in ("database is locked", "Traceback"):
            if bad in text:
                self.problems.append(f"{self.name}: '{what}' printed {bad!r}:\n{text}")

    def _find_run(self) -> str | None:
        if self.run_id is None:
            ids = self.store.run_ids()
            if len(ids) > 1:
                self.problems.append(f"{self.name}: several runs in one scenario: {ids}")
            self.run_id = ids[0] if ids else None
        return self.run_id

    def status(self) -> str | None:
        return self.store.run(self._find_run()).get("status")

    def _growth(self) -> dict[str, int]:
        counts = self.store.counts(self.run_id) if self.run_id else {}
        counts["jobs"] = self._jobs()
        return counts

    def _jobs(self) -> int:
        return 0

    def _watch(
        self,
        proc_alive: Callable[[], bool],
        trigger: Trigger,
        visible: Callable[[], bool],
    ) -> bool:
        """Poll until `trigger` fires (True) or the process ends by itself (False)."""
        started = time.monotonic()
        seen = Seen()
        base = self._growth()
        offset = self.log.size()
        driving_since: float | None = None
        while proc_alive():
            now = time.monotonic()
            seen.elapsed = now - started
            if driving_since is None and visible():
                driving_since = now
            seen.driving = None if driving_since is None else now - driving_since
            size = self.log.size()
            if size > offset:
                with open(self.log.path, "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read(size - offset)
                complete = chunk[: chunk.rfind(b"\n") + 1]
                offset += len(complete)
                for line in complete.decode().splitlines():
                    seen.lines += 1
                    seen.tasks.add(line.split()[0])
            if self.run_id is None and self._find_run() is not None:
                base = {}  # the run appeared: everything in it is new
            now_counts = self._growth()
            seen.grew = {k: v - base.get(k, 0) for k, v in now_counts.items()}
            seen.committed = seen.grew.get("SUCCESS", 0)
            if trigger.fire(seen):
                return True
            time.sleep(POLL)
        return False

    def _snapshot(self, label: str, pid: int, what: str) -> Kill:
        """The store's SUCCESS instances and the log's length right after a kill."""
        run_id = self._find_run()
        successes = self.store.successes(run_id) if run_id else set()
        status = self.status()
        kill = Kill(label, pid, what, successes, len(self.log.lines()), status)
        self.kills.append(kill)
        empty = self.store.empty_successes()
        if empty:
            self.problems.append(f"{self.name}: SUCCESS rows without output after a kill: {empty}")
        return kill

    # ------------------------------------------------------------------ final checks

    def check_final(self) -> None:
        """The run is SUCCESS with the right outputs; nothing that had succeeded reran."""
        run_id = self._find_run()
        if run_id is None:
            self.problems.append(f"{self.name}: no run was recorded")
            return
        from reflow.stores import open_store

        status = self.status()
        if status != "SUCCESS":
            self.problems.append(
                f"{self.name}: run {run_id} ended {status}:\n{status_text(self.store_path, run_id)}"
            )
            return
        with open_store(self.store_path) as st:  # type: ignore[attr-defined]
            work = st.get_array_outputs(run_id, "work")
            total = st.get_singleton_output(run_id, "gather")
        expected = [x * x + 1 for x in range(self.n)]
        if work != expected:
            self.problems.append(f"{self.name}: wrong 'work' outputs ({len(work)} values)")
        if total != sum(expected):
            self.problems.append(f"{self.name}: gather returned {total}, not {sum(expected)}")
        states = self.store.states(run_id, "work")
        if states != {"SUCCESS": self.n}:
            self.problems.append(f"{self.name}: current 'work' rows are {states}")
        empty = self.store.empty_successes()
        if empty:
            self.problems.append(f"{self.name}: SUCCESS rows without output: {empty}")
        lines = self.log.lines()
        for kill in self.kills:
            again = [
                (t, i, pid) for t, i, pid in lines[kill.log_lines :] if (t, i) in kill.successes
            ]
            if again:
                shown = ", ".join(f"{t}[{i}] (pid {p})" for t, i, p in again[:5])
                self.reruns.append(
                    f"{self.name}: after the kill of {kill.what} {kill.pid} ({kill.label}), "
                    f"{len(again)} executions of instances that were SUCCESS: {shown}"
                )

    @property
    def bad(self) -> list[str]:
        return self.problems + self.reruns + self.lost + self.leftovers

    def assert_ok(self) -> None:
        if self.bad:
            detail = "\n".join(self.bad)
            raise AssertionError(f"{len(self.bad)} problems in {self.name}:\n{detail}")

    def close(self) -> None:
        self.store.close()


class RunCrasher(Crasher):
    """`pipeline.py run` (1 or more workers), killed, and resumed with `retry`."""

    def __init__(self, root: Path, *, workers: int = 1, **kw: Any) -> None:
        super().__init__(root, **kw)
        self.workers = workers
        self.killed: list[int] = []

    def _argv(self) -> list[str]:
        if self._find_run() is None:
            return [
                "run", "--run-dir", str(self.run_dir), "--store-path", str(self.store_path),
                "--n", str(self.n), "--max-workers", str(self.workers),
            ]  # fmt: skip
        return ["retry", str(self.run_id), "--store-path", str(self.store_path)]

    def remaining(self) -> int:
        """Instances not yet committed SUCCESS."""
        return self.total - self.store.counts(self._find_run()).get("SUCCESS", 0)

    def kill_at(self, trigger: Trigger) -> bool:
        """Start `run` (or `retry`), SIGKILL it when `trigger` fires, and check right after.

        Returns False when the process finished before the trigger fired.
        """
        argv = self._argv()
        what = argv[0]
        proc, out = self._start(argv)

        def visible() -> bool:
            return self.store.run(self._find_run()).get("owner_pid") == proc.pid

        if not self._watch(lambda: proc.poll() is None, trigger, visible):
            code = proc.wait()
            text = out.read_text(errors="replace")
            self._scan(what, text)
            if code != 0:
                self.problems.append(f"{self.name}: '{what}' exited {code} unkilled:\n{text}")
            return False
        children = descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        # dead but not reaped yet (a zombie), as when its parent is busy or never reaps:
        # the store and `status` are looked at now, then it is reaped
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        self.killed.append(proc.pid)
        kill = self._snapshot(trigger.label, proc.pid, what)
        kill.children = frozenset(children)
        if kill.run_status == "RUNNING":
            self._check_status_says_gone(kill)
        proc.wait()
        for pid in wait_gone(children, 5.0):
            self.leftovers.append(
                f"{self.name}: pid {pid} ({cmdline(pid)}) outlived the killed {what} {proc.pid}"
            )
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)  # a worker of the run this scenario started
        self._scan(what, out.read_text(errors="replace"))
        return True

    def _check_status_says_gone(self, kill: Kill) -> None:
        assert self.run_id is not None
        owner = self.store.run(self.run_id)
        text = status_text(self.store_path, self.run_id)
        said = warnings_of(text)
        pid, host = owner.get("owner_pid"), owner.get("owner_host")
        if not (
            pid in self.killed
            and said
            and f"pid {pid}" in said[0]
            and f"on {host}" in said[0]
            and "gone" in said[0]
        ):
            self.problems.append(
                f"{self.name}: after killing {kill.what} {kill.pid} ({kill.label}) the run "
                f"(owner pid {pid}) is RUNNING and status does not say its owner is gone:\n{text}"
            )

    def finish(self, tries: int = 3) -> None:
        """Retry until the run completes, then check everything."""
        for _ in range(tries):
            if self.status() == "SUCCESS":
                break
            argv = self._argv()
            code, text = self._complete(argv)
            if code != 0:
                self.problems.append(f"{self.name}: '{argv[0]}' exited {code}:\n{text}")
        self.check_final()


def crash_runs(
    root: Path,
    *,
    workers: int,
    points: int,
    seed: int,
    n: int = 1000,
    per_run: int = 7,
    task_seconds: tuple[float, ...] = (0.001, 0.0005),
    stores: Callable[[], str] | None = None,
) -> list[RunCrasher]:
    """Kill `run` (then `retry`) at `points` kill points over as many runs as needed.

    `stores()`, if given, makes each scenario's store (a fresh PostgreSQL URL);
    otherwise each has an SQLite file of its own.

    Each run gets an early kill (when `split` ran, or at a random time from
    start), kills at random points in what is left, then late ones (only
    `gather` left, `gather` ran, everything committed), and is retried to the end.
    """
    rng = random.Random(seed)
    crashers: list[RunCrasher] = []
    made = 0
    while made < points:
        k = len(crashers)
        ts = task_seconds[k % len(task_seconds)]
        c = RunCrasher(
            root / f"w{workers}-{k}",
            workers=workers,
            n=n,
            task_seconds=ts,
            store=stores() if stores else None,
        )
        c.env["CRASH_SLOW"] = "split,gather"  # so a kill can land between running and recording
        crashers.append(c)
        plan = ["early"] + ["mid"] * (per_run - 4) + ["all-but-gather", "gather", "end"]
        here = 0
        for step in plan:
            if made >= points or c.status() == "SUCCESS" or here >= per_run:
                break
            remaining = c.remaining() if c.run_id else c.total
            if step == "early":
                trigger = [at_task("split"), after_commits(1), at_time(rng.uniform(0.05, 0.4))][
                    k % 3
                ]
            elif step == "mid":
                trigger = random_mid(rng, remaining, remaining * (ts + 0.0002) / workers)
            elif step == "all-but-gather":
                trigger = after_commits(max(1, remaining - 1))
                trigger.label = "when only 'gather' was left"
            elif step == "gather":
                trigger = at_task("gather")
            else:
                trigger = after_commits(remaining)
                trigger.label = "after the last commit"
            if c.kill_at(trigger):
                made += 1
                here += 1
        c.finish()
        c.close()
    return crashers


# --------------------------------------------------------------------------- submit


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


class SubmitCrasher(Crasher):
    """`pipeline.py submit --executor local`: kill the submitter or a dispatcher, resume."""

    def __init__(self, root: Path, **kw: Any) -> None:
        from reflow.executors.local import LocalExecutor

        kw.setdefault("n", 2)
        super().__init__(root, **kw)
        # the local executor's job files, shared by every scenario of this process: a
        # `status` asked from here must find the jobs where the pipeline put them
        self.jobs_dir = LocalExecutor().state_dir
        self._mine: dict[str, bool] = {}

    def my_jobs(self) -> list[Path]:
        """The job files of this scenario's run (its run dir or store is in the job)."""
        found = []
        for path in self.jobs_dir.glob("*.job") if self.jobs_dir.is_dir() else []:
            if path.name not in self._mine:
                try:
                    self._mine[path.name] = f"{self.root}{os.sep}" in path.read_text()
                except OSError:
                    continue
            if self._mine[path.name]:
                found.append(path)
        return sorted(found)

    def _jobs(self) -> int:
        return len(self.my_jobs())

    def _submit_argv(self) -> list[str]:
        return [
            "submit", "--executor", "local", "--run-dir", str(self.run_dir),
            "--store-path", str(self.store_path), "--n", str(self.n),
        ]  # fmt: skip

    def submit(self) -> None:
        """Submit without killing."""
        code, text = self._complete(self._submit_argv())
        if code != 0:
            self.problems.append(f"{self.name}: submit exited {code}:\n{text}")
        self._find_run()

    def kill_submit(self, trigger: Trigger) -> bool:
        """Submit, and SIGKILL the submitting process when `trigger` fires."""
        proc, out = self._start(self._submit_argv())
        fired = self._watch(lambda: proc.poll() is None, trigger, lambda: self.run_id is not None)
        if not fired:
            code = proc.wait()
            self._scan("submit", out.read_text(errors="replace"))
            if code != 0:
                self.problems.append(f"{self.name}: submit exited {code}:\n{out.read_text()}")
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self._snapshot(trigger.label, proc.pid, "submit")
        return True

    def _dispatchers(self) -> list[int]:
        if self.run_id is None:
            return []
        # `python -m reflow dispatch --run-id RUN ...`
        return processes_matching("dispatch", "--run-id", self.run_id)

    def kill_dispatcher(self, trigger: Trigger, timeout: float = 5.0) -> bool:
        """Wait for a dispatcher pass of the run to start; SIGKILL it when `trigger` fires.

        The trigger's `elapsed` counts from when the pass process was found.
        """
        deadline = time.monotonic() + timeout
        found: list[int] = []
        while not found and time.monotonic() < deadline and self.status() == "RUNNING":
            found = self._dispatchers()
            if not found:
                time.sleep(0.01)
        if not found:
            return False
        pid = found[0]
        if not self._watch(lambda: running(pid), trigger, lambda: True):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)  # a dispatcher pass of the run this scenario submitted
        wait_gone({pid}, 5.0)
        self._snapshot(trigger.label, pid, "dispatcher")
        return True

    def drive(self, timeout: float = 90.0, dispatcher_kills: list[Trigger] | None = None) -> None:
        """Follow the run to its end, retrying whenever `status` says it will not move.

        Kills a dispatcher pass for each of `dispatcher_kills` on the way.
        """
        kills = list(dispatcher_kills or [])
        run_id = self._find_run()
        if run_id is None:
            self.submit()  # killed before the run was recorded: submit again
            run_id = self._find_run()
            if run_id is None:
                return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status() != "RUNNING":
                break
            if kills and self.kill_dispatcher(kills[0], timeout=0.5):
                kills.pop(0)
                continue
            if warnings_of(status_text(self.store_path, run_id)):
                # the run says it will not move on its own: resume it, as a user would
                code, out = self._complete(["retry", run_id, "--store-path", str(self.store_path)])
                if code != 0 and "being dispatched" not in out:
                    self.problems.append(f"{self.name}: retry exited {code}:\n{out}")
                continue
            time.sleep(0.05)  # no warning: a dispatcher job is queued or running
        else:
            self.problems.append(
                f"{self.name}: run {run_id} still RUNNING after {timeout} s:\n"
                + status_text(self.store_path, run_id)
            )
        self.wait_for_jobs()

    def wait_for_jobs(self, timeout: float = 30.0) -> None:
        """Let every local job end (stragglers of killed passes); stop those that do not."""
        deadline = time.monotonic() + timeout
        while self._live_jobs() and time.monotonic() < deadline:
            time.sleep(0.05)
        for job, pid in self._live_jobs().items():
            self.problems.append(f"{self.name}: local job {job} (pid {pid}) did not end")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)  # a job runner this scenario submitted

    def _live_jobs(self) -> dict[str, int]:
        live: dict[str, int] = {}
        for job in self.my_jobs():
            pid = _read_json(job.with_suffix(".state")).get("pid")
            if isinstance(pid, int) and running(pid) and job.stem in cmdline(pid):
                live[job.stem] = pid
        return live

    def check_results(self) -> None:
        """Every result a worker wrote (its job element exited 0) was ingested."""
        from reflow.results import read_element

        run_id = self.run_id or ""
        for spec_path in self.my_jobs():
            command = [str(c) for c in _read_json(spec_path).get("command", [])]
            if "--wave" not in command:  # a dispatcher's job, not a worker's
                continue
            wave = Path(command[command.index("--wave") + 1])
            offset = int(command[command.index("--offset") + 1]) if "--offset" in command else 0
            elements = _read_json(spec_path.with_suffix(".state")).get("elements") or {}
            for k, element in sorted(elements.items()):
                if element.get("state") != "COMPLETED":
                    continue
                try:
                    work = read_element(wave, offset + int(k)).work
                except Exception as exc:
                    self.lost.append(f"{self.name}: job {spec_path.stem}[{k}]: {exc}")
                    continue
                state = self.store.attempt_state(run_id, work.task, work.index, work.attempt)
                if state != "SUCCESS":
                    self.lost.append(
                        f"{self.name}: job {spec_path.stem}[{k}] wrote the result of "
                        f"{work.task}[{work.index}] attempt {work.attempt}, but the store "
                        f"has that attempt {state}"
                    )
        results = self.run_dir / "results" / run_id
        for path in sorted(results.rglob("*.json")) if results.is_dir() else []:
            index, attempt = path.name.split(".")[:2]
            i = -1 if index == "single" else int(index)
            state = self.store.attempt_state(run_id, path.parent.name, i, int(attempt))
            if state != "SUCCESS":
                self.lost.append(f"{self.name}: result file {path} never ingested ({state})")

    def check_logs(self) -> None:
        """No dispatcher or job log shows a lock error or a traceback."""
        logs = self.run_dir / "logs"
        for path in sorted(logs.rglob("*")) if logs.is_dir() else []:
            if path.is_file() and path.suffix in (".log", ".err", ".out"):
                text = path.read_text(errors="replace")
                for bad in ("database is locked", "Traceback", "Error"):
                    if bad in text:
                        self.problems.append(f"{self.name}: {path} shows {bad!r}:\n{text}")
                        break

    def check_final(self) -> None:
        super().check_final()
        self.check_results()
        self.check_logs()


#: kill points of `submit`, found by watching the store and the local job files
SUBMIT_POINTS: list[Callable[[random.Random], Trigger]] = [
    lambda rng: Trigger("when the run was recorded", lambda s: s.driving is not None),
    lambda rng: after_growth("PENDING", 1, "when 'split' was written, before its job"),
    lambda rng: after_growth("jobs", 1, "when the first job was submitted, not recorded"),
    lambda rng: after_growth("jobs", 2, "when the dispatcher was submitted, not recorded"),
]

#: kill points of a dispatcher pass (after `split`: ingest, expand, submit, chain)
DISPATCHER_POINTS: list[Callable[[random.Random], Trigger]] = [
    lambda rng: after_growth("SUCCESS", 1, "after ingesting a result"),
    lambda rng: after_growth("PENDING", 1, "after expanding 'work'"),
    lambda rng: after_growth("jobs", 1, "after submitting a job, before recording it"),
    lambda rng: after_growth("jobs", 3, "after chaining the next pass, before recording it"),
]

MENUS = {"submit": SUBMIT_POINTS, "dispatcher": DISPATCHER_POINTS}


def crash_submits(
    root: Path,
    *,
    points: int,
    seed: int,
    kinds: tuple[str, ...] = ("submit", "dispatcher"),
    n: int = 2,
    start: int = 0,
) -> list[SubmitCrasher]:
    """Kill `submit`, or dispatcher passes, in scenarios that all run at once.

    Each scenario takes one kill point of `SUBMIT_POINTS` (or of
    `DISPATCHER_POINTS`, plus a second dispatcher kill: early, or after it
    ingested results),
    follows the run to its end and checks it.  Rounds of scenarios run until
    `points` kills were made (a point is missed when the process outruns the
    watcher).
    """
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(seed)
    plan = [(kind, k) for kind in kinds for k in range(len(MENUS[kind]))]
    crashers: list[SubmitCrasher] = []

    def one(item: tuple[str, int, int, random.Random]) -> SubmitCrasher:
        kind, k, number, r = item
        c = SubmitCrasher(root / f"{kind}-{number}", n=n)
        trigger = MENUS[kind][k](r)
        if kind == "dispatcher":
            c.submit()
            second = r.choice(
                [at_time(r.uniform(0.0, 0.3)), after_growth("SUCCESS", 1, "after ingesting")]
            )
            c.drive(dispatcher_kills=[trigger, second])
        else:
            c.kill_submit(trigger)
            c.drive()
        c.check_final()
        c.close()
        return c

    made, number = 0, start
    while made < points and len(crashers) < 3 * max(points, len(plan)):
        items = []
        for kind, k in plan:
            items.append((kind, k, number, random.Random(rng.random())))
            number += 1
        with ThreadPoolExecutor(len(items)) as pool:
            batch = list(pool.map(one, items))
        crashers.extend(batch)
        made += sum(len(c.kills) for c in batch)
    return crashers
