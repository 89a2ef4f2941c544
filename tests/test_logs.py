"""What a user reads about a run: `logs`, `dag --format`, elapsed times and `status --watch`.

A local run captures each instance's stdout and stderr (subprocesses' too) into
the layout cluster jobs write; `logs` prints one attempt's, old runs included.
`status --watch` is driven in a real pty and through a pipe, against a run
that moves while it is watched.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Annotated, NamedTuple, TextIO

import pytest

from reflow import Result, Workflow
from reflow.cli import main
from reflow.render import _dot_string, _mermaid_text, render_dag
from reflow.results import log_paths, read_log
from reflow.stores.sqlite import SqliteStore

SRC = Path(__file__).resolve().parents[1] / "src"

wf = Workflow("logs")


@wf.job()
def split(n: int) -> list[int]:
    print("split into", n)
    return list(range(n))


@wf.array_job()
def work(item: Annotated[int, Result(step="split")], flag: str = "") -> int:
    if item == 1:
        print("flag" if flag and Path(flag).exists() else "no flag")
        # output of a subprocess the task starts is caught too (file descriptors 1 and 2)
        subprocess.run(["sh", "-c", "echo from a subprocess; echo to stderr >&2"], check=True)
        if flag and not Path(flag).exists():
            raise RuntimeError("the flag file is missing")
    return item


@wf.job(after=["split"])
def total(items: Annotated[list[int], Result(step="work")]) -> int:
    return sum(items)


class Done(NamedTuple):
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: object, console: bool = False) -> Done:
    capsys.readouterr()
    code = (main if console else wf.cli)([str(a) for a in args])
    out, err = capsys.readouterr()
    return Done(code, out, err)


def mistake(done: Done, *words: str) -> None:
    """Exit 2 and one line on stderr naming what is wrong."""
    assert done.code == 2, done
    lines = done.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.err
    for word in words:
        assert word in lines[0], (word, lines[0])


def _last_run(store: Path) -> str:
    return str(SqliteStore(store).list_runs()[0]["run_id"])


def _failed_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], n: int
) -> tuple[Path, Path, str]:
    """A run whose work[1] failed (its flag file is missing): (store, flag, run id)."""
    store, flag = tmp_path / "s.db", tmp_path / "flag"
    opts = ("--run-dir", tmp_path / "run", "--store-path", store, "--n", n, "--flag", flag)
    done = cli(capsys, "run", *opts)
    assert done.code == 1, done
    return store, flag, _last_run(store)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_local_run_keeps_each_instances_output(
    workers: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.db"
    opts = ("--run-dir", tmp_path / "run", "--store-path", store)
    ran = cli(capsys, "run", *opts, "--n", 3, "--max-workers", workers)
    assert ran.code == 0, ran
    assert "no flag" not in ran.out + ran.err  # the task's output went to its logs only
    run_id = _last_run(store)
    assert cli(capsys, "logs", run_id, "work", 1, "--store-path", store) == (
        0,
        "no flag\nfrom a subprocess\n",
        "",
    )
    assert cli(capsys, "logs", run_id, "work", 1, "--err", "--store-path", store).out == (
        "to stderr\n"
    )
    assert cli(capsys, "logs", run_id, "split", "--store-path", store, console=True).out == (
        "split into 3\n"
    )
    # it ran and wrote nothing: not a mistake
    assert cli(capsys, "logs", run_id, "work", 0, "--store-path", store) == (0, "", "(no output)\n")
    # files only for what wrote something, in the layout a cluster job writes
    logs = sorted(p.name for p in (tmp_path / "run" / "logs" / run_id).rglob("*") if p.is_file())
    assert logs == ["1.1.err", "1.1.out", "single.1.out"]
    assert log_paths(tmp_path / "run", run_id, "work", 1, 1)[0].is_file()


def test_each_attempt_has_its_own_output_and_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, flag, run_id = _failed_run(tmp_path, capsys, 3)
    s = ("--store-path", store)
    mistake(cli(capsys, "logs", run_id, "total", *s), "no output recorded for 'total'")
    flag.touch()
    assert cli(capsys, "retry", run_id, *s).code == 0
    assert cli(capsys, "logs", run_id, "work", 1, *s).out == "flag\nfrom a subprocess\n"
    old = cli(capsys, "logs", run_id, "work", 1, "--attempt", 1, *s)
    assert old.out == "no flag\nfrom a subprocess\n"
    assert cli(capsys, "logs", run_id, "work", 1, "--attempt", 1, "--err", *s).out == (
        "to stderr\n"
    )
    mistake(cli(capsys, "logs", run_id, "work", 1, "--attempt", 3, *s), "no attempt 3", "1, 2")
    mistake(cli(capsys, "logs", run_id, "work", *s), "array task", "INDEX", "0..2")
    mistake(cli(capsys, "logs", run_id, "work", 7, *s), "no element 7", "0..2")
    mistake(cli(capsys, "logs", run_id, "split", 0, *s), "not an array task")
    mistake(cli(capsys, "logs", run_id, "wrok", 1, *s), "no task 'wrok'", "Did you mean 'work'?")
    mistake(cli(capsys, "logs", "logs-20990101-0000", "work", 1, *s), "no run")
    mistake(cli(capsys, "logs", run_id, "work", -1, *s), "INDEX")
    mistake(cli(capsys, "logs", run_id, "work", 1, "--attempt", 0, *s), "--attempt")
    # an instance reused from the cache did not run: nothing of its own to show
    assert cli(capsys, "run", "--run-dir", tmp_path / "run", *s, "--n", 3, "--flag", flag).code == 0
    again = _last_run(store)
    mistake(cli(capsys, "logs", again, "work", 1, *s), "reused from the cache")


def test_logs_of_runs_from_before_attempts_had_files_of_their_own(tmp_path: Path) -> None:
    """Jobs wrote every attempt of an instance to one file, a header line before each."""
    old = tmp_path / "logs" / "work" / "3.out"
    old.parent.mkdir(parents=True)
    old.write_text(
        "== 2026-01-02 03:04:05 work[3] attempt 1 job 17_3\nfirst try\n"
        "== 2026-01-02 04:04:05 work[3] attempt 2 job 18_3\nsecond try\nand more\n"
    )
    assert read_log(tmp_path, "r-1", "work", 3, 1, False) == "first try\n"
    assert read_log(tmp_path, "r-1", "work", 3, 2, False) == "second try\nand more\n"
    assert read_log(tmp_path, "r-1", "work", 3, 3, False) is None
    assert read_log(tmp_path, "r-1", "work", 3, 1, True) is None
    # the new layout wins, and its header lines are left out
    new = log_paths(tmp_path, "r-1", "work", 3, 1)[0]
    new.parent.mkdir(parents=True)
    new.write_text("== 2026-01-02 03:04:05 work[3] attempt 1 job 17_3\nmine\n")
    assert read_log(tmp_path, "r-1", "work", 3, 1, False) == "mine\n"


def test_a_new_run_never_shows_an_old_runs_shared_log_as_its_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "run" / "logs" / "work" / "0.out"  # an old run's, in the same run dir
    old.parent.mkdir(parents=True)
    old.write_text("== 2026-01-02 03:04:05 work[0] attempt 1 job 17_0\nthe old run's\n")
    store = tmp_path / "s.db"
    ran = cli(capsys, "run", "--run-dir", tmp_path / "run", "--store-path", store, "--n", 2)
    assert ran.code == 0, ran
    # work[0] wrote nothing in the new run
    assert cli(capsys, "logs", _last_run(store), "work", 0, "--store-path", store) == (
        0,
        "",
        "(no output)\n",
    )


def test_dag_as_text_dot_and_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "dag").out == cli(capsys, "dag", "--format", "text").out
    assert "  work  [array]" in cli(capsys, "dag").out
    assert cli(capsys, "dag", "--format", "dot").out == textwrap.dedent("""\
        digraph "logs" {
          node [shape=box];
          "split";
          "work" [label="work [array]", peripheries=2];
          "total";
          "split" -> "work" [label="item (fan-out)"];
          "work" -> "total" [label="items (gather)"];
          "split" -> "total" [label="after", style=dashed];
        }
        """)
    assert cli(capsys, "dag", "--format", "mermaid").out == textwrap.dedent("""\
        flowchart TD
          t0["split"]
          t1[["work [array]"]]
          t2["total"]
          t0 -->|"item (fan-out)"| t1
          t1 -->|"items (gather)"| t2
          t0 -.->|"after"| t2
        """)
    mistake(cli(capsys, "dag", "--format", "svg"), "invalid choice: 'svg'")


def test_any_name_is_one_valid_string_in_dot_and_mermaid() -> None:
    name = 'a "quoted" \\ back#slash <b>\nnext'
    assert _dot_string(name) == '"a \\"quoted\\" \\\\ back#slash <b>\\nnext"'
    # no quote, bracket, pipe-breaking character or newline reaches mermaid's syntax
    label = _mermaid_text(name)
    assert label == '"a #quot;quoted#quot; \\ back#35;slash #lt;b#gt; next"'
    assert '"' not in label[1:-1] and "\n" not in label
    # a task name is only ever a label in mermaid: its node ids are t0, t1, ...
    assert re.findall(r"^  (t\d+)\[", render_dag(wf.validate(), "mermaid"), re.M) == [
        "t0",
        "t1",
        "t2",
    ]


# ---------------------------------------------------------------------- status --watch

PIPELINE = """
import os
import time
from typing import Annotated
from reflow import Result, Workflow

