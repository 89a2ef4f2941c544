"""A concurrency workload: run small workflows on one shared store in a loop.

`python churn.py --store S --root DIR --seconds T --ident K` runs `run_local`
again and again until T seconds have passed.  Most runs take a "shared" salt
that changes every half second, so several processes compute (and look up in
the cache) the same identities at the same moment; the others take a salt of
their own.  Every task checks what it receives, so a cache hit that hands a
task a wrong or empty value fails the run.  Errors go to stderr with their
traceback; the last line on stdout is a JSON summary.

`verify_store(location)` checks a store such processes left behind (an SQLite
file or a PostgreSQL URL: the workload runs on either).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for backends

from backends import execute, is_postgres
from reflow import Result, RunState, Workflow

wf = Workflow("churn")


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expected(n: int, salt: str) -> tuple[list[str], list[dict[str, str]], str]:
    """The right outputs of `items`, `digest` and `total` for (n, salt)."""
    items_ = [f"{salt}:{i}" for i in range(n)]
    digests = [{"item": it, "sha": _sha(it)} for it in items_]
    return items_, digests, _sha("".join(d["sha"] for d in digests))


@wf.job()
def items(n: int, salt: str) -> list[str]:
    return expected(n, salt)[0]


@wf.array_job()
def digest(item: Annotated[str, Result(step="items")], salt: str) -> dict[str, str]:
    if not isinstance(item, str) or not item.startswith(salt + ":"):
        raise ValueError(f"digest received {item!r} in a run with salt {salt!r}")
    return {"item": item, "sha": _sha(item)}


@wf.job()
def total(
    digests: Annotated[list[dict[str, str]], Result(step="digest")], n: int, salt: str
) -> str:
    right = expected(n, salt)
    if digests != right[1]:
        raise ValueError(f"total received {len(digests)} wrong digests for n={n} salt={salt!r}")
    return right[2]


def verify_store(path: Path | str) -> dict[str, Any]:
    """What a store left by churn processes holds, and what is wrong in it."""
    from reflow import codec
    from reflow.stores import open_store

    def query(sql: str) -> list[Any]:
        return execute(path, sql)

    problems: list[str] = []
    empty = query(
        "SELECT i.run_id, i.task_name, i.array_index FROM instances i "
        "LEFT JOIN instances s ON s.id = i.cached_from WHERE i.state = 'SUCCESS' AND "
        "(i.output_hash IS NULL OR (i.cached_from IS NULL AND i.output IS NULL) OR "
        "(i.cached_from IS NOT NULL AND (s.id IS NULL OR s.state <> 'SUCCESS' "
        "OR s.output IS NULL OR s.output_hash <> i.output_hash)))"
    )
    if empty:
        problems.append(f"{len(empty)} SUCCESS rows without output, e.g. {empty[:3]}")
    locked = query("SELECT COUNT(*) FROM instances WHERE error_text LIKE '%locked%'")[0][0]
    if locked:
        problems.append(f"{locked} instances failed with a lock error")
    bad = query(
        "SELECT run_id, task_name, array_index, state FROM instances WHERE state <> 'SUCCESS'"
    )
    if bad:
        problems.append(f"{len(bad)} instances are not SUCCESS, e.g. {bad[:3]}")
    runs = query("SELECT run_id, status, params FROM runs")
    with open_store(path) as store:
        for run_id, status, params in runs:
            if status != "SUCCESS":
                problems.append(f"run {run_id} is {status}")
                continue
            p = codec.loads(params)
            right = expected(p["n"], p["salt"])
            got = (
                store.get_singleton_output(run_id, "items"),
                store.get_array_outputs(run_id, "digest"),
                store.get_singleton_output(run_id, "total"),
            )
            if got != right:
                problems.append(f"run {run_id} has wrong outputs")
    counts = dict(
        query(
            "SELECT CASE WHEN cached_from IS NULL THEN 'executed' ELSE 'cached' END, COUNT(*) "
            "FROM instances WHERE state = 'SUCCESS' GROUP BY 1"
        )
    )
    # identities computed more than once: processes that raced past each other's cache
    raced = query(
        "SELECT COUNT(*) FROM (SELECT identity FROM instances WHERE state = 'SUCCESS' "
        "AND cached_from IS NULL GROUP BY identity HAVING COUNT(*) > 1) AS twice"
    )[0][0]
    journal = "postgresql" if is_postgres(path) else query("PRAGMA journal_mode")[0][0]
    return {
        "runs": len(runs),
        "executed": counts.get("executed", 0),
        "cached": counts.get("cached", 0),
        "computed_twice": raced,
        "journal_mode": journal,
        "problems": problems,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--ident", type=int, default=0)
    parser.add_argument("--start-at", type=float, default=0.0, help="time.time() to begin at")
    ns = parser.parse_args(argv)
    from reflow.stores import open_store

    rng = random.Random(ns.ident)
    root = Path(ns.root)
    shared_store = open_store(ns.store)
    stats = {"runs": 0, "errors": 0, "wrong": 0}
    while time.time() < ns.start_at:  # start together with the others
        time.sleep(0.001)
    deadline = time.monotonic() + ns.seconds
    k = 0
    while time.monotonic() < deadline:
        k += 1
        n = rng.choice([3, 10, 30])
        if rng.random() < 0.7:  # the same identities as other processes, at the same time
            salt = f"shared-{int(time.time() * 2)}-{rng.randint(0, 1)}"
        else:
            salt = f"own-{ns.ident}-{k}"
        force = ["digest"] if rng.random() < 0.1 else None
        store: Any = shared_store if k % 2 else ns.store  # one connection, or one per run
        try:
            run = wf.run_local(
                root / f"p{ns.ident}-{k}", store=store, n=n, salt=salt, force_tasks=force
            )
            stats["runs"] += 1
            right = expected(n, salt)
            got = (run.output("items"), run.outputs("digest"), run.output("total"))
            if run.state is not RunState.SUCCESS or got != right:
                stats["wrong"] += 1
                print(f"run {run.run_id} ({n}, {salt}) is {run.state}: {got}", file=sys.stderr)
        except Exception:
            stats["errors"] += 1
            traceback.print_exc()
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
