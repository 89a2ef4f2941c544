"""Executors without a cluster: job scripts (golden files), options, sacct parsing, the
array index of a job, and the local executor end to end."""

from __future__ import annotations

import stat
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from golden_support import GOLDEN, WORKER, check_golden
from reflow import Run, RunState
from reflow.errors import ValidationError
from reflow.executors import JobResources, JobState, LocalExecutor, SlurmExecutor
from reflow.executors import slurm as slurm_module
from reflow.executors.base import JobStatus, merge_options
from reflow.results import log_paths
from reflow.worker import INDEX_VARIABLES, array_element

PIPELINES = Path(__file__).resolve().parent / "cluster" / "pipelines"
if str(PIPELINES) not in sys.path:
    sys.path.insert(0, str(PIPELINES))


# --------------------------------------------------------------------------- job scripts


def test_render_singleton() -> None:
    res = JobResources(
        name="etl.extract",
        cpus=2,
        time="00:10:00",
        grace=60,
        mem="4G",
        stdout="/scratch/runs/r1/logs/extract/scheduler/%j.log",
        stderr="/scratch/runs/r1/logs/extract/scheduler/%j.log",
        workdir="/home/ana/project",
    )
    check_golden("slurm_single.sh", SlurmExecutor().render(WORKER, res))


def test_render_array_with_parallelism_partition_account_and_extra_options() -> None:
    partition, account, extra = merge_options(
        {"queue": "gpu", "gpus": 1, "qos": "long", "constraint": "a100", "exclusive": True},
        {"account": "proj_42", "partition": "compute", "requeue": False},
        "partition",
    )
    res = JobResources(
        name="etl.transform",
        cpus=4,
        time="1-02:00:00",
        grace=60,  # the warning before the time limit
        mem="500M",
        partition=partition,
        account=account,
        extra=extra,
        array_size=100,
        array_parallelism=10,
        stdout="/scratch/runs/r1/logs/transform/scheduler/%A_%a.log",
        stderr="/scratch/runs/r1/logs/transform/scheduler/%A_%a.log",
    )
    check_golden("slurm_array.sh", SlurmExecutor().render(WORKER, res))


def test_render_dependencies_and_environment() -> None:
    res = JobResources(
        name="etl.dispatch",
        cpus=1,
        time="00:10:00",
        mem="1G",
        dependencies=("1001", "1002", "1003"),
        stdout="/scratch/runs/r1/logs/_dispatcher/%j.log",
        stderr="/scratch/runs/r1/logs/_dispatcher/%j.log",
        env={"REFLOW_STORE_PATH": "/shared/team/manifest.db", "GREETING": "hello world"},
    )
    command = ["/opt/venv/bin/python", "-m", "reflow.dispatch", "--run-id", "etl-20260401-a1b2"]
    check_golden("slurm_dependencies.sh", SlurmExecutor().render(command, res))


def test_render_minimal_array_has_no_throttle() -> None:
    script = SlurmExecutor().render(["true"], JobResources(name="w.t", array_size=1))
    assert "#SBATCH --array=0-0\n" in script
    assert "%" not in script.split("--array=")[1].splitlines()[0]
    assert "--dependency" not in script and "--cpus-per-task" not in script
    assert script.endswith("exec true\n")


def test_render_quotes_values_with_spaces() -> None:
    res = JobResources(
        name="my job/with:odd chars",
        partition="big memory",
        account="lab one",
        extra={"comment": "two words", "mail_user": "ana@example.org"},
        stdout="/runs/my run/%j.log",
    )
    script = SlurmExecutor().render(["echo", "a b"], res)
    assert '#SBATCH --partition="big memory"' in script
    assert '#SBATCH --account="lab one"' in script
    assert '#SBATCH --comment="two words"' in script
    assert "#SBATCH --mail-user=ana@example.org" in script  # safe: not quoted
    assert '#SBATCH --output="/runs/my run/%j.log"' in script
    assert "#SBATCH --job-name=my_job_with_odd_chars" in script
    assert "exec echo 'a b'" in script


@pytest.mark.parametrize("bad", ['say "hi"', "two\nlines", "carriage\rreturn"])
@pytest.mark.parametrize("where", ["partition", "account", "time", "extra"])
def test_render_refuses_newlines_and_double_quotes(where: str, bad: str) -> None:
    if where == "extra":
        res = JobResources(name="w.t", extra={"comment": bad})
        key = "comment"
    else:
        res = JobResources(name="w.t", **{where: bad})
        key = where
    with pytest.raises(ValidationError) as info:
        SlurmExecutor().render(["true"], res)
    message = str(info.value)
    assert key in message and "newline or a double quote" in message


