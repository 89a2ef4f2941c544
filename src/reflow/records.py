"""`Record`: the base of the small value classes every job builds.

A scheduler job imports the classes that describe tasks and instances
(`TaskSpec`, `ArgSpec`, `Param`, `Result`, `Work`, `Outcome`, ...).  Made with
`dataclasses`, they would cost each job the import of `dataclasses` and
`inspect` and the generated methods (about 10 ms, a third of the start-up
reflow allows itself): they are plain slotted classes instead, each with its
own `__init__`, and this base gives them what a dataclass would: equality and
a hash over their fields, a readable `repr`, and `replace`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: this module must not import typing
if TYPE_CHECKING:
    from typing import Any

    from typing_extensions import Self

__all__ = ["FrozenRecord", "Record"]


class Record:
    """Fields are the `__slots__` of the class and its bases, in order.

    `_uncompared` names fields left out of equality, hash and repr.  A record
    whose fields can change is not hashable (defining `__eq__` without
    `__hash__` makes Python set it to None, as for a dataclass with `eq=True`).
    """

    __slots__ = ()
    _uncompared: tuple[str, ...] = ()
    _field_names: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        names: list[str] = []
        for klass in reversed(cls.__mro__):
            names.extend(klass.__dict__.get("__slots__", ()))
        cls._field_names = tuple(names)

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in self._field_names if n not in self._uncompared)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._compared() == other._compared()

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{n}={getattr(self, n)!r}" for n in self._field_names if n not in self._uncompared
        )
        return f"{type(self).__name__}({shown})"

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (an unknown name is a TypeError)."""
        fields = self._field_names
        unknown = [n for n in changes if n not in fields]
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field {unknown[0]!r}")
        new = object.__new__(type(self))
        for name in fields:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new

    def __getstate__(self) -> dict[str, Any]:
        return {n: getattr(self, n) for n in self._field_names}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)


class FrozenRecord(Record):
    """A record whose fields are set once, in `__init__` (with `object.__setattr__`)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: a {type(self).__name__} is frozen")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: a {type(self).__name__} is frozen")

    def __hash__(self) -> int:
        return hash((type(self), self._compared()))
