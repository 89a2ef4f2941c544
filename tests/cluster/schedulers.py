"""The one per-scheduler layer of the real-cluster tests: what differs between Slurm and SGE.

Each `Scheduler` knows how to reach its test cluster (and why it cannot), the
executor and submit command, how its queue and job ids look, and the few
words of its own that a reason carries. The end-to-end cases in this folder
are written once against it; `every_scheduler` runs a case on each, with the
scheduler's marker (`slurm`, `sge`). A new scheduler is one more subclass in
`SCHEDULERS`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from cluster_support import SubmitSpy, gate
from reflow.executors import SlurmExecutor
from reflow.executors.base import Executor
from reflow.executors.sge import SGEExecutor, parse_qstat_xml

__all__ = [
    "PIPELINES",
    "SCHEDULERS",
    "SGE",
    "Scheduler",
    "Slurm",
    "every_scheduler",
    "only",
    "scheduler_param",
]

PIPELINES = Path(__file__).resolve().parent / "pipelines"

_F = TypeVar("_F", bound=Callable[..., Any])


def _run(*argv: str, timeout: float = 30) -> str:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True).stdout


class Scheduler(ABC):
    """One scheduler's test cluster, as the shared cluster tests see it."""

    name: str  # the executor, the marker, and what reasons say ("slurm: job 12 FAILED")
    title: str  # how people write it ("Slurm")
    hint: str  # how to get the test cluster
    tools: tuple[str, ...]  # commands the tests need on PATH
    executor_class: type[Executor]
    submit_tool: str  # the submit command (its executor keyword too: SlurmExecutor(sbatch=))
    cancel_tool: str
    index_base: int  # the scheduler's number of array element 0
    separator: str  # between an array's job id and the element's number
    held: object  # queue_state() of a job held behind another (the chained dispatcher)
    # what its reasons say, beyond what every scheduler's do
    timeout_words: tuple[str, ...] = ()  # in the last line of a time-limit failure
    memory_log_words: tuple[str, ...] = ()  # in the error text of a memory kill
    memory_words: tuple[str, ...] = ()  # in its last line
    memory_megabytes: int  # pl_crash.memory_wf's parameter that outgrows its 300M
    # a packed element over its memory limit is killed (not handed a MemoryError)
    kills_packed_elements_over_memory: bool = False
    # shared cases reflow does not yet pass on this scheduler: test name -> why (strict xfail)
    known_gaps: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        # read now: the autouse fixture of tests/conftest.py removes REFLOW_* from each test
        self.required_variable = f"REFLOW_TEST_{self.name.upper()}"
        self.required = os.environ.get(self.required_variable, "").strip().lower() == "required"

    def __repr__(self) -> str:
        return self.name

    # ------------------------------------------------------------------ reaching it

    @functools.cached_property
    def problem(self) -> str | None:
        """Why the test cluster cannot be used, or None when it can (asked once)."""
        for tool in self.tools:
            if shutil.which(tool) is None:
                return f"'{tool}' is not on PATH"
        return self._ask_cluster()

    @abstractmethod
    def _ask_cluster(self) -> str | None:
        """Why the cluster cannot be used (its tools are there), or None."""

    def check(self) -> None:
        """Skip the test (or, when required, fail it) unless the cluster is usable."""
        gate(
            self.problem,
            required=self.required,
            variable=self.required_variable,
            name=self.title,
            hint=self.hint,
        )

    # ------------------------------------------------------------------ submitting

    def executor(self, *, submit: Path | None = None, **options: Any) -> Executor:
        """The executor, its submit command replaced by `submit` (a SubmitSpy's path)."""
        if submit is not None:
            options[self.submit_tool] = str(submit)
        return self.executor_class(**options)

    def spy(self, directory: Path) -> SubmitSpy:
        """A submit command that records the ids of the jobs it submits."""
        return SubmitSpy(directory, self.submit_tool, self.submitted_id)

    @abstractmethod
    def submitted_id(self, line: str) -> str:
        """The job id in a line the submit command printed."""

    # ------------------------------------------------------------------ ids and the queue

    def element_job_id(self, job: str, index: int) -> str:
        """The id of element `index` (reflow's, from 0) of array job `job`."""
        return f"{job}{self.separator}{index + self.index_base}"

    def element_pattern(self, index: int) -> str:
        """A regex of the id of element `index` of some array job."""
        return rf"\d+{re.escape(self.separator)}{index + self.index_base}"

    def job_of(self, job_id: str) -> str:
        """The job an id belongs to (an array element's array job)."""
        return job_id.split(self.separator, 1)[0]

    @abstractmethod
    def queue_ids(self) -> set[str]:
        """The ids the queue lists, as it lists them (squeue: array elements as `A_T`, pending
        ones as `A_[...]`, so there only a job that is not an array matches its base id)."""

    def queued_jobs(self) -> set[str]:
        """The jobs in the queue (array elements as their array job)."""
        return {self.job_of(i) for i in self.queue_ids()}

    @abstractmethod
    def queue_state(self, job: str) -> object:
        """What the queue says of one job."""

    def cancel_job(self, job: str) -> None:
        subprocess.run([self.cancel_tool, job], check=True, timeout=30)


