"""Instance and run states."""

from __future__ import annotations

import enum

__all__ = ["FAILURE_KINDS", "FINAL_STATES", "RunState", "TaskState"]

FAILURE_KINDS = ("ERROR", "OOM", "TIMEOUT", "NODE_FAIL", "PREEMPTED")


class _Named(str, enum.Enum):
    """A state that prints as its name."""

    def __str__(self) -> str:
        return str(self.value)


class TaskState(_Named):
    """The state of one task instance (a singleton task or one array element)."""

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"


class RunState(_Named):
    """The state of a whole run."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


FINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED}
)
