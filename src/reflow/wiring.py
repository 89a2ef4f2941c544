"""Wiring: infer how each upstream output reaches its consumer, validate, order.

`build_graph` turns the tasks of a workflow into an immutable `Graph`, or
raises `ValidationError` with a message a user can act on.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol, Union

from .errors import MissingParameterError, ValidationError
from .flow import TaskSpec
from .params import MISSING, ArgSpec, coerce_param, optional_inner, type_name
from .records import FrozenRecord

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "Graph", "Input", "Mode", "ParamSpec", "Pipeline", "Source", "build_graph", "resolve_params",
]  # fmt: skip


class Mode(str, enum.Enum):
    """How an argument receives upstream values."""

    DIRECT = "direct"  # a singleton's whole output
    FANOUT = "fanout"  # one item of a list per array element
    GATHER = "gather"  # all elements of an array task, in index order
    CHAIN = "chain"  # element i of an array task feeds element i
    BROADCAST = "broadcast"  # the whole value to every element

    @property
    def per_item(self) -> bool:
        """True when each array element receives its own item."""
        return self in (Mode.FANOUT, Mode.CHAIN)


class Part(str, enum.Enum):
    """What one upstream task contributes to an argument."""

    VALUE = "value"  # a singleton's output as one value
    ITEMS = "items"  # a singleton's list output, item by item
    ELEMENTS = "elements"  # an array task's element outputs
    ITEM = "item"  # a singleton's output as a single list item (steps=[...])


def _set(record: FrozenRecord, values: dict[str, Any]) -> None:
    for name in record._field_names:
        object.__setattr__(record, name, values[name])


class Source(FrozenRecord):
    """One upstream task feeding an argument and what it contributes."""

    __slots__ = ("part", "step")
    step: str
    part: Part

    def __init__(self, step: str, part: Part) -> None:
        _set(self, locals())


class Input(FrozenRecord):
    """An argument fed by upstream results."""

    __slots__ = ("arg", "concat", "mode", "sources")
    arg: str
    sources: tuple[Source, ...]
    mode: Mode
    concat: bool

    def __init__(self, arg: str, sources: tuple[Source, ...], mode: Mode, concat: bool) -> None:
        _set(self, locals())


class ParamSpec(FrozenRecord):
    """A run parameter: its key in `**params`, type, default and the tasks that take it."""

    __slots__ = ("annotation", "arg", "default", "help", "key", "local", "short", "tasks")
    key: str
    arg: str
    annotation: Any
    default: Any
    help: str
    short: str | None
    tasks: tuple[str, ...]
    local: bool

    def __init__(
        self,
        key: str,
        arg: str,
        annotation: Any,
        default: Any,
        help: str,
        short: str | None,
        tasks: tuple[str, ...],
        local: bool,
    ) -> None:
        _set(self, locals())

    @property
    def required(self) -> bool:
        """True when the parameter has no default."""
        return self.default is MISSING

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. `--s3-secret`."""
        return "--" + self.key.replace("_", "-")


class Graph(FrozenRecord):
    """The validated, immutable task graph of a workflow."""

    __slots__ = ("downstream", "inputs", "name", "order", "params", "tasks")
    name: str
    tasks: Mapping[str, TaskSpec]
    inputs: Mapping[str, tuple[Input, ...]]
    order: tuple[str, ...]
    params: Mapping[str, ParamSpec]
    downstream: Mapping[str, tuple[str, ...]]

    def __init__(
        self,
        name: str,
        tasks: Mapping[str, TaskSpec],
        inputs: Mapping[str, tuple[Input, ...]],
        order: tuple[str, ...],
        params: Mapping[str, ParamSpec],
        downstream: Mapping[str, tuple[str, ...]],
    ) -> None:
        _set(self, locals())

    def param_keys(self, task: str) -> dict[str, str]:
        """Map each run-parameter argument of `task` to its key in `**params`."""
        keys: dict[str, str] = {}
        for a in self.tasks[task].args:
            if a.kind == "param":
                assert a.param is not None
                keys[a.name] = f"{task}_{a.name}" if a.param.namespace == "local" else a.name
        return keys


