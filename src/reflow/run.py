"""Run: a handle on one run in the store: status, outputs, cancel and retry."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .errors import ReflowError, ValidationError, error_line
from .owner import FOREGROUND
from .states import RunState

if TYPE_CHECKING:  # the store loads when a Run is made from one, not with `import reflow`
    from .stores import Store
    from .wiring import Pipeline

__all__ = ["Run"]


class Run:
    """One run of a workflow, as recorded in the store."""

    def __init__(self, run_id: str, store: Store, workflow: Pipeline | None = None) -> None:
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

        The dict has keys `run`, `tasks`, `summary` (task -> state -> count),
        `cached`, `retried` (task -> instances tried more than once), `retries`
        (task -> its `retries` option), `instances` (each with task_name,
        array_index, attempt, state, failure_kind, resources, job_id,
        error_text, output, updated_at, ...: see `Store.instances`),
        `failed_instances` (the FAILED ones), `cancelled_instances`,
        `skipped_instances`, `attempts` (the history of every instance tried
        more than once: see `attempts`), `warnings`, `dispatch_error` (why the
        last dispatcher pass failed, None if it did not) and `elapsed` (task ->
        seconds from its first start to its last end, or to now while it runs;
        None for a task that has not started).
        """
        if as_dict:
            return status_dict(self.store, self.run_id, task)
        from .render import render_status

        print(render_status(status_overview(self.store, self.run_id, task), errors=errors))
        return None

    def attempts(
        self, task: str | None = None, index: int | None = None, *, retried: bool = False
    ) -> list[dict[str, Any]]:
        """Every attempt of the run's instances (of `task`; of its element `index`), oldest first.

        In the run's task order, then by index and attempt; each a dict with
        task_name, array_index (None for a singleton), attempt, current, state,
        cached, failure_kind (one of `reflow.states.FAILURE_KINDS` for a failed
        attempt; None when not known), resources (what that attempt asked for:
        mem, time, cpus; None when not known), job_id, submitted_at,
        started_at, finished_at, error (the line of its error that says what
        went wrong) and error_text.  With `retried`, only the instances tried
        more than once.
        """
        return attempt_history(self.store, self.run_id, task, index, retried=retried)

    def cancel(self, task: str | None = None) -> int:
        """Cancel the run's unfinished instances (of one task, or all); return how many."""
        info = self.info()
        if task is not None:
            _check_task(self.store, self.run_id, task)
        # a run whose dispatcher pass failed is FAILED with its jobs still running
        if info["executor"] != FOREGROUND and (
            info["status"] == RunState.RUNNING.value or self.store.in_flight(self.run_id)
        ):
            self._cancel_jobs(info, task)
        n = self.store.cancel_instances(self.run_id, task, "cancelled by the user")
        if task is None and info["status"] == RunState.RUNNING.value:
            self.store.set_run_status(self.run_id, RunState.CANCELLED.value, release=True)
        return n

    def _cancel_jobs(self, info: dict[str, Any], task: str | None) -> None:
        """Cancel the scheduler jobs of the run (of one task), the dispatcher included."""
        from .config import load_config
        from .dispatch import adopt_unrecorded, make_executor

        options = info["options"] if isinstance(info["options"], dict) else {}
        executor = make_executor(options.get("executor"), load_config())
        # jobs a killed pass submitted without recording them: found first, cancelled too
        with contextlib.suppress(ReflowError, OSError):
            adopt_unrecorded(self.store, self.run_id, executor)
            info = self.store.get_run(self.run_id)  # the dispatcher may have been adopted
        jobs = [
            j
            for t, _, _, _, j, _ in self.store.in_flight(self.run_id)
            if j and (task is None or t == task)
        ]
        # whole array jobs when every element of theirs goes, elements otherwise
        ids = sorted({executor.job_of(j) for j in jobs}) if task is None else sorted(set(jobs))
        dispatcher = info.get("dispatcher") if task is None else None
        if dispatcher:
            ids.append(str(dispatcher))
        if ids:
            executor.cancel(ids)  # a SchedulerError leaves the run as it was
        if dispatcher:
            self.store.set_dispatcher(self.run_id, None)

    def retry(self, task: str | None = None, verify: bool = True) -> int:
        """Rerun failed, cancelled and skipped instances (of `task`, or all).

        For a local run this resumes in the foreground; reused upstream outputs
        are verified first (`verify=True`).  Returns how many instances were reset.
        A ReflowError when a scheduler run cannot be retried now (see `runner.resume`).
        """
        if self.workflow is None:
            raise ReflowError(
                f"retrying run '{self.run_id}' needs its workflow: use the pipeline script "
                f"('python pipeline.py retry {self.run_id}') or Run(..., workflow=wf)"
            )
        from .runner import resume

        self._info = None
        tasks = None if task is None else [task]
        return resume(self.workflow, self.run_id, self.store, tasks=tasks, verify=verify)

    def log(
        self, task: str, index: int | None = None, *, err: bool = False, attempt: int | None = None
    ) -> str:
        """What one instance wrote to stdout (stderr with `err=True`); "" when nothing.

        The latest attempt unless `attempt` is given.  A ValidationError says why
        there is nothing to show: an unknown task, a bad index or attempt, an
        instance that has not run (yet) or was reused from the cache.
        """
        return instance_log(self.store, self.run_id, task, index, err=err, attempt=attempt)

    def report(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the run's self-contained HTML report; return the file written.

        `path` defaults to `<run_id>.html` in the current directory; a directory
        gets that name inside it. See docs/report.md for what the page shows.
        """
        from .report import write_report

        return write_report(self.store, self.run_id, path)

    def why(self, task: str | None = None, index: int | None = None) -> list[str]:
        """Why each instance ran instead of being reused (or where it was reused from).

        Each reason is given against the instance's closest earlier self (same
        workflow, an earlier run, the same item or index): a parameter, an
        upstream output or the version that changed, a forced task,
        `cache=False`, a failed check of a cached output, a retried attempt, or
        no earlier instance at all.  Grouped per task when many instances share
        a reason; one line for the instance `task`[`index`].
        """
        from .explain import why_lines

        info = self.info()
        if index is not None and task is None:
            raise ValidationError("an index needs a task: why(task, index)")
        if task is not None:
            specs = {name: is_array for name, is_array, _ in self.store.task_specs(self.run_id)}
            _check_task_in(list(specs), self.run_id, task)
            if index is not None:
                _instance_where(self.store, info["run_id"], task, index, specs[task])
        return why_lines(self.store, self.run_id, task, index)

    def output(self, task: str) -> Any:
        """The output of singleton task `task`."""
        return self.store.get_singleton_output(self.run_id, task)

    def outputs(self, task: str) -> list[Any]:
        """The outputs of array task `task`, in index order."""
        return self.store.get_array_outputs(self.run_id, task)


def failure_message(run: Run) -> str:
    """One line naming a run's failed instances and what the first one said."""
    failed = run.store.instances(run.run_id, states=("FAILED",))
    if not failed:
        return f"run '{run.run_id}' ended {run.state.value}"
    labels: list[str] = []
    for inst in failed:
        index = inst["array_index"]
        label = f"'{inst['task_name']}'" + ("" if index is None else f"[{index}]")
        if label not in labels:
            labels.append(label)
    shown = ", ".join(labels[:3]) + (f" and {len(labels) - 3} more" if len(labels) > 3 else "")
    return (
        f"task{'s' if len(labels) > 1 else ''} {shown} failed: "
        f"{error_line(failed[0]['error_text'])} (run '{run.run_id}': see "
        "err.run.status(errors=True); resume it with err.run.retry())"
    )


