"""Running task instances: call the function, encode its output, capture failures.

The same code runs an instance in-process, in a local worker process, and
(later) inside a scheduler job.  It never touches the store.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import EncodeError

__all__ = ["Outcome", "Work", "execute", "execute_batch"]


@dataclass(frozen=True)
class Work:
    """One instance to run: which task, which element, which attempt, and its arguments."""

    task: str
    index: int
    attempt: int
    kwargs: dict[str, Any]


@dataclass(frozen=True)
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


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def execute(func: Callable[..., Any], work: Work) -> Outcome:
    """Run one instance; exceptions (and exits) become a failed Outcome with the traceback."""
    started = time.time()
    try:
        value = func(**work.kwargs)
    except (Exception, SystemExit) as exc:
        # drop this frame: the user's traceback starts in their own function
        tb = exc.__traceback__.tb_next if exc.__traceback__ else None
        text = "".join(traceback.format_exception(type(exc), exc, tb))
        return Outcome(
            work.task, work.index, work.attempt, False, None, None, text, started, time.time()
        )
    try:
        text = codec.dumps(value)
    except EncodeError as exc:
        error = f"task {_label(work.task, work.index)} returned a value reflow cannot store: {exc}"
        return Outcome(
            work.task, work.index, work.attempt, False, None, None, error, started, time.time()
        )
    return Outcome(
        work.task, work.index, work.attempt, True, text, codec.hash_text(text), None,
        started, time.time(),
    )  # fmt: skip


def execute_batch(items: Sequence[tuple[Callable[..., Any], Work]]) -> list[Outcome]:
    """Run several instances in order (one round trip to a worker process)."""
    return [execute(func, work) for func, work in items]
