"""Jobs the scheduler ends or would mishandle: killed by SIGKILL, over the time limit, over
the memory limit, and a task that exits with 100 (which would leave an SGE job in error
state). Each is its own workflow (one task, then a task that would consume its output),
so each test sees one scheduler reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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
    # the scheduler ends the job after its 1-minute limit (Slurm counts whole minutes and
    # checks limits every ~30 s, so its kill comes 60-90 s in); the sleep is longer on purpose
    time.sleep(seconds)
    return seconds


@timeout_wf.job(time="00:05:00", mem="100M")
def after_slow(x: Annotated[float, Result(step="slow")]) -> float:
    return x


memory_wf = Workflow("rt-memory")

# one child's share: every page touched, so the memory is really used (resident)
_HOG = """
import time
block = bytearray({mb} << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
time.sleep(10)
"""


@memory_wf.job(time="00:05:00", mem="300M")
def greedy(megabytes: int) -> int:
    # two children of half each: with megabytes=300 every process stays under SGE's h_vmem
    # (a per-process limit too), their sum does not, and SGE kills the job for it (one
    # process alone would get a MemoryError instead); Slurm's memory watchdog sums them
    hogs = [
        subprocess.Popen([sys.executable, "-c", _HOG.format(mb=megabytes // 2)]) for _ in range(2)
    ]
    for hog in hogs:
        hog.wait()
    return megabytes


@memory_wf.job(time="00:05:00", mem="100M")
def after_greedy(x: Annotated[int, Result(step="greedy")]) -> int:
    return x


exit_wf = Workflow("rt-exit100")


@exit_wf.job(time="00:05:00", mem="100M")
def bail(code: int) -> int:
    sys.stdout.flush()
    os._exit(code)  # no result; SGE would hold the job in error state on 100


@exit_wf.job(time="00:05:00", mem="100M")
def after_bail(x: Annotated[int, Result(step="bail")]) -> int:
    return x


if __name__ == "__main__":
    raise SystemExit(timeout_wf.cli())
