"""What only the SGE cluster tests check (the shared cases are in test_cluster.py): a job in
SGE's error state, and the exit code (100) that would put one there."""

from __future__ import annotations

from pathlib import Path

import pl_crash
from case_helpers import only_failed, run_job_ids
from schedulers import SGE, Scheduler, only

from cluster_support import Cluster, status_text, wait_final, wait_until
from reflow import RunState
from reflow.executors import JobResources, JobState
from reflow.executors.sge import SGEExecutor


@only("sge")
def test_job_in_error_state_is_failed_with_the_reason_and_deleted(
    scheduler: SGE, tmp_path: Path
) -> None:
    """A job SGE cannot start (its log path cannot be opened) sits in Eqw for ever."""
    ex = SGEExecutor()
    bad = str(tmp_path / "no-such-dir" / "$JOB_ID.log")
    job = ex.submit(["true"], JobResources(name="t.eqw", stdout=bad, stderr=bad))
    after = ex.submit(
        ["true"],
        JobResources(name="t.after", dependencies=(job,), stdout="/dev/null", stderr="/dev/null"),
    )
    wait_until(lambda: "E" in scheduler.jobs().get(job, {}).get(None, ""), 20, f"job {job} in Eqw")
    status = ex.states([job])[job]
    assert status.state is JobState.FAILED
    assert "error state Eqw" in status.reason and "can't open output file" in status.reason
    assert str(tmp_path / "no-such-dir") in status.reason
    # deleted: it leaves qstat, and the job held behind it runs
    wait_until(
        lambda: not {job, after} & scheduler.queue_ids(), 30, "the Eqw job and its successor gone"
    )
    record = wait_until(lambda: ex.states([after]).get(after), 20, "the successor's record")
    assert record.state is JobState.COMPLETED


@only("sge")
def test_exit_code_100_fails_the_task_without_an_error_state(
    scheduler: Scheduler, cluster: Cluster
) -> None:
    run = cluster.submit(pl_crash.exit_wf, code=100)
    assert wait_final(run, 60) is RunState.FAILED, status_text(run)
    doc = run.status(as_dict=True)
    assert doc is not None
    assert doc["summary"] == {"bail": {"FAILED": 1}, "after_bail": {"SKIPPED": 1}}
    (failed,) = only_failed(run)
    last = failed["error_text"].splitlines()[-1]
    # the job script turned 100 into 1: SGE saw an ordinary failure, not Eqw
    assert last == (
        f"the job failed before the task could report (sge: job {failed['job_id']} FAILED, "
        "exit code 1:0)"
    ), last
    assert not scheduler.queue_ids() & run_job_ids(scheduler, run)
