"""A task that waits for a gate file (to be seen running, or cancelled); an array that
records when each element runs (to check array_parallelism: Slurm's `%N`, SGE's -tc)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

from reflow import Result, Workflow

hold_wf = Workflow("rt-hold")


@hold_wf.job(time="00:05:00", mem="100M")
def hold(gate: str) -> str:
    deadline = time.time() + 240
    while not Path(gate).exists():
        if time.time() > deadline:
            raise TimeoutError(f"the gate file {gate} never appeared")
        time.sleep(0.2)
    return "opened"


@hold_wf.job(time="00:05:00", mem="100M")
def after_hold(word: Annotated[str, Result(step="hold")]) -> str:
    return word.upper()


par_wf = Workflow("rt-par")


@par_wf.job(time="00:05:00", mem="100M")
def items(n: int) -> list[int]:
    return list(range(n))


@par_wf.job(array=True, array_parallelism=2, time="00:05:00", mem="100M")
def stamp(x: Annotated[int, Result(step="items")], stamps: str) -> int:
    start = time.time()
    time.sleep(1.5)
    end = time.time()
    Path(stamps).mkdir(parents=True, exist_ok=True)
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID") or os.environ.get("JOB_ID")  # Slurm's, SGE's
    (Path(stamps) / f"{x}.txt").write_text(f"{start} {end} {array_job}")
    return x


if __name__ == "__main__":
    raise SystemExit(hold_wf.cli())
