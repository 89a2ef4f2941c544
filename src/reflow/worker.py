"""Running task instances: call the function, encode its output, capture failures.

The same code runs an instance in-process, in a local worker process, and
(later) inside a scheduler job.  It never touches the store.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .errors import EncodeError

__all__ = ["NO_VALUE", "Outcome", "Work", "execute", "execute_batch"]

NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()
"""`Outcome.value` when the value itself is not kept (only `output`, its stored text)."""

# returned values the engine may keep as they are: nothing can change them later
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


# Work and Outcome are made by the hundred thousand: plain slotted classes (a frozen
# dataclass costs 2.5 times as much to build); treat them as read-only.


@dataclass(slots=True)
class Work:
    """One instance to run: which task, which element, which attempt, and its arguments."""

    task: str
    index: int
    attempt: int
    kwargs: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    """What running one instance produced."""

    task: str
    index: int
    attempt: int
    ok: bool
    output: str | None
    output_hash: str | None
    error: str | None
    started: float
    finished: float
    # set only by a worker that resolved its own inputs (an instance submitted ahead)
    identity: str | None = None
    parts: str | None = None
    cached_from: int | None = None
    skipped: bool = False
    # the returned value itself when it is immutable and was produced in this
    # process, so the engine need not decode `output` again; never sent anywhere
    value: Any = field(default=NO_VALUE, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:  # a worker process sends only the text
        return {f: getattr(self, f) for f in self.__slots__ if f != "value"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, val in state.items():
            setattr(self, key, val)
        self.value = NO_VALUE


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def failure(
    work: Work, error: str, started: float | None = None, *, skipped: bool = False
) -> Outcome:
    """A failed (or, with `skipped`, skipped) Outcome for `work` with its error text."""
    now = time.time()
    return Outcome(
        work.task,
        work.index,
        work.attempt,
        False,
        None,
        None,
        error,
        now if started is None else started,
        now,
        skipped=skipped,
    )


def traceback_text(exc: BaseException, *, skip_frames: int = 0) -> str:
    """The formatted traceback of `exc`, without its first `skip_frames` frames."""
    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb else None
    return "".join(traceback.format_exception(type(exc), exc, tb))


def execute(func: Callable[..., Any], work: Work) -> Outcome:
    """Run one instance; exceptions (and exits) become a failed Outcome with the traceback."""
    started = time.time()
    try:
        value = func(**work.kwargs)
    except (Exception, SystemExit) as exc:
        # drop this frame: the user's traceback starts in their own function
        return failure(work, traceback_text(exc, skip_frames=1), started)
    try:
        text, ohash = codec.dumps_hashed(value)
    except EncodeError as exc:
        where = _label(work.task, work.index)
        return failure(work, f"task {where} returned a value reflow cannot store: {exc}", started)
    return Outcome(
        work.task,
        work.index,
        work.attempt,
        True,
        text,
        ohash,
        None,
        started,
        time.time(),
        value=value if type(value) in _IMMUTABLE else NO_VALUE,
    )


def execute_batch(items: Sequence[tuple[Callable[..., Any], Work]]) -> list[Outcome]:
    """Run several instances in order (one round trip to a worker process)."""
    return [execute(func, work) for func, work in items]


# ---------------------------------------------------------------------- inside a job

# The array index variables of SPEC 6, in order, with the number each counts from.
INDEX_VARIABLES: tuple[tuple[str, int], ...] = (
    ("SLURM_ARRAY_TASK_ID", 0),
    ("PBS_ARRAY_INDEX", 0),
    ("PBS_ARRAYID", 0),
    ("LSB_JOBINDEX", 1),
    ("SGE_TASK_ID", 1),
    ("FLUX_JOB_CC", 0),
    ("REFLOW_ARRAY_INDEX", 0),  # reflow's own local executor
)


def array_element(environ: dict[str, str] | None = None) -> int:
    """This job's 0-based array element, from the first valid scheduler variable (0 if none)."""
    env = os.environ if environ is None else environ
    for name, base in INDEX_VARIABLES:
        value = env.get(name, "").strip()
        if value.isdigit():
            element = int(value) - base
            if element >= 0:
                return element
    return 0


def _job_id(env: dict[str, str] | os._Environ[str]) -> str | None:
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    if env.get("JOB_ID") and env.get("SGE_TASK_ID", "").isdigit():  # an SGE array task
        return f"{env['JOB_ID']}.{env['SGE_TASK_ID']}"
    for name in ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID", "FLUX_JOB_ID"):
        if env.get(name):
            return env[name]
    return env.get("REFLOW_JOB_ID")


def _redirect(out: str, err: str, header: str) -> None:
    """Send this process's stdout/stderr (fds 1 and 2) to the instance's log files."""
    for path, fd in ((out, 1), (err, 2)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(target, header.encode())
        sys.stdout.flush() if fd == 1 else sys.stderr.flush()
        os.dup2(target, fd)
        os.close(target)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one instance of a wave inside a scheduler job and write its result file."""
    import argparse
    import json
    from pathlib import Path

    from .loader import load_workflow
    from .results import log_paths, read_element, write_result

    parser = argparse.ArgumentParser(prog="python -m reflow worker")
    parser.add_argument("--wave", required=True)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--origin", required=True, help="JSON: {script: ...} or {module: ...}")
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--offset", type=int, default=0)
    ns = parser.parse_args(argv)
    element = ns.offset + array_element()
    item = read_element(Path(ns.wave), element)
    work, run_dir = item.work, Path(ns.run_dir)
    job_id = _job_id(os.environ)
    out, err = log_paths(run_dir, work.task, work.index)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    where = f"{work.task}[{work.index}]" if work.index >= 0 else work.task
    _redirect(str(out), str(err), f"== {stamp} {where} attempt {work.attempt} job {job_id}\n")
    started = time.time()
    try:
        wf = load_workflow(json.loads(ns.origin), ns.workflow)
        func = wf.tasks[work.task].func
    except BaseException as exc:  # the user's script failed to import: the instance fails
        outcome = failure(
            work, "cannot load the workflow in the job:\n" + traceback_text(exc), started
        )
    else:
        if item.deferred is not None:
            from .resolve import run_deferred

            try:
                outcome = run_deferred(wf, work, item.deferred, run_dir, item.run_id)
            except Exception as exc:  # e.g. the store cannot be read from this node
                outcome = failure(
                    work, "cannot resolve the inputs in the job:\n" + traceback_text(exc), started
                )
        else:
            outcome = execute(func, work)
    if not outcome.ok:
        sys.stderr.write(outcome.error or "")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        write_result(run_dir, item.run_id, outcome, job_id)
    except OSError as exc:  # a full disk or quota: say so in a small result, if that fits
        why = f"the result could not be written: {exc.strerror or exc} ({exc.filename or run_dir})"
        sys.stderr.write(why + "\n")
        write_result(run_dir, item.run_id, failure(work, why, started), job_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
