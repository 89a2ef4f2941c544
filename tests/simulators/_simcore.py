"""The engine under the scheduler simulators: job records, detached runners, dependencies,
parallelism limits, time limits and cancellation.

A simulator's submit command writes one record per job (`<key>.job`, JSON: the
command, environment, working directory, output files and dependencies of each
array element) and starts one detached runner for the batch of jobs it
submitted.  The runner waits until every job it depends on has ended, runs the
elements (at most `limit` at a time), kills an element that outlives its time
limit or whose cancellation was asked for (a `<key>.cancel` or
`<key>.<index>.cancel` file), and keeps `<key>.state` (JSON) up to date.  The
status and cancel commands read those files; each simulator prints them in
its scheduler's own format.

State lives under $SCHED_SIM_DIR/<scheduler>/, so each test has its own.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_ENV = "SCHED_SIM_DIR"
POLL = 0.1
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL

#: element states in the state file
PENDING, RUNNING, DONE, CANCELLED = "PENDING", "RUNNING", "DONE", "CANCELLED"
FINAL = (DONE, CANCELLED)


def fail(program: str, message: str, code: int = 1) -> None:
    """Print `message` on stderr as the real tool would, and exit with `code`."""
    print(message if message.startswith(program) else f"{program}: {message}", file=sys.stderr)
    raise SystemExit(code)


def state_dir(scheduler: str) -> Path:
    """This test's state directory for `scheduler` ($SCHED_SIM_DIR/<scheduler>)."""
    root = os.environ.get(STATE_ENV)
    if not root:
        fail(scheduler, f"{STATE_ENV} is not set: the simulator needs a state directory", 2)
    path = Path(str(root)) / scheduler
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def next_number(directory: Path, start: int) -> int:
    """The next job sequence number of this simulated server (locked, so concurrent-safe)."""
    with open(directory / "sequence.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        text = fh.read().strip()
        number = int(text) + 1 if text else start
        fh.seek(0)
        fh.truncate()
        fh.write(str(number))
        fh.flush()
        return number


@dataclass
class Element:
    """How one array element (or a plain job, index 0) runs."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    stdout: str | None = None  # append to this file
    stderr: str | None = None  # None: to stdout's file


@dataclass
class Record:
    """One job as its submit command recorded it."""

    key: str
    scheduler: str
    fields: dict[str, Any]  # what the status command shows (name, queue, ...)
    elements: dict[str, Element]
    dependencies: list[str] = field(default_factory=list)  # keys of jobs to wait for
    walltime: float | None = None
    submitted: float = field(default_factory=time.time)
    warning: float | None = None  # SIGUSR1 this many seconds before the walltime (LSF -wt)

    def save(self, directory: Path) -> None:
        doc = {
            "key": self.key,
            "scheduler": self.scheduler,
            "fields": self.fields,
            "elements": {k: vars(e) for k, e in self.elements.items()},
            "dependencies": self.dependencies,
            "walltime": self.walltime,
            "submitted": self.submitted,
            "warning": self.warning,
        }
        write_json(directory / f"{self.key}.job", doc)
        write_json(directory / f"{self.key}.state", {"elements": {}, "count": len(self.elements)})

    @classmethod
    def load(cls, directory: Path, key: str) -> Record | None:
        doc = read_json(directory / f"{key}.job")
        if doc is None:
            return None
        return cls(
            key=str(doc["key"]),
            scheduler=str(doc["scheduler"]),
            fields=dict(doc["fields"]),
            elements={k: Element(**e) for k, e in doc["elements"].items()},
            dependencies=[str(d) for d in doc["dependencies"]],
            walltime=doc.get("walltime"),
            submitted=float(doc["submitted"]),
            warning=doc.get("warning"),
        )


def element_states(directory: Path, record: Record) -> dict[str, dict[str, Any]]:
    """index -> the element's state document (PENDING until its runner says otherwise)."""
    doc = read_json(directory / f"{record.key}.state") or {}
    known = doc.get("elements", {})
    return {k: dict(known.get(k) or {"state": PENDING}) for k in record.elements}


def finished(directory: Path, key: str) -> bool:
    """True when every element of job `key` has ended (a dependency on it is satisfied)."""
    doc = read_json(directory / f"{key}.state")
    if doc is None:
        return not (directory / f"{key}.job").exists()
    ended = [e for e in doc.get("elements", {}).values() if e.get("state") in FINAL]
    return len(ended) >= int(doc.get("count", 1))


def all_records(directory: Path) -> Iterator[Record]:
    for path in sorted(directory.glob("*.job")):
        record = Record.load(directory, path.stem)
        if record is not None:
            yield record


# ----------------------------------------------------------------------------- the runner


def start_runner(helper: Path, directory: Path, keys: list[str], limit: int | None) -> None:
    """Start the detached runner of a batch of jobs (it outlives the submit command)."""
    batch = f"batch-{keys[0]}"
    write_json(directory / f"{batch}.batch", {"keys": keys, "limit": limit})
    proc = subprocess.Popen(
        [sys.executable, "-S", str(helper), "run", str(directory), batch],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=open(directory / f"{batch}.err", "ab"),  # noqa: SIM115 - the child keeps it
        start_new_session=True,
        close_fds=True,
    )
    write_json(directory / f"{batch}.runner", {"pid": proc.pid})


#: called when an element ends: (directory, record, index, its final state document)
Epilogue = Callable[[Path, Record, str, dict[str, Any]], None]


@dataclass
class _Running:
    proc: subprocess.Popen[bytes]
    started: float
    killing: float | None = None  # when SIGTERM was sent
    warned: bool = False  # the warning signal before the walltime was sent
    why: str = ""  # "timeout" or "cancel"


def _kill(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _cancel_asked(directory: Path, key: str, index: str) -> bool:
    return (directory / f"{key}.cancel").exists() or (directory / f"{key}.{index}.cancel").exists()


def run_batch(directory: Path, batch: str, epilogue: Epilogue | None = None) -> int:
    """The runner: wait for dependencies, run the elements, record their states."""
    spec = read_json(directory / f"{batch}.batch")
    if spec is None:
        return 1
    records = {k: r for k in spec["keys"] if (r := Record.load(directory, k)) is not None}
    limit = int(spec.get("limit") or 0) or 10**6
    states: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in records}
    todo = [(k, i) for k, r in records.items() for i in sorted(r.elements, key=int)]
    running: dict[tuple[str, str], _Running] = {}

    satisfied: set[str] = set()  # dependencies seen finished (they stay so)

    def ready(record: Record) -> bool:
        for dep in record.dependencies:
            if dep not in satisfied:
                if not finished(directory, dep):
                    return False
                satisfied.add(dep)
        return True

    def save(key: str) -> None:
        doc = {"elements": states[key], "count": len(records[key].elements), "runner": os.getpid()}
        write_json(directory / f"{key}.state", doc)

    def end(key: str, index: str, doc: dict[str, Any]) -> None:
        doc["end"] = time.time()
        states[key][index] = doc
        save(key)
        if epilogue is not None:
            epilogue(directory, records[key], index, doc)

    # ended only through cancel files; a handler, not SIG_IGN, which the jobs would inherit
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    while todo or running:
        waiting = []
        changed: set[str] = set()
        for key, index in todo:
            record = records[key]
            if _cancel_asked(directory, key, index):
                end(key, index, {"state": CANCELLED, "cancelled": True})
                continue
            free = ready(record)
            if not free or len(running) >= limit:
                doc = {"state": PENDING, "blocked": not free}
                if states[key].get(index) != doc:
                    states[key][index] = doc
                    changed.add(key)
                waiting.append((key, index))
                continue
            element = record.elements[index]
            out = open(element.stdout, "ab") if element.stdout else subprocess.DEVNULL  # noqa: SIM115
            err: Any = subprocess.STDOUT
            if element.stderr and element.stderr != element.stdout:
                err = open(element.stderr, "ab")  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    element.argv,
                    cwd=element.cwd,
                    env=element.env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                end(key, index, {"state": DONE, "exit": 127, "error": str(exc)})
                continue
            finally:
                for fh in (out, err):
                    if hasattr(fh, "close"):
                        fh.close()
            running[(key, index)] = _Running(proc, time.time())
            states[key][index] = {"state": RUNNING, "start": time.time(), "pid": proc.pid}
            save(key)
        todo = waiting
        for key in changed:
            save(key)
        time.sleep(POLL)
        now = time.time()
        for (key, index), run in list(running.items()):
            code = run.proc.poll()
            if code is None:
                walltime, warning = records[key].walltime, records[key].warning
                warn_at = walltime - warning if walltime and warning else None
                if warn_at is not None and not run.warned and now - run.started > warn_at:
                    run.warned = True
                    _kill(run.proc, signal.SIGUSR1)
                if run.killing is None:
                    if _cancel_asked(directory, key, index):
                        run.why, run.killing = "cancel", now
                    elif walltime is not None and now - run.started > walltime:
                        run.why, run.killing = "timeout", now
                    if run.killing is not None:
                        _kill(run.proc, signal.SIGTERM)
                elif now - run.killing > KILL_GRACE:
                    _kill(run.proc, signal.SIGKILL)
                continue
            del running[(key, index)]
            doc = dict(states[key][index])
            doc["state"] = CANCELLED if run.why == "cancel" else DONE
            doc["exit"] = code if code >= 0 else None
            doc["signal"] = -code if code < 0 else None
            doc["timeout"] = run.why == "timeout"
            doc["cancelled"] = run.why == "cancel"
            end(key, index, doc)
    return 0


# ----------------------------------------------------------------------------- cancelling


def request_cancel(
    directory: Path, targets: list[tuple[str, str | None]], wait: float = 10
) -> None:
    """Ask the runners to cancel jobs (key, None) or elements (key, index); wait until they have.

    Like the real commands, every cancellation is asked for first; then this
    waits (bounded) until the runners have ended them all.
    """
    for key, index in targets:
        (directory / (f"{key}.cancel" if index is None else f"{key}.{index}.cancel")).touch()
    deadline = time.monotonic() + wait
    for key, index in targets:
        record = Record.load(directory, key)
        while record is not None and time.monotonic() < deadline:
            states = element_states(directory, record)
            if all(s["state"] in FINAL for i, s in states.items() if index in (None, i)):
                break
            time.sleep(POLL)


def kill_everything(root: Path) -> int:
    """Kill every runner and job process under `root` (a test's cleanup); return how many."""
    killed = 0
    for path in root.rglob("*.runner"):
        doc = read_json(path) or {}
        pid = doc.get("pid")
        if isinstance(pid, int) and alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            killed += 1
    for path in root.rglob("*.state"):
        for element in ((read_json(path) or {}).get("elements") or {}).values():
            pid = element.get("pid")
            if element.get("state") == RUNNING and isinstance(pid, int) and alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                killed += 1
    return killed


def alive(pid: int) -> bool:
    """True if process `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def live_processes(root: Path) -> list[int]:
    """Runner and job processes under `root` that are still alive."""
    pids = []
    for path in root.rglob("*.runner"):
        pid = (read_json(path) or {}).get("pid")
        if isinstance(pid, int) and alive(pid):
            pids.append(pid)
    for path in root.rglob("*.state"):
        for element in ((read_json(path) or {}).get("elements") or {}).values():
            pid = element.get("pid")
            if element.get("state") == RUNNING and isinstance(pid, int) and alive(pid):
                pids.append(pid)
    return pids


def clock(seconds: float) -> str:
    """HH:MM:SS."""
    total = int(seconds)
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


def ctime(stamp: float) -> str:
    """`Wed Nov 25 10:00:01 2026`, as PBS and LSF print times."""
    return time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(stamp))
