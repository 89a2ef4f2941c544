"""The bodies of tasks that outgrow their memory, outlive their time limit but checkpoint,
or are requeued (preempted) while they run (pipelines/pl_retries.py declares the tasks).

`eat` needs about 350 MB: under mem="120M" Slurm's memory sampler kills its job; under
SGE's h_vmem (a limit on each process's allocations) the allocation fails and the task
gets a MemoryError. `until_interrupted` runs until the scheduler's warning before the
time limit interrupts it, writes a checkpoint file and re-raises; a later attempt finds
the checkpoint and finishes from it. `until_requeued`: element 0 waits to be requeued
(`started.0.<restarts>` says it runs), then finishes when its job runs again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from reflow.signals import TaskInterrupted

#: one of five processes of 70 MB, every page touched (test_failure_kinds.py's job)
HOG = """
import time
block = bytearray(70 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(150)
"""


def eat(megabytes: int) -> int:
    block = bytearray(megabytes << 20)
    for i in range(0, len(block), 4096):  # every page touched: really used (resident)
        block[i] = 1
    time.sleep(5)  # Slurm samples memory once a second
    return megabytes


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
