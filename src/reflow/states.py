"""Instance and run states."""

from __future__ import annotations

import enum

__all__ = ["FINAL_STATES", "RunState", "TaskState"]


class TaskState(str, enum.Enum):
    """The state of one task instance (a singleton task or one array element)."""

    PENDING = "PENDING"
    SUBMITTED = "SUBMITTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    SKIPPED = "SKIPPED"

    def __str__(self) -> str:
        return self.value


class RunState(str, enum.Enum):
    """The state of a whole run."""

    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    def __str__(self) -> str:
        return self.value


FINAL_STATES = frozenset(
    {TaskState.SUCCESS, TaskState.FAILED, TaskState.CANCELLED, TaskState.SKIPPED}
)
