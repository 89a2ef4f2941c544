"""Automatic retries: `retries=`, `retry_on=`, `retry_delay=`/`backoff=`, escalation.

Through `run_local` (the inline driver and the process pool), the store's
attempt rows, the rule itself (`reflow.retrying`, pure functions) and what
`@wf.job` refuses.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, RunState, Workflow
from reflow.dispatch import dispatch_pass
from reflow.errors import TaskFailedError, ValidationError
from reflow.executors.base import Executor, JobResources, JobState, JobStatus
from reflow.flow import TaskSpec
from reflow.instances import execute
from reflow.results import Wave, write_result
from reflow.retrying import Limits, Used, first_resources, next_attempt, used_before
from reflow.stores import open_store


def _flaky(folder: Path, fails: int, **options: Any) -> Workflow:
    """One task, `flaky`, that raises the first `fails` times it runs (counted in `folder`)."""
    wf = Workflow("flaky")

    @wf.job(**options)
    def flaky() -> int:
        runs = len(list(folder.glob("ran-*")))
        (folder / f"ran-{runs}").touch()
        if runs < fails:
            raise RuntimeError(f"broken on run {runs + 1}")
        return runs

    return wf


def _failing(wf: Workflow, run_dir: Path) -> Any:
    """The FAILED run of `wf` (run_local raises at a failure: the run is on the error)."""
    with pytest.raises(TaskFailedError) as caught:
        wf.run_local(run_dir)
    return caught.value.run


def _attempts(store: Any, run_id: str, task: str, index: int = -1) -> list[Any]:
    return store.instance_attempts(run_id, task, index)


def test_a_task_that_fails_twice_then_succeeds_runs_three_times(
    tmp_path: Path, any_store: str
) -> None:
    run = _flaky(tmp_path, 2, retries=2).run_local(tmp_path / "r", store=any_store)
    assert run.state is RunState.SUCCESS and run.output("flaky") == 2
    rows = _attempts(run.store, run.run_id, "flaky")
    assert [(r.attempt, r.current, r.state, r.failure_kind) for r in rows] == [
        (1, False, "FAILED", "ERROR"),
        (2, False, "FAILED", "ERROR"),
        (3, True, "SUCCESS", None),
    ]
    assert "broken on run 1" in rows[0].error_text and "broken on run 2" in rows[1].error_text
    assert all(r.started and r.finished and r.started <= r.finished for r in rows)
    assert rows[0].finished <= rows[1].started <= rows[1].finished <= rows[2].started
    assert run.store.reasons(run.run_id, "flaky") == {
        (-1, 2): "tried again automatically after ERROR (retry 1 of 2)",
        (-1, 3): "tried again automatically after ERROR (retry 2 of 2)",
    }


def test_exhausted_retries_keep_the_last_error_and_the_run_fails(tmp_path: Path) -> None:
    run = _failing(_flaky(tmp_path, 5, retries=1), tmp_path / "r")
    assert run.state is RunState.FAILED
    rows = _attempts(run.store, run.run_id, "flaky")
    assert [(r.attempt, r.state) for r in rows] == [(1, "FAILED"), (2, "FAILED")]
    (failed,) = run.status(as_dict=True)["failed_instances"]  # type: ignore[index]
    assert failed["attempt"] == 2 and "broken on run 2" in failed["error_text"]
    assert len(list(tmp_path.glob("ran-*"))) == 2


def test_retry_on_leaves_failures_it_does_not_name_failed(tmp_path: Path) -> None:
    run = _failing(_flaky(tmp_path, 1, retries=3, retry_on=["OOM", "TIMEOUT"]), tmp_path / "r")
    assert run.state is RunState.FAILED
    assert [r.attempt for r in _attempts(run.store, run.run_id, "flaky")] == [1]


def test_a_retried_failure_does_not_stop_the_run_nor_its_siblings(tmp_path: Path) -> None:
    # on_error="stop" (the default) stops the run at a failure that stays failed, not at
    # one that is tried again: the other elements of the wave all run
    wf = Workflow("wave")
    marker = tmp_path / "failed-once"

    @wf.job()
    def items() -> list[int]:
        return [0, 1, 2, 3]

    @wf.array_job(retries=1)
    def each(x: Annotated[int, Result(step="items")]) -> int:
        if x == 1 and not marker.exists():
            marker.touch()
            raise ValueError("once")
        return x

    run = wf.run_local(tmp_path / "r")
    assert run.state is RunState.SUCCESS and run.outputs("each") == [0, 1, 2, 3]
    assert [r.attempt for r in _attempts(run.store, run.run_id, "each", 1)] == [1, 2]
    assert [r.attempt for r in _attempts(run.store, run.run_id, "each", 2)] == [1]


def test_delays_grow_by_the_backoff_factor(tmp_path: Path) -> None:
    run = _flaky(tmp_path, 2, retries=2, retry_delay=0.2, backoff=2.0).run_local(tmp_path / "r")
    assert run.state is RunState.SUCCESS
    rows = _attempts(run.store, run.run_id, "flaky")
    first, second = (rows[k + 1].started - rows[k].finished for k in (0, 1))
    assert 0.2 <= first < 0.4 <= second < 0.8  # 0.2 s, then 0.2 * 2


def test_a_pool_worker_killed_by_sigkill_is_retried(tmp_path: Path) -> None:
    wf = Workflow("killed")
    wf.job(retries=1)(_dies_once)
    run = wf.run_local(tmp_path / "r", max_workers=2, marker=str(tmp_path / "died"))
    assert run.state is RunState.SUCCESS and run.output("_dies_once") == "survived"
    rows = _attempts(run.store, run.run_id, "_dies_once")
    assert [(r.attempt, r.state, r.failure_kind) for r in rows] == [
        (1, "FAILED", "ERROR"),
        (2, "SUCCESS", None),
    ]
    assert "killed by SIGKILL" in rows[0].error_text


def _dies_once(marker: str) -> str:
    """A task (importable by name: it runs in a pool worker) that SIGKILLs its process once."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def test_a_callable_mem_is_asked_again_for_each_attempt(tmp_path: Path) -> None:
    seen: list[int] = []

    def mem(attempt: int) -> str:
        seen.append(attempt)
        return f"{4 * attempt}G"

    run = _flaky(tmp_path, 2, retries=2, mem=mem, time="10").run_local(tmp_path / "r")
    rows = _attempts(run.store, run.run_id, "flaky")
    assert [r.resources for r in rows] == [
        {"mem": "4G", "time": "10"},
        {"mem": "8G", "time": "10"},
        {"mem": "12G", "time": "10"},
    ]
    assert seen[0] == 1 and max(seen) == 3  # attempt 1 when the task was defined


