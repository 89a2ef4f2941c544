"""SIGKILL `submit --executor local`, or dispatcher passes of its chain, and resume.

Each scenario kills at one point found by watching the store and the local
executor's job files (the run recorded, a task written but not submitted, a
job submitted but not recorded, the next dispatcher chained but not recorded,
...).  Whenever `status` says the run will not move on its own, the harness
resumes it with `retry`; a run that stays RUNNING with no such word fails.
At the end: SUCCESS, right outputs, nothing that was SUCCESS at a kill ran
again, every result file a worker wrote was ingested, no log shows a lock
error or a traceback.  The scenarios run at once (they mostly wait on jobs).
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest
from harness import crash_submits, processes_matching

from reflow import RunState
from reflow.config import load_config
from reflow.dispatch import DispatchBusy, dispatch_pass, make_executor
from reflow.stores.sqlite import SqliteStore

POINTS = 10


def test_killed_submit_and_dispatcher_are_resumed_to_the_right_end(tmp_path: Path) -> None:
    crashers = crash_submits(tmp_path, points=POINTS, seed=11)
    kills = [k for c in crashers for k in c.kills]
    report = "\n".join(
        f"{c.name}: " + "; ".join(f"{k.what} {k.label}" for k in c.kills) for c in crashers
    )
    assert len(kills) >= POINTS, report
    assert {k.what for k in kills} == {"submit", "dispatcher"}, report
    for c in crashers:
        c.assert_ok()


def test_dispatcher_passes_over_one_run_take_turns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pass waits while another holds the run's pass lock; a retry gives up with one line."""
    import pipeline

    monkeypatch.setenv("CRASH_LOG", str(tmp_path / "executions.log"))
    store = SqliteStore(tmp_path / "m.db")
    run = pipeline.wf.submit(tmp_path / "run", executor="local", store=store, n=2)
    lock = tmp_path / "run" / "work" / run.run_id / "dispatch.lock"
    fd = os.open(lock, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a pass busy with the run would
    try:
        executor = make_executor("local", load_config())
        with pytest.raises(DispatchBusy, match="being dispatched by another pass"):
            dispatch_pass(
                pipeline.wf, store, run.run_id, executor, config=load_config(), lock_wait=0.2
            )
        # the chained dispatcher starts once 'split' is done, and waits for its turn
        deadline = time.monotonic() + 60
        while not processes_matching("dispatch", "--run-id", run.run_id):
            assert time.monotonic() < deadline, "no dispatcher pass started"
            time.sleep(0.05)
        time.sleep(1.0)
        assert run.state is RunState.RUNNING
        assert "work" not in store.summary(run.run_id)  # the waiting pass expanded nothing
    finally:
        os.close(fd)  # the other pass is done: this one goes on
    deadline = time.monotonic() + 60
    while run.state is RunState.RUNNING:
        assert time.monotonic() < deadline, run.status(as_dict=True)
        time.sleep(0.1)
    assert run.state is RunState.SUCCESS
    assert run.output("gather") == 1 + 2
