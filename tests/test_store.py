"""The manifest store (SPEC 4) and the Run handle's status, outputs and cancel (SPEC 2)."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import stat
import time
from pathlib import Path
from typing import Annotated, Any

import pytest

from backends import INTEGRITY_ERRORS, execute, is_postgres, open_at_once, runs_in
from counting import Calls
from mounts import read_only
from reflow import Result, Run, RunState, Workflow
from reflow.errors import ReflowError, StoreError
from reflow.stores import Store, open_store
from reflow.stores.sqlite import SCHEMA_VERSION, SqliteStore
from stopping import stopped


@pytest.fixture
def store_path(any_store: str) -> str:
    """Each test here runs on both backends (an SQLite file, a PostgreSQL schema), but
    those that say they are SQLite's own (files, journal, the SQLite dumps of old schemas)."""
    return any_store


def _tiny(name: str = "tiny") -> Workflow:
    wf = Workflow(name)

    @wf.job()
    def hello(who: str = "world") -> str:
        return f"hello {who}"

    return wf


def _new_run(store: Store, name: str = "etl") -> str:
    return store.create_run(
        name, run_dir="/tmp/r", executor="local", params="{}", options="{}",
        tasks=[("a", 0, False, "{}")],
    )  # fmt: skip


# ---------------------------------------------------------------------- schema


def test_schema_version_is_recorded_in_meta(store_path: str) -> None:
    open_store(store_path).list_runs()  # opening creates the store
    ((value,),) = execute(store_path, "SELECT value FROM meta WHERE key = 'schema_version'")
    assert int(value) == SCHEMA_VERSION


def test_store_from_a_newer_schema_is_refused_and_left_untouched(
    store_path: str, tmp_path: Path
) -> None:
    store = open_store(store_path)
    _new_run(store)
    store.close()
    execute(
        store_path,
        "UPDATE meta SET value = ? WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1),),
    )
    before = None if is_postgres(store_path) else Path(store_path).read_bytes()

    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}, newer than"):
        open_store(store_path).list_runs()
    with pytest.raises(StoreError, match="upgrade reflow"):
        _tiny().run_local(tmp_path / "r", store=store_path)
    assert runs_in(store_path) == 1
    if before is not None:  # SQLite: not a byte changed, and no handle is kept on it
        file = Path(store_path)
        assert file.read_bytes() == before
        assert [p.name for p in file.parent.glob("manifest.db*")] == ["manifest.db"]


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(sqlite_path: Path) -> None:
    """SQLite only: a file that is something else."""
    store_path = sqlite_path
    store_path.write_bytes(b"these are my notes, not a database\n" * 200)
    before = store_path.read_bytes()
    with pytest.raises(StoreError, match="is not a reflow store or is corrupt") as caught:
        open_store(store_path).list_runs()
    assert "left untouched" in str(caught.value)
    assert isinstance(caught.value, ReflowError)
    assert store_path.read_bytes() == before
    assert sorted(p.name for p in store_path.parent.iterdir()) == ["home", "manifest.db"]


def test_another_sqlite_database_is_refused_and_left_untouched(sqlite_path: Path) -> None:
    """SQLite only: a file that is something else."""
    store_path = sqlite_path
    with sqlite3.connect(store_path) as db:
        db.execute("CREATE TABLE mine (x INTEGER)")
        db.execute("INSERT INTO mine VALUES (1)")
    db.close()
    before = store_path.read_bytes()
    with pytest.raises(StoreError, match="not a reflow store"):
        open_store(store_path).list_runs()
    assert store_path.read_bytes() == before


def test_a_directory_is_not_a_store(tmp_path: Path) -> None:
    """SQLite only: a path that is a folder."""
    with pytest.raises(StoreError, match="is a directory"):
        SqliteStore(tmp_path).list_runs()


# ---------------------------------------------------------------------- where the store is


def _write_config(text: str) -> None:
    config = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(text)


def test_default_store_is_under_xdg_cache_home_and_private(tmp_path: Path) -> None:
    """SQLite only: the default store is a private file."""
    cache = Path(os.environ["XDG_CACHE_HOME"])
    run = _tiny().run_local(tmp_path / "r")
    default = cache / "reflow" / "manifest.db"
    assert run.store.path == default
    assert runs_in(default) == 1
    assert stat.S_IMODE(default.stat().st_mode) == 0o600
    assert stat.S_IMODE(default.parent.stat().st_mode) == 0o700
    assert SqliteStore().path == default


