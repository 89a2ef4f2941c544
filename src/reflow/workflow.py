"""Workflow: a Flow that can be validated and run.  Thin glue over the engine."""

from __future__ import annotations

import difflib
import os
import socket
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path, PurePath
from typing import Any, Literal

from . import codec
from .config import Config, load_config
from .engine import Engine
from .errors import ReflowError, ValidationError
from .flow import Flow
from .params import MISSING, optional_inner, type_name
from .run import Run
from .stores.sqlite import SqliteStore
from .wiring import Graph, ParamSpec, build_graph

__all__ = ["Workflow"]


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
            self._config = load_config()
        return self._config

    def validate(self) -> Graph:
        """Check the wiring and return the graph; raise ValueError naming what is wrong."""
        if self._graph is None or self._graph_generation != self._generation:
            self._graph = build_graph(self.name, self.tasks)
            self._graph_generation = self._generation
        return self._graph

    def _store(self, store: SqliteStore | str | os.PathLike[str] | None) -> SqliteStore:
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
            executor="local",
            params=codec.dumps(values),
            options=codec.dumps(options),
            tasks=task_rows(graph),
            owner=current_owner(),
        )
        engine = Engine(
            graph, st, run_id, params=values, run_dir=directory, force=force,
            force_tasks=forced, verify=verify, on_error=on_error,
        )  # fmt: skip
        from .local import drive

        drive(engine, max_workers)
        return Run(run_id, st, workflow=self)

    def _resume(self, run: Run, *, tasks: Iterable[str] | None, verify: bool) -> int:
        """Drive an existing local run again (retry); return how many instances were reset."""
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
        run.store.claim_run(run.run_id, current_owner(), alive=owner_alive)
        engine = Engine(
            graph, run.store, run.run_id, params=values, run_dir=directory, verify=verify,
            retry_tasks=retry_tasks, on_error=str(options.get("on_error", "stop")), resume=True,
        )  # fmt: skip
        from .local import drive

        drive(engine, int(options.get("max_workers", 1)))
        return engine.reset


def _check_tasks(graph: Graph, names: Iterable[str] | str | None, what: str) -> frozenset[str]:
    if names is None:
        return frozenset()
    if isinstance(names, str):
        names = [names]
    out = set()
    for n in names:
        if n not in graph.tasks:
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


def _process_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def current_owner() -> tuple[str, int, str]:
    """This process as a run owner: (host, pid, start time)."""
    pid = os.getpid()
    return socket.gethostname(), pid, _process_start(pid)


def owner_alive(host: str | None, pid: int | None, start: str | None) -> bool:
    """Whether a recorded run owner still runs (assumed so when on another host)."""
    if pid is None:
        return False
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return not start or _process_start(pid) == start


# ---------------------------------------------------------------------- parameters


def resolve_params(graph: Graph, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check run parameters against the graph; return every parameter's value."""
    unknown = [k for k in given if k not in graph.params]
    if unknown:
        k = unknown[0]
        local = [p.key for p in graph.params.values() if p.local and p.arg == k]
        if local:
            hint = f" It is local to its task: pass {' or '.join(local)}."
        else:
            close = difflib.get_close_matches(k, list(graph.params), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
        known = ", ".join(graph.params) or "none"
        raise ValidationError(
            f"unknown parameter '{k}' for workflow '{graph.name}'.{hint} Parameters: {known}"
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
