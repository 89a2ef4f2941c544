"""Benchmark (b): an array task feeding an array task element by element (chain), via run_local.

    python benchmarks/chain.py [N ...] [--repeat R]

Defaults: N = 2000 20000, R = 5.  The graph is `split` (returns
list(range(N))) -> `first` (array, fan-out) -> `second` (array, chained:
element i of `first` feeds element i of `second`).  Each N is measured R
times, the sizes in turns (see _harness.py), each time in a fresh process
(so its peak RSS is its own): an untimed warm-up run of N=10, then one cold
run into a new store.  The best and the median wall time inside run_local
are printed with the time per instance (2N + 1 instances), the largest peak
RSS and the growth ratio t(10N)/t(N) of the best times.

Targets (2-core machine): N = 20,000 in <= 1 s; growth ratio <= 12.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


from _harness import sizes_main

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


def one(n: int) -> dict[str, float]:
    """One cold run of size N in this process, after an untimed warm-up run."""
    wf = build()
    with tempfile.TemporaryDirectory() as tmp:
        wf.run_local(Path(tmp) / "warm", store=Path(tmp) / "warm.db", n=10).store.close()
        t0 = time.perf_counter()
        run = wf.run_local(Path(tmp) / "run", store=Path(tmp) / "m.db", n=n)
        wall = time.perf_counter() - t0
        outputs = run.outputs("second")
        assert len(outputs) == n and outputs[-1] == 2 * n, "wrong outputs"
        run.store.close()
    return {"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def row(n: int, m: dict[str, Any]) -> str:
    limit = TARGETS.get(n)
    return (
        f"{n:>7} {m['wall']:>7.3f} ({m['wall_median']:>5.3f}) "
        f"{m['wall'] / (2 * n + 1) * 1e6:>7.1f} {m['rss_mb']:>7.0f}  "
        + (f"<= {limit:g} s" if limit is not None else "-")
    )


def main() -> None:
    sizes_main(
        __file__, __doc__ or "", [2000, 20_000], one,
        title="array -> array chain",
        header=f"{'N':>7} {'wall s':>15} {'us/inst':>7} {'peak MB':>7}  target",
        row=row, symbol="N",
    )  # fmt: skip


if __name__ == "__main__":
    main()
