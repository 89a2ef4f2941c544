"""Failure kinds on the real Slurm cluster: an element killed for memory reads
OUT_OF_MEMORY every time it is asked, never COMPLETED or FAILED first (issue 14).

It is asked the way the dispatcher asks: one query for the job, each element looked up
in the answer. SGE's qacct has no such passing answers (and its execd kills a job whose
processes together exceed h_vmem only now and then): the recorded qacct outputs of
tests/test_sge_executor.py cover how it is read. The workflow-level cases (memory, time
limits, requeues, on both schedulers) are in test_retries_on_cluster.py.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pl_limits
from schedulers import Scheduler, only

from reflow.executors import JobResources, JobState

#: elements 0 and 1 need ~350 MB (five processes of 70 MB); element 2, the last, ends at
#: once (the last element's record is what sacct shows for the whole array at first)
_JOB = (
    "import os, subprocess, sys\n"
    "if int(os.environ['SLURM_ARRAY_TASK_ID']) < 2:\n"
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
    deadline = time.monotonic() + 120
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
    assert last.reason.startswith("FAILED, peak memory ") and last.reason.endswith(" of 120M")
