"""`reflow gc` and `runs --delete`: what goes, what stays, over random run histories."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Annotated, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflow import Result, RunDir, RunState, Workflow
from reflow.cli import main
from reflow.maintenance import collect, runs_to_delete, select_runs
from reflow.owner import current_owner
from reflow.stores import Store, open_store

RAN: list[str] = []  # what the tasks executed, in this process
FAIL = {"total": False}  # the `total` task fails while this is set


def workflow(name: str, version: str = "1") -> Workflow:
    """items(n) -> square[x] (a file in the run dir, its Path the output) -> total."""
    wf = Workflow(name)

    @wf.job()
    def items(n: int, tag: str) -> list[int]:
        RAN.append("items")
        return list(range(n))

    @wf.array_job(version=version)
    def square(
        x: Annotated[int, Result(step="items")], tag: str, run_dir: RunDir = RunDir()
    ) -> Path:
        RAN.append("square")
        path = Path(run_dir) / f"{tag}-{x}.txt"
        path.write_text(str(x * x))
        return path

    @wf.job()
    def total(xs: Annotated[list[Path], Result(step="square")]) -> int:
        RAN.append("total")
        if FAIL["total"]:
            raise RuntimeError("told to fail")
        return sum(int(p.read_text()) for p in xs)

    return wf


def _snapshot(store: Store, run_id: str) -> tuple[Any, ...]:
    """What a user reads of a run: its status, and every instance's state and output."""
    rows = [
        (i["task_name"], i["array_index"], i["attempt"], i["state"], i["output"], i["output_hash"])
        for i in store.instances(run_id)
    ]
    return store.get_run(run_id)["status"], store.summary(run_id), sorted(rows, key=repr)


def _paths(value: Any) -> list[Path]:
    if isinstance(value, Path):
        return [value]
    if isinstance(value, list):
        return [p for v in value for p in _paths(v)]
    return []


