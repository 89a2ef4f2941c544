"""Workflow: a Flow that can be validated and run.  Thin glue over the engine."""

from __future__ import annotations

import os
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Literal

from .errors import ReflowError, ValidationError
from .flow import Flow
from .params import MISSING, optional_inner, type_name

# The engine, the store, the executors and the codec load when a run needs them, not
# when a pipeline script is imported: `--help` and `status` stay fast.
if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine
    from .executors.base import Executor
    from .run import Run
    from .stores.sqlite import SqliteStore
    from .wiring import Graph, ParamSpec

__all__ = ["FOREGROUND", "Workflow"]

#: the executor recorded for runs driven in the foreground by run_local / `run`
FOREGROUND = "foreground"


class Workflow(Flow):
    """A named graph of tasks that reflow can run locally or on a cluster."""

    def __init__(self, name: str, config: Config | None = None) -> None:
        super().__init__(name)
        self._config = config
        self._graph: Graph | None = None
        self._graph_generation = -1

    @property
    def config(self) -> Config:
        """The configuration in force (loaded on first use unless given)."""
        if self._config is None:
            from .config import load_config

            self._config = load_config()
        return self._config

    def validate(self) -> Graph:
        """Check the wiring and return the graph; raise ValueError naming what is wrong."""
        if self._graph is None or self._graph_generation != self._generation:
            from .wiring import build_graph

            self._graph = build_graph(self.name, self.tasks)
            self._graph_generation = self._generation
        return self._graph

    def cli(self, argv: Sequence[str] | None = None) -> int:
        """Run the pipeline's command line (`run`, `status`, `retry`, ...); return the exit code."""
        from .cli import workflow_cli

        return workflow_cli(self, argv)

    def _store(self, store: SqliteStore | str | os.PathLike[str] | None) -> SqliteStore:
        from .stores.sqlite import SqliteStore

        if isinstance(store, SqliteStore):
            return store
        if store is not None:
            return SqliteStore(store)
        return SqliteStore(self.config.resolved_store_path()) if self._config else SqliteStore()

    def run_local(
        self,
        run_dir: str | os.PathLike[str],
        *,
        store: SqliteStore | str | os.PathLike[str] | None = None,
        force: bool = False,
        force_tasks: Iterable[str] | None = None,
        verify: bool = False,
        max_workers: int = 1,
        on_error: Literal["stop", "continue"] = "stop",
        **params: Any,
    ) -> Run:
        """Run the whole graph on this machine and return the finished Run.

        A task that fails does not raise: the run ends FAILED (see `run.status()`).
        """
        return self._run_local(
            run_dir, store=store, force=force, force_tasks=force_tasks, verify=verify,
            max_workers=max_workers, on_error=on_error, params=params,
        )  # fmt: skip

    def _run_local(
        self,
        run_dir: str | os.PathLike[str],
        *,
        store: SqliteStore | str | os.PathLike[str] | None,
        force: bool,
        force_tasks: Iterable[str] | None,
        verify: bool,
        max_workers: int,
        on_error: str,
        params: Mapping[str, Any],
        progress: Callable[[Engine], None] | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> Run:
        from . import codec
        from .engine import Engine
        from .run import Run

        graph = self.validate()
        values = resolve_params(graph, params)
        forced = _check_tasks(graph, force_tasks, "force_tasks")
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValidationError(f"max_workers={max_workers!r} must be a whole number >= 1")
        if on_error not in ("stop", "continue"):
            raise ValidationError(f"on_error={on_error!r} is not valid: use 'stop' or 'continue'")
        directory = prepare_run_dir(run_dir)
        st = self._store(store)
        options = {
            "force": force,
            "force_tasks": sorted(forced),
            "verify": verify,
            "max_workers": max_workers,
            "on_error": on_error,
        }
        run_id = st.create_run(
            self.name,
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
        )  # fmt: skip
        engine.on_progress = progress
        if on_start is not None:
            on_start(run_id)
        from .local import drive

        drive(engine, max_workers)
        return Run(run_id, st, workflow=self)

    def submit(
        self,
        run_dir: str | os.PathLike[str],
        *,
        executor: str | Executor | None = None,
        store: SqliteStore | str | os.PathLike[str] | None = None,
        force: bool = False,
        force_tasks: Iterable[str] | None = None,
        verify: bool = False,
        **params: Any,
    ) -> Run:
        """Record the run, submit its first wave to the scheduler, and return.

        The rest of the graph is driven on the cluster by a small chained
        dispatcher job.  A fully cached run submits nothing and returns finished.
        `executor` is a name ("slurm", "local", "dry-run", ...) or an Executor;
        the default comes from the config (`[executor] mode`, `REFLOW_MODE`).
        """
        import shutil

        from . import codec
        from .dispatch import dispatch_pass, executor_record, make_executor
        from .executors.base import SchedulerError
        from .loader import workflow_origin
        from .results import run_files
        from .run import Run

        graph = self.validate()
        values = resolve_params(graph, params)
        forced = _check_tasks(graph, force_tasks, "force_tasks")
        config = self.config
        ex = make_executor(executor, config)
        origin = workflow_origin(self)
        directory = prepare_run_dir(run_dir)
        st = self._store(store)
        options = {
            "force": force,
            "force_tasks": sorted(forced),
            "verify": verify,
            "on_error": "continue",
            "origin": origin,
            "python": config.python,
            "cwd": os.getcwd(),
            "submit_options": dict(config.submit_options),
            "executor": executor_record(ex),
        }
        run_id = st.create_run(
            self.name,
            run_dir=str(directory),
            executor=ex.name,
            params=codec.dumps(values),
            options=codec.dumps(options),
            tasks=task_rows(graph),
        )
        dry = ex.name == "dry-run"
        try:
            dispatch_pass(self, st, run_id, ex, config=config, chain=not dry)
        except (SchedulerError, OSError) as exc:
            _abandon(st, run_id, ex)
            if isinstance(exc, OSError):
                raise ReflowError(f"cannot submit run '{run_id}': {exc}") from None
            raise
        finally:
            if dry:
                st.delete_run(run_id)
                shutil.rmtree(run_files(directory, run_id, "work"), ignore_errors=True)
        run = Run(run_id, st, workflow=self)
        run.dry_run = dry
        return run

    def _resume(
        self,
        run: Run,
        *,
        tasks: Iterable[str] | None,
        verify: bool,
        progress: Callable[[Engine], None] | None = None,
    ) -> int:
        """Drive an existing local run again (retry); return how many instances were reset."""
        from .engine import Engine

        graph = self.validate()
        info = run.info()
        if info["graph_name"] != self.name:
            raise ReflowError(
                f"run '{run.run_id}' belongs to workflow '{info['graph_name']}', not "
                f"'{self.name}': retry it with that workflow's script"
            )
        retry_tasks = _check_tasks(graph, tasks, "task") if tasks is not None else None
        options = info["options"] if isinstance(info["options"], dict) else {}
        params = info["params"] if isinstance(info["params"], dict) else {}
        try:
            values = resolve_params(graph, params)
        except ValidationError as exc:
            raise ReflowError(
                f"run '{run.run_id}' cannot be retried with this version of the workflow: {exc}"
            ) from None
        directory = prepare_run_dir(info["run_dir"])
        if info["executor"] != FOREGROUND:
            return self._resume_cluster(run, info, retry_tasks, verify)
        run.store.claim_run(run.run_id, current_owner(), alive=owner_alive)
        engine = Engine(
            graph, run.store, run.run_id, params=values, run_dir=directory, verify=verify,
            retry_tasks=retry_tasks, on_error=str(options.get("on_error", "stop")), resume=True,
            write_once=True,
        )  # fmt: skip
        engine.on_progress = progress
        from .local import drive

        drive(engine, int(options.get("max_workers", 1)))
        return engine.reset

    def _resume_cluster(
        self, run: Run, info: Mapping[str, Any], tasks: frozenset[str] | None, verify: bool
    ) -> int:
        """Retry a scheduler run: reset what failed and submit it through its executor."""
        from .dispatch import dispatch_pass, make_executor

        options = info["options"] if isinstance(info["options"], dict) else {}
        ex = make_executor(options.get("executor"), self.config)
        dispatcher = info.get("dispatcher")
        if info["status"] == "RUNNING" and dispatcher:
            status = ex.states([dispatcher]).get(dispatcher)
            if status is None or not status.state.final:
                raise ReflowError(
                    f"run '{run.run_id}' is still being dispatched (job {dispatcher}): wait "
                    "for it to finish, or cancel it first"
                )
        run.store.set_run_status(run.run_id, "RUNNING")
        res = dispatch_pass(
            self,
            run.store,
            run.run_id,
            ex,
            config=self.config,
            retry=True,
            retry_tasks=None if tasks is None else sorted(tasks),
            verify=verify,
        )
        return res.reset


def _abandon(store: SqliteStore, run_id: str, executor: Executor) -> None:
    """After a failed submission: cancel what was submitted; the run ends FAILED."""
    jobs = sorted({executor.job_of(j) for *_, j, _ in store.in_flight(run_id) if j})
    if jobs:
        executor.cancel(jobs)
    store.cancel_instances(run_id, None, "the submission of the run failed")
    store.set_run_status(run_id, "FAILED", release=True)


def _check_tasks(graph: Graph, names: Iterable[str] | str | None, what: str) -> frozenset[str]:
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
        rows.append((name, pos, spec.array, json.dumps(doc, sort_keys=True)))
    return rows


def _jsonable(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool)) or v is None


