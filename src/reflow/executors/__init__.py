"""Executors: how jobs are started, asked about and cancelled on each scheduler."""

from __future__ import annotations

from .base import Executor, JobResources, JobState, JobStatus, SchedulerError
from .dryrun import DryRunExecutor
from .local import LocalExecutor
from .slurm import SlurmExecutor

__all__ = [
    "DryRunExecutor",
    "Executor",
    "JobResources",
    "JobState",
    "JobStatus",
    "LocalExecutor",
    "SchedulerError",
    "SlurmExecutor",
]
