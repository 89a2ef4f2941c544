"""Packed array elements and fused singleton chains on a real cluster, on each scheduler.

An array element runs a pack of instances, each with its own result and
state; a chain of singletons runs in one job.  What a user must see: a
failure or a kill touches only the instances it really stopped, `retry`
finishes the run, long instances still run side by side, and a cached task
inside a fused chain does not run.  (tests/test_packing.py: the same with
the local executor.)
"""

from __future__ import annotations

from typing import Any

import pl_pack
import pytest
from schedulers import SCHEDULERS, Scheduler, every_scheduler, scheduler_param

from cluster_support import Cluster, SubmitSpy, status_text, wait_final
from reflow import Run, RunState


def _by_index(run: Run, task: str) -> dict[int, dict[str, Any]]:
    return {i["array_index"]: i for i in run.store.instances(run.run_id, task=task)}


@every_scheduler
def test_an_exception_in_a_packed_instance_fails_only_it(cluster: Cluster) -> None:
    run = cluster.submit(pl_pack.wf, n=20, trouble="raise", at=7)
    assert wait_final(run, 120) is RunState.FAILED, status_text(run)
    crunch = _by_index(run, "crunch")
    assert {i for i, inst in crunch.items() if inst["state"] != "SUCCESS"} == {7}
    assert "ValueError: item 7 is bad" in crunch[7]["error_text"]
    # four elements of five instances: the job id of each instance is its element's
    elements = {inst["job_id"] for inst in crunch.values()}
    assert len(elements) == 4, elements
    assert {crunch[k]["job_id"] for k in range(5, 10)} == {crunch[7]["job_id"]}
    assert run.output("items") == list(range(20))
    assert run.status(as_dict=True)["summary"]["gather"] == {"SKIPPED": 1}  # type: ignore[index]


# a SIGKILL on every scheduler; memory where the scheduler kills the element for it (SGE's
# h_vmem is a per-process limit too: the instance would get a MemoryError, an ordinary
# exception; SGE's memory kill is tested on a single job in test_cluster.py)
_KILLS = [
    scheduler_param(sched.name, trouble)
    for sched in SCHEDULERS.values()
    for trouble in ("kill", "memory")
    if trouble == "kill" or sched.kills_packed_elements_over_memory
]


@pytest.mark.parametrize(("scheduler", "trouble"), _KILLS, indirect=["scheduler"])
def test_a_packed_element_killed_half_way_fails_only_its_unfinished_instances(
    scheduler: Scheduler, cluster: Cluster, trouble: str
) -> None:
    run = cluster.submit(pl_pack.wf, n=20, trouble=trouble, at=7)
    assert wait_final(run, 120) is RunState.FAILED, status_text(run)
    crunch = _by_index(run, "crunch")
    failed = {i for i, inst in crunch.items() if inst["state"] == "FAILED"}
    assert failed == {7, 8, 9}, status_text(run)  # 5 and 6 had finished; 8 and 9 never ran
    reason = crunch[8]["error_text"].splitlines()[-1]
    if trouble == "kill":
        assert "killed by SIGKILL" in reason, reason
    else:
        assert reason.startswith(f"the job ran out of memory ({scheduler.name}: job"), reason
    assert crunch[7]["job_id"] == crunch[8]["job_id"] == crunch[5]["job_id"]

    assert run.retry() == 3
    assert wait_final(run, 120) is RunState.SUCCESS, status_text(run)
    assert run.output("gather") == sum(i * i for i in range(20))
    again = _by_index(run, "crunch")
    assert {i for i, inst in again.items() if inst["attempt"] == 2} == {7, 8, 9}


@every_scheduler
def test_long_instances_keep_full_parallelism(cluster: Cluster) -> None:
    # a fresh store knows no durations: eight long instances get eight elements at once
    # (the SGE test queue has 8 slots)
    run = cluster.submit(pl_pack.long_wf, n=8, seconds=20.0)
    assert wait_final(run, 150) is RunState.SUCCESS, status_text(run)
    starts = run.outputs("nap")
    assert max(starts) - min(starts) < 10, starts  # side by side, not one after another
    elements = {i["job_id"] for i in run.store.instances(run.run_id, task="nap")}
    assert len(elements) == 8, elements


@every_scheduler
def test_a_fused_chain_runs_in_one_job_and_a_cached_middle_task_does_not_run(
    scheduler: Scheduler, cluster: Cluster, calls: Any, submit_spy: SubmitSpy
) -> None:
    run = cluster.submit(pl_pack.chain_wf, x=4)
    assert wait_final(run, 120) is RunState.SUCCESS, status_text(run)
    assert run.output("last") == 50
    jobs = {i["task_name"]: i["job_id"] for i in run.store.instances(run.run_id)}
    assert len(set(jobs.values())) == 1, jobs  # the three tasks, one job
    assert calls.names() == ["first", "middle", "last"]

    # `first` runs every time (cache=False) and gives the same output: `middle` is a cache
    # hit and must not run, even inside the fused job; `last` is forced
    spy = scheduler.executor(submit=submit_spy.path)
    rerun = cluster.submit(pl_pack.chain_wf, x=4, executor=spy, force_tasks=["last"])
    assert wait_final(rerun, 120) is RunState.SUCCESS, status_text(rerun)
    assert calls.names()[3:] == ["first", "last"]
    states = {i["task_name"]: i for i in rerun.store.instances(rerun.run_id)}
    assert states["middle"]["cached"] and not states["last"]["cached"]
    assert rerun.output("last") == 50
    assert len(submit_spy.ids()) == 2, submit_spy.ids()  # the fused job and one dispatcher
    assert not scheduler.queue_ids() & {
        scheduler.job_of(i["job_id"]) for i in rerun.store.instances(rerun.run_id)
    }


@every_scheduler
def test_a_second_submit_of_a_packed_run_submits_nothing(
    scheduler: Scheduler, cluster: Cluster, submit_spy: SubmitSpy
) -> None:
    run = cluster.submit(pl_pack.wf, n=20)
    assert wait_final(run, 120) is RunState.SUCCESS, status_text(run)
    spy = scheduler.executor(submit=submit_spy.path)
    again = cluster.submit(pl_pack.wf, n=20, executor=spy)
    assert again.state is RunState.SUCCESS
    assert spy.calls[scheduler.submit_tool] == 0 and submit_spy.ids() == []
    assert again.output("gather") == sum(i * i for i in range(20))
    assert not scheduler.queue_ids() & {i["job_id"] for i in again.store.instances(again.run_id)}
