"""The dispatcher: drives a run through a scheduler, one pass at a time.

A pass ingests worker result files (one transaction), fails instances whose
jobs ended without a result (with the scheduler's reason), lets the engine
expand what became ready and apply the cache, submits each task's wave as
one job (an array job for several elements), and chains the next pass as a
small scheduler job behind what is in flight.  `submit()` runs the first pass
itself, so a fully cached run submits nothing.  Only the dispatcher writes
the store.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .engine import Engine
from .errors import ReflowError, ValidationError
from .executors.base import Executor, JobResources, JobState, JobStatus, merge_options
from .results import log_paths, read_results, run_files, write_wave
from .states import RunState
from .worker import Outcome, Work

if TYPE_CHECKING:
    from .config import Config
    from .stores.sqlite import SqliteStore
    from .workflow import Workflow

__all__ = ["DispatchResult", "dispatch_pass", "make_executor"]

# scheduler states of a job that ended without leaving a result, as a user reads them
_REASONS = {
    JobState.TIMEOUT: "the job hit its time limit",
    JobState.OUT_OF_MEMORY: "the job ran out of memory",
    JobState.CANCELLED: "the job was cancelled",
    JobState.NODE_FAIL: "the node running the job failed",
    JobState.PREEMPTED: "the job was preempted",
    JobState.FAILED: "the job failed before the task could report",
    JobState.COMPLETED: "the job ended without writing a result",
}
_LOST_AFTER_SECONDS = 120.0  # a job unknown to the scheduler this long after submission is lost


def make_executor(spec: str | Executor | Mapping[str, Any] | None, config: Config) -> Executor:
    """An executor from a name, a recorded description, or the config's `[executor] mode`."""
    from .config import MODE_ALIASES

    if isinstance(spec, Executor):
        return spec
    if isinstance(spec, Mapping):
        mode = str(spec.get("mode", "sbatch"))
        commands: Mapping[str, Any] = spec.get("commands", {})
    else:
        mode = spec or config.mode
        commands = {k: getattr(config, k) for k in _COMMANDS}
    mode = MODE_ALIASES.get(mode, mode)
    if mode == "sbatch":
        from .executors.slurm import SlurmExecutor

        return SlurmExecutor(**{k: commands.get(k) for k in _SLURM_COMMANDS})
    if mode == "local":
        from .executors.local import LocalExecutor

        return LocalExecutor()
    if mode == "dry-run":
        from .executors.dryrun import DryRunExecutor

        return DryRunExecutor()
    known = "sbatch (slurm), local, dry-run"
    if mode in ("qsub-pbs", "bsub", "qsub-sge", "flux"):
        raise ValidationError(
            f"executor '{mode}' is not available in this version of reflow; use one of: {known}"
        )
    raise ValidationError(f"unknown executor '{mode}': use one of: {known}")


_SLURM_COMMANDS = ("sbatch", "sacct", "squeue", "scancel", "scontrol")
_COMMANDS = (*_SLURM_COMMANDS, "qsub", "qstat", "qdel", "qacct", "bsub", "bjobs", "bkill", "flux")


def executor_record(executor: Executor) -> dict[str, Any]:
    """What a later dispatcher pass needs to rebuild the executor."""
    commands = {
        k: getattr(executor, k) for k in _COMMANDS if isinstance(getattr(executor, k, None), str)
    }
    mode = {"slurm": "sbatch"}.get(executor.name, executor.name)
    return {"mode": mode, "commands": commands}


