"""PBS Pro, Torque, LSF and Flux without a cluster.

- Job scripts as golden files (tests/golden/{pbs_pro,torque,lsf,flux}_*.sh).
- States parsed from each scheduler's output format, kept in tests/golden/
  (written from the schedulers' documentation: see tests/golden/README.md).
- End to end through the scheduler simulators in tests/simulators/: the real
  flags reflow emits are parsed (and anything else refused), jobs run detached
  with the scheduler's environment and index base, dependencies and limits
  are honoured, and status comes back in the scheduler's own format.  Runs on
  the four schedulers go in parallel inside each test, to keep it short.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from golden_support import DISPATCH, GOLDEN, WORKER, check_golden
from reflow import Run, RunState
from reflow.errors import ValidationError
from reflow.executors import flux as flux_module
from reflow.executors import lsf as lsf_module
from reflow.executors import pbs as pbs_module
from reflow.executors.base import Executor, JobResources, JobState, SchedulerError, merge_options
from reflow.executors.flux import FluxExecutor, decode_id
from reflow.executors.lsf import LSFExecutor
from reflow.executors.pbs import PBSExecutor
from reflow.render import render_status
from reflow.stores.sqlite import SqliteStore

HERE = Path(__file__).resolve().parent
SIMULATORS = HERE / "simulators"
PIPELINES = HERE / "cluster" / "pipelines"
for _path in (PIPELINES, SIMULATORS):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import _simcore  # noqa: E402
import pl_crash  # noqa: E402
import pl_fail  # noqa: E402
import pl_hold  # noqa: E402


def _renderers() -> dict[str, Executor]:
    return {
        "pbs_pro": PBSExecutor(flavor="pro"),
        "torque": PBSExecutor(flavor="torque"),
        "lsf": LSFExecutor(),
        "flux": FluxExecutor(),
    }


RENDERERS = ["pbs_pro", "torque", "lsf", "flux"]


# --------------------------------------------------------------------------- job scripts


@pytest.mark.parametrize("which", RENDERERS)
def test_render_singleton(which: str) -> None:
    ex = _renderers()[which]
    log = ex.log_pattern("/scratch/runs/r1/logs/extract/scheduler", False)
    res = JobResources(
        name="etl.extract",
        cpus=2,
        time="00:10:00",
        grace=60,
        mem="4G",
        stdout=log,
        stderr=log,
        workdir="/home/ana/project",
    )
    check_golden(f"{which}_single.sh", ex.render(WORKER, res))


@pytest.mark.parametrize("which", RENDERERS)
def test_render_array_with_parallelism_partition_account_and_extra_options(which: str) -> None:
    ex = _renderers()[which]
    # the task says queue, the config partition: on these schedulers "queue" is the native key
    partition, account, extra = merge_options(
        {"queue": "gpu", "partition": "ignored"}, {"account": "proj_42"}, ex.queue_key
    )
    assert partition == "gpu"
    extra: dict[str, Any] = {  # other options: each scheduler's own spelling
        "pbs_pro": {"m": "abe", "ngpus": 1, "place": "scatter"},
        "torque": {"m": "abe", "gpus": 1},
        "lsf": {"app": "gpu_app", "x": True},
        "flux": {"exclusive": True, "gpus_per_task": 1},
    }[which]
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
        workdir="/home/ana/project",
    )
    check_golden(f"{which}_array.sh", ex.render(WORKER, res))


@pytest.mark.parametrize("which", RENDERERS)
def test_render_dependencies_and_environment(which: str) -> None:
    ex = _renderers()[which]
    deps = {
        "pbs_pro": ("1001.pbsserver", "1002[].pbsserver", "1002[3].pbsserver"),
        "torque": ("2001.torque-server", "2002[].torque-server"),
        "lsf": ("3001", "3002", "3002[4]"),
        "flux": ("1873816223744", "1873833000960,1873849778176"),
    }[which]
    log = ex.log_pattern("/scratch/runs/r1/logs/_dispatcher", False)
    res = JobResources(
        name="etl.dispatch",
        cpus=1,
        time="00:10:00",
        mem="1G",
        dependencies=deps,
        stdout=log,
        stderr=log,
        env={"REFLOW_STORE_PATH": "/shared/team/manifest.db", "GREETING": "hello world"},
    )
    check_golden(f"{which}_dependencies.sh", ex.render(DISPATCH, res))


def test_pbs_flavours_differ_where_the_schedulers_do() -> None:
    res = JobResources(name="w.t", cpus=2, mem="1G", array_size=4, array_parallelism=2)
    pro = PBSExecutor(flavor="pro").render(["true"], res)
    torque = PBSExecutor(flavor="torque").render(["true"], res)
    assert "#PBS -J 0-3%2\n" in pro and "#PBS -l select=1:ncpus=2:mem=1gb\n" in pro
    assert "#PBS -t 0-3%2\n" in torque and "#PBS -l nodes=1:ppn=2\n#PBS -l mem=1gb\n" in torque
    assert "-t " not in pro and "select" not in torque
    # PBS Pro refuses a one-element range (-J 0-0): such a wave is a plain job
    one = JobResources(name="w.t", array_size=1)
    assert "-J" not in PBSExecutor(flavor="pro").render(["true"], one)
    assert PBSExecutor(flavor="pro").element_id("77.srv", 0) == "77.srv"
    # PBS waits only for whole arrays; Torque needs afteranyarray for them
    deps = JobResources(name="w.t", dependencies=("5.srv", "6[].srv", "6[2].srv"))
    assert "#PBS -W depend=afterany:5.srv:6[].srv\n" in PBSExecutor(flavor="pro").render(
        ["true"], deps
    )
    assert "#PBS -W depend=afterany:5.srv,afteranyarray:6[].srv\n" in PBSExecutor(
        flavor="torque"
    ).render(["true"], deps)


def test_element_ids_are_each_schedulers_own() -> None:
    pbs = PBSExecutor(flavor="pro")
    assert pbs.element_id("1006[].pbsserver", 3) == "1006[3].pbsserver"
    assert pbs.job_of("1006[3].pbsserver") == "1006[].pbsserver"
    assert pbs.job_of("1007.pbsserver") == "1007.pbsserver"
    lsf = LSFExecutor()
    assert lsf.element_id("3006", 0) == "3006[1]"  # LSF counts from 1
    assert lsf.job_of("3006[1]") == "3006"
    flux = FluxExecutor()
    assert [flux.element_id("11,12,13", k) for k in range(3)] == ["11", "12", "13"]
    assert flux.job_of("12") == "12"


def test_flux_array_parallelism_goes_in_ranges() -> None:
    ex = FluxExecutor()
    res = JobResources(name="w.t", array_size=5, array_parallelism=2)
    assert ex._ranges(res) == [(0, 1), (2, 3), (4, 4)]
    assert ex._ranges(JobResources(name="w.t", array_size=5)) == [(0, 4)]
    argv = ex.argv(["python", "-c", "print({})"], res, (2, 3), after=["11", "12"])
    assert "--cc=2-3" in argv
    assert argv.count("--dependency=afterany:11") == 1 and "--dependency=afterany:12" in argv
    # under --cc, flux submit formats every word: a brace goes over hex-encoded
    assert "print({})" not in argv and argv[-3] == "-c"
    assert ex.argv(["python", "-c", "print({})"], JobResources(name="w.t"))[-1] == "print({})"
    with pytest.raises(ValidationError, match="brace"):
        ex.argv(["true"], JobResources(name="w.t", env={"X": "{a}"}), (0, 1))


@pytest.mark.parametrize("which", RENDERERS)
def test_render_refuses_newlines_and_bad_option_names(which: str) -> None:
    ex = _renderers()[which]
    with pytest.raises(ValidationError, match="not valid"):
        ex.render(["true"], JobResources(name="w.t", extra={"x; rm -rf": 1}))
    if which != "flux":
        with pytest.raises(ValidationError, match="newline or a double quote"):
            ex.render(["true"], JobResources(name="w.t", partition='say "hi"'))


def test_pbs_refuses_what_it_would_misread() -> None:
    pro = PBSExecutor(flavor="pro")
    with pytest.raises(ValidationError, match="host:path"):
        pro.render(["true"], JobResources(name="w.t", stdout="/runs/a:b/%j.log"))
    with pytest.raises(ValidationError, match="PBS resource request"):
        pro.render(["true"], JobResources(name="w.t", extra={"ngpus": "1,2"}))


# --------------------------------------------------------------------------- states


def _fake(text: str, seen: list[list[str]], code: int = 0, err: str = "") -> Any:
    def fake(argv: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.append(list(argv))
        return subprocess.CompletedProcess(list(argv), code, text, err)

    return fake


PBS_PRO_IDS = [f"{n}.pbsserver" for n in (1001, 1002, 1003, 1004, 1005, 1007, 1008)]


def test_pbs_pro_states_from_qstat_full(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    text = (GOLDEN / "pbs_pro_qstat_f.txt").read_text()
    monkeypatch.setattr(pbs_module, "run_scheduler", _fake(text, seen))
    ex = PBSExecutor(flavor="pro")
    states = ex.states([*PBS_PRO_IDS, "1006[].pbsserver"])
    assert len(seen) == 1 and seen[0][:4] == ["qstat", "-f", "-t", "-x"]
    assert seen[0][4:] == [*PBS_PRO_IDS, "1006[].pbsserver"]  # one call for every job
    got = {k: v.state for k, v in states.items()}
    assert got == {
        "1001.pbsserver": JobState.COMPLETED,
        "1002.pbsserver": JobState.FAILED,
        "1003.pbsserver": JobState.FAILED,
        "1004.pbsserver": JobState.TIMEOUT,
        "1005.pbsserver": JobState.CANCELLED,
        "1006[].pbsserver": JobState.RUNNING,
        "1006[0].pbsserver": JobState.COMPLETED,
        "1006[1].pbsserver": JobState.RUNNING,
        "1006[2].pbsserver": JobState.PENDING,
        "1006[3].pbsserver": JobState.PENDING,
        "1007.pbsserver": JobState.PENDING,
        "1008.pbsserver": JobState.OUT_OF_MEMORY,
    }
    assert states["1002.pbsserver"].exit_code == "3"
    assert states["1003.pbsserver"].exit_code == "0:9"  # 256 + SIGKILL
    assert "JOB_EXEC_KILL_WALLTIME" in states["1004.pbsserver"].reason
    assert "deleted before it ran" in states["1005.pbsserver"].reason
    assert states["1007.pbsserver"].reason == "H (held)"
    assert "JOB_EXEC_KILL_MEM" in states["1008.pbsserver"].reason


def test_pbs_qstat_full_joins_wrapped_values() -> None:
    jobs = pbs_module.parse_qstat_full((GOLDEN / "pbs_pro_qstat_f.txt").read_text())
    first = jobs["1001.pbsserver"]
    assert first["comment"].endswith("(node01:ncpus=1:mem=102400kb) and finished")
    assert first["Variable_List"].endswith("PBS_O_QUEUE=workq,PBS_O_HOST=login1")
    assert "PBS_O_WORKDIR=/home/ana/project," in first["Variable_List"]


def test_torque_states_from_qstat_full(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    text = (GOLDEN / "torque_qstat_f.txt").read_text()
    monkeypatch.setattr(pbs_module, "run_scheduler", _fake(text, seen))
    ex = PBSExecutor(flavor="torque")
    server = "torque-server.cluster.local"
    ids = [f"{n}.{server}" for n in (2001, 2002, 2003, 2004, 2006, 2007, 2008, 2009)]
    states = ex.states([*ids, f"2005[].{server}"])
    assert seen[0][:3] == ["qstat", "-f", "-t"] and "-x" not in seen[0]  # Torque's -x is XML
    got = {k.split(".")[0]: v.state for k, v in states.items()}
    assert got == {
        "2001": JobState.COMPLETED,
        "2002": JobState.TIMEOUT,  # SIGTERM (271) after its walltime was used up
        "2003": JobState.FAILED,
        "2004": JobState.OUT_OF_MEMORY,
        "2005[]": JobState.RUNNING,  # from its subjobs: Torque's -t shows no array line
        "2005[0]": JobState.COMPLETED,
        "2005[1]": JobState.RUNNING,
        "2005[2]": JobState.PENDING,
        "2006": JobState.PENDING,
        "2007": JobState.PENDING,
        "2008": JobState.FAILED,
        "2009": JobState.CANCELLED,
    }
    assert states[f"2003.{server}"].exit_code == "0:9"
    assert "walltime 00:01:00" in states[f"2002.{server}"].reason


def test_pbs_states_ignore_ids_qstat_no_longer_knows(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (GOLDEN / "pbs_pro_qstat_f.txt").read_text()
    err = "qstat: Unknown Job Id 999.pbsserver\n"
    monkeypatch.setattr(pbs_module, "run_scheduler", _fake(text, [], code=153, err=err))
    states = PBSExecutor(flavor="pro").states(["1001.pbsserver", "999.pbsserver"])
    assert states["1001.pbsserver"].state is JobState.COMPLETED and "999.pbsserver" not in states
    monkeypatch.setattr(pbs_module, "run_scheduler", _fake("", [], code=153, err=err))
    assert PBSExecutor(flavor="pro").states(["999.pbsserver"]) == {}
    monkeypatch.setattr(
        pbs_module, "run_scheduler", _fake("", [], code=1, err="qstat: cannot connect to server")
    )
    with pytest.raises(SchedulerError, match="cannot connect"):
        PBSExecutor(flavor="pro").states(["1001.pbsserver"])


@pytest.mark.parametrize(
    ("fixture", "flavor"),
    [("pbs_pro_qstat_version.txt", "pro"), ("torque_qstat_version.txt", "torque")],
)
def test_pbs_flavour_from_qstat_version(
    monkeypatch: pytest.MonkeyPatch, fixture: str, flavor: str
) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(pbs_module, "run_scheduler", _fake((GOLDEN / fixture).read_text(), seen))
    ex = PBSExecutor()
    assert ex.settings() == {"flavor": flavor}
    assert ex.flavor == flavor and seen == [["qstat", "--version"]]  # asked once
    rebuilt = PBSExecutor.create({"qsub": None, "qstat": None, "qdel": None}, ex.settings())
    assert isinstance(rebuilt, PBSExecutor) and rebuilt.flavor == flavor
    assert len(seen) == 1  # a later pass takes the recorded flavour


def test_pbs_flavour_unknown_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pbs_module, "run_scheduler", _fake("qstat 1.0 (someone else's)\n", []))
    with pytest.raises(SchedulerError, match="flavor='pro'"):
        _ = PBSExecutor().flavor
    with pytest.raises(ValidationError, match="'pro' or 'torque'"):
        PBSExecutor(flavor="slurm")


def test_lsf_states_from_bjobs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    text = (GOLDEN / "lsf_bjobs.txt").read_text()
    monkeypatch.setattr(lsf_module, "run_scheduler", _fake(text, seen))
    ids = [str(n) for n in range(3001, 3010)]
    states = LSFExecutor().states(ids)
    assert len(seen) == 1 and seen[0][:5] == [
        "bjobs",
        "-a",
        "-noheader",
        "-o",
        lsf_module.BJOBS_FORMAT,
    ]
    assert seen[0][5:] == ids
    assert {k: v.state for k, v in states.items()} == {
        "3001": JobState.COMPLETED,
        "3002": JobState.FAILED,
        "3003": JobState.TIMEOUT,
        "3004": JobState.OUT_OF_MEMORY,
        "3005": JobState.CANCELLED,
        "3006": JobState.RUNNING,
        "3006[1]": JobState.COMPLETED,
        "3006[2]": JobState.RUNNING,
        "3006[3]": JobState.PENDING,
        "3006[4]": JobState.PENDING,
        "3007": JobState.PENDING,
        "3008": JobState.FAILED,
        "3009": JobState.UNKNOWN,  # the host is unreachable: asked again later
    }
    assert states["3002"].exit_code == "3"
    assert states["3003"].reason.startswith("EXIT (TERM_RUNLIMIT")
    assert states["3008"].exit_code == "137:9"  # said as "killed by SIGKILL"
    assert not states["3009"].state.final


def test_flux_states_from_flux_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []
    text = (GOLDEN / "flux_jobs.txt").read_text()
    monkeypatch.setattr(flux_module, "run_scheduler", _fake(text, seen))
    ids = [line.split("|")[0] for line in text.splitlines()]
    states = FluxExecutor().states(ids)
    assert len(seen) == 1 and seen[0][:5] == ["flux", "jobs", "-n", "-o", flux_module.JOBS_FORMAT]
    assert [states[i].state for i in ids] == [
        JobState.RUNNING,
        JobState.PENDING,
        JobState.PENDING,
        JobState.COMPLETED,
        JobState.FAILED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMEOUT,
        JobState.CANCELLED,
        JobState.FAILED,
    ]
    assert states[ids[4]].exit_code == "3"
    assert states[ids[5]].exit_code == "137:9"  # a task killed by SIGKILL
    assert states[ids[6]].exit_code == ""  # cancelled before it ran
    assert "resource allocation expired" in states[ids[7]].reason
    assert "start failed" in states[ids[9]].reason


def test_flux_a_job_on_a_lost_node_reads_node_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    # flux-core's job-exec raises a `node-failure` exception for a node lost under a job
    line = "1873984000000|INACTIVE|FAILED|143|36608|node-failure|lost contact with job shell"
    monkeypatch.setattr(flux_module, "run_scheduler", _fake(line, []))
    status = FluxExecutor().states(["1873984000000"])["1873984000000"]
    assert status.state is JobState.NODE_FAIL and "lost contact" in status.reason


def test_flux_ids_from_f58() -> None:
    assert decode_id("ƒ1") == "0" and decode_id("ƒz") == "57" and decode_id("ƒ21") == "58"
    assert decode_id("f21") == "58"  # the ASCII spelling
    assert decode_id("1873816223744") == "1873816223744"
    with pytest.raises(SchedulerError):
        decode_id("ƒ0OIl")


# --------------------------------------------------------------------------- the simulators


@dataclass
class Scheduler:
    """A simulated scheduler: how reflow is pointed at it."""

    name: str
    mode: str
    programs: dict[str, Path]  # reflow command name -> program
    state: Path
    calls: Path = field(init=False)

    def __post_init__(self) -> None:
        self.calls = self.state.parent / f"calls-{self.name}.log"

    def executor(self) -> Executor:
        kwargs = {k: str(v) for k, v in self.programs.items()}
        if self.mode == "qsub-pbs":
            return PBSExecutor(**kwargs)
        if self.mode == "bsub":
            return LSFExecutor(**kwargs)
        return FluxExecutor(**kwargs)

    def env(self) -> dict[str, str]:
        """REFLOW_MODE and the REFLOW_<COMMAND> paths: all a user changes."""
        env = {"REFLOW_MODE": self.mode}
        env.update({f"REFLOW_{k.upper()}": str(v) for k, v in self.programs.items()})
        return env

    def use(self, monkeypatch: pytest.MonkeyPatch, *workflows: Any) -> None:
        """Point this process (and the jobs it submits) at this scheduler.

        Command paths come from the configuration of the process that runs a
        command, never from the store: jobs get them from the environment
        they inherit, and this test process must set them (and have
        `workflows` read their configuration again) before it asks about,
        cancels or retries a run.
        """
        for key, value in self.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("RFTEST_CALLS", str(self.calls))  # the tasks count their runs
        for wf in workflows:
            monkeypatch.setattr(wf, "_config", None)

    def taken(self) -> dict[str, int]:
        """Task executions recorded since the last call."""
        if not self.calls.exists():
            return {}
        names = self.calls.read_text().split()
        self.calls.unlink()
        return {n: names.count(n) for n in dict.fromkeys(names)}


@pytest.fixture
def sims(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Scheduler]]:
    """The four simulated schedulers, with their state under tmp_path."""
    root = tmp_path / "sched"
    root.mkdir()
    monkeypatch.setenv(_simcore.STATE_ENV, str(root))
    monkeypatch.chdir(tmp_path)  # PBS leaves a job's output without -o where qsub ran
    # the simulators' `#!/usr/bin/env python3` finds this Python first
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    found: dict[str, Scheduler] = {}
    for flavor in ("pro", "torque"):
        bin_dir = tmp_path / f"bin-{flavor}"
        bin_dir.mkdir()
        programs = {}
        for command in ("qsub", "qstat", "qdel"):
            wrapper = bin_dir / command
            real = SIMULATORS / "pbs" / command
            wrapper.write_text(f'#!/bin/sh\nPBS_SIM_FLAVOR={flavor} exec "{real}" "$@"\n')
            wrapper.chmod(0o755)
            programs[command] = wrapper
        name = "pbs-pro" if flavor == "pro" else "torque"
        found[name] = Scheduler(name, "qsub-pbs", programs, root / f"pbs-{flavor}")
    lsf = {c: SIMULATORS / "lsf" / c for c in ("bsub", "bjobs", "bkill")}
    found["lsf"] = Scheduler("lsf", "bsub", lsf, root / "lsf")
    found["flux"] = Scheduler("flux", "flux", {"flux": SIMULATORS / "flux" / "flux"}, root / "flux")
    yield found
    _simcore.kill_everything(root)


def _status(run: Run) -> str:
    try:
        return render_status(run.status(as_dict=True) or {}, errors=True)
    except Exception as exc:  # the status itself must not hide the failure
        return f"(status of {run.run_id} failed: {exc!r})"


def _wait_all(runs: Mapping[str, Run], timeout: float = 60) -> dict[str, RunState]:
    """Wait until every run has left RUNNING; fail with their status after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        states = {name: run.state for name, run in runs.items()}
        if all(s is not RunState.RUNNING for s in states.values()):
            return states
        if time.monotonic() > deadline:
            stuck = [n for n, s in states.items() if s is RunState.RUNNING]
            pytest.fail("still RUNNING: " + "\n".join(f"{n}:\n{_status(runs[n])}" for n in stuck))
        time.sleep(0.2)


