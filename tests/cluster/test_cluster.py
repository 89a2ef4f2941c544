"""reflow on a real cluster: what a user sees when they submit, fail, retry and cancel.

Every case runs on each scheduler (schedulers.py says what differs). Each test
submits into its own run dir and store under tmp_path; the jobs inherit the
test's environment (HOME, XDG_*, RFTEST_CALLS; SGE's through `qsub -V`), so
the tmp paths work inside them. The runs the scheduler ends (time limit,
memory) are submitted when this module starts, so their waiting overlaps the
other tests (Slurm enforces whole minutes and checks limits about every 30 s);
the tests that check them come last.
"""

from __future__ import annotations

import os
import re
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
from case_helpers import only_failed, run_job_ids, run_script
from schedulers import PIPELINES, SCHEDULERS, Scheduler, every_scheduler

from cluster_support import Cluster, SubmitSpy, status_text, wait_final, wait_until
from reflow import Run, RunState, Workflow
from reflow.render import render_status
from reflow.results import log_paths
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
    factory: pytest.TempPathFactory, name: str, sched: Scheduler, wf: Workflow, **params: Any
) -> Run:
    base = factory.mktemp(f"{sched.name}-{name}")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("REFLOW_"):
                mp.delenv(key)
        for key, value in _isolated(base).items():
            mp.setenv(key, value)
        if name == "timeout":  # killed at its limit with no warning first (see pl_limits)
            mp.setenv("REFLOW_GRACE", "0")
        return wf.submit(base / "run", executor=sched.name, store=base / "manifest.db", **params)


def _early(sched: Scheduler) -> dict[str, tuple[Workflow, dict[str, Any]]]:
    """The runs the scheduler ends, by name: workflow and parameters."""
    return {
        "timeout": (pl_crash.timeout_wf, {"seconds": 600.0}),
        "memory": (pl_crash.memory_wf, {"megabytes": sched.memory_megabytes}),
    }


