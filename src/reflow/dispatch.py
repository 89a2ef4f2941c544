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
import math
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import journal
from .engine import Engine, fewer_collections
from .errors import ReflowError, ValidationError
from .executors._common import inheriting, seconds, signal_name, time_text
from .executors.base import (
    Capacity,
    Executor,
    JobResources,
    JobState,
    JobStatus,
    SchedulerError,
    merge_options,
)
from .instances import Outcome, Work
from .results import (
    Stamp,
    log_paths,
    remove_results,
    run_files,
    scan_results,
    write_wave,
)
from .retrying import Limits, config_limits, first_resources
from .states import RunState
from .wiring import Graph, Mode, resolve_params

if TYPE_CHECKING:
    from .config import Config
    from .stores import Store
    from .stores.base import Finished
    from .wiring import Pipeline

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
# the failure kind of an instance whose job the scheduler ended so (anything else: ERROR)
_KINDS = {
    JobState.OUT_OF_MEMORY: "OOM",
    JobState.TIMEOUT: "TIMEOUT",
    JobState.NODE_FAIL: "NODE_FAIL",
    JobState.PREEMPTED: "PREEMPTED",
}
_LOST_AFTER_SECONDS = 120.0  # a job unknown to the scheduler this long after submission is lost
_DEFAULT_SLOTS = 64  # array elements at once when the scheduler does not say how many fit
_MIN_ELEMENT_SECONDS = 3.0  # packs keep elements at least this busy (start-up is ~0.1 s)
_SUBMIT_WAIT = 60.0  # how long a pass waits for a submit command a killed pass left running
_WAIT_SECONDS = 20.0  # a pass that cannot settle a job now chains the next this much later


def _times(time: str | None, count: int) -> str | None:
    """The time limit of `count` instances of `time` run one after the other."""
    if time is None or count == 1:
        return time
    return time_text(seconds(time) * count)


def _sum_times(times: Sequence[str | None]) -> str | None:
    """The time limit of tasks run one after the other (None: one of them has none)."""
    if any(t is None for t in times):
        return None
    return time_text(sum(seconds(t) for t in times if t is not None))


def make_executor(spec: str | Executor | Mapping[str, Any] | None, config: Config) -> Executor:
    """An executor from a name, a recorded description, or the config's `[executor] mode`."""
    import importlib

    from .config import MODE_ALIASES
    from .executors.base import EXECUTORS

    if isinstance(spec, Executor):
        return spec
    commands = {k: getattr(config, k, None) for k in _COMMANDS}
    if isinstance(spec, Mapping):
        mode = str(spec.get("mode", "sbatch"))
        recorded = spec.get("settings", {})
        settings: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    else:
        mode = spec or config.mode
        settings = {}
    mode = MODE_ALIASES.get(mode, mode)
    known = ", ".join(sorted(EXECUTORS))
    if mode not in EXECUTORS:
        raise ValidationError(f"unknown executor '{mode}': use one of: {known}")
    module, name = EXECUTORS[mode]
    # command paths always come from this process's configuration: a path read from a
    # shared store would let whoever can write the store choose what you run
    try:
        cls = getattr(importlib.import_module(f"reflow.executors.{module}"), name)
    except (ImportError, AttributeError):
        raise ValidationError(
            f"executor '{mode}' is not available in this version of reflow"
        ) from None
    executor: Executor = cls.create(commands, settings)
    return executor


_COMMANDS = (
    "sbatch",
    "sacct",
    "squeue",
    "scancel",
    "scontrol",
    "sinfo",
    "qsub",
    "qstat",
    "qdel",
    "qacct",
    "bsub",
    "bjobs",
    "bkill",
    "flux",
)


def command_env(executor: Executor, config: Config) -> dict[str, str]:
    """`REFLOW_<COMMAND>` for the scheduler commands `executor` was given itself.

    `SlurmExecutor(sbatch="/opt/slurm/bin/sbatch")` passed to `submit` names a
    command the configuration does not: the dispatcher jobs it submits are
    told through their environment (set by this process, the user's own),
    since a later pass never takes a command from the store.
    """
    env: dict[str, str] = {}
    for name in _COMMANDS:
        mine = getattr(executor, name, None)
        if isinstance(mine, str) and mine != (getattr(config, name, None) or name):
            env[f"REFLOW_{name.upper()}"] = mine
    return env


def executor_record(executor: Executor) -> dict[str, Any]:
    """What a later dispatcher pass needs to rebuild the executor (no command paths)."""
    return {"mode": executor.mode, "settings": executor.settings()}


class DispatchResult:
    """What one pass did: jobs submitted, instances ingested, the run's state."""

    def __init__(self) -> None:
        self.jobs: list[str] = []
        self.ingested = 0
        self.failed_by_scheduler = 0
        self.state: RunState = RunState.RUNNING
        self.dispatcher: str | None = None
        self.reset = 0
        #: jobs the pass could not settle now (the scheduler could not say): it waits
        self.unsettled = 0
        #: the journal held the pass back: nothing was decided, reset or submitted
        self.held = False


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


