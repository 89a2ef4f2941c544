"""SlurmExecutor: job scripts for sbatch, one sacct call for the states of many jobs."""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from ..resources import UNITS, ResourceError, time_seconds
from ._common import (
    BatchExecutor,
    array_range,
    directives,
    exports,
    flags,
    memory,
    option_key,
    run_command,
    run_scheduler,
    seconds,
    warning_seconds,
)
from ._common import directive_value as _value
from .base import Capacity, JobResources, JobState, JobStatus, SchedulerError

__all__ = ["SACCT_FORMAT", "SlurmExecutor", "parse_sacct"]

_STATE_MAP = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL,
    "PREEMPTED": JobState.PREEMPTED,
    "SPECIAL_EXIT": JobState.FAILED,
    "REVOKED": JobState.CANCELLED,
}

# what sacct says when slurmdbd, Slurm's accounting, cannot be reached (Slurm 22.05):
# "sacct: error: Problem talking to the database: Connection refused", after
# "slurm_persist_conn_open_without_init: failed to open persistent connection to ..."
_ACCOUNTING_DOWN = ("problem talking to the database", "persistent connection")
_ACCOUNTING_DOWN_REASON = "Slurm's accounting (slurmdbd) does not answer: asked again later"

# why a job waited in the queue; they say nothing about how it ended
_WAIT_REASONS = frozenset({"Dependency", "JobArrayTaskLimit", "Priority", "Resources", "BeginTime"})


def _time(time: str) -> str:
    """--time as written: every form of the grammar is one of Slurm's own."""
    _value("time", time)  # no newline or double quote (the message of any directive)
    seconds(time)
    return time.strip()


def _option_flag(key: str) -> str:
    return "--" + option_key(key, dashes=True).replace("_", "-")


def _parse_state(text: str) -> JobState:
    word = text.split()[0] if text.split() else ""
    return _STATE_MAP.get(word.rstrip("+"), JobState.UNKNOWN)


def _expand_pending(job_field: str) -> list[str]:
    """`123_[0-3,7%2]` -> 123_0 .. 123_3, 123_7 (sacct/squeue show unstarted elements so)."""
    m = re.match(r"^(\d+)_\[([^\]]+)\]$", job_field)
    if not m:
        return [job_field]
    base, spec = m.group(1), m.group(2).split("%")[0]
    out: list[str] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(f"{base}_{i}" for i in range(int(lo), int(hi) + 1))
        elif part.isdigit():
            out.append(f"{base}_{part}")
    return out


#: sacct's columns: the first four are a job's answer, the rest say how it ended
SACCT_FORMAT = "JobID,State,ExitCode,Reason,MaxRSS,ReqMem,AllocCPUS,End"
#: how long after a job's end a step still reading live is taken as "not settled yet"
_SETTLE_SECONDS = 60.0
#: a job killed with a step's peak memory this close to its request ran out of memory
#: (without cgroups Slurm samples memory once a second and kills the step with SIGKILL)
_NEAR_LIMIT = 0.95
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGT]?)[nc?]?$")
#: the end states a job's steps may correct (killed for memory, a step that failed)
_CORRECTABLE = (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)


def parse_sacct(text: str, now: float) -> dict[str, JobStatus]:
    """`sacct -P --format=SACCT_FORMAT` lines -> each job's (or element's) settled state.

    Without `-X` sacct lists each job's steps (`<id>.batch`, `<id>.extern`,
    `<id>.0`) after it, and the steps tell what the job line alone does not:

    - Slurm writes a killed job's own line before its batch step has ended: an
      element killed for memory can read `COMPLETED 0:0` or `FAILED 0:0` while
      its `.batch` step still reads RUNNING, and `FAILED 0:9` a moment later.
      Such an answer is not final: it is given as RUNNING (asked again) until
      the steps have ended, or `_SETTLE_SECONDS` after the job's end.
    - a job killed (signal 9) whose step's MaxRSS reached its ReqMem ran out
      of memory, whatever the job line says (Slurm's memory sampler kills
      with SIGKILL and records FAILED); a step read OUT_OF_MEMORY says so too.
    - a job line COMPLETED over a batch step that did not complete is FAILED.

    A job line with an incomplete record (ReqMem `16?`) is not final either.
    """
    jobs: dict[str, list[str]] = {}
    steps: dict[str, list[list[str]]] = {}
    for line in text.splitlines():
        parts = line.split("|")
        if len(parts) < 3:
            continue
        job, dot, _ = parts[0].partition(".")
        if dot:
            steps.setdefault(job, []).append(parts)
        else:
            jobs[job] = parts
    found: dict[str, JobStatus] = {}
    for job, parts in jobs.items():
        status = _job_status(parts, steps.get(job, []), now)
        for jid in _expand_pending(job):
            found[jid] = status
    return found


