"""Many processes running workflows on one store at once, for a minute; prints the figures.

    python benchmarks/concurrency_soak.py [--processes 8] [--seconds 60] [--journal delete]
                                          [--store postgresql://...]

Each process (tests/crash/churn.py) runs small workflows again and again, most
of them on identities the other processes compute at the same moment.  At the
end the store is checked: lock errors (in stderr and in the store), SUCCESS
rows without output, runs with wrong outputs must all be 0.  Exits 1 if not.
`--store` runs it on a PostgreSQL database instead, in a fresh schema dropped
afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRASH = HERE.parent / "tests" / "crash"
sys.path.insert(0, str(CRASH))
sys.path.insert(0, str(HERE))

from churn import verify_store  # noqa: E402
from fanout import fresh_schema  # noqa: E402
from test_concurrency import churn  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--dir", help="where to put the store and run dirs (default: a temp dir)")
    parser.add_argument(
        "--journal", help="force a journal mode (REFLOW_SQLITE_JOURNAL), e.g. delete as on NFS"
    )
    parser.add_argument("--store", metavar="URL", help="a PostgreSQL database to run it on")
    ns = parser.parse_args()
    if ns.journal:
        os.environ["REFLOW_SQLITE_JOURNAL"] = ns.journal
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(dir=ns.dir))
        root = Path(tmp)
        store: Path | str = root / "shared.db"
        if ns.store:
            store = stack.enter_context(fresh_schema(ns.store))
        started = time.monotonic()
        results = churn(store, root / "runs", ns.processes, ns.seconds)
        wall = time.monotonic() - started
        found = verify_store(store)
    locked = sum(str(r["stderr"]).count("database is locked") for r in results)
    errors = sum(int(str(r.get("errors", 0))) for r in results)
    wrong = sum(int(str(r.get("wrong", 0))) for r in results)
    crashed = sum(1 for r in results if r["code"] != 0)
    runs = int(found["runs"])
    print(f"processes              {ns.processes}")
    print(f"seconds each           {ns.seconds:.0f}")
    print(f"wall time              {wall:.1f} s")
    print(f"journal mode           {found['journal_mode']}")  # postgresql: none
    print(f"runs                   {runs} ({runs / ns.seconds:.1f} per second)")
    print(f"instances executed     {found['executed']}")
    print(f"instances from cache   {found['cached']}")
    print(f"identities computed twice (raced past the cache, allowed): {found['computed_twice']}")
    print(f"'database is locked'   {locked}  (must be 0)")
    print(f"run errors             {errors}  (must be 0)")
    print(f"wrong outputs          {wrong}  (must be 0)")
    print(f"processes crashed      {crashed}  (must be 0)")
    print(f"store problems         {len(found['problems'])}  (must be 0)")
    for p in found["problems"]:
        print(f"  {p}")
    for r in results:
        if r["stderr"]:
            print(f"stderr of process {r['ident']}:\n{r['stderr']}")
    bad = locked + errors + wrong + crashed + len(found["problems"])
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
