"""Benchmark: a 3-stage fan-out / gather through run_local, cold and fully cached.

    python benchmarks/fanout.py [N ...]          (default: 1000 10000)

Prints, for each N, the wall time inside run_local, the per-instance
overhead, peak RSS of the process, and the growth ratio t(10N)/t(N).
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reflow import Result, Workflow


def build() -> Workflow:
    wf = Workflow("bench-fanout")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def work(item: Annotated[int, Result(step="split")]) -> int:
        return item * 2

    @wf.job()
    def total(items: Annotated[list[int], Result(step="work")]) -> int:
        return sum(items)

    return wf


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(sizes: list[int]) -> None:
    wf = build()
    print(f"{'N':>8} {'cold s':>8} {'us/inst':>8} {'cached s':>9} {'us/inst':>8} {'peak MB':>8}")
    previous: tuple[int, float, float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            store = Path(tmp) / f"m{n}.db"
            t0 = time.perf_counter()
            run = wf.run_local(Path(tmp) / "run", store=store, n=n)
            cold = time.perf_counter() - t0
            assert run.output("total") == n * (n - 1)
            t0 = time.perf_counter()
            wf.run_local(Path(tmp) / "run", store=store, n=n)
            cached = time.perf_counter() - t0
            instances = n + 2
            print(
                f"{n:>8} {cold:>8.3f} {cold / instances * 1e6:>8.1f} {cached:>9.3f} "
                f"{cached / instances * 1e6:>8.1f} {peak_rss_mb():>8.0f}"
            )
            if previous and n == previous[0] * 10:
                print(
                    f"{'':>8} growth t(10N)/t(N): cold {cold / previous[1]:.1f}, "
                    f"cached {cached / previous[2]:.1f}"
                )
            previous = (n, cold, cached)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
