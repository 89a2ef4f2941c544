"""Packed array elements and fused singleton chains on the real Grid Engine.

The same cases as tests/slurm/test_slurm_packing.py (SGE's memory limit, h_vmem,
is tested for single jobs in test_sge.py): a failure or a kill touches only
the instances it stopped, `retry` finishes the run, long instances run side
by side, and a cached task inside a fused chain does not run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

_SHARED = Path(__file__).resolve().parents[1] / "slurm" / "pipelines"
if str(_SHARED) not in sys.path:  # the packing pipelines serve both clusters
    sys.path.insert(0, str(_SHARED))

import pl_pack  # noqa: E402
from sge_support import Cluster, QsubSpy, qstat_ids, status_text, wait_final  # noqa: E402

from reflow import Run, RunState  # noqa: E402
from reflow.executors.sge import SGEExecutor  # noqa: E402


def _by_index(run: Run, task: str) -> dict[int, dict[str, Any]]:
    return {i["array_index"]: i for i in run.store.instances(run.run_id, task=task)}


def test_an_exception_in_a_packed_instance_fails_only_it(cluster: Cluster) -> None:
    run = cluster.submit(pl_pack.wf, n=20, trouble="raise", at=7)
    assert wait_final(run, 120) is RunState.FAILED, status_text(run)
    crunch = _by_index(run, "crunch")
    assert {i for i, inst in crunch.items() if inst["state"] != "SUCCESS"} == {7}
    assert "ValueError: item 7 is bad" in crunch[7]["error_text"]
    assert len({inst["job_id"] for inst in crunch.values()}) == 4
    assert {crunch[k]["job_id"] for k in range(5, 10)} == {crunch[7]["job_id"]}


def test_a_packed_element_killed_half_way_fails_only_its_unfinished_instances(
    cluster: Cluster,
) -> None:
    run = cluster.submit(pl_pack.wf, n=20, trouble="kill", at=7)
    assert wait_final(run, 120) is RunState.FAILED, status_text(run)
    crunch = _by_index(run, "crunch")
    assert {i for i, inst in crunch.items() if inst["state"] == "FAILED"} == {7, 8, 9}
    assert "killed by SIGKILL" in crunch[8]["error_text"], crunch[8]["error_text"]
    assert run.retry() == 3
    assert wait_final(run, 120) is RunState.SUCCESS, status_text(run)
    assert run.output("gather") == sum(i * i for i in range(20))
    again = _by_index(run, "crunch")
    assert {i for i, inst in again.items() if inst["attempt"] == 2} == {7, 8, 9}


def test_long_instances_keep_full_parallelism(cluster: Cluster) -> None:
    run = cluster.submit(pl_pack.long_wf, n=8, seconds=20.0)  # the test queue has 8 slots
    assert wait_final(run, 150) is RunState.SUCCESS, status_text(run)
    starts = run.outputs("nap")
    assert max(starts) - min(starts) < 10, starts
    assert len({i["job_id"] for i in run.store.instances(run.run_id, task="nap")}) == 8


def test_a_fused_chain_runs_in_one_job_and_a_cached_middle_task_does_not_run(
    cluster: Cluster, calls: Any, qsub_spy: QsubSpy
) -> None:
    run = cluster.submit(pl_pack.chain_wf, x=4)
    assert wait_final(run, 120) is RunState.SUCCESS, status_text(run)
    assert len({i["job_id"] for i in run.store.instances(run.run_id)}) == 1
    assert calls.names() == ["first", "middle", "last"]
    spy = SGEExecutor(qsub=str(qsub_spy.path))
    rerun = cluster.submit(pl_pack.chain_wf, x=4, executor=spy, force_tasks=["last"])
    assert wait_final(rerun, 120) is RunState.SUCCESS, status_text(rerun)
    assert calls.names()[3:] == ["first", "last"]
    assert rerun.output("last") == 50
    assert len(qsub_spy.ids()) == 2, qsub_spy.ids()  # the fused job and one dispatcher
    assert not qstat_ids() & {
        i["job_id"].split(".")[0] for i in rerun.store.instances(rerun.run_id)
    }
