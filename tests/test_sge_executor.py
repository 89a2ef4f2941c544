"""SGEExecutor without a cluster: job scripts (golden files), options, and the parsing of
qstat / qacct output recorded on the SGE test cluster (tests/golden/README.md)."""

from __future__ import annotations

import shlex
import stat
from pathlib import Path

import pytest

from golden_support import GOLDEN, WORKER, check_golden
from reflow.config import load_config
from reflow.dispatch import executor_record, make_executor
from reflow.errors import ValidationError
from reflow.executors import JobResources, JobState
from reflow.executors.base import merge_options
from reflow.executors.sge import (
    SGEExecutor,
    h_rt,
    parse_error_reasons,
    parse_qacct,
    parse_qstat_xml,
    per_slot_memory,
    qstat_state,
)

# the jobs of the recording (scripts/sge-test-cluster/record-fixtures.sh)
RUNNING, ARRAY, HELD, EQW = "29", "30", "31", "32"
OK, EXIT3, HRT, DELETED, EXITS, MEMORY, KILLED = "33", "34", "35", "36", "37", "38", "39"


def _script(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


# --------------------------------------------------------------------------- job scripts


def test_render_singleton() -> None:
    ex = SGEExecutor()
    res = JobResources(
        name="etl.extract",
        cpus=2,
        time="00:10:00",
        grace=60,
        mem="4G",
        stdout=ex.log_pattern("/scratch/runs/r1/logs/extract/scheduler", False),
        stderr=ex.log_pattern("/scratch/runs/r1/logs/extract/scheduler", False),
        workdir="/home/ana/project",
    )
    check_golden("sge_single.sh", ex.render(WORKER, res))


def test_render_array_with_parallelism_queue_account_and_extra_options() -> None:
    partition, account, extra = merge_options(
        {"partition": "short.q", "queue": "gpu.q", "gpus": 1, "project": "genomics",
         "arch": "lx-amd64", "notify": True, "reserve": True},
        {"account": "proj_42", "queue": "all.q", "rerun": False},
        "queue",
    )  # fmt: skip
    ex = SGEExecutor()
    log = ex.log_pattern("/scratch/runs/r1/logs/transform/scheduler", True)
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
        stdout=log,
        stderr=log,
    )
    script = ex.render(WORKER, res)
    check_golden("sge_array.sh", script)
    assert "#$ -q gpu.q\n" in script  # the native key wins over the synonym
    assert "#$ -t 1-100\n#$ -tc 10\n" in script  # SGE counts tasks from 1
    assert "#$ -l h_vmem=125M\n" in script  # per slot: 500M over 4 slots


def test_render_dependencies_and_environment() -> None:
    res = JobResources(
        name="etl.dispatch",
        cpus=1,
        time="00:10:00",
        mem="1G",
        dependencies=("1001", "1002.1", "1002.2", "1003"),
        stdout="/scratch/runs/r1/logs/_dispatcher/$JOB_ID.log",
        stderr="/scratch/runs/r1/logs/_dispatcher/$JOB_ID.log",
        env={"REFLOW_STORE_PATH": "/shared/team/manifest.db", "GREETING": "hello world"},
    )
    command = ["/opt/venv/bin/python", "-m", "reflow.dispatch", "--run-id", "etl-20260401-a1b2"]
    script = SGEExecutor().render(command, res)
    check_golden("sge_dependencies.sh", script)
    assert "#$ -hold_jid 1001,1002,1003\n" in script  # elements wait as their whole job
    assert "-pe" not in script  # one slot needs no parallel environment


def test_render_minimal_job() -> None:
    script = SGEExecutor().render(["true"], JobResources(name="w.t", array_size=1))
    assert script.startswith("#!/bin/bash\n#$ -N w.t\n#$ -S /bin/bash\n#$ -V\n#$ -cwd\n")
    assert "#$ -t 1-1\n" in script and "-tc" not in script and "-hold_jid" not in script
    assert "\ntrue\nstatus=$?\n" in script
    assert "exec" not in script  # the shell stays, to keep exit codes 99 and 100 from SGE


