"""Failures, retries, interruption and the process pool of `run_local`."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest

from backends import execute
from counting import Calls
from reflow import ReflowError, Result, Run, RunState, TaskState, Workflow
from reflow.errors import TaskFailedError
from reflow.stores import open_store
from stopping import stopped


@pytest.fixture
def store_path(any_store: str) -> str:
    """Every test here runs on both backends (an SQLite file, a PostgreSQL schema)."""
    return any_store


def _status(run: Run) -> dict:  # type: ignore[type-arg]
    doc = run.status(as_dict=True)
    assert doc is not None
    return doc


def _failed(run: Run) -> dict[tuple[str, int | None], tuple[str, str]]:
    return {
        (f["task_name"], f["array_index"]): (f["state"], f["error_text"] or "")
        for key in ("failed_instances", "cancelled_instances", "skipped_instances")
        for f in _status(run)[key]
    }


def _diamond(calls: Calls, fixed: Path) -> Workflow:
    """items -> each (element 2 fails until `fixed` exists) -> chained -> total; plus side."""
    wf = Workflow("diamond")

    @wf.job()
    def items() -> list[int]:
        calls("items")
        return [0, 1, 2, 3]

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        calls(f"each{x}")
        if x == 2 and not fixed.exists():
            raise ValueError(f"item {x} is broken")
        return x * 10

    @wf.array_job()
    def chained(x: Annotated[int, Result(step="each")]) -> int:
        calls(f"chained{x // 10}")
        return x + 1

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="chained")]) -> int:
        calls("total")
        return sum(xs)

    @wf.job()
    def side() -> str:
        calls("side")
        return "independent"

    return wf


# ---------------------------------------------------------------------- a failing task


def test_a_failing_task_stops_the_run_with_an_error_that_carries_it(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = _diamond(calls, tmp_path / "fixed")
    with pytest.raises(TaskFailedError) as caught:
        wf.run_local(tmp_path / "r", store=store_path)  # on_error="stop", the default
    err = caught.value
    assert isinstance(err, RuntimeError) and isinstance(err, ReflowError)
    assert str(err).startswith("task 'each'[2] failed: ValueError: item 2 is broken (run '")
    assert "err.run.retry()" in str(err)
    run = err.run
    assert isinstance(run, Run) and run.state is RunState.FAILED
    state, text = _failed(run)[("each", 2)]
    assert state == "FAILED"
    # the whole traceback is kept, starting in the user's function
    assert text.startswith("Traceback (most recent call last):")
    assert "in each" in text
    assert 'raise ValueError(f"item {x} is broken")' in text
    assert text.rstrip().endswith("ValueError: item 2 is broken")


def test_on_error_continue_returns_the_failed_run(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    run = _diamond(calls, tmp_path / "fixed").run_local(
        tmp_path / "r", store=store_path, on_error="continue"
    )
    assert run.state is RunState.FAILED
    assert _failed(run)[("each", 2)][0] == "FAILED"


def test_status_with_errors_prints_the_traceback(
    tmp_path: Path, store_path: Path, calls: Calls, capsys: pytest.CaptureFixture[str]
) -> None:
    run = stopped(_diamond(calls, tmp_path / "fixed"), tmp_path / "r", store=store_path)
    run.status()
    short = capsys.readouterr().out
    assert "each[2]  FAILED (ERROR): ValueError: item 2 is broken" in short
    assert "Traceback" not in short
    run.status(errors=True)
    full = capsys.readouterr().out
    assert "Traceback (most recent call last):" in full
    assert 'raise ValueError(f"item {x} is broken")' in full


def test_on_error_stop_starts_no_new_work_after_a_failure(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = _diamond(calls, tmp_path / "fixed")
    run = stopped(wf, tmp_path / "r", store=store_path, on_error="stop")
    ran = calls.take()
    assert run.state is RunState.FAILED
    assert ran.get("each3", 0) == 0  # not started after each[2] failed
    assert not any(n.startswith("chained") for n in ran) and "total" not in ran
    summary = _status(run)["summary"]
    assert summary["each"]["FAILED"] == 1
    assert summary["chained"] == {} and summary["total"] == {}


def test_on_error_continue_finishes_independent_work_and_skips_dependants(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = _diamond(calls, tmp_path / "fixed")
    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    assert run.state is RunState.FAILED
    assert calls.take() == {
        "items": 1, "side": 1, "each0": 1, "each1": 1, "each2": 1, "each3": 1,
        "chained0": 1, "chained1": 1, "chained3": 1,
    }  # fmt: skip
    summary = _status(run)["summary"]
    assert summary["each"] == {"SUCCESS": 3, "FAILED": 1}
    # a chain is skipped element-wise: only the element fed by the failure
    assert summary["chained"] == {"SUCCESS": 3, "SKIPPED": 1}
    assert summary["total"] == {"SKIPPED": 1}
    assert summary["side"] == {"SUCCESS": 1}
    failed = _failed(run)
    assert failed[("chained", 2)] == ("SKIPPED", "'each'[2] is FAILED")
    assert failed[("total", None)] == ("SKIPPED", "upstream 'chained' has 1 SKIPPED")
    assert run.output("side") == "independent"


# ---------------------------------------------------------------------- retry


def test_retry_after_the_fix_reruns_only_what_failed_or_was_skipped(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    fixed = tmp_path / "fixed"
    wf = _diamond(calls, fixed)
    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    calls.take()

    fixed.touch()
    reset = run.retry()
    assert reset == 3  # each[2] FAILED, chained[2] and total SKIPPED
    assert calls.take() == {"each2": 1, "chained2": 1, "total": 1}  # upstream not rerun
    assert run.state is RunState.SUCCESS
    assert run.outputs("each") == [0, 10, 20, 30]
    assert run.output("total") == 0 + 1 + 10 + 1 + 20 + 1 + 30 + 1
    assert _status(run)["failed_instances"] == []
    # what had succeeded was kept as it was: first attempts, not cache hits
    assert set(_status(run)["cached"].values()) == {0}
    store = open_store(store_path)
    assert [a["attempt"] for a in store.attempts(run.run_id, "each", 0)] == [1]
    assert [a["attempt"] for a in store.attempts(run.run_id, "items")] == [1]


def test_retry_keeps_the_earlier_attempts_error_in_the_history(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    fixed = tmp_path / "fixed"
    run = stopped(_diamond(calls, fixed), tmp_path / "r", store=store_path)
    fixed.touch()
    run.retry()
    history = open_store(store_path).attempts(run.run_id, "each", 2)
    assert [(a["attempt"], a["state"]) for a in history] == [(1, "FAILED"), (2, "SUCCESS")]
    assert "ValueError: item 2 is broken" in history[0]["error_text"]
    assert history[1]["error_text"] is None
    # the current attempt is what status shows
    (current,) = [i for i in _status(run)["instances"] if i["task_name"] == "each"][2:3]
    assert current["attempt"] == 2 and current["state"] == TaskState.SUCCESS


def test_retry_of_a_run_that_still_fails_keeps_it_failed(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    run = stopped(_diamond(calls, tmp_path / "fixed"), tmp_path / "r", store=store_path)
    calls.take()
    run.retry()
    assert run.state is RunState.FAILED
    assert calls.count("each2") == 1
    attempts = open_store(store_path).attempts(run.run_id, "each", 2)
    assert [a["state"] for a in attempts] == ["FAILED", "FAILED"]


def test_retry_of_one_task_only_resets_that_task(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = Workflow("two_failures")
    fixed = tmp_path / "fixed"

    @wf.job()
    def first() -> int:
        calls("first")
        if not fixed.exists():
            raise RuntimeError("first is broken")
        return 1

    @wf.job()
    def second() -> int:
        calls("second")
        if not fixed.exists():
            raise RuntimeError("second is broken")
        return 2

    @wf.job()
    def after_first(x: Annotated[int, Result(step="first")]) -> int:
        calls("after_first")
        return x + 100

    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    assert calls.take() == {"first": 1, "second": 1}
    fixed.touch()

    run.retry(task="first")
    assert calls.take() == {"first": 1, "after_first": 1}
    assert run.state is RunState.FAILED  # `second` is still FAILED
    assert _status(run)["summary"]["second"] == {"FAILED": 1}
    assert run.output("after_first") == 101

    run.retry()
    assert calls.take() == {"second": 1}
    assert run.state is RunState.SUCCESS


def test_retry_with_an_unknown_task_is_refused(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    run = stopped(_diamond(calls, tmp_path / "fixed"), tmp_path / "r", store=store_path)
    with pytest.raises(ValueError, match=r"unknown task 'eahc'\. Did you mean 'each'\?"):
        run.retry(task="eahc")


@pytest.mark.parametrize("upstream_was_cached", [False, True])
def test_retry_verifies_upstream_cache_hits_by_default(
    tmp_path: Path, store_path: Path, calls: Calls, upstream_was_cached: bool
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    fixed = tmp_path / "fixed"

    def build(with_use: bool) -> Workflow:
        wf = Workflow("stale")

        @wf.job()
        def make() -> Path:
            calls("make")
            path = out / "intermediate.txt"
            path.write_text("42")
            return path

        if with_use:

            @wf.job()
            def use(p: Annotated[Path, Result(step="make")]) -> int:
                calls("use")
                if not fixed.exists():
                    raise RuntimeError("use is broken")
                return int(p.read_text())

        return wf

    if upstream_was_cached:  # an earlier run made the file; the failing run reuses it
        build(False).run_local(tmp_path / "r0", store=store_path)
    run = stopped(build(True), tmp_path / "r", store=store_path)
    assert run.state is RunState.FAILED
    assert _status(run)["cached"]["make"] == int(upstream_was_cached)
    calls.take()

    (out / "intermediate.txt").unlink()  # the stale intermediate file
    fixed.touch()
    run.retry()
    assert calls.take() == {"make": 1, "use": 1}
    assert run.state is RunState.SUCCESS
    assert run.output("use") == 42


def test_retry_without_verify_trusts_the_upstream(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    out = tmp_path / "intermediate.txt"
    fixed = tmp_path / "fixed"
    wf = Workflow("trusting")

    @wf.job()
    def make() -> Path:
        calls("make")
        out.write_text("42")
        return out

    @wf.job()
    def use(p: Annotated[Path, Result(step="make")]) -> int:
        calls("use")
        if not fixed.exists():
            raise RuntimeError("use is broken")
        return int(p.read_text())

    run = stopped(wf, tmp_path / "r", store=store_path)
    calls.take()
    out.unlink()
    fixed.touch()
    run.retry(verify=False)
    assert calls.take() == {"use": 1}  # make was not rerun, so use cannot read the file
    assert run.state is RunState.FAILED
    assert "FileNotFoundError" in _failed(run)[("use", None)][1]


def test_retry_is_refused_while_another_live_process_drives_the_run(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    fixed = tmp_path / "fixed"
    run = stopped(_diamond(calls, fixed), tmp_path / "r", store=store_path)
    calls.take()
    execute(  # as if our parent process were driving it
        store_path,
        "UPDATE runs SET owner_host = ?, owner_pid = ?, owner_start = NULL, "
        "status = 'RUNNING' WHERE run_id = ?",
        (socket.gethostname(), os.getppid(), run.run_id),
    )
    fixed.touch()
    with pytest.raises(ReflowError, match=rf"run '{run.run_id}' is being driven by process"):
        run.retry()
    assert calls.take() == {}


def test_retry_needs_the_workflow(tmp_path: Path, store_path: Path, calls: Calls) -> None:
    run = stopped(_diamond(calls, tmp_path / "fixed"), tmp_path / "r", store=store_path)
    bare = Run(run.run_id, open_store(store_path))
    with pytest.raises(Exception, match=r"retrying run .* needs its workflow"):
        bare.retry()


# ---------------------------------------------------------------------- interruption


def test_interrupted_run_is_cancelled_consistent_and_resumable(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    interrupt = tmp_path / "interrupt"
    interrupt.touch()
    wf = Workflow("ctrl_c")

    @wf.job()
    def items() -> list[int]:
        calls("items")
        return [0, 1, 2, 3, 4]

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        calls(f"each{x}")
        if x == 2 and interrupt.exists():
            raise KeyboardInterrupt  # what Ctrl-C does to the driving process
        return x * x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="each")]) -> int:
        calls("total")
        return sum(xs)

    store = open_store(store_path)
    with pytest.raises(KeyboardInterrupt):
        wf.run_local(tmp_path / "r", store=store)
    assert calls.take() == {"items": 1, "each0": 1, "each1": 1, "each2": 1}

    (info,) = store.list_runs()
    run = Run(info["run_id"], store, workflow=wf)
    assert run.state is RunState.CANCELLED
    doc = _status(run)
    # nothing is left RUNNING or PENDING: every instance has a final state
    assert doc["summary"] == {
        "items": {"SUCCESS": 1},
        "each": {"SUCCESS": 2, "CANCELLED": 3},
        "total": {},
    }
    assert {f["error_text"] for f in doc["cancelled_instances"]} == {"interrupted (Ctrl-C)"}
    assert doc["failed_instances"] == []
    assert store.get_run(run.run_id)["owner_pid"] is None  # released for the next command

    interrupt.unlink()
    run.retry()
    assert calls.take() == {"each2": 1, "each3": 1, "each4": 1, "total": 1}
    assert run.state is RunState.SUCCESS
    assert run.output("total") == 0 + 1 + 4 + 9 + 16


def test_cancel_marks_unfinished_instances(tmp_path: Path, store_path: Path, calls: Calls) -> None:
    run = stopped(_diamond(calls, tmp_path / "fixed"), tmp_path / "r", store=store_path)
    # on_error="stop" left each[3] waiting; cancel settles it
    assert _status(run)["summary"]["each"] == {"SUCCESS": 2, "FAILED": 1, "PENDING": 1}
    assert run.cancel() == 1
    assert _status(run)["summary"]["each"] == {"SUCCESS": 2, "FAILED": 1, "CANCELLED": 1}
    assert _failed(run)[("each", 3)] == ("CANCELLED", "cancelled by the user")
    assert run.cancel() == 0  # nothing left to cancel
    assert run.state is RunState.FAILED


# ---------------------------------------------------------------------- the process pool
# Tasks sent to worker processes must be importable by name: module-level functions.


def numbers(n: int) -> list[int]:
    return list(range(n))


def square(x: Annotated[int, Result(step="numbers")], log: str) -> list[int]:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"square{x}\n")
    time.sleep(0.01)  # long enough for both workers to get work
    return [x * x, os.getpid()]


def fragile(x: Annotated[int, Result(step="numbers")], log: str) -> int:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"fragile{x}\n")
    if x in (1, 4, 6):
        os.kill(os.getpid(), 9)  # SIGKILL: no exception, no cleanup, the process is gone
    return x


def slow(x: Annotated[int, Result(step="numbers")], log: str) -> int:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"slow{x}\n")
    time.sleep(0.2)
    return x


def fail_first(x: Annotated[int, Result(step="numbers")], log: str) -> int:
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"start{x}\n")
    if x == 0:
        raise ValueError("the first one fails at once")
    time.sleep(0.4)  # still running when the failure is recorded
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"end{x}\n")
    return x


def whoami() -> int:
    return os.getpid()


@pytest.fixture
def deadline() -> Iterator[None]:
    """Fail, instead of hanging the suite, if a pool run does not come back in 30 s."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError("the run did not finish within 30 s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(30)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _pool_workflow(*tasks: object) -> Workflow:
    wf = Workflow("pool")
    wf.job()(numbers)
    for t in tasks:
        wf.array_job()(t)
    return wf


