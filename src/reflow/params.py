"""Argument markers (`Param`, `Result`, `RunDir`) and reading a task's signature.

A task's signature is read once, when it is decorated, into `ArgSpec`s: each
argument is a run parameter, an upstream result, or the injected run directory.
"""

from __future__ import annotations

import sys
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, Union

from .errors import ValidationError
from .records import FrozenRecord

__all__ = [
    "MISSING", "ArgSpec", "Param", "Result", "RunDir", "coerce_param", "read_signature",
]  # fmt: skip


class _Missing:
    """Marks an argument without a default value."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Param(FrozenRecord):
    """Describes a run parameter: its help text, a short flag and its namespace.

    `namespace="global"` (the default) shares one value between every task that
    has a parameter of that name; `namespace="local"` gives the task its own
    value, set with `--<task>-<param>` on the command line.
    """

    __slots__ = ("help", "namespace", "short")
    help: str
    short: str | None
    namespace: Literal["global", "local"]

    def __init__(
        self,
        help: str = "",
        short: str | None = None,
        namespace: Literal["global", "local"] = "global",
    ) -> None:
        if namespace not in ("global", "local"):
            raise ValidationError(
                f"Param(namespace={namespace!r}) is not valid: use 'global' or 'local'"
            )
        if short is not None and (
            not isinstance(short, str)
            or not short.startswith("-")
            or short.startswith("--")
            or len(short) != 2
        ):
            raise ValidationError(
                f"Param(short={short!r}) is not valid: use one dash and one letter, like '-s'"
            )
        object.__setattr__(self, "help", help)
        object.__setattr__(self, "short", short)
        object.__setattr__(self, "namespace", namespace)


class Result(FrozenRecord):
    """Marks an argument fed by the output of upstream task(s).

    `Result(step="a")` takes the output of task `a`; `Result(steps=["a", "b"])`
    concatenates the outputs of `a` and `b` in that order; `broadcast=True`
    passes the whole value to every element of an array task.
    """

    __slots__ = ("broadcast", "concat", "steps")
    steps: tuple[str, ...]
    broadcast: bool
    concat: bool

    def __init__(
        self,
        step: str | None = None,
        *,
        steps: Sequence[str] | None = None,
        broadcast: bool = False,
    ) -> None:
        if (step is None) == (steps is None):
            raise ValidationError("Result needs exactly one of step='task' or steps=['a', 'b']")
        if step is not None:
            if not isinstance(step, str) or not step:
                raise ValidationError(f"Result(step=...) must be a task name, not {step!r}")
            names: tuple[str, ...] = (step,)
            concat = False
        else:
            assert steps is not None
            if (
                isinstance(steps, str)
                or not steps
                or not all(isinstance(s, str) and s for s in steps)
            ):
                raise ValidationError(
                    f"Result(steps=...) must be a non-empty list of task names, not {steps!r}"
                )
            names = tuple(steps)
            concat = True
        object.__setattr__(self, "steps", names)
        object.__setattr__(self, "broadcast", bool(broadcast))
        object.__setattr__(self, "concat", concat)

    @property
    def step(self) -> str | None:
        """The single upstream task, or None for `steps=[...]`."""
        return None if self.concat else self.steps[0]

    def renamed(self, mapping: dict[str, str]) -> Result:
        """A copy whose step names are rewritten through `mapping`."""
        new = [mapping.get(s, s) for s in self.steps]
        if self.concat:
            return Result(steps=new, broadcast=self.broadcast)
        return Result(new[0], broadcast=self.broadcast)


class RunDir:
    """Injects the run directory as a `pathlib.Path`; never a command-line flag.

    Use it as the default, `run_dir: RunDir = RunDir()`, or as the annotation.
    """

    def __repr__(self) -> str:
        return "RunDir()"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDir)

    def __hash__(self) -> int:
        return hash(RunDir)


ArgKind = Literal["param", "result", "run_dir"]


class ArgSpec(FrozenRecord):
    """One argument of a task, as read from its signature."""

    __slots__ = ("annotation", "default", "kind", "name", "param", "result")
    name: str
    kind: ArgKind
    annotation: Any
    default: Any
    param: Param | None
    result: Result | None

    def __init__(
        self,
        name: str,
        kind: ArgKind,
        annotation: Any,
        default: Any = MISSING,
        param: Param | None = None,
        result: Result | None = None,
    ) -> None:
        for field, value in (
            ("name", name), ("kind", kind), ("annotation", annotation), ("default", default),
            ("param", param), ("result", result),
        ):  # fmt: skip
            object.__setattr__(self, field, value)

    @property
    def required(self) -> bool:
        """True when a run parameter has no default."""
        return self.default is MISSING


def _split_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, tuple(extras)
    return annotation, ()


def read_signature(func: Callable[..., Any], task: str) -> tuple[tuple[ArgSpec, ...], Any]:
    """Read `func`'s arguments into ArgSpecs and return them with the return type."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # a forward reference that cannot be resolved
        raise ValidationError(
            f"task '{task}': cannot read its type annotations ({exc}); "
            "define the types it names at module level"
        ) from None
    args: list[ArgSpec] = []
    for name, default in _parameters(func, task):
        annotation, extras = _split_annotated(hints.get(name, Any))
        markers = [e for e in extras if isinstance(e, (Param, Result, RunDir))]
        if isinstance(default, (Param, Result)):
            markers.append(default)
            default = MISSING
        if len(markers) > 1:
            raise ValidationError(
                f"task '{task}', argument '{name}': use only one of Param, Result or RunDir"
            )
        marker = markers[0] if markers else None
        if isinstance(marker, RunDir) or isinstance(default, RunDir) or annotation is RunDir:
            from pathlib import Path  # the function is given a Path: a job imports it anyway

            args.append(ArgSpec(name, "run_dir", Path))
        elif isinstance(marker, Result):
            if default is not MISSING:
                raise ValidationError(
                    f"task '{task}', argument '{name}': a Result argument cannot have a default"
                )
            args.append(ArgSpec(name, "result", annotation, result=marker))
        else:
            param = marker if isinstance(marker, Param) else Param()
            _check_param_type(annotation, task, name)
            args.append(ArgSpec(name, "param", annotation, default=default, param=param))
    ret = hints.get("return", Any)
    ret, _ = _split_annotated(ret)
    return tuple(args), ret