def _ingest(
    store: Store, run_id: str, run_dir: Path, recorded: dict[str, Stamp] | None = None
) -> int:
    """Record every new result file of the run in one transaction.

    The files read are added to `recorded` once the store has them, and are
    passed over by later ingests of the same pass; the pass removes them when
    it ends (`remove_results`), after the next wave is on its way.  Without
    `recorded` they are removed at once.  A pass killed before removing them
    leaves them to the next, whose ingest changes nothing: an outcome is never
    recorded over a SUCCESS or a CANCELLED instance, and a file recorded
    FAILED or SKIPPED says the same again.
    """
    read: dict[str, Stamp] = {}
    resolved: list[Outcome] = []
    rows: list[Finished] = []
    for path, item, stamp in scan_results(run_dir, run_id, recorded):
        if isinstance(item, str) or stamp is None:
            print(f"reflow: {item}", file=sys.stderr)
            continue
        read[path] = stamp
        if item.identity is not None:
            resolved.append(item)
        if item.cached_from is None:
            state = "SKIPPED" if item.skipped else "SUCCESS" if item.ok else "FAILED"
            rows.append(
                (
                    item.task, item.index, item.attempt, state, item.output, item.output_hash,
                    item.error, item.started, item.finished,
                    (item.kind or "ERROR") if state == "FAILED" else None,
                )
            )  # fmt: skip
    if not read:
        return 0
    with store.transaction():
        if resolved:  # identities computed in the job first, so the rows below carry them
            store.record_resolved(
                run_id,
                [
                    (
                        o.task, o.index, o.attempt, o.identity or "", None, o.cached_from,
                        o.started, o.finished,
                    )
                    for o in resolved
                ],
                [(o.identity or "", o.parts or "") for o in resolved],
            )  # fmt: skip
        store.record_outcomes(run_id, rows)
    # the store has them now
    if recorded is None:
        remove_results(read)
    else:
        recorded.update(read)
    return len(read)


def _failure_text(
    executor: Executor,
    run_dir: Path,
    run_id: str,
    where: tuple[str, int, int],
    job: str,
    status: JobStatus,
) -> tuple[str, str]:
    """(why an instance's job ended without a result, its failure kind).

    The reason, in the words a user needs, goes last: `status` shows an
    error's last line, as for a traceback.  `where`: the instance's (task,
    index, attempt).  The kind is the scheduler's (see `_KINDS`).
    """
    task, index, attempt = where
    scheduler_log = _tail(run_dir / "logs" / task / "scheduler" / f"{job}.log", 3)
    state = status.state
    if state is JobState.FAILED and "memory limit" in scheduler_log.lower():
        state = JobState.OUT_OF_MEMORY  # killed by the memory sampler, reported as FAILED
    reason = _REASONS.get(state, "the job ended without a result")
    code = status.exit_code
    said = status.reason or status.state.value
    if code and ":" in code and code.split(":", 1)[1] not in ("", "0"):
        number = int(code.split(":", 1)[1]) if code.split(":", 1)[1].isdigit() else 0
        said += f", killed by {signal_name(number)}" if number else f", exit code {code}"
    elif code:
        said += f", exit code {code}"
    parts = []
    stderr = _tail(log_paths(run_dir, run_id, task, index, attempt)[1])
    if stderr:
        parts.append(f"last lines of stderr:\n{stderr}")
    if scheduler_log:
        parts.append(f"last lines of the scheduler's log:\n{scheduler_log}")
    parts.append(f"{reason} ({executor.name}: job {job} {said})")
    return "\n".join(parts), _KINDS.get(state, "ERROR")


def _reconcile(
    store: Store,
    run_id: str,
    run_dir: Path,
    executor: Executor,
    *,
    wait_for: frozenset[str] = frozenset(),
    recorded: dict[str, Stamp] | None = None,
    graph: Graph | None = None,
) -> tuple[int, set[str], set[str]]:
    """Fail in-flight instances whose jobs ended without a result.

    Returns (failed, live jobs, unsure jobs): an unsure job is one the
    scheduler cannot tell about now (its accounting is down): it is neither
    failed nor called live, and the pass comes back for it later.

    `wait_for`: the jobs this dispatcher was chained behind, so they have
    ended; while the scheduler still calls one of them live (sacct lags squeue
    by up to a second) ask again for a few seconds.  Such a job that reads
    COMPLETED without having written its instance's result is asked about
    again too: Slurm's accounting can first record a killed element as
    COMPLETED 0:0 and only a moment later as FAILED 0:9.
    """
    failed_total = 0
    attempts = 6 if wait_for else 1
    unsure: set[str] = set()
    for attempt in range(attempts):
        doubt: set[str] = set()
        unsure = set()
        flight = store.in_flight(run_id)
        if not flight:
            return failed_total, set(), unsure
        jobs = sorted({executor.job_of(j) for *_, j, _ in flight if j})
        states: dict[str, JobStatus] = executor.states(jobs) if jobs else {}
        now = time.time()
        running: list[tuple[str, int, int]] = []
        failed: list[tuple[str, int, int, str]] = []
        kinds: dict[tuple[str, int, int], str] = {}
        live: set[str] = set()
        for task, index, att, state, job, submitted in flight:
            status = states.get(job or "") or states.get(executor.job_of(job or ""))
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
                if status is not None and status.state is JobState.UNKNOWN:
                    unsure.add(executor.job_of(job or ""))
                    continue
                live.add(executor.job_of(job or ""))
                if status is not None and status.state is JobState.RUNNING and state == "SUBMITTED":
                    running.append((task, index, att))
                continue
            base = executor.job_of(job or "")
            if status.state is JobState.COMPLETED and base in wait_for and attempt < attempts - 1:
                doubt.add(base)
                continue
            why, kinds[(task, index, att)] = _failure_text(
                executor, run_dir, run_id, (task, index, att), job or "", status
            )
            failed.append((task, index, att, why))
        if running:
            store.mark_job_running(run_id, running)
        if failed:
            # a result may have landed between the scan and the query: it wins
            _ingest(store, run_id, run_dir, recorded)
            now = time.time()
            still = {(t, i, a) for t, i, a, *_ in store.in_flight(run_id)}
            rows: list[Finished] = [
                (
                    t, i, a, state, None, None, why, None, now,
                    kinds.get((t, i, a), "ERROR") if state == "FAILED" else None,
                )
                for t, i, a, state, why in _skip_behind(store, run_id, graph, failed)
                if (t, i, a) in still
            ]  # fmt: skip
            store.record_outcomes(run_id, rows)
            failed_total += len(rows)
        if not (live | doubt) & wait_for:
            return failed_total, live, unsure
        time.sleep(1.0 + attempt * 0.5)
        _ingest(store, run_id, run_dir, recorded)
    return failed_total, live, unsure


