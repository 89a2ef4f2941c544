"""`reflow doctor`: check a store's health; change nothing unless asked (`--fix`).

It checks the SQLite file's integrity and schema version, that every SUCCESS
instance still has its output, finds runs left RUNNING by a process that is
gone, and result files nobody will ingest.  With `fix=True` it marks runs
whose driver died as FAILED (their unfinished instances CANCELLED, so
`retry` resumes them) and removes leftover result files of finished instances.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .errors import StoreError

__all__ = ["Report", "check_store"]


@dataclass
class Report:
    """What the doctor found: lines for people, and whether anything is wrong."""

    lines: list[str] = field(default_factory=list)
    problems: int = 0

    def ok(self, text: str) -> None:
        self.lines.append(f"ok: {text}")

    def problem(self, text: str) -> None:
        self.lines.append(f"problem: {text}")
        self.problems += 1

    def fixed(self, text: str) -> None:
        self.lines.append(f"fixed: {text}")


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise StoreError(f"there is no store at {path}: check --store-path or REFLOW_STORE_PATH")
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise StoreError(
            f"{path} is not a readable SQLite database ({exc}); it was left untouched"
        ) from None
    return conn


def check_store(path: Path, *, fix: bool = False) -> Report:
    """Check the store at `path`; with `fix`, repair what can be repaired safely."""
    from .stores.sqlite import SCHEMA_VERSION, SqliteStore
    from .workflow import FOREGROUND, owner_alive

    report = Report()
    conn = _read_only(path)
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "meta" not in tables:
            report.problem(f"{path} is an SQLite file but not a reflow store (no 'meta' table)")
            return report
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            report.problem(
                f"schema version {version} is newer than this reflow understands "
                f"({SCHEMA_VERSION}): upgrade reflow"
            )
            return report
        note = (
            "" if version == SCHEMA_VERSION else f" (older: {version}; the next write migrates it)"
        )
        report.ok(f"schema version {version}{note}")
        problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
        if problems == ["ok"]:
            report.ok("SQLite integrity check")
        else:
            for p in problems:
                report.problem(f"SQLite integrity: {p}")
            return report
        runs, instances = conn.execute(
            "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM instances)"
        ).fetchone()
        report.ok(f"{runs} run{'s' if runs != 1 else ''}, {instances} instance rows")
        empty = conn.execute(
            "SELECT COUNT(*) FROM instances i LEFT JOIN instances s ON s.id = i.cached_from "
            "WHERE i.state = 'SUCCESS' AND COALESCE(i.output, s.output) IS NULL"
        ).fetchone()[0]
        if empty:
            report.problem(f"{empty} SUCCESS instances have lost their output")
        else:
            report.ok("every SUCCESS instance has its output")
        stalled = []
        for run_id, executor, host, pid, start, dispatcher in conn.execute(
            "SELECT run_id, executor, owner_host, owner_pid, owner_start, dispatcher FROM runs "
            "WHERE status = 'RUNNING' ORDER BY created_at"
        ):
            if executor == FOREGROUND:
                if pid is None or not owner_alive(host, pid, start):
                    who = f"pid {pid} on {host}" if pid is not None else "no process"
                    stalled.append((run_id, f"its driver ({who}) is gone"))
            elif not dispatcher:
                stalled.append((run_id, "no dispatcher job is queued for it"))
        for run_id, why in stalled:
            report.problem(f"run {run_id} is RUNNING but {why}; 'retry {run_id}' resumes it")
        if not stalled:
            report.ok("no run is left RUNNING without a driver")
        leftovers = _leftover_results(conn)
        for p in leftovers:
            report.problem(f"result file nobody will ingest: {p}")
        if not leftovers:
            report.ok("no orphaned result files")
    finally:
        conn.close()
    if fix and (stalled or leftovers):
        store = SqliteStore(path)
        for run_id, _ in stalled:
            n = store.cancel_instances(run_id, None, "interrupted: its driver died (reflow doctor)")
            store.set_dispatcher(run_id, None)
            store.set_run_status(run_id, "FAILED", release=True)
            report.fixed(f"run {run_id} marked FAILED, {n} unfinished instances CANCELLED")
        for p in leftovers:
            try:
                p.unlink()
                report.fixed(f"removed {p}")
            except OSError as exc:
                report.problem(f"cannot remove {p}: {exc.strerror}")
        store.close()
    return report


def _leftover_results(conn: sqlite3.Connection) -> list[Path]:
    """Result files of finished instances, or of runs the store does not know."""
    from .results import read_results

    leftovers: list[Path] = []
    seen_dirs: set[Path] = set()
    known = {r[0]: Path(r[1]) for r in conn.execute("SELECT run_id, run_dir FROM runs")}
    for run_id, run_dir in known.items():
        base = run_dir / "results"
        seen_dirs.add(base)
        for path, item in read_results(run_dir, run_id):
            if isinstance(item, str):
                leftovers.append(path)
                continue
            row = conn.execute(
                "SELECT state FROM instances WHERE run_id = ? AND task_name = ? "
                "AND array_index = ? AND attempt = ?",
                (run_id, item.task, item.index, item.attempt),
            ).fetchone()
            if row is None or row[0] not in ("SUBMITTED", "RUNNING", "PENDING"):
                leftovers.append(path)
    for base in seen_dirs:
        if base.is_dir():
            for sub in base.iterdir():
                if sub.is_dir() and sub.name not in known and any(sub.rglob("*.json")):
                    leftovers.extend(sorted(sub.rglob("*.json")))
    return leftovers
