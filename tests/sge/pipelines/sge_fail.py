"""One array element raises until a flag file exists; the gather below depends on it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("sge-fail")


def _record(name: str) -> None:
    path = os.environ.get("RFTEST_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")


@wf.job(time="00:05:00", mem="200M")
def up(n: int) -> list[int]:
    _record("up")
    return list(range(n))


def check_input(x: int, flag: str) -> None:
    if x == 1 and not Path(flag).exists():
        raise RuntimeError(f"element {x} needs the flag file {flag}")


@wf.job(array=True, time="00:05:00", mem="200M")
def work(x: Annotated[int, Result(step="up")], flag: str) -> int:
    _record("work")
    check_input(x, flag)
    return 10 * x


@wf.job(time="00:05:00", mem="200M")
def done(xs: Annotated[list[int], Result(step="work")]) -> int:
    _record("done")
    return sum(xs)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
