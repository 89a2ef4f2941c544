"""Task instances as data, and running one: `Work` in, `Outcome` out.

The same code runs an instance in-process, in a local worker process and
inside a scheduler job; it never touches the store.  The engine, the local
drivers and the job-side worker all share these types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import codec
from .errors import EncodeError

__all__ = ["NO_VALUE", "Outcome", "Work", "execute", "failure", "traceback_text"]

NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()
"""`Outcome.value` when the value itself is not kept (only `output`, its stored text)."""

# returned values the engine may keep as they are: nothing can change them later
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


# Work and Outcome are made by the hundred thousand: plain slotted classes (a frozen
# dataclass costs 2.5 times as much to build); treat them as read-only.


@dataclass(slots=True)
class Work:
    """One instance to run: which task, which element, which attempt, and its arguments."""

    task: str
    index: int
    attempt: int
    kwargs: dict[str, Any]


@dataclass(slots=True)
class Outcome:
    """What running one instance produced."""

    task: str
    index: int
    attempt: int
    ok: bool
    output: str | None
    output_hash: str | None
    error: str | None
    started: float
    finished: float
    # set only by a worker that resolved its own inputs (an instance submitted ahead)
    identity: str | None = None
    parts: str | None = None
    cached_from: int | None = None
    skipped: bool = False
    # the returned value itself when it is immutable and was produced in this
    # process, so the engine need not decode `output` again; never sent anywhere
    value: Any = field(default=NO_VALUE, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:  # a worker process sends only the text
        return {f: getattr(self, f) for f in self.__slots__ if f != "value"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for key, val in state.items():
            setattr(self, key, val)
        self.value = NO_VALUE


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def failure(
    work: Work, error: str, started: float | None = None, *, skipped: bool = False
) -> Outcome:
    """A failed (or, with `skipped`, skipped) Outcome for `work` with its error text."""
    now = time.time()
    return Outcome(
        work.task,
        work.index,
        work.attempt,
        False,
        None,
        None,
        error,
        now if started is None else started,
        now,
        skipped=skipped,
    )


def traceback_text(exc: BaseException, *, skip_frames: int = 0) -> str:
    """The formatted traceback of `exc`, without its first `skip_frames` frames."""
    import traceback  # only when something failed: every job imports this module

    tb = exc.__traceback__
    for _ in range(skip_frames):
        tb = tb.tb_next if tb else None
    return "".join(traceback.format_exception(type(exc), exc, tb))


def execute(func: Callable[..., Any], work: Work) -> Outcome:
    """Run one instance; exceptions (and exits) become a failed Outcome with the traceback."""
    started = time.time()
    try:
        value = func(**work.kwargs)
    except (Exception, SystemExit) as exc:
        # drop this frame: the user's traceback starts in their own function
        return failure(work, traceback_text(exc, skip_frames=1), started)
    try:
        text, ohash = codec.dumps_hashed(value)
    except EncodeError as exc:
        where = _label(work.task, work.index)
        return failure(work, f"task {where} returned a value reflow cannot store: {exc}", started)
    return Outcome(
        work.task,
        work.index,
        work.attempt,
        True,
        text,
        ohash,
        None,
        started,
        time.time(),
        value=value if type(value) in _IMMUTABLE else NO_VALUE,
    )