def test_max_workers_runs_array_elements_in_other_processes(
    tmp_path: Path, store_path: Path, calls: Calls, deadline: None
) -> None:
    wf = _pool_workflow(square)
    log = str(calls.path)
    pooled = wf.run_local(tmp_path / "p", store=store_path, max_workers=2, n=12, log=log)
    assert pooled.state is RunState.SUCCESS
    assert calls.take() == {f"square{i}": 1 for i in range(12)}
    values = pooled.outputs("square")
    pids = {pid for _, pid in values}
    assert os.getpid() not in pids
    assert len(pids) == 2

    inline = wf.run_local(tmp_path / "i", store=tmp_path / "other.db", max_workers=1, n=12, log=log)
    assert {pid for _, pid in inline.outputs("square")} == {os.getpid()}
    assert [v for v, _ in inline.outputs("square")] == [v for v, _ in values]
    assert [v for v, _ in values] == [i * i for i in range(12)]


def test_max_workers_runs_independent_tasks_in_worker_processes_too(
    tmp_path: Path, store_path: Path, deadline: None
) -> None:
    wf = Workflow("singletons")
    wf.job()(whoami)
    run = wf.run_local(tmp_path / "r", store=store_path, max_workers=2)
    assert run.output("whoami") != os.getpid()


def test_on_error_stop_in_the_pool_lets_running_work_finish(
    tmp_path: Path, store_path: Path, calls: Calls, deadline: None
) -> None:
    wf = _pool_workflow(fail_first)
    run = stopped(wf, tmp_path / "r", store=store_path, max_workers=2, n=4, log=str(calls.path))
    assert run.state is RunState.FAILED
    ran = calls.take()
    # element 1 was already running in the other worker: it finished and was recorded
    assert ran == {"start0": 1, "start1": 1, "end1": 1}
    summary = _status(run)["summary"]["fail_first"]
    assert summary["FAILED"] == 1 and summary["SUCCESS"] == 1
    assert "RUNNING" not in summary


