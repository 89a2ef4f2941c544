"""The program inside a scheduler job: `python -m reflow worker`.

It reads its instance from the wave file, runs it (or, for an instance
submitted ahead of its inputs, resolves them first), and writes one result
file.  It never touches the store.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from .instances import execute, failure, traceback_text

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
