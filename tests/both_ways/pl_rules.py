"""A chain of array tasks for the rules both ways (tests/test_rules_both_ways.py).

items -> first (element `bad` raises) -> second (verify=: stale while the file
$RFTEST_STALE exists and names the value) -> third (returns a Path it writes)
-> fourth (cache=False) -> total.  Every execution is appended to
$RFTEST_CALLS as "task[index]".
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from reflow import Result, RunDir, Workflow

wf = Workflow("rt-rules")


def _record(name: str) -> None:
    path = os.environ.get("RFTEST_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")


def _still_good(value: int) -> bool:
    marker = os.environ.get("RFTEST_STALE")
    return not (marker and Path(marker).exists() and Path(marker).read_text() == str(value))


@wf.job()
def items(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def first(x: Annotated[int, Result(step="items")], bad: int = -1) -> int:
    _record(f"first[{x}]")
    if x == bad:
        raise ValueError(f"element {x} is bad")
    return x


@wf.array_job(verify=_still_good)
def second(x: Annotated[int, Result(step="first")]) -> int:
    _record(f"second[{x}]")
    return x


@wf.array_job()
def third(x: Annotated[int, Result(step="second")], run_dir: RunDir = RunDir()) -> Path:
    _record(f"third[{x}]")
    out = Path(run_dir) / f"third-{x}.txt"
    out.write_text(str(x))
    return out


@wf.array_job(cache=False)
def fourth(path: Annotated[Path, Result(step="third")]) -> int:
    x = int(path.read_text())
    _record(f"fourth[{x}]")
    return x


@wf.job()
def total(xs: Annotated[list[int], Result(step="fourth")]) -> int:
    return sum(xs)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