def _field(parts: Sequence[str], k: int) -> str:
    return parts[k].strip() if len(parts) > k else ""


def _job_status(parts: Sequence[str], steps: Sequence[Sequence[str]], now: float) -> JobStatus:
    """One job's status from its own line and its steps' lines."""
    state_text, exit_code, reason = parts[1].strip(), parts[2].strip(), _field(parts, 3)
    state = _parse_state(state_text)
    said = state_text
    # sacct keeps a job's last pending reason after it ran ("COMPLETED|...|Dependency"):
    # shown for a finished job, such a reason would read as the cause of its end
    if reason not in ("None", "") and not (state.final and reason in _WAIT_REASONS):
        said = f"{state_text} ({reason})"
    if state not in _CORRECTABLE:
        return JobStatus(state, said, exit_code)
    batch = next((s for s in steps if s[0].endswith(".batch")), None)
    # a ReqMem of `16?`: the record is not complete yet (seen while an array's elements
    # were not yet split out, its last element then answering for the whole array)
    unsettled = _field(parts, 5).endswith("?") or any(not _parse_state(s[1]).final for s in steps)
    # a job with a memory request killed (signal 9) whose batch step is not recorded yet:
    # whether the memory sampler killed it is known only once the step (its MaxRSS) is
    # in.  A step recorded without a MaxRSS stays as it is: a job killed within its first
    # second was never sampled, and waiting would not change that
    killed = any(code.endswith(":9") for code in [exit_code, *(s[2] for s in steps)])
    unsettled = unsettled or (killed and bool(_field(parts, 5)) and batch is None)
    if unsettled and not _settled(parts, now):
        return JobStatus(JobState.RUNNING, f"{state_text}, accounting not settled yet", exit_code)
    used, asked = _peak_memory(steps), _size(_field(parts, 5), "M")
    cpus = _field(parts, 6)
    if asked is not None and _field(parts, 5).endswith("c") and cpus.isdigit():
        asked *= int(cpus)  # --mem-per-cpu
    if any(_parse_state(s[1]) is JobState.OUT_OF_MEMORY for s in steps) or (
        killed and used is not None and asked and used >= _NEAR_LIMIT * asked
    ):
        peak = "" if used is None else f", peak memory {used >> 20}M"
        limit = f" of {_field(parts, 5)}" if asked else ""
        return JobStatus(JobState.OUT_OF_MEMORY, f"{state_text}{peak}{limit}", exit_code)
    if state is JobState.COMPLETED and batch is not None:
        step_state = _parse_state(batch[1])
        if step_state is not JobState.COMPLETED:
            code = batch[2].strip() or exit_code
            return JobStatus(JobState.FAILED, f"{state_text}, batch step {batch[1].strip()}", code)
    return JobStatus(state, said, exit_code)


def _settled(parts: Sequence[str], now: float) -> bool:
    """Whether the job ended long enough ago that its steps' answers are what they will be."""
    end = _field(parts, 7)
    try:
        ended = time.mktime(time.strptime(end, "%Y-%m-%dT%H:%M:%S"))
    except ValueError:
        return False  # "Unknown": not ended as far as accounting knows
    return now - ended > _SETTLE_SECONDS


def _size(text: str, unit: str) -> int | None:
    """sacct's `371872K`, `120M`, `4Gn`, `2Gc` in bytes (`unit` when it has none)."""
    m = _SIZE.match(text)
    if not m:
        return None
    return int(float(m.group(1)) * UNITS.get(m.group(2) or unit, 1))


def _peak_memory(steps: Sequence[Sequence[str]]) -> int | None:
    """The highest MaxRSS of a job's steps, in bytes (None: none recorded)."""
    sizes = [_size(_field(s, 4), "K") for s in steps]
    known = [n for n in sizes if n]
    return max(known) if known else None