def _submit(
    sched: Scheduler, wf: Any, base: Path, monkeypatch: pytest.MonkeyPatch, **params: Any
) -> Run:
    sched.use(monkeypatch, wf)  # the jobs inherit the environment
    return wf.submit(
        base / f"run-{sched.name}-{wf.name}",
        executor=sched.executor(),
        store=base / f"{sched.name}.db",
        **params,
    )


_NATIVE = {
    "pbs-pro": re.compile(r"^\d+(\[\d+\])?\.pbs-sim$"),
    "torque": re.compile(r"^\d+(\[\d+\])?\.torque-sim\.cluster$"),
    "lsf": re.compile(r"^\d+(\[\d+\])?$"),
    "flux": re.compile(r"^\d{9,}$"),
}


def test_same_pipeline_file_on_every_scheduler(sims: dict[str, Scheduler], tmp_path: Path) -> None:
    """`python pipeline.py submit` with only REFLOW_MODE and the command paths changed."""
    procs = {}
    for name, sched in sims.items():
        env = dict(os.environ, **sched.env(), RFTEST_CALLS=str(sched.calls))
        procs[name] = subprocess.Popen(
            [sys.executable, str(PIPELINES / "pl_fanout.py"), "submit", "--n", "3", "--run-dir",
             str(tmp_path / f"run-{name}"), "--store-path", str(tmp_path / f"{name}.db")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
    runs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        executor = sims[name].executor().name
        assert f"to {executor}: 1 job (" in out, out  # make: one job, then its dispatcher
        store = SqliteStore(tmp_path / f"{name}.db")
        runs[name] = Run(store.list_runs()[0]["run_id"], store)
    assert _wait_all(runs) == dict.fromkeys(sims, RunState.SUCCESS), {
        n: _status(r) for n, r in runs.items()
    }
    for name, run in runs.items():
        assert run.output("make") == [0, 1, 2], name
        assert run.outputs("square") == [0, 1, 4], name  # instance i got item i, LSF too
        assert run.outputs("plus") == [1, 2, 5], name
        assert run.output("total") == 8, name
        assert sims[name].taken() == {"make": 1, "square": 3, "plus": 3, "total": 1}, name
        rows = run.store.instances(run.run_id)
        assert all(_NATIVE[name].match(r["job_id"] or "") for r in rows), (name, rows)
        for r in rows:  # the scheduler's log of each instance: where the dispatcher reads it
            log = run.run_dir / "logs" / r["task_name"] / "scheduler" / f"{r['job_id']}.log"
            assert log.exists(), (name, log)
        square = {r["array_index"]: r["job_id"] for r in rows if r["task_name"] == "square"}
        if name == "lsf":
            assert [square[i].split("[")[1] for i in range(3)] == ["1]", "2]", "3]"]
        elif name != "flux":
            assert [square[i].split("[")[1][0] for i in range(3)] == ["0", "1", "2"]
        assert run.info()["dispatcher"] is None
    # the run's record names the executor and what a later pass needs to rebuild it
    options = runs["torque"].info()["options"]
    assert options["executor"]["mode"] == "qsub-pbs"
    assert options["executor"]["settings"] == {"flavor": "torque"}


def test_failure_shows_its_reason_and_retry_fixes_it(
    sims: dict[str, Scheduler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = {name: tmp_path / f"flag-{name}" for name in sims}
    failing = {
        name: _submit(sched, pl_fail.wf, tmp_path, monkeypatch, n=2, flag=str(flags[name]))
        for name, sched in sims.items()
    }
    killed = {
        name: _submit(sched, pl_crash.kill_wf, tmp_path, monkeypatch, n=1)
        for name, sched in sims.items()
    }
    states = _wait_all({**{f"fail-{n}": r for n, r in failing.items()},
                        **{f"kill-{n}": r for n, r in killed.items()}})  # fmt: skip
    assert set(states.values()) == {RunState.FAILED}, states
    for name, run in failing.items():
        sims[name].use(monkeypatch)
        doc = run.status(as_dict=True)
        assert doc is not None
        assert doc["summary"] == {
            "up": {"SUCCESS": 1},
            "work": {"SUCCESS": 1, "FAILED": 1},
            "done": {"SKIPPED": 1},
        }, name
        (failed,) = [i for i in doc["failed_instances"] if i["state"] == "FAILED"]
        assert (failed["task_name"], failed["array_index"]) == ("work", 1)
        assert "Traceback (most recent call last)" in failed["error_text"]
        assert "RuntimeError: element 1 needs the flag file" in failed["error_text"], name
        assert sims[name].taken() == {"up": 1, "work": 2}, name
        # the job's stderr, as `logs` shows it (reflow's header line left out)
        assert run.log("work", 1, err=True).startswith("Traceback (most recent call last)"), name
    for name, run in killed.items():
        sims[name].use(monkeypatch)
        doc = run.status(as_dict=True)
        assert doc is not None
        assert doc["summary"] == {"killed": {"FAILED": 1}, "after_kill": {"SKIPPED": 1}}, name
        (failed,) = [i for i in doc["failed_instances"] if i["state"] == "FAILED"]
        text = failed["error_text"]
        executor = sims[name].executor().name
        # the scheduler's reason, from its own status output
        assert f"({executor}: job {failed['job_id']} " in text, text
        assert "killed by SIGKILL" in text, (name, text)
        assert "the job failed before the task could report" in text, text

    for name, run in failing.items():
        flags[name].touch()  # fix the cause
        sims[name].use(monkeypatch, pl_fail.wf)
        assert run.retry() >= 1
    assert _wait_all(failing) == dict.fromkeys(sims, RunState.SUCCESS)
    for name, run in failing.items():
        assert run.outputs("work") == [0, 10], name
        assert run.output("done") == 10, name
        assert sims[name].taken() == {"work": 1, "done": 1}, name
        # the retry wrote files of its own: attempt 1's stderr is still there
        assert run.log("work", 1, err=True) == "", name
        assert "RuntimeError" in run.log("work", 1, err=True, attempt=1), name
    store = failing["lsf"].store.location
    shown = subprocess.run(
        [sys.executable, "-m", "reflow", "logs", failing["lsf"].run_id, "work", "1", "--err",
         "--attempt", "1", "--store-path", store],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert shown.returncode == 0 and "RuntimeError: element 1 needs" in shown.stdout, shown


def test_cancel_stops_the_run_and_leaves_no_job_running(
    sims: dict[str, Scheduler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = tmp_path / "never"
    runs = {
        name: _submit(sched, pl_hold.hold_wf, tmp_path, monkeypatch, gate=str(gate))
        for name, sched in sims.items()
    }

    def holding(name: str, run: Run) -> bool:
        sims[name].use(monkeypatch)
        doc = run.status(as_dict=True) or {}
        return any(
            i["task_name"] == "hold" and i["state"] == "RUNNING" for i in doc.get("instances", [])
        )

    deadline = time.monotonic() + 30
    while not all(holding(n, r) for n, r in runs.items()):  # the scheduler says it runs
        assert time.monotonic() < deadline, {n: _status(r) for n, r in runs.items()}
        time.sleep(0.2)
    for name, run in runs.items():
        hold_job = next(i["job_id"] for i in run.store.instances(run.run_id)
                        if i["task_name"] == "hold")  # fmt: skip
        sims[name].use(monkeypatch)
        assert run.cancel() == 2, name
        assert run.state is RunState.CANCELLED
        deadline = time.monotonic() + 5  # nothing left running (runners exit as they end)
        while _simcore.live_processes(sims[name].state):
            assert time.monotonic() < deadline, (name, _simcore.live_processes(sims[name].state))
            time.sleep(0.1)
        states = sims[name].executor().states([hold_job])
        assert states[hold_job].state.final, (name, states)
        doc = run.status(as_dict=True) or {}
        assert doc["summary"] == {"hold": {"CANCELLED": 1}, "after_hold": {"CANCELLED": 1}}
        assert run.info()["dispatcher"] is None


def test_array_parallelism_is_honoured(
    sims: dict[str, Scheduler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamps = {name: tmp_path / f"stamps-{name}" for name in sims}
    runs = {
        name: _submit(sched, pl_hold.par_wf, tmp_path, monkeypatch, n=3, stamps=str(stamps[name]))
        for name, sched in sims.items()
    }
    assert _wait_all(runs) == dict.fromkeys(sims, RunState.SUCCESS)
    for name, run in runs.items():
        assert run.outputs("stamp") == [0, 1, 2]
        spans = [
            tuple(float(x) for x in p.read_text().split()[:2]) for p in stamps[name].glob("*.txt")
        ]
        assert len(spans) == 3
        most = max(sum(1 for a, b in spans if a <= t < b) for t, _ in spans)
        assert most == 2, (name, sorted(spans))  # array_parallelism=2: never more, but 2 at once


def test_time_limit_ends_as_timeout(sims: dict[str, Scheduler], tmp_path: Path) -> None:
    names = ["pbs-pro", "torque", "flux"]  # LSF's run limits are whole minutes: fixtures only
    jobs = {}
    for name in names:
        ex = sims[name].executor()
        logs = tmp_path / f"logs-{name}"
        logs.mkdir()
        log = ex.log_pattern(str(logs), False)
        res = JobResources(
            name="t.slow", time="00:00:01", stdout=log, stderr=log, workdir=str(tmp_path)
        )
        jobs[name] = (ex, ex.submit(["sleep", "30"], res), logs)
    deadline = time.monotonic() + 30
    for name, (ex, job, logs) in jobs.items():
        while not (status := ex.states([job])[job]).state.final:
            assert time.monotonic() < deadline, (name, status)
            time.sleep(0.2)
        assert status.state is JobState.TIMEOUT, (name, status)
        said = "".join(p.read_text() for p in logs.iterdir())
        if name == "flux":  # the job's exception, as the job shell logs it
            assert "job.exception type=timeout" in said, said
        else:  # the server's own message, in PBS's file beside reflow's log
            assert "=>> PBS: job killed: walltime" in said, said


def test_the_warning_before_the_time_limit_reaches_the_job(
    sims: dict[str, Scheduler], tmp_path: Path
) -> None:
    # Flux's --signal=SIGUSR1@3s (the grace, at most half the limit); LSF's -wa/-wt are
    # whole minutes (the golden scripts show them); PBS has no such warning
    ex = sims["flux"].executor()
    marker = tmp_path / "warned"
    handler = (
        "import signal, sys, time\n"
        "def warned(signum, frame):\n"
        f"    open({str(marker)!r}, 'w').write(signal.Signals(signum).name)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGUSR1, warned)\n"
        "time.sleep(30)\n"
    )
    res = JobResources(name="t.warned", time="00:00:06", grace=60, workdir=str(tmp_path))
    job = ex.submit([sys.executable, "-c", handler], res)
    deadline = time.monotonic() + 30
    while not (status := ex.states([job])[job]).state.final:
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    assert marker.read_text() == "SIGUSR1"
    assert status.state is JobState.COMPLETED  # it ended itself, before the limit


def test_a_dependency_on_a_forgotten_job_is_dropped(sims: dict[str, Scheduler]) -> None:
    """The simulators refuse a dependency on a job they do not know, like the real ones;
    such a job ended long ago, so the executor submits again without it."""
    gone = {"pbs-pro": "99.pbs-sim", "torque": "99.torque-sim.cluster", "lsf": "99", "flux": "99"}
    jobs = {}
    for name, sched in sims.items():
        ex = sched.executor()
        jobs[name] = (
            ex,
            ex.submit(["true"], JobResources(name="t.after", dependencies=(gone[name],))),
        )
    deadline = time.monotonic() + 20
    for name, (ex, job) in jobs.items():
        while not (status := ex.states([job])[job]).state.final:
            assert time.monotonic() < deadline, (name, status)
            time.sleep(0.1)
        assert status.state is JobState.COMPLETED, (name, status)
        calls = ex.calls  # type: ignore[attr-defined]
        assert calls.get("qsub", calls.get("bsub", calls.get("submit"))) == 2, name  # refused once


@dataclass(frozen=True)
class Refused:
    scheduler: str
    argv: list[str]
    stdin: str
    says: str


REFUSED = [
    Refused("pbs-pro", ["qsub", "-t", "0-3"], "#!/bin/sh\ntrue\n", "invalid option -- 't'"),
    Refused("pbs-pro", ["qsub"], "#!/bin/sh\n#PBS -J 0-0\ntrue\n", "illegal -J value"),
    Refused("pbs-pro", ["qsub"], "#PBS -l nodes=1:ppn=2\ntrue\n", "Unknown resource"),
    Refused(
        "pbs-pro", ["qsub"], "#PBS -l select=1:ncpus=2\n#PBS -l mem=1gb\ntrue\n", "cannot be used"
    ),
    Refused("pbs-pro", ["qsub", "-W", "depend=afterany:5.pbs-sim"], "true\n", "Unknown Job Id"),
    Refused("torque", ["qsub", "-J", "0-3"], "true\n", "invalid option -- 'J'"),
    Refused("torque", ["qsub"], "#PBS -l select=1:ncpus=2\ntrue\n", "Unknown resource type"),
    Refused("torque", ["qstat", "-F", "json"], "", "invalid option"),
    Refused("lsf", ["bsub"], '#BSUB -J "a[0-3]"\ntrue\n', "Bad job name"),
    Refused("lsf", ["bsub", "-Q", "x"], "true\n", "illegal option"),
    Refused("lsf", ["bsub", "-w", "done(1) || ended(2)"], "true\n", "Syntax error"),
    Refused("lsf", ["bsub", "-W", "1:2:3"], "true\n", "Bad RUNLIMIT"),
    Refused("flux", ["flux", "submit", "--mem=4G", "true"], "", "unrecognized arguments"),
    Refused(
        "flux", ["flux", "submit", "--cc=0-1", "echo", '{"a": 1}'], "", "Invalid replacement string"
    ),
    Refused("flux", ["flux", "submit", "-t", "ten", "true"], "", "Flux standard duration"),
    Refused("flux", ["flux", "bogus"], "", "is not a flux command"),
]


@pytest.mark.parametrize("case", REFUSED, ids=lambda c: f"{c.scheduler}:{' '.join(c.argv)[:30]}")
def test_simulators_refuse_what_the_real_commands_refuse(
    sims: dict[str, Scheduler], case: Refused
) -> None:
    sched = sims[case.scheduler]
    program = sched.programs.get(case.argv[0], SIMULATORS / "flux" / "flux")
    proc = subprocess.run(
        [str(program), *case.argv[1:]], input=case.stdin, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and case.says in proc.stderr, (proc.stdout, proc.stderr)
    assert not list(sched.state.glob("*.job"))  # nothing was submitted


def test_packed_fan_out_and_fused_chain_on_every_scheduler(
    sims: dict[str, Scheduler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pl_pack

    packed = {n: _submit(s, pl_pack.wf, tmp_path, monkeypatch, n=12) for n, s in sims.items()}
    fused = {n: _submit(s, pl_pack.chain_wf, tmp_path, monkeypatch, x=3) for n, s in sims.items()}
    states = _wait_all({**{f"pack-{n}": r for n, r in packed.items()},
                        **{f"fuse-{n}": r for n, r in fused.items()}}, timeout=90)  # fmt: skip
    assert set(states.values()) == {RunState.SUCCESS}, states
    for name, run in packed.items():
        assert run.output("gather") == sum(i * i for i in range(12)), name
        crunch = run.store.instances(run.run_id, task="crunch")
        elements: dict[str, list[int]] = {}
        for inst in crunch:
            elements.setdefault(inst["job_id"], []).append(inst["array_index"])
        # pack=5: three elements, each running its instances in order, each its own result
        assert sorted(sorted(v) for v in elements.values()) == [
            [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11],
        ], (name, elements)  # fmt: skip
    for name, run in fused.items():
        assert run.output("last") == 40, name
        jobs = {i["task_name"]: i["job_id"] for i in run.store.instances(run.run_id)}
        assert len(set(jobs.values())) == 1, (name, jobs)


@pytest.mark.postgres
def test_a_cluster_run_on_a_postgresql_store(
    sims: dict[str, Scheduler], tmp_path: Path, postgres_url: str
) -> None:
    """`submit` to a PostgreSQL store: the jobs and the chained dispatchers reopen it by its
    location, which has no password (they get it from the environment they inherit)."""
    from reflow.stores import open_store

    sched = sims["pbs-pro"]
    env = dict(os.environ, **sched.env(), RFTEST_CALLS=str(sched.calls))
    run_dir = tmp_path / "run-pg"
    proc = subprocess.run(
        [sys.executable, str(PIPELINES / "pl_fanout.py"), "submit", "--n", "3", "--run-dir",
         str(run_dir), "--store-path", postgres_url],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    store = open_store(postgres_url)
    run = Run(store.list_runs()[0]["run_id"], store)
    assert _wait_all({"pg": run}) == {"pg": RunState.SUCCESS}, _status(run)
    assert run.output("total") == 8 and run.outputs("plus") == [1, 2, 5]
    assert sched.taken() == {"make": 1, "square": 3, "plus": 3, "total": 1}
    password = re.search(r"://[^:/@]*:([^@/]*)@", postgres_url)
    assert password is not None
    for path in run_dir.rglob("*"):  # job scripts, wave files, logs: no password anywhere
        if path.is_file():
            assert f":{password[1]}@" not in path.read_text(errors="replace"), path


_KILLER = """\
import os, signal, subprocess, sys
here, real, tool = {here!r}, {real!r}, {tool!r}
if tool == "flux" and sys.argv[1:2] != ["submit"]:
    os.execv(real, [real, *sys.argv[1:]])
script = sys.stdin.read() if tool == "bsub" else None
with open(os.path.join(here, "submitted"), "a") as fh:  # one line a submission: its job name
    fh.write(" ".join(w for w in [*sys.argv, *(script or "").split()] if ".rf" in w) + "\\n")
proc = subprocess.run([real, *sys.argv[1:]], input=script, capture_output=True, text=True)
first = not os.path.exists(os.path.join(here, "killed"))
if first:  # the scheduler has the job; its submitter dies before it hears the answer
    open(os.path.join(here, "killed"), "w").write(proc.stdout)
    os.kill(os.getppid(), signal.SIGKILL)
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
sys.exit(proc.returncode)
"""


@pytest.mark.parametrize("which", ["lsf", "flux"])
def test_a_job_whose_submitter_was_killed_is_adopted_not_submitted_again(
    sims: dict[str, Scheduler], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """`submit` killed right after bsub / flux submit, its job still running: `retry`
    finds the job by its name and adopts it (tests/cluster/test_cluster_reattach.py
    kills at many more points on the real Slurm)."""
    sched = sims[which]
    tool = "bsub" if which == "lsf" else "flux"
    wrapper = tmp_path / f"killing-{tool}"
    real = str(sched.programs[tool])
    wrapper.write_text(
        f"#!{sys.executable}\n" + _KILLER.format(here=str(tmp_path), real=real, tool=tool)
    )
    wrapper.chmod(0o755)
    sched = Scheduler(sched.name, sched.mode, {**sched.programs, tool: wrapper}, sched.state)
    store_path, gate = tmp_path / f"{which}.db", tmp_path / "gate"
    env = dict(os.environ, **sched.env())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(PIPELINES / "pl_hold.py"), *args, "--store-path", str(store_path)],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    submitted = cli("submit", "--gate", str(gate), "--run-dir", str(tmp_path / "run"))
    assert submitted.returncode == -9, submitted.stderr  # killed after submitting `hold`
    store = SqliteStore(store_path)
    run = Run(store.list_runs()[0]["run_id"], store)
    retried = cli("retry", run.run_id)  # `hold` is still running, waiting for its gate
    assert retried.returncode == 0, retried.stderr
    gate.touch()
    sched.use(monkeypatch)
    assert _wait_all({which: run}) == {which: RunState.SUCCESS}, _status(run)
    assert run.output("after_hold") == "OPENED"
    names = (tmp_path / "submitted").read_text().split()
    # `hold` was submitted once: the job the killed `submit` left was adopted
    assert len([n for n in names if ".hold." in n]) == 1, names
    (hold,) = [r for r in store.instances(run.run_id) if r["task_name"] == "hold"]
    said = (tmp_path / "killed").read_text()  # what the killed submit never heard
    first = decode_id(said) if which == "flux" else re.findall(r"Job <(\d+)>", said)[0]
    assert hold["job_id"] == first, (hold, said)