def test_render_refuses_an_option_name_that_is_not_a_flag() -> None:
    with pytest.raises(ValidationError, match="not valid"):
        SlurmExecutor().render(["true"], JobResources(name="w.t", extra={"x; rm -rf": 1}))


# --------------------------------------------------------------------------- merge_options


def test_merge_options_queue_is_partition() -> None:
    assert merge_options({"queue": "short"}, {}, "partition") == ("short", None, {})
    assert merge_options({}, {"queue": "short"}, "queue") == ("short", None, {})


def test_merge_options_native_key_wins_when_both_are_given() -> None:
    both = {"partition": "p", "queue": "q"}
    assert merge_options(both, {}, "partition")[0] == "p"
    assert merge_options(both, {}, "queue")[0] == "q"
    assert merge_options({}, both, "partition")[0] == "p"
    assert merge_options({}, both, "queue")[0] == "q"


def test_merge_options_task_over_config() -> None:
    config = {"partition": "compute", "account": "team", "qos": "normal", "mem_bind": "local"}
    task = {"queue": "gpu", "qos": "long", "gpus": 1}
    partition, account, extra = merge_options(task, config, "partition")
    assert partition == "gpu"  # the task's synonym still beats the config's native key
    assert account == "team"
    assert extra == {"qos": "long", "mem_bind": "local", "gpus": 1}
    assert config == {"partition": "compute", "account": "team", "qos": "normal",
                      "mem_bind": "local"}  # fmt: skip
    assert merge_options({"account": "mine"}, config, "partition")[1] == "mine"
    assert merge_options({}, {}, "partition") == (None, None, {})


# --------------------------------------------------------------------------- sacct


RUNNING_IDS = ["271", "272", "273", "274", "275", "276", "287"]


def _fake_run_command(text: str, seen: list[list[str]]) -> Any:
    def fake(argv: Sequence[str], *, what: str, timeout: float = 120) -> str:
        seen.append(list(argv))
        return text

    return fake


def test_sacct_states_of_running_and_pending_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    text = (GOLDEN / "sacct_running.txt").read_text()
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command(text, seen))
    ex = SlurmExecutor()
    states = ex.states(RUNNING_IDS)

    assert len(seen) == 1 and ex.calls["sacct"] == 1  # one call for every job of the run
    argv = seen[0]
    # without -X: the job's steps are read too (see the sacct_steps_* tests)
    assert argv[0] == "sacct" and {"-n", "-P"} <= set(argv) and "-X" not in argv
    assert argv[argv.index("-j") + 1] == ",".join(RUNNING_IDS)
    assert "--format=JobID,State,ExitCode,Reason,MaxRSS,ReqMem,AllocCPUS,End" in argv

    assert states["271"].state is JobState.RUNNING and not states["271"].state.final
    assert states["272"].state is JobState.COMPLETED
    assert states["273"].state is JobState.FAILED and states["273"].exit_code == "3:0"
    assert states["274"].state is JobState.CANCELLED
    assert states["274"].reason == "CANCELLED by 0"
    assert states["275"].state is JobState.FAILED and states["275"].exit_code == "0:9"
    assert states["276_0"].state is states["276_1"].state is JobState.RUNNING
    # the unstarted elements of `276_[2-5%2]` each get their own entry
    for k in range(2, 6):
        assert states[f"276_{k}"].state is JobState.PENDING
        assert states[f"276_{k}"].reason == "PENDING (JobArrayTaskLimit)"
    assert "276_6" not in states and "276_[2-5%2]" not in states
    assert states["287"].state is JobState.PENDING
    assert states["287"].reason == "PENDING (Dependency)"


def test_sacct_states_of_ended_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (GOLDEN / "sacct_final.txt").read_text()
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command(text, []))
    states = SlurmExecutor().states(RUNNING_IDS)
    expected = {
        "271": JobState.TIMEOUT,
        "272": JobState.COMPLETED,
        "273": JobState.FAILED,
        "274": JobState.CANCELLED,
        "275": JobState.FAILED,
        **{f"276_{k}": JobState.COMPLETED for k in range(6)},
        "287": JobState.COMPLETED,
    }
    assert {k: v.state for k, v in states.items()} == expected
    assert all(v.state.final for v in states.values())
    # the reason a job once waited is not shown as the reason it ended
    assert states["276_2"].reason == "COMPLETED"
    assert states["287"].reason == "COMPLETED"


