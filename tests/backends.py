"""Raw SQL on a store at a location of either backend (an SQLite path, a PostgreSQL URL).

What the tests of both backends use to look under the store, or to break it on
purpose: one statement, its rows, the driver's own errors.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

try:
    import psycopg
except ImportError:  # the SQLite cases run without it
    psycopg = None  # type: ignore[assignment]

#: a broken constraint, as either driver raises it
INTEGRITY_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,) + (
    (psycopg.IntegrityError,) if psycopg is not None else ()
)


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """Whether `location` names a PostgreSQL store."""
    return os.fspath(location).startswith(("postgresql://", "postgres://"))


def execute(location: str | os.PathLike[str], sql: str, args: Any = ()) -> list[Any]:
    """Run one statement (with `?` placeholders), committed; its rows ([] if none)."""
    if is_postgres(location):
        assert psycopg is not None
        with psycopg.connect(os.fspath(location), autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), tuple(args)) if args else conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []
    with sqlite3.connect(Path(location), timeout=5) as db:
        rows = list(db.execute(sql, tuple(args)).fetchall())
    db.close()
    return rows


def runs_in(location: str | os.PathLike[str]) -> int:
    """How many runs the store at `location` holds (0 when there is no SQLite file)."""
    if not is_postgres(location) and not Path(location).exists():
        return 0
    return int(execute(location, "SELECT COUNT(*) FROM runs")[0][0])


def open_at_once(location: str | os.PathLike[str], processes: int) -> list[tuple[int, str, str]]:
    """Open the store at `location` from `processes` processes at once, each listing its
    runs: (exit code, the number of runs printed, stderr) of each."""
    code = (
        "import sys\n"
        "from reflow.stores import open_store\n"
        "print(len(open_store(sys.argv[1]).list_runs()))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, os.fspath(location)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    seen = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        seen.append((p.returncode, out.strip(), err))
    return seen
