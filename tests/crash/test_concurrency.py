"""Eight processes on one store at once (SQLite and PostgreSQL), and SQLite's journal mode
chosen by filesystem type.

`benchmarks/concurrency_soak.py` runs the same workload for a full minute and
prints the figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from churn import verify_store

from reflow.stores import sqlite as sqlite_store
from reflow.stores.sqlite import SqliteStore

CHURN = Path(__file__).with_name("churn.py")


def churn(store: Path | str, root: Path, processes: int, seconds: float) -> list[dict[str, object]]:
    """Run `processes` churn processes on `store` at once; their summaries and stderr."""
    start = time.time() + 1.0  # all begin together, on a store none of them created yet
    options = {"--store": store, "--root": root, "--seconds": seconds, "--start-at": start}
    argv = [sys.executable, str(CHURN), *(str(x) for kv in options.items() for x in kv)]
    procs = [
        subprocess.Popen(
            [*argv, "--ident", str(k)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for k in range(processes)
    ]
    out = []
    for k, p in enumerate(procs):
        stdout, stderr = p.communicate(timeout=seconds + 120)
        last = stdout.strip().splitlines()[-1] if stdout.strip() else "{}"
        out.append({"ident": k, "code": p.returncode, "stderr": stderr, **json.loads(last)})
    return out


@pytest.mark.parametrize(
    ("journal", "seconds"),
    [("wal", 10), ("delete", 4)],  # WAL on local disks; the rollback journal, as on NFS
)
def test_eight_processes_on_one_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, journal: str, seconds: float
) -> None:
    if journal != "wal":
        monkeypatch.setenv("REFLOW_SQLITE_JOURNAL", journal)
    store = tmp_path / "shared.db"
    results = churn(store, tmp_path / "runs", processes=8, seconds=seconds)
    for r in results:
        assert r["code"] == 0, r
        assert "locked" not in str(r["stderr"]), r["stderr"]
        assert r["stderr"] == "", r["stderr"]  # no traceback, no wrong run
        assert r["errors"] == 0 and r["wrong"] == 0, r
    assert all(int(str(r["runs"])) > 0 for r in results), results
    found = verify_store(store)
    assert found["problems"] == [], found
    assert found["runs"] == sum(int(str(r["runs"])) for r in results)
    assert found["cached"] > 0, found  # the processes did reuse each other's outputs
    assert found["journal_mode"] == journal, found


@pytest.mark.postgres
def test_sixteen_processes_on_one_postgresql_store(tmp_path: Path, postgres_url: str) -> None:
    """The same workload on PostgreSQL, from 16 processes: no error, no lost update."""
    results = churn(postgres_url, tmp_path / "runs", processes=16, seconds=8)
    for r in results:
        assert r["code"] == 0, r
        assert r["stderr"] == "", r["stderr"]  # no traceback, no wrong run
        assert r["errors"] == 0 and r["wrong"] == 0, r
    assert all(int(str(r["runs"])) > 0 for r in results), results
    found = verify_store(postgres_url)
    assert found["problems"] == [], found
    assert found["runs"] == sum(int(str(r["runs"])) for r in results)
    assert found["cached"] > 0, found


# ---------------------------------------------------------------------- journal mode


def test_a_store_on_a_local_disk_uses_wal(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "m.db") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert st.conn.execute("PRAGMA busy_timeout").fetchone()[0] == 60_000


def _fake_mounts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lines: list[str]) -> None:
    table = tmp_path / "mounts"
    table.write_text("".join(line + "\n" for line in lines))
    monkeypatch.setattr(sqlite_store, "MOUNT_TABLE", str(table))


@pytest.mark.parametrize("fstype", ["nfs", "nfs4", "lustre", "gpfs"])
def test_a_store_on_a_network_filesystem_uses_the_rollback_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fstype: str
) -> None:
    shared = tmp_path / "shared"
    _fake_mounts(
        tmp_path,
        monkeypatch,
        [
            "/dev/vda / ext4 rw,relatime 0 0",
            f"server:/export {shared} {fstype} rw,relatime 0 0",
        ],
    )
    assert sqlite_store._filesystem_type(shared / "team" / "m.db") == fstype
    assert sqlite_store._filesystem_type(tmp_path / "elsewhere.db") == "ext4"
    with SqliteStore(shared / "team" / "m.db") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert st.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        run_id = st.create_run("wf", run_dir="d", executor="x", params="{}", options="{}", tasks=[])
        assert st.get_run(run_id)["status"] == "RUNNING"
    assert not (shared / "team" / "m.db-wal").exists()
    with SqliteStore(tmp_path / "local.db") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_the_longest_and_latest_mount_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_mounts(
        tmp_path,
        monkeypatch,
        [
            "/dev/vda / ext4 rw 0 0",
            "server:/home /home nfs4 rw 0 0",
            "/dev/vdb /home/scratch xfs rw 0 0",  # a local disk inside the NFS home
            "systemd-1 /data autofs rw 0 0",  # an automount point ...
            "server:/data /data nfs rw 0 0",  # ... and the NFS mounted on it, listed later
            "server:/t /mnt/my\\040team lustre rw 0 0",  # a space, escaped as octal
            "/dev/vdc /homework ext4 rw 0 0",  # a prefix of the text, not of the path
        ],
    )
    fs = sqlite_store._filesystem_type
    assert fs(Path("/home/alice/m.db")) == "nfs4"
    assert fs(Path("/home/scratch/m.db")) == "xfs"
    assert fs(Path("/data/team/m.db")) == "nfs"
    assert fs(Path("/mnt/my team/m.db")) == "lustre"
    assert fs(Path("/homework/m.db")) == "ext4"
    assert fs(Path("/srv/m.db")) == "ext4"


def test_an_unreadable_mount_table_means_a_local_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_store, "MOUNT_TABLE", str(tmp_path / "missing"))
    assert sqlite_store._filesystem_type(tmp_path / "m.db") == ""
    with SqliteStore(tmp_path / "m.db") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reflow_sqlite_journal_overrides_the_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_mounts(tmp_path, monkeypatch, [f"server:/x {tmp_path} nfs rw 0 0"])
    monkeypatch.setenv("REFLOW_SQLITE_JOURNAL", "wal")
    with SqliteStore(tmp_path / "m.db") as st:
        assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
