"""Benchmark: what keeping each instance's stdout/stderr costs a local run.

    python benchmarks/capture.py [N] [--rounds R] [--printing]

The cold 3-stage fan-out of fanout.py (N = 100,000 by default) through
run_local, in a fresh process each time, the variants in turns (R = 5
rounds, the order reversed every other round, so that what a run leaves the
next, such as its files' writeback, falls on each variant alike): `on`, the
capture as shipped; `off`, a stand-in that captures nothing (what a run cost
before it was added), so the difference is the capture's own cost on the
same code and the same machine minute; with `--printing` also `print`, every
element printing one line (a log file kept per instance: mostly the cost of
creating that many files).  Prints each variant's best and median and the
share `on` adds to `off`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import in_child

from reflow import Result, Workflow

VARIANTS = ("off", "on", "print")


def build(printing: bool) -> Workflow:
    wf = Workflow("bench-capture")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def work(item: Annotated[int, Result(step="split")]) -> int:
        if printing:
            print("element", item)
        return item * 2

    @wf.job()
    def total(items: Annotated[list[int], Result(step="work")]) -> int:
        return sum(items)

    return wf


class _NoCapture:
    """The capture's interface, doing nothing: a run as it was before."""

    def __init__(self, *args: Any) -> None:
        pass

    def start(self) -> None:
        pass

    def keep(self, work: Any) -> None:
        pass

    def stop(self) -> None:
        pass

    def close(self) -> None:
        pass


def one(n: int, variant: str) -> dict[str, float]:
    """After an untimed warm-up run (N=10), one cold run of size N."""
    if variant == "off":
        import reflow.local

        reflow.local._Capture = _NoCapture  # type: ignore[misc,assignment]
    wf = build(variant == "print")
    with tempfile.TemporaryDirectory() as tmp:
        wf.run_local(Path(tmp) / "warm", store=Path(tmp) / "warm.db", n=10).store.close()
        t0 = time.perf_counter()
        run = wf.run_local(Path(tmp) / "run", store=Path(tmp) / "m.db", n=n)
        cold = time.perf_counter() - t0
        assert run.output("total") == n * (n - 1)
        kept = sum(1 for p in (Path(tmp) / "run" / "logs").rglob("*.out"))
        assert kept == (n if variant == "print" else 0), kept
        run.store.close()
    return {"cold": cold}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--printing", action="store_true", help="also the printing variant")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=VARIANTS, default="on", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.variant)))
        return
    variants = VARIANTS if args.printing else VARIANTS[:2]
    samples: dict[str, list[float]] = {v: [] for v in variants}
    for r in range(args.rounds):  # in turns, each variant first in every other round
        for v in variants if r % 2 == 0 else variants[::-1]:
            samples[v].append(in_child(__file__, args.n, "--variant", v)["cold"])
    print(f"cold fan-out of N={args.n} through run_local, best of {args.rounds} (median)")
    for v in variants:
        best, median = min(samples[v]), statistics.median(samples[v])
        print(f"  {v:<6} {best:7.3f} s ({median:.3f})  {best / args.n * 1e6:6.1f} us/inst")
    off, on = statistics.median(samples["off"]), statistics.median(samples["on"])
    print(f"  capture adds {100 * (on - off) / off:+.1f}% (medians)")


if __name__ == "__main__":
    main()
