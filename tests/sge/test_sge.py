"""reflow on a real Grid Engine: what a user sees when they submit, fail, retry and cancel.

Each test submits into its own run dir and store under tmp_path; the jobs get
the test's environment through `qsub -V` (HOME, XDG_*, RFTEST_CALLS), so the
tmp paths work inside them. The runs that SGE ends (time limit, memory, exit
code 100) are submitted when this module starts, so their waiting overlaps
the other tests; the tests that check them come last.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sge_crash
import sge_fail
import sge_fanout
import sge_hold
from sge_support import (
    PIPELINES,
    Cluster,
    QsubSpy,
    qstat_ids,
    qstat_jobs,
    run_job_ids,
    status_text,
    wait_final,
    wait_until,
)

from reflow import Run, RunState, Workflow
from reflow.executors import JobResources, JobState
from reflow.executors.sge import SGEExecutor
from reflow.stores.sqlite import SqliteStore

# --------------------------------------------------------------------------- helpers


def _isolated(base: Path) -> dict[str, str]:
    """The environment a test would give its jobs (like tests/conftest.py's fixture)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFLOW_")}
    home = base / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    env["XDG_CONFIG_HOME"] = str(home / ".config")
    return env


def _submit_isolated(
    factory: pytest.TempPathFactory, name: str, wf: Workflow, **params: Any
) -> Run:
    base = factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("REFLOW_"):
                mp.delenv(key)
        for key, value in _isolated(base).items():
            mp.setenv(key, value)
        return wf.submit(base / "run", executor="sge", store=base / "manifest.db", **params)


_EARLY = {
    "timeout": (sge_crash.timeout_wf, {"seconds": 120.0}),
    "memory": (sge_crash.memory_wf, {"megabytes": 300}),
    "exit100": (sge_crash.exit_wf, {"code": 100}),
}


@pytest.fixture(scope="module")
def early_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Run]]:
    """The runs SGE ends, submitted as early as possible."""
    runs = {
        name: _submit_isolated(tmp_path_factory, name, wf, **params)
        for name, (wf, params) in _EARLY.items()
    }
    yield runs
    for run in runs.values():
        if run.state is RunState.RUNNING:
            run.cancel()