def test_render_names_quotes_and_paths() -> None:
    res = JobResources(
        name="1 job/with:odd chars",
        partition="big memory",
        account="lab one",
        stdout="/runs/my run/$JOB_ID.log",
        stderr="/runs/my run/$JOB_ID.log",
        workdir="/home/ana/my project",
        extra={"project": "two words", "pe": "mpi"},
        cpus=8,
    )
    script = SGEExecutor().render(["echo", "a b"], res)
    assert "#$ -N j1_job_with_odd_chars\n" in script  # SGE refuses a name starting with a digit
    assert '#$ -q "big memory"' in script
    assert '#$ -A "lab one"' in script
    assert '#$ -P "two words"' in script
    assert '#$ -o "/runs/my run/$JOB_ID.log"' in script
    assert '#$ -wd "/home/ana/my project"' in script
    assert "#$ -pe mpi 8\n" in script  # a task's own parallel environment
    assert "\necho 'a b'\n" in script


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"project": 'say "hi"'}, "double quote"),
        ({"arch": "a,b"}, "resource request"),
        ({"arch": "two words"}, "resource request"),
        ({"x; rm -rf": 1}, "not valid"),
        ({"project": "two\nlines"}, "newline"),
        ({"pe": "no such pe"}, "parallel environment"),
    ],
)
def test_render_refuses_bad_options(extra: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SGEExecutor().render(["true"], JobResources(name="w.t", extra=extra))


def test_render_refuses_log_paths_sge_would_misread() -> None:
    for path in ("/runs/a:b/$JOB_ID.log", "/runs/a,b/$JOB_ID.log"):
        with pytest.raises(ValidationError, match="host name"):
            SGEExecutor().render(["true"], JobResources(name="w.t", stdout=path, stderr=path))


def test_render_separate_stdout_and_stderr() -> None:
    script = SGEExecutor().render(
        ["true"], JobResources(name="w.t", stdout="/l/$JOB_ID.out", stderr="/l/$JOB_ID.err")
    )
    assert "#$ -o /l/$JOB_ID.out\n#$ -e /l/$JOB_ID.err\n" in script and "-j y" not in script


def test_memory_resource_is_a_setting() -> None:
    ex = SGEExecutor(mem_resource="mem_free", pe="threads")
    script = ex.render(["true"], JobResources(name="w.t", cpus=2, mem="3G"))
    assert "#$ -l mem_free=1536M\n" in script and "#$ -pe threads 2\n" in script
    with pytest.raises(ValidationError):
        SGEExecutor(pe="two words")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("00:10:00", "0:10:00"), ("1-02:00:00", "26:00:00"), ("48:00:00", "48:00:00"),
     ("90", "1:30:00"), ("1-12", "36:00:00"), ("30:15", "0:30:15")],
)  # fmt: skip
def test_time_as_h_rt(text: str, expected: str) -> None:
    assert h_rt(text) == expected


def test_time_refused() -> None:
    with pytest.raises(ValidationError, match="time limit"):
        h_rt("two hours")


@pytest.mark.parametrize(
    ("mem", "slots", "expected"),
    [("4G", 1, "4G"), ("4G", 4, "1G"), ("500M", 4, "125M"), ("1G", 3, "349526K"),
     ("1T", 1, "1024G"), ("2048", 1, "2G"), ("100M", 1, "100M"), ("512k", 2, "256K")],
)  # fmt: skip
def test_memory_per_slot(mem: str, slots: int, expected: str) -> None:
    assert per_slot_memory(mem, slots) == expected


# --------------------------------------------------------------------------- ids and settings


