"""Small helpers the cases of this folder share (tests/cluster_support.py has the rest)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from schedulers import Scheduler

from cluster_support import run_job_ids as _run_job_ids
from reflow import Run

__all__ = ["only_failed", "run_job_ids", "run_script"]


def only_failed(run: Run) -> list[dict[str, Any]]:
    """The run's FAILED instances (not those a failure SKIPPED)."""
    doc = run.status(as_dict=True)
    assert doc is not None
    return [i for i in doc["failed_instances"] if i["state"] == "FAILED"]


def run_script(
    script: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`python script args...`, its output captured."""
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def run_job_ids(sched: Scheduler, run: Run) -> set[str]:
    """Every job of the run recorded in the store (array jobs, not elements), its dispatcher too."""
    return _run_job_ids(run, sched.separator)
