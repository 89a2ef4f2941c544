"""FluxExecutor: `flux submit` of the command itself, states from one `flux jobs` call.

- A job is `flux submit [options] COMMAND...` (an argv; no batch script:
  `flux batch` would start a Flux instance per job), run in the job's working
  directory (Flux gives a job the submitter's).  An array is `--cc=0-N`: Flux
  submits one job per index with FLUX_JOB_CC set (counted from 0), and its
  name gets the index (`--job-name=etl.transform.{cc}`).
- `--cc` passes the command and the options through Python's `str.format` to
  replace `{cc}`, so a word with a brace would be refused (the worker's JSON
  `--origin` has braces): such a command goes over hex-encoded, as
  `PYTHON -c <decoder> <hex>` with the command's own Python.
- Ids: flux submit prints one F58 id per job (`ƒ2dsA7Bzq`, `f2dsA7Bzq` in an
  ASCII locale); reflow keeps them in decimal.  An array's id is its jobs' ids
  joined by commas; element k is the k-th, and each element is a job of its
  own: the id in the store, the key of `states()`, and its log
  `<dir>/<id>.log` (`--output=<dir>/{{id.dec}}.log`, a flux-shell template).
- Parallelism: Flux has no limit for copies of a job.  With
  `array_parallelism` P the array goes in `--cc` ranges of P, each range
  waiting (`--dependency=afterany:`) for every job of the one before, so at
  most P elements run at once (a range starts when the slowest element of the
  previous range ends).
- Dependencies: `--dependency=afterany:ID`, once per id.
- Resources: `--cores-per-task=N`, `--time-limit=<seconds>s`, `--queue=`
  (partition/queue, native key `queue`), account as the bank
  (`--setattr=system.bank=`); `mem` has no Flux option (jobspec v1 asks for
  cores, not memory) and is not passed.  Other options are `--key=value`.
- States: one `flux jobs -n -o "{id.dec}|{state}|{result}|{returncode}|
  {waitstatus}|{exception.type}|{exception.note}" ID ...` per pass.
- Jobs by name (re-attach): one `flux jobs -A --since=-<N>s -n -o
  "{id.dec}|{name}"` of the jobs active since the pass wrote its journal
  entry; an array is its elements `NAME.<cc>` in order.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from ..errors import ValidationError
from ._common import (
    SchedulerExecutor,
    aggregate,
    flags,
    memory,
    option_key,
    run_scheduler,
    seconds,
    warning_seconds,
)
from .base import JobResources, JobState, JobStatus, SchedulerError

__all__ = ["FluxExecutor", "decode_id", "parse_flux_jobs"]

JOBS_FORMAT = (
    "{id.dec}|{state}|{result}|{returncode}|{waitstatus}|{exception.type}|{exception.note}"
)
NAMES_FORMAT = "{id.dec}|{name}"
#: at most this many jobs listed by one `flux jobs` (its default is 1000); a full page may
#: leave some out, so what is not on it cannot be told
NAMES_COUNT = 100000
CLOCK_SKEW = 600  # the clocks of the hosts may differ a little
_F58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_PENDING = frozenset({"NEW", "DEPEND", "PRIORITY", "SCHED"})
_RUNNING = frozenset({"RUN", "CLEANUP"})
# rebuilds the argv from hex, with no brace in it (see the module docstring)
_DECODER = "import json,os,sys;a=json.loads(bytes.fromhex(sys.argv[1]));os.execvp(a[0],a)"


def decode_id(text: str) -> str:
    """A Flux job id (F58 with `ƒ` or `f`, or decimal) in decimal."""
    word = text.strip()
    if word.isdigit():
        return str(int(word))
    if word[:1] in ("ƒ", "f") and len(word) > 1:
        value = 0
        for char in word[1:]:
            digit = _F58.find(char)
            if digit < 0:
                break
            value = value * 58 + digit
        else:
            return str(value)
    raise SchedulerError(f"{text!r} is not a Flux job id")


def _ids(job_ids: Sequence[str]) -> list[str]:
    """Flux job ids from reflow's (an array's id is its jobs' ids joined by commas)."""
    found: list[str] = []
    for job in job_ids:
        for one in job.split(","):
            if one.strip():
                found.append(decode_id(one))
    return list(dict.fromkeys(found))