def prepare_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """Create the run directory if needed and return its absolute path."""
    if run_dir is None or str(run_dir).strip() == "":
        raise ValidationError("a run directory is needed: pass run_dir= (or --run-dir)")
    directory = Path(run_dir).expanduser().absolute()
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


def _process_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); [] if none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    fields = _process_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def current_owner() -> tuple[str, int, str]:
    """This process as a run owner: (host, pid, start time)."""
    import socket

    pid = os.getpid()
    return socket.gethostname(), pid, _process_start(pid)


def owner_alive(host: str | None, pid: int | None, start: str | None) -> bool:
    """Whether a recorded run owner still runs (assumed so when on another host)."""
    if pid is None:
        return False
    import socket

    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _process_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, but its parent has not reaped it yet
        return False
    return not start or (fields[19] if len(fields) > 19 else "") == start


# ---------------------------------------------------------------------- parameters


def resolve_params(graph: Graph, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check run parameters against the graph; return every parameter's value."""
    unknown = [k for k in given if k not in graph.params]
    if unknown:
        import difflib

        hints = []
        for k in unknown:
            which = "It" if len(unknown) == 1 else f"'{k}'"
            local = [p.key for p in graph.params.values() if p.local and p.arg == k]
            close = difflib.get_close_matches(k, list(graph.params), n=1)
            if local:
                hints.append(f" {which} is local to its task: pass {' or '.join(local)}.")
            elif close:
                hints.append(
                    f" Did you mean '{close[0]}'" + ("?" if which == "It" else f" for {which}?")
                )
        names = ", ".join(f"'{k}'" for k in unknown)
        known = ", ".join(graph.params) or "none"
        raise ValidationError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {names} for workflow "
            f"'{graph.name}'.{''.join(hints)} Parameters: {known}"
        )
    missing = [p for p in graph.params.values() if p.required and p.key not in given]
    if missing:
        names = ", ".join(f"'{p.key}' ({p.flag})" for p in missing)
        raise ValidationError(
            f"missing required parameter{'s' if len(missing) > 1 else ''} {names}"
        )
    values: dict[str, Any] = {}
    for p in graph.params.values():
        if p.key in given:
            values[p.key] = coerce(p, given[p.key])
        else:
            assert p.default is not MISSING
            values[p.key] = p.default
    return values