def _skip_behind(
    store: Store, run_id: str, graph: Graph | None, failed: Sequence[tuple[str, int, int, str]]
) -> list[tuple[str, int, int, str, str]]:
    """(task, index, attempt, state, why) for instances whose jobs ended without a result.

    A singleton fused behind another in one job never started when the job
    ended with the one before it failing: it is SKIPPED, as it would have been
    in a job of its own, not failed for a reason that was not its own.
    """
    if graph is None:
        return [(t, i, a, "FAILED", why) for t, i, a, why in failed]
    bad = {t for t, i, _, _ in failed if i < 0}
    position = {name: k for k, name in enumerate(graph.order)}
    out: list[tuple[str, int, int, str, str]] = []
    for t, i, a, why in sorted(failed, key=lambda f: position[f[0]]):
        ups = graph.tasks[t].upstream if i < 0 else ()
        blocked = [
            u
            for u in ups
            if u in bad or _singleton_state(store, run_id, u) not in (None, "SUCCESS")
        ]
        if blocked:
            out.append((t, i, a, "SKIPPED", f"upstream '{blocked[0]}' did not succeed"))
        else:
            out.append((t, i, a, "FAILED", why))
    return out


def _singleton_state(store: Store, run_id: str, task: str) -> str | None:
    rows = store.current_rows(run_id, task)
    return rows[0].state if len(rows) == 1 and rows[0].array_index < 0 else None