def test_config_store_path_overrides_the_default(tmp_path: Path) -> None:
    configured = tmp_path / "team" / "config-store.db"
    _write_config(f'[defaults]\nstore_path = "{configured}"\n')
    run = _tiny().run_local(tmp_path / "r")
    assert run.store.path == configured
    assert runs_in(configured) == 1
    assert not (Path(os.environ["XDG_CACHE_HOME"]) / "reflow" / "manifest.db").exists()


def test_environment_overrides_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "config-store.db"
    from_env = tmp_path / "env-store.db"
    _write_config(f'[defaults]\nstore_path = "{configured}"\n')
    monkeypatch.setenv("REFLOW_STORE_PATH", str(from_env))
    run = _tiny().run_local(tmp_path / "r")
    assert run.store.path == from_env
    assert runs_in(from_env) == 1 and runs_in(configured) == 0
    assert SqliteStore().path == from_env


def test_explicit_store_overrides_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_path: str
) -> None:
    monkeypatch.setenv("REFLOW_STORE_PATH", str(tmp_path / "env-store.db"))
    _tiny().run_local(tmp_path / "r", store=store_path)
    _tiny().run_local(tmp_path / "r", store=open_store(store_path))
    assert runs_in(store_path) == 2
    assert not (tmp_path / "env-store.db").exists()


# ---------------------------------------------------------------------- runs


def test_run_ids_have_the_documented_form_and_are_unique(store_path: Path) -> None:
    store = open_store(store_path)
    today = dt.date.today().strftime("%Y%m%d")
    ids = [_new_run(store, "etl") for _ in range(2000)]
    pattern = re.compile(rf"^etl-{today}-[0-9a-f]{{4,}}$")
    assert all(pattern.match(i) for i in ids), [i for i in ids if not pattern.match(i)][:3]
    assert len(set(ids)) == 2000
    assert len(store.list_runs()) == 2000


def test_run_id_of_a_real_run(tmp_path: Path, store_path: Path) -> None:
    run = _tiny("my-pipeline").run_local(tmp_path / "r", store=store_path)
    assert re.match(r"^my-pipeline-\d{8}-[0-9a-f]{4,}$", run.run_id)
    assert run.run_dir == (tmp_path / "r").absolute()


def test_list_runs_filters_newest_first(store_path: Path) -> None:
    store = open_store(store_path)
    day = dt.datetime(2026, 3, 10, 12, 0)
    made: dict[str, tuple[str, dt.datetime, str]] = {}
    plan = [  # recorded in another order than their creation times
        ("other", day, "SUCCESS"),
        ("etl", day - dt.timedelta(days=3), "SUCCESS"),
        ("etl", day + dt.timedelta(days=2), "RUNNING"),
        ("etl", day - dt.timedelta(days=1), "FAILED"),
        ("etl", day + dt.timedelta(hours=1), "SUCCESS"),
    ]
    for name, when, status in plan:
        rid = _new_run(store, name)
        store.set_run_status(rid, status)
        made[rid] = (name, when, status)
    for rid, (_, when, _) in made.items():
        execute(
            store_path, "UPDATE runs SET created_at = ? WHERE run_id = ?", (when.timestamp(), rid)
        )
    newest_first = [rid for rid, _ in sorted(made.items(), key=lambda kv: kv[1][1], reverse=True)]

    def ids(**kw: Any) -> list[str]:
        return [r["run_id"] for r in store.list_runs(**kw)]

    everything = store.list_runs()
    assert [r["run_id"] for r in everything] == newest_first
    assert {"run_id", "graph_name", "status", "created_at"} <= set(everything[0])
    assert ids(graph_name="other") == [newest_first[2]]
    assert ids(graph_name="etl") == [r for r in newest_first if made[r][0] == "etl"]
    assert ids(limit=2) == newest_first[:2]
    assert ids(status="SUCCESS") == [r for r in newest_first if made[r][2] == "SUCCESS"]
    assert ids(status="failed") == [r for r in newest_first if made[r][2] == "FAILED"]
    assert ids(since=day) == newest_first[:3]
    assert ids(since="2026-03-10") == newest_first[:3]
    assert ids(until=dt.date(2026, 3, 10)) == newest_first[1:]  # a date includes its whole day
    assert ids(until="2026-03-09") == newest_first[3:]
    assert ids(since="2026-03-09", until="2026-03-10", graph_name="etl") == [
        newest_first[1],
        newest_first[3],
    ]
    with pytest.raises(StoreError, match="since='last week' is not a date"):
        store.list_runs(since="last week")


