"""`reflow doctor`: check a store's health; change nothing unless asked (`--fix`).

It checks the store's schema version (and an SQLite file's integrity), that every SUCCESS
instance still has its output, finds runs left RUNNING by a process that is
gone, and result files nobody will ingest.  With `fix=True` it marks runs
whose driver died as FAILED (their unfinished instances CANCELLED, so
`retry` resumes them) and removes leftover result files of finished instances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .owner import FOREGROUND, owner_alive
from .results import read_results
from .stores import Store, open_store

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


_UNFINISHED = ("SUBMITTED", "RUNNING", "PENDING")


def check_store(path: str | os.PathLike[str], *, fix: bool = False) -> Report:
    """Check the store at `path`; with `fix`, repair what can be repaired safely."""
    report = Report()
    view = open_store(path, read_only=True)  # nothing is created or migrated by looking
    try:
        stalled, leftovers = _check(view, report)
    finally:
        view.close()
    if fix and (stalled or leftovers):
        store = open_store(path)
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


def _check(view: Store, report: Report) -> tuple[list[tuple[str, str]], list[Path]]:
    """Report on the store; return the runs left without a driver and the leftover files."""
    health = view.check_health()
    version, supported = health.schema_version, health.supported_version
    if version == 0 and health.problems:
        report.problem(health.problems[0])
        return [], []
    if version > supported:
        report.problem(
            f"schema version {version} is newer than this reflow understands "
            f"({supported}): upgrade reflow"
        )
        return [], []
    note = "" if version == supported else f" (older: {version}; the next write migrates it)"
    report.ok(f"schema version {version}{note}")
    if health.problems:
        for p in health.problems:
            report.problem(p)
        return [], []
    if health.integrity:  # the backend's own check (SQLite's integrity_check)
        report.ok(health.integrity)
    runs, instances = health.runs, health.instances
    report.ok(f"{runs} run{'s' if runs != 1 else ''}, {instances} instance rows")
    if health.lost_outputs:
        report.problem(f"{health.lost_outputs} SUCCESS instances have lost their output")
    else:
        report.ok("every SUCCESS instance has its output")
    stalled = []
    for listed in reversed(view.list_runs(status="RUNNING")):  # oldest first
        info = view.get_run(listed["run_id"])
        run_id, pid, host = info["run_id"], info["owner_pid"], info["owner_host"]
        if info["executor"] == FOREGROUND:
            if pid is None or not owner_alive(host, pid, info["owner_start"]):
                who = f"pid {pid} on {host}" if pid is not None else "no process"
                stalled.append((run_id, f"its driver ({who}) is gone"))
        elif not info["dispatcher"]:
            stalled.append((run_id, "no dispatcher job is queued for it"))
    for run_id, why in stalled:
        report.problem(f"run {run_id} is RUNNING but {why}; 'retry {run_id}' resumes it")
    if not stalled:
        report.ok("no run is left RUNNING without a driver")
    leftovers = _leftover_results(view)
    for leftover in leftovers:
        report.problem(f"result file nobody will ingest: {leftover}")
    if not leftovers:
        report.ok("no orphaned result files")
    return stalled, leftovers


def _leftover_results(view: Store) -> list[Path]:
    """Result files of finished instances, or of runs the store does not know."""
    leftovers: list[Path] = []
    seen_dirs: set[Path] = set()
    known = {r["run_id"]: Path(r["run_dir"]) for r in reversed(view.list_runs())}
    for run_id, run_dir in known.items():
        seen_dirs.add(run_dir / "results")
        found = list(read_results(run_dir, run_id))
        keys = [(i.task, i.index, i.attempt) for _, i in found if not isinstance(i, str)]
        states = view.instance_states(run_id, keys)
        for p, item in found:
            if (
                isinstance(item, str)
                or states.get((item.task, item.index, item.attempt)) not in _UNFINISHED
            ):
                leftovers.append(p)
    for base in seen_dirs:
        if base.is_dir():
            for sub in base.iterdir():
                if sub.is_dir() and sub.name not in known and any(sub.rglob("*.json")):
                    leftovers.extend(sorted(sub.rglob("*.json")))
    return leftovers
