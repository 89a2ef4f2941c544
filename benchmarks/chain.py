"""Benchmark (b): an array task feeding an array task element by element (chain), via run_local.

    python benchmarks/chain.py [N ...] [--repeat R]

Defaults: N = 2000 20000, R = 3.  The graph is `split` (returns
list(range(N))) -> `first` (array, fan-out) -> `second` (array, chained:
element i of `first` feeds element i of `second`).  Each N runs in a fresh
process (so its peak RSS is its own): R cold runs, each into a new store;
the best and the median wall time inside run_local are printed with the
time per instance (2N + 1 instances), the process's peak RSS and the growth
ratio t(10N)/t(N) of the best times.

Targets (2-core machine): N = 20,000 in <= 1 s; growth ratio <= 12.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import growth_line, in_child

from reflow import Result, Workflow

TARGETS = {20_000: 1.0}


def build() -> Workflow:
    wf = Workflow("bench-chain")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def first(item: Annotated[int, Result(step="split")]) -> int:
        return item + 1

    @wf.array_job()
    def second(value: Annotated[int, Result(step="first")]) -> int:
        return value * 2

    return wf


def one(n: int, repeat: int) -> dict[str, float]:
    """Measure one N in this process."""
    wf = build()
    walls: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeat):
            t0 = time.perf_counter()
            run = wf.run_local(Path(tmp) / f"run{r}", store=Path(tmp) / f"m{r}.db", n=n)
            walls.append(time.perf_counter() - t0)
            outputs = run.outputs("second")
            assert len(outputs) == n and outputs[-1] == 2 * n, "wrong outputs"
    return {
        "best": min(walls),
        "median": statistics.median(walls),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[2000, 20_000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.repeat)))
        return
    print(f"array -> array chain, best of {args.repeat} (median)")
    print(f"{'N':>7} {'wall s':>15} {'us/inst':>7} {'peak MB':>7}  target")
    previous: tuple[int, float] | None = None
    for n in args.sizes:
        m = in_child(__file__, n, args.repeat)
        limit = TARGETS.get(n)
        print(
            f"{n:>7} {m['best']:>7.3f} ({m['median']:>5.3f}) "
            f"{m['best'] / (2 * n + 1) * 1e6:>7.1f} {m['rss_mb']:>7.0f}  "
            + (f"<= {limit:g} s" if limit is not None else "-")
        )
        if previous and n == previous[0] * 10:
            print(growth_line("N", {"": m["best"] / previous[1]}))
        previous = (n, m["best"])


if __name__ == "__main__":
    main()
