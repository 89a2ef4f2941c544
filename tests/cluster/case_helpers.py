"""Small helpers the cases of this folder share (tests/cluster_support.py has the rest)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from schedulers import Scheduler

from cluster_support import run_job_ids as _run_job_ids
from cluster_support import wait_until
from reflow import Run

__all__ = ["only_failed", "requeue_while_running", "run_job_ids", "run_script"]


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


def requeue_while_running(run: Run, task: str, folder: Path) -> None:
    """`scontrol requeue` element 0 of `task` once it runs (`started.0.0` in `folder`, see
    pipelines/pl_limits.py), and have it start again at once (`started.0.1`).

    It is what Slurm's preemption with PreemptMode=REQUEUE does to a job: SIGTERM, then the
    job queued again under its id. A requeued job waits two minutes before it may start:
    `scontrol update StartTime=now` cuts that short.
    """
    wait_until(lambda: (folder / "started.0.0").exists(), 60, "element 0 to start", run)
    (element,) = [i["job_id"] for i in run.store.instances(run.run_id, task=task)
                  if i["array_index"] == 0]  # fmt: skip
    subprocess.run(["scontrol", "requeue", element], check=True, timeout=30)

    def queued_again() -> bool:
        state = subprocess.run(["squeue", "-h", "-j", element, "-o", "%T"], capture_output=True,
                               text=True, timeout=30, check=False).stdout  # fmt: skip
        return state.strip() == "PENDING"

    wait_until(queued_again, 60, "element 0 to be queued again", run)
    # started again within a second of its requeue, the job failed to launch on this
    # cluster (FAILED 1:0, its batch step never ran): give the node time to clean up
    time.sleep(5)

    def restarted() -> bool:
        subprocess.run(["scontrol", "update", f"JobId={element}", "StartTime=now"],
                       capture_output=True, timeout=30, check=False)  # fmt: skip
        return (folder / "started.0.1").exists()

    wait_until(restarted, 120, "element 0 to run again", run)