class Pipeline(Protocol):
    """What the layers below the facade need of a workflow (`reflow.Workflow` is one).

    Its name, its tasks, its checked graph, and the configuration it runs with.
    """

    @property
    def name(self) -> str: ...

    @property
    def tasks(self) -> Mapping[str, TaskSpec]: ...

    @property
    def config(self) -> Config: ...

    def validate(self) -> Graph: ...


def _suggest(name: str, choices: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def _is_any(t: Any) -> bool:
    return t is Any or t is object


def compatible(provided: Any, wanted: Any) -> bool:
    """True when a value of type `provided` may be passed where `wanted` is declared."""
    if _is_any(provided) or _is_any(wanted) or provided == wanted:
        return True
    w_origin, p_origin = typing.get_origin(wanted), typing.get_origin(provided)
    if p_origin in (Union, _UNION_TYPE):
        return all(compatible(p, wanted) for p in typing.get_args(provided))
    if w_origin in (Union, _UNION_TYPE):
        return any(compatible(provided, w) for w in typing.get_args(wanted))
    if w_origin is typing.Literal:
        if p_origin is typing.Literal:
            return set(typing.get_args(provided)) <= set(typing.get_args(wanted))
        return False
    if p_origin is typing.Literal:
        return all(compatible(type(v), wanted) for v in typing.get_args(provided))
    if provided is int and wanted is float:
        return True
    if w_origin is not None or p_origin is not None:
        if _base(w_origin or wanted) is not _base(p_origin or provided):
            return False
        w_args, p_args = typing.get_args(wanted), typing.get_args(provided)
        if not w_args or not p_args:
            return True
        if len(w_args) != len(p_args):
            return False
        return all(compatible(p, w) for p, w in zip(p_args, w_args, strict=True))
    if isinstance(provided, type) and isinstance(wanted, type):
        if issubclass(wanted, PurePath) and issubclass(provided, PurePath):
            return True
        return issubclass(provided, wanted)
    return False


_UNION_TYPE: Any = getattr(__import__("types"), "UnionType", Union)


def _base(t: Any) -> Any:
    import collections.abc as cabc

    return {cabc.Sequence: list, cabc.Mapping: dict, typing.List: list}.get(t, t)  # noqa: UP006


def list_item(t: Any) -> Any | None:
    """The item type of `list[T]` (Any for a bare list), or None if `t` is not a list."""
    origin = typing.get_origin(t)
    if t is list or origin in (list, Sequence):
        args = typing.get_args(t)
        return args[0] if args else Any
    if _is_any(t):
        return Any
    return None


def _infer(task: TaskSpec, arg: ArgSpec, tasks: Mapping[str, TaskSpec]) -> Input:
    assert arg.result is not None
    res, want = arg.result, arg.annotation
    where = f"task '{task.name}', argument '{arg.name}'"
    if not res.concat:
        up = tasks[res.steps[0]]
        r = up.returns
        if up.array:
            if task.array and not res.broadcast and compatible(r, want):
                return Input(arg.name, (Source(up.name, Part.ELEMENTS),), Mode.CHAIN, False)
            if compatible(list[r], want):  # type: ignore[valid-type]
                mode = Mode.BROADCAST if task.array else Mode.GATHER
                return Input(arg.name, (Source(up.name, Part.ELEMENTS),), mode, False)
            raise ValidationError(
                f"{where} takes {type_name(want)} but '{up.name}' is an array task returning "
                f"{type_name(r)}: take list[{type_name(r)}] to gather its elements"
                + ("" if task.array else f", or make '{task.name}' an array task to chain")
            )
        item = list_item(r)
        if task.array and not res.broadcast and item is not None and compatible(item, want):
            return Input(arg.name, (Source(up.name, Part.ITEMS),), Mode.FANOUT, False)
        if compatible(r, want):
            mode = Mode.BROADCAST if task.array else Mode.DIRECT
            return Input(arg.name, (Source(up.name, Part.VALUE),), mode, False)
        raise ValidationError(
            f"{where} takes {type_name(want)} but '{up.name}' returns {type_name(r)}: "
            "make the types agree"
            + (
                f", or return list[{type_name(want)}] from '{up.name}' to fan out"
                if task.array
                else ""
            )
        )
    # steps=[a, b]: the upstream values are concatenated into one list
    sources: list[Source] = []
    item_types: list[tuple[str, Any]] = []
    for step in res.steps:
        up = tasks[step]
        if up.array:
            sources.append(Source(step, Part.ELEMENTS))
            item_types.append((step, up.returns))
        elif list_item(up.returns) is not None and not _is_any(up.returns):
            sources.append(Source(step, Part.ITEMS))
            item_types.append((step, list_item(up.returns)))
        else:
            sources.append(Source(step, Part.ITEM))
            item_types.append((step, up.returns))
    if task.array and not res.broadcast and all(compatible(t, want) for _, t in item_types):
        return Input(arg.name, tuple(sources), Mode.FANOUT, True)
    item_want = list_item(want)
    if item_want is not None and all(compatible(t, item_want) for _, t in item_types):
        mode = Mode.BROADCAST if task.array else Mode.DIRECT
        return Input(arg.name, tuple(sources), mode, True)
    bad = next((s, t) for s, t in item_types if not compatible(t, item_want if item_want else want))
    raise ValidationError(
        f"{where} takes {type_name(want)} but '{bad[0]}' contributes items of type "
        f"{type_name(bad[1])} to steps={list(res.steps)}: make the types agree"
    )


def _find_cycle(deps: Mapping[str, Sequence[str]], nodes: Sequence[str]) -> list[str] | None:
    color: dict[str, int] = dict.fromkeys(nodes, 0)
    for root in nodes:
        if color[root]:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, i = stack.pop()
            if i == 0:
                color[node] = 1
                path.append(node)
            children = deps[node]
            if i < len(children):
                stack.append((node, i + 1))
                child = children[i]
                if color[child] == 1:
                    return [*path[path.index(child) :], child]
                if color[child] == 0:
                    stack.append((child, 0))
            else:
                color[node] = 2
                path.pop()
    return None


def build_graph(name: str, tasks: Mapping[str, TaskSpec]) -> Graph:
    """Validate `tasks` and return the immutable graph; raise ValidationError if broken."""
    if not tasks:
        raise ValidationError(f"workflow '{name}' has no tasks: add one with @wf.job()")
    names = list(tasks)
    for t in tasks.values():
        for a in t.args:
            for step in a.result.steps if a.result else ():
                if step not in tasks:
                    raise ValidationError(
                        f"task '{t.name}', argument '{a.name}': Result names unknown task "
                        f"'{step}'.{_suggest(step, names)}"
                    )
                if step == t.name:
                    raise ValidationError(f"task '{t.name}' cannot take its own Result")
        for step in t.after:
            if step not in tasks:
                raise ValidationError(
                    f"task '{t.name}': after= names unknown task '{step}'.{_suggest(step, names)}"
                )
    deps = {n: list(t.upstream) for n, t in tasks.items()}
    cycle = _find_cycle(deps, names)
    if cycle is not None:
        raise ValidationError(
            "the tasks form a cycle: " + " -> ".join(reversed(cycle)) + "; remove one of these "
            "dependencies"
        )
    order = _topological(deps, names)
    inputs: dict[str, tuple[Input, ...]] = {}
    for n in order:
        t = tasks[n]
        ins = tuple(_infer(t, a, tasks) for a in t.args if a.kind == "result")
        if t.array and not any(i.mode.per_item for i in ins):
            raise ValidationError(
                f"array task '{n}' has nothing to fan out over: give it a Result argument fed "
                "by a task that returns a list, or by another array task, or drop array=True"
            )
        inputs[n] = ins
    downstream: dict[str, list[str]] = {n: [] for n in names}
    for n in order:
        for up in deps[n]:
            downstream[up].append(n)
    return Graph(
        name=name,
        tasks=dict(tasks),
        inputs=inputs,
        order=tuple(order),
        params=_collect_params(tasks, order),
        downstream={k: tuple(v) for k, v in downstream.items()},
    )


def _topological(deps: Mapping[str, Sequence[str]], names: Sequence[str]) -> list[str]:
    """Kahn's algorithm, stable: among ready tasks, definition order wins."""
    pos = {n: i for i, n in enumerate(names)}
    remaining = {n: len(set(deps[n])) for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for n in names:
        for d in set(deps[n]):
            users[d].append(n)
    import heapq

    ready = [(pos[n], n) for n in names if remaining[n] == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        _, n = heapq.heappop(ready)
        order.append(n)
        for u in users[n]:
            remaining[u] -= 1
            if remaining[u] == 0:
                heapq.heappush(ready, (pos[u], u))
    return order


#: keyword arguments of run_local() / submit(): a run parameter cannot share their names
RESERVED_PARAMS = frozenset(
    {"run_dir", "store", "force", "force_tasks", "verify", "max_workers", "on_error", "executor"}
)


def _collect_params(tasks: Mapping[str, TaskSpec], order: Sequence[str]) -> dict[str, ParamSpec]:
    params: dict[str, ParamSpec] = {}
    for n in order:
        for a in tasks[n].args:
            if a.kind != "param":
                continue
            assert a.param is not None
            local = a.param.namespace == "local"
            key = f"{n}_{a.name}" if local else a.name
            if key in RESERVED_PARAMS:
                raise ValidationError(
                    f"parameter '{key}' of task '{n}' has the name of an argument of run_local() "
                    f"and submit() ({', '.join(sorted(RESERVED_PARAMS))}): rename it"
                )
            old = params.get(key)
            if old is None:
                params[key] = ParamSpec(
                    key, a.name, a.annotation, a.default, a.param.help, a.param.short, (n,), local
                )
                continue
            if old.local or local:
                raise ValidationError(
                    f"parameter '{key}' of task '{n}' clashes with the local parameter of "
                    f"task '{old.tasks[0]}': rename one of them"
                )
            if old.annotation != a.annotation and not (
                optional_inner(old.annotation) == a.annotation
                or optional_inner(a.annotation) == old.annotation
            ):
                raise ValidationError(
                    f"parameter '{key}' is {type_name(old.annotation)} in task "
                    f"'{old.tasks[0]}' but {type_name(a.annotation)} in task '{n}': tasks "
                    "share a parameter by name, so give them one type, or use "
                    "Param(namespace='local')"
                )
            if old.default is not MISSING and a.default is not MISSING and old.default != a.default:
                raise ValidationError(
                    f"parameter '{key}' has default {old.default!r} in task '{old.tasks[0]}' "
                    f"but {a.default!r} in task '{n}': give them one default, or use "
                    "Param(namespace='local')"
                )
            params[key] = ParamSpec(
                key,
                a.name,
                old.annotation,
                old.default if old.default is not MISSING else a.default,
                old.help or a.param.help,
                old.short or a.param.short,
                (*old.tasks, n),
                False,
            )
    shorts: dict[str, str] = {}
    for p in params.values():
        if p.short:
            if p.short in shorts:
                raise ValidationError(
                    f"parameters '{shorts[p.short]}' and '{p.key}' both use short flag "
                    f"'{p.short}': give each its own"
                )
            shorts[p.short] = p.key
    return params


# ---------------------------------------------------------------------- run parameters


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
        raise MissingParameterError(
            f"missing required parameter{'s' if len(missing) > 1 else ''} {names}"
        )
    values: dict[str, Any] = {}
    for p in graph.params.values():
        if p.key in given:
            values[p.key] = coerce_param(p.key, p.annotation, given[p.key])
        else:
            assert p.default is not MISSING
            values[p.key] = p.default
    return values