def test_unknown_run_id_is_a_clear_error(tmp_path: Path, store_path: Path) -> None:
    run = _tiny().run_local(tmp_path / "r", store=store_path)
    store = open_store(store_path)
    with pytest.raises(KeyError) as caught:
        store.get_run(run.run_id[:-1] + "x")
    assert f"Did you mean '{run.run_id}'?" in str(caught.value)
    with pytest.raises(ReflowError, match="no run 'nothing-like-it'"):
        Run("nothing-like-it", store).status()


# ---------------------------------------------------------------------- outputs


def _outputs_workflow(calls: Calls) -> Workflow:
    wf = Workflow("outs")

    @wf.job()
    def numbers() -> list[int]:
        calls("numbers")
        return [3, 1, 2]

    @wf.array_job()
    def double(x: Annotated[int, Result(step="numbers")]) -> int:
        calls("double")
        if x == 2:
            raise ValueError("no twos")
        return 2 * x

    @wf.job()
    def label() -> str:
        return "done"

    return wf


def test_singleton_and_array_outputs(tmp_path: Path, store_path: Path, calls: Calls) -> None:
    run = _outputs_workflow(calls).run_local(tmp_path / "r", store=store_path, on_error="continue")
    store = open_store(store_path)
    assert store.get_singleton_output(run.run_id, "numbers") == [3, 1, 2]
    assert store.get_singleton_output(run.run_id, "label") == "done"
    assert run.output("label") == "done"

    with pytest.raises(StoreError, match=r"'double'\[2\] of run .* is FAILED, so it has no output"):
        store.get_array_outputs(run.run_id, "double")
    with pytest.raises(StoreError, match="has no task 'nope'"):
        run.output("nope")


def test_array_outputs_come_in_index_order(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("order")

    @wf.job()
    def items() -> list[int]:
        return list(range(15))

    @wf.array_job()
    def ident(x: Annotated[int, Result(step="items")]) -> int:
        return x

    run = wf.run_local(tmp_path / "r", store=store_path)
    store = open_store(store_path)
    assert store.get_array_outputs(run.run_id, "ident") == list(range(15))
    assert run.outputs("ident") == list(range(15))
    with pytest.raises(StoreError, match="'ident' is an array task: use get_array_outputs"):
        store.get_singleton_output(run.run_id, "ident")
    with pytest.raises(StoreError, match="'items' is not an array task"):
        store.get_array_outputs(run.run_id, "items")


# ---------------------------------------------------------------------- integrity


def test_one_instance_row_per_run_task_index_and_attempt(tmp_path: Path, store_path: str) -> None:
    run = _tiny().run_local(tmp_path / "r", store=store_path)
    ((count,),) = execute(
        store_path, "SELECT COUNT(*) FROM instances WHERE run_id = ?", (run.run_id,)
    )
    assert count == 1
    with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)UNIQUE"):
        execute(
            store_path,
            "INSERT INTO instances (run_id, task_name, array_index, attempt, state) "
            "VALUES (?, 'hello', -1, 1, 'PENDING')",
            (run.run_id,),
        )
    # a second attempt is a row of its own
    execute(
        store_path,
        "INSERT INTO instances (run_id, task_name, array_index, attempt, state, current) "
        "VALUES (?, 'hello', -1, 2, 'PENDING', 0)",
        (run.run_id,),
    )


def test_a_success_row_cannot_lack_its_output(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("check")

    @wf.job()
    def broken() -> int:
        raise RuntimeError("no")

    run = stopped(wf, tmp_path / "r", store=store_path)
    with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)CHECK"):
        execute(
            store_path, "UPDATE instances SET state = 'SUCCESS' WHERE run_id = ?", (run.run_id,)
        )
    with pytest.raises(INTEGRITY_ERRORS, match=r"(?i)CHECK"):
        execute(
            store_path,
            "UPDATE instances SET state = 'SUCCESS', output = '1' WHERE run_id = ?",
            (run.run_id,),
        )  # an output without its hash is no better
    execute(
        store_path,
        "UPDATE instances SET state = 'SUCCESS', output = '1', output_hash = 'h' WHERE run_id = ?",
        (run.run_id,),
    )


