"""`reflow store copy SRC DST`: every run of one store into another, idempotent, verified.

Runs are copied whole, one transaction each (`Store.export_run`,
`Store.import_run`), cache sources before the hits that reuse them, so a
copy killed at any point leaves whole runs and the next copy completes it.
A run already in the destination is compared, not copied: the same content
is skipped, different content is refused before anything is written.  At the
end every run is compared on both sides by its instance count and a digest
of its rows (identity, state, output hash of every attempt).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any

from .errors import ReflowError, ValidationError
from .maintenance import in_flight
from .records import Record
from .stores import Store, normal_location, open_store, store_exists
from .stores.base import RunExport, without_password

__all__ = ["CopyReport", "copy_store", "fingerprint"]


def fingerprint(exported: RunExport) -> tuple[int, str]:
    """(instance count, digest of every attempt's key, state, identity and output hash)."""
    digest = hashlib.sha256()
    for row in sorted(exported.instances, key=lambda r: (r[0], r[1], r[2])):
        task, index, attempt, current, state, identity, _, _, ohash = row[:9]
        line = f"{task}\0{index}\0{attempt}\0{int(current)}\0{state}\0{identity}\0{ohash}\n"
        digest.update(line.encode("utf-8", "surrogatepass"))
    return len(exported.instances), digest.hexdigest()


class CopyReport(Record):
    """What `copy_store` did: run ids copied, skipped (already there), left (in flight)."""

    __slots__ = ("by_value", "copied", "instances", "left", "skipped", "verified")

    def __init__(self) -> None:
        self.copied: list[str] = []
        self.skipped: list[str] = []
        self.left: list[str] = []
        self.instances = 0  # instances copied
        self.by_value = 0  # hits written owning their output (their source is in no store here)
        self.verified = 0  # instances compared by the verification


def _file_of(location: str) -> str | None:
    """The file an SQLite store's location names (a path or sqlite:///path); None for a server."""
    if location.lower().startswith("sqlite://"):
        return location[len("sqlite://") :]
    return None if "://" in location else location


def _same_store(src: str, dst: str) -> bool:
    if src == dst:
        return True
    a, b = _file_of(src), _file_of(dst)
    if a is None or b is None or not os.path.exists(b):
        return False
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def copy_store(
    src_location: str, dst_location: str, echo: Callable[[str], None] = print
) -> CopyReport:
    """Copy every run of the store at `src_location` into the one at `dst_location`.

    The destination is created if needed.  Raises ValidationError (nothing
    written) for a missing source, a copy onto itself, or a run in both with
    different content; ReflowError if the verification finds a difference.
    """
    src_at, dst_at = normal_location(src_location), normal_location(dst_location)
    if not store_exists(src_at):
        raise ValidationError(f"there is no store at {without_password(src_at)} to copy: check SRC")
    if _same_store(src_at, dst_at):
        raise ValidationError(
            f"{without_password(src_at)} and {without_password(dst_at)} are the same store: "
            "nothing to copy"
        )
    src, dst = open_store(src_at), open_store(dst_at)
    try:
        return _copy(src, dst, echo)
    finally:
        src.close()
        dst.close()


def _copy(src: Store, dst: Store, echo: Callable[[str], None]) -> CopyReport:
    report = CopyReport()
    runs = list(reversed(src.list_runs()))  # oldest first: sources before their hits, mostly
    there = {r["run_id"] for r in dst.list_runs()}
    expected: dict[str, tuple[int, str]] = {}
    different = []
    left = {  # still being written: copied (or compared) once it has finished
        r["run_id"]
        for r in runs
        if r["status"] == "RUNNING" and in_flight(src.get_run(r["run_id"]))
    }
    report.left = sorted(left)
    for run in runs:  # compare first, so that a conflict writes nothing
        if run["run_id"] in there and run["run_id"] not in left:
            mine = fingerprint(src.export_run(run["run_id"]))
            if mine != fingerprint(dst.export_run(run["run_id"])):
                different.append(run["run_id"])
            expected[run["run_id"]] = mine
    if different:
        raise ValidationError(
            f"runs of {src.location} are in {dst.location} with other content: "
            f"{', '.join(different)}; nothing was copied (forget them in the destination "
            "with 'runs --delete' to copy them again)"
        )
    report.skipped = [r["run_id"] for r in runs if r["run_id"] in there and r["run_id"] not in left]
    wanted = {r["run_id"]: r for r in runs if r["run_id"] not in there | left}

    def copy_one(run_id: str, visiting: set[str]) -> None:
        if run_id not in wanted or run_id in visiting:
            return
        visiting.add(run_id)
        exported = src.export_run(run_id)
        for source in sorted({k[0] for k in exported.sources if k and k[0] != run_id}):
            copy_one(source, visiting)  # its sources first, so its hits point at them
        report.by_value += dst.import_run(exported)
        report.copied.append(run_id)
        report.instances += len(exported.instances)
        expected[run_id] = fingerprint(exported)
        del wanted[run_id]
        echo(f"copied run {run_id}: {len(exported.instances):,} instances")

    for run in runs:
        copy_one(run["run_id"], set())
    for run_id in report.skipped:
        echo(f"skipped run {run_id}: already in {dst.location} with the same content")
    for run_id in report.left:
        echo(f"left run {run_id}: still running; copy again when it has finished")
    _verify(dst, expected, report)
    total = len(report.copied)
    echo(
        f"copied {total} run{'s' if total != 1 else ''} ({report.instances:,} instances) "
        f"from {src.location} to {dst.location}; skipped {len(report.skipped)} already there"
        + (f"; left {len(report.left)} still running" if report.left else "")
    )
    echo(
        f"verified: {len(expected)} runs, {report.verified:,} instances, the same counts and "
        "digests on both sides"
    )
    return report


def _verify(dst: Store, expected: dict[str, tuple[int, str]], report: CopyReport) -> None:
    wrong: list[str] = []
    for run_id, (count, digest) in expected.items():
        got: Any = fingerprint(dst.export_run(run_id))
        if got != (count, digest):
            wrong.append(f"{run_id} ({got[0]} instances, {count} expected)")
        report.verified += count
    if wrong:
        raise ReflowError(
            f"verification failed: {len(wrong)} runs differ in {dst.location}: {', '.join(wrong)}"
        )