def test_element_ids_are_sges_own_and_match_the_log_file() -> None:
    ex = SGEExecutor()
    assert ex.index_base == 1
    assert ex.element_id("123", 0) == "123.1"  # element 0 is task 1
    assert ex.job_of("123.7") == "123" and ex.job_of("123") == "123"
    # the scheduler log SGE writes for task 1 of job 123 is the file _failure_text reads
    pattern = ex.log_pattern("/r/logs/t/scheduler", True)
    assert (
        pattern.replace("$JOB_ID", "123").replace("$TASK_ID", "1")
        == "/r/logs/t/scheduler/123.1.log"
    )
    single = ex.log_pattern("/r/logs/t/scheduler", False)
    assert single.replace("$JOB_ID", "9") == "/r/logs/t/scheduler/9.log"


def test_settings_survive_the_record_of_a_run(tmp_path: Path) -> None:
    qconf = _script(tmp_path / "qconf", "echo 'max_aj_instances             2000'\n"
                    "echo 'max_aj_tasks                 500'\n")  # fmt: skip
    ex = SGEExecutor(qsub=str(tmp_path / "qsub"), pe="mpi", mem_resource="h_rss")
    assert ex.max_array_size() == 500  # qconf next to qsub, read once
    record = executor_record(ex)
    assert record["mode"] == "qsub-sge"
    assert record["settings"] == {"pe": "mpi", "mem_resource": "h_rss", "max_array_size": 500}
    Path(qconf).unlink()  # a later pass does not ask again
    again = make_executor(record, load_config())
    assert isinstance(again, SGEExecutor)
    assert (again.pe, again.mem_resource, again.max_array_size()) == ("mpi", "h_rss", 500)
    # command paths come from the configuration, never from the (shared) store
    assert again.qsub != str(tmp_path / "qsub") and again.calls["qconf"] == 0


def test_mode_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFLOW_QSUB", str(tmp_path / "my-qsub"))
    for name in ("sge", "qsub-sge"):
        ex = make_executor(name, load_config())
        assert isinstance(ex, SGEExecutor)
        assert ex.qsub == str(tmp_path / "my-qsub") and ex.qstat == "qstat"


def test_unknown_array_limit_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no qconf beside qsub, nor on PATH
    ex = SGEExecutor(qsub=str(tmp_path / "qsub"))
    assert ex.max_array_size() is None
    assert ex.max_array_size() is None and ex.calls["qconf"] == 1


# --------------------------------------------------------------------------- parsing


def test_parse_qstat_xml_expands_pending_task_ranges() -> None:
    jobs = parse_qstat_xml((GOLDEN / "sge_qstat_live.xml").read_text())
    assert jobs[RUNNING] == {None: "r"}
    assert jobs[ARRAY] == {1: "r", 2: "r", 3: "qw", 4: "qw", 5: "qw", 6: "qw"}
    assert jobs[HELD] == {None: "hqw"}
    assert jobs[EQW] == {None: "Eqw"}


@pytest.mark.parametrize(
    ("letters", "state"),
    [("r", JobState.RUNNING), ("t", JobState.RUNNING), ("Rr", JobState.RUNNING),
     ("s", JobState.RUNNING), ("qw", JobState.PENDING), ("hqw", JobState.PENDING),
     ("hRwq", JobState.PENDING), ("Rq", JobState.PENDING), ("Eqw", JobState.FAILED),
     ("dr", JobState.CANCELLED), ("dt", JobState.CANCELLED), ("", JobState.UNKNOWN)],
)  # fmt: skip
def test_qstat_state_letters(letters: str, state: JobState) -> None:
    assert qstat_state(letters) is state


def test_parse_error_reason() -> None:
    reasons = parse_error_reasons((GOLDEN / "sge_qstat_j_eqw.txt").read_text())
    assert reasons == {
        EQW: {1: "error: can't open output file \"/nonexistent/dir/x.log\": No such file or "
              "directory"}
    }  # fmt: skip


def test_parse_qacct_records() -> None:
    records = parse_qacct((GOLDEN / "sge_qacct.txt").read_text())
    by_job = {(r["jobnumber"], r["taskid"]) for r in records}
    assert (EXITS, "1") in by_job and (EXITS, "3") in by_job and (OK, "undefined") in by_job
    assert len(records) == 10


