"""The dispatcher's ingest: every result file recorded once, removed only once recorded.

The jobs are played here: an executor that runs nothing hands out job ids, and
the test runs each element the way a worker does (`read_element`, `execute`,
`write_result`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, Workflow, codec
from reflow import dispatch as dispatch_module
from reflow.dispatch import dispatch_pass
from reflow.executors.base import Executor, JobResources, JobState, JobStatus
from reflow.instances import Outcome, Work, execute, failure
from reflow.results import (
    read_element,
    read_results,
    remove_results,
    scan_results,
    write_result,
)
from reflow.run import Run
from reflow.stores.sqlite import SqliteStore

wf = Workflow("ingest")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def work(item: Annotated[int, Result(step="split")]) -> dict[str, int]:
    if item == 2:
        raise ValueError("two is bad")
    return {"z": item, "a": -item}  # keys out of order: the stored text is not canonical


class Held(Executor):
    """Runs nothing; a job is ended once the test says so."""

    name = "held"
    mode = "held"

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[list[str], int | None]] = {}
        self.ended: set[str] = set()

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        return " ".join(command)

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        job = f"h{len(self.jobs) + 1}"
        self.jobs[job] = (list(command), resources.array_size)
        return job

    def cancel(self, job_ids: Sequence[str]) -> None:
        return None

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        found = {}
        for job in job_ids:
            state = JobState.COMPLETED if self.job_of(job) in self.ended else JobState.PENDING
            found[job] = JobStatus(state, state.value)
        return found

    def play(self, task: str, elements: Sequence[int] | None = None) -> list[Path]:
        """Run the elements of `task`'s job as workers do; the result files they wrote."""
        for job, (command, size) in self.jobs.items():
            if "--wave" in command and Path(command[command.index("--wave") + 1]).name.startswith(
                f"{task}."
            ):
                wave = Path(command[command.index("--wave") + 1])
                run_dir = Path(command[command.index("--run-dir") + 1])
                paths = []
                for k in range(size or 1) if elements is None else elements:
                    item = read_element(wave, k)
                    outcome = execute(wf.tasks[task].func, item.work)
                    job_id = self.element_id(job, k) if size else job
                    paths.append(write_result(run_dir, item.run_id, outcome, job_id))
                if elements is None:
                    self.ended.add(job)
                return paths
        raise LookupError(task)


def _start(tmp_path: Path, n: int = 4) -> tuple[Run, Held, SqliteStore]:
    ex = Held()
    store = SqliteStore(tmp_path / "m.db")
    run = wf.submit(tmp_path / "run", executor=ex, store=store, n=n)
    ex.play("split")
    dispatch_pass(wf, store, run.run_id, ex, config=wf.config)  # records split, submits work
    return run, ex, store


def _rows(store: SqliteStore, run_id: str) -> list[dict[str, Any]]:
    return sorted((store.attempts(run_id, "work", i)[0] for i in range(4)), key=lambda r: str(r))


def test_a_pass_records_every_result_file_once_then_removes_it(tmp_path: Path) -> None:
    run, ex, store = _start(tmp_path)
    files = ex.play("work")
    assert all(p.exists() for p in files)
    res = dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    assert res.ingested == 4
    assert not any(p.exists() for p in files)
    summary = store.summary(run.run_id)["work"]
    assert summary == {"SUCCESS": 3, "FAILED": 1}
    state, text, _, _ = store.instance_output(run.run_id, "work", 3, 1) or ("", None, "", "")
    assert state == "SUCCESS" and codec.loads(text or "") == {"z": 3, "a": -3}
    again = dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    assert again.ingested == 0


def test_files_recorded_earlier_in_a_pass_are_not_read_again(tmp_path: Path) -> None:
    run, ex, store = _start(tmp_path)
    first = ex.play("work", [0, 1])
    recorded: dict[str, Any] = {}
    assert dispatch_module._ingest(store, run.run_id, run.run_dir, recorded) == 2
    assert all(p.exists() for p in first)  # removed when the pass ends
    later = ex.play("work", [2, 3])
    assert dispatch_module._ingest(store, run.run_id, run.run_dir, recorded) == 2
    assert dispatch_module._ingest(store, run.run_id, run.run_dir, recorded) == 0
    assert sorted(recorded) == sorted(str(p) for p in first + later)
    assert remove_results(recorded) == 4
    assert not any(p.exists() for p in first + later)


