"""Benchmark (a): a 3-stage fan-out / gather through run_local, cold and fully cached.

    python benchmarks/fanout.py [N ...] [--repeat R] [--payload BYTES] [--store URL]

Defaults: N = 1000 10000 100000, R = 5, payload 0.  Each N is measured R
times, the sizes in turns (see _harness.py), each time in a fresh process:
an untimed warm-up run (N=10), one cold run into a new store, one fully
cached rerun.  The best and the median are printed with the time per
instance, the largest peak RSS after the cold run ("peak MB": one run of that
size in a process of its own) and after the cached rerun too ("(all)"), the
store's growth per instance on a cached rerun (bytes, after a WAL checkpoint)
and the growth ratio t(10N)/t(N) of the best times.
`--payload` makes each `work` element return a string of that many bytes, to
show that a cached rerun does not copy outputs (its growth stays the same).
`--store postgresql://...` measures the PostgreSQL store instead: each run
(and its warm-up) in a fresh schema of that database, dropped afterwards; the
growth is the schema's tables and indices, as the server counts them.

Targets (issue 6, 2-core machine): N=10,000 cold <= 0.4 s, cached <= 0.2 s;
N=100,000 cold <= 5 s, peak RSS <= 250 MB; growth ratios <= 12.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _harness import growth_line, in_turns

from reflow import Result, Workflow

TARGETS = {10_000: (0.4, 0.2), 100_000: (5.0, None)}
RSS_TARGET_MB = 250


def build(payload: int = 0) -> Workflow:
    wf = Workflow("bench-fanout")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    if payload:

        @wf.array_job()
        def work(item: Annotated[int, Result(step="split")]) -> str:
            return str(item).rjust(payload, "x")

        @wf.job()
        def total(items: Annotated[list[str], Result(step="work")]) -> int:
            return sum(int(s.lstrip("x")) * 2 for s in items)

    else:

        @wf.array_job()
        def work(item: Annotated[int, Result(step="split")]) -> int:  # type: ignore[misc]
            return item * 2

        @wf.job()
        def total(items: Annotated[list[int], Result(step="work")]) -> int:  # type: ignore[misc]
            return sum(items)

    return wf


def store_bytes(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    return int(pages * size)


def postgres_bytes(url: str) -> int:
    """The bytes of the tables and indices of the schema `url` names (after a checkpoint)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM")
        row = conn.execute(
            "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace s ON s.oid = c.relnamespace "
            "WHERE s.nspname = current_schema() AND c.relkind = 'r'"
        ).fetchone()
    return int(row[0]) if row else 0


@contextlib.contextmanager
def fresh_schema(server: str) -> Iterator[str]:
    """A URL of a new, empty schema on `server`, dropped afterwards."""
    import uuid

    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{server}{'&' if '?' in server else '?'}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def one(n: int, payload: int, server: str | None = None) -> dict[str, float]:
    """After an untimed warm-up run (N=10), one cold run of size N and one fully cached rerun."""
    if server is None:
        return _one(n, payload, None, None)
    with fresh_schema(server) as warm, fresh_schema(server) as url:
        return _one(n, payload, warm, url)


def _one(n: int, payload: int, warm: str | None, url: str | None) -> dict[str, float]:
    wf = build(payload)
    with tempfile.TemporaryDirectory() as tmp:
        wf.run_local(Path(tmp) / "warm", store=warm or Path(tmp) / "warm.db", n=10).store.close()
        store: str | Path = url or Path(tmp) / "m.db"
        size = store_bytes if url is None else postgres_bytes
        t0 = time.perf_counter()
        run = wf.run_local(Path(tmp) / "run", store=store, n=n)
        cold = time.perf_counter() - t0
        assert run.output("total") == n * (n - 1)
        run.store.close()  # its final checkpoint belongs to this run, not the next
        cold_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        before = size(store)  # type: ignore[arg-type]
        t0 = time.perf_counter()
        run = wf.run_local(Path(tmp) / "run", store=store, n=n)
        cached = time.perf_counter() - t0
        assert run.output("total") == n * (n - 1)
        run.store.close()
        growth = (size(store) - before) / (n + 2)  # type: ignore[arg-type]
    return {
        "cold": cold,
        "cached": cached,
        "rss_mb": cold_rss,
        "rss_all_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "growth_bytes": growth,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=[1000, 10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--payload", type=int, default=0)
    ap.add_argument(
        "--store", metavar="URL", help="measure a PostgreSQL store (postgresql://...) instead"
    )
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.payload, args.store)))
        return
    print(
        f"3-stage fan-out/gather, best of {args.repeat} (median), the sizes measured in turns"
        + (f", {args.payload}-byte outputs" if args.payload else "")
        + (", on PostgreSQL" if args.store else ", on SQLite")
    )
    print(
        f"{'N':>7} {'cold s':>15} {'us/inst':>7} {'cached s':>15} {'us/inst':>7} "
        f"{'peak MB':>7} {'(all)':>5} {'rerun B/inst':>12}  targets"
    )
    extra = ["--payload", str(args.payload)] + (["--store", args.store] if args.store else [])
    measured = in_turns(__file__, args.sizes, args.repeat, ["cold", "cached"], *extra)
    previous: tuple[int, dict[str, float]] | None = None
    for n in args.sizes:
        m = measured[n]
        cold_t, cached_t = TARGETS.get(n, (None, None))
        targets = []
        if cold_t:
            targets.append(f"cold <= {cold_t} s")
        if cached_t:
            targets.append(f"cached <= {cached_t} s")
        if n >= 100_000:
            targets.append(f"RSS <= {RSS_TARGET_MB} MB")
        print(
            f"{n:>7} {m['cold']:>7.3f} ({m['cold_median']:>5.3f}) "
            f"{m['cold'] / (n + 2) * 1e6:>7.1f} "
            f"{m['cached']:>7.3f} ({m['cached_median']:>5.3f}) "
            f"{m['cached'] / (n + 2) * 1e6:>7.1f} {m['rss_mb']:>7.0f} {m['rss_all_mb']:>5.0f} "
            f"{m['growth_bytes']:>12.0f}  " + ", ".join(targets)
        )
        if previous and n == previous[0] * 10:
            p = previous[1]
            ratios = {"cold": m["cold"] / p["cold"], "cached": m["cached"] / p["cached"]}
            print(growth_line("N", ratios))
        previous = (n, m)


if __name__ == "__main__":
    main()