class SlurmExecutor(BatchExecutor):
    """Submits to Slurm with sbatch; arrays `--array=0-N%P`; states from one sacct call."""

    name = "slurm"
    mode = "sbatch"
    commands = ("sbatch", "sacct", "squeue", "scancel", "scontrol", "sinfo")
    index_base = 0
    name_limit, name_lead = 100, ""
    submit_tool, submit_what = "sbatch", "submit to Slurm"
    retry_gone = False  # a refused sbatch is not repeated
    cancel_alone = False  # scancel cancels the ids it knows and says which it did not
    busy_words = (
        "unable to contact slurm controller",
        "slurm temporarily unable",
        "resource temporarily unavailable",
        "try again",
    )
    slow_words = ("socket timed out",)

    def __init__(
        self,
        *,
        sbatch: str | None = None,
        sacct: str | None = None,
        squeue: str | None = None,
        scancel: str | None = None,
        scontrol: str | None = None,
        sinfo: str | None = None,
        max_array_size: int | None = None,
    ) -> None:
        self.sbatch = sbatch or "sbatch"
        self.sacct = sacct or "sacct"
        self.squeue = squeue or "squeue"
        self.scancel = scancel or "scancel"
        self.scontrol = scontrol or "scontrol"
        self.sinfo = sinfo or "sinfo"
        self._capacity: dict[tuple[str | None, int, int], Capacity] = {}
        self._max_array = max_array_size
        self.max_array_override = max_array_size  # given, not read from the cluster
        self._accounting: bool | None = None
        self.calls: dict[str, int] = {"sbatch": 0, "sacct": 0, "squeue": 0, "scancel": 0}

    def settings(self) -> dict[str, Any]:
        return (
            {} if self.max_array_override is None else {"max_array_size": self.max_array_override}
        )

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        """The sbatch script: #SBATCH directives, then the command, every word quoted."""
        r = resources
        warn = warning_seconds(r)
        lines = [
            "#!/bin/bash",
            *directives(
                "#SBATCH",
                [
                    f"--job-name={self.job_name(r.name, r.token)}",
                    r.cpus and f"--cpus-per-task={int(r.cpus)}",
                    r.time and f"--time={_time(r.time)}",
                    # to the batch shell, which `exec` below makes the worker itself
                    warn and f"--signal=B:USR1@{warn}",
                    r.mem and f"--mem={memory(r.mem)}",  # K, M, G or T, as --mem takes them
                    r.partition and f"--partition={_value('partition', r.partition)}",
                    r.account and f"--account={_value('account', r.account)}",
                    r.array_size is not None and f"--array={array_range(r)}",
                    r.stdout and f"--output={_value('output', r.stdout)}",
                    r.stderr and f"--error={_value('error', r.stderr)}",
                    r.workdir and f"--chdir={_value('chdir', r.workdir)}",
                    "--open-mode=append",
                    r.dependencies and "--dependency=afterany:" + ":".join(r.dependencies),
                    r.dependencies and "--kill-on-invalid-dep=no",
                    *flags(r.extra, _option_flag, "="),
                ],
            ),
        ]
        lines += ["", *exports(r.env), "exec " + shlex.join(command)]
        return "\n".join(lines) + "\n"

    def submit_argv(self) -> list[str]:
        return [self.sbatch, "--parsable"]

    def job_id(self, proc: subprocess.CompletedProcess[str]) -> str:
        job_id = proc.stdout.strip().split(";")[0]
        if not job_id.isdigit():
            raise self.answered(proc)
        return job_id

    def cancel(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        self.calls["scancel"] += 1
        # scancel fails when some ids already finished; then one by one, so the rest go
        self.cancel_all([self.scancel], job_ids, "cancel Slurm jobs")

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        if not job_ids:
            return {}
        if self._accounting is not False:
            try:
                return self._sacct(job_ids)
            except SchedulerError as exc:
                if any(w in str(exc).lower() for w in _ACCOUNTING_DOWN):
                    return self._live_only(job_ids)
                if "accounting storage is disabled" not in str(exc).lower() and (
                    "not found" not in str(exc)
                ):
                    raise
                self._accounting = False
        return self._squeue(job_ids)

    def _sacct(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.calls["sacct"] += 1
        argv = [self.sacct, "-n", "-P", "-j", ",".join(job_ids), f"--format={SACCT_FORMAT}"]
        out = self.ask(lambda: run_command(argv, what="ask Slurm for job states"))
        self._accounting = True
        return parse_sacct(out, time.time())

    def _live_only(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """While the accounting is down: squeue's live jobs; the others UNKNOWN, not ended.

        A job gone from the queue may have ended in any way: only the accounting
        can say, so the dispatcher waits for it instead of failing the job.
        """
        found = self._squeue(job_ids)
        for job in job_ids:
            found.setdefault(job, JobStatus(JobState.UNKNOWN, _ACCOUNTING_DOWN_REASON))
        return found

    def find_named(self, names: Sequence[str], since: float) -> dict[str, str | None] | None:
        """`squeue` for the jobs Slurm still holds, `sacct` for older ones."""
        found: dict[str, str | None] = {}
        self.calls["squeue"] += 1
        proc = self.patiently(
            lambda: run_scheduler(
                [self.squeue, "-h", "-t", "all", "--name=" + ",".join(names), "-o", "%F|%j"],
                what="ask Slurm's queue for jobs by name",
            )
        )
        if proc.returncode != 0:
            return {}  # cannot tell now
        for line in proc.stdout.splitlines():
            job, _, name = line.strip().partition("|")
            if name in names and job.isdigit():
                found[name] = job
        rest = [n for n in names if n not in found]
        if not rest:
            return found
        start = since - 600  # the clocks of the hosts may differ a little
        self.calls["sacct"] += 1
        try:
            argv = [
                # every user's: without it sacct shows a user other than root only
                # their own, and another user's job not shown would count as never submitted
                self.sacct, "-n", "-P", "-X", "--allusers", "--name=" + ",".join(rest),
                "-S", time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)),
                "-E", "now", "--format=JobID,JobName",
            ]  # fmt: skip
            out = self.ask(
                lambda: run_command(argv, what="ask Slurm's accounting for jobs by name")
            )
        except SchedulerError as exc:
            # a cluster without accounting (or sacct): the queue is all there is, as in
            # `states`; this may be the first question of a fresh process (the next pass)
            if "accounting storage is disabled" in str(exc).lower() or "not found" in str(exc):
                self._accounting = False
            # without the accounting, what left the queue cannot be told from what never was
            return found if self._accounting is not False else {**dict.fromkeys(rest), **found}
        for line in out.splitlines():
            job, _, name = line.strip().partition("|")
            if name in rest and job.split("_")[0].isdigit():
                found[name] = job.split("_")[0]
        return {**dict.fromkeys(rest), **found}

    def _squeue(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        self.calls["squeue"] += 1
        proc = self.patiently(
            lambda: run_scheduler(
                [self.squeue, "-h", "-r", "-j", ",".join(job_ids), "-o", "%i|%T|%r"],
                what="ask Slurm's queue for job states",
            )
        )
        found: dict[str, JobStatus] = {}
        for line in proc.stdout.splitlines():
            parts = line.split("|")
            if len(parts) >= 2:
                for jid in _expand_pending(parts[0]):
                    found[jid] = JobStatus(_parse_state(parts[1]), parts[1], "")
        return found

    def max_array_size(self) -> int | None:
        if self._max_array is None:
            try:
                out = run_command([self.scontrol, "show", "config"], what="read Slurm's config")
            except SchedulerError:
                return None
            m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
            # elements are numbered 0..MaxArraySize-1
            self._max_array = int(m.group(1)) if m else None
        return self._max_array

    def capacity(self, resources: JobResources) -> Capacity:
        """From one `sinfo` of the partition: nodes x what fits a node, and its time limit."""
        cpus = int(resources.cpus or 1)
        mem_mb = max(1, memory(resources.mem).nbytes >> 20) if resources.mem else 0
        key = (resources.partition, cpus, mem_mb)
        if key not in self._capacity:
            argv = [self.sinfo, "-h", "-o", "%D|%c|%m|%l"]
            if resources.partition:
                argv += ["-p", resources.partition]
            try:
                out = run_command(argv, what="ask Slurm about the partition", timeout=30)
            except SchedulerError:
                out = ""
            self._capacity[key] = _parse_sinfo(out, cpus, mem_mb)
        return self._capacity[key]


def _parse_sinfo(text: str, cpus: int, mem_mb: int) -> Capacity:
    """`sinfo -o %D|%c|%m|%l` lines -> how many jobs of `cpus` and `mem_mb` fit at once."""
    slots = 0
    longest: int | None = 0
    biggest = 0  # MB of the largest node
    for line in text.splitlines():
        parts = [p.strip().rstrip("+") for p in line.split("|")]
        if len(parts) < 4 or not parts[0].isdigit() or not parts[1].isdigit():
            continue
        if parts[2].isdigit():
            biggest = max(biggest, int(parts[2]))
        per_node = int(parts[1]) // cpus
        if mem_mb and parts[2].isdigit():
            per_node = min(per_node, int(parts[2]) // mem_mb)
        slots += int(parts[0]) * per_node
        limit = _limit_seconds(parts[3])
        longest = None if limit is None or longest is None else max(longest, limit)
    if not slots:
        return Capacity(max_mem=(biggest << 20) or None)
    return Capacity(slots=slots, max_seconds=longest or None, max_mem=(biggest << 20) or None)


def _limit_seconds(text: str) -> int | None:
    """sinfo's time limit (`infinite`, `1-00:00:00`, `2:00:00`, `30:00`) in seconds."""
    try:
        return time_seconds(text)  # sinfo writes limits in --time's own forms
    except ResourceError:
        return None  # infinite, or something we do not read: no limit