# ---------------------------------------------------------------------- status


def test_status_dict_has_the_documented_keys(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    run = _outputs_workflow(calls).run_local(tmp_path / "r", store=store_path, on_error="continue")
    doc = run.status(as_dict=True)
    assert doc is not None
    assert {"run", "summary", "instances", "failed_instances"} <= set(doc)
    assert doc["run"]["run_id"] == run.run_id
    assert doc["run"]["status"] == "FAILED"
    assert doc["run"]["graph_name"] == "outs"
    assert doc["summary"] == {
        "numbers": {"SUCCESS": 1},
        "double": {"SUCCESS": 2, "FAILED": 1},
        "label": {"SUCCESS": 1},
    }
    assert len(doc["instances"]) == 5
    (failed,) = doc["failed_instances"]
    assert {"task_name", "array_index", "state", "job_id", "error_text"} <= set(failed)
    assert (failed["task_name"], failed["array_index"], failed["state"]) == ("double", 2, "FAILED")
    assert failed["job_id"] is None
    assert "ValueError: no twos" in failed["error_text"]

    only = run.status(task="double", as_dict=True)
    assert only is not None
    assert set(only["summary"]) == {"double"}
    assert {i["task_name"] for i in only["instances"]} == {"double"}


def test_status_prints_each_tasks_counts(
    tmp_path: Path, store_path: Path, calls: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = _outputs_workflow(calls)
    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    assert run.status() is None
    out = capsys.readouterr().out
    assert run.run_id in out and "FAILED" in out
    lines = out.splitlines()

    def line(task: str) -> str:
        return next(x for x in lines if x.split()[:1] == [task])

    took = r"  \(\d+\.\d s\)$"  # each task's elapsed time
    assert re.search(r"numbers\s+1\s+1 SUCCESS" + took, line("numbers"))
    assert re.search(r"double\s+3\s+2 SUCCESS, 1 FAILED" + took, line("double"))
    assert re.search(r"label\s+1\s+1 SUCCESS" + took, line("label"))
    assert any("double[2]  FAILED" in x and "ValueError: no twos" in x for x in lines)

    again = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    again.status()
    assert "1 SUCCESS (1 cached)" in capsys.readouterr().out


def test_status_of_an_unknown_task_is_an_error(tmp_path: Path, store_path: Path) -> None:
    run = _tiny().run_local(tmp_path / "r", store=store_path)
    with pytest.raises(ReflowError, match=r"has no task 'helo'\. Did you mean 'hello'\?"):
        run.status(task="helo")


# ---------------------------------------------------------------------- cancel


def test_cancel_from_elsewhere_stops_a_running_run(
    tmp_path: Path, store_path: Path, calls: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reflow.local

    monkeypatch.setattr(reflow.local, "_CANCEL_POLL_SECONDS", 0.0)
    wf = Workflow("cancel_me")
    cancelled: list[int] = []

    @wf.job()
    def items() -> list[int]:
        return list(range(6))

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        calls(f"each{x}")
        if x == 1 and not cancelled:  # another terminal runs `cancel` while the run goes
            store = open_store(store_path)
            (info,) = store.list_runs()
            assert info["status"] == "RUNNING"
            cancelled.append(Run(info["run_id"], store).cancel())
            store.close()
        return x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="each")]) -> int:
        calls("total")
        return sum(xs)

    run = wf.run_local(tmp_path / "r", store=store_path)
    assert run.state is RunState.CANCELLED
    ran = calls.take()
    assert "total" not in ran and "each5" not in ran
    summary = run.status(as_dict=True)["summary"]  # type: ignore[index]
    # each[0] finished before the cancel; each[1] was running, so it is cancelled with
    # the four that were waiting (its late result does not undo the cancel)
    assert summary["each"] == {"SUCCESS": 1, "CANCELLED": 5}
    assert cancelled == [5]
    assert run.cancel() == 0  # nothing left to cancel

    run.retry()
    assert calls.take() == {f"each{i}": 1 for i in range(1, 6)} | {"total": 1}
    assert run.state is RunState.SUCCESS


