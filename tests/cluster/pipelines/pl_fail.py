"""One array element raises until a flag file exists; the gather below depends on it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from task_calls import record

from reflow import Result, Workflow

wf = Workflow("rt-fail")


@wf.job(time="00:05:00", mem="100M")
def up(n: int) -> list[int]:
    record("up")
    return list(range(n))


def check_input(x: int, flag: str) -> None:
    if x == 1 and not Path(flag).exists():
        raise RuntimeError(f"element {x} needs the flag file {flag}")


@wf.job(array=True, time="00:05:00", mem="100M")
def work(x: Annotated[int, Result(step="up")], flag: str) -> int:
    record("work")
    check_input(x, flag)
    return 10 * x


@wf.job(time="00:05:00", mem="100M")
def done(xs: Annotated[list[int], Result(step="work")]) -> int:
    record("done")
    return sum(xs)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
