"""Failure kinds on the real clusters: what the scheduler's accounting says a job died of,
and the warning before a time limit reaching the task (issue 14).

Executor level, on Slurm: a job over its memory reads OUT_OF_MEMORY, asked the way the
dispatcher asks (one query for the job, each element looked up in the answer), every
time it is asked, never COMPLETED or FAILED first (SGE's qacct has no such passing
answers, and its execd kills a job whose processes together exceed h_vmem only now and
then: the recorded qacct outputs of tests/test_sge_executor.py cover how it is read).
Workflow level, on both: an instance over its memory fails out of memory; a task over
its time limit gets TaskInterrupted before the kill and writes its checkpoint, and the
attempt ends TIMEOUT (a requeued element: test_retries_on_cluster.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pl_limits
from case_helpers import only_failed
from schedulers import Scheduler, every_scheduler, only

from cluster_support import Cluster, status_text, wait_final
from reflow import RunState
from reflow.executors import JobResources, JobState

#: element k's 0-based index, under either scheduler
_ELEMENT = (
    "import os; k = int(os.environ.get('SLURM_ARRAY_TASK_ID') "
    "or int(os.environ['SGE_TASK_ID']) - 1)\n"
)
#: elements 0 and 1 need ~350 MB; element 2, the last, ends at once (the last element's
#: record is what sacct shows for the whole array at first)
_JOB = _ELEMENT + (
    "import subprocess, sys\n"
    "if k < 2:\n"
    f"    hogs = [subprocess.Popen([sys.executable, '-c', {pl_limits.HOG!r}]) for _ in range(5)]\n"
    "    [h.wait() for h in hogs]\n"
)


@only("slurm")
def test_an_element_over_its_memory_reads_out_of_memory_every_time_it_is_asked(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    ex = scheduler.executor()
    log = ex.log_pattern(str(tmp_path), True)
    res = JobResources(name="t.oom", time="00:05:00", mem="120M", array_size=3,
                       stdout=log, stderr=log, workdir=str(tmp_path))  # fmt: skip
    job = ex.submit([sys.executable, "-c", _JOB], res)
    elements = [ex.element_id(job, k) for k in range(3)]
    seen: dict[str, list[JobState]] = {e: [] for e in elements}
    deadline = time.monotonic() + 240  # SGE checks h_vmem about once a minute
    settled_at: float | None = None
    try:
        while settled_at is None or time.monotonic() < settled_at + 5:
            assert time.monotonic() < deadline, {e: s[-3:] for e, s in seen.items()}
            answer = ex.states([ex.job_of(job)])  # as dispatch._reconcile asks and reads
            for element in elements:
                status = answer.get(element) or answer.get(ex.job_of(element))
                if status is not None and status.state.final:
                    seen[element].append(status.state)
            if settled_at is None and all(seen.values()):
                settled_at = time.monotonic()  # then ask for a few seconds more
            time.sleep(0.1)
    finally:
        ex.cancel([job])
    assert set(seen[elements[0]]) == {JobState.OUT_OF_MEMORY}, seen
    assert set(seen[elements[1]]) == {JobState.OUT_OF_MEMORY}, seen
    assert set(seen[elements[2]]) == {JobState.COMPLETED}, seen
    last = ex.states([ex.job_of(job)])[elements[0]]
    assert "120M" in last.reason or "h_vmem" in last.reason, last


@every_scheduler
def test_an_instance_over_its_memory_fails_out_of_memory(
    scheduler: Scheduler, cluster: Cluster
) -> None:
    run = cluster.submit(pl_limits.oom_wf, megabytes=350)
    assert wait_final(run, 120) is RunState.FAILED, status_text(run)
    (failed,) = only_failed(run)
    text = failed["error_text"]
    if scheduler.name == "slurm":  # killed by Slurm, read from sacct
        last = text.splitlines()[-1]
        assert last.startswith(
            f"the job ran out of memory (slurm: job {failed['job_id']} FAILED, peak memory "
        ), text
        assert last.endswith(" of 120M, killed by SIGKILL)"), text
    else:  # SGE's h_vmem refuses the allocation itself
        assert text.rstrip().endswith("MemoryError"), text


@every_scheduler
def test_a_task_over_its_time_limit_is_interrupted_and_checkpoints(
    scheduler: Scheduler, cluster: Cluster, tmp_path: Path
) -> None:
    run = cluster.submit(pl_limits.limit_wf, folder=str(tmp_path))
    # the warning comes at most half the 1-minute limit before it (grace 60 s by default;
    # Slurm may send it up to a minute early, SGE checks s_rt about every 40 s)
    assert wait_final(run, 240) is RunState.FAILED, status_text(run)
    steps, signal_name = (tmp_path / "checkpoint").read_text().split()
    assert signal_name == "SIGUSR1" and int(steps) > 0
    (failed,) = only_failed(run)
    text = failed["error_text"]
    assert "TaskInterrupted: Task interrupted by SIGUSR1" in text, text
    last = text.splitlines()[-1]
    assert last == (
        "the job's time limit was near (the scheduler's warning signal came): "
        "the task was interrupted"
    ), text