class DispatchResult:
    """What one pass did: jobs submitted, instances ingested, the run's state."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self.ingested = 0
        self.failed_by_scheduler = 0
        self.state: RunState = RunState.RUNNING
        self.dispatcher: str | None = None
        self.reset = 0


def _tail(path: Path, lines: int = 5) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 4096))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _ingest(store: SqliteStore, run_id: str, run_dir: Path) -> int:
    """Record every result file of the run in one transaction, then remove the files."""
    outcomes: list[Outcome] = []
    paths: list[Path] = []
    for path, item in read_results(run_dir, run_id):
        if isinstance(item, Outcome):
            outcomes.append(item)
            paths.append(path)
        else:
            print(f"reflow: {item}", file=sys.stderr)
    if not outcomes:
        return 0
    store.record_outcomes(
        run_id,
        [
            (
                o.task,
                o.index,
                o.attempt,
                "SUCCESS" if o.ok else "FAILED",
                o.output,
                o.output_hash,
                o.error,
                o.started,
                o.finished,
            )
            for o in outcomes
        ],
    )
    for path in paths:  # the store has them now
        with contextlib.suppress(OSError):
            path.unlink()
    return len(outcomes)


def _base_job(job_id: str) -> str:
    return job_id.split("_", 1)[0]


def _reconcile(
    store: SqliteStore, run_id: str, run_dir: Path, executor: Executor, *, wait: bool
) -> tuple[int, set[str]]:
    """Fail in-flight instances whose jobs ended without a result; return (failed, live jobs).

    With `wait`, ask again for a few seconds while the scheduler still calls
    ended jobs running (sacct lags squeue by up to a second).
    """
    failed_total = 0
    for attempt in range(6 if wait else 1):
        flight = store.in_flight(run_id)
        if not flight:
            return failed_total, set()
        jobs = sorted({_base_job(j) for *_, j, _ in flight if j})
        states: dict[str, JobStatus] = executor.states(jobs) if jobs else {}
        now = time.time()
        running: list[tuple[str, int, int]] = []
        failed: list[tuple[str, int, int, str]] = []
        live: set[str] = set()
        for task, index, att, state, job, submitted in flight:
            status = states.get(job or "") or states.get(_base_job(job or ""))
            if status is None or not status.state.final:
                if status is None and submitted and now - submitted > _LOST_AFTER_SECONDS:
                    failed.append(
                        (
                            task,
                            index,
                            att,
                            f"the scheduler no longer knows job {job}, and it left no result",
                        )
                    )
                    continue
                live.add(_base_job(job or ""))
                if status is not None and status.state is JobState.RUNNING and state == "SUBMITTED":
                    running.append((task, index, att))
                continue
            reason = _REASONS.get(status.state, "the job ended without a result")
            detail = f"{reason} ({executor.name}: job {job} {status.reason or status.state.value}"
            detail += f", exit code {status.exit_code})" if status.exit_code else ")"
            tail = _tail(log_paths(run_dir, task, index)[1])
            failed.append(
                (task, index, att, detail + (f"\nlast lines of stderr:\n{tail}" if tail else ""))
            )
        if running:
            store.mark_job_running(run_id, running)
        if failed:
            # a result may have landed between the scan and the query: it wins
            _ingest(store, run_id, run_dir)
            now = time.time()
            still = {(t, i, a) for t, i, a, *_ in store.in_flight(run_id)}
            rows = [
                (t, i, a, "FAILED", None, None, why, None, now)
                for t, i, a, why in failed
                if (t, i, a) in still
            ]
            store.record_outcomes(run_id, rows)
            failed_total += len(rows)
        if not wait or not live:
            return failed_total, live
        time.sleep(1.0 + attempt * 0.5)
        _ingest(store, run_id, run_dir)
    return failed_total, live


def _resources(
    wf: Workflow,
    task: str,
    count: int,
    config_options: Mapping[str, Any],
    native: str,
    log: str,
    workdir: str | None,
    dependencies: Sequence[str] = (),
) -> JobResources:
    spec = wf.tasks[task]
    partition, account, extra = merge_options(spec.options, config_options, native)
    return JobResources(
        name=f"{wf.name}.{task}",
        cpus=spec.cpus,
        time=spec.time,
        mem=spec.mem,
        partition=partition,
        account=account,
        extra=extra,
        array_size=count if spec.array else None,
        array_parallelism=spec.array_parallelism if spec.array else None,
        dependencies=tuple(dependencies),
        stdout=log,
        stderr=log,
        workdir=workdir,
    )


def dispatch_pass(
    wf: Workflow,
    store: SqliteStore,
    run_id: str,
    executor: Executor,
    *,
    config: Config,
    retry: bool = False,
    retry_tasks: Sequence[str] | None = None,
    verify: bool | None = None,
    wait: bool = False,
    chain: bool = True,
) -> DispatchResult:
    """One pass of the dispatcher over a run (see the module docstring)."""
    result = DispatchResult()
    info = store.get_run(run_id)
    options: dict[str, Any] = info["options"] if isinstance(info["options"], dict) else {}
    run_dir = Path(info["run_dir"])
    graph = wf.validate()
    from .workflow import resolve_params

    params = resolve_params(graph, info["params"] if isinstance(info["params"], dict) else {})
    result.ingested = _ingest(store, run_id, run_dir)
    failed, live = _reconcile(store, run_id, run_dir, executor, wait=wait)
    result.failed_by_scheduler = failed
    run_state = store.get_run(run_id)["status"]
    engine = Engine(
        graph,
        store,
        run_id,
        params=params,
        run_dir=run_dir,
        force=bool(options.get("force")),
        force_tasks=options.get("force_tasks") or (),
        verify=bool(options.get("verify")) if verify is None else verify,
        retry_tasks=retry_tasks,
        on_error=str(options.get("on_error", "continue")),
        resume=True,
        keep_in_flight=True,
    )
    if run_state == RunState.CANCELLED.value:
        engine.stop(cancelled=True)
    works = engine.advance()
    by_task: dict[str, list[Work]] = {}
    for w in works:
        by_task.setdefault(w.task, []).append(w)
    origin = options.get("origin") or {}
    python = str(options.get("python") or config.python)
    submit_options = dict(options.get("submit_options") or config.submit_options)
    native = "queue" if executor.name in ("pbs", "lsf", "sge") else "partition"
    limit = executor.max_array_size()
    submitted: list[str] = []
    for task, items in by_task.items():
        step = len(items) if not limit else max(1, limit)
        for chunk_no, start in enumerate(range(0, len(items), step)):
            chunk = items[start : start + step]
            wave = (
                run_files(run_dir, run_id, "work")
                / f"{task}.{max(chunk[0].index, 0)}.{chunk[0].attempt}.{chunk_no}.jsonl"
            )
            write_wave(wave, run_id, chunk)
            command = [
                python,
                "-m",
                "reflow.worker",
                "--wave",
                str(wave),
                "--run-dir",
                str(run_dir),
                "--origin",
                json.dumps(origin),
                "--workflow",
                wf.name,
            ]
            log_dir = run_dir / "logs" / task / "scheduler"
            log_dir.mkdir(parents=True, exist_ok=True)
            log = executor.log_pattern(str(log_dir), wf.tasks[task].array)
            res = _resources(wf, task, len(chunk), submit_options, native, log, options.get("cwd"))
            job = executor.submit(command, res)
            submitted.append(job)
            spec = wf.tasks[task]
            store.mark_submitted(
                run_id,
                [
                    (w.task, w.index, w.attempt, executor.element_id(job, k) if spec.array else job)
                    for k, w in enumerate(chunk)
                ],
            )
    result.jobs = submitted
    result.reset = engine.reset
    if engine.in_flight == 0:
        state = engine.final_state()
        if run_state == RunState.CANCELLED.value:
            state = RunState.CANCELLED
        store.set_dispatcher(run_id, None)
        store.set_run_status(run_id, state.value, release=True)
        result.state = state
        return result
    if chain:
        waits = submitted or sorted(live)
        result.dispatcher = _chain(wf, store, run_id, executor, config, options, run_dir, waits)
    return result


def _chain(
    wf: Workflow,
    store: SqliteStore,
    run_id: str,
    executor: Executor,
    config: Config,
    options: Mapping[str, Any],
    run_dir: Path,
    dependencies: Sequence[str],
) -> str:
    """Submit the next dispatcher pass as a small job behind `dependencies`."""
    python = str(options.get("python") or config.python)
    command = [
        python,
        "-m",
        "reflow.dispatch",
        "--run-id",
        run_id,
        "--store",
        str(store.path),
        "--origin",
        json.dumps(options.get("origin") or {}),
        "--workflow",
        wf.name,
    ]
    log_dir = run_dir / "logs" / "_dispatcher"
    log_dir.mkdir(parents=True, exist_ok=True)
    partition, account, _ = merge_options(
        {}, dict(options.get("submit_options") or {}), "partition"
    )
    res = JobResources(
        name=f"{wf.name}.dispatch",
        cpus=config.dispatch_cpus,
        time=config.dispatch_time,
        mem=config.dispatch_mem,
        partition=partition,
        account=account,
        dependencies=tuple(dependencies),
        stdout=executor.log_pattern(str(log_dir), False),
        stderr=executor.log_pattern(str(log_dir), False),
        workdir=options.get("cwd"),
    )
    job = executor.submit(command, res)
    store.set_dispatcher(run_id, job)
    return job


def main(argv: Sequence[str] | None = None) -> int:
    """One chained dispatcher pass, run as a scheduler job."""
    import argparse

    from .config import load_config
    from .loader import load_workflow
    from .stores.sqlite import SqliteStore

    parser = argparse.ArgumentParser(prog="python -m reflow.dispatch")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--workflow", required=True)
    ns = parser.parse_args(argv)
    config = load_config()
    store = SqliteStore(ns.store)
    info = store.get_run(ns.run_id)
    if info["status"] != RunState.RUNNING.value:
        print(f"reflow: run {ns.run_id} is {info['status']}; nothing to do")
        return 0
    options = info["options"] if isinstance(info["options"], dict) else {}
    executor = make_executor(options.get("executor"), config)
    wf = load_workflow(json.loads(ns.origin), ns.workflow)
    try:
        res = dispatch_pass(wf, store, ns.run_id, executor, config=config, wait=True)
    except ReflowError as exc:
        print(f"reflow: dispatcher pass failed: {exc}", file=sys.stderr)
        store.set_dispatcher(ns.run_id, None)
        store.set_run_status(ns.run_id, RunState.FAILED.value, release=True)
        return 1
    print(
        f"reflow: run {ns.run_id}: ingested {res.ingested}, failed by the scheduler "
        f"{res.failed_by_scheduler}, submitted {len(res.jobs)} jobs, state {res.state.value}"
        + (f", next dispatcher {res.dispatcher}" if res.dispatcher else "")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
