"""Graceful time limits: the scheduler's warning signal reaches the task as TaskInterrupted.

A real worker process runs real instances; the test sends the signals a
scheduler sends (SIGUSR1 `grace` seconds before the limit, SIGTERM at a
kill) once the task says it is running, and reads the result files.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reflow import TaskInterrupted as reexported
from reflow.instances import Outcome, Work
from reflow.results import read_results, write_result, write_wave
from reflow.signals import TaskInterrupted, graceful_shutdown

PIPELINE = """
import os, time
from pathlib import Path
from reflow import Workflow
from reflow.signals import TaskInterrupted

wf = Workflow("graceful")

@wf.job()
def step(k: int, folder: str) -> int:
    Path(folder, f"started.{k}").touch()
    try:
        while True:
            time.sleep(0.05)
    except TaskInterrupted as exc:
        Path(folder, f"checkpoint.{k}").write_text(exc.signal_name)
        raise
"""

REPO = Path(__file__).resolve().parent.parent


def _worker(tmp_path: Path, count: int, fused: bool = False) -> subprocess.Popen[bytes]:
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    works = [Work("step", k, 1, {"k": k, "folder": str(tmp_path)}) for k in range(count)]
    write_wave(tmp_path / "wave.jsonl", "graceful-1", works, per=count)
    waves = ["--wave", str(tmp_path / "wave.jsonl")]
    if fused:  # a singleton fused behind: it finds its inputs itself (`deferred`)
        after = [Work("step", 9, 1, {"k": 9, "folder": str(tmp_path)})]
        write_wave(tmp_path / "after.jsonl", "graceful-1", after, {"inputs": {}})
        waves += ["--wave", str(tmp_path / "after.jsonl")]
    origin = json.dumps({"script": str(tmp_path / "pipeline.py")})
    argv = [sys.executable, "-m", "reflow", "worker", *waves,
            "--run-dir", str(tmp_path / "run"), "--origin", origin,
            "--workflow", "graceful"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), REFLOW_JOB_ID="77")
    return subprocess.Popen(argv, env=env, cwd=tmp_path)


def _when_started(proc: subprocess.Popen[bytes], marker: Path) -> None:
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert proc.poll() is None, "the worker ended before its task started"
        assert time.monotonic() < deadline, "the task did not start"
        time.sleep(0.02)


def _results(tmp_path: Path) -> dict[int, Outcome]:
    found = {}
    for _, item in read_results(tmp_path / "run", "graceful-1"):
        assert isinstance(item, Outcome)
        found[item.index] = item
    return found


def test_the_warning_interrupts_the_task_which_checkpoints_and_ends_as_timeout(
    tmp_path: Path,
) -> None:
    proc = _worker(tmp_path, 2)  # a pack of two: the second must not start after the warning
    _when_started(proc, tmp_path / "started.0")
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(60) == 0
    assert (tmp_path / "checkpoint.0").read_text() == "SIGUSR1"
    results = _results(tmp_path)
    first, second = results[0], results[1]
    assert not first.ok and first.kind == "TIMEOUT"
    assert "TaskInterrupted: Task interrupted by SIGUSR1 (signal 10)" in (first.error or "")
    assert (first.error or "").endswith("the task was interrupted")
    assert not second.ok and second.kind == "TIMEOUT"
    assert not (tmp_path / "started.1").exists()  # not started with no time left
    assert (second.error or "").endswith("before this instance started")


def test_a_task_fused_behind_the_interrupted_one_leaves_no_result(tmp_path: Path) -> None:
    # the dispatcher marks it SKIPPED behind its upstream's TIMEOUT (dispatch._skip_behind)
    proc = _worker(tmp_path, 1, fused=True)
    _when_started(proc, tmp_path / "started.0")
    proc.send_signal(signal.SIGUSR1)
    assert proc.wait(60) == 0
    assert set(_results(tmp_path)) == {0} and _results(tmp_path)[0].kind == "TIMEOUT"
    assert not (tmp_path / "started.9").exists()


def test_a_kill_without_warning_leaves_no_result_for_the_scheduler_to_explain(
    tmp_path: Path,
) -> None:
    # scancel, preemption, a requeue: the task may checkpoint, but the attempt's kind is
    # the scheduler's to say (a requeued job runs again and writes the result then)
    proc = _worker(tmp_path, 1)
    _when_started(proc, tmp_path / "started.0")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == -signal.SIGTERM
    assert (tmp_path / "checkpoint.0").read_text() == "SIGTERM"
    assert _results(tmp_path) == {}


def test_task_interrupted_keeps_reflow_hpc_meaning() -> None:
    assert reexported is TaskInterrupted and issubclass(TaskInterrupted, Exception)
    exc = TaskInterrupted(signal.SIGTERM)
    assert (exc.signal_number, exc.signal_name) == (signal.SIGTERM, "SIGTERM")
    assert str(exc) == f"Task interrupted by SIGTERM (signal {int(signal.SIGTERM)})"
    assert not exc.time_limit and TaskInterrupted(signal.SIGUSR1).time_limit


def test_graceful_shutdown_turns_signals_into_the_exception_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(TaskInterrupted) as caught, graceful_shutdown() as guard:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler raises before this ends
    assert caught.value.signal_name == "SIGINT" and guard.interrupted is caught.value
    assert signal.getsignal(signal.SIGTERM) is before


def test_the_failure_kind_travels_in_the_result_file_and_old_files_still_read(
    tmp_path: Path,
) -> None:
    failed = Outcome("t", 0, 1, False, None, None, "boom", 1.0, 2.0, kind="TIMEOUT")
    path = write_result(tmp_path, "r1", failed, "9")
    assert json.loads(path.read_text())["kind"] == "TIMEOUT"
    old = json.loads(path.read_text())
    del old["kind"]  # a result file of a worker from before failure kinds
    path.write_text(json.dumps(old))
    ((_, item),) = read_results(tmp_path, "r1")
    assert isinstance(item, Outcome) and item.kind is None and item.error == "boom"


def test_a_memory_error_in_the_task_is_an_oom(tmp_path: Path) -> None:
    # SGE's h_vmem limits allocations: the task sees MemoryError, not a kill
    from reflow.instances import execute

    def hungry() -> None:
        raise MemoryError

    def broken() -> None:
        raise ValueError("no")

    assert execute(hungry, Work("t", -1, 1, {})).kind == "OOM"
    assert execute(broken, Work("t", -1, 1, {})).kind is None  # read as ERROR


def test_the_job_scripts_ask_for_the_warning_at_most_half_the_limit_before_it() -> None:
    from reflow.executors import JobResources, SlurmExecutor

    script = SlurmExecutor().render(["w"], JobResources(name="t", time="0:02:00", grace=90))
    assert "#SBATCH --signal=B:USR1@60" in script and "exec w" in script
    no_limit = SlurmExecutor().render(["w"], JobResources(name="t", grace=90))
    assert "--signal" not in no_limit
    none = SlurmExecutor().render(["w"], JobResources(name="t", time="0:02:00", grace=0))
    assert "--signal" not in none