_VARARGS, _VARKEYWORDS = 0x04, 0x08  # code flags of a function taking *args, **kwargs


def _parameters(func: Callable[..., Any], task: str) -> list[tuple[str, Any]]:
    """The names of `func`'s arguments, each with its default (or MISSING).

    A plain function is read from its code object; anything else (a partial,
    a callable object, a wrapper that names what it wraps) through
    `inspect.signature`, which a job then imports.
    """
    code = getattr(func, "__code__", None)
    if type(func) is not types.FunctionType or code is None or hasattr(func, "__wrapped__"):
        return _parameters_by_inspect(func, task)
    if code.co_flags & (_VARARGS | _VARKEYWORDS):
        raise ValidationError(
            f"task '{task}': *args and **kwargs are not supported; name each argument"
        )
    positional, keyword = code.co_argcount, code.co_kwonlyargcount
    names = code.co_varnames[: positional + keyword]
    defaults = func.__defaults__ or ()
    kwdefaults = func.__kwdefaults__ or {}
    first_default = positional - len(defaults)
    found: list[tuple[str, Any]] = []
    for i, name in enumerate(names):
        if i >= positional:
            found.append((name, kwdefaults.get(name, MISSING)))
        else:
            found.append((name, defaults[i - first_default] if i >= first_default else MISSING))
    return found


def _parameters_by_inspect(func: Callable[..., Any], task: str) -> list[tuple[str, Any]]:
    import inspect

    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"task '{task}': cannot read its signature ({exc})") from None
    found: list[tuple[str, Any]] = []
    for name, p in sig.parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ValidationError(
                f"task '{task}': *args and **kwargs are not supported; name each argument"
            )
        found.append((name, MISSING if p.default is p.empty else p.default))
    return found


_SCALARS: tuple[Any, ...] = (str, int, float, bool, Any)


def _path_class(annotation: Any, exact: bool) -> bool:
    """Whether `annotation` is `pathlib.Path` (any path class, unless `exact`).

    pathlib is not imported for the question: a job's start-up would pay for it,
    and no annotation can name a pathlib class before pathlib is loaded.
    """
    pathlib = sys.modules.get("pathlib")
    if pathlib is None:
        return False
    if exact:
        return annotation is pathlib.Path
    return isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath)


def _check_param_type(annotation: Any, task: str, name: str) -> None:
    if not param_type_supported(annotation):
        raise ValidationError(
            f"task '{task}', parameter '{name}' has type {type_name(annotation)}, which a run "
            "parameter cannot take: use str, int, float, bool, Path, Literal[...], list[T] or "
            "T | None, or pass the value through a Result"
        )


def param_type_supported(annotation: Any) -> bool:
    """True when a run parameter may have this type (SPEC 1)."""
    if annotation in _SCALARS or _path_class(annotation, exact=True):
        return True
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is Literal:
        return all(isinstance(a, (str, int, float, bool)) for a in args)
    if origin in (list, Sequence) and len(args) <= 1:
        return not args or (
            args[0] is not type(None)
            and optional_inner(args[0]) is None
            and typing.get_origin(args[0]) not in (list, Sequence)
            and param_type_supported(args[0])
        )
    inner = optional_inner(annotation)
    return inner is not None and param_type_supported(inner)


def optional_inner(annotation: Any) -> Any | None:
    """For `T | None` return T; otherwise None."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0]
    return None


def type_name(annotation: Any) -> str:
    """A short readable name for a type annotation, for messages."""
    if annotation is Any:
        return "Any"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    text = repr(annotation)
    return text.replace("typing.", "").replace("pathlib.", "")


# ---------------------------------------------------------------------- values


def coerce_param(key: str, annotation: Any, value: Any) -> Any:
    """Check `value` against a parameter's type; convert str -> Path and int -> float.

    A value of the wrong type is a ValidationError naming the parameter `key`.
    """
    try:
        return _coerce(annotation, value)
    except _Mismatch:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise ValidationError(
            f"parameter '{key}' expects {type_name(annotation)}, got {type(value).__name__} {shown}"
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
    if _path_class(t, exact=False):
        from pathlib import Path, PurePath

        if isinstance(v, (str, PurePath)):
            return Path(v)
        raise _Mismatch
    return v
