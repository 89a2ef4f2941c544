"""fan-out -> chain -> gather: make a list, square each item, add one to each, sum them.

By default the items are 0..n-1. With `--first 3 --step 10` they are not their
indices, so an element that read its neighbour's input (SGE counts array tasks
from 1, reflow's elements from 0) shows in the outputs.
"""

from __future__ import annotations

import os
from typing import Annotated

from task_calls import record

from reflow import Param, Result, Workflow

wf = Workflow("rt-fanout")


def _array_task() -> str:
    """The scheduler's own name of this array task (`Slurm task 0`, `SGE task 1`)."""
    for scheduler, variable in (("Slurm", "SLURM_ARRAY_TASK_ID"), ("SGE", "SGE_TASK_ID")):
        if os.environ.get(variable, "").isdigit():
            return f"{scheduler} task {os.environ[variable]}"
    return "no scheduler's array task"


@wf.job(time="00:05:00", mem="100M")
def make(
    n: Annotated[int, Param(help="how many items")],
    first: Annotated[int, Param(help="the first item")] = 0,
    step: Annotated[int, Param(help="from one item to the next")] = 1,
) -> list[int]:
    record("make")
    return [first + step * i for i in range(n)]


@wf.job(array=True, time="00:05:00", mem="100M")
def square(x: Annotated[int, Result(step="make")]) -> int:
    record("square")
    print(f"square of {x} in {_array_task()}")
    return x * x


@wf.job(array=True, time="00:05:00", mem="100M")
def plus(x: Annotated[int, Result(step="square")]) -> int:
    record("plus")
    return x + 1


@wf.job(time="00:05:00", mem="100M")
def total(xs: Annotated[list[int], Result(step="plus")]) -> int:
    record("total")
    return sum(xs)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
