"""`reflow store copy SRC DST`: every run, idempotent, remapped cache sources, verified."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from reflow import RunState
from reflow.cli import main
from reflow.errors import ReflowError, ValidationError
from reflow.storecopy import copy_store, fingerprint
from reflow.stores import Store, open_store
from reflow.stores.sqlite import SqliteStore
from test_gc import FAIL, RAN, workflow
from test_store import _v1_store


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, list[str]]:
    """Runs of two workflows: cache hits across runs, a failed run retried, Path outputs."""
    store = open_store(tmp_path / "src.db")
    ids = [workflow("wa").run_local(tmp_path / "r0", store=store, n=3, tag="p").run_id]
    ids.append(workflow("wa").run_local(tmp_path / "r1", store=store, n=4, tag="p").run_id)
    FAIL["total"] = True
    run = workflow("wb").run_local(tmp_path / "r2", store=store, on_error="continue", n=1, tag="q")
    FAIL["total"] = False
    run.retry()
    ids.append(run.run_id)
    store.close()
    return tmp_path / "src.db", ids


def _read(store: Store, run_id: str) -> tuple[Any, ...]:
    rows = [
        (i["task_name"], i["array_index"], i["attempt"], i["state"], i["cached"], i["output"])
        for i in store.instances(run_id)
    ]
    return store.get_run(run_id)["status"], store.summary(run_id), rows


def test_copy_copies_every_run_and_reads_back_the_same(
    source: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src_path, ids = source
    dst_path = tmp_path / "sub" / "dst.db"
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:3] == [
        f"copied run {ids[0]}: 5 instances",
        f"copied run {ids[1]}: 6 instances",
        f"copied run {ids[2]}: 4 instances",  # total's two attempts
    ]
    assert out[3] == (
        f"copied 3 runs (15 instances) from {src_path} to {dst_path}; skipped 0 already there"
    )
    assert out[4] == "verified: 3 runs, 15 instances, the same counts and digests on both sides"
    src, dst = open_store(src_path), open_store(dst_path)
    for run_id in ids:
        assert _read(dst, run_id) == _read(src, run_id)
        assert dst.reasons(run_id, "total") == src.reasons(run_id, "total")
        assert dst.export_run(run_id).run == src.export_run(run_id).run
    # the second run's hits point at the first run's rows in the destination
    assert dst.history_rows(ids[1], "square")[0].source_run == ids[0]
    # and the copy serves the cache: nothing runs again
    RAN.clear()
    again = workflow("wa").run_local(tmp_path / "r9", store=dst, n=4, tag="p")
    assert again.state is RunState.SUCCESS and RAN == []
    src.close()
    dst.close()


@pytest.fixture
def copied(source: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str], Path]:
    """`source`, copied once into dst.db."""
    src_path, ids = source
    copy_store(str(src_path), str(tmp_path / "dst.db"), echo=lambda _: None)
    return src_path, ids, tmp_path / "dst.db"


def _count(path: Path) -> int:
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT COUNT(*) FROM instances").fetchone()[0])


def test_copying_again_adds_nothing(
    copied: tuple[Path, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src_path, ids, dst_path = copied
    before = _count(dst_path)
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"skipped run {ids[0]}: already in {dst_path} with the same content"
    assert out[-2].startswith("copied 0 runs (0 instances) from ")
    assert out[-2].endswith("; skipped 3 already there")
    assert _count(dst_path) == before


def test_a_run_with_the_same_id_and_other_content_is_refused_before_anything_is_written(
    copied: tuple[Path, list[str], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src_path, ids, dst_path = copied
    dst = open_store(dst_path)
    dst.forget_runs([ids[2]])  # one run not there any more: it would be copied
    dst.close()
    with contextlib.closing(sqlite3.connect(dst_path)) as db, db:
        db.execute(
            "UPDATE instances SET state = 'FAILED' WHERE run_id = ? AND task_name = 'total'",
            (ids[1],),
        )
    assert main(["store", "copy", str(src_path), str(dst_path)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: runs of {src_path} are in {dst_path} with other content: {ids[1]}; nothing "
        "was copied (forget them in the destination with 'runs --delete' to copy them again)\n"
    )
    assert [r["run_id"] for r in open_store(dst_path).list_runs()] == [ids[1], ids[0]]


def test_a_copy_killed_in_the_middle_is_completed_by_the_next(
    source: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src_path, ids = source
    dst_path = tmp_path / "dst.db"
    real = SqliteStore.import_run
    imported: list[str] = []

    def dies_on_the_third(self: SqliteStore, exported: Any) -> int:
        if len(imported) == 2:  # the process is killed while it writes the third run
            original = self._commit
            monkeypatch.setattr(self, "_commit", lambda: (_ for _ in ()).throw(KeyboardInterrupt))
            try:
                return real(self, exported)
            finally:
                monkeypatch.setattr(self, "_commit", original)
        imported.append(exported.run["run_id"])
        return real(self, exported)

    monkeypatch.setattr(SqliteStore, "import_run", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        copy_store(str(src_path), str(dst_path), echo=lambda _: None)
    monkeypatch.setattr(SqliteStore, "import_run", real)
    assert [r["run_id"] for r in open_store(dst_path).list_runs()] == [ids[1], ids[0]]
    lines: list[str] = []
    report = copy_store(str(src_path), str(dst_path), echo=lines.append)
    assert report.copied == [ids[2]] and report.skipped == ids[:2]
    assert lines[-1].startswith("verified: 3 runs, 15 instances")


def test_the_verification_catches_a_destination_that_differs(
    source: tuple[Path, list[str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src_path, ids = source
    real = SqliteStore.import_run

    def loses_a_row(self: SqliteStore, exported: Any) -> int:
        return real(
            self,
            exported._replace(instances=exported.instances[:-1], sources=exported.sources[:-1]),
        )

    monkeypatch.setattr(SqliteStore, "import_run", loses_a_row)
    with pytest.raises(
        ReflowError,
        match=r"verification failed: 3 runs differ in .*: "
        rf"{ids[0]} \(4 instances, 5 expected\)",
    ):
        copy_store(str(src_path), str(tmp_path / "dst.db"), echo=lambda _: None)


def test_an_old_schema_store_is_copied(tmp_path: Path) -> None:
    old = _v1_store(tmp_path / "old.db", 1)
    lines: list[str] = []
    report = copy_store(str(old), str(tmp_path / "new.db"), echo=lines.append)
    assert len(report.copied) == 2 and lines[-1].startswith("verified: 2 runs, 10 instances")
    dst = open_store(tmp_path / "new.db")
    newest = dst.list_runs()[0]["run_id"]
    assert dst.get_array_outputs(newest, "square") == [0, 1, 4]
    assert all(i["cached"] for i in dst.instances(newest))


def test_a_hit_is_pointed_at_the_same_identity_or_keeps_its_output(
    source: tuple[Path, list[str]], tmp_path: Path
) -> None:
    src_path, ids = source
    src = open_store(src_path)
    second = src.export_run(ids[1])  # hits on the first run's items and square[0..2]
    alone = open_store(tmp_path / "alone.db")
    assert alone.import_run(second) == 3  # square[0..2]: no source here: the hits own their outputs
    assert alone.get_array_outputs(ids[1], "square") == src.get_array_outputs(ids[1], "square")
    assert fingerprint(alone.export_run(ids[1])) == fingerprint(second)
    # a store with another run of the same identities and outputs: the hits point at its rows
    other = open_store(tmp_path / "other.db")
    workflow("wa").run_local(tmp_path / "r0", store=other, n=3, tag="p")
    assert other.import_run(second) == 0
    assert [i["cached"] for i in other.instances(ids[1])] == [False, True, True, True, False, False]
    src.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["same"], "are the same store: nothing to copy"),
        (["missing"], "there is no store at "),
        ([], "say what to do with the store: 'reflow store copy SRC DST'"),
    ],
)
def test_copy_refuses_bad_input_with_one_line(
    source: tuple[Path, list[str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    src_path, _ = source
    argv = {
        "same": ["store", "copy", str(src_path), str(src_path)],
        "missing": ["store", "copy", str(tmp_path / "none.db"), str(tmp_path / "d.db")],
    }.get(args[0] if args else "", ["store"])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "d.db").exists()


# ---------------------------------------------------------------------- the store methods


def test_outputs_naming_takes_its_fragments_literally(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.db")
    odd = workflow("wa").run_local(tmp_path / "a%b_c", store=store, n=1, tag="p")
    # a run dir that the LIKE pattern a%b_c would match, were it not escaped
    workflow("wa").run_local(tmp_path / "aXbYc", store=store, n=1, tag="q")
    found = store.outputs_naming([str(tmp_path / "a%b_c")], [])
    assert found == [f'{{"$path":"{tmp_path}/a%b_c/p-0.txt"}}']
    assert store.outputs_naming([str(tmp_path / "a%b_c")], [odd.run_id]) == []
    assert len(store.outputs_naming([str(tmp_path / "aXbYc")], [])) == 1
    store.close()


def test_forget_runs_inside_a_transaction_moves_outputs_and_ignores_unknown_ids(
    tmp_path: Path,
) -> None:
    store = open_store(tmp_path / "m.db")
    first = workflow("wa").run_local(tmp_path / "r", store=store, n=2, tag="p")
    second = workflow("wa").run_local(tmp_path / "r", store=store, n=2, tag="p")
    third = workflow("wa").run_local(tmp_path / "r", store=store, n=2, tag="p")
    refs = store.references_into([first.run_id])
    assert {r.hit[0] for r in refs} == {second.run_id, third.run_id} and len(refs) == 8
    with store.transaction():  # joins it: the foreign keys stay checked
        moved = store.forget_runs([first.run_id, "wa-nope"])
    assert [(m.source[1], m.into[0], m.repointed) for m in moved] == [
        ("items", second.run_id, 1),
        ("square", second.run_id, 1),
        ("square", second.run_id, 1),
        ("total", second.run_id, 1),
    ]
    assert third.outputs("square") == [tmp_path / "r" / "p-0.txt", tmp_path / "r" / "p-1.txt"]
    assert store.history_rows(third.run_id, "square")[0].source_run == second.run_id
    assert store.references_into([second.run_id])[0].hit[0] == third.run_id
    store.close()


def test_a_run_still_running_is_left_for_the_next_copy(
    source: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from reflow.owner import current_owner

    src_path, ids = source
    src = open_store(src_path)
    src.claim_run(ids[2], current_owner(), alive=lambda *_: False)  # this process drives it
    src.close()
    lines: list[str] = []
    report = copy_store(f"sqlite://{src_path}", str(tmp_path / "dst.db"), echo=lines.append)
    assert report.left == [ids[2]] and report.copied == ids[:2]
    assert f"left run {ids[2]}: still running; copy again when it has finished" in lines
    assert lines[-2].endswith("; skipped 0 already there; left 1 still running")
    assert lines[-1].startswith("verified: 2 runs, 11 instances")
    with pytest.raises(ValidationError, match="are the same store"):
        copy_store(f"sqlite://{src_path}", str(src_path))


@pytest.mark.postgres
def test_copy_to_postgresql_and_back_and_gc_there(
    source: tuple[Path, list[str]],
    tmp_path: Path,
    postgres_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SQLite -> PostgreSQL -> SQLite reads back the same; gc on PostgreSQL keeps what is reused."""
    src_path, ids = source
    assert main(["store", "copy", str(src_path), postgres_url]) == 0
    assert main(["store", "copy", str(src_path), postgres_url]) == 0  # again: nothing new
    out = capsys.readouterr().out.splitlines()
    assert out[-2].endswith("; skipped 3 already there")
    assert out[-1] == "verified: 3 runs, 15 instances, the same counts and digests on both sides"
    assert ":reflow@" not in "\n".join(out)  # the password is never printed
    back = tmp_path / "back.db"
    assert main(["store", "copy", postgres_url, str(back)]) == 0
    src, pg, dst = open_store(src_path), open_store(postgres_url), open_store(back)
    for run_id in ids:
        assert _read(pg, run_id) == _read(src, run_id) == _read(dst, run_id)
    RAN.clear()  # the PostgreSQL copy serves the cache
    again = workflow("wa").run_local(tmp_path / "r9", store=pg, n=4, tag="p")
    assert again.state is RunState.SUCCESS and RAN == []
    before = _read(pg, again.run_id)
    # forget both earlier runs of 'wa': the outputs the new run reuses move into it
    argv = ["gc", "--keep-last", "1", "--workflow", "wa", "--store-path", postgres_url]
    assert main(argv) == 0
    assert "forgot 2 runs" in capsys.readouterr().out
    after = _read(pg, again.run_id)
    # the same, but for the rows the outputs moved into, which now own them (not "cached")
    assert after[:2] == before[:2]
    assert [r[:4] + r[5:] for r in after[2]] == [r[:4] + r[5:] for r in before[2]]
    paths = [r[5] for r in after[2] if isinstance(r[5], Path)]
    assert paths and all(p.exists() for p in paths)  # files a kept output names stay
    with pytest.raises(ReflowError):
        pg.get_run(ids[0])
    RAN.clear()
    assert workflow("wa").run_local(tmp_path / "r10", store=pg, n=4, tag="p").state is (
        RunState.SUCCESS
    )
    assert RAN == []
    for s in (src, pg, dst):
        s.close()


