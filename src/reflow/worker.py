"""The program inside a scheduler job: `python -m reflow worker`.

It reads the instances its array element runs from the wave file (one, or a
pack of several; a fused job names several waves), runs each in turn (an
instance submitted ahead of its inputs resolves them first), and writes one
result file per instance.  It never touches the store.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .instances import execute, failure, traceback_text
from .signals import WARNING_SIGNAL, graceful_shutdown

if TYPE_CHECKING:
    from .instances import Outcome
    from .results import WaveElement
    from .wiring import Pipeline

__all__ = ["INDEX_VARIABLES", "array_element", "main"]

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
    """Run this job's instances of its waves, in order, writing one result file each.

    An array element runs the instances its wave assigns it (several when the
    wave is packed); a fused job names several waves, one task each, and runs
    them one after the other, each finding the one before's result file.  An
    instance that fails fails alone: the next one still runs.
    """
    import json

    from .results import Wave

    try:
        ns = _Arguments(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:  # only reflow writes this command line; say what is wrong
        sys.stderr.write(f"{USAGE}\npython -m reflow worker: error: {exc}\n")
        return 2
    element = ns.offset + array_element()
    job_id = _job_id(os.environ)
    runner = _Runner(ns.run_dir, json.loads(ns.origin), ns.workflow, job_id)
    # the scheduler's warning before the time limit; its default action would end the job
    signal.signal(WARNING_SIGNAL, runner.warn)
    for path in ns.wave:
        wave = Wave(path)
        for position in wave.positions(element):
            runner.run(wave.instance(position))
    return 0


USAGE = (
    "usage: python -m reflow worker --wave FILE [--wave FILE ...] --run-dir DIR "
    "--origin JSON --workflow NAME [--offset N]"
)


class _Arguments:
    """The worker's command line (written by the dispatcher, so argparse's start-up is not paid)."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.wave: list[str] = []
        values: dict[str, str] = {}
        args = list(argv)
        while args:
            flag = args.pop(0)
            name, eq, value = flag.partition("=")
            if name not in ("--wave", "--run-dir", "--origin", "--workflow", "--offset"):
                raise ValueError(f"unrecognized argument {flag!r}")
            if not eq:
                if not args:
                    raise ValueError(f"argument {name}: expected one argument")
                value = args.pop(0)
            if name == "--wave":
                self.wave.append(value)
            else:
                values[name] = value
        missing = [n for n in ("--wave", "--run-dir", "--origin", "--workflow")
                   if n not in values and not (n == "--wave" and self.wave)]  # fmt: skip
        if missing:
            raise ValueError(f"the following arguments are required: {', '.join(missing)}")
        self.run_dir = values["--run-dir"]
        self.origin = values["--origin"]
        self.workflow = values["--workflow"]
        offset = values.get("--offset", "0")
        if not offset.isdigit():
            raise ValueError(f"argument --offset: invalid int value: {offset!r}")
        self.offset = int(offset)


class _Runner:
    """Runs instances in this process; the workflow is loaded once, by the first."""

    def __init__(self, run_dir: str, origin: dict[str, Any], name: str, job_id: str | None):
        self.run_dir, self.origin, self.name, self.job_id = run_dir, origin, name, job_id
        self.wf: Pipeline | None = None
        self.load_error: str | None = None
        self.warned = False  # the scheduler said the job's time limit is near

    def warn(self, signum: int, frame: object) -> None:
        """The time-limit warning arrived outside a task: start no more instances."""
        self.warned = True

    def _workflow(self) -> Pipeline | None:
        if self.wf is None and self.load_error is None:
            from .loader import load_workflow

            try:
                self.wf = load_workflow(self.origin, self.name)
            except BaseException as exc:  # the user's script failed to import
                self.load_error = "cannot load the workflow in the job:\n" + traceback_text(exc)
        return self.wf

    def _execute(self, item: WaveElement, started: float) -> Outcome:
        """Run one instance (resolving its inputs first when it was submitted ahead)."""
        work = item.work
        wf = self._workflow()
        if wf is None:
            return failure(work, self.load_error or "cannot load the workflow", started)
        if item.deferred is not None:
            from pathlib import Path

            from .resolve import run_deferred

            try:
                return run_deferred(wf, work, item.deferred, Path(self.run_dir), item.run_id)
            except Exception as exc:  # e.g. the store cannot be read from this node
                return failure(
                    work, "cannot resolve the inputs in the job:\n" + traceback_text(exc), started
                )
        return execute(wf.tasks[work.task].func, work)

    def run(self, item: WaveElement) -> None:
        if self.warned and item.deferred is not None:
            return  # fused behind the one the warning stopped: the dispatcher skips it
        from .results import log_files, write_result_file

        work, run_dir = item.work, self.run_dir
        out, err = log_files(run_dir, item.run_id, work.task, work.index, work.attempt)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        where = f"{work.task}[{work.index}]" if work.index >= 0 else work.task
        header = f"== {stamp} {where} attempt {work.attempt} job {self.job_id}\n"
        _redirect(out, err, header)
        started = time.time()
        if self.warned:
            outcome = failure(
                work, f"{_NEAR} before this instance started", started, kind="TIMEOUT"
            )
        else:
            self._workflow()  # loaded outside: a signal while it loads is no task's
            with graceful_shutdown() as guard:
                outcome = self._execute(item, started)
            stop = guard.interrupted
            self.warned = self.warned or bool(stop and stop.time_limit)
            if stop is not None and not outcome.ok:
                if not self.warned:
                    _die(stop.signal_number)  # a kill on its way: the scheduler says why
                outcome = failure(
                    work, f"{outcome.error}{_NEAR}: the task was interrupted", started,
                    kind="TIMEOUT",
                )  # fmt: skip
        if not outcome.ok:
            sys.stderr.write(outcome.error or "")
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            write_result_file(run_dir, item.run_id, outcome, self.job_id)
        except OSError as exc:  # a full disk or quota: say so in a small result, if that fits
            why = (
                f"the result could not be written: {exc.strerror or exc} "
                f"({exc.filename or run_dir})"
            )
            sys.stderr.write(why + "\n")
            write_result_file(run_dir, item.run_id, failure(work, why, started), self.job_id)


_NEAR = "the job's time limit was near (the scheduler's warning signal came)"


def _die(signum: int) -> None:
    """End this process by `signum`, as if it had not been caught, writing no result.

    A job stopped without warning is being cancelled, preempted or requeued:
    the scheduler's accounting says which, and a requeued job runs again.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(5)  # the signal ends the process before this
    os._exit(128 + signum)


if __name__ == "__main__":
    raise SystemExit(main())