def test_a_manual_retry_gives_a_fresh_budget(tmp_path: Path) -> None:
    run = _failing(_flaky(tmp_path, 3, retries=1), tmp_path / "r")
    assert run.state is RunState.FAILED  # runs 1 and 2 failed
    store = open_store(run.store.location)
    from reflow import Run

    again = Run(run.run_id, store, workflow=_flaky(tmp_path, 3, retries=1))
    again.retry()  # run 3 fails, its automatic retry (run 4) succeeds
    assert again.state is RunState.SUCCESS
    rows = _attempts(store, run.run_id, "flaky")
    assert [(r.attempt, r.state) for r in rows] == [
        (1, "FAILED"), (2, "FAILED"), (3, "FAILED"), (4, "SUCCESS"),
    ]  # fmt: skip


# ---------------------------------------------------------------------- the rule


def _spec(**options: Any) -> TaskSpec:
    wf = Workflow("rule")
    wf.job(**options)(_returns_one)
    return wf.tasks["_returns_one"]


def _returns_one() -> int:
    return 1


def _next(spec: TaskSpec, kind: str, asked: dict[str, Any] | None, **limits: Any) -> Any:
    return next_attempt(spec, kind, 1, asked, Used(), Limits(**limits))


def test_an_oom_doubles_the_memory_only_and_a_timeout_the_time_only() -> None:
    spec = _spec(retries=3, mem="3G", time="01:00:00", cpus=2)
    asked = first_resources(spec)
    assert asked == {"mem": "3G", "time": "01:00:00", "cpus": 2}
    oom = _next(spec, "OOM", asked)
    assert oom.attempt == 2 and oom.resources == {"mem": "6G", "time": "01:00:00", "cpus": 2}
    late = _next(spec, "TIMEOUT", asked)
    assert late.resources == {"mem": "3G", "time": "02:00:00", "cpus": 2}
    assert _next(spec, "ERROR", asked).resources == asked


