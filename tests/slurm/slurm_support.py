"""Helpers of the Slurm cluster tests: what tests/cluster_support.py has, plus squeue."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cluster_support import Cluster, SubmitSpy, status_text, wait_final, wait_until
from cluster_support import run_job_ids as _run_job_ids
from reflow import Run

__all__ = [
    "PIPELINES",
    "Cluster",
    "SbatchSpy",
    "run_job_ids",
    "squeue_ids",
    "status_text",
    "wait_final",
    "wait_until",
]

PIPELINES = Path(__file__).resolve().parent / "pipelines"


def squeue_ids() -> set[str]:
    """Job ids in the queue (array elements as `A_T`, pending ranges as `A_[...]`)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return set(out.split())


def run_job_ids(run: Run) -> set[str]:
    """Every job id of the run recorded in the store (base ids), its dispatcher included."""
    return _run_job_ids(run, "_")


class SbatchSpy(SubmitSpy):
    """An `sbatch` that records the id of every job it submits (REFLOW_SBATCH)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "sbatch", lambda line: line.split(";")[0])
