"""Jobs SGE ends or would mishandle: over h_rt, over h_vmem, and a task that exits with
100 (which would leave an SGE job in error state). Each is its own workflow (one task,
then a task that would consume its output), so each test sees one reason."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Annotated

from reflow import Result, Workflow

timeout_wf = Workflow("sge-timeout")


@timeout_wf.job(time="00:00:03", mem="200M")
def slow(seconds: float) -> float:
    time.sleep(seconds)  # SGE kills the job when h_rt (3 s) is up
    return seconds


@timeout_wf.job(time="00:05:00", mem="200M")
def after_slow(x: Annotated[float, Result(step="slow")]) -> float:
    return x


memory_wf = Workflow("sge-memory")

_HOG = "import time; block = bytearray({mb} << 20); time.sleep(10)"


@memory_wf.job(time="00:05:00", mem="300M")
def greedy(megabytes: int) -> int:
    # two children of 150M each: every process stays under h_vmem, their sum does not,
    # and SGE kills the job for it (one process alone would get a MemoryError instead)
    hogs = [
        subprocess.Popen([sys.executable, "-c", _HOG.format(mb=megabytes // 2)]) for _ in range(2)
    ]
    for hog in hogs:
        hog.wait()
    return megabytes


@memory_wf.job(time="00:05:00", mem="200M")
def after_greedy(x: Annotated[int, Result(step="greedy")]) -> int:
    return x


exit_wf = Workflow("sge-exit100")


@exit_wf.job(time="00:05:00", mem="200M")
def bail(code: int) -> int:
    sys.stdout.flush()
    os._exit(code)  # no result; SGE would hold the job in error state on 100


@exit_wf.job(time="00:05:00", mem="200M")
def after_bail(x: Annotated[int, Result(step="bail")]) -> int:
    return x


if __name__ == "__main__":
    raise SystemExit(timeout_wf.cli())