@pytest.fixture(scope="module", autouse=True)
def _start_slow_runs_first(request: pytest.FixtureRequest) -> None:
    """Submit the runs SGE ends before the other tests, so their waits overlap."""
    if any("early_runs" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("early_runs")


def _only_failed(run: Run) -> list[dict[str, Any]]:
    doc = run.status(as_dict=True)
    assert doc is not None
    return [i for i in doc["failed_instances"] if i["state"] == "FAILED"]


def _cli(
    script: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


# --------------------------------------------------------------------------- success and cache


def test_fanout_chain_gather_reaches_success(
    cluster: Cluster, calls: Any, qsub_spy: QsubSpy
) -> None:
    run = cluster.submit(sge_fanout.wf, n=4)
    assert run.state is RunState.RUNNING  # submit returns at once; the cluster drives the rest
    first_jobs = run_job_ids(run)
    assert first_jobs and all(j.isdigit() for j in first_jobs)

    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    items = [3, 13, 23, 33]
    assert run.output("make") == items
    # element i got item i although SGE numbers the array tasks from 1
    assert run.outputs("square") == [x * x for x in items]
    assert run.outputs("plus") == [x * x + 1 for x in items]
    assert run.output("total") == sum(x * x + 1 for x in items)
    assert calls.take() == {"make": 1, "square": 4, "plus": 4, "total": 1}
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {
        "make": {"SUCCESS": 1},
        "square": {"SUCCESS": 4},
        "plus": {"SUCCESS": 4},
        "total": {"SUCCESS": 1},
    }
    # every instance ran as an SGE job; array elements are SGE's own <job>.<task>
    by_key = {(i["task_name"], i["array_index"]): i["job_id"] for i in doc["instances"]}
    square_job = by_key[("square", 0)].split(".")[0]
    for k in range(4):
        assert by_key[("square", k)] == f"{square_job}.{k + 1}"
        log = (run.run_dir / "logs" / "square" / f"{k}.out").read_text()
        assert f"job {square_job}.{k + 1}\n" in log  # the worker's header names its task
        assert f"square of {items[k]} in SGE task {k + 1}" in log
        # SGE's own log of the task is where the dispatcher looks for it
        assert (
            run.run_dir / "logs" / "square" / "scheduler" / f"{square_job}.{k + 1}.log"
        ).exists()
    assert re.fullmatch(r"\d+", by_key[("make", None)])
    assert run.info()["dispatcher"] is None  # a finished run leaves nothing queued
    assert not qstat_ids() & run_job_ids(run)

    # the same submit again: nothing is submitted, everything is reused
    spy = SGEExecutor(qsub=str(qsub_spy.path))
    again = cluster.submit(sge_fanout.wf, n=4, executor=spy)
    assert again.state is RunState.SUCCESS  # finished before submit returned
    assert again.run_id != run.run_id
    assert all(i["job_id"] is None for i in again.store.instances(again.run_id))
    assert all(i["cached"] for i in again.store.instances(again.run_id))
    assert again.info()["dispatcher"] is None
    assert again.output("total") == run.output("total")
    assert calls.take() == {}
    assert spy.calls["qsub"] == 0 and qsub_spy.ids() == []  # no job reached SGE


# --------------------------------------------------------------------------- failure and retry


def test_failing_element_shows_traceback_then_retry_succeeds(
    cluster: Cluster, calls: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    run = cluster.submit(sge_fail.wf, n=3, flag=str(flag))
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"]["up"] == {"SUCCESS": 1}
    assert doc["summary"]["work"] == {"SUCCESS": 2, "FAILED": 1}
    assert doc["summary"]["done"] == {"SKIPPED": 1}
    (failed,) = _only_failed(run)
    assert (failed["task_name"], failed["array_index"]) == ("work", 1)
    assert failed["job_id"] and re.fullmatch(r"\d+\.2", failed["job_id"])  # element 1: task 2
    text = failed["error_text"]
    assert "Traceback (most recent call last)" in text
    assert "in check_input" in text
    assert f"RuntimeError: element 1 needs the flag file {flag}" in text
    assert calls.take() == {"up": 1, "work": 3}

    flag.touch()  # fix the cause
    reset = run.retry()
    assert reset >= 1
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.outputs("work") == [0, 10, 20]
    assert run.output("done") == 30
    assert calls.take() == {"work": 1, "done": 1}  # the upstream and the good elements stay


# --------------------------------------------------------------------------- live runs


def test_status_shows_running_then_cancel_leaves_no_job_in_qstat(
    cluster: Cluster, tmp_path: Path
) -> None:
    run = cluster.submit(sge_hold.hold_wf, gate=str(tmp_path / "never"))
    dispatcher = run.info()["dispatcher"]
    assert dispatcher, "a dispatcher job is chained behind the first wave"
    wait_until(
        lambda: (run.status(as_dict=True) or {})["summary"]["hold"] == {"RUNNING": 1},
        30,
        "'hold' running",
        run,
    )
    doc = run.status(as_dict=True)
    assert doc is not None and doc["warnings"] == []  # a dispatcher is queued behind it
    ids = run_job_ids(run)  # 'hold', the dispatcher, and 'after_hold' submitted ahead
    assert dispatcher in ids and len(ids) >= 2
    assert ids <= qstat_ids()
    assert qstat_jobs()[dispatcher] == {None: "hqw"}  # held by -hold_jid

    assert run.cancel() >= 1
    assert run.state is RunState.CANCELLED
    assert run.info()["dispatcher"] is None
    wait_until(lambda: not qstat_ids() & ids, 20, f"jobs {sorted(ids)} gone from qstat", run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"]["hold"] == {"CANCELLED": 1}
    assert doc["summary"]["after_hold"] in ({}, {"CANCELLED": 1})
    # nothing of the run comes back (no dispatcher pass resubmits it)
    time.sleep(2)
    assert not qstat_ids() & (run_job_ids(run) | ids)
    assert run.state is RunState.CANCELLED


def test_array_parallelism_is_honoured(cluster: Cluster, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    run = cluster.submit(sge_hold.par_wf, n=6, stamps=str(stamps))
    assert wait_final(run, 90) is RunState.SUCCESS, status_text(run)
    assert run.outputs("stamp") == list(range(6))
    spans = []
    arrays = set()
    for k in range(6):
        start, end, array_job = (stamps / f"{k}.txt").read_text().split()
        spans.append((float(start), float(end)))
        arrays.add(array_job)
    assert len(arrays) == 1  # one array job, throttled by SGE's -tc (not six jobs)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:  # at equal times an end sorts before a start
        running += step
        peak = max(peak, running)
    assert peak == 2, spans  # at most two at once, and the cluster had room for two


# --------------------------------------------------------------------------- the command line


def test_same_pipeline_file_by_reflow_mode_with_command_override(
    cluster: Cluster, tmp_path: Path, qsub_spy: QsubSpy
) -> None:
    script = PIPELINES / "sge_fanout.py"
    env = dict(os.environ, REFLOW_MODE="sge", REFLOW_QSUB=str(qsub_spy.path))
    res = _cli(
        script,
        "submit",
        "--run-dir",
        str(tmp_path / "cli-run"),
        "--store-path",
        str(cluster.store_path),
        "--n",
        "2",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    m = re.search(
        r"submitted run (sge-fanout-\d{8}-\w+) to sge: \d+ jobs? \(([\d, ]+)\), "
        r"dispatcher (\d+)",
        res.stdout,
    )
    assert m, res.stdout
    run_id, listed, dispatcher = m.groups()
    jobs = listed.split(", ")
    assert sorted(qsub_spy.ids()[: len(jobs) + 1]) == sorted([*jobs, dispatcher])
    run = Run(run_id, SqliteStore(cluster.store_path))
    cluster.runs.append(run)
    assert run.info()["executor"] == "sge"
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("total") == (3 * 3 + 1) + (13 * 13 + 1)
    # later dispatcher passes used the same qsub, and every job of the run went through it
    assert run_job_ids(run) <= set(qsub_spy.ids())


# --------------------------------------------------------------------------- error state


def test_job_in_error_state_is_failed_with_the_reason_and_deleted(tmp_path: Path) -> None:
    """A job SGE cannot start (its log path cannot be opened) sits in Eqw for ever."""
    ex = SGEExecutor()
    bad = str(tmp_path / "no-such-dir" / "$JOB_ID.log")
    job = ex.submit(["true"], JobResources(name="t.eqw", stdout=bad, stderr=bad))
    after = ex.submit(
        ["true"],
        JobResources(name="t.after", dependencies=(job,), stdout="/dev/null", stderr="/dev/null"),
    )
    wait_until(lambda: "E" in qstat_jobs().get(job, {}).get(None, ""), 20, f"job {job} in Eqw")
    status = ex.states([job])[job]
    assert status.state is JobState.FAILED
    assert "error state Eqw" in status.reason and "can't open output file" in status.reason
    assert str(tmp_path / "no-such-dir") in status.reason
    # deleted: it leaves qstat, and the job held behind it runs
    wait_until(lambda: not {job, after} & qstat_ids(), 30, "the Eqw job and its successor gone")
    record = wait_until(lambda: ex.states([after]).get(after), 20, "the successor's record")
    assert record.state is JobState.COMPLETED


# --------------------------------------------------------------------------- last: SGE ends jobs


def test_time_limit_fails_with_timeout(early_runs: dict[str, Run]) -> None:
    run = early_runs["timeout"]
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {"slow": {"FAILED": 1}, "after_slow": {"SKIPPED": 1}}
    (failed,) = _only_failed(run)
    text = failed["error_text"]
    assert failed["task_name"] == "slow"
    last = text.splitlines()[-1]
    assert last.startswith(f"the job hit its time limit (sge: job {failed['job_id']} TIMEOUT"), text
    assert "qmaster enforced h_rt" in last and "killed by SIGKILL" in last, text
    cli = _cli(
        PIPELINES / "sge_crash.py", "status", run.run_id, "--store-path", str(run.store.path)
    )
    assert cli.returncode == 0, cli.stderr
    assert f"slow  FAILED job {failed['job_id']}: the job hit its time limit" in cli.stdout
    assert not qstat_ids() & run_job_ids(run)


def test_memory_over_h_vmem_fails_out_of_memory(early_runs: dict[str, Run]) -> None:
    run = early_runs["memory"]
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    (failed,) = _only_failed(run)
    last = failed["error_text"].splitlines()[-1]
    assert last.startswith(f"the job ran out of memory (sge: job {failed['job_id']}"), last
    assert "OUT_OF_MEMORY" in last and "killed by SIGKILL" in last, last


def test_exit_code_100_fails_the_task_without_an_error_state(early_runs: dict[str, Run]) -> None:
    run = early_runs["exit100"]
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {"bail": {"FAILED": 1}, "after_bail": {"SKIPPED": 1}}
    (failed,) = _only_failed(run)
    last = failed["error_text"].splitlines()[-1]
    # the job script turned 100 into 1: SGE saw an ordinary failure, not Eqw
    assert last == (
        f"the job failed before the task could report (sge: job {failed['job_id']} FAILED, "
        "exit code 1:0)"
    ), last
    assert not qstat_ids() & run_job_ids(run)