def test_escalation_is_capped_by_the_task_the_config_and_the_partition() -> None:
    asked = {"mem": "3G", "time": "01:00:00"}
    assert _next(_spec(retries=1, max_mem="4G"), "OOM", asked).resources["mem"] == "4G"
    config = _next(_spec(retries=1), "OOM", asked, max_mem="5000M")
    assert config.resources["mem"] == "5000M"
    mine = _next(_spec(retries=1, max_mem="4G"), "OOM", asked, max_mem="5000M")
    assert mine.resources["mem"] == "4G"  # the task's own cap wins
    node = _next(_spec(retries=1), "OOM", asked, partition_mem=5 << 30)
    assert node.resources["mem"] == "5120M"  # what the largest node has
    assert _next(_spec(retries=1), "OOM", asked, partition_mem=1 << 30).resources["mem"] == "3G"
    slow = _next(_spec(retries=1, max_time="90"), "TIMEOUT", asked)
    assert slow.resources["time"] == "01:30:00"
    assert _next(_spec(retries=1), "TIMEOUT", asked, partition_seconds=4000).resources["time"] == (
        "01:06:40"
    )


def test_without_escalation_or_with_a_callable_the_doubling_rule_is_off() -> None:
    asked = {"mem": "3G", "time": "01:00:00"}
    assert _next(_spec(retries=1, escalate=False), "OOM", asked).resources == asked
    spec = _spec(retries=1, mem=lambda attempt: f"{attempt}G", time="01:00:00")
    assert _next(spec, "OOM", {"mem": "1G", "time": "01:00:00"}).resources["mem"] == "2G"
    timeout = _next(spec, "TIMEOUT", {"mem": "1G", "time": "01:00:00"})
    assert timeout.resources == {"mem": "2G", "time": "02:00:00"}


def test_preemption_requeues_without_using_retries_but_is_bounded() -> None:
    spec = _spec(retries=0, mem="1G")
    again = next_attempt(spec, "PREEMPTED", 1, {"mem": "1G"}, Used(), Limits(max_requeues=2))
    assert again is not None and again.delay == 0 and again.resources == {"mem": "1G"}
    assert again.used == Used(0, 1)
    assert next_attempt(spec, "NODE_FAIL", 3, None, Used(0, 2), Limits(max_requeues=2)) is None
    assert next_attempt(spec, "ERROR", 1, None, Used(), Limits()) is None  # retries=0


def test_the_budget_is_counted_along_the_automatic_attempts_only() -> None:
    reasons = {
        2: "tried again automatically after OOM (retry 1 of 3)",
        3: "requeued automatically after PREEMPTED (requeue 1 of 3)",
        4: "tried again automatically after TIMEOUT (retry 2 of 3)",
    }
    assert used_before(reasons, 4) == Used(2, 1)
    assert used_before({**reasons, 3: "its cached output failed its check"}, 4) == Used(1, 0)
    assert used_before(reasons, 1) == Used()


def test_the_delay_grows_by_the_backoff() -> None:
    spec = _spec(retries=5, retry_delay="2m", backoff=3)
    delays = [next_attempt(spec, "ERROR", 1, None, Used(k), Limits()).delay for k in range(3)]
    assert delays == [120.0, 360.0, 1080.0]
    huge = _spec(retries=99, retry_delay="1h", backoff=1000)
    assert next_attempt(huge, "ERROR", 1, None, Used(90), Limits()).delay == 7 * 86400