_STEP = st.tuples(
    st.sampled_from(["wa", "wb"]),  # workflow
    st.integers(0, 3),  # n
    st.sampled_from(["p", "q"]),  # tag
    st.sampled_from(["1", "2"]),  # square's version
    st.booleans(),  # total fails
    st.booleans(),  # then retried (and succeeds)
    st.booleans(),  # in the run dir of the run before
)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    steps=st.lists(_STEP, min_size=1, max_size=5),
    keep_last=st.integers(0, 2),
    only=st.sampled_from([None, "wa"]),
    named=st.lists(st.integers(0, 4), max_size=3),
)
def test_gc_keeps_everything_a_kept_run_reads_and_nothing_of_a_forgotten_one(
    steps: list[tuple[str, int, str, str, bool, bool, bool]],
    keep_last: int,
    only: str | None,
    named: list[int],
) -> None:
    """gc --keep-last [--workflow wa], or runs --delete of the runs `named` (by position)."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        store = open_store(base / "m.db")
        runs: dict[str, tuple[str, dict[str, Any]]] = {}
        folder = base / "r0"
        for k, (name, n, tag, version, fails, retried, shared) in enumerate(steps):
            folder = folder if shared else base / f"r{k}"
            FAIL["total"] = fails
            wf = workflow(name, version)
            run = wf.run_local(folder, store=store, on_error="continue", n=n, tag=tag)
            if fails and retried:
                FAIL["total"] = False
                run.retry()
            runs[run.run_id] = (version, {"n": n, "tag": tag})
        FAIL["total"] = False
        if only is not None and not any(r.startswith("wa-") for r in runs):
            only = None
        if named:
            order = list(runs)
            forgotten, kept = runs_to_delete(store, [order[k % len(order)] for k in named])
        else:
            forgotten, kept, _ = select_runs(
                store, keep_last=keep_last, older_than=None, workflow=only
            )
        before = {r["run_id"]: _snapshot(store, r["run_id"]) for r in kept}
        gone_files = {
            p
            for r in forgotten
            for i in store.instances(r["run_id"])
            for p in _paths(i["output"])
            if not i["cached"]
        }
        collect(store, forgotten, kept, [], dry_run=False, echo=lambda _: None)

        kept_paths: set[Path] = set()
        for run_id, snap in before.items():
            assert _snapshot(store, run_id) == snap  # status and outputs read back the same
            for i in store.instances(run_id):
                for p in _paths(i["output"]):
                    assert p.exists(), f"{p}, an output of kept run {run_id}, is gone"
                    kept_paths.add(p)
        gone = {r["run_id"] for r in forgotten}
        db = sqlite3.connect(base / "m.db")
        for table in ("runs", "tasks", "instances", "reasons"):
            (left,) = db.execute(
                f"SELECT COUNT(*) FROM {table} WHERE run_id IN ({','.join('?' * len(gone))})",
                sorted(gone),
            ).fetchone()
            assert left == 0, f"{left} rows of forgotten runs left in {table}"
        db.close()
        for r in forgotten:
            for kind in ("results", "logs", "work"):
                assert not (Path(r["run_dir"]) / kind / r["run_id"]).exists()
        assert not {p for p in gone_files - kept_paths if p.exists()}

        # the cache still serves every kept successful run's parameters: nothing runs
        for run_id in before:
            if before[run_id][0] != "SUCCESS":
                continue
            version, params = runs[run_id]
            RAN.clear()
            again = workflow(run_id.split("-")[0], version).run_local(
                base / "again", store=store, **params
            )
            assert again.state is RunState.SUCCESS and RAN == [], run_id
        store.close()


# ---------------------------------------------------------------------- the commands


@pytest.fixture
def history(tmp_path: Path) -> tuple[Path, list[str]]:
    """Three runs of `wa` (the last two reuse the first's outputs) and one of `wb`."""
    store = open_store(tmp_path / "m.db")
    ids = [
        workflow("wa").run_local(tmp_path / f"r{k}", store=store, n=2, tag="p").run_id
        for k in range(3)
    ]
    ids.append(workflow("wb").run_local(tmp_path / "rb", store=store, n=1, tag="p").run_id)
    store.close()
    return tmp_path / "m.db", ids


def _gc(store: Path, *args: str) -> list[str]:
    return ["gc", *args, "--store-path", str(store)]


def test_gc_dry_run_says_what_would_go_and_changes_nothing(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ids = history
    before = path.read_bytes()
    assert main(_gc(path, "--keep-last", "1", "--dry-run")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"would forget run {ids[1]} (SUCCESS, created ")
    assert out[1].startswith(f"would forget run {ids[0]} (SUCCESS, created ")
    assert f"would keep the output of {ids[0]} square[1] (attempt 1)" in "\n".join(out)
    assert f" bytes) by moving it into {ids[2]} square[1] (attempt 1)\n" in "\n".join(out)
    assert out[-1].startswith("total: would forget 2 runs (2 kept), 8 instances, ")
    assert "would keep 4 outputs by moving; would remove " in out[-1]
    assert path.read_bytes() == before
    assert (path.parent / "r0" / "p-1.txt").exists()


def test_gc_forgets_old_runs_of_one_workflow_and_keeps_what_the_newest_reuses(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ids = history
    assert main(_gc(path, "--keep-last", "1", "--workflow", "wa")) == 0
    out = capsys.readouterr().out
    assert "total: forgot 2 runs (2 kept), 8 instances, 0 bytes of outputs; kept 4 outputs " in out
    store = open_store(path)
    assert [r["run_id"] for r in store.list_runs()] == [ids[3], ids[2]]
    newest = store.instances(ids[2])
    assert [p.read_text() for p in _paths(newest[-1]["output"])] == []  # total: a number
    assert store.get_array_outputs(ids[2], "square") == [
        path.parent / "r0" / "p-0.txt",
        path.parent / "r0" / "p-1.txt",
    ]
    assert (path.parent / "r0" / "p-1.txt").read_text() == "1"  # the kept run names it
    RAN.clear()
    workflow("wa").run_local(path.parent / "r9", store=store, n=2, tag="p")
    assert RAN == []  # still cached
    store.close()


def test_gc_removes_the_files_only_forgotten_runs_name(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.db")
    old = workflow("wa").run_local(tmp_path / "old", store=store, n=2, tag="p")
    new = workflow("wa").run_local(tmp_path / "new", store=store, n=2, tag="q")
    outside = tmp_path / "old-sibling.txt"
    outside.write_text("not reflow's")
    forgotten, kept, _ = select_runs(store, keep_last=1, older_than=None, workflow=None)
    assert [r["run_id"] for r in forgotten] == [old.run_id]
    lines: list[str] = []
    collect(store, forgotten, kept, [], dry_run=False, echo=lines.append)
    assert lines[0].startswith(f"forgot run {old.run_id} (SUCCESS, created ")
    assert lines[0].endswith(" bytes of outputs, 2 files (2 bytes)")  # p-0.txt, p-1.txt
    assert lines[-1].startswith("total: forgot 1 run (1 kept), 4 instances, ")
    assert not (tmp_path / "old" / "p-0.txt").exists()
    assert not (tmp_path / "old" / "logs").exists()
    assert (tmp_path / "old").is_dir()  # the run dir itself stays
    assert outside.exists() and (tmp_path / "new" / "q-1.txt").exists()
    assert new.outputs("square") == [tmp_path / "new" / "q-0.txt", tmp_path / "new" / "q-1.txt"]
    store.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "3x"], "'3x' is not an age: use a whole number and a unit"),
        (["--keep-last", "-1"], "expected a number >= 0, not -1"),
        (["--keep-last", "1", "--workflow", "nope"], "no runs of workflow 'nope' in the store"),
        ([], "say which runs to forget: --keep-last N (per workflow) and/or --older-than AGE"),
    ],
)
def test_gc_refuses_bad_input_with_one_line(
    history: tuple[Path, list[str]],
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    path, _ = history
    assert main(_gc(path, *args)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("error: ")


def test_gc_older_than_forgets_by_age(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = history
    assert main(_gc(path, "--older-than", "30d")) == 0
    assert capsys.readouterr().out == "nothing to forget\n"
    store = open_store(path)
    forgotten, _, _ = select_runs(
        store, keep_last=None, older_than=60, workflow=None, now=2e10
    )  # far in the future: every run is old
    assert len(forgotten) == 4
    store.close()


def test_runs_delete_forgets_runs_and_refuses_unknown_and_running_ones(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ids = history
    assert main(["runs", "--delete", "wa-nope", "--store-path", str(path)]) == 2
    assert "no run 'wa-nope' in the store" in capsys.readouterr().err
    store = open_store(path)
    store.claim_run(ids[1], current_owner(), alive=lambda *_: False)  # this process drives it
    store.close()
    assert main(["runs", "--delete", ids[0], ids[1], "--store-path", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: run '{ids[1]}' is still running (RUNNING): cancel it first "
        f"('cancel {ids[1]}') or wait for it to finish\n"
    )
    assert main(["cancel", ids[1], "--store-path", str(path)]) == 0
    assert main(["runs", "--delete", ids[0], ids[1], "--store-path", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("total: forgot 2 runs (2 kept), 8 instances")
    store = open_store(path)
    assert [r["run_id"] for r in store.list_runs()] == [ids[3], ids[2]]
    assert store.get_array_outputs(ids[2], "square")[1] == path.parent / "r0" / "p-1.txt"
    store.close()


def test_runs_to_delete_keeps_every_other_run(history: tuple[Path, list[str]]) -> None:
    path, ids = history
    store = open_store(path)
    forgotten, kept = runs_to_delete(store, [ids[3], ids[3]])
    assert [r["run_id"] for r in forgotten] == [ids[3]]
    assert {r["run_id"] for r in kept} == set(ids[:3])
    store.close()


def test_gc_keeps_a_file_that_a_kept_run_wrote_again_in_a_shared_run_dir(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.db")
    shared = tmp_path / "shared"
    old = workflow("wa", "1").run_local(shared, store=store, n=1, tag="p")
    RAN.clear()
    new = workflow("wa", "2").run_local(shared, store=store, n=1, tag="p")
    assert RAN == ["square"]  # a new version of square wrote the same file again
    forgotten, kept, _ = select_runs(store, keep_last=1, older_than=None, workflow=None)
    assert [r["run_id"] for r in forgotten] == [old.run_id]
    collect(store, forgotten, kept, [], dry_run=False, echo=lambda _: None)
    assert new.outputs("square") == [shared / "p-0.txt"]
    assert (shared / "p-0.txt").read_text() == "0"
    store.close()


def test_a_pipeline_scripts_gc_forgets_only_its_own_workflows_runs(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    from reflow.cli import workflow_cli

    path, ids = history
    assert workflow_cli(workflow("wb"), ["gc", "--keep-last", "0", "--store-path", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(f"forgot run {ids[3]} ")
    store = open_store(path)
    assert [r["run_id"] for r in store.list_runs()] == ids[2::-1]
    store.close()
    # a workflow without runs is nothing to forget, not a mistake
    assert workflow_cli(workflow("wc"), ["gc", "--keep-last", "0", "--store-path", str(path)]) == 0
    assert capsys.readouterr().out == "nothing to forget\n"


def test_gc_never_forgets_a_run_in_flight(
    history: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, ids = history
    store = open_store(path)
    store.claim_run(ids[0], current_owner(), alive=lambda *_: False)  # this process drives it
    store.close()
    assert main(_gc(path, "--keep-last", "0")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"kept run {ids[0]}: still running"
    assert out[-1].startswith("total: forgot 3 runs (1 kept), ")
    store = open_store(path)
    assert [r["run_id"] for r in store.list_runs()] == [ids[0]]
    assert store.get_array_outputs(ids[0], "square")[1] == path.parent / "r0" / "p-1.txt"
    store.close()


def _folder_workflow(name: str, *, named: bool = True) -> Workflow:
    """One task that writes into `<run dir>/out/` and returns the folder (`named`) or not."""
    wf = Workflow(name)

    @wf.job()
    def write(tag: str, run_dir: RunDir = RunDir()) -> Path | str:
        folder = Path(run_dir) / "out"
        folder.mkdir(exist_ok=True)
        (folder / f"{tag}.txt").write_text(tag)
        return folder if named else f"{tag}.txt"

    return wf


def test_gc_removes_a_folder_output_only_where_no_kept_run_shares_the_run_dir(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "m.db")
    _folder_workflow("wf").run_local(tmp_path / "alone", store=store, tag="a")
    _folder_workflow("wf").run_local(tmp_path / "shared", store=store, tag="b")
    _folder_workflow("wg", named=False).run_local(tmp_path / "shared", store=store, tag="c")
    _folder_workflow("wf").run_local(tmp_path / "new", store=store, tag="d")  # kept
    forgotten, kept, _ = select_runs(store, keep_last=1, older_than=None, workflow="wf")
    assert len(forgotten) == 2
    collect(store, forgotten, kept, [], dry_run=False, echo=lambda _: None)
    assert not (tmp_path / "alone" / "out").exists()
    # the kept run of wg wrote c.txt into the same folder, naming no path: all of it stays
    assert sorted(p.name for p in (tmp_path / "shared" / "out").iterdir()) == ["b.txt", "c.txt"]
    store.close()


def test_gc_removes_a_symlink_an_output_names_not_the_file_it_points_at(tmp_path: Path) -> None:
    wf = Workflow("wl")

    @wf.job()
    def link(tag: str, run_dir: RunDir = RunDir()) -> Path:
        path = Path(run_dir) / f"{tag}-latest"
        path.symlink_to(Path(run_dir) / "data" / "input.csv")
        return path

    store = open_store(tmp_path / "m.db")
    data = tmp_path / "old" / "data" / "input.csv"
    data.parent.mkdir(parents=True)
    data.write_text("the user's, named by no output")
    wf.run_local(tmp_path / "old", store=store, tag="a")
    wf.run_local(tmp_path / "new", store=store, tag="b")
    forgotten, kept, _ = select_runs(store, keep_last=1, older_than=None, workflow=None)
    collect(store, forgotten, kept, [], dry_run=False, echo=lambda _: None)
    assert not (tmp_path / "old" / "a-latest").is_symlink()
    assert data.read_text() == "the user's, named by no output"
    store.close()


def test_gc_leaves_whole_a_kept_runs_run_dir_inside_a_forgotten_ones(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.db")
    _folder_workflow("wf").run_local(tmp_path / "top", store=store, tag="a")  # names top/out
    inner = tmp_path / "top" / "out"  # then the run dir of a kept run
    _folder_workflow("wf", named=False).run_local(inner, store=store, tag="b")
    forgotten, kept, _ = select_runs(store, keep_last=1, older_than=None, workflow=None)
    assert [r["run_dir"] for r in kept] == [str(inner)]
    collect(store, forgotten, kept, [], dry_run=False, echo=lambda _: None)
    assert (inner / "out" / "b.txt").read_text() == "b"
    assert (inner / "a.txt").exists()  # in the kept run's run dir: left with it
    assert not (tmp_path / "top" / "logs").exists()
    store.close()