def test_sacct_states_scheduler_words_map_to_reflow_states(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # not recorded (the test cluster cannot produce them): sacct's spelling of these states
    text = "\n".join(
        [
            "9001|OUT_OF_MEMORY|0:125|None",
            "9002|NODE_FAIL|0:0|None",
            "9003|PREEMPTED|0:0|None",
            "9004|CANCELLED+|0:0|None",
            "9005|COMPLETING|0:0|None",
            "9006|REQUEUED|0:0|None",
            "9007|BOOT_FAIL|0:0|None",
            "9008|DEADLINE|0:0|None",
            "9009|SOMETHING_NEW|0:0|None",
            "9010|PENDING|0:0|DependencyNeverSatisfied",
            "garbage line",
        ]
    )
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command(text, []))
    states = SlurmExecutor().states([str(i) for i in range(9001, 9011)])
    assert {k: v.state for k, v in states.items()} == {
        "9001": JobState.OUT_OF_MEMORY,
        "9002": JobState.NODE_FAIL,
        "9003": JobState.PREEMPTED,
        "9004": JobState.CANCELLED,
        "9005": JobState.RUNNING,
        "9006": JobState.PENDING,
        "9007": JobState.NODE_FAIL,
        "9008": JobState.TIMEOUT,
        "9009": JobState.UNKNOWN,
        "9010": JobState.PENDING,
    }
    assert not JobState.UNKNOWN.final  # an unknown answer is asked again later
    assert states["9010"].reason == "PENDING (DependencyNeverSatisfied)"


def _sacct_states(text: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, JobStatus]:
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command(text, []))
    return SlurmExecutor().states(["20", "21"])


def test_sacct_an_oom_killed_element_reads_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    # recorded: 20 = four elements of 350 MB under --mem=120M, 21 = two of `exit 0`, `exit 3`
    states = _sacct_states((GOLDEN / "sacct_steps_settled.txt").read_text(), monkeypatch)
    for k in range(4):
        oom = states[f"20_{k}"]
        assert oom.state is JobState.OUT_OF_MEMORY and oom.exit_code == "0:9"
        assert oom.reason.startswith("FAILED, peak memory ") and oom.reason.endswith(" of 120M")
    assert states["20_0"].reason == "FAILED, peak memory 238M of 120M"
    assert states["21_0"].state is JobState.COMPLETED
    assert states["21_1"].state is JobState.FAILED and states["21_1"].exit_code == "3:0"


def test_sacct_an_answer_not_settled_yet_is_not_final(monkeypatch: pytest.MonkeyPatch) -> None:
    # recorded a moment earlier: each array's line is its *last* element's record, under
    # the array's id, with the request not filled in yet (ReqMem `16?`): element 21_0,
    # which completed, would read FAILED 3:0 (and an element killed for memory before a
    # last one that completed would read COMPLETED 0:0)
    text = (GOLDEN / "sacct_steps_unsettled.txt").read_text()
    ended = time.mktime(time.strptime("2026-12-07T00:50:07", "%Y-%m-%dT%H:%M:%S"))
    states = slurm_module.parse_sacct(text, ended + 1)
    assert {k: v.state for k, v in states.items()} == {
        "20": JobState.RUNNING,
        "21": JobState.RUNNING,
    }
    assert states["21"].reason == "FAILED, accounting not settled yet"
    assert not any(v.state.final for v in states.values())  # asked again


def test_sacct_a_job_line_ended_before_its_batch_step_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # seen on the test cluster: `5_1|FAILED|0:0` while `5_1.batch` was still RUNNING,
    # `FAILED 0:9` with a MaxRSS over the request half a second later
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    lines = [f"5_1|FAILED|0:0|None||120M|1|{end}", "5_1.batch|RUNNING|0:0||||1|Unknown"]
    status = SlurmExecutor()
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command("\n".join(lines), []))
    assert status.states(["5"])["5_1"].state is JobState.RUNNING
    # an answer that never settles is taken as it stands a minute after the job's end
    long_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 120))
    lines[0] = lines[0].replace(end, long_ago)
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command("\n".join(lines), []))
    assert status.states(["5"])["5_1"].state is JobState.FAILED


