"""Re-attach and gentle scheduler calls, with a scheduler played in the test.

A pass killed between the scheduler call and recording its answer leaves a
journal entry; the next pass finds the job by the token in its name and
adopts it instead of submitting its instances again (tests/cluster/
test_cluster_reattach.py does it on the real Slurm and Grid Engine).  A failing pass leaves its
reason for `status`; busy schedulers are asked again; a Slurm accounting
outage makes the dispatcher wait.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, RunState, Workflow
from reflow import dispatch as dispatch_module
from reflow.config import Config
from reflow.dispatch import dispatch_pass
from reflow.errors import ConfigError
from reflow.executors import slurm as slurm_module
from reflow.executors.base import Executor, JobResources, JobState, JobStatus, SchedulerError
from reflow.executors.slurm import SlurmExecutor
from reflow.render import render_status
from reflow.run import Run, status_overview
from reflow.runner import submit
from reflow.stores.sqlite import SqliteStore

wf = Workflow("attach")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def square(x: Annotated[int, Result(step="split")]) -> int:
    return x * x


class Killed(BaseException):
    """Stands in for SIGKILL: nothing after it in the pass runs."""


class Played(Executor):
    """Hands out job ids, knows its jobs by name, and dies where the test says."""

    name = "played"
    mode = "played"

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # job id -> name
        self.waves: list[str] = []  # the first wave file of each job submitted
        self.die: str | None = None  # "before" / "after": the next submit dies so
        self.can_tell = True
        self.cancelled: list[str] = []
        self.commands: list[list[str]] = []

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        return " ".join(command)

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        die, self.die = self.die, None
        if die == "before":
            raise Killed
        job = f"p{len(self.names) + 1}"
        self.commands.append(list(command))
        self.names[job] = f"{resources.name}.{resources.token}"
        if "--wave" in command:
            self.waves.append(Path(command[list(command).index("--wave") + 1]).name)
        if die == "after":
            raise Killed
        if die == "timeout":
            raise SchedulerError("cannot submit: played did not answer in 120 s")
        return job

    def cancel(self, job_ids: Sequence[str]) -> None:
        self.cancelled.extend(job_ids)

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        return {j: JobStatus(JobState.PENDING, "PENDING") for j in job_ids}

    def find_submitted(
        self, jobs: Sequence[tuple[str, str, float]]
    ) -> dict[str, str | None] | None:
        if not self.can_tell:
            return {}
        by_name = {name: job for job, name in self.names.items()}
        return {token: by_name.get(f"{name}.{token}") for name, token, _ in jobs}


def _submitted(tmp_path: Path, ex: Played) -> tuple[str, SqliteStore]:
    store = SqliteStore(tmp_path / "m.db")
    try:
        run = wf.submit(tmp_path / "run", executor=ex, store=store, n=3)
        return run.run_id, store
    except Killed:
        (info,) = store.list_runs()
        return str(info["run_id"]), store


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_submit_killed_at_its_scheduler_call_never_submits_a_job_twice(
    tmp_path: Path, when: str
) -> None:
    ex = Played()
    ex.die = when
    run_id, store = _submitted(tmp_path, ex)
    journal = tmp_path / "run" / "work" / run_id / "journal"
    assert len(list(journal.glob("*.json"))) == 1  # written before the call, still there

    dispatch_pass(wf, store, run_id, ex, config=wf.config, retry=True)  # what `retry` runs
    assert ex.waves.count("split.0.1.0.jsonl") == 1  # adopted, or submitted once when it never was
    (row,) = store.instances(run_id, task="split")
    assert row["state"] == "SUBMITTED" and row["job_id"] == "p1"
    assert not list(journal.glob("*.json"))
    assert store.get_run(run_id)["dispatcher"] is not None  # one chained dispatcher


def test_a_dispatcher_chained_by_a_killed_pass_is_adopted_not_doubled(tmp_path: Path) -> None:
    ex = Played()
    store = SqliteStore(tmp_path / "m.db")
    real = ex.submit

    def dies_after_the_chain(command: Sequence[str], resources: JobResources) -> str:
        if "dispatch" in command:
            ex.die = "after"
        return real(command, resources)

    ex.submit = dies_after_the_chain  # type: ignore[method-assign]
    with pytest.raises(Killed):
        wf.submit(tmp_path / "run", executor=ex, store=store, n=3)
    (listed,) = store.list_runs()
    info = store.get_run(listed["run_id"])
    assert info["dispatcher"] is None  # killed before recording it
    ex.submit = real  # type: ignore[method-assign]
    dispatch_pass(wf, store, info["run_id"], ex, config=wf.config, retry=True)
    assert store.get_run(info["run_id"])["dispatcher"] == "p2"  # adopted; no second one
    assert len(ex.names) == 2


def test_a_submit_that_timed_out_but_went_through_is_found_and_cancelled(tmp_path: Path) -> None:
    ex = Played()
    ex.die = "timeout"  # the job exists, but the pass never heard its id
    with pytest.raises(SchedulerError, match="did not answer"):
        wf.submit(tmp_path / "run", executor=ex, store=SqliteStore(tmp_path / "m.db"), n=3)
    assert ex.cancelled == ["p1"]


def test_a_job_that_cannot_be_settled_holds_every_submission(tmp_path: Path) -> None:
    ex = Played()
    ex.die = "after"
    run_id, store = _submitted(tmp_path, ex)
    ex.can_tell = False  # the scheduler cannot say now whether it has the job
    before = time.time()
    res = dispatch_pass(wf, store, run_id, ex, config=wf.config, retry=True)
    assert ex.waves == ["split.0.1.0.jsonl"]  # not submitted again
    assert res.unsettled == 1 and res.dispatcher is not None
    assert ex.commands[-1][-4:-1] == ["--after", "", "--not-before"]  # asks again in 20 s
    assert before + 20 <= float(ex.commands[-1][-1]) <= time.time() + 20
    (row,) = store.instances(run_id, task="split")
    assert row["state"] == "PENDING"
    ex.can_tell = True
    dispatch_pass(wf, store, run_id, ex, config=wf.config)
    (row,) = store.instances(run_id, task="split")
    assert (row["state"], ex.waves) == ("SUBMITTED", ["split.0.1.0.jsonl"])


def _refusing_sbatch(tmp_path: Path) -> Path:
    path = tmp_path / "sbatch"
    path.write_text(
        "#!/bin/sh\ncat >/dev/null\n"
        "echo 'sbatch: error: Batch job submission failed: Invalid account or "
        "account/partition combination specified' >&2\nexit 1\n"
    )
    path.chmod(0o755)
    return path


def test_a_refused_submission_is_shown_by_status_until_a_pass_goes_through(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "m.db")
    ex = SlurmExecutor(sbatch=str(_refusing_sbatch(tmp_path)))
    with pytest.raises(SchedulerError, match=r"sbatch refused the job: .*Invalid account"):
        wf.submit(tmp_path / "run", executor=ex, store=store, n=2)
    (info,) = store.list_runs()
    run_id = info["run_id"]
    text = render_status(status_overview(store, run_id))
    assert (
        "dispatcher: sbatch refused the job: sbatch: error: Batch job submission failed: "
        "Invalid account or account/partition combination specified"
    ) in text.splitlines()
    assert "Invalid account" in render_status(status_overview(store, run_id), errors=True)
    doc = status_overview(store, run_id)
    assert doc["dispatch_error"].startswith("sbatch refused the job")

    store.set_run_status(run_id, RunState.RUNNING.value)
    dispatch_pass(wf, store, run_id, Played(), config=wf.config, retry=True)
    assert store.get_run(run_id)["dispatch_error"] is None
    assert not any(
        line.startswith("dispatcher:")
        for line in render_status(status_overview(store, run_id)).splitlines()
    )


def test_the_cli_status_json_carries_the_dispatch_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = SqliteStore(tmp_path / "m.db")
    ex = SlurmExecutor(sbatch=str(_refusing_sbatch(tmp_path)))
    with pytest.raises(SchedulerError):
        wf.submit(tmp_path / "run", executor=ex, store=store, n=2)
    (info,) = store.list_runs()
    args = ["status", info["run_id"], "--store-path", str(tmp_path / "m.db")]
    assert wf.cli([*args, "--json"]) == 0
    assert "Invalid account" in json.loads(capsys.readouterr().out)["dispatch_error"]
    assert wf.cli([*args, "--errors"]) == 0
    assert "dispatcher: sbatch refused the job" in capsys.readouterr().out


# ---------------------------------------------------------------------- gentle calls


def _answers(*procs: tuple[int, str]) -> Any:
    seen: list[list[str]] = []

    def run(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        code, err = procs[min(len(seen), len(procs)) - 1]
        return subprocess.CompletedProcess(argv, code, "42\n" if code == 0 else "", err)

    run.seen = seen  # type: ignore[attr-defined]
    return run


def test_a_busy_sbatch_is_asked_again_but_a_slow_one_is_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    busy = "sbatch: error: Batch job submission failed: Unable to contact slurm controller"
    fake = _answers((1, busy), (1, busy), (0, ""))
    monkeypatch.setattr("reflow.executors._common.run_scheduler", fake)
    ex = SlurmExecutor()
    ex.backoff = (0.0, 0.0, 0.0)
    assert ex.submit(["true"], JobResources(name="x")) == "42"
    assert len(fake.seen) == 3

    slow = "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation"
    fake = _answers((1, slow), (0, ""))
    monkeypatch.setattr("reflow.executors._common.run_scheduler", fake)
    with pytest.raises(SchedulerError, match="Socket timed out"):
        ex.submit(["true"], JobResources(name="x"))  # it may have been submitted: not again
    assert len(fake.seen) == 1


def test_an_accounting_outage_falls_back_to_squeue_and_settles_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # what sacct says with slurmdbd stopped (Slurm 22.05, the test cluster)
    sacct = _failing_sacct("Problem talking to the database: Connection refused")
    monkeypatch.setattr(slurm_module, "run_command", sacct)
    monkeypatch.setattr(slurm_module, "run_scheduler", _squeue("7_0|RUNNING|None\n"))
    ex = SlurmExecutor()
    states = ex.states(["7", "8"])
    assert states["7_0"].state is JobState.RUNNING
    assert states["8"].state is JobState.UNKNOWN  # left the queue: ended somehow, not failed
    assert "slurmdbd" in states["8"].reason


def _failing_sacct(said: str) -> Any:
    def sacct(argv: Sequence[str], *, what: str, timeout: float = 120) -> str:
        raise SchedulerError(f"cannot {what}: sacct exited with 1: sacct: error: {said}")

    return sacct


def _squeue(out: str) -> Any:
    def run(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 0, out, "")

    return run


def test_slurm_finds_jobs_by_name_in_the_queue_then_the_accounting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slurm_module, "run_scheduler", _squeue("11|wf.a.rfaaaa\n"))
    asked: list[list[str]] = []

    def sacct(argv: Sequence[str], *, what: str, timeout: float = 120) -> str:
        asked.append(list(argv))
        return "12_0|wf.b.rfbbbb\n12_1|wf.b.rfbbbb\n"

    monkeypatch.setattr(slurm_module, "run_command", sacct)
    found = SlurmExecutor().find_submitted(
        [("wf.a", "rfaaaa", 0.0), ("wf.b", "rfbbbb", 0.0), ("wf.c", "rfcccc", 0.0)]
    )
    assert found == {"rfaaaa": "11", "rfbbbb": "12", "rfcccc": None}
    assert "--name=wf.b.rfbbbb,wf.c.rfcccc" in asked[0]
    # whoever asks (a colleague's `status` of a shared run): sacct shows a user other
    # than root only their own jobs unless told otherwise, and a job not shown was
    # taken for one never submitted, to be submitted again by the run's next pass
    assert "--allusers" in asked[0]


def test_a_job_name_keeps_its_token_whole() -> None:
    ex = SlurmExecutor()
    name = ex.job_name("x" * 150, "rfabcdefghij")
    assert len(name) == 100 and name.endswith(".rfabcdefghij")


def test_max_submit_per_minute_spaces_submissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(dispatch_module.time, "sleep", slept.append)
    config = Config(max_submit_per_minute=1)
    ex = Played()
    store = SqliteStore(tmp_path / "m.db")
    submit(
        wf, tmp_path / "run", executor=ex, store=store, config=config, force=False,
        force_tasks=None, verify=False, params={"n": 2},
    )  # fmt: skip
    assert len(ex.names) == 2 and len(slept) == 1 and 55 < slept[0] <= 60  # split, then chain
    with pytest.raises(ConfigError, match=r"max_submit_per_minute=-1.*0 or more"):
        Config(max_submit_per_minute=-1)


def test_sge_finds_jobs_by_name_in_qstat_then_qacct(monkeypatch: pytest.MonkeyPatch) -> None:
    from reflow.executors import sge as sge_module
    from reflow.executors.sge import SGEExecutor

    listing = (
        "<?xml version='1.0'?><job_info><queue_info><job_list state='running'>"
        "<JB_job_number>31</JB_job_number><JB_name>wf.a.rfaaaa</JB_name>"
        "<state>r</state></job_list></queue_info></job_info>"
    )
    monkeypatch.setattr(sge_module, "run_command", lambda argv, **_: listing)

    def qacct(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        if argv[-1] == "wf.b.rfbbbb":
            return subprocess.CompletedProcess(argv, 0, "=====\njobnumber    32\n", "")
        return subprocess.CompletedProcess(argv, 1, "", f"error: job name {argv[-1]} not found")

    monkeypatch.setattr(sge_module, "run_scheduler", qacct)
    found = SGEExecutor().find_submitted(
        [("wf.a", "rfaaaa", 0.0), ("wf.b", "rfbbbb", 0.0), ("wf.c", "rfcccc", 0.0)]
    )
    assert found == {"rfaaaa": "31", "rfbbbb": "32", "rfcccc": None}


def test_cancel_sends_one_scancel_even_when_some_jobs_have_ended(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = _answers((1, "scancel: error: Kill job error on job id 5: Invalid job id specified"))
    monkeypatch.setattr("reflow.executors._common.run_scheduler", fake)
    SlurmExecutor().cancel(["5", "6", "7"])
    assert fake.seen == [["scancel", "5", "6", "7"]]  # scancel went on with 6 and 7 itself


def test_pbs_pro_finds_jobs_by_name_in_its_history(monkeypatch: pytest.MonkeyPatch) -> None:
    from reflow.executors import pbs as pbs_module
    from reflow.executors.pbs import PBSExecutor

    listing = (Path(__file__).parent / "golden" / "pbs_pro_qstat_f.txt").read_text()
    monkeypatch.setattr(pbs_module, "run_scheduler", _squeue(listing))
    found = PBSExecutor(flavor="pro").find_named(["etl.extract", "etl.nothing"], 0.0)
    assert found == {"etl.extract": "1001.pbsserver", "etl.nothing": None}
    assert PBSExecutor(flavor="torque").find_named(["etl.extract"], 0.0) is None


def test_cancel_cancels_the_job_a_killed_pass_submitted_unrecorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = Played()
    ex.die = "after"  # split's job p1 exists; the pass died before recording it
    run_id, store = _submitted(tmp_path, ex)
    monkeypatch.setattr(dispatch_module, "make_executor", lambda *_: ex)
    Run(run_id, store).cancel()
    assert ex.cancelled == ["p1"]


def test_a_submit_whose_chained_dispatcher_timed_out_cancels_that_dispatcher_too(
    tmp_path: Path,
) -> None:
    ex = Played()
    real = ex.submit

    def chain_times_out(command: Sequence[str], resources: JobResources) -> str:
        if "dispatch" in command:
            ex.die = "timeout"  # the dispatcher job exists, but its id was never heard
        return real(command, resources)

    ex.submit = chain_times_out  # type: ignore[method-assign]
    store = SqliteStore(tmp_path / "m.db")
    with pytest.raises(SchedulerError, match="did not answer"):
        wf.submit(tmp_path / "run", executor=ex, store=store, n=3)
    assert sorted(ex.cancelled) == ["p1", "p2"]  # split's job and the dispatcher
    (info,) = store.list_runs()
    assert store.get_run(info["run_id"])["dispatcher"] is None


def test_slurm_without_accounting_settles_a_job_the_queue_does_not_know(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sacct = _failing_sacct("Slurm accounting storage is disabled")
    monkeypatch.setattr(slurm_module, "run_command", sacct)
    monkeypatch.setattr(slurm_module, "run_scheduler", _squeue(""))
    # a fresh process (the next pass, `retry`): nothing has asked sacct before
    found = SlurmExecutor().find_submitted([("wf.a", "rfaaaa", 0.0)])
    assert found == {"rfaaaa": None}  # never submitted: not waited for forever


def test_a_dispatcher_job_that_cannot_load_its_workflow_says_why_in_status(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = Played()
    run_id, store = _submitted(tmp_path, ex)
    monkeypatch.setattr(dispatch_module, "make_executor", lambda *_: ex)
    script = tmp_path / "pipeline.py"  # edited while the run was in flight
    script.write_text("def broken(:\n")
    argv = ["--run-id", run_id, "--store", str(tmp_path / "m.db"), "--workflow", "attach"]
    assert dispatch_module.main([*argv, "--origin", json.dumps({"script": str(script)})]) == 1
    text = render_status(status_overview(store, run_id))
    assert "dispatcher: cannot load workflow 'attach' from" in text
    assert store.get_run(run_id)["status"] == RunState.FAILED.value


def test_status_of_a_run_whose_journal_it_cannot_change_is_shown_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = Played()
    ex.die = "after"
    run_id, store = _submitted(tmp_path, ex)

    def not_yours(entry: Any) -> None:  # a colleague's run: its journal folder is not theirs
        raise PermissionError(13, "Permission denied", str(entry.path))

    monkeypatch.setattr(dispatch_module, "make_executor", lambda *_: ex)
    monkeypatch.setattr("reflow.journal.remove", not_yours)
    text = render_status(status_overview(store, run_id))
    assert text.startswith(f"run {run_id}")


def test_a_busy_qmaster_is_asked_again_for_job_states(monkeypatch: pytest.MonkeyPatch) -> None:
    from reflow.executors import sge as sge_module
    from reflow.executors.sge import SGEExecutor

    listing = (
        "<?xml version='1.0'?><job_info><queue_info><job_list state='running'>"
        "<JB_job_number>31</JB_job_number><JB_name>wf.a</JB_name>"
        "<state>r</state></job_list></queue_info></job_info>"
    )
    said: list[str] = []

    def qstat(argv: Sequence[str], **_: Any) -> str:
        said.append(" ".join(argv))
        if len(said) == 1:  # what qstat says while qmaster restarts or is swamped
            raise SchedulerError(
                "cannot ask SGE for job states: qstat exited with 1: error: commlib error: "
                "got select error (Connection refused)"
            )
        return listing

    monkeypatch.setattr(sge_module, "run_command", qstat)
    ex = SGEExecutor()
    ex.backoff = (0.0,)
    assert ex.states(["31"])["31"].state is JobState.RUNNING  # not a failed pass
    assert said == ["qstat -u * -xml"] * 2


def test_a_retry_that_must_wait_for_the_journal_says_it_retried_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reflow import journal
    from reflow.errors import ReflowError

    class Failing(Played):
        def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
            return {j: JobStatus(JobState.FAILED, "FAILED") for j in job_ids}

    ex = Failing()
    run_id, store = _submitted(tmp_path, ex)
    dispatch_pass(wf, store, run_id, ex, config=wf.config, in_job=True)  # split's job failed
    assert store.get_run(run_id)["status"] == RunState.FAILED.value
    # a pass killed at its sbatch, and the scheduler cannot tell now whether it took the job
    with journal.writing(tmp_path / "run", run_id, "dispatcher", "attach.dispatch"):
        pass
    ex.can_tell = False
    monkeypatch.setattr(dispatch_module, "make_executor", lambda *_: ex)
    with pytest.raises(ReflowError, match=rf"run '{run_id}' was not retried: .* again"):
        Run(run_id, store, workflow=wf).retry()  # it reset nothing; before, it said 0 quietly
    (row,) = store.instances(run_id, task="split")
    assert row["state"] == "FAILED"


def test_a_cancel_the_scheduler_never_took_is_an_error_not_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    down = "scancel: error: Unable to contact slurm controller (connect failure)"
    fake = _answers((1, down))
    monkeypatch.setattr("reflow.executors._common.run_scheduler", fake)
    ex = SlurmExecutor()
    ex.backoff = (0.0, 0.0)
    with pytest.raises(SchedulerError, match="Unable to contact slurm controller"):
        ex.cancel(["5", "6"])  # the jobs run on: `cancel` must not call them CANCELLED
    assert len(fake.seen) == 3  # asked again after each delay first


def test_a_cancel_that_failed_leaves_the_run_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Down(Played):
        def cancel(self, job_ids: Sequence[str]) -> None:
            raise SchedulerError("cannot cancel Slurm jobs: Unable to contact slurm controller")

    ex = Down()
    run_id, store = _submitted(tmp_path, ex)
    queued = store.get_run(run_id)["dispatcher"]
    monkeypatch.setattr(dispatch_module, "make_executor", lambda *_: ex)
    with pytest.raises(SchedulerError):
        Run(run_id, store).cancel()
    info = store.get_run(run_id)
    assert (info["status"], info["dispatcher"]) == (RunState.RUNNING.value, queued)


def test_cancel_of_a_run_its_failed_dispatcher_left_cancels_the_jobs_still_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = Played()
    run_id, store = _submitted(tmp_path, ex)
    # what a dispatcher job does when its pass fails: the run FAILED, split's job p1 on
    store.set_dispatcher(run_id, None)
    store.set_run_status(run_id, RunState.FAILED.value, release=True)
    monkeypatch.setattr(dispatch_module, "make_executor", lambda *_: ex)
    assert Run(run_id, store).cancel() == 1
    assert ex.cancelled == ["p1"]


def test_lsf_finds_jobs_by_name_an_array_by_its_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    from reflow.executors import lsf as lsf_module
    from reflow.executors.lsf import LSFExecutor

    # bjobs -J NAME as LSF 10.1 answers it: an array's elements, a job, nothing, a busy daemon
    answers = {
        "wf.a.rfaaaa": (0, "1201|wf.a.rfaaaa[1]\n1201|wf.a.rfaaaa[2]\n", ""),
        "wf.b.rfbbbb": (0, "1202|wf.b.rfbbbb\n", ""),
        "wf.c.rfcccc": (255, "", "Job <wf.c.rfcccc> is not found\n"),
        "wf.d.rfdddd": (255, "", "LSF is down. Please wait ...\n"),
    }
    seen: list[list[str]] = []

    def bjobs(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        rc, out, err = answers[argv[argv.index("-J") + 1]]
        return subprocess.CompletedProcess(argv, rc, out, err)

    monkeypatch.setattr(lsf_module, "run_scheduler", bjobs)
    found = LSFExecutor().find_submitted(
        [("wf.a", "rfaaaa", 0.0), ("wf.b", "rfbbbb", 0.0), ("wf.c", "rfcccc", 0.0),
         ("wf.d", "rfdddd", 0.0)]
    )  # fmt: skip
    # the array is adopted by its own id; the failing bjobs cannot tell (left out)
    assert found == {"rfaaaa": "1201", "rfbbbb": "1202", "rfcccc": None}
    assert seen[0][:5] == ["bjobs", "-a", "-u", "all", "-J"]  # finished and others' jobs too


def test_flux_finds_jobs_by_name_an_array_as_its_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    from reflow.executors import flux as flux_module
    from reflow.executors.flux import FluxExecutor

    # flux jobs -A --since=... -o "{id.dec}|{name}", newest first: an array is `NAME.<cc>` jobs
    answer = (0, "905|wf.a.rfaaaa.1\n904|wf.a.rfaaaa.0\n906|wf.b.rfbbbb\n907|other\n", "")
    seen: list[list[str]] = []

    def flux(argv: Sequence[str], **_: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        return subprocess.CompletedProcess(argv, *answer)

    monkeypatch.setattr(flux_module, "run_scheduler", flux)
    now = time.time()
    jobs = [("wf.a", "rfaaaa", now - 100), ("wf.b", "rfbbbb", now - 50), ("wf.c", "rfcccc", now)]
    found = FluxExecutor().find_submitted(jobs)
    # an array's id is its elements' ids in element order, as `submit` returns it
    assert found == {"rfaaaa": "904,905", "rfbbbb": "906", "rfcccc": None}
    # every user's jobs active since the oldest entry was written (and a margin for the clocks)
    assert seen[0][:3] == ["flux", "jobs", "-A"] and re.fullmatch(r"--since=-7\d\ds", seen[0][3])
    answer = (1, "", "flux-jobs: ERROR: Unable to connect to Flux\n")
    assert FluxExecutor().find_submitted(jobs) == {}  # cannot tell now
