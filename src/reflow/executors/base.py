"""The executor interface: start a batch of instances as one job, ask about jobs, cancel.

An executor knows nothing about caching, fan-out or the store: the engine
decides what runs, the dispatcher hands each wave to an executor as one job
(an array job when it has several elements).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import EXECUTORS  # the registry: one entry there per executor module here
from ..errors import ReflowError

__all__ = [
    "EXECUTORS", "Capacity", "Executor", "JobResources", "JobState", "JobStatus",
    "SchedulerError",
]  # fmt: skip


class SchedulerError(ReflowError):
    """A scheduler command failed or is missing."""


@dataclass(frozen=True)
class JobResources:
    """What one job asks of the scheduler, scheduler-agnostic."""

    name: str
    cpus: int | None = None
    time: str | None = None
    mem: str | None = None
    partition: str | None = None
    account: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)
    array_size: int | None = None  # None: a single job, not an array
    array_parallelism: int | None = None
    dependencies: tuple[str, ...] = ()  # job ids to wait for (afterany)
    stdout: str | None = None
    stderr: str | None = None
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    #: the submission journal's token for this job (see reflow.journal): the job's name
    #: carries it, so that `Executor.find_submitted` finds the job again
    token: str | None = None
    #: seconds before the time limit at which the job asks for a warning signal (SIGUSR1);
    #: None or 0: none (see `warning_seconds`)
    grace: int | None = None


class JobState(str, enum.Enum):
    """A job's (or array element's) state, as reflow understands it."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    NODE_FAIL = "NODE_FAIL"
    PREEMPTED = "PREEMPTED"
    UNKNOWN = "UNKNOWN"

    @property
    def final(self) -> bool:
        """True when the job will not run any more."""
        return self not in (JobState.PENDING, JobState.RUNNING, JobState.UNKNOWN)


@dataclass(frozen=True)
class JobStatus:
    """A job's state with the scheduler's own words for it."""

    state: JobState
    reason: str = ""
    exit_code: str = ""


@dataclass(frozen=True)
class Capacity:
    """What the scheduler says about the place a job would run (None: it does not say)."""

    #: how many jobs (array elements) of this size can run there at once
    slots: int | None = None
    #: the longest time limit a job may have there, in seconds (None: no limit, or unknown)
    max_seconds: int | None = None
    #: the most memory a job may ask for there (its largest node's), in bytes (None: unknown)
    max_mem: int | None = None


def merge_options(
    task_options: Mapping[str, Any], defaults: Mapping[str, Any], native: str
) -> tuple[str | None, str | None, dict[str, Any]]:
    """(partition, account, extra) from a task's options over the config's defaults.

    `partition` and `queue` are synonyms; the scheduler's `native` key wins
    when both are given.  Task options win over the config's.
    """
    merged: dict[str, Any] = {}
    for source in (defaults, task_options):
        keys = set(source)
        for key, value in source.items():
            if key in ("partition", "queue"):
                other = "queue" if key == "partition" else "partition"
                if other in keys and key != native:
                    continue  # both given: the native one wins
                merged["partition"] = value
            else:
                merged[key] = value
    partition = merged.pop("partition", None)
    account = merged.pop("account", None)
    return (
        None if partition is None else str(partition),
        None if account is None else str(account),
        merged,
    )


class Executor(ABC):
    """Runs jobs: renders a job script from resources, submits it, asks and cancels."""

    name: str = "executor"
    #: the config's `[executor] mode` naming this executor
    mode: str = ""
    #: the scheduler commands it runs: constructor arguments and config keys
    commands: tuple[str, ...] = ()
    #: how the array index in the job's environment maps to 0-based elements
    index_base: int = 0
    #: the scheduler's own name for where a job goes, "partition" or "queue": the one
    #: that wins when a task (or the config) gives both
    queue_key: str = "partition"

    @classmethod
    def create(cls, commands: Mapping[str, Any], settings: Mapping[str, Any]) -> Executor:
        """An executor from command paths (None: found on PATH) and recorded settings."""
        return cls(**{k: commands.get(k) for k in cls.commands}, **settings)

    def settings(self) -> dict[str, Any]:
        """What a later dispatcher pass needs, besides command paths, to rebuild this one."""
        return {}

    @abstractmethod
    def render(self, command: Sequence[str], resources: JobResources) -> str:
        """The job script that runs `command` (an argv) with `resources`."""

    @abstractmethod
    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        """Submit one job (an array job if `resources.array_size`); return its id."""

    @abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs (whole arrays or elements); unknown or finished ids are ignored."""

    @abstractmethod
    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """The state of each job or array element, in one scheduler query.

        Keys are the ids asked for; array jobs are expanded to their elements' ids
        (`element_id`).
        """

    def find_submitted(
        self, jobs: Sequence[tuple[str, str, float]]
    ) -> dict[str, str | None] | None:
        """Find jobs by the journal's tokens: each (name, token, submitted after this time).

        Returns token -> the job's id, or None where the scheduler proves it
        never had such a job; a token it cannot tell about now is left out.
        None: this executor cannot look jobs up by name (the journal's entries
        are then dropped and their instances submitted again, as before it).
        """
        return None

    def element_id(self, job_id: str, element: int) -> str:
        """The id of element `element` (0-based) of array job `job_id`."""
        return f"{job_id}_{element}"

    def job_of(self, job_id: str) -> str:
        """The job a job or array element id belongs to (the inverse of `element_id`)."""
        return job_id.split("_", 1)[0]

    def max_array_size(self) -> int | None:
        """The largest array the scheduler accepts (None: no limit known)."""
        return None

    def capacity(self, resources: JobResources) -> Capacity:
        """How many jobs like `resources` can run at once, and the longest time allowed.

        Asked once per wave to size packs; a scheduler that cannot tell says
        nothing (the dispatcher then assumes a modest number of slots).
        """
        return Capacity()

    def log_pattern(self, directory: str, array: bool) -> str:
        """The scheduler's own log file for a job (or each array element) in `directory`."""
        return f"{directory}/%A_%a.log" if array else f"{directory}/%j.log"
