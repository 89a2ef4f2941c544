"""Executors: how jobs are started, asked about and cancelled on each scheduler."""

from __future__ import annotations

from .base import Executor, JobResources, JobState, JobStatus, SchedulerError
from .dryrun import DryRunExecutor
from .flux import FluxExecutor
from .local import LocalExecutor
from .lsf import LSFExecutor
from .pbs import PBSExecutor
from .sge import SGEExecutor
from .slurm import SlurmExecutor

__all__ = [
    "DryRunExecutor",
    "Executor",
    "FluxExecutor",
    "JobResources",
    "JobState",
    "JobStatus",
    "LSFExecutor",
    "LocalExecutor",
    "PBSExecutor",
    "SGEExecutor",
    "SchedulerError",
    "SlurmExecutor",
]
