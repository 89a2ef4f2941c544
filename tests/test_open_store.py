"""`reflow.stores.open_store`: the one place that picks a store backend."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import pytest

from reflow import Result, Workflow
from reflow.cli import main
from reflow.errors import StoreError
from reflow.stores import normal_location, open_store, store_exists
from reflow.stores.sqlite import SqliteStore


def _wf() -> Workflow:
    wf = Workflow("opened")

    @wf.job()
    def make() -> int:
        return 41

    @wf.job()
    def more(x: Annotated[int, Result(step="make")]) -> int:
        return x + 1

    return wf


def test_a_path_opens_the_sqlite_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "m.db")
    assert isinstance(store, SqliteStore)
    assert store.location == str(tmp_path / "m.db")
    assert store.list_runs() == []


def test_a_sqlite_url_opens_the_same_file(tmp_path: Path) -> None:
    run = _wf().run_local(tmp_path / "run", store=tmp_path / "m.db")
    again = open_store(f"sqlite://{tmp_path / 'm.db'}")
    assert [r["run_id"] for r in again.list_runs()] == [run.run_id]
    assert store_exists(f"sqlite://{tmp_path / 'm.db'}")
    assert not store_exists(f"sqlite://{tmp_path / 'other.db'}")


def test_a_store_object_is_used_as_it_is(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "m.db")
    assert open_store(store) is store
    run = _wf().run_local(tmp_path / "run", store=store)
    assert run.store is store and run.output("more") == 42


def test_run_local_and_the_run_handle_take_a_path_or_url(tmp_path: Path) -> None:
    run = _wf().run_local(tmp_path / "run", store=f"sqlite://{tmp_path / 'm.db'}")
    assert run.output("more") == 42
    assert run.store.location == str(tmp_path / "m.db")


def test_a_postgresql_url_opens_the_postgresql_store_which_hides_the_password() -> None:
    pytest.importorskip("psycopg")
    from reflow.stores.postgres import PostgresStore

    store = open_store("postgresql://alice:s3cret@127.0.0.1:1/reflow")  # connects on first use
    assert isinstance(store, PostgresStore)
    assert store.location == "postgresql://alice@127.0.0.1:1/reflow"
    assert "s3cret" not in repr(store)
    with pytest.raises(StoreError) as caught:  # nothing listens on port 1
        store.list_runs()
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith(
        "cannot reach the PostgreSQL server of the store postgresql://alice:***@127.0.0.1:1/"
    )
    assert "s3cret" not in text


def test_a_postgresql_url_without_psycopg_says_which_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg fails
    with pytest.raises(StoreError, match=r"pip install 'reflow\[postgres\]'$"):
        open_store("postgresql://alice:s3cret@db.example/reflow")
    assert main(["runs", "--store-path", "postgres://alice:s3cret@db.example/reflow"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: a PostgreSQL store needs the psycopg driver: pip install 'reflow[postgres]'\n"
    )


def test_an_unknown_kind_of_url_is_one_line_naming_it() -> None:
    with pytest.raises(StoreError, match=r"'redis://' is not a kind of store reflow knows"):
        open_store("redis://localhost/0")


def test_the_cli_says_so_in_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("psycopg")
    code = main(["runs", "--store-path", "postgresql://bob:hunter2@127.0.0.1:1/team"])
    out, err = capsys.readouterr()
    assert code == 1
    assert err.count("\n") == 1 and err.startswith(
        "error: cannot reach the PostgreSQL server of the store postgresql://bob:***@127.0.0.1:1/"
    )
    assert "hunter2" not in out + err and "Traceback" not in err


def test_a_read_only_store_is_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    with pytest.raises(StoreError, match="there is no store at"):
        open_store(missing, read_only=True).list_runs()
    assert not missing.exists()
    assert not store_exists(missing)


def test_locations_are_shown_with_home_expanded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert normal_location("~/m.db") == "/home/someone/m.db"
    assert normal_location("postgresql://h/db") == "postgresql://h/db"


def test_a_drivers_message_that_quotes_the_url_never_shows_the_password() -> None:
    pytest.importorskip("psycopg")
    from reflow.stores.postgres import PostgresStore

    store = PostgresStore("postgresql://al:s3cr3t@db.example/x")
    quoted = RuntimeError('missing "=" after "postgresql://al:s3cr3t@db.example/x" in conninfo')
    text = store._describe_error(quoted)
    assert "s3cr3t" not in text
    assert text.startswith("cannot use the store postgresql://al:***@db.example/x: missing")


def test_a_password_given_as_a_url_parameter_is_hidden_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libpq takes `?password=` as well as `user:password@`: neither is shown nor in `location`."""
    pytest.importorskip("psycopg")
    monkeypatch.setenv("PGPASSWORD", "")  # so that the test's own value is restored after
    monkeypatch.delenv("PGPASSWORD")
    store = open_store("postgresql://carol@127.0.0.1:1/team?sslmode=disable&password=pa55wd")
    assert store.location == "postgresql://carol@127.0.0.1:1/team?sslmode=disable"
    assert "pa55wd" not in repr(store)
    assert os.environ["PGPASSWORD"] == "pa55wd"  # what the jobs it starts reopen it with
    with pytest.raises(StoreError) as caught:  # nothing listens on port 1
        store.list_runs()
    assert "pa55wd" not in str(caught.value) and "password=***" in str(caught.value)
    # and reopened by its location, it connects with the password (found in this process)
    again = open_store(store.location)
    assert "pa55wd" in again.dsn  # type: ignore[attr-defined]
