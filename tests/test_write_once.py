"""A local run writes each instance that runs in its own process once, not PENDING first.

What a user must still see: while the run goes, `status` (from another
terminal) counts the instances not written yet as PENDING; after the driver is
killed they stay PENDING, `outputs()` says they have not run, `cancel` counts
them and `retry` runs them; a run that stops early writes them out.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, Workflow
from reflow.errors import StoreError
from reflow.run import Run
from reflow.states import RunState
from reflow.stores.sqlite import SqliteStore
from stopping import stopped


def _summary(store_path: Path, run_id: str) -> dict[str, dict[str, int]]:
    store = SqliteStore(store_path)
    try:
        doc = Run(run_id, store).status(as_dict=True)
        assert doc is not None
        summary: dict[str, dict[str, int]] = doc["summary"]
        return summary
    finally:
        store.close()


def test_status_from_elsewhere_counts_instances_not_written_yet_as_pending(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("watched")
    seen: list[dict[str, dict[str, int]]] = []

    @wf.job()
    def items() -> list[int]:
        return list(range(6))

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        if x == 0:  # the first element waits until another terminal sees the run
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not seen:
                (info,) = SqliteStore(store_path).list_runs()
                summary = _summary(store_path, info["run_id"])
                # each[0]'s RUNNING row lands a moment after the fan-out's count (all
                # PENDING until then): wait for it, under load too
                if summary.get("each", {}).get("RUNNING"):
                    seen.append(summary)
                time.sleep(0.02)
        return x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="each")]) -> int:
        return sum(xs)

    run = wf.run_local(tmp_path / "r", store=store_path)
    assert run.output("total") == 15
    # each[0] is marked RUNNING as it starts; the other five have no row yet
    assert seen == [{"items": {"SUCCESS": 1}, "each": {"RUNNING": 1, "PENDING": 5}, "total": {}}]
    with sqlite3.connect(store_path) as db:
        rows = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT array_index) FROM instances WHERE task_name = 'each'"
        ).fetchone()
    db.close()
    assert rows == (6, 6)  # every instance written once in the end, none twice


_KILLED = """
    import os, sys, time
    from pathlib import Path
    from typing import Annotated
    from reflow import Result, Workflow

    wf = Workflow("killed")
    marker = Path(sys.argv[1])

    @wf.job()
    def items() -> list[int]:
        return list(range(40))

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        if x == 30 and not marker.exists():
            marker.touch()
            time.sleep(0.3)  # what came before is committed meanwhile (every 50 ms)
            os.kill(os.getpid(), 9)  # the driver itself: no cleanup of any kind
        return x * 2

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="each")]) -> int:
        return sum(xs)

    if __name__ == "__main__":
        raise SystemExit(wf.cli(sys.argv[2:]))
"""


def _killed_run(tmp_path: Path, store_path: Path) -> tuple[Path, Path, str]:
    script = tmp_path / "killed.py"
    script.write_text(textwrap.dedent(_KILLED))
    marker = tmp_path / "marker"
    proc = subprocess.run(
        [sys.executable, str(script), str(marker), "run", "--run-dir", str(tmp_path / "r"),
         "--store-path", str(store_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (info,) = SqliteStore(store_path).list_runs()
    return script, marker, info["run_id"]


def test_a_killed_driver_leaves_its_unwritten_instances_pending_and_retry_runs_them(
    tmp_path: Path, store_path: Path
) -> None:
    script, marker, run_id = _killed_run(tmp_path, store_path)
    summary = _summary(store_path, run_id)
    each = summary["each"]
    # whatever was committed before the kill is SUCCESS or RUNNING; the rest is counted
    assert sum(each.values()) == 40 and each.get("PENDING", 0) >= 9
    assert set(each) <= {"SUCCESS", "RUNNING", "PENDING"}
    assert summary["total"] == {}
    store = SqliteStore(store_path)
    with pytest.raises(StoreError, match=r"'each'\[\d+\] of run .* is (RUNNING|PENDING), so it"):
        Run(run_id, store).outputs("each")

    proc = subprocess.run(
        [sys.executable, str(script), str(marker), "retry", run_id, "--store-path",
         str(store_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    not_done = 40 - each.get("SUCCESS", 0)
    assert f"retried {not_done} instances" in proc.stdout
    run = Run(run_id, store)
    assert run.state is RunState.SUCCESS
    assert run.outputs("each") == [2 * x for x in range(40)]
    assert _summary(store_path, run_id)["each"] == {"SUCCESS": 40}


def test_cancelling_a_killed_run_counts_and_shows_its_unwritten_instances_cancelled(
    tmp_path: Path, store_path: Path
) -> None:
    _, _, run_id = _killed_run(tmp_path, store_path)
    before = _summary(store_path, run_id)["each"]
    store = SqliteStore(store_path)
    unfinished = 40 - before.get("SUCCESS", 0)
    assert Run(run_id, store).cancel() == unfinished
    assert _summary(store_path, run_id)["each"] == {
        k: v for k, v in {"SUCCESS": before.get("SUCCESS", 0), "CANCELLED": unfinished}.items() if v
    }
    assert Run(run_id, store).cancel() == 0


def test_a_run_stopped_by_a_failure_writes_what_never_ran_as_pending(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("stopped")

    @wf.job()
    def items() -> list[int]:
        return list(range(100))

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        if x == 40:
            raise ValueError("bad item")
        return x

    run = stopped(wf, tmp_path / "r", store=store_path)
    assert run.state is RunState.FAILED
    with sqlite3.connect(store_path) as db:
        states = dict(
            db.execute(
                "SELECT state, COUNT(*) FROM instances WHERE task_name = 'each' GROUP BY state"
            ).fetchall()
        )
        parts = db.execute(
            "SELECT COUNT(*) FROM instances WHERE task_name = 'each' AND parts IS NULL"
        ).fetchone()[0]
    db.close()
    assert states == {"SUCCESS": 40, "FAILED": 1, "PENDING": 59}  # rows, not just counts
    assert parts == 0  # each row carries the ingredients of its identity
    store = SqliteStore(store_path)
    for i in (0, 40, 99):
        (row,) = [r for r in store.instances(run.run_id, task="each") if r["array_index"] == i]
        explained: Any = store.identity_parts(row["identity"])
        assert explained is not None and explained["task"] == "each"