def coerce(p: ParamSpec, value: Any) -> Any:
    """Check `value` against the parameter's type; convert str -> Path and int -> float."""
    try:
        return _coerce(p.annotation, value)
    except _Mismatch:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise ValidationError(
            f"parameter '{p.key}' expects {type_name(p.annotation)}, got "
            f"{type(value).__name__} {shown}"
        ) from None


class _Mismatch(Exception):
    pass


def _coerce(t: Any, v: Any) -> Any:
    if t is Any:
        return v
    inner = optional_inner(t)
    if inner is not None:
        return None if v is None else _coerce(inner, v)
    origin = typing.get_origin(t)
    if origin is Literal:
        if v in typing.get_args(t) and not (isinstance(v, bool) and True not in typing.get_args(t)):
            return v
        raise _Mismatch
    if t is list or origin in (list, typing.Sequence):
        if not isinstance(v, (list, tuple)):
            raise _Mismatch
        args = typing.get_args(t)
        return [_coerce(args[0], x) for x in v] if args else list(v)
    if t is bool:
        if isinstance(v, bool):
            return v
        raise _Mismatch
    if t is int:
        if isinstance(v, int) and not isinstance(v, bool):
            return v
        raise _Mismatch
    if t is float:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise _Mismatch
    if t is str:
        if isinstance(v, str):
            return v
        raise _Mismatch
    if isinstance(t, type) and issubclass(t, PurePath):
        if isinstance(v, (str, PurePath)):
            return Path(v)
        raise _Mismatch
    return v