# ---------------------------------------------------------------------- bad options


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, r"retries=-1 must be a whole number >= 0"),
        ({"retries": 1.5}, r"retries=1\.5 must be a whole number >= 0"),
        (
            {"retry_on": ["OMM"]},
            r"retry_on names an unknown failure kind 'OMM'\. Did you mean 'OOM'\?",
        ),
        (
            {"retry_on": "sometimes"},
            r"retry_on names an unknown failure kind 'sometimes'\..* Use some of: ERROR",
        ),
        ({"retry_delay": "soon"}, r"retry_delay='soon' is not a delay"),
        ({"retry_delay": -1}, r"retry_delay=-1 is not a delay"),
        ({"backoff": 0.5}, r"backoff=0\.5 must be a number >= 1"),
        ({"escalate": "yes"}, r"escalate='yes' must be True or False"),
        ({"max_mem": "lots"}, r"mem='lots' is not a memory size"),
        ({"max_time": "forever"}, r"time='forever' is not a time limit"),
        ({"mem": lambda: "1G"}, r"mem= must be a value or a function of the attempt number"),
        ({"time": lambda a, b: "10"}, r"time= must be a value or a function"),
        ({"mem": lambda attempt: "lots"}, r"mem='lots' is not a memory size .* for attempt 1"),
        ({"cpus": lambda attempt: 0}, r"cpus=0 must be a whole number >= 1 .* attempt 1"),
        ({"mem": lambda attempt: 1 / 0}, r"mem= .* failed for attempt 1: ZeroDivisionError"),
        ({"retrys": 2}, r"@job got an unknown keyword 'retrys'\. Did you mean 'retries'\?"),
    ],
)
def test_a_bad_retry_option_is_one_clear_error_naming_the_task(
    options: dict[str, Any], message: str
) -> None:
    wf = Workflow("bad")
    with pytest.raises(ValidationError, match=rf"^task 'broken': {message}"):
        wf.job(name="broken", **options)(_returns_one)


# ---------------------------------------------------------------------- on a cluster


def _cluster(pack: int) -> Workflow:
    """split -> grow (an array, `pack` instances per element), for a played scheduler."""
    wf = Workflow("oom")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job(mem="100M", time="10", retries=2, pack=pack)
    def grow(item: Annotated[int, Result(step="split")]) -> int:
        return item * 2

    return wf


class _Scheduler(Executor):
    """Runs nothing: the test plays each job's elements, or ends them as the scheduler would."""

    name = mode = "played"

    def __init__(self, wf: Workflow) -> None:
        self.wf = wf
        self.jobs: dict[str, tuple[list[str], JobResources]] = {}
        self.ended: dict[str, JobState] = {}  # job or element id -> how it ended

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        return " ".join(command)

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        job = f"j{len(self.jobs) + 1}"
        self.jobs[job] = (list(command), resources)
        return job

    def cancel(self, job_ids: Sequence[str]) -> None:
        return None

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        found = {}
        for job, (_, res) in self.jobs.items():
            for k in range(res.array_size or 1):
                element = self.element_id(job, k) if res.array_size else job
                state = self.ended.get(element, self.ended.get(job, JobState.PENDING))
                found[element] = JobStatus(state, state.value)
        return found

    def waves(self, task: str) -> list[str]:
        return [j for j, (cmd, _) in self.jobs.items() if f"/{task}." in " ".join(cmd)]

    def play(self, job: str, skip: Sequence[int] = ()) -> None:
        """Run the job's elements as workers do (but those in `skip`), and end the job."""
        command, res = self.jobs[job]
        wave = Path(command[command.index("--wave") + 1])
        run_dir = Path(command[command.index("--run-dir") + 1])
        for k in range(res.array_size or 1):
            if k in skip:
                continue
            for position in Wave(wave).positions(k):  # a pack runs its instances in turn
                item = Wave(wave).instance(position)
                outcome = execute(self.wf.tasks[item.work.task].func, item.work)
                element = self.element_id(job, k) if res.array_size else job
                write_result(run_dir, item.run_id, outcome, element)
        self.ended[job] = JobState.COMPLETED