class FakeSGE:
    """qstat / qacct / qdel programs that answer with the recorded output."""

    def __init__(self, tmp_path: Path, live: str = "sge_qstat_live.xml") -> None:
        self.args = tmp_path / "args"
        rec = shlex.quote(str(self.args))
        xml = shlex.quote(str(GOLDEN / live))
        eqw = shlex.quote(str(GOLDEN / "sge_qstat_j_eqw.txt"))
        acct = shlex.quote(str(GOLDEN / "sge_qacct.txt"))
        self.qstat = _script(
            tmp_path / "qstat",
            f'echo "qstat $*" >> {rec}\n'
            f'case "$*" in *-xml*) cat {xml} ;; "-j "*) cat {eqw} ;; *) exit 2 ;; esac\n',
        )
        self.qacct = _script(
            tmp_path / "qacct",
            f'echo "qacct $*" >> {rec}\n'
            f'if grep -q "^jobnumber  *$2 " {acct}; then cat {acct}; '
            f'else echo "error: job id $2 not found" >&2; exit 1; fi\n',
        )
        self.qdel = _script(tmp_path / "qdel", f'echo "qdel $*" >> {rec}\n')

    def executor(self) -> SGEExecutor:
        return SGEExecutor(qstat=self.qstat, qacct=self.qacct, qdel=self.qdel)

    def calls(self) -> list[str]:
        return self.args.read_text().splitlines() if self.args.exists() else []


