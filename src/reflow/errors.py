"""The exceptions reflow raises for mistakes a user can fix.

Every user-facing error derives from `ReflowError`; the CLI prints its message
as one line and exits non-zero.  Errors the SPEC defines as `ValueError`
(validation, parameters) also derive from `ValueError`.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: every job imports this module
if TYPE_CHECKING:
    from typing import Any


class ReflowError(Exception):
    """A mistake the user can fix; the message says what and how."""


class ValidationError(ReflowError, ValueError):
    """The workflow definition or its run parameters are invalid."""


class EncodeError(ReflowError, TypeError):
    """A value cannot be stored by the typed-JSON codec."""


class DecodeError(ReflowError, ValueError):
    """Stored typed JSON is malformed or of an unknown type tag."""


class StoreError(ReflowError):
    """The manifest store cannot be opened, read or written."""


class RunNotFoundError(ReflowError, KeyError):
    """No run with the given id exists in the store."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ConfigError(ReflowError):
    """The configuration file or a REFLOW_* variable is invalid."""


class MissingParameterError(ValidationError, TypeError):
    """A required run parameter was not given.

    A `TypeError` too, as a function called without a required argument
    raises (and as reflow-hpc raises here), besides the `ValueError` SPEC names.
    """


class TaskFailedError(ReflowError, RuntimeError):
    """`run_local(on_error="stop")` ended with failed task(s).

    Everything is recorded before it is raised; `run` is the FAILED run, to
    inspect (`err.run.status()`) or to resume (`err.run.retry()`).
    """

    def __init__(self, message: str, run: Any) -> None:
        super().__init__(message)
        self.run: Any = run  # a reflow.Run (named loosely: errors sit below every layer)


def error_line(text: str | None) -> str:
    """The line of an error text that says what went wrong (a traceback's exception line)."""
    lines = [line for line in (text or "").splitlines() if line.strip()]
    if not lines:
        return "no error message"
    last_tb = max((i for i, line in enumerate(lines) if line.startswith("Traceback (")), default=-1)
    for line in lines[last_tb + 1 :]:
        if not line.startswith((" ", "\t")):  # past the frames: "ValueError: ..."
            return line
    return lines[0]
