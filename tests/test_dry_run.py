"""The dry run: what a run would do, per task, from the engine's own decisions; nothing touched."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, Run, Workflow
from reflow.stores.sqlite import SqliteStore


def _pipeline(folder: Path, version: str = "1") -> Workflow:
    """make (a file) -> split (a list of n) -> work (fan-out) -> double (chain), total (gather)."""
    wf = Workflow("dry")

    @wf.job()
    def make(name: str = "data.txt") -> Path:
        path = folder / name
        path.write_text("x")
        return path

    @wf.job()
    def split(n: int = 4) -> list[int]:
        return list(range(n))

    @wf.array_job(version=version)
    def work(x: Annotated[int, Result(step="split")], factor: int = 2) -> int:
        return x * factor

    @wf.array_job()
    def double(y: Annotated[int, Result(step="work")]) -> int:
        return 2 * y

    @wf.job()
    def total(
        xs: Annotated[list[int], Result(step="work")], f: Annotated[Path, Result(step="make")]
    ) -> int:
        return sum(xs)

    return wf


def _real_counts(run: Run) -> dict[str, tuple[int, int]]:
    """task -> (instances that ran, instances reused), as the store recorded them."""
    out = {}
    for task, by_state in run.store.status_counts(run.run_id).items():
        cached = sum(c for _, c in by_state.values())
        ran = sum(n for s, (n, _) in by_state.items() if s in ("SUCCESS", "FAILED")) - cached
        out[task] = (ran, cached)
    return out


def _deleted_file(tmp: Path) -> None:
    (tmp / "files" / "data.txt").unlink()


# each step: (what it changes, the workflow's version, run_local's arguments, before it)
STEPS: list[tuple[str, str, dict[str, Any], Callable[[Path], None] | None]] = [
    ("first run", "1", {}, None),
    ("rerun", "1", {}, None),
    ("parameter change", "1", {"factor": 3}, None),
    ("version bump", "2", {"factor": 3}, None),
    ("force", "2", {"factor": 3, "force": True}, None),
    ("force_tasks", "2", {"factor": 3, "force_tasks": ["work"]}, None),
    ("verify with a deleted file", "2", {"factor": 3, "verify": True}, _deleted_file),
    ("bigger fan-out", "2", {"factor": 3, "n": 6}, None),
    ("the fan-out size of before", "2", {"factor": 3, "n": 4}, None),
    ("a size seen long ago", "1", {"n": 6}, None),
]


def test_the_dry_run_predicts_what_the_real_run_then_does(tmp_path: Path, store_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    unknown_seen = certain_seen = partly_seen = 0
    for k, (what, version, kwargs, before) in enumerate(STEPS):
        if before is not None:
            before(tmp_path)
        wf = _pipeline(files, version)
        predicted = wf.dry_run(tmp_path / f"r{k}", store=store_path, **kwargs)["tasks"]
        real = _real_counts(wf.run_local(tmp_path / f"r{k}", store=store_path, **kwargs))
        assert list(predicted) == ["make", "split", "work", "double", "total"], what
        for task, doc in predicted.items():
            ran, cached = real[task]
            if doc["unknown"]:
                unknown_seen += 1
                assert ran >= doc["run"] and cached >= doc["cached"], (what, task)
                waits = {r: n for r, n in doc["reasons"].items() if r.startswith("waits for '")}
                assert waits, (what, task)
                if doc["run"] or doc["cached"]:  # some elements decided: the rest are counted
                    partly_seen += 1
                    assert doc["run"] + doc["cached"] + max(waits.values()) == ran + cached
            else:
                certain_seen += 1
                assert (doc["run"], doc["cached"]) == (ran, cached), (what, task, doc)
                assert sum(doc["reasons"].values()) == ran + cached, (what, task, doc)
    assert unknown_seen and certain_seen > unknown_seen  # the matrix tests both kinds
    assert partly_seen  # and a chain decided element by element


def test_the_dry_run_gives_the_reasons_why_gives(tmp_path: Path, store_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    first = _pipeline(files).run_local(tmp_path / "r1", store=store_path)
    wf = _pipeline(files, "2")
    predicted = wf.dry_run(tmp_path / "r2", store=store_path, factor=3)["tasks"]
    cached = {"run": 0, "cached": 1, "unknown": False}
    assert predicted == {
        "make": {**cached, "reasons": {f"cached from run {first.run_id}": 1}},
        "split": {**cached, "reasons": {f"cached from run {first.run_id}": 1}},
        "work": {"run": 4, "cached": 0, "unknown": False,
                 "reasons": {"version 1 -> 2; factor: 2 -> 3": 4}},
        "double": {"run": 0, "cached": 0, "unknown": True,
                   "reasons": {"waits for 'work' (will run)": 4}},
        "total": {"run": 0, "cached": 0, "unknown": True,
                  "reasons": {"waits for 'work' (will run)": 0}},
    }  # fmt: skip
    run = wf.run_local(tmp_path / "r2", store=store_path, factor=3)
    assert run.why("work") == ["work: 4 of 4 elements: version 1 -> 2; factor: 2 -> 3"]
    forced = wf.dry_run(tmp_path / "r3", store=store_path, factor=3, force_tasks=["split"])
    assert forced["tasks"]["split"]["reasons"] == {"forced (--force-tasks split)": 1}
    (files / "data.txt").unlink()
    verified = wf.dry_run(tmp_path / "r3", store=store_path, factor=3, verify=True)
    missing = files / "data.txt"
    assert verified["tasks"]["make"]["reasons"] == {"verify failed": 1}
    assert wf.run_local(tmp_path / "r3", store=store_path, factor=3, verify=True).why("make") == [
        f"make: verify failed: cached output file no longer exists: {missing}"
    ]


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (the store's folder, the run dirs) with a hash of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else "dir"
        for p in sorted(folder.rglob("*"))
    }


def test_a_dry_run_touches_nothing(tmp_path: Path) -> None:
    files, stores = tmp_path / "files", tmp_path / "stores"
    files.mkdir()
    stores.mkdir()
    store = stores / "manifest.db"
    wf = _pipeline(files)
    # no store yet: none is created, nor the run directory
    assert wf.dry_run(tmp_path / "new", store=store)["tasks"]["split"]["run"] == 1
    assert list(stores.iterdir()) == [] and not (tmp_path / "new").exists()
    old = wf.run_local(tmp_path / "old", store=store)
    old.store.close()
    before = _snapshot(tmp_path)
    assert wf.dry_run(tmp_path / "old", store=store, factor=5)["tasks"]["work"]["run"] == 4
    assert wf.dry_run(tmp_path / "new", store=store)["tasks"]["work"]["cached"] == 4
    # the store file and the run dir byte for byte, and no -wal, -shm or journal beside it
    assert _snapshot(tmp_path) == before
    assert sorted(p.name for p in stores.iterdir()) == ["manifest.db"]


def _cli(wf: Workflow, args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = wf.cli(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_dry_run_on_the_command_line(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    wf = _pipeline(files)
    common = ["--run-dir", str(tmp_path / "r"), "--store-path", str(store_path)]
    code, out, _ = _cli(wf, ["run", *common, "--dry-run", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["tasks"] and list(doc["tasks"]) == [
        "make",
        "split",
        "work",
        "double",
        "total",
    ]
    for task in doc["tasks"].values():
        assert set(task) == {"run", "cached", "unknown", "reasons"}
        assert isinstance(task["run"], int) and isinstance(task["unknown"], bool)
    assert doc["tasks"]["split"] == {
        "run": 1, "cached": 0, "unknown": False, "reasons": {"no earlier instance": 1},
    }  # fmt: skip
    assert not store_path.exists() and not (tmp_path / "r").exists()
    _cli(wf, ["run", *common], capsys)
    # any executor: a scheduler that is not installed is never asked
    code, out, _ = _cli(
        wf, ["submit", *common, "--executor", "slurm", "--dry-run", "--n", "5"], capsys
    )
    assert code == 0
    assert out.splitlines()[0] == "dry run: nothing was run, recorded or submitted"
    assert "split: 1 to run, 0 cached" in out.splitlines()
    assert "  1: n: 4 -> 5" in out.splitlines()
    assert "work: unknown" in out.splitlines()
    assert "  waits for 'split' (will run)" in out.splitlines()
    with SqliteStore(store_path) as store:
        assert len(store.list_runs()) == 1  # the real run only


@pytest.mark.parametrize(
    "args",
    [
        ["--n", "x"],
        ["--force-tasks", "wrk"],
        ["--max-workers", "0"],
        ["--nope"],
    ],
)
def test_bad_input_to_a_dry_run_is_the_real_runs_one_line(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    wf = _pipeline(tmp_path)
    common = ["run", "--run-dir", str(tmp_path / "r"), "--store-path", str(store_path), *args]
    real = _cli(wf, common, capsys)
    dry = _cli(wf, [*common, "--dry-run"], capsys)
    assert real[0] == dry[0] == 2
    assert dry[2] == real[2] and dry[2].count("\n") == 1 and dry[2].startswith("error: ")


def test_a_missing_parameter_is_the_same_error_as_for_a_real_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = Workflow("needs")

    @wf.job()
    def one(x: int) -> int:
        return x

    args = ["run", "--run-dir", str(tmp_path / "r"), "--store-path", str(tmp_path / "m.db")]
    real_cli, dry_cli = _cli(wf, args, capsys), _cli(wf, [*args, "--dry-run"], capsys)
    assert real_cli[0] == dry_cli[0] == 2 and real_cli[2] == dry_cli[2]
    assert dry_cli[2].startswith("error: missing required parameter 'x'")
    with pytest.raises(TypeError) as real:
        wf.run_local(tmp_path / "r")
    with pytest.raises(TypeError) as dry:
        wf.dry_run(tmp_path / "r")
    assert str(dry.value) == str(real.value)
    with pytest.raises(ValueError, match="force_tasks names unknown task 'on'"):
        wf.dry_run(tmp_path / "r", x=1, force_tasks=["on"])


def test_json_without_dry_run_is_refused(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _cli(_pipeline(tmp_path), ["run", "--run-dir", str(tmp_path), "--json"], capsys)
    assert code == 2 and err == "error: run --json prints a dry run: add --dry-run\n"


def test_a_dry_run_does_not_upgrade_an_older_store(tmp_path: Path, store_path: Path) -> None:
    import sqlite3

    from reflow.errors import StoreError

    dump = Path(__file__).parent / "golden" / "store-v3.sql"
    with sqlite3.connect(store_path) as db:
        db.executescript(dump.read_text())
    db.close()
    before = store_path.read_bytes()
    with pytest.raises(StoreError, match=r"schema version 3 .* a dry run changes nothing"):
        _pipeline(tmp_path).dry_run(tmp_path / "r", store=store_path)
    assert store_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "manifest.db"]


def test_a_task_that_only_comes_after_one_that_would_run_is_decided(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("order")

    @wf.job()
    def prepare(n: int = 1) -> int:
        return n

    @wf.job(after=["prepare"])
    def announce() -> str:
        return "done"

    first = wf.run_local(tmp_path / "r1", store=store_path)
    predicted = wf.dry_run(tmp_path / "r2", store=store_path, n=2)["tasks"]
    assert predicted["prepare"]["run"] == 1
    assert predicted["announce"] == {
        "run": 0, "cached": 1, "unknown": False,
        "reasons": {f"cached from run {first.run_id}": 1},
    }  # fmt: skip
    real = _real_counts(wf.run_local(tmp_path / "r2", store=store_path, n=2))
    assert real == {"prepare": (1, 0), "announce": (0, 1)}


def test_an_after_task_that_would_run_is_not_what_a_task_waits_for(
    tmp_path: Path, store_path: Path
) -> None:
    # 'more' comes after 'setup' (order only) and reads 'work' element by element:
    # it waits for the elements of 'work' that would run, never for 'setup'
    def pipeline() -> Workflow:
        wf = Workflow("after")

        @wf.job()
        def setup(tag: str = "a") -> str:
            return tag

        @wf.array_job()
        def work(x: Annotated[int, Result(step="items")], k: int = 1) -> int:
            return x * k

        @wf.job()
        def items(n: int = 3) -> list[int]:
            return list(range(n))

        @wf.array_job(after=["setup"])
        def more(y: Annotated[int, Result(step="work")]) -> int:
            return y + 1

        return wf

    pipeline().run_local(tmp_path / "r1", store=store_path)
    predicted = pipeline().dry_run(tmp_path / "r2", store=store_path, tag="b", k=2)["tasks"]
    assert predicted["setup"]["run"] == 1 and predicted["work"]["run"] == 3
    assert predicted["more"] == {
        "run": 0, "cached": 0, "unknown": True, "reasons": {"waits for 'work' (will run)": 3},
    }  # fmt: skip
