"""Benchmark (c): a long chain of singleton tasks (task k takes task k-1's Result), via run_local.

    python benchmarks/singletons.py [K ...] [--repeat R]

Defaults: K = 200 2000, R = 5.  The graph is `s0 -> s1 -> ... -> s{K-1}`,
each a plain `@wf.job()` whose argument is `Result(step="s{k-1}")`: every
task is its own wave, so this measures the fixed cost the engine pays per
task (expansion, identity, cache look-up, its writes to the store).  Each K
is measured R times, the sizes in turns (see _harness.py), each time in a
fresh process (so its peak RSS is its own): the workflow is built and
validated (timed apart), a 3-task chain runs untimed as a warm-up, then one
cold run into a new store.  The best and the median wall time inside
run_local are printed with the time per task, the best build time, the
largest peak RSS and the growth ratio t(10K)/t(K) of the best times.

Targets (2-core machine): K = 2,000 in <= 0.5 s; growth ratio <= 12.
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

TARGETS = {2_000: 0.5}


def _step(k: int) -> Any:
    if k == 0:

        def s0(start: int = 0) -> int:
            return start

        return s0

    def step(previous: int) -> int:
        return previous + 1

    step.__name__ = step.__qualname__ = f"s{k}"
    # built here: a string annotation could not name k
    step.__annotations__ = {"previous": Annotated[int, Result(step=f"s{k - 1}")], "return": int}
    return step


def build(k: int) -> Workflow:
    wf = Workflow(f"bench-singletons-{k}")
    for i in range(k):
        wf.job()(_step(i))
    return wf


def one(k: int) -> dict[str, float]:
    """Build the K-task workflow, then one cold run of it, after an untimed warm-up run."""
    t0 = time.perf_counter()
    wf = build(k)
    wf.validate()
    built = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        build(3).run_local(Path(tmp) / "warm", store=Path(tmp) / "warm.db").store.close()
        t0 = time.perf_counter()
        run = wf.run_local(Path(tmp) / "run", store=Path(tmp) / "m.db")
        wall = time.perf_counter() - t0
        assert run.output(f"s{k - 1}") == k - 1, "wrong output"
        run.store.close()
    return {
        "wall": wall,
        "build": built,
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def row(k: int, m: dict[str, Any]) -> str:
    limit = TARGETS.get(k)
    return (
        f"{k:>7} {m['wall']:>7.3f} ({m['wall_median']:>5.3f}) {m['wall'] / k * 1e6:>7.1f} "
        f"{m['build']:>7.3f} {m['rss_mb']:>7.0f}  "
        + (f"<= {limit:g} s" if limit is not None else "-")
    )


def main() -> None:
    sizes_main(
        __file__, __doc__ or "", [200, 2000], one,
        title="chain of singleton tasks",
        header=f"{'K':>7} {'wall s':>15} {'us/task':>7} {'build s':>7} {'peak MB':>7}  target",
        row=row, symbol="K", times=("wall", "build"),
    )  # fmt: skip


if __name__ == "__main__":
    main()
