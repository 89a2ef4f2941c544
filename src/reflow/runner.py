"""Starting, submitting and resuming runs: the work behind `run_local`, `submit`, `retry`.

`Workflow.run_local`, `Workflow.submit`, `Run.retry` and the CLI's `run`,
`submit` and `retry` commands all come here.  Each function checks what the
caller gave, records the run in the store and hands it to a driver: the
local one (`local.drive`) or a dispatcher pass (`dispatch.dispatch_pass`).
They return run ids, not `Run` handles: the handles belong to the surfaces
above.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ReflowError, ValidationError
from .owner import FOREGROUND, current_owner, owner_alive
from .params import type_name
from .wiring import Graph, Pipeline, resolve_params

if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine
    from .executors.base import Executor
    from .retrying import Limits
    from .stores import Store

__all__ = [
    "check_tasks",
    "dry_run",
    "open_run_store",
    "prepare_run_dir",
    "resume",
    "start_local",
    "submit",
    "task_rows",
]


def open_run_store(store: Store | str | os.PathLike[str] | None, config: Config | None) -> Store:
    """The store a run goes to: the one given, else the configuration's."""
    from .stores import open_store

    if store is None and config is not None:
        return open_store(config.resolved_store_path())
    return open_store(store)


def start_local(
    wf: Pipeline,
    run_dir: str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None,
    config: Config | None,
    force: bool,
    force_tasks: Iterable[str] | None,
    verify: bool,
    max_workers: int,
    on_error: str,
    params: Mapping[str, Any],
    progress: Callable[[Engine], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> tuple[str, Store]:
    """Run the whole graph on this machine; return (run id, store) once it is done."""
    from . import codec
    from .engine import Engine
    from .local import drive

    graph, values, forced = _checked(wf, params, force_tasks)
    _check_local(max_workers, on_error)
    directory = prepare_run_dir(run_dir)
    st = open_run_store(store, config)
    options = _run_options(force, forced, verify, max_workers=max_workers, on_error=on_error)
    run_id = st.create_run(
        wf.name,
        run_dir=str(directory),
        executor=FOREGROUND,
        params=codec.dumps(values),
        options=codec.dumps(options),
        tasks=task_rows(graph),
        owner=current_owner(),
    )
    engine = Engine(
        graph, st, run_id, params=values, run_dir=directory, force=force,
        force_tasks=forced, verify=verify, on_error=on_error, write_once=True,
        limits=_limits(config),
    )  # fmt: skip
    engine.on_progress = progress
    if on_start is not None:
        on_start(run_id)
    drive(engine, max_workers)
    return run_id, st


def _limits(config: Config | None) -> Callable[[str], Limits]:
    """The caps of a local run's automatic retries: the config's, the same for every task."""
    from .retrying import config_limits

    limits = config_limits(config)
    return lambda task: limits


def _check_local(max_workers: int, on_error: str) -> None:
    """ValidationError naming a bad `max_workers` or `on_error` of a local run."""
    if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
        raise ValidationError(f"max_workers={max_workers!r} must be a whole number >= 1")
    if on_error not in ("stop", "continue"):
        raise ValidationError(f"on_error={on_error!r} is not valid: use 'stop' or 'continue'")


def dry_run(
    wf: Pipeline,
    run_dir: str | os.PathLike[str],
    *,
    store: Store | str | os.PathLike[str] | None,
    config: Config | None,
    force: bool,
    force_tasks: Iterable[str] | None,
    verify: bool,
    max_workers: int = 1,
    on_error: str = "stop",
    params: Mapping[str, Any],
) -> dict[str, Any]:
    """What a run with these arguments would do, per task, touching nothing.

    The engine decides every task it can, as a real run would, in its dry
    mode (it writes nothing; cache hits stand in for the outputs downstream
    tasks read); a task that reads an output the run would compute is
    unknown.  The store is only read (none is created, no file is left beside
    it), the run directory not even created.  Returns `{"tasks": {task: {"run":
    int, "cached": int, "unknown": bool, "reasons": {reason: count}}}}`.
    """
    from .engine import Engine

    graph, values, forced = _checked(wf, params, force_tasks)
    _check_local(max_workers, on_error)
    directory = _run_dir_path(run_dir)
    with _peeked_store(store, config) as st:
        engine = Engine(
            graph, st, "(dry run)", params=values, run_dir=directory, force=force,
            force_tasks=forced, verify=verify, on_error=on_error, dry=True,
        )  # fmt: skip
        for _ in engine.advance():  # pragma: no cover - a dry engine hands out no work
            pass
        engine.decide_elements()
        options = _run_options(force, forced, verify)
        return _prediction(engine, st, graph, values, options)


def _prediction(
    engine: Engine, store: Store, graph: Graph, values: Mapping[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """The dry run's answer from the engine's decisions, each reason as `why` gives it."""
    import json

    from .explain import Instance, RunFacts, explain_task, grouped

    decisions = engine.decisions
    specs = {name: json.loads(doc) for name, _, _, doc in task_rows(graph)}
    arrays = {name: graph.tasks[name].array for name in graph.order}
    sources = store.source_rows([s for d in decisions.values() for s, _ in d.hits.values()])
    facts = RunFacts(
        store, graph.name, arrays=arrays, outputs=_EngineOutputs(engine), params=values,
        options=options, before=None,
    )  # fmt: skip
    tasks: dict[str, Any] = {}
    for name in graph.order:
        d = decisions.get(name)
        if d is None:
            tasks[name] = {
                "run": 0,
                "cached": 0,
                "unknown": True,
                "reasons": _waits(graph, decisions, name),
            }
            continue
        instances = [Instance(i, "PENDING", parts, note=d.notes.get(i)) for i, _, parts in d.run]
        instances += [
            Instance(i, "SUCCESS", None, source=sources.get(src, ("(deleted)", name, i)))
            for i, (src, _) in sorted(d.hits.items())
        ]
        instances += [Instance(i, st, None, error=why) for i, (st, why) in d.special.items()]
        explained = explain_task(facts, name, specs[name], instances)
        reasons = {key: n for key, n, _ in grouped(name, arrays[name], explained)}
        if d.waiting:
            reasons.update(_waits(graph, decisions, name, len(d.waiting)))
        tasks[name] = {
            "run": len(d.run),
            "cached": len(d.hits),
            "unknown": bool(d.waiting),
            "reasons": reasons,
        }
    return {"tasks": tasks}


def _waits(graph: Graph, decisions: Mapping[str, Any], name: str, count: int = 0) -> dict[str, int]:
    """What an undecided task (or `count` of its elements) waits for: the tasks it reads
    from that would run, or are undecided too (an `after=` task decides nothing)."""
    waits: dict[str, int] = {}
    data = {s.step for inp in graph.inputs[name] for s in inp.sources}
    for up in sorted(data, key=graph.order.index):
        d = decisions.get(up)
        if d is None or d.waiting:
            waits[f"waits for '{up}' (unknown)"] = count
        elif d.run:
            waits[f"waits for '{up}' (will run)"] = count
    return waits


class _EngineOutputs:
    """`explain.Outputs` of a dry run: the outputs its engine decided (cache hits)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def hashes(self, task: str) -> dict[int, str | None]:
        rows = self.engine.known_rows(task) or {}
        return {i: self.engine.output_hash(task, i) or None for i in rows}

    def texts(self, task: str, indices: Sequence[int]) -> dict[int, str | None]:
        found: dict[int, str | None] = {}
        for i in indices:
            try:
                found[i] = self.engine.text(task, i)
            except (KeyError, RuntimeError):  # not decided, or would run: no value yet
                found[i] = None
        return found


@contextlib.contextmanager
def _peeked_store(
    store: Store | str | os.PathLike[str] | None, config: Config | None
) -> Iterator[Store]:
    """The store a dry run reads, left exactly as it was; an empty one if there is none.

    An empty store lives in a temporary folder that is removed afterwards: a
    dry run creates no store where the real run would.  A Store object given
    is opened again by its location, so that it too is only read.
    """
    from .stores import open_store, store_exists

    if store is not None and not isinstance(store, (str, os.PathLike)):
        store = store.location  # a Store object: the same store, opened to be only read
    if store is None:
        from .config import load_config

        store = (config or load_config()).resolved_store_path()
    if store_exists(store):
        st = open_store(store, peek=True)
        try:
            yield st
        finally:
            st.close()
        return
    import tempfile

    with tempfile.TemporaryDirectory(prefix="reflow-dry-run-") as tmp:
        st = open_store(os.path.join(tmp, "empty.db"))
        try:
            yield st
        finally:
            st.close()


def submit(
    wf: Pipeline,
    run_dir: str | os.PathLike[str],
    *,
    executor: str | Executor | None,
    store: Store | str | os.PathLike[str] | None,
    config: Config,
    force: bool,
    force_tasks: Iterable[str] | None,
    verify: bool,
    params: Mapping[str, Any],
    pack: int | str | None = None,
) -> tuple[str, Store, bool]:
    """Record the run and run its first dispatcher pass; return (run id, store, dry run).

    `pack` (`submit --pack`) overrides the config's `[executor] pack` for the
    run's array tasks that do not set their own.  A dry run (the `dry-run`
    executor) leaves nothing recorded.
    """
    import shutil

    from . import codec
    from .dispatch import dispatch_pass, executor_record, make_executor
    from .executors.base import SchedulerError
    from .loader import workflow_origin
    from .results import run_files

    graph, values, forced = _checked(wf, params, force_tasks)
    ex = make_executor(executor, config)
    origin = workflow_origin(wf)
    directory = prepare_run_dir(run_dir)
    st = open_run_store(store, config)
    options = _run_options(
        force, forced, verify, on_error="continue", origin=origin, python=config.python,
        cwd=os.getcwd(), submit_options=dict(config.submit_options),
        executor=executor_record(ex), pack=config.pack if pack is None else pack,
    )  # fmt: skip
    run_id = st.create_run(
        wf.name,
        run_dir=str(directory),
        executor=ex.name,
        params=codec.dumps(values),
        options=codec.dumps(options),
        tasks=task_rows(graph),
    )
    dry = ex.name == "dry-run"
    try:
        dispatch_pass(wf, st, run_id, ex, config=config, chain=not dry)
    except (SchedulerError, OSError) as exc:
        _abandon(st, run_id, ex)
        if isinstance(exc, OSError):
            raise ReflowError(f"cannot submit run '{run_id}': {exc}") from None
        raise
    finally:
        if dry:
            st.delete_run(run_id)
            shutil.rmtree(run_files(directory, run_id, "work"), ignore_errors=True)
    return run_id, st, dry


def resume(
    wf: Pipeline,
    run_id: str,
    store: Store,
    *,
    tasks: Iterable[str] | None,
    verify: bool,
    progress: Callable[[Engine], None] | None = None,
) -> int:
    """Drive an existing run again (retry); return how many instances were reset.

    A local run resumes here in the foreground; a scheduler run is handed to a
    dispatcher pass through its executor.
    """
    from .engine import Engine
    from .local import drive

    graph = wf.validate()
    info = store.get_run(run_id)
    if info["graph_name"] != wf.name:
        raise ReflowError(
            f"run '{run_id}' belongs to workflow '{info['graph_name']}', not "
            f"'{wf.name}': retry it with that workflow's script"
        )
    retry_tasks = check_tasks(graph, tasks, "task") if tasks is not None else None
    options = info["options"] if isinstance(info["options"], dict) else {}
    params = info["params"] if isinstance(info["params"], dict) else {}
    try:
        values = resolve_params(graph, params)
    except ValidationError as exc:
        raise ReflowError(
            f"run '{run_id}' cannot be retried with this version of the workflow: {exc}"
        ) from None
    directory = prepare_run_dir(info["run_dir"])
    if info["executor"] != FOREGROUND:
        return _resume_cluster(wf, run_id, store, info, retry_tasks, verify)
    store.claim_run(run_id, current_owner(), alive=owner_alive)
    engine = Engine(
        graph, store, run_id, params=values, run_dir=directory, verify=verify,
        retry_tasks=retry_tasks, on_error=str(options.get("on_error", "stop")), resume=True,
        write_once=True,
    )  # fmt: skip
    engine.on_progress = progress
    drive(engine, int(options.get("max_workers", 1)))
    return engine.reset


def _resume_cluster(
    wf: Pipeline,
    run_id: str,
    store: Store,
    info: Mapping[str, Any],
    tasks: frozenset[str] | None,
    verify: bool,
) -> int:
    """Retry a scheduler run: reset what failed and submit it through its executor."""
    from .dispatch import dispatch_pass, make_executor

    config = wf.config
    options = info["options"] if isinstance(info["options"], dict) else {}
    ex = make_executor(options.get("executor"), config)
    dispatcher = info.get("dispatcher")
    if info["status"] == "RUNNING" and dispatcher:
        status = ex.states([dispatcher]).get(dispatcher)
        if status is None or not status.state.final:
            raise ReflowError(
                f"run '{run_id}' is still being dispatched (job {dispatcher}): wait "
                "for it to finish, or cancel it first"
            )
    store.set_run_status(run_id, "RUNNING")
    res = dispatch_pass(
        wf,
        store,
        run_id,
        ex,
        config=config,
        retry=True,
        retry_tasks=None if tasks is None else sorted(tasks),
        verify=verify,
    )
    return res.reset


def _abandon(store: Store, run_id: str, executor: Executor) -> None:
    """After a failed submission: cancel what was submitted; the run ends FAILED."""
    jobs = sorted({executor.job_of(j) for *_, j, _ in store.in_flight(run_id) if j})
    if jobs:
        executor.cancel(jobs)
    store.cancel_instances(run_id, None, "the submission of the run failed")
    store.set_run_status(run_id, "FAILED", release=True)


def _checked(
    wf: Pipeline, params: Mapping[str, Any], force_tasks: Iterable[str] | None
) -> tuple[Graph, dict[str, Any], frozenset[str]]:
    """A new run's graph, parameter values and forced tasks, or the error naming what is wrong."""
    graph = wf.validate()
    return graph, resolve_params(graph, params), check_tasks(graph, force_tasks, "force_tasks")


def check_tasks(graph: Graph, names: Iterable[str] | str | None, what: str) -> frozenset[str]:
    """The task names given (one or several) if the graph has them; ValidationError if not."""
    if names is None:
        return frozenset()
    if isinstance(names, str):
        names = [names]
    out = set()
    for n in names:
        if n not in graph.tasks:
            import difflib

            close = difflib.get_close_matches(n, list(graph.tasks), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValidationError(
                f"{what} names unknown task '{n}'.{hint} Tasks: {', '.join(graph.order)}"
            )
        out.add(n)
    return frozenset(out)


def _run_options(force: bool, forced: Iterable[str], verify: bool, **more: Any) -> dict[str, Any]:
    """The options a run records: what its later passes, `retry` and `status` go by."""
    return {"force": force, "force_tasks": sorted(forced), "verify": verify, **more}


def task_rows(graph: Graph) -> list[tuple[str, int, bool, str]]:
    """The graph's tasks as store rows: (name, position, is_array, spec JSON)."""
    import json

    rows = []
    for pos, name in enumerate(graph.order):
        spec = graph.tasks[name]
        doc = {
            "version": spec.version,
            "array": spec.array,
            "cache": spec.cache,
            "after": list(spec.after),
            "inputs": [
                {"arg": i.arg, "steps": [s.step for s in i.sources], "mode": i.mode.value}
                for i in graph.inputs[name]
            ],
            "params": graph.param_keys(name),
            "returns": type_name(spec.returns),
            "resources": {
                "cpus": spec.cpus,
                "time": spec.time,
                "mem": spec.mem,
                "array_parallelism": spec.array_parallelism,
                **{k: v for k, v in spec.options.items() if _jsonable(v)},
            },
        }
        if spec.backend is not None:  # reflow-hpc's hint: recorded, otherwise unused
            doc["backend"] = spec.backend
        if spec.retries:  # automatic retries (retrying.py), for what `status` says of them
            doc["retry"] = {
                "retries": spec.retries, "retry_on": list(spec.retry_on),
                "retry_delay": spec.retry_delay, "backoff": spec.backoff,
                "escalate": spec.escalate, "max_mem": spec.max_mem, "max_time": spec.max_time,
            }  # fmt: skip
        rows.append((name, pos, spec.array, json.dumps(doc, sort_keys=True)))
    return rows


def _jsonable(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def _run_dir_path(run_dir: str | os.PathLike[str]) -> Path:
    """The run directory's absolute path (not created); ValidationError if none is given."""
    if run_dir is None or str(run_dir).strip() == "":
        raise ValidationError("a run directory is needed: pass run_dir= (or --run-dir)")
    return Path(run_dir).expanduser().absolute()


def prepare_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Create the run directory if needed and return its absolute path."""
    directory = _run_dir_path(run_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReflowError(
            f"cannot create the run directory {directory}: {exc.strerror}; choose a writable "
            "--run-dir"
        ) from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise ReflowError(
            f"the run directory {directory} is not writable; choose a writable --run-dir"
        )
    return directory