def _check_task(store: Store, run_id: str, task: str) -> None:
    _check_task_in([n for n, _, _ in store.task_specs(run_id)], run_id, task)


def _check_task_in(names: list[str], run_id: str, task: str) -> None:
    if task not in names:
        import difflib

        close = difflib.get_close_matches(task, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValidationError(
            f"run '{run_id}' has no task '{task}'.{hint} Its tasks: {', '.join(names)}"
        )


# ---------------------------------------------------------------------- logs


def instance_log(
    store: Store,
    run_id: str,
    task: str,
    index: int | None,
    *,
    err: bool = False,
    attempt: int | None = None,
) -> str:
    """What one attempt of an instance wrote (see `Run.log`), from the run directory."""
    from .results import read_log

    info = store.get_run(run_id)
    specs = {name: is_array for name, is_array, _ in store.task_specs(run_id)}
    _check_task_in(list(specs), run_id, task)
    where = _instance_where(store, run_id, task, index, specs[task])
    attempts = store.instance_attempts(run_id, task, -1 if index is None else index)
    if not attempts:
        raise ValidationError(f"no output recorded for {where}: it has not run yet")
    row = attempts[-1]
    if attempt is not None:
        found = [a for a in attempts if a.attempt == attempt]
        if not found:
            have = ", ".join(str(a.attempt) for a in attempts)
            raise ValidationError(f"{where} has no attempt {attempt} (its attempts: {have})")
        row = found[0]
    label = f"{where} (attempt {row.attempt}, {row.state})"
    if row.cached:
        raise ValidationError(
            f"no output recorded for {label}: it was reused from the cache, it did not run"
        )
    text = read_log(info["run_dir"], run_id, task, row.array_index, row.attempt, err)
    if text is not None:
        return text
    if row.started is None:
        raise ValidationError(f"no output recorded for {label}: it did not run")
    if row.finished is None:
        later = ": a local run keeps what an instance wrote when it ends"
        raise ValidationError(
            f"no output recorded for {label} yet"
            + (later if info["executor"] == FOREGROUND else "")
        )
    return ""  # it ran and wrote nothing


def _instance_where(store: Store, run_id: str, task: str, index: int | None, is_array: bool) -> str:
    """`task` or `task[index]`, once the index is checked against the task."""
    if not is_array:
        if index is not None:
            raise ValidationError(f"task '{task}' is not an array task: leave out the index")
        return f"'{task}'"
    count = store.expected_counts(run_id).get(task)
    if index is None:
        known = f" (0..{count - 1})" if count else ""
        raise ValidationError(
            f"task '{task}' is an array task: give the INDEX of an element{known}"
        )
    if count is None:
        raise ValidationError(
            f"no output recorded for '{task}[{index}]': the task has not fanned out yet"
        )
    if not 0 <= index < count:
        span = f"0..{count - 1}" if count else "none: its fan-out was empty"
        raise ValidationError(
            f"task '{task}' of run '{run_id}' has no element {index} (its elements: {span})"
        )
    return f"'{task}[{index}]'"


# ---------------------------------------------------------------------- status
#
# A run may have 100,000 instances: `status` counts them with one aggregate
# query and lists only the failed, cancelled and skipped ones; `status --json`
# streams the instances a few thousand at a time, so its memory stays flat.

#: the states `status` lists instance by instance, beneath their task
PROBLEM_STATES = ("FAILED", "CANCELLED", "SKIPPED")


def status_dict(store: Store, run_id: str, task: str | None = None) -> dict[str, Any]:
    """The status of a run as plain data, every instance included (see `Run.status`)."""
    head = _status_head(store, run_id, task)
    instances = store.instances(run_id, task=task)
    _show_live(instances, head.live)
    return head.doc(
        instances=instances,
        **{
            _LISTS[state]: [i for i in instances if i["state"] == state] for state in PROBLEM_STATES
        },
        attempts=attempt_history(store, run_id, task, retried=True),
    )


#: the status dict's list of the instances in each problem state
_LISTS = {
    "FAILED": "failed_instances",
    "CANCELLED": "cancelled_instances",
    "SKIPPED": "skipped_instances",
}


def status_overview(store: Store, run_id: str, task: str | None = None) -> dict[str, Any]:
    """What `status` shows: `status_dict` without the `instances` list.

    (`_LISTS`, the keys of the problem lists, is defined below `status_dict`.)

    Counts come from one aggregate query; only the failed, cancelled and
    skipped instances are read (task by task, in id order within each task),
    so the cost does not grow with the number of instances that succeeded.
    """
    head = _status_head(store, run_id, task)
    failed = [
        inst
        for name in head.tasks
        if any(s in PROBLEM_STATES for s in head.summary[name])  # known from the counts
        for inst in store.instances(run_id, task=name, states=PROBLEM_STATES)
    ]
    _show_live(failed, head.live)
    _budget_used(store, head, failed)
    return head.doc(
        **{key: [i for i in failed if i["state"] == state] for state, key in _LISTS.items()}
    )


def _budget_used(store: Store, head: _Head, instances: list[dict[str, Any]]) -> None:
    """Tell what failed instances used of their retry budget, and which will be tried again.

    Past their first attempt: `retries_used` and `requeues_used`, the automatic
    attempts in a row that led to the current one (`retrying.used_before`; a
    manual `retry` starts a new row).  While the run goes on, `retry_pending`
    for a failure the rule will try again (a cluster run keeps it FAILED until
    the dispatcher pass that submits its next attempt, after its delay).  One
    read of the kept reasons per task with such instances.
    """
    from .retrying import REQUEUED, used_before

    running = head.info["status"] == RunState.RUNNING.value
    later: dict[str, list[tuple[dict[str, Any], bool]]] = {}
    for inst in instances:
        if inst["state"] != "FAILED":
            continue
        kind = inst.get("failure_kind") or "ERROR"
        # one that never ran (no kind, no start: its task cannot start) is not retried
        ran = inst.get("failure_kind") is not None or inst.get("started_at") is not None
        waits = running and ran and kind in head.retry_on.get(inst["task_name"], ())
        if inst["attempt"] > 1 or waits:
            later.setdefault(inst["task_name"], []).append((inst, waits))
    requeues = None
    for name, insts in later.items():
        by_index: dict[int, dict[int, str]] = {}
        for (index, attempt), why in store.reasons(head.info["run_id"], name).items():
            by_index.setdefault(index, {})[attempt] = why
        for inst, waits in insts:
            index = -1 if inst["array_index"] is None else inst["array_index"]
            used = used_before(by_index.get(index, {}), inst["attempt"])
            inst["retries_used"], inst["requeues_used"] = used.retries, used.requeues
            if not waits:
                continue
            if (inst.get("failure_kind") or "ERROR") in REQUEUED:
                if requeues is None:
                    from .config import load_config

                    requeues = load_config().max_requeues
                inst["retry_pending"] = used.requeues < requeues
            else:
                inst["retry_pending"] = used.retries < head.retries.get(name, 0)


def write_status_json(
    store: Store,
    run_id: str,
    task: str | None,
    out: TextIO,
    *,
    attempts: tuple[str | None, int | None, bool] | None = None,
) -> None:
    """Write `status_dict` as JSON (`status --json`), streaming the instance lists.

    The instances are written one compact object a line; the rest is indented.
    `attempts`: (task, index, retried), which instances' history `attempts`
    holds (see `attempt_history`); by default those of `task` tried more than once.
    """
    import json

    head = _status_head(store, run_id, task)
    of, index, retried = (task, None, True) if attempts is None else attempts
    history = attempt_history(store, run_id, of, index, retried=retried)  # checked first
    hole = "\0reflow-instances\0"
    lists = {"instances": hole, **{key: hole for key in _LISTS.values()}, "attempts": hole}
    text = json.dumps(head.doc(**lists), indent=2, default=str).split(json.dumps(hole))
    if len(text) != len(lists) + 1:  # pragma: no cover - the marker cannot come from a store
        raise ReflowError("cannot write the status as JSON")
    out.write(text[0])
    _write_instances(out, store, run_id, task, None, head.live)
    for state, rest in zip(PROBLEM_STATES, text[1:-2], strict=True):
        out.write(rest)
        if any(state in counts for counts in head.summary.values()):
            _write_instances(out, store, run_id, task, (state,), head.live)
        else:
            out.write("[]")
    out.write(text[-2])
    _write_list(out, [history])
    out.write(text[-1] + "\n")


def attempt_history(
    store: Store,
    run_id: str,
    task: str | None = None,
    index: int | None = None,
    *,
    retried: bool = False,
) -> list[dict[str, Any]]:
    """The attempts of a run's instances (see `Run.attempts`), in the run's task order.

    A task the run does not have, an index of a singleton or out of range:
    a ValidationError that says so.
    """
    specs = {name: is_array for name, is_array, _ in store.task_specs(run_id)}
    if task is not None:
        _check_task_in(list(specs), run_id, task)
        if index is not None:
            _instance_where(store, run_id, task, index, specs[task])
    elif index is not None:
        raise ValidationError("an index needs a task: attempts(task, index)")
    rows = store.attempt_history(run_id, task=task, index=index, retried=retried)
    position = {name: k for k, name in enumerate(specs)}
    rows.sort(key=lambda r: (position.get(r["task_name"], len(position)), r["task_name"]))
    for row in rows:  # stable: index and attempt order kept within each task
        row["error"] = error_line(row["error_text"]) if row["error_text"] else None
    return rows


class _Head:
    """The part of a run's status that does not list instances."""

    def __init__(
        self,
        info: dict[str, Any],
        tasks: list[str],
        summary: dict[str, dict[str, int]],
        cached: dict[str, int],
        warnings: list[str],
        live: dict[str, Any],
        elapsed: dict[str, float | None],
        retried: dict[str, int],
        retries: dict[str, int],
        retry_on: dict[str, tuple[str, ...]],
    ) -> None:
        self.info, self.tasks, self.summary, self.cached = info, tasks, summary, cached
        self.warnings, self.elapsed = warnings, elapsed
        self.live = live  # job id -> the scheduler's JobStatus, for a RUNNING cluster run
        self.retried, self.retries, self.retry_on = retried, retries, retry_on

    def doc(self, **lists: Any) -> dict[str, Any]:
        return {
            "run": self.info,
            "tasks": self.tasks,
            "summary": self.summary,
            "cached": self.cached,
            "retried": self.retried,
            "retries": self.retries,
            **lists,
            "warnings": self.warnings,
            "elapsed": self.elapsed,
            # why the run's last dispatcher pass failed (None: it did not)
            "dispatch_error": self.info.get("dispatch_error"),
        }


def _status_head(store: Store, run_id: str, task: str | None) -> _Head:
    info = store.get_run(run_id)
    specs = store.task_specs(run_id)
    order = [n for n, _, _ in specs]
    if task is not None:
        _check_task_in(order, run_id, task)
    tasks = [n for n in order if task is None or n == task]
    retries = {n: _retries_of(spec) for n, _, spec in specs if task is None or n == task}
    retry_on = {n: _retry_on(spec) for n, _, spec in specs if task is None or n == task}
    counts: dict[str, dict[str, int]] = {}
    cached: dict[str, int] = {}
    for name, by_state in store.status_counts(run_id).items():
        counts[name] = {state: n for state, (n, _) in by_state.items()}
        cached[name] = sum(reused for _, reused in by_state.values())
    warnings: list[str] = []
    live: dict[str, Any] = {}
    if info["status"] == RunState.RUNNING.value:
        warnings, live = _liveness(store, info, task, counts)
    elapsed = _elapsed(store, info, counts)
    retried = store.retried_counts(run_id)
    return _Head(
        info,
        tasks,
        {n: counts.get(n, {}) for n in tasks},
        {n: cached.get(n, 0) for n in tasks},
        warnings,
        live,
        {n: elapsed.get(n) for n in tasks},
        {n: retried.get(n, 0) for n in tasks},
        retries,
        retry_on,
    )


def _retries_of(spec: dict[str, Any]) -> int:
    """A recorded task spec's `retries` (0 without any, or for a run recorded before them)."""
    retry = spec.get("retry")
    n = retry.get("retries", 0) if isinstance(retry, dict) else 0
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else 0


def _retry_on(spec: dict[str, Any]) -> tuple[str, ...]:
    """A recorded task spec's `retry_on`: the default, all kinds, when it records none
    (a task without `retries` still has its preempted attempts requeued)."""
    from .states import FAILURE_KINDS

    retry = spec.get("retry")
    kinds = retry.get("retry_on") if isinstance(retry, dict) else None
    if not isinstance(kinds, list):
        return FAILURE_KINDS
    return tuple(k for k in kinds if isinstance(k, str))


#: the states an instance ends in
_FINAL = frozenset({"SUCCESS", "FAILED", "CANCELLED", "SKIPPED"})


def _elapsed(
    store: Store, info: dict[str, Any], counts: dict[str, dict[str, int]], now: float | None = None
) -> dict[str, float]:
    """task -> seconds from its first start to its last end (to now while it runs)."""
    import time

    now = time.time() if now is None else now
    live = info["status"] == RunState.RUNNING.value
    out: dict[str, float] = {}
    for task, (first, last) in store.task_times(info["run_id"]).items():
        running = live and any(s not in _FINAL for s in counts.get(task, {}))
        end = now if running or last is None else last
        out[task] = max(0.0, end - first)
    return out


def task_progress(store: Store, run_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The run's record and, per task, its progress: what `status --watch` shows.

    Each row: task, done (instances in a final state), total (None before the
    task fans out), failed, finished, elapsed (see `Run.status`: None before it
    starts), rate (instances that ran, per second of elapsed time; cache hits
    take no time and are left out) and eta (seconds, None when unknown).  Read
    from the store by aggregate queries (no scheduler is asked).
    """
    info = store.get_run(run_id)
    order = [n for n, _, _ in store.task_specs(run_id)]
    by_task = store.status_counts(run_id)
    expected = store.expected_counts(run_id)
    counts = {t: {s: n for s, (n, _) in c.items()} for t, c in by_task.items()}
    elapsed = _elapsed(store, info, counts)
    rows = []
    for task in order:
        states = by_task.get(task, {})
        done = sum(n for s, (n, _) in states.items() if s in _FINAL)
        ran = done - sum(c for s, (_, c) in states.items() if s in _FINAL)
        total = expected.get(task, sum(n for n, _ in states.values()) if states else None)
        finished = total is not None and done >= total
        took = elapsed.get(task)
        rate = ran / took if took and ran else None
        remaining = None if total is None else total - done
        eta = remaining / rate if rate and remaining and not finished else None
        rows.append(
            {
                "task": task,
                "done": done,
                "total": total,
                "failed": sum(n for s, (n, _) in states.items() if s == "FAILED"),
                "finished": finished,
                "elapsed": took,
                "rate": rate,
                "eta": eta,
            }
        )
    return info, rows


def _show_live(instances: list[dict[str, Any]], live: dict[str, Any]) -> None:
    """Give instances whose jobs the scheduler reported their job state (SUBMITTED -> RUNNING)."""
    if not live:
        return
    for inst in instances:
        status = live.get(inst["job_id"] or "")
        if status is not None:
            inst["job_state"] = status.state.value
            if inst["state"] == "SUBMITTED" and status.state.value == "RUNNING":
                inst["state"] = "RUNNING"


def driver_gone(info: dict[str, Any]) -> bool:
    """Whether the process running a local run (`info`: its record) is gone."""
    if info["executor"] != FOREGROUND or info["owner_pid"] is None:
        return False
    from .owner import owner_alive

    return not owner_alive(info["owner_host"], info["owner_pid"], info["owner_start"])


def _liveness(
    store: Store, info: dict[str, Any], task: str | None, counts: dict[str, dict[str, int]]
) -> tuple[list[str], dict[str, Any]]:
    """Why a RUNNING run may not be moving, and live job states from one scheduler query.

    Returns (warnings, job id -> JobStatus); `counts` (task -> state -> count)
    is updated: instances whose jobs the scheduler reports running count as RUNNING.
    """
    run_id = info["run_id"]
    if info["executor"] == FOREGROUND:
        if driver_gone(info):
            return [
                f"the process that was running this run (pid {info['owner_pid']} on "
                f"{info['owner_host']}) is gone; resume it with 'retry {run_id}'"
            ], {}
        return [], {}
    from .config import load_config
    from .dispatch import adopt_unrecorded, make_executor

    options = info["options"] if isinstance(info["options"], dict) else {}
    warnings: list[str] = []
    try:
        executor = make_executor(options.get("executor"), load_config())
        # jobs a killed pass submitted without recording them are adopted first
        try:
            unsettled = adopt_unrecorded(store, run_id, executor)
        except OSError:  # the run's files are not ours to change: its own next pass settles
            unsettled = 0
        if unsettled:
            warnings.append(
                "a job a killed dispatcher pass may have submitted can be neither found nor "
                "ruled out yet; nothing more is submitted until the scheduler can tell"
            )
        flight = [
            (t, state, job)
            for t, _, _, state, job, _ in store.in_flight(run_id)
            if job and (task is None or t == task)
        ]
        jobs = sorted({job for _, _, job in flight})
        dispatcher = store.get_run(run_id).get("dispatcher")
        bases = sorted({executor.job_of(j) for j in jobs} | ({dispatcher} if dispatcher else set()))
        states: dict[str, Any] = executor.states(bases) if bases else {}
    except ReflowError as exc:
        return [*warnings, f"cannot ask the scheduler about the run's jobs: {exc}"], {}
    for t, state, job in flight:
        status = states.get(job)
        by_state = counts.get(t, {})  # read a moment earlier: the run may have moved on
        running = status is not None and status.state.value == "RUNNING"
        if state == "SUBMITTED" and running and by_state.get("SUBMITTED"):
            by_state["SUBMITTED"] -= 1
            if not by_state["SUBMITTED"]:
                del by_state["SUBMITTED"]
            by_state["RUNNING"] = by_state.get("RUNNING", 0) + 1
    if not dispatcher:
        return [
            *warnings,
            f"no dispatcher job is queued for this run, so it will not move on its own; "
            f"resume it with 'retry {run_id}'",
        ], states
    status = states.get(dispatcher)
    if status is not None and status.state.final:
        return [
            *warnings,
            f"the dispatcher job {dispatcher} ended ({status.reason or status.state.value}) "
            f"but the run is not finished; resume it with 'retry {run_id}'",
        ], states
    return warnings, states


# -- streaming the instances as JSON


def _write_instances(
    out: TextIO,
    store: Store,
    run_id: str,
    task: str | None,
    states: Sequence[str] | None,
    live: dict[str, Any],
) -> None:
    """Write a JSON list of instances (one compact object a line) at the second level."""

    def chunks() -> Iterator[list[dict[str, Any]]]:
        for chunk in store.iter_instances(run_id, task=task, states=states):
            _show_live(chunk, live)
            yield chunk

    _write_list(out, chunks())


def _write_list(out: TextIO, chunks: Iterable[list[dict[str, Any]]]) -> None:
    """Write a JSON list of dicts, one compact object a line, at the second level."""
    import json

    from . import codec

    # ASCII, as `json.dumps` writes; an output that is not plain JSON (a Path, a set,
    # a date) is written as the typed JSON the store keeps
    dumps = json.JSONEncoder(separators=(",", ":"), default=codec.encode).encode
    sep = ",\n    "
    first = True
    for chunk in chunks:
        if chunk:
            out.write(("[\n    " if first else sep) + sep.join(map(dumps, chunk)))
            first = False
    out.write("[]" if first else "\n  ]")
