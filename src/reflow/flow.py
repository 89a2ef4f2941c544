"""Task definitions: `TaskSpec`, the `@job` decorator and reusable `Flow`s.

A `Flow` is only a named collection of task specs; it has no execution
machinery.  `Workflow` (workflow.py) adds running on top of it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, overload

from .errors import ValidationError
from .params import ArgSpec, read_signature
from .records import FrozenRecord
from .resources import ResourceError, normal_mem, normal_pack, normal_time

__all__ = ["Flow", "TaskSpec"]

F = TypeVar("F", bound=Callable[..., Any])

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TaskSpec(FrozenRecord):
    """Everything reflow knows about one task: its function, arguments and options.

    `pack`: instances per array element on a scheduler: a whole number, "auto",
    or None (the run's setting: `submit --pack`, `[executor] pack`, else "auto").
    `fuse`: whether this singleton may run in one job with the singletons it
    feeds or follows.
    """

    __slots__ = (
        "after",
        "args",
        "array",
        "array_parallelism",
        "cache",
        "cpus",
        "func",
        "fuse",
        "mem",
        "name",
        "options",
        "pack",
        "returns",
        "time",
        "verify",
        "version",
    )  # fmt: skip
    name: str
    func: Callable[..., Any]
    args: tuple[ArgSpec, ...]
    returns: Any
    array: bool
    array_parallelism: int | None
    cache: bool
    version: str
    verify: Callable[[Any], bool] | None
    after: tuple[str, ...]
    cpus: int | None
    time: str | None
    mem: str | None
    options: Mapping[str, Any]
    pack: int | str | None
    fuse: bool

    def __init__(
        self,
        name: str,
        func: Callable[..., Any],
        args: tuple[ArgSpec, ...],
        returns: Any,
        array: bool = False,
        array_parallelism: int | None = None,
        cache: bool = True,
        version: str = "1",
        verify: Callable[[Any], bool] | None = None,
        after: tuple[str, ...] = (),
        cpus: int | None = None,
        time: str | None = None,
        mem: str | None = None,
        options: Mapping[str, Any] | None = None,
        pack: int | str | None = None,
        fuse: bool = True,
    ) -> None:
        values = locals()
        for field in self._field_names:
            object.__setattr__(self, field, values[field])
        if options is None:
            object.__setattr__(self, "options", {})

    @property
    def upstream(self) -> tuple[str, ...]:
        """Names of the tasks this one depends on (data and order), without repeats."""
        names: list[str] = []
        for a in self.args:
            if a.result is not None:
                names.extend(s for s in a.result.steps if s not in names)
        names.extend(s for s in self.after if s not in names)
        return tuple(names)

    def renamed(self, name: str, mapping: dict[str, str]) -> TaskSpec:
        """A copy called `name` whose references are rewritten through `mapping`."""
        args = tuple(
            a.replace(result=a.result.renamed(mapping)) if a.result is not None else a
            for a in self.args
        )
        after = tuple(mapping.get(s, s) for s in self.after)
        return self.replace(name=name, args=args, after=after)


def _check_time(value: str | None, task: str) -> str | None:
    if value is None:
        return None
    try:  # the same rule as the config file's [dispatch] time
        return normal_time(value)
    except ResourceError:
        raise ValidationError(
            f"task '{task}': time={value!r} is not a time limit: use 'HH:MM:SS' or 'D-HH:MM:SS'"
        ) from None


def _check_mem(value: str | int | None, task: str) -> str | None:
    if value is None:
        return None
    try:  # the same rule as the config file's [dispatch] mem: '4G', '500M', 4096 (MB)
        return normal_mem(value)
    except ResourceError:
        raise ValidationError(
            f"task '{task}': mem={value!r} is not a memory size: use e.g. '500M' or '4G'"
        ) from None


def _check_positive(value: int | None, what: str, task: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"task '{task}': {what}={value!r} must be a whole number >= 1")
    return value


def check_pack(value: object, what: str) -> int | str | None:
    """`value` as a pack setting ("auto", or a whole number >= 1; None: not set)."""
    if value is None:
        return None
    try:
        return normal_pack(value)
    except ResourceError as exc:
        raise ValidationError(f"{what}={value!r} is not valid: use {exc}") from None


def _check_bool(value: object, what: str, task: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(f"task '{task}': {what}={value!r} must be True or False")
    return value


class Flow:
    """A reusable group of tasks with no execution machinery.

    Add tasks with `@flow.job(...)`; put a flow into a workflow with
    `wf.include(flow, prefix="raw")`.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
            raise ValidationError(
                f"name {name!r} is not valid: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit"
            )
        self.name = name
        self._tasks: dict[str, TaskSpec] = {}
        self._generation = 0

    @property
    def tasks(self) -> Mapping[str, TaskSpec]:
        """The tasks, by name, in the order they were defined."""
        return self._tasks

    def _add(self, spec: TaskSpec) -> None:
        if spec.name in self._tasks:
            raise ValidationError(
                f"a task named '{spec.name}' is already defined in '{self.name}': "
                "task names must be unique; rename the function"
            )
        self._tasks[spec.name] = spec
        self._generation += 1

    @overload
    def job(self, func: F, /) -> F: ...

    @overload
    def job(
        self,
        func: None = None,
        /,
        *,
        cpus: int | None = None,
        time: str | None = None,
        mem: str | None = None,
        array: bool = False,
        array_parallelism: int | None = None,
        cache: bool = True,
        version: str | int = "1",
        verify: Callable[[Any], bool] | None = None,
        after: Iterable[str] | str = (),
        partition: str | None = None,
        queue: str | None = None,
        account: str | None = None,
        pack: int | str | None = None,
        fuse: bool = True,
        **options: Any,
    ) -> Callable[[F], F]: ...

    def job(
        self,
        func: F | None = None,
        /,
        *,
        cpus: int | None = None,
        time: str | None = None,
        mem: str | None = None,
        array: bool = False,
        array_parallelism: int | None = None,
        cache: bool = True,
        version: str | int = "1",
        verify: Callable[[Any], bool] | None = None,
        after: Iterable[str] | str = (),
        partition: str | None = None,
        queue: str | None = None,
        account: str | None = None,
        pack: int | str | None = None,
        fuse: bool = True,
        **options: Any,
    ) -> F | Callable[[F], F]:
        """Register a function as a task; the function itself is returned unchanged."""

        def register(fn: F) -> F:
            name = getattr(fn, "__name__", None)
            if not callable(fn) or not isinstance(name, str) or not _NAME.match(name):
                raise ValidationError(f"@job needs a named function, not {fn!r}")
            if verify is not None and not callable(verify):
                raise ValidationError(
                    f"task '{name}': verify= must be a function output -> bool, not {verify!r}"
                )
            if array_parallelism is not None and not array:
                raise ValidationError(
                    f"task '{name}': array_parallelism only applies to array tasks; "
                    "add array=True or drop it"
                )
            args, returns = read_signature(fn, name)
            extra = dict(options)
            for key, value in (("partition", partition), ("queue", queue), ("account", account)):
                if value is not None:
                    extra[key] = value
            spec = TaskSpec(
                name=name,
                func=fn,
                args=args,
                returns=returns,
                array=bool(array),
                array_parallelism=_check_positive(array_parallelism, "array_parallelism", name),
                cache=bool(cache),
                version=str(version),
                verify=verify,
                after=(after,) if isinstance(after, str) else tuple(after),
                cpus=_check_positive(cpus, "cpus", name),
                time=_check_time(time, name),
                mem=_check_mem(mem, name),
                options=extra,
                pack=check_pack(pack, f"task '{name}': pack"),
                fuse=_check_bool(fuse, "fuse", name),
            )
            self._add(spec)
            return fn

        if func is not None:
            return register(func)
        return register

    def array_job(self, func: F | None = None, /, **kwargs: Any) -> Any:
        """Register an array task: the same as `@job(array=True, ...)`."""
        kwargs["array"] = True
        if func is not None:
            return self.job(**kwargs)(func)
        return self.job(**kwargs)

    def include(self, flow: Flow, prefix: str | None = None) -> None:
        """Add `flow`'s tasks, named `<prefix>_<task>`, rewriting its internal references."""
        if prefix is not None and not _NAME.match(prefix):
            raise ValidationError(
                f"include prefix {prefix!r} is not valid: use letters, digits and '_'"
            )
        mapping = {n: (f"{prefix}_{n}" if prefix else n) for n in flow.tasks}
        for name, spec in flow.tasks.items():
            self._add(spec.renamed(mapping[name], mapping))