class Slurm(Scheduler):
    name = "slurm"
    title = "Slurm"
    tools = ("sbatch", "sinfo", "squeue", "sacct", "scancel")
    executor_class = SlurmExecutor
    submit_tool = "sbatch"
    cancel_tool = "scancel"
    index_base = 0
    separator = "_"
    held = "PENDING Dependency"
    memory_log_words = ("exceeded memory limit",)  # slurmstepd's own words, from the job log
    memory_megabytes = 1024
    kills_packed_elements_over_memory = True  # JobAcctGatherParams=OverMemoryKill samples it
    hint = "no Slurm test cluster: run scripts/slurm-test-cluster/start-slurm.sh as root"
    _USABLE = ("idle", "mixed", "allocated", "completing")

    def _ask_cluster(self) -> str | None:
        try:
            proc = subprocess.run(
                ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
            )
        except subprocess.TimeoutExpired:
            return "sinfo did not answer in 20 s"
        if proc.returncode != 0:
            return f"sinfo failed: {(proc.stderr or proc.stdout).strip()}"
        states = [s.strip().rstrip("*~#!%$@^-") for s in proc.stdout.split()]
        if not any(s in self._USABLE for s in states):
            return f"no node is idle, mixed or allocated (sinfo: {', '.join(states) or 'nothing'})"
        return None

    def submitted_id(self, line: str) -> str:
        return line.split(";")[0]  # sbatch --parsable: id;cluster

    def queue_ids(self) -> set[str]:
        return set(_run("squeue", "-h", "-o", "%i").split())

    def queue_state(self, job: str) -> object:
        return _run("squeue", "-h", "-j", job, "-o", "%T %r").strip()


class SGE(Scheduler):
    name = "sge"
    title = "SGE"
    tools = ("qsub", "qstat", "qdel", "qacct", "qconf")
    executor_class = SGEExecutor
    submit_tool = "qsub"
    cancel_tool = "qdel"
    index_base = 1  # SGE counts array tasks from 1
    separator = "."
    held: ClassVar[object] = {None: "hqw"}  # not an array, held by -hold_jid
    timeout_words = ("qmaster enforced h_rt", "killed by SIGKILL")
    memory_words = ("OUT_OF_MEMORY",)
    memory_megabytes = 300  # two children of 150M: each under h_vmem=300M, not their sum
    known_gaps: ClassVar[dict[str, str]] = {
        "test_a_dispatcher_that_dies_is_noticed_and_retry_resumes": (
            "a dispatcher job qdel'd while it waits on -hold_jid never ran, so qacct has no "
            "record of it and SGEExecutor.states() reports nothing: status cannot tell it ended"
        ),
    }
    hint = "no SGE test cluster: run scripts/sge-test-cluster/start-sge.sh as root"

    def _ask_cluster(self) -> str | None:
        try:
            proc = subprocess.run(
                ["qstat", "-f"], capture_output=True, text=True, timeout=20, check=False
            )
        except subprocess.TimeoutExpired:
            return "qstat did not answer in 20 s"
        if proc.returncode != 0:
            return f"qstat failed: {(proc.stderr or proc.stdout).strip()}"
        # queue instance lines: "all.q@vm  BIP  0/0/8  0.22  lx-amd64  [states]"
        usable = [
            line.split()
            for line in proc.stdout.splitlines()
            if "@" in line.split(" ", 1)[0] and len(line.split()) >= 5
        ]
        if not any(len(f) == 5 and f[3] != "-NA-" for f in usable):
            return "no queue instance is up (qstat -f shows none without an alarm or error state)"
        pe = subprocess.run(["qconf", "-sp", "smp"], capture_output=True, timeout=20, check=False)
        if pe.returncode != 0:
            return "the parallel environment 'smp' is missing (start-sge.sh defines it)"
        return None

    def submitted_id(self, line: str) -> str:
        return line.split(".")[0]  # qsub -terse: 12, or 12.1-3:1 for an array

    def jobs(self) -> dict[str, dict[int | None, str]]:
        """Every job in qstat (all users): job number -> {task (None: not an array) -> state}."""
        return parse_qstat_xml(_run("qstat", "-u", "*", "-xml"))

    def queue_ids(self) -> set[str]:
        return set(self.jobs())

    def queue_state(self, job: str) -> object:
        return self.jobs().get(job)


SCHEDULERS: dict[str, Scheduler] = {s.name: s for s in (Slurm(), SGE())}


def scheduler_param(name: str, *values: object, test: str = "") -> Any:
    """One case's parameters on scheduler `name`, marked with its marker (`slurm`, `sge`)
    and, for a known gap of that scheduler in `test`, as a strict xfail."""
    marks = [getattr(pytest.mark, name)]
    gap = SCHEDULERS[name].known_gaps.get(test)
    if gap:
        marks.append(pytest.mark.xfail(strict=True, reason=f"{SCHEDULERS[name].title}: {gap}"))
    case_id = "-".join([name, *map(str, values)])
    return pytest.param(name, *values, marks=marks, id=case_id)


def every_scheduler(test: _F) -> _F:
    """Run the test on each scheduler (its `scheduler` fixture), marked for it."""
    cases = [scheduler_param(name, test=test.__name__) for name in SCHEDULERS]
    return pytest.mark.parametrize("scheduler", cases, indirect=True)(test)


def only(name: str) -> Callable[[_F], _F]:
    """Run the test on one scheduler alone: what it checks is that scheduler's own."""
    return pytest.mark.parametrize("scheduler", [scheduler_param(name)], indirect=True)
