"""`reflow doctor`: a store's health, read-only unless --fix."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest

from reflow import Result, Run, RunState, Workflow
from reflow.cli import main
from reflow.instances import Outcome
from reflow.owner import FOREGROUND, current_owner
from reflow.results import write_result
from reflow.runner import task_rows
from reflow.stores.sqlite import SCHEMA_VERSION, SqliteStore


def _doctor(capsys: pytest.CaptureFixture[str], *args: object) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["doctor", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def _wf() -> Workflow:
    wf = Workflow("doc")

    @wf.job()
    def items(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def double(x: Annotated[int, Result(step="items")]) -> int:
        return 2 * x

    return wf


def _dead_owner() -> tuple[str, int, str]:
    """The (host, pid, start) of a process that has ended."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    host, _, _ = current_owner()
    return host, proc.pid, "1"


def test_a_healthy_store_is_all_ok(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _wf().run_local(tmp_path / "r", store=store_path, n=3)
    code, out, err = _doctor(capsys, "--store-path", store_path)
    assert code == 0, out + err
    assert f"store {store_path}" in out
    for line in (
        f"ok: schema version {SCHEMA_VERSION}",
        "ok: SQLite integrity check",
        "ok: 1 run, 4 instance rows",
        "ok: every SUCCESS instance has its output",
        "ok: no run is left RUNNING without a driver",
        "ok: no orphaned result files",
    ):
        assert line in out
    assert "problem" not in out


def test_a_run_whose_driver_died_is_found_marked_with_fix_and_retry_resumes_it(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = _wf()
    graph = wf.validate()
    store = SqliteStore(store_path)
    run_id = store.create_run(
        "doc", run_dir=str(tmp_path / "r"), executor=FOREGROUND, params=json.dumps({"n": 2}),
        options="{}", tasks=task_rows(graph), owner=_dead_owner(),
    )  # fmt: skip
    store.write_expansion(
        run_id, "items", supersede=[], pending=[(-1, 1, None, None)], hits=[], skipped=[]
    )
    store.mark_running(run_id, [("items", -1, 1)])
    before = store_path.read_bytes()

    code, out, _ = _doctor(capsys, "--store-path", store_path)
    assert code == 1
    assert f"problem: run {run_id} is RUNNING but its driver (pid" in out
    assert f"'retry {run_id}' resumes it" in out
    assert "'reflow doctor --fix' repairs what it safely can" in out
    assert store_path.read_bytes() == before  # read-only without --fix

    code, out, _ = _doctor(capsys, "--store-path", store_path, "--fix")
    assert f"fixed: run {run_id} marked FAILED, 1 unfinished instances CANCELLED" in out
    run = Run(run_id, SqliteStore(store_path), workflow=wf)
    assert run.state is RunState.FAILED
    run.retry()
    assert run.state is RunState.SUCCESS
    assert run.outputs("double") == [0, 2]
    code, out, _ = _doctor(capsys, "--store-path", store_path)
    assert code == 0, out


def test_status_of_such_a_run_says_its_owner_is_gone(store_path: Path, tmp_path: Path) -> None:
    store = SqliteStore(store_path)
    host, pid, _ = owner = _dead_owner()
    run_id = store.create_run(
        "doc", run_dir=str(tmp_path), executor=FOREGROUND, params="{}", options="{}",
        tasks=task_rows(_wf().validate()), owner=owner,
    )  # fmt: skip
    doc = Run(run_id, store).status(as_dict=True)
    assert doc is not None
    assert doc["warnings"] == [
        f"the process that was running this run (pid {pid} on {host}) is gone; resume it with "
        f"'retry {run_id}'"
    ]


def test_leftover_result_files_are_reported_and_removed_with_fix(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _wf().run_local(tmp_path / "r", store=store_path, n=2)
    # a result for an instance that is already SUCCESS, and one of a run nobody knows
    done = Outcome("double", 0, 1, True, "0", "x", None, 0.0, 0.0)
    first = write_result(run.run_dir, run.run_id, done, None)
    stranger = write_result(run.run_dir, "doc-20200101-dead", done, None)
    code, out, _ = _doctor(capsys, "--store-path", store_path)
    assert code == 1
    assert f"problem: result file nobody will ingest: {first}" in out
    assert f"problem: result file nobody will ingest: {stranger}" in out
    code, out, _ = _doctor(capsys, "--store-path", store_path, "--fix")
    assert not first.exists() and not stranger.exists()
    assert run.outputs("double") == [0, 2]  # the store is untouched


def test_a_newer_store_is_reported_and_left_untouched(
    store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # closed here, not whenever the garbage collector gets to it: sqlite3 connections
    # sit in a reference cycle, and the last one to close writes the WAL into the file
    with SqliteStore(store_path) as store:
        store.list_runs()
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.close()
    before = store_path.read_bytes()
    code, out, _ = _doctor(capsys, "--store-path", store_path, "--fix")
    assert code == 1
    assert "problem: schema version 99 is newer than this reflow understands" in out
    assert store_path.read_bytes() == before


def test_a_read_only_store_can_be_checked(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _wf().run_local(tmp_path / "r", store=store_path, n=1)
    SqliteStore(store_path).close()
    store_path.chmod(0o444)
    try:
        code, out, _ = _doctor(capsys, "--store-path", store_path)
    finally:
        store_path.chmod(0o644)
    assert code == 0, out


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"this is not sqlite at all" * 100, "is not a readable SQLite database"),
     (None, "there is no store at")],
)  # fmt: skip
def test_a_store_that_is_not_one_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, words: str
) -> None:
    path = tmp_path / "x.db"
    if content is not None:
        path.write_bytes(content)
    code, _out, err = _doctor(capsys, "--store-path", path)
    assert code in (1, 2)
    assert words in err and err.count("\n") == 1 and "Traceback" not in err
    if content is not None:
        assert path.read_bytes() == content


def test_fix_counts_the_instances_a_killed_local_run_never_wrote(
    store_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a local run writes an instance once, when it starts or ends: a driver killed
    # mid-task leaves the rest of the task counted (tasks.expected) but without rows
    wf = _wf()
    store = SqliteStore(store_path)
    run_id = store.create_run(
        "doc", run_dir=str(tmp_path / "r"), executor=FOREGROUND, params=json.dumps({"n": 5}),
        options="{}", tasks=task_rows(wf.validate()), owner=_dead_owner(),
    )  # fmt: skip
    store.write_expansion(
        run_id, "items", supersede=[], pending=[(-1, 1, None, None)], hits=[], skipped=[]
    )
    store.record_outcomes(
        run_id, [("items", -1, 1, "SUCCESS", "[0,1,2,3,4]", "h", None, 1.0, 2.0, None)]
    )
    store.write_expansion(
        run_id, "double", supersede=[], pending=[], hits=[], skipped=[], expected=5
    )
    store.insert_instances(
        [(run_id, "double", 0, 1, "SUCCESS", "i0", "{}", "0", "h0", None, 1.0, 2.0, None, None),
         (run_id, "double", 1, 1, "RUNNING", "i1", "{}", None, None, None, 1.0, None, None,
          None)]
    )  # fmt: skip
    assert store.summary(run_id)["double"] == {"SUCCESS": 1, "RUNNING": 1, "PENDING": 3}

    _, out, _ = _doctor(capsys, "--store-path", store_path, "--fix")
    assert f"fixed: run {run_id} marked FAILED, 4 unfinished instances CANCELLED" in out
    assert store.summary(run_id)["double"] == {"SUCCESS": 1, "CANCELLED": 4}
    run = Run(run_id, store, workflow=wf)
    run.retry()  # (the rows above have made-up identities: everything reruns)
    assert run.state is RunState.SUCCESS and run.outputs("double") == [0, 2, 4, 6, 8]
    assert store.summary(run_id)["double"] == {"SUCCESS": 5}
