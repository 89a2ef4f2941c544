"""DryRunExecutor: prints the job scripts it would submit and submits nothing."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from .base import Executor, JobResources, JobStatus
from .slurm import SlurmExecutor

__all__ = ["DryRunExecutor"]


class DryRunExecutor(Executor):
    """Shows what would be submitted (rendered as Slurm scripts by default)."""

    name = "dry-run"
    mode = "dry-run"

    def __init__(self, renderer: Executor | None = None, out: TextIO | None = None) -> None:
        self.renderer = renderer or SlurmExecutor()
        self.out = out
        self.submitted: list[str] = []

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        return self.renderer.render(command, resources)

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        job_id = f"dry-run-{len(self.submitted) + 1}"
        out = self.out or sys.stdout
        what = f"array of {resources.array_size}" if resources.array_size else "job"
        out.write(f"# would submit {what} {resources.name} as {job_id}\n")
        out.write(self.render(command, resources))
        out.write("\n")
        self.submitted.append(job_id)
        return job_id

    def cancel(self, job_ids: Sequence[str]) -> None:
        return None

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {}

    def log_pattern(self, directory: str, array: bool) -> str:
        return self.renderer.log_pattern(directory, array)
