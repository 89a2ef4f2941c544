"""LSFExecutor: job scripts for LSF's bsub (on stdin), states from one bjobs call.

- Arrays: `-J "name[1-N]%P"`.  LSF indices start at 1: element k of reflow's
  0-based wave runs as LSF index k + 1 (LSB_JOBINDEX), which the worker maps
  back, so instance i still gets its own input.
- Ids: bsub says `Job <1234> is submitted ...`; an element is LSF's own
  `1234[6]`: the id in the store, the key of `states()`, and the name of its
  log `<dir>/1234[6].log` (`-o <dir>/%J[%I].log`; LSF appends its job report,
  with the reason of a kill, to that file).
- Dependencies: `-w "ended(ID) && ended(ID)"` (`ended` of an array waits for
  all its elements).
- Resources: `-n N -R "span[hosts=1] rusage[mem=M]" -M M` (units written out,
  so LSF_UNIT_FOR_LIMITS does not matter), `-W` run limit in [H:]MM,
  `-q` (partition/queue, native key `queue`), `-P` (account: LSF's project),
  `-cwd`.  Any other option is the bsub flag of its name (`app="gpu"` ->
  `-app gpu`, `x=True` -> `-x`).
- States: one `bjobs -a -noheader -o "jobid jobindex stat exit_code exit_reason
  delimiter='|'" ID ...` per pass; `exit_reason` (TERM_RUNLIMIT, TERM_MEMLIMIT,
  TERM_OWNER, ...) names why LSF ended a job.
- Arrays are capped at LSF's default MAX_JOB_ARRAY_SIZE (1000) unless
  `max_array_size=` says otherwise; larger waves become several arrays.
- Jobs by name (re-attach): `bjobs -a -u all -J NAME -noheader -o "jobid
  job_name delimiter='|'"`, one per name (`-J` takes one).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ..errors import ValidationError
from ._common import (
    BatchExecutor,
    aggregate,
    directives,
    exports,
    flags,
    memory,
    option_key,
    run_scheduler,
    seconds,
    warning_seconds,
)
from ._common import directive_value as _value
from .base import JobResources, JobState, JobStatus

__all__ = ["LSFExecutor"]

DEFAULT_MAX_ARRAY = 1000  # lsb.params MAX_JOB_ARRAY_SIZE, unless the site changed it
BJOBS_FORMAT = "jobid jobindex stat exit_code exit_reason delimiter='|'"
NAMES_FORMAT = "jobid job_name delimiter='|'"

_ID = re.compile(r"^(?P<job>\d+)(?:\[(?P<index>\d+)\])?$")
_SUBMITTED = re.compile(r"Job <(\d+)> is submitted")
# bjobs -J NAME of no job: "Job <NAME> is not found" (some versions: "No job found")
_NONE_FOUND = ("is not found", "no job found")

_LIVE: Mapping[str, tuple[JobState, str]] = {
    "PEND": (JobState.PENDING, "pending"),
    "PSUSP": (JobState.PENDING, "suspended while pending"),
    "WAIT": (JobState.PENDING, "waiting"),
    "PROV": (JobState.RUNNING, "host being provisioned"),
    "RUN": (JobState.RUNNING, "running"),
    "USUSP": (JobState.RUNNING, "suspended by its owner"),
    "SSUSP": (JobState.RUNNING, "suspended by LSF"),
    # the host of the job cannot be reached: not final, asked again later
    "UNKWN": (JobState.UNKNOWN, "its host is unreachable"),
    "ZOMBI": (JobState.UNKNOWN, "killed while its host was unreachable"),
}
# TERM_* exit reasons -> reflow's state (the rest are FAILED)
_REASONS: tuple[tuple[str, JobState], ...] = (
    ("TERM_RUNLIMIT", JobState.TIMEOUT),
    ("TERM_CPULIMIT", JobState.TIMEOUT),
    ("TERM_DEADLINE", JobState.TIMEOUT),
    ("TERM_RUNTIME", JobState.TIMEOUT),
    ("TERM_MEMLIMIT", JobState.OUT_OF_MEMORY),
    ("TERM_SWAP", JobState.OUT_OF_MEMORY),
    ("TERM_PROCESSLIMIT", JobState.FAILED),
    ("TERM_OWNER", JobState.CANCELLED),
    ("TERM_FORCE_OWNER", JobState.CANCELLED),
    ("TERM_ADMIN", JobState.CANCELLED),
    ("TERM_FORCE_ADMIN", JobState.CANCELLED),
    ("TERM_REQUEUE_OWNER", JobState.CANCELLED),
    ("TERM_REQUEUE_ADMIN", JobState.CANCELLED),
    ("TERM_PREEMPT", JobState.PREEMPTED),
    ("TERM_HOST", JobState.NODE_FAIL),
    ("TERM_LOAD", JobState.NODE_FAIL),
)


def _run_limit(time: str) -> str:
    """LSF's run limit (-W): minutes, or H:MM from an hour on (rounded up to whole minutes)."""
    total = -(-seconds(time) // 60)
    return f"{total // 60}:{total % 60:02d}" if total >= 60 else str(total)


def _mem(mem: str) -> str:
    """A memory size with its unit written out (4GB), so LSF_UNIT_FOR_LIMITS does not matter."""
    return f"{memory(mem)}B"


def _native(job_id: str) -> str:
    found = _ID.match(job_id.strip())
    if not found:
        raise ValidationError(f"{job_id!r} is not an LSF job id")
    return job_id.strip()


def parse_bjobs(text: str) -> list[tuple[str, JobStatus]]:
    """`bjobs -o "<BJOBS_FORMAT>" -noheader` lines as (job or `job[index]`, status)."""
    found: list[tuple[str, JobStatus]] = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 3 or not parts[0]:
            continue
        job_field, index, stat = parts[0], parts[1], parts[2]
        code = parts[3] if len(parts) > 3 else "-"
        reason = "|".join(parts[4:]).strip() if len(parts) > 4 else "-"
        shown = _ID.match(job_field)
        if not shown:
            continue
        job = shown["job"]
        index = shown["index"] or (index if index.isdigit() and index != "0" else "")
        key = f"{job}[{index}]" if index else job
        found.append((key, _status(stat, code, reason)))
    return found


def parse_named(text: str, name: str) -> list[str]:
    """`bjobs -o "<NAMES_FORMAT>" -noheader` lines: the ids of the jobs named `name`, in order.

    An array's elements are listed as `name[3]`, each with the array's id.
    """
    found: list[str] = []
    for line in text.splitlines():
        job, _, shown = (p.strip() for p in line.partition("|"))
        shown_id = _ID.match(job)
        if shown_id and re.sub(r"\[[\d,:%-]*\]$", "", shown) == name:
            found.append(shown_id["job"])
    return list(dict.fromkeys(found))


def _status(stat: str, code: str, reason: str) -> JobStatus:
    if stat in _LIVE:
        state, word = _LIVE[stat]
        return JobStatus(state, f"{stat} ({word})")
    why = "" if reason in ("", "-") else reason
    if stat == "DONE":
        return JobStatus(JobState.COMPLETED, "DONE", "0")
    if stat != "EXIT":
        return JobStatus(JobState.UNKNOWN, stat or "no state")
    state = JobState.FAILED
    for prefix, mapped in _REASONS:
        if why.startswith(prefix):
            state = mapped
            break
    exit_code = "" if code in ("", "-") else code
    if exit_code.isdigit() and 128 < int(exit_code) < 160:
        # the job's process died of a signal (LSF reports 128 + the signal number)
        exit_code = f"{exit_code}:{int(exit_code) - 128}"  # said as "killed by SIGKILL"
    return JobStatus(state, f"EXIT ({why})" if why else "EXIT", exit_code)


class LSFExecutor(BatchExecutor):
    """Submits to IBM Spectrum LSF with bsub; arrays `name[1-N]%P`; states from one bjobs."""

    name = "lsf"
    mode = "bsub"
    commands = ("bsub", "bjobs", "bkill")
    index_base = 1
    queue_key = "queue"
    submit_tool, submit_what = "bsub", "submit to LSF"

    def __init__(
        self,
        *,
        bsub: str | None = None,
        bjobs: str | None = None,
        bkill: str | None = None,
        max_array_size: int | None = None,
    ) -> None:
        self.bsub = bsub or "bsub"
        self.bjobs = bjobs or "bjobs"
        self.bkill = bkill or "bkill"
        self._max_array = max_array_size
        self.calls: dict[str, int] = {"bsub": 0, "bjobs": 0, "bkill": 0}

    def settings(self) -> dict[str, Any]:
        return {} if self._max_array is None else {"max_array_size": self._max_array}

    def max_array_size(self) -> int | None:
        return DEFAULT_MAX_ARRAY if self._max_array is None else self._max_array

    # ------------------------------------------------------------------ ids and logs

    def element_id(self, job_id: str, element: int) -> str:
        return f"{job_id}[{element + 1}]"

    def job_of(self, job_id: str) -> str:
        return job_id.split("[", 1)[0]

    def log_pattern(self, directory: str, array: bool) -> str:
        return f"{directory}/%J[%I].log" if array else f"{directory}/%J.log"

    # ------------------------------------------------------------------ job scripts

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        """The bsub script: `#BSUB` directives, then the command, every word quoted."""
        r = resources
        name = self.job_name(r.name, r.token)
        if r.array_size is not None:
            name += f"[1-{r.array_size}]"
            if r.array_parallelism:
                name += f"%{int(r.array_parallelism)}"
        # LSF's warning time is in whole minutes
        warn = warning_seconds(r) // 60
        requirement = []
        if r.cpus and int(r.cpus) > 1:
            requirement.append("span[hosts=1]")  # the CPUs of one task, on one host
        if r.mem:
            requirement.append(f"rusage[mem={_mem(r.mem)}]")
        lines = [
            "#!/bin/bash",
            *directives(
                "#BSUB",
                [
                    f'-J "{name}"',
                    r.cpus and f"-n {int(r.cpus)}",
                    requirement and f'-R "{" ".join(requirement)}"',
                    r.mem and f"-M {_mem(r.mem)}",
                    r.time and f"-W {_run_limit(r.time)}",
                    warn and "-wa USR1",
                    warn and f"-wt {warn}",
                    r.partition and f"-q {_value('queue', r.partition)}",
                    r.account and f"-P {_value('account', r.account)}",
                    r.stdout and f"-o {_value('output', r.stdout)}",
                    r.stderr and r.stderr != r.stdout and f"-e {_value('error', r.stderr)}",
                    r.workdir and f"-cwd {_value('cwd', r.workdir)}",
                    r.dependencies and f'-w "{self._ended(r.dependencies)}"',
                    *flags(r.extra, lambda key: "-" + option_key(key), " "),
                ],
            ),
        ]
        lines += ["", *exports(r.env), "exec " + shlex.join(command)]
        return "\n".join(lines) + "\n"

    def _ended(self, dependencies: Sequence[str]) -> str:
        ended = [
            f"ended({self.job_of(_native(one))})"
            for dep in dependencies
            for one in dep.split(",")
            if one.strip()
        ]
        return " && ".join(dict.fromkeys(ended))

    # ------------------------------------------------------------------ scheduler calls

    def submit_argv(self) -> list[str]:
        return [self.bsub]

    def job_id(self, proc: subprocess.CompletedProcess[str]) -> str:
        found = _SUBMITTED.search(proc.stdout)
        if not found:
            raise self.refused(proc)
        return found.group(1)

    def cancel(self, job_ids: Sequence[str]) -> None:
        ids = [_native(j) for j in dict.fromkeys(job_ids) if j]
        if not ids:
            return
        self.calls["bkill"] += 1
        self.cancel_all([self.bkill], ids, "cancel LSF jobs")

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        asked = [_native(j) for j in dict.fromkeys(job_ids) if j]
        if not asked:
            return {}
        self.calls["bjobs"] += 1
        proc = run_scheduler(
            [self.bjobs, "-a", "-noheader", "-o", BJOBS_FORMAT, *asked],
            what="ask LSF for job states",
        )
        rows = parse_bjobs(proc.stdout)
        self.query_failed(
            proc, rows, "ask LSF for job states", lambda ln: "not found" in ln.lower()
        )
        wanted = set(asked)
        found: dict[str, JobStatus] = {}
        elements: dict[str, list[JobStatus]] = {}
        for key, status in rows:
            base = self.job_of(key)
            if key in wanted or base in wanted:
                found[key] = status
                if key != base:
                    elements.setdefault(base, []).append(status)
        for base, statuses in elements.items():
            if base not in found:  # bjobs lists an array's elements, not the array
                found[base] = aggregate(statuses)
        return found

    def find_named(self, names: Sequence[str], since: float) -> dict[str, str | None] | None:
        """`bjobs -a -u all -J NAME` for each name: the job's id (an array's own).

        LSF lists a queued or running job always, a finished one for
        CLEAN_PERIOD (lsb.params, an hour by default) after it ended, so a
        name it does not list was never submitted, or ended longer ago than
        that.  The second no later pass could tell either (LSF has forgotten
        the job for good), and holding the run for ever would be worse than
        running those elements again: such a name counts as never submitted,
        as where the scheduler cannot be asked.  A failing bjobs leaves the
        name out (cannot tell now).
        """
        found: dict[str, str | None] = {}
        for name in names:
            self.calls["bjobs"] += 1
            proc = self.patiently(partial(self._named, name))
            jobs = parse_named(proc.stdout, name)
            if jobs:
                found[name] = max(jobs, key=int)  # the latest, if a name was ever used twice
            elif proc.returncode == 0 or any(
                w in (proc.stderr + proc.stdout).lower() for w in _NONE_FOUND
            ):
                found[name] = None
        return found

    def _named(self, name: str) -> subprocess.CompletedProcess[str]:
        # -u all: a colleague's pass may have submitted it; -J NAME matches an array too
        argv = [self.bjobs, "-a", "-u", "all", "-J", name, "-noheader", "-o", NAMES_FORMAT]
        return run_scheduler(argv, what="ask LSF for jobs by name")
