"""Automatic retries on the real clusters, end to end (issue 14's Show): the failure kind
read from the scheduler (or the task) decides the retry, and only the resource that ran
out is escalated.

- an element needing ~350 MB under mem="120M", retries=3: out of memory at 120M and
  240M, success at 480M; each attempt recorded with its memory and kind (Slurm: killed,
  read from sacct; SGE: h_vmem refuses the allocation, the task's MemoryError);
- a task gets TaskInterrupted (SIGUSR1) before its 1-minute limit and checkpoints; the
  attempt is recorded TIMEOUT; its retry, with twice the time, resumes from the
  checkpoint;
- an element whose job is requeued (preemption) does not use a retry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pl_retries
from case_helpers import requeue_while_running
from schedulers import Scheduler, every_scheduler, only

from cluster_support import Cluster, status_text, wait_final
from reflow import Run, RunState


def _attempts(run: Run, task: str) -> list[tuple[int, int, str, str | None, Any, str | None]]:
    """(index, attempt, state, failure kind, resources, error text) of each attempt of `task`."""
    return [
        (a.array_index, a.attempt, a.state, a.failure_kind, a.resources, a.error_text)
        for a in run.store.run_attempts(run.run_id)
        if a.task == task
    ]


@every_scheduler
def test_an_oom_element_is_retried_with_twice_the_memory_until_it_fits(
    scheduler: Scheduler, cluster: Cluster
) -> None:
    run = cluster.submit(pl_retries.grow_wf, megabytes=350)
    assert wait_final(run, 300) is RunState.SUCCESS, status_text(run)
    assert run.outputs("grow") == [350]
    attempts = [(n, state, kind, r["mem"]) for _, n, state, kind, r, _ in _attempts(run, "grow")]
    assert attempts == [
        (1, "FAILED", "OOM", "120M"),
        (2, "FAILED", "OOM", "240M"),
        (3, "SUCCESS", None, "480M"),
    ], status_text(run)
    # what a user reads: `status --json` gives the attempts with their memory and kind
    shown = json.loads(
        subprocess.run(
            [sys.executable, "-m", "reflow", "status", run.run_id, "--json",
             "--store-path", str(cluster.store_path)],
            capture_output=True, text=True, check=True,
        ).stdout
    )  # fmt: skip
    (element,) = [i for i in shown["instances"] if i["task_name"] == "grow"]
    assert (element["attempt"], element["resources"]["mem"]) == (3, "480M"), element
    assert [
        (a["attempt"], a["state"], a["failure_kind"], a["resources"]["mem"])
        for a in shown["attempts"]
        if a["task_name"] == "grow"
    ] == attempts
    text = _attempts(run, "grow")[0][-1] or ""
    if scheduler.name == "slurm":  # killed by Slurm, read from sacct
        last = text.splitlines()[-1]
        assert last.startswith("the job ran out of memory (slurm: job "), text
        assert " FAILED, peak memory " in last and last.endswith(" of 120M, killed by SIGKILL)")
    else:  # SGE's h_vmem refuses the allocation itself
        assert text.rstrip().endswith("MemoryError"), text


@every_scheduler
def test_a_task_over_its_time_limit_resumes_from_its_checkpoint_with_twice_the_time(
    scheduler: Scheduler, cluster: Cluster, tmp_path: Path
) -> None:
    run = cluster.submit(pl_retries.resume_wf, folder=str(tmp_path))
    assert wait_final(run, 300) is RunState.SUCCESS, status_text(run)
    steps, signal_name = (tmp_path / "checkpoint").read_text().split()
    # Slurm checks for signals to send about once a minute ("may be sent up to 60 seconds
    # earlier than specified"), so on this 1-minute limit its warning can also come too
    # late: the task is then interrupted by the limit's SIGTERM, still before the kill,
    # and the accounting says TIMEOUT. SGE's s_rt warning is exact.
    assert signal_name == "SIGUSR1" or (scheduler.name == "slurm" and signal_name == "SIGTERM")
    assert run.output("resumable") == int(steps)  # attempt 2 finished from the checkpoint
    attempts = [
        (n, state, kind, r["time"]) for _, n, state, kind, r, _ in _attempts(run, "resumable")
    ]
    assert attempts == [
        (1, "FAILED", "TIMEOUT", "00:01:00"),
        (2, "SUCCESS", None, "00:02:00"),
    ], status_text(run)
    text = _attempts(run, "resumable")[0][-1] or ""
    if signal_name == "SIGUSR1":
        assert "TaskInterrupted: Task interrupted by SIGUSR1" in text, text
        assert text.splitlines()[-1] == (
            "the job's time limit was near (the scheduler's warning signal came): "
            "the task was interrupted"
        ), text
    else:
        assert text.splitlines()[-1].startswith("the job hit its time limit"), text


@only("slurm")
def test_a_requeued_element_does_not_use_a_retry(
    scheduler: Scheduler, cluster: Cluster, tmp_path: Path
) -> None:
    # the task gets TaskInterrupted(SIGTERM), the worker writes no result, sacct says
    # REQUEUED then PENDING, and the element runs again as the same attempt
    run = cluster.submit(pl_retries.requeue_wf, n=2, folder=str(tmp_path))
    requeue_while_running(run, "nap", tmp_path)
    assert wait_final(run, 120) is RunState.SUCCESS, status_text(run)
    assert run.outputs("nap") == [0, 1]
    assert (tmp_path / "interrupted.0").read_text() == "SIGTERM"  # it could checkpoint
    # one attempt each: the requeue was neither a failure nor a retry
    assert [(i, n, state) for i, n, state, *_ in _attempts(run, "nap")] == [
        (0, 1, "SUCCESS"),
        (1, 1, "SUCCESS"),
    ]
