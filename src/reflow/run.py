"""Run: a handle on one run in the store: status, outputs, cancel and retry."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ReflowError, ValidationError
from .states import RunState
from .stores.sqlite import SqliteStore

if TYPE_CHECKING:
    from .workflow import Workflow

__all__ = ["Run"]


class Run:
    """One run of a workflow, as recorded in the store."""

    def __init__(self, run_id: str, store: SqliteStore, workflow: Workflow | None = None) -> None:
        self.run_id = run_id
        self.store = store
        self.workflow = workflow
        self.dry_run = False  # a dry-run submit: nothing recorded, nothing to ask about
        self._info: dict[str, Any] | None = None

    def __repr__(self) -> str:
        return f"Run({self.run_id!r}, state={self.state.value})"

    def info(self) -> dict[str, Any]:
        """The run's record (workflow, user, host, params, options, times, status)."""
        return self.store.get_run(self.run_id)

    @property
    def run_dir(self) -> Path:
        """The run directory: logs, files the tasks write, worker result files."""
        if self._info is None:
            self._info = self.info()
        return Path(self._info["run_dir"])

    @property
    def state(self) -> RunState:
        """The run's current state."""
        return RunState(self.info()["status"])

    def status(
        self, task: str | None = None, as_dict: bool = False, errors: bool = False
    ) -> dict[str, Any] | None:
        """Print the run's status, or return it as a dict with `as_dict=True`.

        The dict has keys `run`, `summary` (task -> state -> count), `instances`
        and `failed_instances` (each with task_name, array_index, state, job_id,
        error_text).
        """
        doc = status_dict(self.store, self.run_id, task)
        if as_dict:
            return doc
        from .render import render_status

        print(render_status(doc, errors=errors))
        return None

    def cancel(self, task: str | None = None) -> int:
        """Cancel the run's unfinished instances (of one task, or all); return how many."""
        info = self.info()
        if task is not None:
            _check_task(self.store, self.run_id, task)
        if info["executor"] != "foreground" and info["status"] == RunState.RUNNING.value:
            self._cancel_jobs(info, task)
        n = self.store.cancel_instances(self.run_id, task, "cancelled by the user")
        if task is None and info["status"] == RunState.RUNNING.value:
            self.store.set_run_status(self.run_id, RunState.CANCELLED.value, release=True)
        return n

    def _cancel_jobs(self, info: dict[str, Any], task: str | None) -> None:
        """Cancel the scheduler jobs of the run (of one task), the dispatcher included."""
        from .config import load_config
        from .dispatch import make_executor

        options = info["options"] if isinstance(info["options"], dict) else {}
        executor = make_executor(options.get("executor"), load_config())
        jobs = [
            j
            for t, _, _, _, j, _ in self.store.in_flight(self.run_id)
            if j and (task is None or t == task)
        ]
        # whole array jobs when every element of theirs goes, elements otherwise
        ids = sorted({executor.job_of(j) for j in jobs}) if task is None else sorted(set(jobs))
        if task is None and info.get("dispatcher"):
            ids.append(str(info["dispatcher"]))
            self.store.set_dispatcher(self.run_id, None)
        if ids:
            executor.cancel(ids)

    def retry(self, task: str | None = None, verify: bool = True) -> int:
        """Rerun failed, cancelled and skipped instances (of `task`, or all).

        For a local run this resumes in the foreground; reused upstream outputs
        are verified first (`verify=True`).  Returns how many instances were reset.
        """
        if self.workflow is None:
            raise ReflowError(
                f"retrying run '{self.run_id}' needs its workflow: use the pipeline script "
                f"('python pipeline.py retry {self.run_id}') or Run(..., workflow=wf)"
            )
        self._info = None
        return self.workflow._resume(self, tasks=None if task is None else [task], verify=verify)

    def output(self, task: str) -> Any:
        """The output of singleton task `task`."""
        return self.store.get_singleton_output(self.run_id, task)

    def outputs(self, task: str) -> list[Any]:
        """The outputs of array task `task`, in index order."""
        return self.store.get_array_outputs(self.run_id, task)