def test_ctrl_c_during_a_pool_run_leaves_a_resumable_run(
    tmp_path: Path, store_path: Path, calls: Calls, deadline: None
) -> None:
    wf = _pool_workflow(slow)
    store = open_store(store_path)
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            wf.run_local(tmp_path / "r", store=store, max_workers=2, n=10, log=str(calls.path))
    finally:
        timer.cancel()
    first = calls.take()
    assert len(first) < 10  # stopped part-way
    (info,) = store.list_runs()
    run = Run(info["run_id"], store, workflow=wf)
    assert run.state is RunState.CANCELLED
    summary = _status(run)["summary"]["slow"]
    assert set(summary) <= {"SUCCESS", "CANCELLED"}  # nothing left RUNNING or PENDING
    assert summary["CANCELLED"] >= 1
    succeeded = {
        f"slow{i['array_index']}"
        for i in _status(run)["instances"]
        if i["task_name"] == "slow" and i["state"] == "SUCCESS"
    }

    run.retry()
    again = calls.take()
    assert run.state is RunState.SUCCESS
    assert run.outputs("slow") == list(range(10))
    # what had succeeded did not run again; everything else ran once
    assert set(again) == {f"slow{i}" for i in range(10)} - succeeded
    assert set(again.values()) == {1}


def test_a_closure_with_max_workers_runs_in_process_with_a_warning(
    tmp_path: Path, store_path: Path, deadline: None
) -> None:
    wf = Workflow("closure")
    seen: list[int] = []

    @wf.job()
    def items() -> list[int]:
        return [1, 2, 3]

    @wf.array_job()
    def local_only(x: Annotated[int, Result(step="items")]) -> int:
        seen.append(x)  # only possible in this process
        return os.getpid()

    with pytest.warns(RuntimeWarning) as caught:
        run = wf.run_local(tmp_path / "r", store=store_path, max_workers=2)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2
    assert messages[0].startswith("task 'items' cannot be sent to a worker process")
    assert messages[1].startswith("task 'local_only' cannot be sent to a worker process")
    assert run.state is RunState.SUCCESS
    assert sorted(seen) == [1, 2, 3]
    assert run.outputs("local_only") == [os.getpid()] * 3


def test_a_worker_killed_by_sigkill_fails_just_its_instance(
    tmp_path: Path, store_path: Path, calls: Calls, deadline: None
) -> None:
    wf = _pool_workflow(fragile)
    started = time.monotonic()
    run = wf.run_local(
        tmp_path / "r", store=store_path, max_workers=2, on_error="continue", n=8,
        log=str(calls.path),
    )  # fmt: skip
    assert time.monotonic() - started < 20
    assert run.state is RunState.FAILED
    assert calls.take() == {f"fragile{i}": 1 for i in range(8)}  # the rest ran once each
    # each killed worker fails its own instance only; its replacement runs the rest
    assert _status(run)["summary"]["fragile"] == {"SUCCESS": 5, "FAILED": 3}
    failed = _failed(run)
    assert set(failed) == {("fragile", 1), ("fragile", 4), ("fragile", 6)}
    for state, text in failed.values():
        assert state == "FAILED"
        assert "the worker process was killed by SIGKILL while running this instance" in text
    assert "RUNNING" not in {i["state"] for i in _status(run)["instances"]}
