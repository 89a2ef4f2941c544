"""What only the PostgreSQL store has: its server's errors, its schema's creation, the CLI on it.

(The store suite and the engine's caching and retry tests run on both backends:
test_store.py, test_caching.py, test_retry.py.)
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest

from backends import execute, open_at_once, runs_in
from reflow import Result, Workflow
from reflow.cli import main
from reflow.errors import StoreError
from reflow.stores import open_store
from reflow.stores._sql import SCHEMA_VERSION

pytestmark = pytest.mark.postgres


def _wf() -> Workflow:
    wf = Workflow("pg")

    @wf.job()
    def items(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def double(x: Annotated[int, Result(step="items")]) -> int:
        return 2 * x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="double")]) -> int:
        return sum(xs)

    return wf


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _with(url: str, **parts: str) -> str:
    """`url` with its password or database name replaced."""
    if "password" in parts:
        url = re.sub(r"^(postgresql://[^:/@]+):[^@]*@", rf"\1:{parts['password']}@", url)
    if "database" in parts:
        url = re.sub(r"/[^/?]*(\?|$)", rf"/{parts['database']}\1", url, count=1)
    return url


# ---------------------------------------------------------------------- a bad server


def test_a_wrong_password_is_one_line_without_the_password(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = _with(postgres_url, password="not-the-password")
    code, out, err = _cli(capsys, "runs", "--store-path", wrong)
    assert code == 1
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the server refused the password" in err
    assert "check the password in the URL, PGPASSWORD or ~/.pgpass" in err
    assert "not-the-password" not in out + err and ":***@" in err


def test_a_database_that_does_not_exist_is_one_line_saying_so(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = _with(postgres_url, database="no_such_db")
    code, _, err = _cli(capsys, "runs", "--store-path", missing)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "the database does not exist" in err and "createdb" in err


def test_an_unreachable_server_is_one_line_saying_so(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    gone = re.sub(r"@[^/]+/", "@127.0.0.1:1/", postgres_url)
    code, _, err = _cli(capsys, "runs", "--store-path", gone)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "cannot reach the PostgreSQL server" in err and "check the host and port" in err


def test_a_newer_schema_is_refused_in_one_line_and_left_untouched(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _wf().run_local(tmp_path / "r", store=postgres_url, n=2)
    execute(
        postgres_url,
        "UPDATE meta SET value = ? WHERE key = 'schema_version'",
        (str(SCHEMA_VERSION + 1),),
    )
    code, _, err = _cli(capsys, "runs", "--store-path", postgres_url)
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"schema version {SCHEMA_VERSION + 1}, newer than this reflow understands" in err
    with pytest.raises(StoreError, match="upgrade reflow"):
        _wf().run_local(tmp_path / "r", store=postgres_url, n=2)
    assert runs_in(postgres_url) == 1
    assert execute(postgres_url, "SELECT value FROM meta") == [(str(SCHEMA_VERSION + 1),)]


# ---------------------------------------------------------------------- the schema


def test_the_schema_is_created_on_first_use_in_the_urls_schema(postgres_url: str) -> None:
    open_store(postgres_url).list_runs()
    tables = {
        r[0]
        for r in execute(
            postgres_url,
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema()",
        )
    }
    assert tables == {"meta", "runs", "tasks", "instances", "reasons"}
    assert execute(postgres_url, "SELECT value FROM meta") == [(str(SCHEMA_VERSION),)]


def test_an_older_version_is_upgraded_in_place_keeping_its_runs(
    postgres_url: str, tmp_path: Path
) -> None:
    # PostgreSQL stores begin at version 4: the upgrades after it are the shared
    # _MIGRATIONS, translated; a store of version 4 (made here by taking schema 5's
    # columns away) is brought up to date
    run = _wf().run_local(tmp_path / "r", store=postgres_url, n=2)
    execute(postgres_url, "ALTER TABLE instances DROP COLUMN failure_kind")
    execute(postgres_url, "ALTER TABLE instances DROP COLUMN resources")
    execute(postgres_url, "ALTER TABLE runs DROP COLUMN dispatch_error")
    execute(postgres_url, "UPDATE meta SET value = '4' WHERE key = 'schema_version'")
    store = open_store(postgres_url)
    assert store.get_run(run.run_id)["status"] == "SUCCESS"
    assert execute(postgres_url, "SELECT value FROM meta") == [(str(SCHEMA_VERSION),)]
    assert {i["failure_kind"] for i in store.instances(run.run_id)} == {None}
    assert store.get_run(run.run_id)["dispatch_error"] is None
    assert ("failure_kind",) in execute(
        postgres_url,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'instances'",
    )


def test_a_database_holding_other_tables_is_refused_and_left_untouched(
    postgres_url: str,
) -> None:
    execute(postgres_url, "CREATE TABLE mine (x INTEGER)")
    with pytest.raises(StoreError, match="holds tables but no reflow store") as caught:
        open_store(postgres_url).list_runs()
    assert "left untouched" in str(caught.value)
    tables = execute(
        postgres_url,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    assert tables == [("mine",)]


def test_a_read_only_open_of_an_empty_database_creates_nothing(postgres_url: str) -> None:
    with pytest.raises(StoreError, match="there is no reflow store in"):
        open_store(postgres_url, read_only=True).list_runs()
    assert execute(
        postgres_url,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    ) == [(0,)]


def test_many_processes_opening_an_empty_database_at_once_create_the_schema_once(
    postgres_url: str,
) -> None:
    seen = open_at_once(postgres_url, 6)
    assert seen == [(0, "0", "")] * 6
    assert execute(postgres_url, "SELECT count(*) FROM meta") == [(1,)]


# ---------------------------------------------------------------------- where the store is


def test_the_store_path_may_be_a_url_in_the_environment_or_the_config(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFLOW_STORE_PATH", postgres_url)
    run = _wf().run_local(tmp_path / "r", n=3)
    assert run.output("total") == 6
    assert runs_in(postgres_url) == 1
    monkeypatch.delenv("REFLOW_STORE_PATH")
    config = Path(tmp_path / "home" / ".config" / "reflow" / "config.toml")
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'[defaults]\nstore_path = "{postgres_url}"\n')
    run = _wf().run_local(tmp_path / "r", n=3)
    assert run.output("total") == 6 and run.store.location.startswith("postgresql://")
    assert runs_in(postgres_url) == 2


def test_the_password_is_never_shown_but_the_store_reopens_by_its_location(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _wf().run_local(tmp_path / "r", store=postgres_url, n=2)
    location = run.store.location
    assert location.startswith("postgresql://reflow@") and ":reflow@" not in location
    # a dry run reopens the store by its location, to only read it
    again = open_store(location, peek=True)
    assert [r["run_id"] for r in again.list_runs()] == [run.run_id]
    code, out, err = _cli(capsys, "runs", "--store-path", postgres_url)
    assert code == 0 and run.run_id in out
    assert ":reflow@" not in out + err


def test_no_command_shows_the_password_of_the_store_url(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before any run: the database has no store yet, and the commands say so
    code, out, err = _cli(capsys, "runs", "--store-path", postgres_url)
    assert code == 0 and "there is no store at postgresql://reflow:***@" in out
    code, out, err = _cli(capsys, "why", "some-run", "--store-path", postgres_url)
    assert code == 2 and "no run 'some-run': there is no store at" in err
    _wf().run_local(tmp_path / "r", store=postgres_url, n=2)
    code, out, err = _cli(capsys, "doctor", "--store-path", postgres_url)
    assert code == 0 and out.startswith("store postgresql://reflow:***@")
    seen = out + err
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REFLOW_STORE_PATH", postgres_url)
        code, out, err = _cli(capsys, "config")
    assert code == 0 and '"store_path": "postgresql://reflow:***@' in out
    assert ":reflow@" not in seen + out + err


def test_a_job_reopens_the_store_by_its_location_which_has_no_password(
    postgres_url: str, tmp_path: Path
) -> None:
    # a chained dispatcher or a task submitted ahead of its inputs gets the location on
    # its command line: no password there; it comes through the environment instead
    run = _wf().run_local(tmp_path / "r", store=postgres_url, n=2)
    location = run.store.location
    assert location.startswith("postgresql://reflow@")  # no password, not even ***
    code = (
        "import sys\n"
        "from reflow.stores import open_store\n"
        "print(len(open_store(sys.argv[1]).list_runs()))\n"
    )
    job = subprocess.run(
        [sys.executable, "-c", code, location], capture_output=True, text=True, timeout=60
    )
    assert (job.returncode, job.stdout.strip(), job.stderr) == (0, "1", "")


def test_the_commands_read_a_run_on_postgresql(
    postgres_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _wf().run_local(tmp_path / "r", store=postgres_url, n=3)
    run = _wf().run_local(tmp_path / "r", store=postgres_url, n=4)
    rid = run.run_id
    code, out, err = _cli(capsys, "status", rid, "--store-path", postgres_url)
    assert code == 0, err
    assert re.search(r"double\s+4\s+4 SUCCESS \(3 cached\)", out)
    code, out, err = _cli(capsys, "why", rid, "double", "--store-path", postgres_url)
    assert code == 0, err
    assert f"cached from run {first.run_id}" in out
    code, out, err = _cli(capsys, "logs", rid, "total", "--store-path", postgres_url)
    assert code == 0, err
    report = tmp_path / "report.html"
    code, out, err = _cli(capsys, "report", rid, "--store-path", postgres_url, "-o", str(report))
    assert code == 0, err
    assert rid in report.read_text()
    code, out, err = _cli(capsys, "doctor", "--store-path", postgres_url)
    assert code == 0, out + err
    assert "ok: 2 runs, " in out and "ok: every SUCCESS instance has its output" in out
    assert "SQLite" not in out


def test_a_dry_run_on_an_empty_database_creates_nothing_and_predicts_the_run(
    postgres_url: str, tmp_path: Path
) -> None:
    predicted = _wf().dry_run(tmp_path / "r", store=postgres_url, n=3)["tasks"]
    # items runs; what double and total do waits for its output
    assert {t: (d["run"], d["cached"], d["unknown"]) for t, d in predicted.items()} == {
        "items": (1, 0, False), "double": (0, 0, True), "total": (0, 0, True),
    }  # fmt: skip
    tables = execute(
        postgres_url,
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    assert tables == [(0,)]  # the dry run created no store
    _wf().run_local(tmp_path / "r", store=postgres_url, n=3)
    again = _wf().dry_run(tmp_path / "r", store=postgres_url, n=3)["tasks"]
    assert {t: (d["run"], d["cached"]) for t, d in again.items()} == {
        "items": (0, 1), "double": (0, 3), "total": (0, 1),
    }  # fmt: skip


def test_doctor_and_config_name_the_store_without_its_password(
    postgres_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(postgres_url).list_runs()  # the first use creates the store
    code, out, err = _cli(capsys, "doctor", "--store-path", postgres_url)
    assert code == 0, err
    assert out.startswith("store postgresql://reflow:***@") and ":reflow@" not in out + err
    monkeypatch.setenv("REFLOW_STORE_PATH", postgres_url)
    code, out, err = _cli(capsys, "config")
    assert code == 0 and '"store_path": "postgresql://reflow:***@' in out
    assert ":reflow@" not in out + err