def test_sacct_a_killed_job_whose_peak_memory_is_not_in_yet_is_asked_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # seen in CI: an element the memory sampler killed read `FAILED 0:9` with no batch
    # step recorded yet; read then, it would have been a plain FAILED
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    job = f"6_0|FAILED|0:9|None||120M|1|{end}"
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command(job, []))
    assert SlurmExecutor().states(["6"])["6_0"].state is JobState.RUNNING
    lines = [job, f"6_0.batch|CANCELLED by 0|0:9||428736K||1|{end}"]
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command("\n".join(lines), []))
    assert SlurmExecutor().states(["6"])["6_0"].state is JobState.OUT_OF_MEMORY
    # a step recorded without a peak (killed before its first sample) is final at once
    lines = [job, f"6_0.batch|CANCELLED by 0|0:9||||1|{end}"]
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command("\n".join(lines), []))
    assert SlurmExecutor().states(["6"])["6_0"].state is JobState.FAILED
    # never recorded: taken as it stands a minute after the job's end
    long_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 120))
    monkeypatch.setattr(
        slurm_module, "run_command", _fake_run_command(job.replace(end, long_ago), [])
    )
    assert SlurmExecutor().states(["6"])["6_0"].state is JobState.FAILED


def test_sacct_steps_tell_how_a_job_ended(monkeypatch: pytest.MonkeyPatch) -> None:
    # not recorded (the test cluster has no cgroups): how sacct says these
    end = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 5))
    text = "\n".join(
        [
            f"31|FAILED|0:9|None||2Gc|2|{end}",  # --mem-per-cpu=2G on 2 CPUs: 4G in all
            f"31.batch|CANCELLED by 0|0:9||4100000K||2|{end}",
            f"32|COMPLETED|0:0|None||1G|1|{end}",  # a step the kernel killed for memory
            f"32.batch|OUT_OF_MEMORY|0:125||500M||1|{end}",
            f"33|COMPLETED|0:0|None||1G|1|{end}",  # the job line COMPLETED, its step not
            f"33.batch|FAILED|2:0||10M||1|{end}",
            f"34|CANCELLED by 0|0:9|None||1G|1|{end}",  # killed, far below its memory: not OOM
            f"34.batch|CANCELLED by 0|0:9||20M||1|{end}",
            f"35|TIMEOUT|0:0|None||1G|1|{end}",
            f"35.batch|CANCELLED|0:15||900M||1|{end}",
            f"35.extern|COMPLETED|0:0||1M||1|{end}",
        ]
    )
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command(text, []))
    states = SlurmExecutor().states(["31", "32", "33", "34", "35"])
    assert {k: v.state for k, v in states.items()} == {
        "31": JobState.OUT_OF_MEMORY,
        "32": JobState.OUT_OF_MEMORY,
        "33": JobState.FAILED,
        "34": JobState.CANCELLED,
        "35": JobState.TIMEOUT,
    }
    assert states["33"].exit_code == "2:0"
    assert states["33"].reason == "COMPLETED, batch step FAILED"


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


def test_sacct_command_path_is_used(tmp_path: Path) -> None:
    recorded = GOLDEN / "sacct_final.txt"
    args = tmp_path / "args"
    sacct = _script(tmp_path / "sacct", f'echo "$@" > {args}\ncat "{recorded}"\n')
    states = SlurmExecutor(sacct=sacct).states(["271", "276"])
    assert states["271"].state is JobState.TIMEOUT
    assert states["276_5"].state is JobState.COMPLETED
    assert "-j 271,276" in args.read_text()


def test_squeue_is_asked_when_accounting_is_disabled(tmp_path: Path) -> None:
    sacct = _script(
        tmp_path / "sacct",
        "echo 'sacct: error: Slurm accounting storage is disabled' >&2\nexit 1\n",
    )
    squeue = _script(
        tmp_path / "squeue", "printf '41|RUNNING|None\\n42_[1-3]|PENDING|JobArrayTaskLimit\\n'\n"
    )
    ex = SlurmExecutor(sacct=sacct, squeue=squeue)
    states = ex.states(["41", "42"])
    assert states["41"].state is JobState.RUNNING
    assert [states[f"42_{k}"].state for k in (1, 2, 3)] == [JobState.PENDING] * 3
    ex.states(["41"])
    assert ex.calls["sacct"] == 1 and ex.calls["squeue"] == 2  # sacct is not asked again


def test_states_of_no_jobs_asks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(slurm_module, "run_command", _fake_run_command("", seen))
    assert SlurmExecutor().states([]) == {}
    assert seen == []


# --------------------------------------------------------------------------- array index


