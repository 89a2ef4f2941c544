"""Workers the scheduler ends: killed by SIGKILL, over the time limit, over the memory limit.

Each is its own workflow (one task, then a task that would consume its output),
so each test sees one scheduler reason.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated

from reflow import Result, Workflow

kill_wf = Workflow("rt-kill")


@kill_wf.job(time="00:05:00", mem="100M")
def killed(n: int) -> int:
    os.kill(os.getpid(), signal.SIGKILL)
    return n


@kill_wf.job(time="00:05:00", mem="100M")
def after_kill(x: Annotated[int, Result(step="killed")]) -> int:
    return x


timeout_wf = Workflow("rt-timeout")


@timeout_wf.job(time="00:01:00", mem="100M")
def slow(seconds: float) -> float:
    # Slurm ends the job after its 1-minute limit (it checks limits every ~30 s,
    # so the kill comes 60-90 s in); the sleep is longer than that on purpose.
    time.sleep(seconds)
    return seconds


memory_wf = Workflow("rt-memory")


@memory_wf.job(time="00:05:00", mem="200M")
def greedy(megabytes: int) -> int:
    block = bytearray(megabytes << 20)
    for i in range(0, len(block), 4096):  # touch every page, so the memory is really used
        block[i] = 1
    time.sleep(2)  # give a memory watchdog time to notice
    return len(block) >> 20


if __name__ == "__main__":
    raise SystemExit(timeout_wf.cli())
