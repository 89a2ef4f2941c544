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
from .resources import ResourceError, delay_seconds, normal_mem, normal_pack, normal_time
from .states import FAILURE_KINDS

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

    Automatic retries (engine `retrying.py`): a failed attempt whose failure
    kind is in `retry_on` is tried again, up to `retries` more times (a
    preempted or node-failed one is requeued without using them), after
    `retry_delay` seconds times `backoff` to the power of the retries used;
    with `escalate`, after running out of memory (time) the next attempt asks
    for twice the memory (time), up to `max_mem` (`max_time`).  `per_attempt`:
    "mem", "time" or "cpus" -> the callable of the attempt number the task gave
    for it, which replaces that rule; `mem`, `time` and `cpus` hold what
    attempt 1 asks for.
    """

    __slots__ = (
        "after",
        "args",
        "array",
        "array_parallelism",
        "backend",
        "backoff",
        "cache",
        "cpus",
        "escalate",
        "func",
        "fuse",
        "max_mem",
        "max_time",
        "mem",
        "name",
        "options",
        "pack",
        "per_attempt",
        "retries",
        "retry_delay",
        "retry_on",
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
    retries: int
    retry_on: tuple[str, ...]
    retry_delay: float | None
    backoff: float
    escalate: bool
    max_mem: str | None
    max_time: str | None
    per_attempt: Mapping[str, Callable[[int], Any]]

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
        retries: int = 0,
        retry_on: tuple[str, ...] = FAILURE_KINDS,
        retry_delay: float | None = None,
        backoff: float = 2.0,
        escalate: bool = True,
        max_mem: str | None = None,
        max_time: str | None = None,
        per_attempt: Mapping[str, Callable[[int], Any]] | None = None,
    ) -> None:
        values = locals()
        for field in self._field_names:
            object.__setattr__(self, field, values[field])
        if options is None:
            object.__setattr__(self, "options", {})
        if per_attempt is None:
            object.__setattr__(self, "per_attempt", {})

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
    "extra", "backend", "retries", "retry_on", "retry_delay", "backoff", "escalate", "max_mem",
    "max_time",
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


def _check_retries(value: object, task: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValidationError(
            f"task '{task}': retries={value!r} must be a whole number >= 0 (how many more "
            "times a failed instance is tried)"
        )
    return value


def _check_retry_on(value: object, task: str) -> tuple[str, ...]:
    """`retry_on=` as failure kinds (one kind, or several; any case), in FAILURE_KINDS' order."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Iterable):
        raise ValidationError(
            f"task '{task}': retry_on={value!r} must name failure kinds among "
            + ", ".join(FAILURE_KINDS)
        )
    kinds = set()
    for item in items:
        kind = item.strip().upper() if isinstance(item, str) else item
        if kind not in FAILURE_KINDS:
            import difflib

            close = difflib.get_close_matches(str(kind), FAILURE_KINDS, n=1, cutoff=0.5)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValidationError(
                f"task '{task}': retry_on names an unknown failure kind {item!r}.{hint} "
                "Use some of: " + ", ".join(FAILURE_KINDS)
            )
        kinds.add(kind)
    return tuple(k for k in FAILURE_KINDS if k in kinds)


def _check_delay(value: object, task: str) -> float | None:
    if value is None:
        return None
    try:
        return delay_seconds(value)
    except ResourceError as exc:
        raise ValidationError(f"task '{task}': {exc}") from None


def _check_backoff(value: object, task: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value < 1e6:
        raise ValidationError(
            f"task '{task}': backoff={value!r} must be a number >= 1 (the factor each "
            "retry's delay grows by; 1 keeps it the same)"
        )
    return float(value)


# how `mem`, `time` and `cpus` are checked, given as values or returned by callables
_RESOURCE_CHECKS: dict[str, Callable[[Any, str], Any]] = {
    "mem": lambda v, task: _check_mem(v, task),
    "time": lambda v, task: _check_time(v, task),
    "cpus": lambda v, task: _check_positive(v, "cpus", task),
}


def _per_attempt(
    task: str, given: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, Callable[[int], Any]]]:
    """(what attempt 1 asks for, the callables) of `mem`, `time` and `cpus`, checked.

    A callable must take the attempt number (1, 2, ...) as its one positional
    argument and return a valid value; it is called for attempt 1 here, so a
    wrong one is refused when the task is defined, not when it first fails.
    """
    first: dict[str, Any] = {}
    rules: dict[str, Callable[[int], Any]] = {}
    for key, value in given.items():
        check = _RESOURCE_CHECKS[key]
        if not callable(value):
            first[key] = check(value, task)
            continue
        import inspect  # only here: a job imports this module, and inspect is slow to

        try:
            inspect.signature(value).bind(1)
        except TypeError:
            raise ValidationError(
                f"task '{task}': {key}= must be a value or a function of the attempt number "
                f"(e.g. {key}=lambda attempt: ...), and {getattr(value, '__name__', value)!r} "
                "does not take exactly one argument"
            ) from None
        except ValueError:  # a builtin without a signature: its call below tells
            pass
        try:
            result = value(1)
        except Exception as exc:
            raise ValidationError(
                f"task '{task}': {key}= (a function of the attempt number) failed for "
                f"attempt 1: {type(exc).__name__}: {exc}"
            ) from None
        try:
            first[key] = check(result, task)
        except ValidationError as exc:
            raise ValidationError(f"{exc} (returned by {key}= for attempt 1)") from None
        rules[key] = value
    return first, rules


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
        cpus: int | Callable[[int], int] | None = None,
        time: str | Callable[[int], str] | None = None,
        mem: str | int | Callable[[int], str | int] | None = None,
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
        retries: int = 0,
        retry_on: Iterable[str] | str = FAILURE_KINDS,
        retry_delay: str | float | None = None,
        backoff: float = 2.0,
        escalate: bool = True,
        max_mem: str | int | None = None,
        max_time: str | None = None,
    ) -> Callable[[F], F]: ...

    def job(
        self,
        func: F | str | None = None,
        /,
        *,
        name: str | None = None,
        cpus: int | Callable[[int], int] | None = None,
        time: str | Callable[[int], str] | None = None,
        mem: str | int | Callable[[int], str | int] | None = None,
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
        retries: int = 0,
        retry_on: Iterable[str] | str = FAILURE_KINDS,
        retry_delay: str | float | None = None,
        backoff: float = 2.0,
        escalate: bool = True,
        max_mem: str | int | None = None,
        max_time: str | None = None,
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
            first, per_attempt = _per_attempt(task, {"mem": mem, "time": time, "cpus": cpus})
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
                cpus=first["cpus"],
                time=first["time"],
                mem=first["mem"],
                options=options,
                pack=check_pack(pack, f"task '{task}': pack"),
                fuse=_check_bool(fuse, "fuse", task),
                backend=backend,
                retries=_check_retries(retries, task),
                retry_on=_check_retry_on(retry_on, task),
                retry_delay=_check_delay(retry_delay, task),
                backoff=_check_backoff(backoff, task),
                escalate=_check_bool(escalate, "escalate", task),
                max_mem=_check_mem(max_mem, task),
                max_time=_check_time(max_time, task),
                per_attempt=per_attempt,
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