def test_cancel_of_one_task(tmp_path: Path, store_path: Path) -> None:
    store = open_store(store_path)
    rid = _new_run(store)
    run = Run(rid, store)
    with pytest.raises(ReflowError, match=r"has no task 'b'"):
        run.cancel(task="b")
    assert run.cancel(task="a") == 0
    assert run.state is RunState.RUNNING  # cancelling one task leaves the run as it was
    assert run.cancel() == 0
    assert run.state is RunState.CANCELLED


# ---------------------------------------------------------------------- batching


def test_writes_are_batched_per_wave_not_per_instance(tmp_path: Path, sqlite_path: Path) -> None:
    """SQLite only (it counts the statements SQLite traces)."""
    store_path = sqlite_path
    wf = Workflow("batched")

    @wf.job()
    def items(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        return x

    @wf.array_job()
    def chained(x: Annotated[int, Result(step="each")]) -> int:
        return x + 1

    store = open_store(store_path)
    store.list_runs()  # open it before counting
    statements: list[str] = []
    store.conn.set_trace_callback(statements.append)

    def transactions() -> int:
        n = sum(1 for s in statements if s.startswith("BEGIN"))
        statements.clear()
        return n

    run = wf.run_local(tmp_path / "r", store=store, n=1000)
    assert run.outputs("chained")[-1] == 1000
    assert transactions() < 100  # 2,001 instances
    wf.run_local(tmp_path / "r", store=store, n=1000)  # all cache hits
    assert transactions() <= 10


def test_a_team_store_keeps_the_permissions_its_owner_gave_it(tmp_path: Path) -> None:
    """SQLite only: a file's permissions."""
    team = tmp_path / "team"
    team.mkdir()
    path = team / "manifest.db"
    _tiny().run_local(tmp_path / "r", store=path).store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # created private, like every store
    team.chmod(0o2775)  # the owner shares it with the group
    path.chmod(0o664)
    run = _tiny().run_local(tmp_path / "r2", store=path, who="team")
    assert run.state is RunState.SUCCESS
    run.store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert stat.S_IMODE(team.stat().st_mode) == 0o2775


# ---------------------------------------------------------------------- migration


def _legacy(ran: list[int]) -> Workflow:
    """The workflow tests/golden/store-v1.sql (reflow 0.1.0, schema 1), store-v2.sql (the
    commit before schema 3), store-v3.sql (the commit before schema 4) and store-v4.sql
    (the commit before schema 5) were made with: two runs of n=3, the second all cache
    hits."""
    wf = Workflow("legacy")

    @wf.job()
    def items(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def square(x: Annotated[int, Result(step="items")]) -> int:
        ran.append(x)
        return x * x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="square")]) -> int:
        return sum(xs)

    return wf


def _v1_store(path: Path, version: int = 1) -> Path:
    dump = Path(__file__).parent / "golden" / f"store-v{version}.sql"
    with sqlite3.connect(path) as db:
        db.executescript(dump.read_text())
    db.close()
    return path


@pytest.mark.parametrize("old", [1, 2, 3, 4])
def test_an_older_store_is_upgraded_in_place_keeping_runs_outputs_and_the_cache(
    sqlite_path: Path, tmp_path: Path, old: int
) -> None:
    """SQLite only: the old schemas are SQLite dumps (a PostgreSQL store starts at 4)."""
    store_path = sqlite_path
    _v1_store(store_path, old)
    store = open_store(store_path)
    runs = store.list_runs()
    assert len(runs) == 2 and {r["status"] for r in runs} == {"SUCCESS"}
    with sqlite3.connect(store_path) as db:
        (version,) = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        (cache_index,) = db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'instances_cache'"
        ).fetchone()
        task_columns = {r[1] for r in db.execute("PRAGMA table_info(tasks)")}
        instance_columns = {r[1] for r in db.execute("PRAGMA table_info(instances)")}
        plan = " ".join(
            str(r[-1])
            for r in db.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM instances WHERE cached_from IS NULL "
                "AND substr(identity, 1, 16) IN ('a', 'b')"
            )
        )
    db.close()
    assert int(version) == SCHEMA_VERSION == 5
    assert "reasons" in tables  # what only the engine knew when it decided (why)
    assert "identities" not in tables  # folded into the instances that computed them
    assert "substr(identity, 1, 16)" in cache_index and "instances_cache" in plan
    assert "expected" in task_columns
    assert {"failure_kind", "resources"} <= instance_columns  # what each attempt failed of, asked
    for r in runs:
        run = Run(r["run_id"], store)
        assert run.output("total") == 5 and run.outputs("square") == [0, 1, 4]
        assert run.status(as_dict=True)["summary"] == {  # type: ignore[index]
            "items": {"SUCCESS": 1},
            "square": {"SUCCESS": 3},
            "total": {"SUCCESS": 1},
        }
    # `why` reads an upgraded store: the newer run reused everything from the older one
    newest, oldest = runs[0]["run_id"], runs[1]["run_id"]
    assert Run(newest, store).why() == [
        f"items: cached from run {oldest}",
        f"square: 3 of 3 elements: cached from run {oldest}",
        f"total: cached from run {oldest}",
    ]
    # the ingredients of every identity survived, for the rows that ran and the cached ones
    for row in store.instances(runs[0]["run_id"]) + store.instances(runs[1]["run_id"]):
        parts = store.identity_parts(row["identity"])
        assert parts is not None and parts["task"] == row["task_name"]

    # the cache of the old runs serves a new run: nothing executes
    ran: list[int] = []
    run = _legacy(ran).run_local(tmp_path / "r", store=store, n=3)
    assert run.state is RunState.SUCCESS and run.output("total") == 5
    assert ran == []
    assert all(i["cached"] for i in store.instances(run.run_id))


