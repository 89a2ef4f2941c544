"""A task that outgrows its memory, and one that outlives its time limit but checkpoints.

`hungry` needs about 350 MB (in five processes of 70 MB, so each stays under SGE's
per-process h_vmem and the job's sum does not) under mem="120M". `patient` runs until
the scheduler's warning before its 1-minute limit interrupts it, writes a checkpoint
file, and re-raises; a later attempt (with more time) starts from the checkpoint.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from reflow import Workflow
from reflow.signals import TaskInterrupted

#: one process's share of the memory: every page touched, so it is really used
HOG = """
import time
block = bytearray(70 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(150)
"""


def eat_350_megabytes() -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(5)]
    for hog in hogs:
        hog.wait()


oom_wf = Workflow("rt-oom")


@oom_wf.job(time="00:05:00", mem="120M")
def hungry(n: int) -> int:
    eat_350_megabytes()
    return n


limit_wf = Workflow("rt-limit")


@limit_wf.job(time="00:01:00", mem="100M")
def patient(folder: str) -> int:
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


if __name__ == "__main__":
    raise SystemExit(limit_wf.cli())