def test_reading_again_what_a_killed_pass_recorded_changes_nothing(tmp_path: Path) -> None:
    run, ex, store = _start(tmp_path)
    files = ex.play("work")
    # a pass killed after its ingest committed, before it removed the files
    assert dispatch_module._ingest(store, run.run_id, run.run_dir, {}) == 4
    before = _rows(store, run.run_id)
    assert {r["state"] for r in before} == {"SUCCESS", "FAILED"}
    assert all(p.exists() for p in files)
    # the next pass reads them again: the store stays as it was, and the files go
    res = dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    assert res.ingested == 4
    assert _rows(store, run.run_id) == before
    assert not any(p.exists() for p in files)


def test_a_result_file_replaced_after_it_was_read_is_left_for_the_next_pass(
    tmp_path: Path,
) -> None:
    run, ex, store = _start(tmp_path)
    (path,) = ex.play("work", [2])  # element 2 fails
    recorded: dict[str, Any] = {}
    assert dispatch_module._ingest(store, run.run_id, run.run_dir, recorded) == 1
    # another job of the same attempt (its submission was never recorded) ends later
    text, ohash = codec.dumps_hashed({"z": 2, "a": -2})
    replaced = Outcome("work", 2, 1, True, text, ohash, None, time.time(), time.time())
    assert write_result(run.run_dir, run.run_id, replaced, "h2_2") == path
    assert dispatch_module._ingest(store, run.run_id, run.run_dir, recorded) == 1  # read
    assert remove_results(recorded) == 1
    assert not path.exists()
    assert store.attempts(run.run_id, "work", 2)[0]["state"] == "SUCCESS"


def test_removal_keeps_a_file_that_changed_since_it_was_read(tmp_path: Path) -> None:
    run, ex, _ = _start(tmp_path)
    (path,) = ex.play("work", [1])
    ((seen, _, stamp),) = list(scan_results(run.run_dir, run.run_id))
    assert seen == str(path) and stamp is not None
    write_result(run.run_dir, run.run_id, failure(read_element(_wave(ex), 1).work, "x"), None)
    assert remove_results({seen: stamp}) == 0
    assert path.exists()
    ((_, again, stamp2),) = list(scan_results(run.run_dir, run.run_id))
    assert not isinstance(again, str) and not again.ok
    assert remove_results({seen: stamp2}) == 1 and not path.exists()


def _wave(ex: Held) -> Path:
    for command, _ in ex.jobs.values():
        if "--wave" in command and "work." in command[command.index("--wave") + 1]:
            return Path(command[command.index("--wave") + 1])
    raise LookupError("work")


@pytest.mark.parametrize(
    ("edit", "accepted"),
    [
        (lambda d: d, True),  # a dict: the stored text is not canonical, its hash is
        (lambda d: {**d, "output": d["output"].replace(":", ": ")}, True),  # same value
        (lambda d: {**d, "output": d["output"].replace("1", "7")}, False),
        (lambda d: {**d, "output_hash": "0" * 64}, False),
        (lambda d: {**d, "output": '{"a":-1,"z":1}'}, True),  # canonical form of the same
    ],
)
def test_an_output_is_recorded_only_with_its_own_hash(
    tmp_path: Path, edit: Any, accepted: bool
) -> None:
    run, ex, store = _start(tmp_path)
    (path,) = ex.play("work", [1])
    doc = json.loads(path.read_text())
    assert doc["output"] == '{"z":1,"a":-1}'
    path.write_text(json.dumps(edit(doc)))
    ((_, item),) = list(read_results(run.run_dir, run.run_id))
    if accepted:
        assert isinstance(item, Outcome) and item.output_hash == doc["output_hash"]
    else:
        assert isinstance(item, str) and "does not match its hash" in item
        assert dispatch_module._ingest(store, run.run_id, run.run_dir, {}) == 0
        assert path.exists()  # never removed unread


def test_many_files_are_removed_but_not_one_replaced_since(tmp_path: Path) -> None:
    text, ohash = codec.dumps_hashed(1)
    for i in range(300):  # enough to be removed by several threads
        outcome = Outcome("work", i, 1, True, text, ohash, None, 1.0, 2.0)
        write_result(tmp_path, "r-1", outcome, None)
    files = {p: s for p, _, s in scan_results(tmp_path, "r-1") if s is not None}
    assert len(files) == 300
    replaced = write_result(tmp_path, "r-1", failure(Work("work", 7, 1, {}), "late"), None)
    assert remove_results(files) == 299
    assert [p.name for p in replaced.parent.iterdir()] == ["7.1.json"]
