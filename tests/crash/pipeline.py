"""The pipeline the crash tests kill: split -> a 1,000-element array of tiny tasks -> gather.

Every task appends "<task> <index> <pid>" to the execution log named by
CRASH_LOG (one short write with O_APPEND, so lines from many processes never
mix), then checks what it received, so a wrong or empty value fails the run.
CRASH_TASK_SECONDS makes every task sleep that long; tasks named in
CRASH_SLOW (comma-separated) sleep 0.1 s more.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("crashy")


def _log(task: str, index: int) -> None:
    path = os.environ.get("CRASH_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{task} {index} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
    pause = float(os.environ.get("CRASH_TASK_SECONDS", "0") or 0)
    if task in os.environ.get("CRASH_SLOW", "").split(","):
        pause += 0.1  # time for a test to kill the run after the task ran, before it is recorded
    if pause:
        time.sleep(pause)


@wf.job()
def split(n: int = 1000) -> list[int]:
    _log("split", -1)
    return list(range(n))


@wf.array_job()
def work(x: Annotated[int, Result(step="split")]) -> int:
    _log("work", x)
    return x * x + 1


@wf.job()
def gather(values: Annotated[list[int], Result(step="work")], n: int = 1000) -> int:
    _log("gather", -1)
    expected = [x * x + 1 for x in range(n)]
    if values != expected:
        wrong = [i for i, (a, b) in enumerate(zip(values, expected, strict=False)) if a != b][:5]
        raise ValueError(f"gather received wrong values (count {len(values)}, first wrong {wrong})")
    return sum(values)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
