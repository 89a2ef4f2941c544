"""pl_limits' memory and time-limit tasks, retried by the engine: the resource that ran out
is asked for twice over (issue 14's Show).

`grow` needs ~350 MB under mem="120M" with retries=3: out of memory at 120M and 240M,
enough at 480M. `resumable` is interrupted before its 1-minute limit and checkpoints; its
second attempt, with two minutes, finds the checkpoint and finishes from it. `nap`
element 0 is requeued while it runs (see pl_limits), with a retry to spare.
"""

from __future__ import annotations

from typing import Annotated

from pl_limits import eat, until_interrupted, until_requeued

from reflow import Result, Workflow

grow_wf = Workflow("rt-grow")


@grow_wf.job(time="00:05:00", mem="100M")
def sizes(megabytes: int) -> list[int]:
    return [megabytes]


@grow_wf.job(array=True, time="00:05:00", mem="120M", retries=3)
def grow(megabytes: Annotated[int, Result(step="sizes")]) -> int:
    return eat(megabytes)


resume_wf = Workflow("rt-resume")


@resume_wf.job(time="00:01:00", mem="100M", retries=1, retry_on=["TIMEOUT"])
def resumable(folder: str) -> int:
    return until_interrupted(folder)


requeue_wf = Workflow("rt-requeue-retry")


@requeue_wf.job(time="00:05:00", mem="100M")
def items(n: int) -> list[int]:
    return list(range(n))


@requeue_wf.job(array=True, time="00:05:00", mem="100M", retries=1)
def nap(x: Annotated[int, Result(step="items")], folder: str) -> int:
    return until_requeued(x, folder)
