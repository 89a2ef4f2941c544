"""A small recorded run for the report's tests: cached instances, a retry and failures.

`failed_run` makes a store holding two runs of one workflow: the first (n=4)
succeeds; the second (n=6) reuses those four from the cache, fails element 4
(while the flag file exists, every element from 4 on fails) and element 5
(always, with `<script>` in its message), then is retried once with the flag
file gone, so element 4 succeeds on its second attempt and element 5 fails again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from reflow import Result, Run, Workflow

HOSTILE = "<script>alert('boom')</script>"


def pipeline(flag: Path) -> Workflow:
    wf = Workflow("reportdemo")

    @wf.job(time="00:01:00")
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job(cpus=2, mem="1G", time="00:10:00", partition="short")
    def work(item: Annotated[int, Result(step="split")]) -> int:
        if item == 5:
            raise RuntimeError(f"{HOSTILE} item {item}")
        if item >= 4 and flag.exists():
            raise ValueError(f"flag file present for item {item}")
        return item * 2

    @wf.job()
    def total(items: Annotated[list[int], Result(step="work")]) -> int:
        return sum(items)

    return wf


def failed_run(tmp: Path) -> Run:
    """The second run, after its retry: FAILED, with cached, retried and failed instances."""
    flag = tmp / "flag"
    wf = pipeline(flag)
    store = tmp / "report.db"
    wf.run_local(tmp / "run1", store=store, n=4)
    flag.touch()
    run = wf.run_local(tmp / "run2", store=store, n=6, on_error="continue")
    flag.unlink()
    run.retry()
    return run
