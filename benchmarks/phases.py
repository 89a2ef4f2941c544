"""Where the time of an instance goes, at two sizes run back to back in one process.

    python benchmarks/phases.py [fanout|cached|chain] [N ...] [--rounds R]

Defaults: fanout, N = 10000 100000, R = 3.  `fanout` is the cold 3-stage
fan-out/gather of fanout.py, `cached` its fully cached rerun, `chain` the
array -> array chain of chain.py.  After an untimed warm-up, the sizes run
alternately (N, 10N, N, 10N, ...) in this one process, each into its own
store, so both see the same machine; each line splits the run's cost per
instance into the time spent in SQLite's COMMIT, in INSERT statements, in the
other statements' execute() (a cursor's rows are fetched in Python and count
there), in the garbage collector, and the rest ("python").  Compare the
lines of one round: their ratio is the growth t(10N)/t(N) without the noise
of these shared machines, and the columns say which part grows.
"""

from __future__ import annotations

import argparse
import collections
import gc
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import chain
import fanout

from reflow.stores import sqlite as store_module

spent: collections.defaultdict[str, float] = collections.defaultdict(float)


class _TimedConnection(sqlite3.Connection):
    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
        t0 = time.perf_counter()
        try:
            return super().execute(sql, *args)
        finally:
            spent["commit" if sql.startswith("COMMIT") else "sql"] += time.perf_counter() - t0

    def executemany(self, sql: str, rows: Any) -> sqlite3.Cursor:  # type: ignore[override]
        t0 = time.perf_counter()
        try:
            return super().executemany(sql, rows)
        finally:
            spent["insert" if sql.startswith("INSERT") else "sql"] += time.perf_counter() - t0


_connect = sqlite3.connect


def _timed_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs["factory"] = _TimedConnection
    return _connect(*args, **kwargs)


_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        spent["gc"] += time.perf_counter() - _gc_started[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", nargs="?", choices=["fanout", "cached", "chain"], default="fanout")
    ap.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    store_module.sqlite3.connect = _timed_connect  # type: ignore[assignment]
    gc.callbacks.append(_on_gc)
    wf = chain.build() if args.what == "chain" else fanout.build()
    instances = (lambda n: 2 * n + 1) if args.what == "chain" else (lambda n: n + 2)
    columns = ("commit", "insert", "sql", "gc")
    print(f"{args.what}: microseconds an instance, the sizes alternating in one process")
    print(f"{'N':>8} {'total':>7} " + " ".join(f"{c:>7}" for c in columns) + f" {'python':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        wf.run_local(base / "warm", store=base / "warm.db", n=10).store.close()
        if args.what == "cached":
            for n in args.sizes:
                wf.run_local(base / "r", store=base / f"m{n}.db", n=n).store.close()
        for r in range(args.rounds):
            for n in args.sizes:
                db = base / (f"m{n}.db" if args.what == "cached" else f"m{n}-{r}.db")
                spent.clear()
                t0 = time.perf_counter()
                run = wf.run_local(base / "r", store=db, n=n)
                total = time.perf_counter() - t0
                run.store.close()
                k = 1e6 / instances(n)
                rest = total - sum(spent.values())
                print(
                    f"{n:>8} {total * k:>7.1f} "
                    + " ".join(f"{spent[c] * k:>7.1f}" for c in columns)
                    + f" {rest * k:>7.1f}"
                )


if __name__ == "__main__":
    main()
