"""reflow on a real Slurm cluster: what a user sees when they submit, fail, retry and cancel.

Each test submits into its own run dir and store under tmp_path; the jobs
inherit the test's environment (HOME, XDG_*, RFTEST_CALLS), so the tmp paths
work inside them. The time-limit test dominates (Slurm enforces whole minutes
and checks limits about every 30 s): its run is submitted when this module
starts, and the test that checks it comes last.
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

import pl_crash
import pl_fail
import pl_fanout
import pl_files
import pl_hold
import pytest
from slurm_support import (
    PIPELINES,
    Cluster,
    SbatchSpy,
    run_job_ids,
    squeue_ids,
    status_text,
    wait_final,
    wait_until,
)

from reflow import Run, RunState
from reflow.executors import SlurmExecutor
from reflow.render import render_status
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


@pytest.fixture(scope="module")
def timeout_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """A run whose only job outlives its 1-minute limit, submitted as early as possible."""
    base = tmp_path_factory.mktemp("timeout")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("REFLOW_"):
                mp.delenv(key)
        for key, value in _isolated(base).items():
            mp.setenv(key, value)
        run = pl_crash.timeout_wf.submit(
            base / "run", executor="slurm", store=base / "manifest.db", seconds=600.0
        )
    yield run
    if run.state is RunState.RUNNING:
        run.cancel()


@pytest.fixture(scope="module", autouse=True)
def _start_slow_runs_first(request: pytest.FixtureRequest) -> None:
    """Submit the time-limit run before the other tests, so its minute overlaps theirs."""
    if any(item.name == "test_time_limit_fails_with_timeout" for item in request.session.items):
        request.getfixturevalue("timeout_run")


def _only_failed(run: Run) -> list[dict[str, Any]]:
    doc = run.status(as_dict=True)
    assert doc is not None
    return [i for i in doc["failed_instances"] if i["state"] == "FAILED"]


def _cli(script: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# --------------------------------------------------------------------------- success and cache


def test_fanout_chain_gather_reaches_success(
    cluster: Cluster, calls: Any, sbatch_spy: SbatchSpy
) -> None:
    run = cluster.submit(pl_fanout.wf, n=4)
    assert run.state is RunState.RUNNING  # submit returns at once; the cluster drives the rest
    first_jobs = run_job_ids(run)
    assert first_jobs and all(j.isdigit() for j in first_jobs)

    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("make") == [0, 1, 2, 3]
    assert run.outputs("square") == [0, 1, 4, 9]
    assert run.outputs("plus") == [1, 2, 5, 10]
    assert run.output("total") == 18
    assert calls.take() == {"make": 1, "square": 4, "plus": 4, "total": 1}
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {
        "make": {"SUCCESS": 1},
        "square": {"SUCCESS": 4},
        "plus": {"SUCCESS": 4},
        "total": {"SUCCESS": 1},
    }
    # every instance ran as a Slurm job, and logs landed in the run dir
    assert all(i["job_id"] for i in doc["instances"])
    assert (run.run_dir / "logs" / "square" / "3.out").exists()
    assert run.info()["dispatcher"] is None  # a finished run leaves nothing queued
    assert not squeue_ids() & run_job_ids(run)

    # the same submit again: nothing is submitted, everything is reused
    spy = SlurmExecutor(sbatch=str(sbatch_spy.path))
    again = cluster.submit(pl_fanout.wf, n=4, executor=spy)
    assert again.state is RunState.SUCCESS  # finished before submit returned
    assert again.run_id != run.run_id
    assert all(i["job_id"] is None for i in again.store.instances(again.run_id))
    assert all(i["cached"] for i in again.store.instances(again.run_id))
    assert again.info()["dispatcher"] is None
    assert again.output("total") == 18
    assert again.outputs("plus") == [1, 2, 5, 10]
    assert calls.take() == {}
    assert spy.calls["sbatch"] == 0 and sbatch_spy.ids() == []  # no job reached Slurm


def test_verify_reruns_only_the_task_whose_file_was_deleted(
    cluster: Cluster, calls: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    run = cluster.submit(pl_files.wf, n=3, out_dir=out)
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("sizes") == 3 * len("part0") * 3
    assert calls.take() == {"names": 1, "write:part0": 1, "write:part1": 1, "write:part2": 1,
                            "sizes": 1}  # fmt: skip

    (out / "part1.txt").unlink()
    # without verify the cache is trusted
    blind = cluster.submit(pl_files.wf, n=3, out_dir=out)
    assert blind.state is RunState.SUCCESS
    assert calls.take() == {}
    assert not (out / "part1.txt").exists()

    checked = cluster.submit(pl_files.wf, n=3, out_dir=out, verify=True)
    assert wait_final(checked, 60) is RunState.SUCCESS, status_text(checked)
    assert (out / "part1.txt").read_text() == "part1" * 3
    assert calls.take() == {"write:part1": 1}  # not its siblings, nor upstream or downstream
    rows = checked.store.instances(checked.run_id)
    by_key = {(i["task_name"], i["array_index"]): i for i in rows}
    assert not by_key[("write", 1)]["cached"] and by_key[("write", 1)]["job_id"]
    assert by_key[("write", 0)]["cached"] and by_key[("sizes", None)]["cached"]
    assert checked.output("sizes") == run.output("sizes")


def test_cache_is_shared_between_run_local_and_submit(
    cluster: Cluster, calls: Any, sbatch_spy: SbatchSpy
) -> None:
    local = pl_fanout.wf.run_local(cluster.run_dir(), store=cluster.store_path, n=3)
    assert local.state is RunState.SUCCESS
    assert calls.take() == {"make": 1, "square": 3, "plus": 3, "total": 1}

    spy = SlurmExecutor(sbatch=str(sbatch_spy.path))
    run = cluster.submit(pl_fanout.wf, n=3, executor=spy)
    assert run.state is RunState.SUCCESS
    instances = run.store.instances(run.run_id)
    assert len(instances) == 8
    assert all(i["cached"] and i["job_id"] is None for i in instances)
    assert run.output("total") == local.output("total") == 1 + 2 + 5
    assert calls.take() == {}
    assert spy.calls["sbatch"] == 0 and sbatch_spy.ids() == []


# --------------------------------------------------------------------------- failure and retry


def test_failing_task_shows_traceback_then_retry_succeeds(
    cluster: Cluster, calls: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    run = cluster.submit(pl_fail.wf, n=3, flag=str(flag))
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"]["up"] == {"SUCCESS": 1}
    assert doc["summary"]["work"] == {"SUCCESS": 2, "FAILED": 1}
    assert doc["summary"]["done"] == {"SKIPPED": 1}
    (failed,) = _only_failed(run)
    assert (failed["task_name"], failed["array_index"]) == ("work", 1)
    assert failed["job_id"] and re.fullmatch(r"\d+_1", failed["job_id"])
    text = failed["error_text"]
    assert "Traceback (most recent call last)" in text
    assert "in check_input" in text
    assert f"RuntimeError: element 1 needs the flag file {flag}" in text
    assert calls.take() == {"up": 1, "work": 3}

    cli = _cli(
        PIPELINES / "pl_fail.py",
        "status",
        run.run_id,
        "--errors",
        "--store-path",
        str(cluster.store_path),
    )
    assert cli.returncode == 0, cli.stderr
    assert "FAILED" in cli.stdout
    assert "Traceback (most recent call last)" in cli.stdout
    assert "RuntimeError: element 1 needs the flag file" in cli.stdout

    flag.touch()  # fix the cause
    reset = run.retry()
    assert reset >= 1
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.outputs("work") == [0, 10, 20]
    assert run.output("done") == 30
    assert calls.take() == {"work": 1, "done": 1}  # the upstream and the good elements stay


# ------------------------------------------------------------------ the scheduler ends a job


def test_sigkilled_worker_fails_with_the_scheduler_reason(cluster: Cluster) -> None:
    run = cluster.submit(pl_crash.kill_wf, n=1)
    assert wait_final(run, 45) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {"killed": {"FAILED": 1}, "after_kill": {"SKIPPED": 1}}
    (failed,) = _only_failed(run)
    text = failed["error_text"]
    assert failed["task_name"] == "killed"
    assert f"slurm: job {failed['job_id']} FAILED" in text, text
    assert "killed by SIGKILL" in text, text  # exit code 0:9, said in words
    # the one-line view of `status` shows the reason, not the end of the log
    shown = render_status(doc)
    line = f"killed  FAILED job {failed['job_id']}: the job failed before the task could report"
    assert line in shown, shown
    assert not squeue_ids() & run_job_ids(run)


def test_memory_hog_fails_with_the_scheduler_reason(cluster: Cluster) -> None:
    # the test cluster enforces --mem by sampling (JobAcctGatherParams=OverMemoryKill)
    run = cluster.submit(pl_crash.memory_wf, megabytes=1024)
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    (failed,) = _only_failed(run)
    text = failed["error_text"]
    assert "exceeded memory limit" in text, text  # the scheduler's own words, from its log
    last = text.splitlines()[-1]
    assert last.startswith("the job ran out of memory (slurm: job"), text
    assert "killed by SIGKILL" in last, text


# --------------------------------------------------------------------------- live runs


def test_status_of_a_running_run_shows_live_running_states(
    cluster: Cluster, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run = cluster.submit(pl_hold.hold_wf, gate=str(gate))
    (inst,) = [i for i in run.store.instances(run.run_id) if i["task_name"] == "hold"]
    assert inst["state"] == "SUBMITTED"  # what the store knows until a dispatcher pass

    def live() -> dict[str, Any] | None:
        doc = run.status(as_dict=True)
        assert doc is not None
        return doc if doc["summary"]["hold"] == {"RUNNING": 1} else None

    doc = wait_until(live, 30, "'hold' shown RUNNING", run)
    assert doc["run"]["status"] == "RUNNING"
    (hold,) = [i for i in doc["instances"] if i["task_name"] == "hold"]
    assert hold["state"] == "RUNNING" and hold["job_state"] == "RUNNING"
    assert doc["warnings"] == []  # a dispatcher is queued behind it
    cli = _cli(
        PIPELINES / "pl_hold.py",
        "status",
        run.run_id,
        "--store-path",
        str(cluster.store_path),
    )
    assert cli.returncode == 0, cli.stderr
    assert re.search(r"hold\s+1\s+1 RUNNING", cli.stdout), cli.stdout

    gate.touch()
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("after_hold") == "OPENED"


def test_cancel_leaves_no_job_in_squeue(cluster: Cluster, tmp_path: Path) -> None:
    run = cluster.submit(pl_hold.hold_wf, gate=str(tmp_path / "never"))
    dispatcher = run.info()["dispatcher"]
    assert dispatcher, "a dispatcher job is chained behind the first wave"
    wait_until(
        lambda: (run.status(as_dict=True) or {})["summary"]["hold"] == {"RUNNING": 1},
        30,
        "'hold' running",
        run,
    )
    ids = run_job_ids(run)  # 'hold', the dispatcher, and 'after_hold' if submitted ahead
    assert dispatcher in ids and len(ids) >= 2
    assert ids <= {j.split("_", 1)[0] for j in squeue_ids()}

    assert run.cancel() >= 1
    assert run.state is RunState.CANCELLED
    assert run.info()["dispatcher"] is None
    wait_until(lambda: not squeue_ids() & ids, 20, f"jobs {sorted(ids)} gone from squeue", run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"]["hold"] == {"CANCELLED": 1}
    assert doc["summary"]["after_hold"] in ({}, {"CANCELLED": 1})
    # nothing of the run comes back (no dispatcher pass resubmits it)
    time.sleep(2)
    assert not squeue_ids() & (run_job_ids(run) | ids)
    assert run.state is RunState.CANCELLED


def test_array_parallelism_is_honoured(cluster: Cluster, tmp_path: Path) -> None:
    stamps = tmp_path / "stamps"
    run = cluster.submit(pl_hold.par_wf, n=6, stamps=str(stamps))
    assert wait_final(run, 90) is RunState.SUCCESS, status_text(run)
    assert run.outputs("stamp") == list(range(6))
    spans = []
    arrays = set()
    for k in range(6):
        start, end, array_job = (stamps / f"{k}.txt").read_text().split()
        spans.append((float(start), float(end)))
        arrays.add(array_job)
    assert len(arrays) == 1  # one array job, throttled by Slurm (not six jobs)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:  # at equal times an end sorts before a start
        running += step
        peak = max(peak, running)
    assert peak <= 2, spans


# --------------------------------------------------------------------------- the command line


def test_cli_submit_prints_run_id_and_job_ids(
    cluster: Cluster, tmp_path: Path, sbatch_spy: SbatchSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = PIPELINES / "pl_fanout.py"
    monkeypatch.setenv("REFLOW_SBATCH", str(sbatch_spy.path))  # the command path override
    res = _cli(
        script,
        "submit",
        "--run-dir",
        str(tmp_path / "cli-run"),
        "--executor",
        "slurm",
        "--store-path",
        str(cluster.store_path),
        "--n",
        "2",
    )
    assert res.returncode == 0, res.stderr
    m = re.search(
        r"submitted run (rt-fanout-\d{8}-\w+) to slurm: \d+ jobs? \(([\d, ]+)\), "
        r"dispatcher (\d+)",
        res.stdout,
    )
    assert m, res.stdout
    run_id, listed, dispatcher = m.groups()
    jobs = listed.split(", ")
    assert f"status {run_id}" in res.stdout
    # the first jobs sbatch answered are those `submit` printed (a dispatcher job may since
    # have submitted more)
    assert sorted(sbatch_spy.ids()[: len(jobs) + 1]) == sorted([*jobs, dispatcher])
    run = Run(run_id, SqliteStore(cluster.store_path))
    cluster.runs.append(run)
    assert set(jobs) <= run_job_ids(run)
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("total") == 1 + 2
    assert run.info()["options"]["origin"] == {"script": str(script)}
    # later dispatcher passes used the same sbatch, and every job of the run went through it
    assert run_job_ids(run) <= set(sbatch_spy.ids())


def test_cli_submit_dry_run_prints_script_and_records_nothing(
    cluster: Cluster, tmp_path: Path, sbatch_spy: SbatchSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFLOW_SBATCH", str(sbatch_spy.path))
    res = _cli(
        PIPELINES / "pl_fanout.py",
        "submit",
        "--run-dir",
        str(tmp_path / "dry"),
        "--executor",
        "dry-run",
        "--store-path",
        str(cluster.store_path),
        "--n",
        "2",
    )
    assert res.returncode == 0, res.stderr
    assert "#!/bin/bash" in res.stdout
    assert "#SBATCH --job-name=rt-fanout.make" in res.stdout
    assert "#SBATCH --time=00:05:00" in res.stdout
    assert "-m reflow worker" in res.stdout
    assert "nothing was submitted and nothing was recorded" in res.stdout
    assert SqliteStore(cluster.store_path).list_runs() == []
    assert not list((tmp_path / "dry").glob("work/*"))
    assert sbatch_spy.ids() == [] and not sbatch_spy.log.exists()


# --------------------------------------------------------------------------- last: the time limit


def test_time_limit_fails_with_timeout(timeout_run: Run) -> None:
    """Submitted when the module started (see `_start_slow_runs_first`)."""
    run = timeout_run
    # limit 60 s, checked by slurmctld about every 30 s, then a dispatcher pass
    assert wait_final(run, 180) is RunState.FAILED, status_text(run)
    (failed,) = _only_failed(run)
    text = failed["error_text"]
    assert failed["task_name"] == "slow"
    assert "the job hit its time limit" in text, text
    assert f"slurm: job {failed['job_id']} TIMEOUT" in text, text
    cli = _cli(PIPELINES / "pl_crash.py", "status", run.run_id, "--store-path", str(run.store.path))
    assert cli.returncode == 0, cli.stderr
    assert f"slow  FAILED job {failed['job_id']}: the job hit its time limit" in cli.stdout
    assert not squeue_ids() & run_job_ids(run)


# ------------------------------------------------------------------ robustness of the chain


def test_a_dispatcher_that_dies_is_noticed_and_retry_resumes(
    cluster: Cluster, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run = cluster.submit(pl_hold.hold_wf, gate=str(gate))
    dispatcher = run.info()["dispatcher"]
    assert dispatcher
    subprocess.run(["scancel", dispatcher], check=True, timeout=30)

    def warned() -> str | None:
        doc = run.status(as_dict=True)
        assert doc is not None
        hits = [w for w in doc["warnings"] if f"dispatcher job {dispatcher} ended" in w]
        return hits[0] if hits else None

    warning = wait_until(warned, 30, "status to notice the dead dispatcher", run)
    assert f"retry {run.run_id}" in warning
    assert f"warning: {warning}" in render_status(run.status(as_dict=True) or {})
    gate.touch()  # the task jobs finish, but nothing would ingest them
    wait_until(
        lambda: not squeue_ids() & run_job_ids(run), 60, "the task jobs to leave the queue", run
    )
    assert run.state is RunState.RUNNING  # stalled, not lost
    run.retry()
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("after_hold") == "OPENED"


def test_arrays_above_the_limit_are_split_into_several_jobs(cluster: Cluster) -> None:
    run = cluster.submit(pl_fanout.wf, executor=SlurmExecutor(max_array_size=3), n=7)
    assert wait_final(run, 90) is RunState.SUCCESS, status_text(run)
    assert run.outputs("plus") == [x * x + 1 for x in range(7)]
    assert run.output("total") == sum(x * x + 1 for x in range(7))
    jobs = {i["job_id"].split("_", 1)[0] for i in run.store.instances(run.run_id, task="square")}
    assert len(jobs) == 3  # elements 0-2, 3-5 and 6: three arrays of at most 3
