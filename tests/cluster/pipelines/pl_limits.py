"""A task that outgrows its memory, one that outlives its time limit but checkpoints, and
one whose job is requeued (preempted) while it runs.

`hungry` needs about 350 MB under mem="120M": Slurm's memory sampler kills its job;
under SGE's h_vmem (a limit on each process's allocations) the allocation fails and
the task gets a MemoryError. `patient` runs until the scheduler's warning before its
1-minute limit interrupts it, writes a checkpoint file, and re-raises; a later attempt
(with more time) starts from the checkpoint. `until_requeued`: element 0 waits to be
requeued (`started.0.<restarts>` says it runs), then finishes when its job runs again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from reflow import Workflow
from reflow.signals import TaskInterrupted

#: five processes of 70 MB: each under SGE's per-process h_vmem, so the job as a whole
#: is over it (SGE's execd samples the sum, not always: see test_failure_kinds)
HOG = """
import time
block = bytearray(70 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(150)
"""

oom_wf = Workflow("rt-oom")


@oom_wf.job(time="00:05:00", mem="120M")
def hungry(megabytes: int) -> int:
    return eat(megabytes)


def eat(megabytes: int) -> int:
    block = bytearray(megabytes << 20)
    for i in range(0, len(block), 4096):  # every page touched: really used (resident)
        block[i] = 1
    time.sleep(5)  # Slurm samples memory once a second
    return megabytes


limit_wf = Workflow("rt-limit")


@limit_wf.job(time="00:01:00", mem="100M")
def patient(folder: str) -> int:
    return until_interrupted(folder)


def until_interrupted(folder: str) -> int:
    checkpoint = Path(folder) / "checkpoint"
    steps = int(checkpoint.read_text().split()[0]) if checkpoint.exists() else 0
    if steps:  # resumed: finish from where the attempt before stopped
        return steps
    try:
        while True:
            time.sleep(0.1)
            steps += 1
    except TaskInterrupted as exc:
        checkpoint.write_text(f"{steps} {exc.signal_name}")
        raise


def until_requeued(x: int, folder: str) -> int:
    restarts = os.environ.get("SLURM_RESTART_COUNT", "0")
    Path(folder, f"started.{x}.{restarts}").touch()
    if x == 0 and restarts == "0":
        try:
            time.sleep(120)  # the test requeues the job meanwhile
        except TaskInterrupted as exc:
            Path(folder, f"interrupted.{x}").write_text(exc.signal_name)
            raise
    return x


if __name__ == "__main__":
    raise SystemExit(limit_wf.cli())