class EarlyRuns:
    """The runs each scheduler ends, submitted (all of a scheduler's at once) when first asked."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.runs: dict[str, dict[str, Run]] = {}

    def of(self, sched: Scheduler) -> dict[str, Run]:
        if sched.name not in self.runs:
            self.runs[sched.name] = {
                name: _submit_isolated(self.factory, name, sched, wf, **params)
                for name, (wf, params) in _early(sched).items()
            }
        return self.runs[sched.name]

    def cancel(self) -> None:
        for runs in self.runs.values():
            for run in runs.values():
                if run.state is RunState.RUNNING:
                    run.cancel()


@pytest.fixture(scope="module")
def early_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EarlyRuns]:
    early = EarlyRuns(tmp_path_factory)
    yield early
    early.cancel()


@pytest.fixture(scope="module", autouse=True)
def _start_slow_runs_first(request: pytest.FixtureRequest) -> None:
    """Submit the runs the scheduler ends before the other tests, so their waits overlap."""
    wanted = {
        item.callspec.params["scheduler"]
        for item in request.session.items
        if "early_runs" in getattr(item, "fixturenames", ()) and hasattr(item, "callspec")
    }
    for name in sorted(wanted):
        if SCHEDULERS[name].problem is None:  # else its tests skip (or fail) by themselves
            request.getfixturevalue("early_runs").of(SCHEDULERS[name])


# --------------------------------------------------------------------------- success and cache


@every_scheduler
def test_fanout_chain_gather_reaches_success(
    scheduler: Scheduler, cluster: Cluster, calls: Any, submit_spy: SubmitSpy
) -> None:
    # the items are not their indices: an element that read its neighbour's input would show
    run = cluster.submit(pl_fanout.wf, n=4, first=3, step=10)
    assert run.state is RunState.RUNNING  # submit returns at once; the cluster drives the rest
    first_jobs = run_job_ids(scheduler, run)
    assert first_jobs and all(j.isdigit() for j in first_jobs)

    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    items = [3, 13, 23, 33]
    assert run.output("make") == items
    # element i got item i, although SGE numbers the array tasks from 1
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
    # every instance ran as a job of the scheduler; array elements are its own ids
    assert all(i["job_id"] for i in doc["instances"])
    by_key = {(i["task_name"], i["array_index"]): i["job_id"] for i in doc["instances"]}
    square_job = scheduler.job_of(by_key[("square", 0)])
    for k in range(4):
        element = scheduler.element_job_id(square_job, k)
        assert by_key[("square", k)] == element
        # logs landed in the run dir; the worker's header names its element
        log = log_paths(run.run_dir, run.run_id, "square", k, 1)[0].read_text()
        assert f"job {element}\n" in log
        assert f"square of {items[k]} in {scheduler.title} task {k + scheduler.index_base}" in log
        # the scheduler's own log of the element is where the dispatcher looks for it
        assert (run.run_dir / "logs" / "square" / "scheduler" / f"{element}.log").exists()
    assert re.fullmatch(r"\d+", by_key[("make", None)])
    assert run.info()["dispatcher"] is None  # a finished run leaves nothing queued
    assert not scheduler.queue_ids() & run_job_ids(scheduler, run)

    # the same submit again: nothing is submitted, everything is reused
    spy = scheduler.executor(submit=submit_spy.path)
    again = cluster.submit(pl_fanout.wf, n=4, first=3, step=10, executor=spy)
    assert again.state is RunState.SUCCESS  # finished before submit returned
    assert again.run_id != run.run_id
    assert all(i["job_id"] is None for i in again.store.instances(again.run_id))
    assert all(i["cached"] for i in again.store.instances(again.run_id))
    assert again.info()["dispatcher"] is None
    assert again.output("total") == run.output("total") == sum(x * x + 1 for x in items)
    assert again.outputs("plus") == [x * x + 1 for x in items]
    assert calls.take() == {}
    # no job reached the scheduler
    assert spy.calls[scheduler.submit_tool] == 0 and submit_spy.ids() == []


@every_scheduler
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


@every_scheduler
def test_cache_is_shared_between_run_local_and_submit(
    scheduler: Scheduler, cluster: Cluster, calls: Any, submit_spy: SubmitSpy
) -> None:
    local = pl_fanout.wf.run_local(cluster.run_dir(), store=cluster.store_path, n=3)
    assert local.state is RunState.SUCCESS
    assert calls.take() == {"make": 1, "square": 3, "plus": 3, "total": 1}

    spy = scheduler.executor(submit=submit_spy.path)
    run = cluster.submit(pl_fanout.wf, n=3, executor=spy)
    assert run.state is RunState.SUCCESS
    instances = run.store.instances(run.run_id)
    assert len(instances) == 8
    assert all(i["cached"] and i["job_id"] is None for i in instances)
    assert run.output("total") == local.output("total") == 1 + 2 + 5
    assert calls.take() == {}
    assert spy.calls[scheduler.submit_tool] == 0 and submit_spy.ids() == []


# --------------------------------------------------------------------------- failure and retry


@every_scheduler
def test_failing_element_shows_traceback_then_retry_succeeds(
    scheduler: Scheduler, cluster: Cluster, calls: Any, tmp_path: Path
) -> None:
    flag = tmp_path / "flag"
    run = cluster.submit(pl_fail.wf, n=3, flag=str(flag))
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"]["up"] == {"SUCCESS": 1}
    assert doc["summary"]["work"] == {"SUCCESS": 2, "FAILED": 1}
    assert doc["summary"]["done"] == {"SKIPPED": 1}
    (failed,) = only_failed(run)
    assert (failed["task_name"], failed["array_index"]) == ("work", 1)
    # element 1: Slurm's task 1, SGE's task 2
    assert failed["job_id"] and re.fullmatch(scheduler.element_pattern(1), failed["job_id"])
    text = failed["error_text"]
    assert "Traceback (most recent call last)" in text
    assert "in check_input" in text
    assert f"RuntimeError: element 1 needs the flag file {flag}" in text
    assert calls.take() == {"up": 1, "work": 3}

    cli = run_script(
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
    # the job's stderr, on the shared file system, as `logs` shows it
    logs = ("logs", run.run_id, "work", "1", "--err", "--store-path", str(cluster.store_path))
    cli = run_script(PIPELINES / "pl_fail.py", *logs)
    assert cli.returncode == 0, cli.stderr
    assert cli.stdout.startswith("Traceback (most recent call last)"), cli.stdout
    assert f"RuntimeError: element 1 needs the flag file {flag}" in cli.stdout

    flag.touch()  # fix the cause
    reset = run.retry()
    assert reset >= 1
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.outputs("work") == [0, 10, 20]
    assert run.output("done") == 30
    assert calls.take() == {"work": 1, "done": 1}  # the upstream and the good elements stay
    # the retry's attempt has files of its own; attempt 1's are kept
    assert run.log("work", 1, err=True) == ""
    cli = run_script(PIPELINES / "pl_fail.py", *logs, "--attempt", "1")
    assert f"RuntimeError: element 1 needs the flag file {flag}" in cli.stdout, cli.stderr


# ------------------------------------------------------------------ the scheduler ends a job


@every_scheduler
def test_sigkilled_worker_fails_with_the_scheduler_reason(
    scheduler: Scheduler, cluster: Cluster
) -> None:
    run = cluster.submit(pl_crash.kill_wf, n=1)
    assert wait_final(run, 45) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {"killed": {"FAILED": 1}, "after_kill": {"SKIPPED": 1}}
    (failed,) = only_failed(run)
    text = failed["error_text"]
    assert failed["task_name"] == "killed"
    assert f"{scheduler.name}: job {failed['job_id']} FAILED" in text, text
    assert "killed by SIGKILL" in text, text  # Slurm's exit code 0:9, said in words
    # the one-line view of `status` shows the reason, not the end of the log
    shown = render_status(doc)
    line = (
        f"killed  FAILED (ERROR) job {failed['job_id']}: "
        "the job failed before the task could report"
    )
    assert line in shown, shown
    assert not scheduler.queue_ids() & run_job_ids(scheduler, run)


# --------------------------------------------------------------------------- live runs


@every_scheduler
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
    cli = run_script(
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


@every_scheduler
def test_cancel_leaves_no_job_in_the_queue(
    scheduler: Scheduler, cluster: Cluster, tmp_path: Path
) -> None:
    run = cluster.submit(pl_hold.hold_wf, gate=str(tmp_path / "never"))
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
    ids = run_job_ids(scheduler, run)  # 'hold', the dispatcher, and 'after_hold' if ahead
    assert dispatcher in ids and len(ids) >= 2
    assert ids <= scheduler.queued_jobs()
    assert scheduler.queue_state(dispatcher) == scheduler.held  # held behind the first wave

    assert run.cancel() >= 1
    assert run.state is RunState.CANCELLED
    assert run.info()["dispatcher"] is None
    wait_until(
        lambda: not scheduler.queue_ids() & ids, 20, f"jobs {sorted(ids)} gone from the queue", run
    )
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"]["hold"] == {"CANCELLED": 1}
    assert doc["summary"]["after_hold"] in ({}, {"CANCELLED": 1})
    # nothing of the run comes back (no dispatcher pass resubmits it)
    time.sleep(2)
    assert not scheduler.queue_ids() & (run_job_ids(scheduler, run) | ids)
    assert run.state is RunState.CANCELLED


@every_scheduler
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
    assert len(arrays) == 1  # one array job, throttled by the scheduler (not six jobs)
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, step in events:  # at equal times an end sorts before a start
        running += step
        peak = max(peak, running)
    assert peak == 2, spans  # at most two at once, and the cluster had room for two


# --------------------------------------------------------------------------- the command line


@every_scheduler
@pytest.mark.parametrize("chosen_by", ["executor-flag", "REFLOW_MODE"])
def test_cli_submit_prints_run_id_and_job_ids(
    scheduler: Scheduler,
    cluster: Cluster,
    tmp_path: Path,
    submit_spy: SubmitSpy,
    chosen_by: str,
) -> None:
    """The same pipeline file, the scheduler chosen by a flag or by REFLOW_MODE, and the
    submit command replaced (REFLOW_SBATCH, REFLOW_QSUB)."""
    script = PIPELINES / "pl_fanout.py"
    env = dict(os.environ)
    env[f"REFLOW_{scheduler.submit_tool.upper()}"] = str(submit_spy.path)
    args = ["--executor", scheduler.name] if chosen_by == "executor-flag" else []
    if chosen_by == "REFLOW_MODE":
        env["REFLOW_MODE"] = scheduler.name
    res = run_script(
        script,
        "submit",
        "--run-dir",
        str(tmp_path / "cli-run"),
        *args,
        "--store-path",
        str(cluster.store_path),
        "--n",
        "2",
        "--first",
        "3",
        "--step",
        "10",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    m = re.search(
        rf"submitted run (rt-fanout-\d{{8}}-\w+) to {scheduler.name}: \d+ jobs? \(([\d, ]+)\), "
        r"dispatcher (\d+)",
        res.stdout,
    )
    assert m, res.stdout
    run_id, listed, dispatcher = m.groups()
    jobs = listed.split(", ")
    assert f"status {run_id}" in res.stdout
    # the first jobs the submit command answered are those `submit` printed (a dispatcher job
    # may since have submitted more)
    assert sorted(submit_spy.ids()[: len(jobs) + 1]) == sorted([*jobs, dispatcher])
    run = Run(run_id, SqliteStore(cluster.store_path))
    cluster.runs.append(run)
    assert run.info()["executor"] == scheduler.name
    assert set(jobs) <= run_job_ids(scheduler, run)
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("total") == (3 * 3 + 1) + (13 * 13 + 1)
    assert run.info()["options"]["origin"] == {"script": str(script)}
    # later dispatcher passes used the same submit command, and every job of the run went
    # through it
    assert run_job_ids(scheduler, run) <= set(submit_spy.ids())


# ------------------------------------------------------------------ robustness of the chain


@every_scheduler
def test_a_dispatcher_that_dies_is_noticed_and_retry_resumes(
    scheduler: Scheduler, cluster: Cluster, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run = cluster.submit(pl_hold.hold_wf, gate=str(gate))
    dispatcher = run.info()["dispatcher"]
    assert dispatcher
    scheduler.cancel_job(dispatcher)

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
        lambda: not scheduler.queue_ids() & run_job_ids(scheduler, run),
        60,
        "the task jobs to leave the queue",
        run,
    )
    assert run.state is RunState.RUNNING  # stalled, not lost
    run.retry()
    assert wait_final(run, 60) is RunState.SUCCESS, status_text(run)
    assert run.output("after_hold") == "OPENED"


@every_scheduler
def test_arrays_above_the_limit_are_split_into_several_jobs(
    scheduler: Scheduler, cluster: Cluster
) -> None:
    run = cluster.submit(pl_fanout.wf, executor=scheduler.executor(max_array_size=3), n=7)
    assert wait_final(run, 90) is RunState.SUCCESS, status_text(run)
    assert run.outputs("plus") == [x * x + 1 for x in range(7)]
    assert run.output("total") == sum(x * x + 1 for x in range(7))
    jobs = {scheduler.job_of(i["job_id"]) for i in run.store.instances(run.run_id, task="square")}
    assert len(jobs) == 3  # elements 0-2, 3-5 and 6: three arrays of at most 3


# ---------------------------------------------------------- last: the scheduler ends jobs


@every_scheduler
def test_memory_hog_fails_out_of_memory(scheduler: Scheduler, early_runs: EarlyRuns) -> None:
    # Slurm's test cluster enforces --mem by sampling (JobAcctGatherParams=OverMemoryKill);
    # SGE's, h_vmem
    run = early_runs.of(scheduler)["memory"]
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    (failed,) = only_failed(run)
    text = failed["error_text"]
    for words in scheduler.memory_log_words:  # the scheduler's own words, from its log
        assert words in text, text
    last = text.splitlines()[-1]
    assert last.startswith(
        f"the job ran out of memory ({scheduler.name}: job {failed['job_id']}"
    ), text
    assert "killed by SIGKILL" in last, text
    for words in scheduler.memory_words:
        assert words in last, last


@every_scheduler
def test_time_limit_fails_with_timeout(scheduler: Scheduler, early_runs: EarlyRuns) -> None:
    """Submitted when the module started (see `_start_slow_runs_first`)."""
    run = early_runs.of(scheduler)["timeout"]
    # limit 60 s (checked by slurmctld about every 30 s), then a dispatcher pass
    assert wait_final(run, 180) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {"slow": {"FAILED": 1}, "after_slow": {"SKIPPED": 1}}
    (failed,) = only_failed(run)
    text = failed["error_text"]
    assert failed["task_name"] == "slow"
    assert "the job hit its time limit" in text, text
    assert f"{scheduler.name}: job {failed['job_id']} TIMEOUT" in text, text
    last = text.splitlines()[-1]
    assert last.startswith(
        f"the job hit its time limit ({scheduler.name}: job {failed['job_id']} TIMEOUT"
    ), text
    for words in scheduler.timeout_words:
        assert words in last, text
    cli = run_script(
        PIPELINES / "pl_crash.py", "status", run.run_id, "--store-path", str(run.store.path)
    )
    assert cli.returncode == 0, cli.stderr
    assert (
        f"slow  FAILED (TIMEOUT) job {failed['job_id']}: the job hit its time limit" in cli.stdout
    )
    assert not scheduler.queue_ids() & run_job_ids(scheduler, run)