@pytest.mark.parametrize("pack", [1, 2])
def test_an_oomed_element_is_submitted_again_alone_with_twice_the_memory(
    tmp_path: Path, pack: int
) -> None:
    wf = _cluster(pack)
    ex = _Scheduler(wf)
    store = open_store(tmp_path / "m.db")
    run = wf.submit(tmp_path / "run", executor=ex, store=store, n=4)
    (first,) = ex.waves("split")
    ex.play(first)
    dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    (wave,) = ex.waves("grow")
    assert (ex.jobs[wave][1].array_size, ex.jobs[wave][1].mem) == (4 // pack, "100M")
    # the element running instance 2 (with 3 after it in a pack of 2) is killed for
    # memory before it reports
    ex.play(wave, skip=[2 // pack])
    ex.ended[ex.element_id(wave, 2 // pack)] = JobState.OUT_OF_MEMORY
    dispatch_pass(wf, store, run.run_id, ex, config=wf.config)

    again = [j for j in ex.waves("grow") if j != wave]
    assert len(again) == 1  # only what ran out of memory: one element, in a job of its own
    res = ex.jobs[again[0]][1]
    # (a pack of 2 asks for the time of both)
    assert (res.array_size, res.mem, res.time) == (1, "200M", "00:20:00" if pack == 2 else "10")
    killed = [2] if pack == 1 else [2, 3]
    for index in killed:
        rows = store.instance_attempts(run.run_id, "grow", index)
        assert [(r.attempt, r.state, r.failure_kind, r.resources) for r in rows] == [
            (1, "FAILED", "OOM", {"mem": "100M", "time": "10"}),
            (2, "SUBMITTED", None, {"mem": "200M", "time": "10"}),
        ]
        assert "ran out of memory" in (rows[0].error_text or "")
    assert [r.attempt for r in store.instance_attempts(run.run_id, "grow", 1)] == [1]

    ex.play(again[0])
    dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    assert run.state is RunState.SUCCESS and run.outputs("grow") == [0, 2, 4, 6]


def test_a_retry_delay_on_a_cluster_holds_the_attempt_and_times_the_next_pass(
    tmp_path: Path,
) -> None:
    wf = Workflow("later")

    @wf.job(retries=1, retry_delay="1h")
    def once() -> int:
        return 1

    ex = _Scheduler(wf)
    store = open_store(tmp_path / "m.db")
    run = wf.submit(tmp_path / "run", executor=ex, store=store)
    (job,) = ex.waves("once")
    ex.ended[job] = JobState.NODE_FAIL  # requeued at once: no delay, no retry used
    dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    (requeued,) = [j for j in ex.waves("once") if j != job]
    ex.ended[requeued] = JobState.FAILED  # a failure of its own: retried in an hour
    started = time.time()
    res = dispatch_pass(wf, store, run.run_id, ex, config=wf.config)
    assert [j for j in ex.waves("once") if j not in (job, requeued)] == []
    assert run.state is RunState.RUNNING
    rows = store.instance_attempts(run.run_id, "once", -1)
    assert [(r.attempt, r.state, r.failure_kind) for r in rows] == [
        (1, "FAILED", "NODE_FAIL"),
        (2, "FAILED", "ERROR"),
    ]
    command = ex.jobs[res.dispatcher or ""][0]
    due = float(command[command.index("--not-before") + 1])
    assert started + 3500 < due < time.time() + 3700


def test_the_run_records_each_task_s_retry_options(tmp_path: Path) -> None:
    run = _flaky(tmp_path, 0, retries=2, retry_on="oom", retry_delay="1m").run_local(tmp_path / "r")
    ((_, _, spec),) = run.store.task_specs(run.run_id)
    assert spec["retry"] == {
        "retries": 2, "retry_on": ["OOM"], "retry_delay": 60.0, "backoff": 2.0,
        "escalate": True, "max_mem": None, "max_time": None,
    }  # fmt: skip
