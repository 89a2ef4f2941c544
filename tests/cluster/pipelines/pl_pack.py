"""Packed array elements and fused singleton chains, for the packing tests.

`crunch` runs five instances per array element (pack=5).  One instance can
raise, SIGKILL its element or outgrow its memory limit, once per run
directory (a marker file), so that `retry` then completes the run.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Annotated

from task_calls import record

from reflow import Result, RunDir, Workflow

wf = Workflow("rt-pack")


def _first_time(run_dir: Path, what: str) -> bool:
    """True the first time in this run directory (the marker is made before acting)."""
    try:
        os.close(os.open(run_dir / f"{what}.once", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


@wf.job(time="00:05:00", mem="100M")
def items(n: int) -> list[int]:
    return list(range(n))


@wf.array_job(time="00:02:00", mem="100M", pack=5)
def crunch(
    i: Annotated[int, Result(step="items")],
    trouble: str = "",
    at: int = -1,
    run_dir: RunDir = RunDir(),
) -> int:
    record(f"crunch{i}")
    if i == at and trouble == "raise":
        raise ValueError(f"item {i} is bad")
    if i == at and trouble == "kill" and _first_time(run_dir, "kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if i == at and trouble == "memory" and _first_time(run_dir, "memory"):
        block = bytearray(400 << 20)
        for k in range(0, len(block), 4096):  # touch every page: the memory is really used
            block[k] = 1
        time.sleep(5)  # the test cluster samples memory every second
    return i * i


@wf.job(time="00:05:00", mem="100M")
def gather(xs: Annotated[list[int], Result(step="crunch")]) -> int:
    return sum(xs)


long_wf = Workflow("rt-pack-long")


@long_wf.job(time="00:05:00", mem="100M")
def sleepers(n: int) -> list[int]:
    return list(range(n))


@long_wf.array_job(time="00:05:00", mem="100M")
def nap(i: Annotated[int, Result(step="sleepers")], seconds: float = 20.0) -> float:
    started = time.time()
    time.sleep(seconds)
    return started


chain_wf = Workflow("rt-fuse")


@chain_wf.job(time="00:02:00", mem="100M", cache=False)
def first(x: int) -> int:
    record("first")
    return x


@chain_wf.job(time="00:02:00", mem="100M")
def middle(x: Annotated[int, Result(step="first")]) -> int:
    record("middle")
    return x + 1


@chain_wf.job(time="00:02:00", mem="100M", version="1")
def last(x: Annotated[int, Result(step="middle")]) -> int:
    record("last")
    return x * 10