def test_a_schema_1_store_that_cannot_be_written_says_how_to_upgrade_it(tmp_path: Path) -> None:
    """SQLite only: a file on a read-only mount."""
    folder = tmp_path / "ro"
    folder.mkdir()
    store_path = _v1_store(folder / "m.db")
    before = store_path.read_bytes()
    with (
        read_only(folder),
        pytest.raises(StoreError, match=r"schema version 1 and this reflow needs 5.*writable"),
    ):
        open_store(store_path).list_runs()
    assert store_path.read_bytes() == before


def test_a_long_task_is_seen_running_by_others_while_it_runs(
    tmp_path: Path, store_path: Path
) -> None:
    # the driver keeps its writes in one transaction while tasks are quick; one that
    # takes long must still be visible (and the ones finished before it committed)
    wf = Workflow("visible")
    seen: list[dict[str, int]] = []

    @wf.job()
    def quick() -> int:
        return 1

    @wf.job()
    def slow(q: Annotated[int, Result(step="quick")]) -> int:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counts = dict(
                execute(
                    store_path,
                    "SELECT task_name || ':' || state, COUNT(*) FROM instances "
                    "WHERE current = 1 GROUP BY task_name, state",
                )
            )
            if counts.get("slow:RUNNING"):
                seen.append(counts)
                break
            time.sleep(0.01)
        return q + 1

    run = wf.run_local(tmp_path / "r", store=store_path)
    assert run.output("slow") == 2
    assert seen == [{"quick:SUCCESS": 1, "slow:RUNNING": 1}]


def test_many_processes_opening_a_schema_1_store_at_once_upgrade_it_once(
    sqlite_path: Path,
) -> None:
    """SQLite only: its old schema (on PostgreSQL: test_postgres, created once)."""
    store_path = sqlite_path
    # after an upgrade of reflow, every job of a cluster run may open the old store at
    # the same moment: each must wait for the first upgrade and then use it
    _v1_store(store_path)
    seen = open_at_once(store_path, 8)
    assert seen == [(0, "2", "")] * 8
    assert (
        Run(open_store(store_path).list_runs()[0]["run_id"], open_store(store_path)).output("total")
        == 5
    )


def test_a_store_dropped_without_close_lets_go_of_its_connection_at_once(
    sqlite_path: Path,
) -> None:
    """SQLite only: sqlite3's reference cycle."""
    store_path = sqlite_path
    # sqlite3.Connection sits in a reference cycle with its statement cache: without
    # this, every run_local of a script looping over runs kept its connection (and its
    # page cache, up to 16 MiB) until the next full garbage collection
    import gc

    gc.disable()
    try:
        store = open_store(store_path)
        store.list_runs()
        conn = store.conn
        del store
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    finally:
        gc.enable()


