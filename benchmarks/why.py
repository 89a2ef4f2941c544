"""Benchmark: `why` and the dry run on a big fan-out (issue 15).

    python benchmarks/why.py [N] [--repeat R]

Default N = 100,000, R = 3.  A fan-out of N elements is run twice into a
new store, the second time with its parameter changed (so all N elements
rerun); then, R times each, it measures:

- `why` of the second run (N elements compared with their earlier selves:
  one group, "factor: 1 -> 2"),
- `why` of a third, fully cached run (N elements "cached from run ..."),
- `why` of a fourth run whose list gained one element at its end (N cached,
  one new element searched for in every earlier run),
- a dry run with the parameter changed again (N elements would run),
- a dry run with the second run's arguments (N elements would be reused).

Each is printed as best and median seconds.  Target (issue 15): `why` on a
100,000-instance run answers in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reflow import Result, Run, Workflow


def build() -> Workflow:
    wf = Workflow("bench-why")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def work(item: Annotated[int, Result(step="split")], factor: int = 1) -> int:
        return item * factor

    @wf.job()
    def total(items: Annotated[list[int], Result(step="work")]) -> int:
        return sum(items)

    return wf


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    n = args.n
    wf = build()
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "m.db"
        wf.run_local(Path(tmp) / "r1", store=store, n=n, factor=1).store.close()
        changed = wf.run_local(Path(tmp) / "r2", store=store, n=n, factor=2)
        cached = wf.run_local(Path(tmp) / "r3", store=store, n=n, factor=2)
        grown = wf.run_local(Path(tmp) / "r4", store=store, n=n + 1, factor=2)
        st = changed.store
        rows: list[tuple[str, Callable[[], Any]]] = [
            ("why, all rerun", lambda: Run(changed.run_id, st).why()),
            ("why, all cached", lambda: Run(cached.run_id, st).why()),
            ("why, one new element", lambda: Run(grown.run_id, st).why("work")),
            (
                "dry run, all to run",
                lambda: wf.dry_run(Path(tmp) / "d", store=store, n=n, factor=3),
            ),
            (
                "dry run, all cached",
                lambda: wf.dry_run(Path(tmp) / "d", store=store, n=n, factor=2),
            ),
        ]
        print(f"why and dry run on a {n:,}-element fan-out, best (median) of {args.repeat}")
        for name, fn in rows:
            times, result = timed(fn, args.repeat)
            if isinstance(result, list):
                shown = " | ".join(line for line in result if line.startswith("work"))
            else:
                shown = result["tasks"]["work"]
            print(f"  {name:<20} {min(times):7.2f} s ({statistics.median(times):.2f} s)  {shown}")


if __name__ == "__main__":
    main()