wf = Workflow("watched")


@wf.job()
def make(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def slow(x: Annotated[int, Result(step="make")], pause: float, gate: str) -> int:
    while x == 0 and not os.path.exists(gate):  # the test opens it once it watches
        time.sleep(0.02)
    time.sleep(pause)
    return x


if __name__ == "__main__":
    raise SystemExit(wf.cli())
"""


def _read_until(fd: int, marker: bytes, timeout: float = 20) -> bytes:
    """What arrives on `fd` until `marker` has."""
    data = b""
    while marker not in data:
        ready, _, _ = select.select([fd], [], [], timeout)
        assert ready, data
        data += os.read(fd, 65536)
    return data


def _read_all(fd: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> bytes:
    """Everything written on `fd` (a pty's master, or a pipe) until the process exits."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:  # the end of a pipe
                break
            data += chunk
        elif proc.poll() is not None:
            break
    return data


def test_status_watch_in_a_terminal_and_in_a_pipe(tmp_path: Path) -> None:
    script = tmp_path / "watched.py"
    script.write_text(PIPELINE)
    store = tmp_path / "s.db"
    gate = tmp_path / "gate"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    run = subprocess.Popen(
        [sys.executable, str(script), "run", "--run-dir", str(tmp_path / "run"),
         "--store-path", str(store), "--n", "6", "--pause", "0.2", "--gate", str(gate)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not (store.exists() and SqliteStore(store).list_runs()):
        assert time.monotonic() < deadline and run.poll() is None, run.communicate()
        time.sleep(0.05)
    run_id = _last_run(store)
    watch = [sys.executable, str(script), "status", run_id, "--watch", "--interval", "0.2",
             "--store-path", str(store)]  # fmt: skip
    terminals = [os.openpty() for _ in range(2)]
    in_tty, stopped = (
        subprocess.Popen(watch, env=env, stdin=slave, stdout=slave, stderr=slave)
        for _, slave in terminals
    )
    piped = subprocess.Popen(watch, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _, slave in terminals:
        os.close(slave)
    assert piped.stdout is not None
    # the run waits (its first element holds) until every watcher has drawn it
    first = _read_until(terminals[1][0], b"slow")
    # Ctrl-C: that watcher stops, the run goes on
    stopped.send_signal(signal.SIGINT)
    said = (first + _read_all(terminals[1][0], stopped)).decode()
    assert stopped.wait(10) == 130
    assert f"stopped watching; run {run_id} goes on" in said
    shown = _read_until(terminals[0][0], b"slow")
    text = _read_until(piped.stdout.fileno(), b"slow")
    gate.touch()

    shown = (shown + _read_all(terminals[0][0], in_tty)).decode()
    text = (text + _read_all(piped.stdout.fileno(), piped)).decode()
    assert run.wait(30) == 0, run.communicate()
    assert in_tty.wait(10) == 0 and piped.wait(10) == 0, (shown, text)
    # the terminal: redrawn in place, progress per task, then the final status
    assert "\x1b[" in shown and "\x1b[J" in shown
    assert re.search(r"slow +\d/6 ", shown), shown
    assert re.search(rf"run {run_id}  SUCCESS", shown)
    assert re.search(r"  slow +6  6 SUCCESS  \(\d+\.\d s\)", shown), shown
    # a pipe: plain lines, no escape codes, each update stamped with its time
    assert "\x1b" not in text
    updates = re.findall(r"^\d\d:\d\d:\d\d  slow +(\d)/6 .*", text, re.M)
    assert updates[0] == "0" and len(set(updates)) > 1, text  # it saw the run move
    assert re.search(r"^\d\d:\d\d:\d\d  make +1/1 +done in \d", text, re.M), text
    assert f"run {run_id}  SUCCESS" in text
    assert SqliteStore(store).get_run(run_id)["status"] == "SUCCESS"  # Ctrl-C touched nothing


def test_status_shows_elapsed_and_watch_of_a_finished_run_exits_with_its_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, _, run_id = _failed_run(tmp_path, capsys, 2)
    s = ("--store-path", store)
    status = cli(capsys, "status", run_id, *s).out
    assert re.search(r"^  work +2  1 SUCCESS, 1 FAILED  \(\d+\.\d s\)$", status, re.M), status
    watched = cli(capsys, "status", run_id, "--watch", *s, console=True)
    assert watched.code == 1 and watched.out.strip() == status.strip()
    mistake(cli(capsys, "status", run_id, "--watch", "--json", *s), "--json")
    mistake(cli(capsys, "status", run_id, "--watch", "--interval", "0", *s), "--interval")
    doc = SqliteStore(store).task_times(run_id)
    assert set(doc) == {"split", "work"} and all(a <= (b or a) for a, b in doc.values())


CLOSED = """
import os, sys
from reflow.instances import Work
from reflow.local import _Capture

os.close(1)  # a daemon's stdout
capture = _Capture(sys.argv[1], "r-1")
assert min(capture.scratch) > 2, capture.scratch  # the scratch did not become fd 1
capture.start()
print("hi")
capture.keep(Work("hello", -1, 1, {}))
capture.stop()
try:
    os.fstat(1)
except OSError:
    os.write(2, b"fd 1 closed again")
"""


def test_a_process_with_stdout_closed_still_captures(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLOSED, str(tmp_path)],
        env=dict(os.environ, PYTHONPATH=str(SRC)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "fd 1 closed again", done
    assert read_log(tmp_path, "r-1", "hello", -1, 1, False) == "hi\n"


kept_streams: list[TextIO] = []
keeper = Workflow("keeper")


@keeper.job()
def keep_stderr() -> int:
    kept_streams.append(sys.stderr)  # as logging.basicConfig() in a task does
    return 1


def test_a_stream_a_task_kept_never_writes_into_a_file_opened_after_the_run(
    tmp_path: Path,
) -> None:
    kept_streams.clear()
    keeper.run_local(tmp_path / "run", store=tmp_path / "s.db")
    files = [tmp_path / f"f{k}" for k in range(8)]
    fds = [os.open(f, os.O_RDWR | os.O_CREAT) for f in files]  # the lowest free fds again
    try:
        with pytest.raises((ValueError, OSError)):
            kept_streams[0].write("a log line after the run\n")
    finally:
        for fd in fds:
            os.close(fd)
    assert [f.read_text() for f in files] == [""] * 8
