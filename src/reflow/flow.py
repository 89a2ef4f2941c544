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
    feeds or follows.  `options`: scheduler-native submit options (the task's
    `submit_options=`, `partition=`, `queue=`, `account=`).  `backend`:
    reflow-hpc's backend hint, recorded and otherwise unused.
    """

    __slots__ = (
        "after",
        "args",
        "array",
        "array_parallelism",
        "backend",
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
    backend: str | None

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
        backend: str | None = None,
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
    try:  # the one grammar (reflow.resources), as for the config file's [dispatch] time
        return normal_time(value)
    except ResourceError as exc:
        raise ValidationError(f"task '{task}': {exc}") from None


def _check_mem(value: str | int | None, task: str) -> str | None:
    if value is None:
        return None
    try:  # the one grammar (reflow.resources): '4G', '500M', 4096 (MB)
        return normal_mem(value)
    except ResourceError as exc:
        raise ValidationError(f"task '{task}': {exc}") from None


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


#: the keywords of `@job`: reflow's own and reflow-hpc's (whose `**scheduler_options`
#: are `submit_options=` here)
JOB_KEYWORDS = (
    "name", "cpus", "time", "mem", "array", "array_parallelism", "cache", "version",
    "verify", "after", "partition", "queue", "account", "pack", "fuse", "submit_options",
    "extra", "backend",
)  # fmt: skip


#: scheduler options `@job` takes as keywords (SPEC 1: `gpus=1`, `qos="long"`,
#: `constraint="a100"`), passed to the scheduler like `submit_options=` entries;
#: any other scheduler option must go in `submit_options=`, so a typo is an error
SCHEDULER_KEYWORDS = (
    "gpus", "gres", "qos", "constraint", "exclusive", "nodes", "ntasks", "reservation",
    "licenses", "mail_type", "mail_user", "comment",
)  # fmt: skip


def _unknown_keyword(task: str, key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, JOB_KEYWORDS + SCHEDULER_KEYWORDS, n=1, cutoff=0.6)
    hint = f"Did you mean '{close[0]}'? " if close else ""
    return (
        f"task '{task}': @job got an unknown keyword '{key}'. {hint}"
        f"A scheduler option goes in submit_options={{'{key}': ...}}"
    )


def _submit_options(task: str, what: str, value: object) -> dict[str, Any]:
    """`submit_options=` (or `extra=`) checked: option names to plain values."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(
            f"task '{task}': {what}= must be a dict of scheduler options, not {value!r}"
        )
    for key, item in value.items():
        if not isinstance(key, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_-]*$", key):
            raise ValidationError(
                f"task '{task}': {what} key {key!r} is not an option name: use letters, "
                "digits, '_' and '-'"
            )
        if isinstance(item, (list, dict, tuple, set)) or not isinstance(
            item, (str, int, float, bool)
        ):
            raise ValidationError(
                f"task '{task}': {what}[{key!r}]={item!r} must be a string, number or bool"
                if what
                else f"task '{task}': {key}={item!r} must be a string, number or bool"
            )
    return dict(value)


def _check_after(value: Iterable[str] | str | None, task: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(n, str) and n for n in names):
        raise ValidationError(f"task '{task}': after= must name tasks, not {value!r}")
    return names


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
        name: str | None = None,
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
        after: Iterable[str] | str | None = (),
        partition: str | None = None,
        queue: str | None = None,
        account: str | None = None,
        pack: int | str | None = None,
        fuse: bool = True,
        submit_options: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> Callable[[F], F]: ...

    def job(
        self,
        func: F | str | None = None,
        /,
        *,
        name: str | None = None,
        cpus: int | None = None,
        time: str | None = None,
        mem: str | None = None,
        array: bool = False,
        array_parallelism: int | None = None,
        cache: bool = True,
        version: str | int = "1",
        verify: Callable[[Any], bool] | None = None,
        after: Iterable[str] | str | None = (),
        partition: str | None = None,
        queue: str | None = None,
        account: str | None = None,
        pack: int | str | None = None,
        fuse: bool = True,
        submit_options: Mapping[str, Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        backend: str | None = None,
        **unknown: Any,
    ) -> F | Callable[[F], F]:
        """Register a function as a task; the function itself is returned unchanged.

        `@wf.job`, `@wf.job()`, `@wf.job("name")` or `@wf.job(name="name")`
        (the task's name; the function's own by default).  Scheduler-native
        options go in `submit_options={...}` (`extra=` is its older name), or
        as keywords for the common ones in `SCHEDULER_KEYWORDS` (`gpus=1`,
        `qos="long"`, ...); any other keyword is an error, never a scheduler flag.
        """
        if isinstance(func, str):
            if name is not None and name != func:
                raise ValidationError(f"@job({func!r}, name={name!r}): give the task's name once")
            func, name = None, func

        def register(fn: F) -> F:
            task = name if name is not None else getattr(fn, "__name__", None)
            if not callable(fn) or not isinstance(task, str):
                raise ValidationError(f"@job needs a named function, not {fn!r}")
            if not _NAME.match(task):
                raise ValidationError(
                    f"task name {task!r} is not valid: use letters, digits and '_', "
                    "not starting with a digit"
                )
            strangers = sorted(k for k in unknown if k not in SCHEDULER_KEYWORDS)
            if strangers:
                raise ValidationError(_unknown_keyword(task, strangers[0]))
            if verify is not None and not callable(verify):
                raise ValidationError(
                    f"task '{task}': verify= must be a function output -> bool, not {verify!r}"
                )
            if array_parallelism is not None and not array:
                raise ValidationError(
                    f"task '{task}': array_parallelism only applies to array tasks; "
                    "add array=True or drop it"
                )
            if backend is not None and not isinstance(backend, str):
                raise ValidationError(f"task '{task}': backend={backend!r} must be a string")
            args, returns = read_signature(fn, task)
            options = _submit_options(task, "extra", extra)
            options.update(_submit_options(task, "submit_options", submit_options))
            options.update(_submit_options(task, "", unknown))  # gpus=1, qos="long", ...
            for key, value in (("partition", partition), ("queue", queue), ("account", account)):
                if value is not None:
                    options[key] = value
            spec = TaskSpec(
                name=task,
                func=fn,
                args=args,
                returns=returns,
                array=bool(array),
                array_parallelism=_check_positive(array_parallelism, "array_parallelism", task),
                cache=bool(cache),
                version=str(version),
                verify=verify,
                after=_check_after(after, task),
                cpus=_check_positive(cpus, "cpus", task),
                time=_check_time(time, task),
                mem=_check_mem(mem, task),
                options=options,
                pack=check_pack(pack, f"task '{task}': pack"),
                fuse=_check_bool(fuse, "fuse", task),
                backend=backend,
            )
            self._add(spec)
            return fn

        if func is not None:
            return register(func)
        return register

    def array_job(self, func: F | str | None = None, /, **kwargs: Any) -> Any:
        """Register an array task: the same as `@job(array=True, ...)` (a name may come first)."""
        if "array" in kwargs:
            raise ValidationError("@array_job is always an array task: drop array=")
        kwargs["array"] = True
        if isinstance(func, str):
            return self.job(func, **kwargs)
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