@pytest.mark.postgres
def test_a_url_in_a_message_about_a_missing_store_has_no_password(
    tmp_path: Path, postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """An empty database as SRC (or to `runs`): the line shows *** for its password."""
    assert main(["store", "copy", postgres_url, str(tmp_path / "d.db")]) == 2
    err = capsys.readouterr().err
    assert "there is no store at postgresql://reflow:***@" in err and ":reflow@" not in err
    assert main(["runs", "--store-path", postgres_url]) == 0
    out = capsys.readouterr().out
    assert "there is no store at postgresql://reflow:***@" in out and ":reflow@" not in out


@pytest.mark.postgres
def test_forgetting_a_run_whose_output_a_driver_is_reusing_right_now_keeps_the_output(
    tmp_path: Path, postgres_url: str
) -> None:
    """A hit written (not yet committed) by another process while gc forgets its source.

    gc waits for it, then sees it and moves the output into it, instead of
    failing on the foreign key when it deletes the source.
    """
    import threading
    import time

    first = workflow("wa").run_local(tmp_path / "r", store=postgres_url, n=1, tag="p")
    total = first.output("total")
    driver, gc, watch = open_store(postgres_url), open_store(postgres_url), open_store(postgres_url)
    (row,) = [r for r in driver.instances(first.run_id) if r["task_name"] == "total"]
    (source, ohash) = driver.lookup_cache([row["identity"]])[row["identity"]]
    run_id = driver.create_run(
        "wa", run_dir=str(tmp_path / "r"), executor="local", params="{}", options="{}",
        tasks=[("total", 0, False, "{}")],
    )  # fmt: skip
    driver.hold()
    driver.write_expansion(  # the hit: its source locked, the row not committed yet
        run_id, "total", supersede=[], pending=[], skipped=[],
        hits=[(-1, 1, row["identity"], source, ohash, None)],
    )  # fmt: skip
    done: list[Any] = []

    def forget() -> None:
        try:
            done.append(gc.forget_runs([first.run_id]))
        except BaseException as exc:  # what the test reports
            done.append(exc)

    thread = threading.Thread(target=forget)
    thread.start()
    for _ in range(200):  # until gc waits for the driver's lock
        waiting = watch.conn.execute(  # type: ignore[attr-defined]
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()[0]
        if waiting or done:
            break
        time.sleep(0.05)
    driver.release()
    thread.join(60)
    assert not isinstance(done[0], BaseException), done[0]
    assert [(m.source[0], m.into[0]) for m in done[0]] == [(first.run_id, run_id)]
    assert driver.get_singleton_output(run_id, "total") == total
    for s in (driver, gc, watch):
        s.close()