def test_a_cache_hit_whose_source_is_gone_is_written_pending_not_success(
    store_path: Path,
) -> None:
    # between a cache look-up and the write of its hits, another process may delete the
    # run a source belongs to (or a retry supersede it): such a hit must not become a
    # SUCCESS pointing nowhere; it is written PENDING and its index returned, to run
    store = open_store(store_path)
    src_run = _new_run(store, "src")
    store.write_expansion(
        src_run, "a", supersede=[], pending=[(0, 1, "i0", "{}"), (1, 1, "i1", "{}")], hits=[],
        skipped=[],
    )  # fmt: skip
    store.record_outcomes(
        src_run, [("a", i, 1, "SUCCESS", str(i), f"h{i}", None, 1.0, 2.0, None) for i in (0, 1)]
    )
    ids = dict(store.conn.execute("SELECT array_index, id FROM instances").fetchall())
    with store.transaction():  # the second source stops being SUCCESS
        store.conn.execute("UPDATE instances SET state = 'FAILED' WHERE id = ?", (ids[1],))

    run = _new_run(store, "new")
    lost = store.write_expansion(
        run, "a", supersede=[],  pending=[], skipped=[], expected=3,
        hits=[(0, 1, "i0", ids[0], "h0", "{}"), (1, 1, "i1", ids[1], "h1", "{}"),
              (2, 1, "i9", ids[1] + 1000, "h9", "{}")],
    )  # fmt: skip
    assert lost == [1, 2]
    rows = {r["array_index"]: (r["state"], r["cached"]) for r in store.instances(run, task="a")}
    assert rows == {0: ("SUCCESS", True), 1: ("PENDING", False), 2: ("PENDING", False)}
    assert store.summary(run) == {"a": {"SUCCESS": 1, "PENDING": 2}}


def test_a_driver_holds_its_writes_longer_only_while_commits_are_slow(store_path: Path) -> None:
    # commits of a big run rewrite cache-index pages all over the store: the driver
    # holds its transaction 50 ms, or ten times the last commit if that is longer
    from reflow.local import _hold_for

    store = open_store(store_path)
    store.list_runs()
    assert _hold_for(store) == pytest.approx(0.05)
    store.hold()
    _new_run(store)
    store.release()
    assert 0 < store.last_commit_seconds < 1  # measured by release()
    assert _hold_for(store) == pytest.approx(max(0.05, 10 * store.last_commit_seconds))
    store.last_commit_seconds = 0.02
    assert _hold_for(store) == pytest.approx(0.2)


def test_a_failed_attempt_keeps_its_kind_and_resources_when_it_is_tried_again(
    any_store: str,
) -> None:
    # the failure kind goes in with the state, and a retry keeps the failed row whole
    # beside a new current attempt that asks for its own resources
    store = open_store(any_store)
    run = _new_run(store)
    store.write_expansion(
        run, "a", supersede=[], pending=[(0, 1, "i0", "{}"), (1, 1, "i1", "{}")], hits=[],
        skipped=[], resources={0: "{\"mem\": \"1G\"}"}, default_resources="{\"mem\": \"1G\"}",
    )  # fmt: skip
    store.record_outcomes(
        run,
        [
            ("a", 0, 1, "FAILED", None, None, "killed", 1.0, 2.0, "OOM"),
            ("a", 1, 1, "SUCCESS", "1", "h1", None, 1.0, 2.0, None),
        ],
    )
    why = "tried again after OOM (retry 1 of 2)"
    assert store.retry_instances(run, [("a", 0, 2, '{"mem": "2G"}', why)]) == 1
    assert store.retry_instances(run, [("a", 0, 2, '{"mem": "2G"}', why)]) == 0  # done already
    assert store.retry_instances(run, [("a", 1, 2, None, why)]) == 0  # it did not fail
    history = store.instance_attempts(run, "a", 0)
    assert [(h.attempt, h.current, h.state, h.failure_kind, h.resources) for h in history] == [
        (1, False, "FAILED", "OOM", {"mem": "1G"}),
        (2, True, "PENDING", None, {"mem": "2G"}),
    ]
    assert history[0].error_text == "killed" and history[0].finished == 2.0
    (now,) = store.instances(run, task="a", states=["PENDING"])
    assert (now["attempt"], now["failure_kind"], now["resources"]) == (2, None, {"mem": "2G"})
    assert store.current_rows(run, "a")[0].identity == "i0"  # the same instance, run again
    assert store.reasons(run, "a") == {(0, 2): why}
    assert [a["failure_kind"] for a in store.attempts(run, "a", 0)] == ["OOM", None]