def _check_task(store: SqliteStore, run_id: str, task: str) -> None:
    names = [n for n, _, _ in store.task_specs(run_id)]
    if task not in names:
        import difflib

        close = difflib.get_close_matches(task, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValidationError(
            f"run '{run_id}' has no task '{task}'.{hint} Its tasks: {', '.join(names)}"
        )


def status_dict(store: SqliteStore, run_id: str, task: str | None = None) -> dict[str, Any]:
    """The status of a run as plain data (see `Run.status`)."""
    info = store.get_run(run_id)
    if task is not None:
        _check_task(store, run_id, task)
    summary = store.summary(run_id)
    order = [n for n, _, _ in store.task_specs(run_id)]
    tasks = [n for n in order if task is None or n == task]
    cached = store.cached_counts(run_id)
    instances = store.instances(run_id, task=task)
    warnings: list[str] = []
    if info["status"] == RunState.RUNNING.value:
        warnings.extend(_liveness(store, info, instances))
    live_summary: dict[str, dict[str, int]] = {}
    for inst in instances:
        if inst["task_name"] in tasks:
            counts = live_summary.setdefault(inst["task_name"], {})
            counts[inst["state"]] = counts.get(inst["state"], 0) + 1
    return {
        "run": info,
        "tasks": tasks,
        "summary": {n: live_summary.get(n, summary.get(n, {})) for n in tasks},
        "cached": {n: cached.get(n, 0) for n in tasks},
        "instances": instances,
        "failed_instances": [
            i for i in instances if i["state"] in ("FAILED", "CANCELLED", "SKIPPED")
        ],
        "warnings": warnings,
    }


def _liveness(
    store: SqliteStore, info: dict[str, Any], instances: list[dict[str, Any]]
) -> list[str]:
    """Why a RUNNING run may not be moving, with live job states from one scheduler query.

    Instances whose jobs the scheduler reports running are shown RUNNING.
    """
    run_id = info["run_id"]
    if info["executor"] == "foreground":
        from .workflow import owner_alive

        if info["owner_pid"] is not None and not owner_alive(
            info["owner_host"], info["owner_pid"], info["owner_start"]
        ):
            return [
                f"the process that was running this run (pid {info['owner_pid']} on "
                f"{info['owner_host']}) is gone; resume it with 'retry {run_id}'"
            ]
        return []
    from .config import load_config
    from .dispatch import make_executor
    from .errors import ReflowError

    options = info["options"] if isinstance(info["options"], dict) else {}
    jobs = sorted(
        {i["job_id"] for i in instances if i["job_id"] and i["state"] in ("SUBMITTED", "RUNNING")}
    )
    dispatcher = info.get("dispatcher")
    try:
        executor = make_executor(options.get("executor"), load_config())
        bases = sorted({executor.job_of(j) for j in jobs} | ({dispatcher} if dispatcher else set()))
        states = executor.states(bases) if bases else {}
    except ReflowError as exc:
        return [f"cannot ask the scheduler about the run's jobs: {exc}"]
    for inst in instances:
        status = states.get(inst["job_id"] or "")
        if status is not None:
            inst["job_state"] = status.state.value
            if inst["state"] == "SUBMITTED" and status.state.value == "RUNNING":
                inst["state"] = "RUNNING"
    if not dispatcher:
        return [
            f"no dispatcher job is queued for this run, so it will not move on its own; "
            f"resume it with 'retry {run_id}'"
        ]
    status = states.get(dispatcher)
    if status is not None and status.state.final:
        return [
            f"the dispatcher job {dispatcher} ended ({status.reason or status.state.value}) "
            f"but the run is not finished; resume it with 'retry {run_id}'"
        ]
    return []