def _resources(
    wf: Pipeline,
    task: str,
    count: int,
    config_options: Mapping[str, Any],
    native: str,
    log: str | None,
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


class DispatchBusy(ReflowError):
    """Another dispatcher pass held the run's pass lock for longer than this one waits."""


@contextlib.contextmanager
def _pass_lock(run_dir: Path, run_id: str, wait: float) -> Iterator[None]:
    """Hold the run's pass lock (a file lock in its work folder) for one pass.

    Two passes over one run at once (a dispatcher job whose submitter was
    killed before recording it, and the `retry` that `status` then asks for)
    would expand and submit the same instances twice; locked, they take turns
    and each sees what the other committed.
    """
    path = run_files(run_dir, run_id, "work") / "dispatch.lock"
    try:
        import fcntl

        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except (ImportError, OSError):  # nowhere to lock: passes are not serialized
        yield
        return
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise DispatchBusy(
                        f"run '{run_id}' is being dispatched by another pass right now (it "
                        f"holds {path}): try again when that pass is done"
                    ) from None
                time.sleep(0.05)
            except OSError:  # a filesystem without flock (e.g. Lustre mounted without it)
                break
        yield
    finally:
        os.close(fd)


def dispatch_pass(
    wf: Pipeline,
    store: Store,
    run_id: str,
    executor: Executor,
    *,
    config: Config,
    retry: bool = False,
    retry_tasks: Sequence[str] | None = None,
    verify: bool | None = None,
    wait_for: Sequence[str] = (),
    chain: bool = True,
    origin: Mapping[str, str] | None = None,
    lock_wait: float = 30.0,
    in_job: bool = False,
) -> DispatchResult:
    """One pass of the dispatcher over a run (see the module docstring).

    What the jobs run (the workflow's `origin`, the Python, the working
    directory, scheduler commands and options) comes from this process and its
    configuration, never from the store: a shared store must not be a way to
    make someone else's jobs run other code.  Passes over one run take turns
    (`_pass_lock`); DispatchBusy if another one holds it past `lock_wait` seconds.
    `in_job`: this pass runs as the chained dispatcher job.
    """
    info = store.get_run(run_id)
    with _pass_lock(Path(info["run_dir"]), run_id, lock_wait), fewer_collections():
        recorded: dict[str, Stamp] = {}  # result files the store has, removed at the end
        try:
            result = _one_pass(
                wf, store, run_id, executor, config=config, retry=retry, retry_tasks=retry_tasks,
                verify=verify, wait_for=wait_for, chain=chain, origin=origin, recorded=recorded,
                in_job=in_job,
            )  # fmt: skip
        except (ReflowError, OSError) as exc:
            # kept for `status`: a pass run as a job has no one to tell but its log
            store.set_dispatch_error(run_id, str(exc) or type(exc).__name__)
            raise
        finally:
            remove_results(recorded)
        if info.get("dispatch_error"):
            store.set_dispatch_error(run_id, None)  # this pass went through
        return result


def _one_pass(
    wf: Pipeline,
    store: Store,
    run_id: str,
    executor: Executor,
    *,
    config: Config,
    retry: bool,
    retry_tasks: Sequence[str] | None,
    verify: bool | None,
    wait_for: Sequence[str],
    chain: bool,
    origin: Mapping[str, str] | None,
    recorded: dict[str, Stamp],
    in_job: bool,
) -> DispatchResult:
    result = DispatchResult()
    info = store.get_run(run_id)
    options: dict[str, Any] = info["options"] if isinstance(info["options"], dict) else {}
    run_dir = Path(info["run_dir"])
    graph = wf.validate()
    params = resolve_params(graph, info["params"] if isinstance(info["params"], dict) else {})
    # first the jobs an earlier pass submitted without recording them (the journal)
    open_entries = _adopt(store, run_id, run_dir, executor)
    result.ingested = _ingest(store, run_id, run_dir, recorded)
    failed, live, unsure = _reconcile(
        store, run_id, run_dir, executor, wait_for=frozenset(wait_for), recorded=recorded,
        graph=graph,
    )  # fmt: skip
    result.failed_by_scheduler = failed
    result.unsettled = open_entries + len(unsure)
    run_state = store.get_run(run_id)["status"]
    from .loader import workflow_origin

    trusted = dict(origin) if origin is not None else workflow_origin(wf)
    sub = _Submitter(wf, store, run_id, executor, config, options, run_dir, trusted)
    sub.in_job = in_job
    if open_entries:
        # a job an earlier pass may have submitted can be neither found nor ruled out
        # now: submitting its instances again could run them twice, so nothing is
        # submitted until a later pass can tell
        result.held = True
        if chain and run_state == RunState.RUNNING.value:
            result.dispatcher = _chain_once(sub, store, executor, (), time.time() + _WAIT_SECONDS)
        return result
    engine = Engine(
        graph,
        store,
        run_id,
        params=params,
        run_dir=run_dir,
        force=bool(options.get("force")),
        force_tasks=options.get("force_tasks") or (),
        verify=bool(options.get("verify")) if verify is None else verify,
        # an ordinary pass keeps failed instances failed; only a retry gives them new attempts
        retry_tasks=retry_tasks if retry else (),
        on_error=str(options.get("on_error", "continue")),
        resume=True,
        keep_in_flight=True,
        verify_kept=retry,
        limits=_Limits(wf, executor, config),
    )
    if run_state == RunState.CANCELLED.value:
        engine.stop(cancelled=True)
    works = engine.advance()
    by_task: dict[str, list[Work]] = {}
    for w in works:
        by_task.setdefault(w.task, []).append(w)
    submitted: list[str] = []
    for task, items in by_task.items():
        # attempts that ask for other resources than the task's own (an automatic retry
        # after an OOM or a time-out, a callable of the attempt number) go in jobs of
        # their own, one per set of resources
        own = first_resources(graph.tasks[task])
        groups: dict[str, list[Work]] = {}
        asks: dict[str, dict[str, Any]] = {}
        for w in items:
            wanted = engine.resources_of(task, w.index)
            key = json.dumps(wanted, sort_keys=True) if wanted not in (None, own) else ""
            groups.setdefault(key, []).append(w)
            asks.setdefault(key, wanted or {})
        for key, group in groups.items():
            fused = (
                _fusable(sub, engine, task, group[0], by_task, options)
                if not graph.tasks[task].array and len(group) == 1 and not key
                else []
            )
            submitted.extend(sub.wave(task, group, followers=fused, asks=asks[key] or None))
    ahead: list[str] = []
    if engine.in_flight and run_state != RunState.CANCELLED.value and not engine.stopping:
        ahead = _submit_ahead(sub, engine, graph, options)
    result.jobs = submitted + ahead
    result.reset = engine.reset
    if result.jobs and store.get_run(run_id)["status"] == RunState.CANCELLED.value:
        # cancelled while this pass was submitting: take back what it submitted (as far
        # as the scheduler lets: the run stays CANCELLED)
        with contextlib.suppress(SchedulerError):
            executor.cancel(result.jobs)
        store.cancel_instances(run_id, None, "cancelled by the user")
        store.set_dispatcher(run_id, None)
        result.state = RunState.CANCELLED
        return result
    if engine.in_flight == 0:
        state = engine.final_state()
        if run_state == RunState.CANCELLED.value:
            state = RunState.CANCELLED
        store.set_dispatcher(run_id, None)
        store.set_run_status(run_id, state.value, release=True)
        result.state = state
        return result
    if chain:
        waits = _dispatcher_waits(sub, engine, graph) or submitted or sorted(live)
        if unsure:  # jobs the scheduler cannot tell about now: look again in a while
            waits = sorted(set(waits) - unsure)
        # nothing to wait for but a retry's delay: the next pass starts when it is due
        # (held by the pass itself, `--not-before`: every scheduler runs that, where a
        # begin time would be a flag of each scheduler's own)
        due = engine.retry_due if not waits else None
        if unsure:
            soon = time.time() + _WAIT_SECONDS
            due = soon if due is None else min(due, soon)
        result.dispatcher = _chain_once(sub, store, executor, waits, due)
    return result


class _Limits:
    """task -> the caps of its automatic retries: the config's, and its partition's.

    The partition's are asked of the scheduler (`Executor.capacity`) only for
    a task that is about to be retried, once per task and pass.
    """

    def __init__(self, wf: Pipeline, executor: Executor, config: Config) -> None:
        self.wf, self.executor, self.config = wf, executor, config
        self.native = executor.queue_key
        self.known: dict[str, Limits] = {}

    def __call__(self, task: str) -> Limits:
        if task not in self.known:
            res = _resources(self.wf, task, 1, self.config.submit_options, self.native, None, None)
            room = self.executor.capacity(res)
            self.known[task] = config_limits(self.config, room.max_mem, room.max_seconds)
        return self.known[task]


def _chain_once(
    sub: _Submitter,
    store: Store,
    executor: Executor,
    waits: Sequence[str],
    not_before: float | None,
) -> str | None:
    """Chain the next pass, unless another dispatcher job of the run is queued already.

    A pass run by `submit` or `retry` that finds a dispatcher job recorded (one
    adopted from the journal) that has not ended leaves the next pass to it: a
    second one would only duplicate it.  A pass run as the dispatcher job
    always chains: the recorded one is itself.
    """
    queued = store.get_run(sub.run_id).get("dispatcher")
    if queued and not sub.in_job:
        status = executor.states([queued]).get(queued)
        if status is not None and not status.state.final:
            return None
    return sub.chain(waits, not_before=not_before)


def _adopt(
    store: Store, run_id: str, run_dir: Path, executor: Executor, wait: float = _SUBMIT_WAIT
) -> int:
    """Settle the journal's entries: adopt the jobs found, drop those never submitted.

    Returns how many entries stay open because the scheduler cannot tell now
    whether their job exists (a submit command still running, the accounting
    down).  An entry is removed only after what it says is in the store.
    """
    entries = journal.entries(run_dir, run_id, clean=True)
    if not entries:
        return 0
    busy = [e for e in entries if not journal.wait_free(e, wait)]
    asked = [e for e in entries if e not in busy]
    found = executor.find_submitted([(e.name, e.token, e.written) for e in asked])
    if found is None:  # the scheduler cannot be asked by name: submit them again
        found = dict.fromkeys((e.token for e in asked), None)
    open_entries = len(busy)
    for entry in asked:
        if entry.token not in found:
            open_entries += 1
            continue
        job = found[entry.token]
        if job is not None and entry.kind == "dispatcher":
            if store.get_run(run_id).get("dispatcher") != job:
                status = executor.states([job]).get(job)
                if status is not None and not status.state.final:
                    store.set_dispatcher(run_id, job)
        elif job is not None:
            _record_wave(store, run_id, executor, entry, job, adopting=True)
        journal.remove(entry)
    return open_entries


def adopt_unrecorded(store: Store, run_id: str, executor: Executor) -> int:
    """For `status`: adopt the jobs a killed pass submitted, unless a pass is running now.

    Returns how many journal entries stay open (0 when a pass holds the run:
    that pass settles them).
    """
    run_dir = Path(store.get_run(run_id)["run_dir"])
    if not journal.entries(run_dir, run_id):
        return 0
    try:
        with _pass_lock(run_dir, run_id, 0.0):
            return _adopt(store, run_id, run_dir, executor, wait=2.0)
    except DispatchBusy:
        return 0


def _record_wave(
    store: Store,
    run_id: str,
    executor: Executor,
    entry: journal.Entry,
    job: str,
    *,
    adopting: bool = False,
) -> None:
    """Record the job of a journal entry as its instances' job, in one transaction.

    `adopting`: the job was found again after its pass was killed; instances
    already recorded (the pass was killed after recording) are left as they are.
    """
    ids = [
        (t, i, a, executor.element_id(job, k // entry.per) if entry.array else job)
        for k, (t, i, a) in enumerate(entry.items)
    ]
    followers = [(t, -1, a, job) for t, a in entry.followers]
    deferred = [*followers, *ids] if entry.deferred else followers
    if adopting:
        deferred = [d for d in deferred if store.instance_output(run_id, *d[:3]) is None]
    by_task: dict[str, list[tuple[int, int, str]]] = {}
    for t, i, a, j in deferred:
        by_task.setdefault(t, []).append((i, a, j))
    with store.transaction():
        for t, rows in by_task.items():
            store.write_deferred(run_id, t, rows)
        if not entry.deferred:
            store.mark_submitted(run_id, ids)  # only instances still PENDING change


class _Submitter:
    """Writes wave files and submits them as jobs for one dispatcher pass."""

    def __init__(
        self,
        wf: Pipeline,
        store: Store,
        run_id: str,
        executor: Executor,
        config: Config,
        options: Mapping[str, Any],
        run_dir: Path,
        origin: Mapping[str, str],
    ) -> None:
        self.wf, self.store, self.run_id, self.executor = wf, store, run_id, executor
        self.config = config
        self.options, self.run_dir = options, run_dir
        self.origin = json.dumps(dict(origin))
        self.python = config.python
        self.cwd = os.getcwd()
        self.submit_options = dict(config.submit_options)
        self.native = executor.queue_key
        self.limit = executor.max_array_size()
        self._submitted: list[float] = []  # when this pass submitted (for the throttle)
        self.in_job = False  # the pass runs as the chained dispatcher job

    def wave(
        self,
        task: str,
        items: Sequence[Work],
        *,
        deferred: Mapping[str, Any] | None = None,
        dependencies: Sequence[str] = (),
        followers: Sequence[tuple[Work, Mapping[str, Any]]] = (),
        asks: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Submit `items` of `task` as one job: an array job of packs for an array task.

        Each array element runs `per` instances in turn (see `_pack_size`);
        arrays are split at the scheduler's size limit.  `followers`: singletons
        fused behind a singleton `task` (see `_fusable`), each (its Work, how it
        finds its inputs), run in the same job one after the other.  `asks`:
        the memory, time and CPUs these attempts ask for, when not the task's own.
        """
        spec = self.wf.tasks[task]
        log_dir = self.run_dir / "logs" / task / "scheduler"
        log_dir.mkdir(parents=True, exist_ok=True)
        # the run's own logs folder, made before any job: `read_log` then knows
        # not to look in the layout of runs from before (see there)
        run_files(self.run_dir, self.run_id, "logs").mkdir(parents=True, exist_ok=True)
        log = self.executor.log_pattern(str(log_dir), spec.array)
        base = _resources(
            self.wf, task, len(items), self.submit_options, self.native, log, self.cwd,
            dependencies,
        )  # fmt: skip
        if asks:
            base = replace(base, mem=asks.get("mem"), time=asks.get("time"), cpus=asks.get("cpus"))
        per = self._pack_size(task, len(items), base) if spec.array else 1
        elements = -(-len(items) // per)
        step = per * (min(elements, self.limit) if self.limit else elements)
        jobs: list[str] = []
        for chunk_no, start in enumerate(range(0, len(items), step)):
            chunk = items[start : start + step]
            first = chunk[0]
            wave = (
                run_files(self.run_dir, self.run_id, "work")
                / f"{task}.{max(first.index, 0)}.{first.attempt}.{chunk_no}.jsonl"
            )
            write_wave(wave, self.run_id, chunk, deferred, per=per)
            waves = [wave]
            for work, how in followers:
                waves.append(wave.with_name(f"{work.task}.0.{work.attempt}.0.jsonl"))
                write_wave(waves[-1], self.run_id, [work], how)
            times = [base.time] + [self.wf.tasks[w.task].time for w, _ in followers]
            res = replace(
                base,
                array_size=-(-len(chunk) // per) if spec.array else None,
                time=_times(base.time, per) if not followers else _sum_times(times),
                grace=self.config.grace,
            )
            with journal.writing(
                self.run_dir, self.run_id, "wave", res.name, task=task,
                items=[(w.task, w.index, w.attempt) for w in chunk], per=per, array=spec.array,
                deferred=deferred is not None,
                followers=[(w.task, w.attempt) for w, _ in followers],
            ) as (entry, lock):  # fmt: skip
                job = self._submit(self._worker_command(waves), res, entry, lock)
                _record_wave(self.store, self.run_id, self.executor, entry, job)
            journal.remove(entry)
            jobs.append(job)
        return jobs

    def _submit(
        self, command: Sequence[str], res: JobResources, entry: journal.Entry, lock: int
    ) -> str:
        """Submit one job named with its journal token; the submit command holds the lock."""
        self._throttle()
        with inheriting(lock):
            return self.executor.submit(command, replace(res, token=entry.token))

    def _throttle(self) -> None:
        """Wait as `[executor] max_submit_per_minute` asks before the next submission."""
        rate = self.config.max_submit_per_minute
        if rate <= 0:
            return
        now = time.monotonic()
        recent = [t for t in self._submitted if now - t < 60.0]
        if len(recent) >= rate:
            time.sleep(max(0.0, 60.0 - (now - recent[-rate])))
        self._submitted = [*recent, time.monotonic()][-rate:]

    def _worker_command(self, waves: Sequence[Path]) -> list[str]:
        command = [self.python, "-m", "reflow", "worker"]
        for wave in waves:
            command += ["--wave", str(wave)]
        return [
            *command,
            *("--run-dir", str(self.run_dir), "--origin", self.origin, "--workflow", self.wf.name),
        ]

    def _pack_size(self, task: str, count: int, res: JobResources) -> int:
        """How many instances of a wave of `count` each array element runs.

        The task's `pack=`, else the run's (`submit --pack`, `[executor] pack`);
        "auto" packs only what the scheduler could not run at once anyway: as
        many elements as it has slots for (a modest number if it does not
        say; `array_parallelism` if lower), fewer when the durations the store
        has seen for the task say an element would otherwise run for less than
        `_MIN_ELEMENT_SECONDS`.  A pack never asks for more time than the
        partition allows.
        """
        spec = self.wf.tasks[task]
        setting = spec.pack if spec.pack is not None else self.options.get("pack", "auto")
        if setting != "auto":
            per = min(count, max(1, int(setting)))
            if per == 1:
                return 1
            room = self.executor.capacity(res) if res.time else Capacity()
        else:
            room = self.executor.capacity(res)
            elements = min(count, room.slots or _DEFAULT_SLOTS, spec.array_parallelism or count)
            durations = sorted(self.store.recent_durations(self.wf.name, task))
            if durations:
                typical = durations[len(durations) // 2]
                enough = math.ceil(count * typical / _MIN_ELEMENT_SECONDS)
                elements = min(elements, max(1, enough))
            per = -(-count // max(1, elements))
        if res.time and room.max_seconds:
            per = max(1, min(per, room.max_seconds // max(1, seconds(res.time))))
        return per

    def chain(self, dependencies: Sequence[str], not_before: float | None = None) -> str:
        """Submit the next dispatcher pass as a small job behind `dependencies`.

        `not_before`: the pass waits until then (time.time()) before it starts
        (see `main`): a retry's delay with nothing else in flight, or a look again
        later at jobs the scheduler could not tell about.
        """
        command = [
            self.python,
            "-m",
            "reflow",
            "dispatch",
            "--run-id",
            self.run_id,
            "--store",
            self.store.location,
            "--origin",
            self.origin,
            "--workflow",
            self.wf.name,
            "--after",
            ",".join(dependencies),
        ]
        if not_before is not None:
            command += ["--not-before", f"{not_before:.3f}"]
        log_dir = self.run_dir / "logs" / "_dispatcher"
        log_dir.mkdir(parents=True, exist_ok=True)
        partition, account, _ = merge_options({}, self.submit_options, self.native)
        log = self.executor.log_pattern(str(log_dir), False)
        res = JobResources(
            name=f"{self.wf.name}.dispatch",
            cpus=self.config.dispatch_cpus,
            time=self.config.dispatch_time,
            mem=self.config.dispatch_mem,
            partition=partition,
            account=account,
            dependencies=tuple(dependencies),
            stdout=log,
            stderr=log,
            workdir=self.cwd,
            env=command_env(self.executor, self.config),
        )
        with journal.writing(self.run_dir, self.run_id, "dispatcher", res.name) as (entry, lock):
            job = self._submit(command, res, entry, lock)
            self.store.set_dispatcher(self.run_id, job)
        journal.remove(entry)
        return job

    def flight_jobs(self) -> dict[str, set[str]]:
        """task -> the jobs (base ids) of its instances still in flight."""
        jobs: dict[str, set[str]] = {}
        for task, _, _, _, job, _ in self.store.in_flight(self.run_id):
            if job:
                jobs.setdefault(task, set()).add(self.executor.job_of(job))
        return jobs


def _known(sub: _Submitter, engine: Engine, task: str) -> dict[int, int] | None:
    """index -> attempt of a task's instances, if they exist (expanded or submitted ahead)."""
    rows = engine.known_rows(task)
    if rows is not None:
        return {i: a for i, (_, a) in rows.items()}
    current = sub.store.current_rows(sub.run_id, task)
    return {r.array_index: r.attempt for r in current} if current else None


def _submit_ahead(
    sub: _Submitter, engine: Engine, graph: Any, options: Mapping[str, Any]
) -> list[str]:
    """Submit, with scheduler dependencies, every task whose instance count is known.

    A singleton, or an array chained element by element to arrays whose size
    is known, does not need a dispatcher pass to start: its job waits for its
    upstream jobs and resolves its inputs itself (resolve.py).  Only a fan-out
    over a list not yet computed needs the next dispatcher pass.
    """
    known: dict[str, dict[int, int]] = {}
    for name in graph.order:
        rows = _known(sub, engine, name)
        if rows is not None:
            known[name] = rows
    flight = sub.flight_jobs()
    jobs: list[str] = []
    for name in graph.order:
        spec = graph.tasks[name]
        if name in known or not spec.upstream or not all(d in known for d in spec.upstream):
            continue
        waits = sorted(set().union(*(flight.get(d, set()) for d in spec.upstream)))
        if not waits:
            continue  # everything it needs has finished: the next pass expands it
        indices = [-1]
        if spec.array:
            sizes = set()
            for inp in graph.inputs[name]:
                if inp.mode.per_item:
                    src = inp.sources[0].step
                    if inp.mode is not Mode.CHAIN or inp.concat or -1 in known[src]:
                        sizes.add(-1)
                    else:
                        sizes.add(len(known[src]))
            if len(sizes) != 1 or -1 in sizes:
                continue  # a fan-out over a list not computed yet: needs a dispatcher pass
            indices = list(range(sizes.pop()))
        works = _ahead_works(sub, engine, name, indices)
        deferred = _deferred(sub, name, {d: known[d] for d in spec.upstream}, options)
        followers = _fusable(sub, engine, name, works[0], known, options) if indices == [-1] else []
        new = sub.wave(name, works, deferred=deferred, dependencies=waits, followers=followers)
        jobs.extend(new)
        for t in [name, *(w.task for w, _ in followers)]:
            known[t] = {-1: 1} if t != name else {i: 1 for i in indices}
            flight[t] = set(new)
    return jobs


def _ahead_works(sub: _Submitter, engine: Engine, name: str, indices: Sequence[int]) -> list[Work]:
    """Works of a task submitted before its inputs exist: its parameters, not its inputs."""
    shared: dict[str, Any] = dict(engine.param_values(name))
    for a in sub.wf.tasks[name].args:
        if a.kind == "run_dir":
            shared[a.name] = sub.run_dir
    return [Work(name, i, 1, dict(shared)) for i in indices]


def _deferred(
    sub: _Submitter,
    name: str,
    upstream: Mapping[str, Mapping[int, int]],
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """How the job of a task submitted ahead finds its inputs (see resolve.py)."""
    forced = set(options.get("force_tasks") or ())
    spec = sub.wf.tasks[name]
    return {
        "store": sub.store.location,
        "upstream": {d: sorted(rows.items()) for d, rows in upstream.items()},
        "no_cache": bool(options.get("force")) or name in forced or not spec.cache,
        "verify": bool(options.get("verify")),
    }


def _fusable(
    sub: _Submitter,
    engine: Engine,
    task: str,
    first: Work,
    known: Mapping[str, Any],
    options: Mapping[str, Any],
) -> list[tuple[Work, dict[str, Any]]]:
    """The singletons that can run after singleton `task` in its own job, in order.

    A chain fuses while the next task is a singleton whose only upstream (data
    or order) is the one before, which feeds nothing else; both allow it
    (`fuse=True`); they ask for the same CPUs, memory, time limit and
    scheduler options; and the job's time limit, the sum of theirs, stays
    within the partition's.  (A task with a limit of its own unlike the one
    before it runs in a job of its own, so the scheduler still enforces it.)  Each still
    has its own identity, cache look-up and result: a follower resolves its
    input from the result file the one before wrote (resolve.py), and a cached
    one is not run.
    """
    graph = engine.graph
    followers: list[tuple[Work, dict[str, Any]]] = []
    current, attempt = task, first.attempt
    times = [graph.tasks[task].time]
    limit: int | None = None
    while True:
        after = graph.downstream.get(current, ())
        if len(after) != 1:
            break
        nxt, spec, before = after[0], graph.tasks[after[0]], graph.tasks[current]
        if (
            spec.array
            or not (spec.fuse and before.fuse)
            or tuple(spec.upstream) != (current,)
            or nxt in known
            or _known(sub, engine, nxt) is not None
            or (spec.cpus, spec.mem, spec.time, dict(spec.options))
            != (before.cpus, before.mem, before.time, dict(before.options))
        ):
            break
        total = _sum_times([*times, spec.time])
        if total is not None:
            if limit is None:
                res = _resources(sub.wf, task, 1, sub.submit_options, sub.native, None, None)
                limit = sub.executor.capacity(res).max_seconds or 0
            if limit and seconds(total) > limit:
                break
        times.append(spec.time)
        work = _ahead_works(sub, engine, nxt, [-1])[0]
        followers.append((work, _deferred(sub, nxt, {current: {-1: attempt}}, options)))
        current, attempt = nxt, work.attempt
    return followers


def _dispatcher_waits(sub: _Submitter, engine: Engine, graph: Any) -> list[str]:
    """What the next dispatcher pass waits for.

    If a task still needs a pass (a fan-out whose size is unknown), the jobs
    it waits on; otherwise every job in flight, so the last pass closes the run.
    """
    flight = sub.flight_jobs()
    everything = sorted(set().union(*flight.values())) if flight else []
    needs: set[str] = set()
    for name in graph.order:
        if _known(sub, engine, name) is not None:
            continue
        deps = graph.tasks[name].upstream
        if all(_known(sub, engine, d) is not None for d in deps):
            needs |= set().union(*(flight.get(d, set()) for d in deps))
    return sorted(needs) or everything


def _load(origin: Mapping[str, Any], name: str) -> Pipeline:
    """The run's workflow; whatever stops its script from loading as one ReflowError."""
    from .loader import load_workflow

    try:
        return load_workflow(dict(origin), name)
    except ReflowError:
        raise
    except Exception as exc:  # the script was edited while the run was in flight
        where = origin.get("script") or origin.get("module")
        raise ReflowError(
            f"cannot load workflow '{name}' from {where}: {type(exc).__name__}: {exc}"
        ) from None


def main(argv: Sequence[str] | None = None) -> int:
    """One chained dispatcher pass, run as a scheduler job."""
    import argparse

    from .config import load_config
    from .stores import open_store

    parser = argparse.ArgumentParser(prog="python -m reflow dispatch")
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--origin", required=True)
    parser.add_argument("--workflow", required=True)
    parser.add_argument("--after", default="", help="the jobs this pass was chained behind")
    parser.add_argument(
        "--not-before", type=float, default=None, help="start the pass no earlier (epoch seconds)"
    )
    ns = parser.parse_args(argv)
    config = load_config()
    if ns.not_before is not None:
        # a retry's delay, or a look again later at jobs the scheduler could not tell
        # about: wait in this small job, up to its own time limit less a margin; a pass
        # that wakes too early finds the retry not due and chains itself again
        budget = max(0.0, seconds(config.dispatch_time) - 60.0)
        time.sleep(max(0.0, min(ns.not_before - time.time(), budget)))
    store = open_store(ns.store)
    info = store.get_run(ns.run_id)
    if info["status"] != RunState.RUNNING.value:
        print(f"reflow: run {ns.run_id} is {info['status']}; nothing to do")
        return 0
    options = info["options"] if isinstance(info["options"], dict) else {}
    origin = json.loads(ns.origin)
    try:
        executor = make_executor(options.get("executor"), config)
        wf = _load(origin, ns.workflow)
        after = [j for j in ns.after.split(",") if j]
        res = dispatch_pass(
            wf, store, ns.run_id, executor, config=config, wait_for=after, origin=origin,
            lock_wait=600.0,  # a job can wait for another pass; the run is not failed for it
            in_job=True,
        )  # fmt: skip
    except DispatchBusy as exc:
        print(f"reflow: {exc}", file=sys.stderr)
        return 1
    except ReflowError as exc:
        print(f"reflow: dispatcher pass failed: {exc}", file=sys.stderr)
        # for `status` (a failure inside the pass has recorded it already)
        store.set_dispatch_error(ns.run_id, str(exc) or type(exc).__name__)
        store.set_dispatcher(ns.run_id, None)
        store.set_run_status(ns.run_id, RunState.FAILED.value, release=True)
        return 1
    print(
        f"reflow: run {ns.run_id}: ingested {res.ingested}, failed by the scheduler "
        f"{res.failed_by_scheduler}, submitted {len(res.jobs)} jobs, state {res.state.value}"
        + (f", next dispatcher {res.dispatcher}" if res.dispatcher else "")
        + (
            f"; {res.unsettled} jobs the scheduler cannot tell about now: asked again "
            f"in {_WAIT_SECONDS:g} s"
            if res.unsettled
            else ""
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
