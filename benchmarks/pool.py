"""Benchmark (f): run_local with a pool of worker processes on CPU-bound array elements.

    python benchmarks/pool.py [N [MS [WORKERS]]] [--repeat R]

Defaults: N = 1000, MS = 5, WORKERS = 2, R = 3.  The graph is `split`
(returns list(range(N))) -> `spin` (array task: each element busy-loops MS
milliseconds of its own CPU time, no sleeping).  Timed inside run_local,
each run on a cold store, best of R: N elements with max_workers=1
(in-process), N/10 and N elements with max_workers=WORKERS.  Prints the
best and median wall time of each, the per-instance overhead beyond the
ideal (N * MS / workers), the CPU time the driving process itself used (on
2 cores it competes with the workers), peak RSS (this process and its
largest worker), the growth ratio t(N)/t(N/10) with WORKERS (target <= 12)
and the speed-up of the best times, next to its target (>= 1.8x with 2
workers on a 2-core machine).  Task functions live at module level so the
pool can send them to its worker processes by name.
"""

from __future__ import annotations

import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reflow import Result, Workflow

TARGET_SPEEDUP = 1.8

wf = Workflow("bench-pool")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def spin(item: Annotated[int, Result(step="split")], ms: float = 5.0) -> int:
    """Burn `ms` milliseconds of this thread's CPU time."""
    end = time.thread_time() + ms / 1000
    x = 0
    while time.thread_time() < end:
        x += 1
    return item


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024


def timed(tmp: Path, n: int, ms: float, workers: int, r: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one cold run."""
    store = tmp / f"m{workers}-{n}-{r}.db"
    c0, t0 = time.process_time(), time.perf_counter()
    run = wf.run_local(tmp / f"run{workers}-{n}-{r}", store=store, max_workers=workers, n=n, ms=ms)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert run.outputs("spin") == list(range(n)), "wrong outputs"
    return wall, cpu


def main(n: int, ms: float, workers: int, repeat: int) -> None:
    print(f"{n} elements of {ms:g} ms CPU each; {os.cpu_count()} cores; best of {repeat} (median)")
    print(
        f"{'N':>6} {'workers':>8} {'wall s':>15} {'ideal s':>8} {'us/inst':>8} "
        f"{'driver cpu s':>13} {'peak MB':>8}"
    )
    best: dict[tuple[int, int], float] = {}
    small = max(1, n // 10)
    with tempfile.TemporaryDirectory() as tmp:
        for size, w in ((n, 1), (small, workers), (n, workers)):
            runs = [timed(Path(tmp), size, ms, w, r) for r in range(repeat)]
            wall, cpu = min(runs)
            best[size, w] = wall
            median = statistics.median(t for t, _ in runs)
            ideal = size * ms / 1000 / w
            print(
                f"{size:>6} {w:>8} {wall:>7.3f} ({median:>5.3f}) {ideal:>8.3f} "
                f"{(wall - ideal) / size * 1e6:>8.1f} {cpu:>13.3f} {peak_rss_mb():>8.0f}"
            )
    growth = best[n, workers] / best[small, workers]
    print(f"growth t(N)/t(N/10) with {workers} workers: {growth:.1f} (target <= 12)")
    speedup = best[n, 1] / best[n, workers]
    print(f"speed-up with {workers} workers: {speedup:.2f}x (target >= {TARGET_SPEEDUP:g}x)")


if __name__ == "__main__":
    args = sys.argv[1:]
    repeat = 3
    if "--repeat" in args:
        at = args.index("--repeat")
        repeat = int(args[at + 1])
        del args[at : at + 2]
    main(
        int(args[0]) if args else 1000,
        float(args[1]) if len(args) > 1 else 5.0,
        int(args[2]) if len(args) > 2 else 2,
        repeat,
    )
