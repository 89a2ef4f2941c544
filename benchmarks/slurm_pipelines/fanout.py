"""A 3-stage fan-out: split -> work[i] -> again[i] -> total."""

from __future__ import annotations

from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("bench-slurm-fanout")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def work(item: Annotated[int, Result(step="split")]) -> int:
    return item * 2


@wf.array_job()
def again(item: Annotated[int, Result(step="work")]) -> int:
    return item + 1


@wf.job()
def total(items: Annotated[list[int], Result(step="again")]) -> int:
    return sum(items)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