def parse_flux_jobs(text: str) -> dict[str, JobStatus]:
    """`flux jobs -n -o "<JOBS_FORMAT>"` lines as {decimal id: status}."""
    found: dict[str, JobStatus] = {}
    for line in text.splitlines():
        parts = line.split("|", 6)
        if len(parts) < 3 or not parts[0].strip().isdigit():
            continue
        parts += [""] * (7 - len(parts))
        job, state, result, code, wait, kind, note = (p.strip() for p in parts)
        found[job] = _status(state, result, code, wait, kind, note)
    return found


def parse_named(text: str, names: Sequence[str]) -> dict[str, str]:
    """`flux jobs -n -o "<NAMES_FORMAT>"` lines: {name: its job's id}, the ids of an
    array's elements `NAME.<cc>` joined in element order (as `submit` returns them)."""
    wanted = set(names)
    single: dict[str, str] = {}
    elements: dict[str, dict[int, str]] = {}
    for line in text.splitlines():
        job, _, name = (p.strip() for p in line.partition("|"))
        if not job.isdigit():
            continue
        if name in wanted:
            single[name] = job
            continue
        base, _, cc = name.rpartition(".")
        if base in wanted and cc.isdigit():
            elements.setdefault(base, {})[int(cc)] = job
    found = {n: ",".join(ids[k] for k in sorted(ids)) for n, ids in elements.items()}
    return {**found, **single}


def _exit_code(code: str, wait: str) -> str:
    if wait.isdigit():  # the raw wait status is the most precise
        status = int(wait)
        if os.WIFSIGNALED(status):
            return f"0:{os.WTERMSIG(status)}"
        if os.WIFEXITED(status):
            exit_status = os.WEXITSTATUS(status)
            # a task killed by a signal makes its shell exit 128 + the signal
            return f"{exit_status}:{exit_status - 128}" if exit_status > 128 else str(exit_status)
    if re.fullmatch(r"-?\d+", code):
        number = int(code)
        if number == -128:
            return ""  # cancelled before it ran
        if number < 0:
            return f"0:{-number}"
        return f"{number}:{number - 128}" if number > 128 else str(number)
    return ""


def _status(state: str, result: str, code: str, wait: str, kind: str, note: str) -> JobStatus:
    if state in _PENDING:
        return JobStatus(JobState.PENDING, state)
    if state in _RUNNING:
        return JobStatus(JobState.RUNNING, state)
    if state != "INACTIVE":
        return JobStatus(JobState.UNKNOWN, state or "no state")
    said = result or "INACTIVE"
    if kind:
        said += f" (exception {kind}" + (f": {note})" if note else ")")
    exit_code = _exit_code(code, wait)
    if result == "COMPLETED":
        return JobStatus(JobState.COMPLETED, said, exit_code)
    if result == "CANCELED" or kind == "cancel":
        return JobStatus(JobState.CANCELLED, said, exit_code)
    if result == "TIMEOUT" or kind == "timeout":
        return JobStatus(JobState.TIMEOUT, said, exit_code)
    if kind == "node-failure":  # job-exec lost a node the job ran on
        return JobStatus(JobState.NODE_FAIL, said, exit_code)
    return JobStatus(JobState.FAILED, said, exit_code)


def _no_braces(what: str, value: str) -> str:
    if "{" in value or "}" in value:
        raise ValidationError(
            f"{what} {value!r} has a brace, which flux submit --cc would read as a template"
        )
    return value