def test_states_of_live_jobs_one_qstat(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    ex = fake.executor()
    states = ex.states([RUNNING, ARRAY, HELD])
    assert fake.calls() == ["qstat -u * -xml"]  # one call for every job, nothing else
    assert states[RUNNING].state is JobState.RUNNING
    assert states[RUNNING].reason == "RUNNING (r)"
    assert [states[f"{ARRAY}.{t}"].state for t in range(1, 7)] == [JobState.RUNNING] * 2 + [
        JobState.PENDING
    ] * 4
    assert states[HELD].state is JobState.PENDING and states[HELD].reason == "PENDING (hqw)"
    assert ARRAY not in states  # an array job is known by its tasks


def test_states_of_ended_jobs_from_qacct(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    ex = fake.executor()
    asked = [OK, EXIT3, HRT, DELETED, EXITS, MEMORY, KILLED, "99"]
    states = ex.states(asked)
    calls = fake.calls()
    assert calls[0] == "qstat -u * -xml"
    assert calls[1:] == [f"qacct -j {j}" for j in asked]  # one per job that left qstat
    assert ex.calls == {"qsub": 0, "qstat": 1, "qacct": 8, "qdel": 0, "qconf": 0}

    assert states[OK].state is JobState.COMPLETED and states[OK].exit_code == "0:0"
    assert states[EXIT3].state is JobState.FAILED and states[EXIT3].exit_code == "3:0"
    assert states[HRT].state is JobState.TIMEOUT
    assert states[HRT].reason == (
        "TIMEOUT (failed 37: qmaster enforced h_rt, h_cpu, or h_vmem limit)"
    )
    assert states[HRT].exit_code == "0:9"  # SIGKILL, said as Slurm says it
    assert states[DELETED].state is JobState.CANCELLED
    assert states[DELETED].reason == "CANCELLED (failed 100: assumedly after job)"
    assert [states[f"{EXITS}.{t}"].exit_code for t in (1, 2, 3)] == ["0:0", "1:0", "2:0"]
    assert states[f"{EXITS}.1"].state is JobState.COMPLETED
    assert states[f"{EXITS}.3"].state is JobState.FAILED
    assert states[MEMORY].state is JobState.OUT_OF_MEMORY  # h_vmem, well within no h_rt
    # the worker killed under its shell: a failure, not a cancellation
    assert states[KILLED].state is JobState.FAILED and states[KILLED].exit_code == "0:9"
    assert "99" not in states  # no record: unknown, asked again later
    assert all(s.state.final for s in states.values())


def test_states_of_element_ids(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    states = fake.executor().states([f"{ARRAY}.2", f"{ARRAY}.5", f"{EXITS}.2"])
    assert states[f"{ARRAY}.2"].state is JobState.RUNNING
    assert states[f"{ARRAY}.5"].state is JobState.PENDING
    assert states[f"{EXITS}.2"].state is JobState.FAILED
    assert fake.calls() == ["qstat -u * -xml", f"qacct -j {EXITS}"]


def test_a_task_gone_from_a_live_array_is_looked_up(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    fake.executor().states([f"{ARRAY}.1", f"{ARRAY}.7"])  # 7 is not in qstat any more
    assert fake.calls() == ["qstat -u * -xml", f"qacct -j {ARRAY}"]


def test_job_in_error_state_fails_with_reason_and_is_deleted(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    ex = fake.executor()
    states = ex.states([EQW, RUNNING])
    status = states[EQW]
    assert status.state is JobState.FAILED
    assert status.reason == (
        'FAILED (error state Eqw: error: can\'t open output file "/nonexistent/dir/x.log": '
        "No such file or directory; reflow deleted the job)"
    )
    assert states[RUNNING].state is JobState.RUNNING
    assert fake.calls() == ["qstat -u * -xml", f"qstat -j {EQW}", f"qdel {EQW}"]


def test_job_in_error_state_that_cannot_be_deleted_still_fails(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    qdel = _script(tmp_path / "qdel-refused", "echo 'ana - you are not owner of job 32'\nexit 1\n")
    ex = SGEExecutor(qstat=fake.qstat, qacct=fake.qacct, qdel=qdel)
    status = ex.states([EQW])[EQW]
    assert status.state is JobState.FAILED
    assert "reflow could not delete the job" in status.reason and "not owner" in status.reason


def test_states_of_no_jobs_asks_nothing(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    assert fake.executor().states([]) == {}
    assert fake.executor().states(["dry-run-1"]) == {}
    assert fake.calls() == []


def test_qacct_of_limits_tells_time_from_memory() -> None:
    from reflow.executors.sge import qacct_status

    base = {"failed": "37  : qmaster enforced h_rt, h_cpu, or h_vmem limit",
            "exit_status": "137                  (Killed)"}  # fmt: skip
    both = "-l h_rt=60,h_vmem=1G -pe smp 2"
    assert qacct_status({**base, "category": both, "ru_wallclock": "61s"}).state is (
        JobState.TIMEOUT
    )
    assert qacct_status({**base, "category": both, "ru_wallclock": "5s"}).state is (
        JobState.OUT_OF_MEMORY
    )
    cpu = {**base, "category": "-l h_cpu=10", "cpu": "10.020s"}
    assert qacct_status(cpu).state is JobState.TIMEOUT
    # killed by the execd's own h_rt check (failed 100), not by qdel: its run time says so
    late = {"failed": "100 : assumedly after job", "exit_status": "137"}
    timed = {**late, "category": "-l h_rt=40,s_rt=20", "ru_wallclock": "112s"}
    assert qacct_status(timed).state is JobState.TIMEOUT
    assert qacct_status({**timed, "ru_wallclock": "12s"}).state is JobState.CANCELLED
    other = qacct_status({"failed": "26  : opening input/output file", "exit_status": "0"})
    assert other.state is JobState.FAILED
    assert other.reason == "FAILED (failed 26: opening input/output file)"


# --------------------------------------------------------------------------- submit and cancel


def test_submit_reads_the_job_id(tmp_path: Path) -> None:
    seen = tmp_path / "script"
    qsub = _script(tmp_path / "qsub", f'cat > {seen}\necho "$*" >> {seen}.args\necho 4242.1-3:1\n')
    ex = SGEExecutor(qsub=qsub)
    job = ex.submit(["true"], JobResources(name="w.t", array_size=3))
    assert job == "4242" and ex.calls["qsub"] == 1
    assert seen.read_text().startswith("#!/bin/bash\n#$ -N w.t\n")  # the script on stdin
    assert (tmp_path / "script.args").read_text() == "-terse\n"  # not -b y


def test_submit_reports_what_qsub_said(tmp_path: Path) -> None:
    from reflow.executors import SchedulerError

    qsub = _script(
        tmp_path / "qsub",
        "echo 'Unable to run job: Job was rejected because job requests unknown queue \"x\".'"
        " >&2\necho Exiting. >&2\nexit 1\n",
    )
    with pytest.raises(SchedulerError, match='unknown queue "x"'):
        SGEExecutor(qsub=qsub).submit(["true"], JobResources(name="w.t"))


def test_cancel_whole_jobs_and_task_ranges(tmp_path: Path) -> None:
    fake = FakeSGE(tmp_path)
    ex = fake.executor()
    ex.cancel(["7", "9.1", "9.2", "9.3", "9.5", "7.4", "10.2", "dry-run-1"])
    assert fake.calls() == ["qdel 7 9.1-3 9.5 10.2"]
    ex.cancel([])
    assert len(fake.calls()) == 1


def test_cancel_ignores_jobs_that_ended(tmp_path: Path) -> None:
    from reflow.executors import SchedulerError

    qdel = _script(
        tmp_path / "qdel",
        "echo 'denied: job \"99\" does not exist'\necho 'root has deleted job 7'\nexit 1\n",
    )
    SGEExecutor(qdel=qdel).cancel(["7", "99"])  # no error
    refused = _script(tmp_path / "qdel2", "echo 'ana - you are not owner of job 7'\nexit 1\n")
    with pytest.raises(SchedulerError, match="not owner"):
        SGEExecutor(qdel=refused).cancel(["7"])


def test_qacct_of_a_job_that_failed_at_its_memory_limit_reads_out_of_memory() -> None:
    from reflow.executors.sge import qacct_status

    # a program that aborts when an allocation fails under h_vmem: failed 0, exit 134
    aborted = {"failed": "0", "exit_status": "134", "category": "-l h_vmem=150M",
               "maxvmem": "149.500MB", "slots": "1"}  # fmt: skip
    status = qacct_status(aborted)
    assert status.state is JobState.OUT_OF_MEMORY
    assert status.reason == "FAILED (maxvmem 149.500MB of h_vmem=150M)"
    # h_vmem is per slot: 2 slots of 150M may use 300M
    assert qacct_status({**aborted, "slots": "2"}).state is JobState.FAILED
    assert qacct_status({**aborted, "maxvmem": "20.000MB"}).state is JobState.FAILED
    assert qacct_status({**aborted, "exit_status": "0"}).state is JobState.COMPLETED
    # recorded: two processes of 100 MB under h_vmem=150M (job 38), killed by qmaster
    record = next(r for r in parse_qacct((GOLDEN / "sge_qacct.txt").read_text())
                  if r["jobnumber"] == "38")  # fmt: skip
    killed = qacct_status(record)
    assert killed.state is JobState.OUT_OF_MEMORY
    assert "maxvmem 217.684MB of h_vmem=150M" in killed.reason


def test_render_asks_for_the_warning_at_s_rt_when_a_grace_is_given() -> None:
    ex = SGEExecutor()
    script = ex.render(["w"], JobResources(name="w.t", time="0:02:00", grace=300))
    assert "#$ -l s_rt=0:01:00" in script  # at most half the limit
    assert script.index("trap '' USR1") < script.index("\nw\n")
    plain = ex.render(["w"], JobResources(name="w.t", time="0:02:00"))
    assert "s_rt" not in plain and "trap" not in plain
    assert "s_rt" not in ex.render(["w"], JobResources(name="w.t", grace=60))
