"""Hostile and broken input: one clear line, nothing written, nothing lost (issue 5).

Stores that are corrupt, truncated, empty, read-only, locked by a dead process;
a disk that fills while a result is written; names that would escape the run
directory; parameter values full of shell metacharacters.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated

import pytest

from mounts import read_only
from reflow import Result, RunState, Workflow
from reflow.cli import main
from reflow.errors import ValidationError
from reflow.stores.sqlite import SqliteStore

HOSTILE = [
    '"; rm -rf ~; echo "',
    "$(touch {canary})",
    "`touch {canary}`",
    "it's \"quoted\" \\ and 'single'",
    "line one\nline two\r\nthree\ttab",
    "naïve café – 日本語 – 🚀",
    "--run-dir=/etc",
    "",
]


def _echo_pipeline(path: Path) -> Path:
    """A pipeline file whose tasks return their parameter unchanged."""
    path.write_text(
        textwrap.dedent(
            """
            from typing import Annotated
            from reflow import Result, Workflow

            wf = Workflow("echo")

            @wf.job()
            def take(value: str) -> str:
                return value

            @wf.array_job()
            def each(v: Annotated[str, Result(step="split")]) -> str:
                return v

            @wf.job()
            def split(values: list[str]) -> list[str]:
                return values

            if __name__ == "__main__":
                raise SystemExit(wf.cli())
            """
        )
    )
    return path


def _run_cli(*args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _one_line(err: str, *words: str) -> None:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], err


# ---------------------------------------------------------------------- broken stores


def _good_store(path: Path, tmp_path: Path) -> None:
    wf = Workflow("good")

    @wf.job()
    def one() -> int:
        return 1

    wf.run_local(tmp_path / "r", store=path).store.close()  # nothing open when we damage it


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "empty"])
def test_a_damaged_store_is_refused_in_one_line_and_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = tmp_path / "m.db"
    _good_store(path, tmp_path)
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    data = path.read_bytes()
    if damage == "corrupt":
        data = data[:100] + b"\xde\xad\xbe\xef" * 2000 + data[8100:]
    elif damage == "truncated":
        data = data[: len(data) // 3]
    else:
        data = b""
    path.write_bytes(data)
    old = time.time() - 3600
    os.utime(path, (old, old))  # not a file another process is creating right now
    capsys.readouterr()
    code = main(["runs", "--store-path", str(path)])
    _, err = capsys.readouterr()
    assert code != 0
    _one_line(err, str(path))
    assert path.read_bytes() == data  # never repaired or overwritten


def test_a_store_in_a_read_only_directory_fails_a_run_in_one_line(tmp_path: Path) -> None:
    pipeline = _echo_pipeline(tmp_path / "echo.py")
    folder = tmp_path / "ro"
    folder.mkdir()
    store = folder / "m.db"
    done = _run_cli(
        pipeline,
        "run",
        "--run-dir",
        tmp_path / "r",
        "--value",
        "x",
        "--values",
        "a",
        "--store-path",
        store,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    before = store.read_bytes()
    with read_only(folder):
        status = _run_cli(pipeline, "runs", "--store-path", store, cwd=tmp_path)
        assert status.returncode == 0, status.stderr  # reading works
        again = _run_cli(
            pipeline,
            "run",
            "--run-dir",
            tmp_path / "r",
            "--value",
            "y",
            "--values",
            "b",
            "--store-path",
            store,
            cwd=tmp_path,
        )
        assert again.returncode != 0
        _one_line(again.stderr, str(store))
    assert store.read_bytes() == before


def test_a_store_locked_by_a_process_that_died_is_usable(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    _good_store(path, tmp_path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import os, signal, sqlite3
            db = sqlite3.connect({str(path)!r}, isolation_level=None)
            db.execute("BEGIN EXCLUSIVE")
            db.execute("INSERT INTO meta (key, value) VALUES ('half', 'written')")
            os.kill(os.getpid(), signal.SIGKILL)
        """),
        ],
    )
    holder.wait(30)
    assert holder.returncode == -9
    store = SqliteStore(path)
    assert [r["graph_name"] for r in store.list_runs()] == ["good"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'half'").fetchone() is None
    db.close()


# ---------------------------------------------------------------------- a full disk


def test_a_result_that_does_not_fit_on_disk_fails_its_instance_only(tmp_path: Path) -> None:
    """RLIMIT_FSIZE stands in for a full disk while a worker writes its result file."""
    pipeline = tmp_path / "big.py"
    pipeline.write_text(
        textwrap.dedent(
            """
            from typing import Annotated
            from reflow import Result, Workflow

            wf = Workflow("big")

            @wf.job()
            def sizes() -> list[int]:
                return [10, 4_000_000, 20]

            @wf.array_job()
            def blob(n: Annotated[int, Result(step="sizes")]) -> str:
                return "x" * n
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import resource, sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))
        import big
        run = big.wf.submit({str(tmp_path / "r")!r}, executor="local",
                            store={str(tmp_path / "m.db")!r})
        deadline = time.time() + 90
        while run.state.value == "RUNNING" and time.time() < deadline:
            time.sleep(0.2)
        print(run.state.value)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=150, cwd=tmp_path
    )
    assert done.stdout.strip() == "FAILED", done.stdout + done.stderr
    store = SqliteStore(tmp_path / "m.db")
    (run,) = store.list_runs()
    failed = store.instances(run["run_id"], states=("FAILED",))
    assert [(f["task_name"], f["array_index"]) for f in failed] == [("blob", 1)]
    assert "File too large" in (failed[0]["error_text"] or "").splitlines()[-1]
    ok = store.instances(run["run_id"], task="blob", states=("SUCCESS",))
    assert sorted(i["array_index"] for i in ok) == [0, 2]
    # no half-written result file is left to be ingested
    assert not list((tmp_path / "r" / "results").rglob("*.json"))


# ---------------------------------------------------------------------- escaping names


@pytest.mark.parametrize("name", ["../up", "a/b", "/abs", ".", "x y", ""])
def test_names_that_would_escape_the_run_directory_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="is not valid"):
        Workflow(name)
    wf = Workflow("ok")
    inner = Workflow("inner")

    @inner.job()
    def t() -> int:
        return 1

    with pytest.raises(ValidationError, match="prefix"):
        wf.include(inner, prefix=name or "a b")


def test_a_run_id_that_looks_like_a_path_is_just_unknown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.db"
    _good_store(path, tmp_path)
    capsys.readouterr()
    code = main(["status", "../../etc/passwd", "--store-path", str(path)])
    _, err = capsys.readouterr()
    assert code == 2
    _one_line(err, "no run '../../etc/passwd'")


# ---------------------------------------------------------------------- hostile values


def _hostile(canary: Path) -> list[str]:
    return [v.format(canary=canary) for v in HOSTILE] + ["é" * 500_000 + "; rm -rf /"]


def test_hostile_values_reach_the_task_unchanged_and_run_nothing_locally(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    values = _hostile(canary)
    wf = Workflow("echo")

    @wf.job()
    def take(value: str) -> str:
        return value

    @wf.job()
    def split(values: list[str]) -> list[str]:
        return values

    @wf.array_job()
    def each(v: Annotated[str, Result(step="split")]) -> str:
        return v

    run = wf.run_local(tmp_path / "r", store=tmp_path / "m.db", value=values[0], values=values)
    assert run.state is RunState.SUCCESS
    assert run.outputs("each") == values
    assert run.output("take") == values[0]
    assert not canary.exists()


def test_hostile_values_survive_the_command_line_and_a_scheduler_job(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    # the megabyte value is checked in-process above; a list item cannot start with '-' on a
    # command line (argparse reads it as an option), so such values go with --value=...
    values = [v for v in _hostile(canary)[:-1] if not v.startswith("-")]
    pipeline = _echo_pipeline(tmp_path / "echo.py")
    store = tmp_path / "m.db"
    done = _run_cli(
        pipeline,
        "submit",
        "--executor",
        "local",
        "--run-dir",
        tmp_path / "r",
        "--store-path",
        store,
        f"--value={values[0]}",
        "--values",
        *values,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    st = SqliteStore(store)
    (info,) = st.list_runs()
    deadline = time.monotonic() + 60
    while st.get_run(info["run_id"])["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert st.get_run(info["run_id"])["status"] == "SUCCESS"
    assert st.get_array_outputs(info["run_id"], "each") == values
    assert st.get_singleton_output(info["run_id"], "take") == values[0]
    assert not canary.exists()
    # and a rendered job script never holds a parameter value: they travel in wave files
    dry = _run_cli(
        pipeline,
        "submit",
        "--executor",
        "dry-run",
        "--force",
        "--run-dir",
        tmp_path / "d",
        "--store-path",
        store,
        f"--value={values[0]}",
        "--values",
        *values,
        cwd=tmp_path,
    )
    assert dry.returncode == 0, dry.stderr
    assert "#SBATCH" in dry.stdout
    assert "rm -rf" not in dry.stdout and "touch" not in dry.stdout


def test_a_tampered_store_cannot_choose_what_the_jobs_run(tmp_path: Path) -> None:
    """Whoever can write a shared store must not be able to run code as its users."""
    evil_dir = tmp_path / "evil"
    evil_dir.mkdir()
    marker = tmp_path / "evil-ran"
    (evil_dir / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    (evil_dir / "python").write_text(f"#!/bin/sh\ntouch {marker}\n")
    (evil_dir / "python").chmod(0o755)
    pipeline = tmp_path / "two.py"
    pipeline.write_text(
        textwrap.dedent(
            """
            import time
            from typing import Annotated
            from reflow import Result, Workflow

            wf = Workflow("two")

            @wf.job()
            def first() -> list[int]:
                time.sleep(1.0)
                return [1, 2]

            @wf.array_job()  # a fan-out: submitted by a later dispatcher pass
            def second(x: Annotated[int, Result(step="first")]) -> int:
                return x + 1
            """
        )
    )
    script = textwrap.dedent(
        f"""
        import json, sqlite3, sys, time
        sys.path.insert(0, {str(tmp_path)!r})
        import two
        run = two.wf.submit({str(tmp_path / "r")!r}, executor="local",
                            store={str(tmp_path / "m.db")!r})
        # someone with write access to the store rewrites what the next passes read
        db = sqlite3.connect({str(tmp_path / "m.db")!r})
        (text,) = db.execute("SELECT options FROM runs").fetchone()
        options = json.loads(text)
        options.update(origin={{"script": {str(evil_dir / "evil.py")!r}}},
                       python={str(evil_dir / "python")!r}, cwd={str(evil_dir)!r},
                       executor={{"mode": "local", "commands": {{"flux": "/bin/false"}}}})
        db.execute("UPDATE runs SET options = ?", (json.dumps(options),))
        db.commit()
        deadline = time.time() + 60
        while run.state.value == "RUNNING" and time.time() < deadline:
            time.sleep(0.2)
        print(run.state.value, run.outputs("second"))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.stdout.strip() == "SUCCESS [2, 3]", done.stdout + done.stderr
    assert not marker.exists()
