"""fan-out -> chain -> gather: make a list, square each item, add one to each, sum them.

The items are not their indices, so an element that read its neighbour's input
(SGE counts array tasks from 1, reflow's elements from 0) shows in the outputs.
"""

from __future__ import annotations

import os
from typing import Annotated

from reflow import Param, Result, Workflow

wf = Workflow("sge-fanout")


def _record(name: str) -> None:
    """Append the task's name to $RFTEST_CALLS, so tests count real executions."""
    path = os.environ.get("RFTEST_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")


@wf.job(time="00:05:00", mem="200M")
def make(n: Annotated[int, Param(help="how many items")]) -> list[int]:
    _record("make")
    return [10 * i + 3 for i in range(n)]


@wf.job(array=True, time="00:05:00", mem="200M")
def square(x: Annotated[int, Result(step="make")]) -> int:
    _record("square")
    print(f"square of {x} in SGE task {os.environ.get('SGE_TASK_ID')}")
    return x * x


@wf.job(array=True, time="00:05:00", mem="200M")
def plus(x: Annotated[int, Result(step="square")]) -> int:
    _record("plus")
    return x + 1


@wf.job(time="00:05:00", mem="200M")
def total(xs: Annotated[list[int], Result(step="plus")]) -> int:
    _record("total")
    return sum(xs)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