class FluxExecutor(SchedulerExecutor):
    """Submits to Flux with `flux submit`; arrays `--cc=0-N`; states from one `flux jobs`."""

    name = "flux"
    mode = "flux"
    commands = ("flux",)
    index_base = 0
    queue_key = "queue"
    submit_tool, submit_what = "flux submit", "submit to Flux"

    def __init__(self, *, flux: str | None = None) -> None:
        self.flux = flux or "flux"
        self.calls: dict[str, int] = {"submit": 0, "jobs": 0, "cancel": 0}

    # ------------------------------------------------------------------ ids and logs

    def element_id(self, job_id: str, element: int) -> str:
        ids = job_id.split(",")
        return ids[element] if element < len(ids) else f"{job_id}_{element}"

    def job_of(self, job_id: str) -> str:
        return job_id  # every element is a Flux job of its own

    def log_pattern(self, directory: str, array: bool) -> str:
        return f"{directory}/{{{{id.dec}}}}.log"

    # ------------------------------------------------------------------ the submission

    def argv(
        self,
        command: Sequence[str],
        resources: JobResources,
        cc: tuple[int, int] | None = None,
        after: Sequence[str] = (),
    ) -> list[str]:
        """The `flux submit` argv for `resources`, copies `cc` (first, last), after `after`."""
        r = resources
        copies = cc is not None
        check = _no_braces if copies else (lambda what, value: value)
        name = self.job_name(r.name, r.token) + (".{cc}" if copies else "")
        argv = [self.flux, "submit", f"--job-name={name}"]
        if r.cpus:
            argv.append(f"--cores-per-task={int(r.cpus)}")
        if r.time:
            argv.append(f"--time-limit={seconds(r.time)}s")  # Flux's FSD: seconds
            if warning_seconds(r):
                argv.append(f"--signal=SIGUSR1@{warning_seconds(r)}s")
        if r.mem:
            memory(r.mem)  # checked like everywhere, but not passed (see the module docstring)
        if r.partition:
            argv.append(f"--queue={check('queue', str(r.partition))}")
        if r.account:
            argv.append(f"--setattr=system.bank={check('account', str(r.account))}")
        if cc is not None:
            argv.append(f"--cc={cc[0]}-{cc[1]}")
        if r.stdout:
            check("output", r.stdout.replace("{{id.dec}}", ""))  # the template stays as it is
            argv.append(f"--output={r.stdout}")
        if r.stderr and r.stderr != r.stdout:
            check("error", r.stderr.replace("{{id.dec}}", ""))
            argv.append(f"--error={r.stderr}")
        for job in _ids([*r.dependencies, *after]):
            argv.append(f"--dependency=afterany:{job}")
        for key, value in sorted(r.env.items()):
            argv.append(f"--env={option_key(key)}={check(key, value)}")
        argv += flags(
            r.extra,
            lambda key: "--" + option_key(key).replace("_", "-"),
            "=",
            lambda key, value: check(key, str(value)),
        )
        words = list(command)
        if copies and any("{" in w or "}" in w for w in words):
            words = [words[0], "-c", _DECODER, json.dumps(words).encode().hex()]
        return argv + words

    def _ranges(self, resources: JobResources) -> list[tuple[int, int]]:
        size = resources.array_size or 0
        step = int(resources.array_parallelism or 0) or size
        return [(lo, min(lo + step, size) - 1) for lo in range(0, size, max(1, step))]

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        """What reflow runs to submit the job, as a shell script (reflow runs it as an argv)."""
        r = resources
        lines = ["#!/bin/sh", f"# reflow job {r.name} for Flux: the flux submit reflow runs"]
        ranges = self._ranges(r) if r.array_size is not None else [None]
        if len(ranges) > 1:
            lines.append(
                f"# array_parallelism {r.array_parallelism}: {len(ranges)} ranges of --cc, "
                "each after every job of the range before (first range shown)"
            )
        if r.mem:
            lines.append(
                f"# mem={memory(r.mem)} is not passed: Flux jobs ask for cores, not memory"
            )
        if r.workdir:
            lines.append("cd " + shlex.quote(r.workdir))
        argv = self.argv(command, r, ranges[0])
        words = argv[len(argv) - len(command) :] if len(argv) > len(command) else []
        if words != list(command):  # hex-encoded: 4 words in place of the command
            words = argv[-4:]
            lines.append("# the command, hex-encoded below: " + shlex.join(command))
        options = argv[2 : len(argv) - len(words)]
        parts = [shlex.join(argv[:2]), *(shlex.quote(w) for w in options), shlex.join(words)]
        lines.append(" \\\n    ".join(parts))
        return "\n".join(lines) + "\n"

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        ranges: list[tuple[int, int] | None]
        ranges = list(self._ranges(resources)) if resources.array_size is not None else [None]
        submitted: list[str] = []
        before: list[str] = []
        try:
            for cc in ranges:
                ids = self._submit_one(command, resources, cc, before)
                submitted.extend(ids)
                before = ids
        except SchedulerError:
            self.cancel(submitted)  # no half array left behind
            raise
        return ",".join(submitted)

    def _submit_one(
        self,
        command: Sequence[str],
        resources: JobResources,
        cc: tuple[int, int] | None,
        after: Sequence[str],
    ) -> list[str]:
        if resources.workdir and not os.path.isdir(resources.workdir):
            raise SchedulerError(
                f"cannot submit to Flux: the working directory {resources.workdir} does not exist"
            )

        def attempt(res: JobResources) -> subprocess.CompletedProcess[str]:
            self.calls["submit"] += 1
            return run_scheduler(
                self.argv(command, res, cc, after), what=self.submit_what, cwd=res.workdir
            )

        proc = self.submit_retrying(attempt, resources, _ids)
        words = proc.stdout.split()
        expected = 1 if cc is None else cc[1] - cc[0] + 1
        if proc.returncode != 0 or len(words) != expected:
            raise self.refused(proc)
        return [decode_id(w) for w in words]

    def cancel(self, job_ids: Sequence[str]) -> None:
        ids = _ids([j for j in job_ids if j])
        if not ids:
            return
        self.calls["cancel"] += 1
        # flux cancel goes on past ids that are inactive or unknown, and says so on stderr
        run_scheduler([self.flux, "cancel", *ids], what="cancel Flux jobs")

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        ids = _ids([j for j in job_ids if j])
        if not ids:
            return {}
        self.calls["jobs"] += 1
        proc = run_scheduler(
            [self.flux, "jobs", "-n", "-o", JOBS_FORMAT, *ids], what="ask Flux for job states"
        )
        found = parse_flux_jobs(proc.stdout)
        self.query_failed(
            proc, found, "ask Flux for job states", lambda ln: "unknown" in ln.lower()
        )
        states = {job: found[job] for job in ids if job in found}
        for job in job_ids:  # an array asked for by its joined id: each element, and the whole
            if "," in job:
                parts = [states[i] for i in _ids([job]) if i in states]
                if parts:
                    states[job] = aggregate(parts)
        return states

    def find_named(self, names: Sequence[str], since: float) -> dict[str, str | None] | None:
        """One `flux jobs -A --since` of the jobs active since `since`, looked through by name.

        Flux lists a job until it is purged, and by default never purges an
        inactive one (only a site's `job-manager.inactive-age-limit` or
        `inactive-num-limit`, or `flux job purge`, does): so a name not
        listed was never submitted.  A failing query, or a listing cut short
        at NAMES_COUNT jobs, leaves the names not on it out (cannot tell now).
        Not covered: an array submitted in several `--cc` ranges
        (`array_parallelism`) whose pass was killed between two of them is
        found with the ranges submitted so far only.
        """
        ago = max(0, int(time.time() - since)) + CLOCK_SKEW
        self.calls["jobs"] += 1
        argv = [
            self.flux, "jobs", "-A", f"--since=-{ago}s", f"--count={NAMES_COUNT}", "-n",
            "-o", NAMES_FORMAT,
        ]  # fmt: skip
        proc = self.patiently(lambda: run_scheduler(argv, what="ask Flux for jobs by name"))
        found: dict[str, str | None] = dict(parse_named(proc.stdout, names))
        if proc.returncode != 0 or len(proc.stdout.splitlines()) >= NAMES_COUNT:
            return found
        return {**dict.fromkeys(names), **found}

    def settings(self) -> dict[str, Any]:
        return {}
