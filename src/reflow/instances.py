"""Task instances as data, and running one: `Work` in, `Outcome` out.

The same code runs an instance in-process, in a local worker process and
inside a scheduler job; it never touches the store.  The engine, the local
drivers and the job-side worker all share these types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import codec
from .errors import EncodeError
from .records import Record

__all__ = ["NO_VALUE", "Outcome", "Work", "execute", "failure", "traceback_text"]

NO_VALUE: Any = type("NoValue", (), {"__repr__": lambda self: "NO_VALUE"})()
"""`Outcome.value` when the value itself is not kept (only `output`, its stored text)."""

# returned values the engine may keep as they are: nothing can change them later
_IMMUTABLE = frozenset({str, int, float, bool, type(None)})


# Work and Outcome are made by the hundred thousand, and a job imports them:
# plain slotted records (see records.py); treat them as read-only.


class Work(Record):
    """One instance to run: which task, which element, which attempt, and its arguments."""

    __slots__ = ("attempt", "index", "kwargs", "task")

    def __init__(self, task: str, index: int, attempt: int, kwargs: dict[str, Any]) -> None:
        self.task, self.index, self.attempt, self.kwargs = task, index, attempt, kwargs


class Outcome(Record):
    """What running one instance produced.

    `identity`, `parts`, `cached_from` and `skipped` are set only by a worker
    that resolved its own inputs (an instance submitted ahead).  `kind`: the
    failure kind of a failed outcome, one of `states.FAILURE_KINDS` (None when
    ok, or not known: read as "ERROR").  `value` is the
    returned value itself when it is immutable and was produced in this
    process, so the engine need not decode `output` again; it is never sent
    anywhere (not pickled, not compared).
    """

    __slots__ = (
        "attempt",
        "cached_from",
        "error",
        "finished",
        "identity",
        "index",
        "kind",
        "ok",
        "output",
        "output_hash",
        "parts",
        "skipped",
        "started",
        "task",
        "value",
    )  # fmt: skip
    _uncompared = ("value",)

    def __init__(
        self,
        task: str,
        index: int,
        attempt: int,
        ok: bool,
        output: str | None,
        output_hash: str | None,
        error: str | None,
        started: float,
        finished: float,
        identity: str | None = None,
        parts: str | None = None,
        cached_from: int | None = None,
        skipped: bool = False,
        value: Any = NO_VALUE,
        kind: str | None = None,
    ) -> None:
        self.task, self.index, self.attempt, self.ok = task, index, attempt, ok
        self.output, self.output_hash, self.error = output, output_hash, error
        self.started, self.finished = started, finished
        self.identity, self.parts, self.cached_from = identity, parts, cached_from
        self.skipped, self.value = skipped, value
        self.kind = kind

    def __getstate__(self) -> dict[str, Any]:  # a worker process sends only the text
        return {f: getattr(self, f) for f in self._field_names if f != "value"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.value = NO_VALUE


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def failure(
    work: Work,
    error: str,
    started: float | None = None,
    *,
    skipped: bool = False,
    kind: str | None = None,
) -> Outcome:
    """A failed (or, with `skipped`, skipped) Outcome for `work` with its error text and kind."""
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
        kind=kind,
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
        # drop this frame: the user's traceback starts in their own function; a
        # MemoryError is how a memory limit on allocations (SGE's h_vmem) shows
        kind = "OOM" if isinstance(exc, MemoryError) else None
        return failure(work, traceback_text(exc, skip_frames=1), started, kind=kind)
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