SCHEDULER_VARIABLES = [
    ("SLURM_ARRAY_TASK_ID", 0),
    ("PBS_ARRAY_INDEX", 0),
    ("PBS_ARRAYID", 0),
    ("LSB_JOBINDEX", 1),
    ("SGE_TASK_ID", 1),
    ("FLUX_JOB_CC", 0),
]


def test_index_variables_are_those_of_the_spec_in_order() -> None:
    assert list(INDEX_VARIABLES[: len(SCHEDULER_VARIABLES)]) == SCHEDULER_VARIABLES


@pytest.mark.parametrize(("name", "base"), SCHEDULER_VARIABLES)
def test_array_element_from_each_variable(name: str, base: int) -> None:
    assert array_element({name: "7"}) == 7 - base
    assert array_element({name: str(base)}) == 0  # the first element


def test_array_element_first_valid_variable_wins() -> None:
    names = [n for n, _ in SCHEDULER_VARIABLES]
    for i, (name, base) in enumerate(SCHEDULER_VARIABLES):
        # this variable and every later one set, each to a different value
        env = {n: str(10 + j) for j, n in enumerate(names) if j >= i}
        assert array_element(env) == 10 + i - base, name


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 0),  # not an array job
        ({"SLURM_ARRAY_TASK_ID": "", "PBS_ARRAY_INDEX": "4"}, 4),
        ({"SGE_TASK_ID": "undefined", "FLUX_JOB_CC": "2"}, 2),  # SGE outside an array
        ({"LSB_JOBINDEX": "0", "SGE_TASK_ID": "3"}, 2),  # LSF outside an array says 0
        ({"SLURM_ARRAY_TASK_ID": " 5 ", "PBS_ARRAYID": "1"}, 5),
        ({"SLURM_ARRAY_TASK_ID": "-1", "PBS_ARRAYID": "1"}, 1),
    ],
)
def test_array_element_skips_invalid_values(env: dict[str, str], expected: int) -> None:
    assert array_element(env) == expected


# --------------------------------------------------------------------------- local executor


def _wait_final(run: Run, timeout: float) -> RunState:
    deadline = time.monotonic() + timeout
    while run.state is RunState.RUNNING:
        if time.monotonic() > deadline:
            doc = run.status(as_dict=True) or {}
            pytest.fail(f"run {run.run_id} still RUNNING after {timeout} s: {doc.get('summary')}")
        time.sleep(0.1)
    return run.state


def test_local_executor_runs_a_fanout_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Any
) -> None:
    import pl_fanout

    monkeypatch.setenv("RFTEST_CALLS", str(calls.path))
    store = tmp_path / "manifest.db"
    run = pl_fanout.wf.submit(tmp_path / "run", executor="local", store=store, n=2)
    assert run.info()["executor"] == "local"
    assert _wait_final(run, 60) is RunState.SUCCESS, run.status(as_dict=True)
    assert run.outputs("square") == [0, 1]
    assert run.outputs("plus") == [1, 2]
    assert run.output("total") == 3
    assert calls.take() == {"make": 1, "square": 2, "plus": 2, "total": 1}
    instances = run.store.instances(run.run_id)
    assert all(i["job_id"] and i["job_id"].startswith("local-") for i in instances)
    assert log_paths(run.run_dir, run.run_id, "plus", 1, 1)[0].exists()

    again = pl_fanout.wf.submit(tmp_path / "run2", executor="local", store=store, n=2)
    assert again.state is RunState.SUCCESS  # nothing to run: finished inside submit
    assert all(i["cached"] for i in again.store.instances(again.run_id))
    assert calls.take() == {}


def test_local_executor_records_element_states(tmp_path: Path) -> None:
    ex = LocalExecutor(tmp_path / "jobs")
    job = ex.submit(
        [sys.executable, "-c", "import os, sys; sys.exit(int(os.environ['REFLOW_ARRAY_INDEX']))"],
        JobResources(name="w.t", array_size=3, array_parallelism=2),
    )
    deadline = time.monotonic() + 30
    while not ex.states([job])[job].state.final:
        assert time.monotonic() < deadline, ex.states([job])
        time.sleep(0.05)
    states = ex.states([job])
    assert states[job].state is JobState.FAILED
    assert states[f"{job}_0"].state is JobState.COMPLETED
    assert states[f"{job}_1"].state is JobState.FAILED and states[f"{job}_1"].exit_code == "1:0"
    assert states[f"{job}_2"].exit_code == "2:0"
