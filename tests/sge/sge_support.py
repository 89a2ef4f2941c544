"""Helpers of the SGE cluster tests: what tests/cluster_support.py has, plus qstat."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cluster_support import Cluster, SubmitSpy, status_text, wait_final, wait_until
from cluster_support import run_job_ids as _run_job_ids
from reflow import Run
from reflow.executors.sge import parse_qstat_xml

__all__ = [
    "PIPELINES",
    "Cluster",
    "QsubSpy",
    "qstat_ids",
    "qstat_jobs",
    "run_job_ids",
    "status_text",
    "wait_final",
    "wait_until",
]

PIPELINES = Path(__file__).resolve().parent / "pipelines"


def qstat_jobs() -> dict[str, dict[int | None, str]]:
    """Every job in qstat (all users): job number -> {task (None: not an array) -> state}."""
    out = subprocess.run(
        ["qstat", "-u", "*", "-xml"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return parse_qstat_xml(out)


def qstat_ids() -> set[str]:
    """The job numbers in qstat."""
    return set(qstat_jobs())


def run_job_ids(run: Run) -> set[str]:
    """Every job number of the run recorded in the store, its dispatcher included."""
    return _run_job_ids(run, ".")


class QsubSpy(SubmitSpy):
    """A `qsub` that records the number of every job it submits (REFLOW_QSUB)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory, "qsub", lambda line: line.split(".")[0])
