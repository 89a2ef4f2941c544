"""SGEExecutor: job scripts for Grid Engine's qsub, states from one qstat call per pass.

- The job script goes to `qsub -terse` on stdin (never `qsub -b y`, whose
  command words go through a second shell); `#$` lines carry the options.
- Array elements are SGE's own `<job>.<task>`, `task` counting from 1
  (element k of reflow's 0-based wave is task k + 1), and the scheduler's log
  of an element is `<job>.<task>.log`: the id in the store, the key of
  `states()` and the log file name are one string.
- States: one `qstat -u '*' -xml` for every job asked about; a job that has
  left qstat is looked up with `qacct -j` (a record per array task).  A job
  in error state (`Eqw`) would hold its successors forever: it is reported
  FAILED with the reason `qstat -j` gives and deleted with `qdel`.
- The job never passes exit code 99 (SGE requeues the job) or 100 (SGE puts
  it into error state) on to SGE.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ValidationError
from ..resources import UNITS
from ._common import (
    BatchExecutor,
    directive_value,
    directives,
    exports,
    is_name,
    memory,
    option_key,
    run_command,
    run_scheduler,
    seconds,
    warning_seconds,
)
from .base import Capacity, JobResources, JobState, JobStatus, SchedulerError

__all__ = ["SGEExecutor"]

#: task options that are qsub flags (key -> flag); every other key is a resource: -l key=value
_FLAGS: Mapping[str, str] = {
    "project": "-P",
    "priority": "-p",
    "mail_user": "-M",
    "mail_options": "-m",
    "reserve": "-R",
    "rerun": "-r",
    "notify": "-notify",
    "ckpt": "-ckpt",
    "binding": "-binding",
    "ar": "-ar",
    "js": "-js",
    "masterq": "-masterq",
}
_YES_NO = frozenset({"-R", "-r"})  # flags that take y/n
_BARE = frozenset({"-notify"})  # flags without a value
#: qacct `failed` codes: killed for a limit (h_rt, h_cpu, h_vmem) by qmaster or execd
_LIMIT_FAILURES = frozenset({37, 40, 44})
_KILLED_AFTER_START = 100  # "assumedly after job": the job's shell was killed (qdel: SIGKILL)
_MEMORY_LIMITS = ("h_vmem", "h_rss", "h_data", "s_vmem", "s_rss", "mem_free")
#: a job that failed with its peak memory this close to its limit ran out of memory
_NEAR_LIMIT = 0.9


def _value(key: str, value: Any) -> str:
    """A value for a `#$` line (`$` is plain: SGE expands $JOB_ID in paths)."""
    return directive_value(key, value, plain="$")


def _resource(key: str, value: Any) -> str:
    """`key=value` for `-l`: SGE splits resource lists at commas and spaces."""
    text = "true" if value is True else str(value)
    option_key(key)
    if not text or re.search(r"[\s,\"'=]", text):
        raise ValidationError(
            f"scheduler option {key}={text!r} cannot be an SGE resource request (-l {key}=...): "
            "it must be non-empty, without spaces, commas, quotes or '='"
        )
    return f"{key}={text}"


def _log_path(key: str, path: str) -> str:
    """An -o/-e path: SGE reads `host:path` and comma-separated lists there."""
    if "," in path or ":" in path:
        raise ValidationError(
            f"the scheduler log path {path!r} contains ',' or ':', which SGE reads as a list "
            "or a host name: use a run directory without them"
        )
    return _value(key, path)


def _options(extra: Mapping[str, Any]) -> list[str]:
    """Other options: qsub flags (`_FLAGS`), and resource requests `-l key=value`."""
    found: list[str] = []
    for key, value in sorted(extra.items()):
        if value is None or (value is False and key not in ("reserve", "rerun")):
            continue
        flag = _FLAGS.get(key)
        if flag is None:
            found.append(f"-l {_resource(key, value)}")
        elif flag in _BARE:
            found.append(flag)
        elif flag in _YES_NO and isinstance(value, bool):
            found.append(f"{flag} {'y' if value else 'n'}")
        else:
            found.append(f"{flag} {_value(key, value)}")
    return found


def h_rt(text: str) -> str:
    """A time limit (the one grammar) as SGE's h_rt, `H:MM:SS`."""
    return _clock(seconds(text))


def _clock(total: int) -> str:
    return f"{total // 3600}:{total // 60 % 60:02d}:{total % 60:02d}"


def per_slot_memory(text: str, slots: int) -> str:
    """The job's memory `text` ('4G', '500M', a plain number is MB) divided among `slots`.

    SGE counts memory requests per slot: a job with `-pe smp 4 -l h_vmem=1G`
    may use 4G.  The result is rounded up to a whole K, and said in the largest
    unit up to G that is exact.
    """
    each = -(-memory(text).nbytes // (max(1, slots) * UNITS["K"])) * UNITS["K"]
    unit = next(u for u in ("G", "M", "K") if u == "K" or each % UNITS[u] == 0)
    return f"{each // UNITS[unit]}{unit}"


def _seconds(text: str) -> float | None:
    """SGE's time values: `3`, `3.5`, `4s`, `0:1:00`; None if unreadable."""
    text = text.strip().rstrip("s")
    try:
        if ":" in text:
            total = 0.0
            for part in text.split(":"):
                total = total * 60 + float(part)
            return total
        return float(text)
    except ValueError:
        return None


def _task_ids(spec: str) -> list[int]:
    """qstat's ja-task list `1-10:1`, `3,4`, `5` -> the task ids."""
    ids: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            continue
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        ids.extend(range(lo, hi + 1, int(m.group(3) or 1)))
    return ids


def parse_qstat_xml(text: str) -> dict[str, dict[int | None, str]]:
    """`qstat -xml` -> job number -> {task id (None: not an array) -> state letters}."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SchedulerError(f"cannot read qstat's XML output: {exc}") from None
    jobs: dict[str, dict[int | None, str]] = {}
    for entry in root.iter("job_list"):
        number = (entry.findtext("JB_job_number") or "").strip()
        letters = (entry.findtext("state") or "").strip()
        if not number:
            continue
        tasks = (entry.findtext("tasks") or "").strip()
        slot = jobs.setdefault(number, {})
        if tasks:
            for task in _task_ids(tasks):
                slot[task] = letters
        else:
            slot[None] = letters
    return jobs


def parse_qstat_names(text: str) -> dict[str, str]:
    """`qstat -xml` -> job name -> job number."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise SchedulerError(f"cannot read qstat's XML output: {exc}") from None
    return {
        (entry.findtext("JB_name") or "").strip(): (entry.findtext("JB_job_number") or "").strip()
        for entry in root.iter("job_list")
    }


def qstat_state(letters: str) -> JobState:
    """qstat's state letters (`r`, `qw`, `hqw`, `Eqw`, `dr`, `Rr`, `s`...) as a JobState."""
    if "E" in letters:
        return JobState.FAILED  # error state: it never runs unless someone clears it
    if "d" in letters:
        return JobState.CANCELLED  # being deleted
    if "r" in letters or "t" in letters:
        return JobState.RUNNING
    if any(c in letters for c in "sST"):
        return JobState.RUNNING  # suspended while running
    if any(c in letters for c in "qwh"):
        return JobState.PENDING
    return JobState.UNKNOWN


def parse_error_reasons(text: str) -> dict[str, dict[int, str]]:
    """`qstat -j ID,ID` -> job number -> {task id -> the `error reason` text}."""
    reasons: dict[str, dict[int, str]] = {}
    job = ""
    for line in text.splitlines():
        m = re.match(r"^job_number:\s*(\d+)", line)
        if m:
            job = m.group(1)
            continue
        m = re.match(r"^error reason\s+(\d+):\s*(.*)$", line)
        if m and job:
            # "11/25/2026 01:15:12 [0:9911]: error: can't open output file ..." -> the message
            why = re.sub(r"^\S+ \S+ \[\d+:\d+\]:\s*", "", m.group(2).strip())
            reasons.setdefault(job, {})[int(m.group(1))] = why
    return reasons


def parse_queue_summary(text: str, queue: str | None, cpus: int) -> Capacity:
    """`qstat -g c` -> how many jobs of `cpus` slots the queue (or every queue) holds at once."""
    total = 0
    for line in text.splitlines():
        parts = line.split()
        # CLUSTER QUEUE  CQLOAD  USED  RES  AVAIL  TOTAL  aoACDS  cdsuE
        if len(parts) >= 6 and parts[5].isdigit() and (queue is None or parts[0] == queue):
            total += int(parts[5])
    return Capacity(slots=total // max(1, cpus) or None) if total else Capacity()


def parse_qacct(text: str) -> list[dict[str, str]]:
    """`qacct -j ID` -> one dict per accounting record (a record per array task)."""
    records: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        if line.startswith("====="):
            current = {}
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.partition(" ")
        current[key.strip()] = value.strip()
    return records


def _limits(category: str) -> dict[str, str]:
    """The `-l` requests in qacct's `category` (`-l h_rt=60,h_vmem=150M -pe smp 2`)."""
    found: dict[str, str] = {}
    for m in re.finditer(r"(?:^|\s)-l\s+(\S+)", category):
        for item in m.group(1).split(","):
            key, _, value = item.partition("=")
            found[key] = value
    return found


def qacct_status(record: Mapping[str, str]) -> JobStatus:
    """One qacct record as a JobStatus; exit codes as `exit:signal` like Slurm's."""
    failed_text = record.get("failed", "0")
    m = re.match(r"^(\d+)\s*(?::\s*(.*))?$", failed_text)
    failed = int(m.group(1)) if m else 0
    said = (m.group(2) or "").strip() if m else failed_text
    exit_words = record.get("exit_status", "0").split()
    status = int(exit_words[0]) if exit_words and exit_words[0].isdigit() else 0
    code = f"0:{status - 128}" if 128 < status < 128 + 65 else f"{status}:0"
    if failed == 0:
        state = JobState.COMPLETED if status == 0 else JobState.FAILED
        if state is JobState.FAILED and _near_memory_limit(record):
            # e.g. a program that aborts when an allocation fails under h_vmem
            return JobStatus(JobState.OUT_OF_MEMORY, f"FAILED ({_memory_said(record)})", code)
        return JobStatus(state, state.value, code)
    if failed in _LIMIT_FAILURES or "limit" in said:
        state = _limit_state(record)
    elif failed == _KILLED_AFTER_START and status == 137:
        # SIGKILL to the job's shell: at its run time limit (the execd's own check), else qdel
        state = JobState.TIMEOUT if _over_time(record) else JobState.CANCELLED
    else:
        state = JobState.FAILED
    if state is JobState.OUT_OF_MEMORY and _near_memory_limit(record):
        said += f"; {_memory_said(record)}"
    return JobStatus(state, f"{state.value} (failed {failed}: {said})", code)


def _over_time(record: Mapping[str, str]) -> bool:
    """Whether the job ran for its whole h_rt (or h_cpu)."""
    limits = _limits(record.get("category", ""))
    for limit, used in (("h_rt", "ru_wallclock"), ("h_cpu", "cpu")):
        allowed = _seconds(limits.get(limit, ""))
        spent = _seconds(record.get(used, ""))
        if allowed is not None and spent is not None and spent >= allowed - 1:
            return True
    return False


def _memory_limit(record: Mapping[str, str]) -> int | None:
    """The job's memory limit in bytes (h_vmem or the like, per slot times slots)."""
    limits = _limits(record.get("category", ""))
    slots = record.get("slots", "1").strip()
    for key in _MEMORY_LIMITS:
        size = _bytes(limits.get(key, ""))
        if size:
            return size * (int(slots) if slots.isdigit() else 1)
    return None


def _near_memory_limit(record: Mapping[str, str]) -> bool:
    """Whether the job's peak memory (maxvmem) came within `_NEAR_LIMIT` of its limit."""
    limit, peak = _memory_limit(record), _bytes(record.get("maxvmem", ""))
    return bool(limit and peak and peak >= _NEAR_LIMIT * limit)


def _memory_said(record: Mapping[str, str]) -> str:
    limits = _limits(record.get("category", ""))
    key = next((k for k in _MEMORY_LIMITS if k in limits), "memory limit")
    return f"maxvmem {record.get('maxvmem', '?')} of {key}={limits.get(key, '?')}"


def _bytes(text: str) -> int | None:
    """SGE's sizes (`217.684MB`, `150M`, `1G`, `0.000B`, `512k`) in bytes; None if not one."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)B?", text.strip())
    if not m:
        return None
    unit = m.group(2)
    # SGE: upper case units count in 1024s, lower case in 1000s
    scale = UNITS.get(unit, 1) if unit.isupper() or not unit else 1000 ** ("kmgt".index(unit) + 1)
    return int(float(m.group(1)) * scale)


def _limit_state(record: Mapping[str, str]) -> JobState:
    """Which limit killed the job: its run time, its cpu time, or else its memory."""
    limits = _limits(record.get("category", ""))
    if _over_time(record):
        return JobState.TIMEOUT
    if any(k in limits for k in _MEMORY_LIMITS):
        return JobState.OUT_OF_MEMORY
    return JobState.TIMEOUT


def _split(job_id: str) -> tuple[str, int | None]:
    base, _, task = job_id.partition(".")
    return base, int(task) if task.isdigit() else None


class SGEExecutor(BatchExecutor):
    """Submits to (Son of) Grid Engine with qsub; arrays `-t 1-N -tc P`; `-hold_jid`."""

    name = "sge"
    mode = "qsub-sge"
    commands = ("qsub", "qstat", "qdel", "qacct")
    index_base = 1
    queue_key = "queue"  # -q; `partition` is the synonym
    name_limit, name_lead = 100, "j"  # SGE refuses names that start with a digit
    submit_tool, submit_what = "qsub", "submit to SGE"
    retry_gone = False  # a refused qsub is not repeated
    refusal_noise = ("Exiting.",)  # qsub's last line after the reason
    busy_words = ("unable to contact qmaster", "commlib error", "unable to send message to qmaster")

    def __init__(
        self,
        *,
        qsub: str | None = None,
        qstat: str | None = None,
        qdel: str | None = None,
        qacct: str | None = None,
        pe: str = "smp",
        mem_resource: str = "h_vmem",
        max_array_size: int | None = None,
    ) -> None:
        self.qsub = qsub or "qsub"
        self.qstat = qstat or "qstat"
        self.qdel = qdel or "qdel"
        self.qacct = qacct or "qacct"
        for what, value in (("pe", pe), ("mem_resource", mem_resource)):
            if not isinstance(value, str) or not is_name(value):
                raise ValidationError(f"SGEExecutor({what}={value!r}): not a valid SGE name")
        self.pe = pe
        self.mem_resource = mem_resource
        self._max_array = max_array_size
        self._limit_read = max_array_size is not None
        self.calls: dict[str, int] = {"qsub": 0, "qstat": 0, "qacct": 0, "qdel": 0, "qconf": 0}
        self._capacity: dict[tuple[str | None, int], Capacity] = {}

    def settings(self) -> dict[str, Any]:
        found: dict[str, Any] = {"pe": self.pe, "mem_resource": self.mem_resource}
        limit = self.max_array_size()  # read once at submission, kept for every later pass
        if limit is not None:
            found["max_array_size"] = limit
        return found

    # ------------------------------------------------------------------ ids and logs

    def element_id(self, job_id: str, element: int) -> str:
        return f"{job_id}.{element + 1}"

    def job_of(self, job_id: str) -> str:
        return job_id.split(".", 1)[0]

    def log_pattern(self, directory: str, array: bool) -> str:
        return f"{directory}/$JOB_ID.$TASK_ID.log" if array else f"{directory}/$JOB_ID.log"

    # ------------------------------------------------------------------ job scripts

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        """The qsub script: `#$` directives, then the command, every word quoted."""
        r = resources
        extra = dict(r.extra)
        pe = str(extra.pop("pe", None) or self.pe)
        if not is_name(pe):
            raise ValidationError(f"scheduler option pe={pe!r} is not a parallel environment name")
        slots = int(r.cpus or 1)
        joined = bool(r.stdout) and r.stdout == r.stderr
        # the soft limit s_rt makes SGE send SIGUSR1 to the job's processes, `warn` seconds
        # before h_rt; SGE kills the job at s_rt + the queue's `notify` time (60 s by
        # default) if h_rt has not come first
        warn = warning_seconds(r)
        lines = [
            "#!/bin/bash",
            *directives(
                "#$",
                [
                    f"-N {self.job_name(r.name, r.token)}",
                    "-S /bin/bash",
                    "-V",
                    f"-wd {_value('workdir', r.workdir)}" if r.workdir else "-cwd",
                    joined and "-j y",
                    r.stdout and f"-o {_log_path('stdout', r.stdout)}",
                    not joined and r.stderr and f"-e {_log_path('stderr', r.stderr)}",
                    r.array_size is not None and f"-t 1-{max(1, int(r.array_size or 1))}",
                    r.array_size is not None
                    and r.array_parallelism
                    and f"-tc {int(r.array_parallelism)}",
                    r.dependencies and "-hold_jid " + ",".join(self._hold_ids(r.dependencies)),
                    slots > 1 and f"-pe {pe} {slots}",
                    r.time and f"-l h_rt={h_rt(r.time)}",
                    warn and r.time and f"-l s_rt={_clock(seconds(r.time) - warn)}",
                    r.mem and f"-l {self.mem_resource}={per_slot_memory(r.mem, slots)}",
                    r.partition and f"-q {_value('queue', r.partition)}",
                    r.account and f"-A {_value('account', r.account)}",
                    *_options(extra),
                ],
            ),
        ]
        lines += [
            "",
            *exports(r.env),
            # the warning is the worker's: this shell lives on to pass on its exit status
            *(["trap '' USR1"] if warn else []),
            shlex.join(command),
            "status=$?",
            "# SGE requeues a job that exits with 99 and holds one that exits with 100 in",
            "# error state (Eqw), which would block the jobs after it: never pass them on",
            'if [ "$status" -eq 99 ] || [ "$status" -eq 100 ]; then exit 1; fi',
            'exit "$status"',
        ]
        return "\n".join(lines) + "\n"

    def capacity(self, resources: JobResources) -> Capacity:
        """The slots of the queue (all queues when none is named), from one `qstat -g c`."""
        key = (resources.partition, int(resources.cpus or 1))
        if key not in self._capacity:
            try:
                out = run_command([self.qstat, "-g", "c"], what="ask SGE about its queues")
            except SchedulerError:
                out = ""
            self._capacity[key] = parse_queue_summary(out, resources.partition, key[1])
        return self._capacity[key]

    def _hold_ids(self, ids: Iterable[str]) -> list[str]:
        out: list[str] = []
        for job in ids:
            base = self.job_of(str(job))
            if not base.isdigit():
                raise ValidationError(f"cannot wait for job {job!r}: not an SGE job id")
            if base not in out:
                out.append(base)
        return out

    # ------------------------------------------------------------------ submit and cancel

    def submit_argv(self) -> list[str]:
        return [self.qsub, "-terse"]

    def job_id(self, proc: subprocess.CompletedProcess[str]) -> str:
        # `123` for a job, `123.1-4:1` for an array
        m = re.match(r"^\s*(\d+)(?:\.\S*)?\s*$", proc.stdout)
        if not m:
            raise self.answered(proc)
        return m.group(1)

    def cancel(self, job_ids: Sequence[str]) -> None:
        targets = self._qdel_targets(job_ids)
        if not targets:
            return
        self.calls["qdel"] += 1
        proc = run_scheduler([self.qdel, *targets], what="cancel SGE jobs")
        if proc.returncode != 0:
            # qdel goes on past ids that already ended ('denied: job "7" does not exist')
            other = [
                line.strip()
                for line in (proc.stdout + "\n" + proc.stderr).splitlines()
                if line.strip()
                and "does not exist" not in line
                and " has deleted " not in line
                and " has registered " not in line
            ]
            if other:
                raise SchedulerError(f"cannot cancel SGE jobs: qdel said: {other[-1]}")

    def _qdel_targets(self, job_ids: Iterable[str]) -> list[str]:
        """qdel's job_task_list: whole jobs, or `job.first-last` ranges of their tasks."""
        whole: list[str] = []
        tasks: dict[str, set[int]] = {}
        for job in job_ids:
            base, task = _split(str(job))
            if not base.isdigit():
                continue
            if task is None:
                if base not in whole:
                    whole.append(base)
            else:
                tasks.setdefault(base, set()).add(task)
        targets = list(whole)
        for base, numbers in tasks.items():
            if base in whole:
                continue
            ordered = sorted(numbers)
            start = prev = ordered[0]
            for n in [*ordered[1:], None]:
                if n is not None and n == prev + 1:
                    prev = n
                    continue
                targets.append(f"{base}.{start}" if start == prev else f"{base}.{start}-{prev}")
                if n is not None:
                    start = prev = n
        return targets

    # ------------------------------------------------------------------ states

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        """One `qstat` for every job; `qacct` for each job that has left qstat.

        Keys: `<job>` for a job, `<job>.<task>` for each array task.  Jobs in
        error state are reported FAILED and deleted (one `qstat -j`, one `qdel`).
        """
        asked: dict[str, set[int]] = {}
        for job in job_ids:
            base, task = _split(str(job))
            if base.isdigit():
                numbers = asked.setdefault(base, set())
                if task is not None:
                    numbers.add(task)
        if not asked:
            return {}
        self.calls["qstat"] += 1
        listing = parse_qstat_xml(  # asked again while qmaster is busy (`busy_words`)
            self.ask(
                lambda: run_command([self.qstat, "-u", "*", "-xml"], what="ask SGE for job states")
            )
        )
        found: dict[str, JobStatus] = {}
        in_error: list[str] = []
        ended: list[str] = []
        for base, numbers in asked.items():
            entries = listing.get(base)
            if entries is None:
                ended.append(base)
                continue
            for task, letters in entries.items():
                key = base if task is None else f"{base}.{task}"
                state = qstat_state(letters)
                found[key] = JobStatus(state, f"{state.value} ({letters})")
                if "E" in letters:
                    in_error.append(key)
            if any(f"{base}.{n}" not in found for n in numbers):
                ended.append(base)  # some tasks of a live array have ended
        if in_error:
            found.update(self._fail_in_error(in_error))
        for base in ended:
            for key, status in self._accounting(base).items():
                found.setdefault(key, status)  # what qstat still shows wins
        return found

    def find_named(self, names: Sequence[str], since: float) -> dict[str, str | None] | None:
        """`qstat` for the jobs SGE still holds, `qacct -j NAME` for ended ones."""
        self.calls["qstat"] += 1
        try:
            listing = parse_qstat_names(
                self.ask(lambda: run_command([self.qstat, "-u", "*", "-xml"], what="list SGE jobs"))
            )
        except SchedulerError:
            return {}  # cannot tell now
        found: dict[str, str | None] = {n: listing[n] for n in names if listing.get(n)}
        for name in names:
            if name in found:
                continue
            self.calls["qacct"] += 1
            proc = run_scheduler([self.qacct, "-j", name], what="ask SGE about ended jobs")
            numbers = [r.get("jobnumber", "") for r in parse_qacct(proc.stdout)]
            if proc.returncode == 0 and numbers and numbers[0].isdigit():
                found[name] = numbers[0]
            elif "not found" in proc.stderr + proc.stdout:
                found[name] = None  # neither queued nor ended: never submitted
        return found

    def _fail_in_error(self, keys: Sequence[str]) -> dict[str, JobStatus]:
        """Jobs in error state (Eqw): FAILED with SGE's reason, then deleted."""
        bases = sorted({self.job_of(k) for k in keys}, key=int)
        self.calls["qstat"] += 1
        try:
            text = run_command(
                [self.qstat, "-j", ",".join(bases)], what="ask SGE why jobs are in error state"
            )
        except SchedulerError as exc:
            text = ""
            fallback = str(exc)
        else:
            fallback = "no reason given"
        reasons = parse_error_reasons(text)
        try:
            self.cancel(keys)
            deleted = "reflow deleted the job"
        except SchedulerError as exc:  # still failed: it will not run unless someone clears it
            deleted = f"reflow could not delete the job: {exc}"
        found: dict[str, JobStatus] = {}
        for key in keys:
            base, task = _split(key)
            by_task = reasons.get(base, {})
            why = by_task.get(task if task is not None else 1) or next(
                iter(by_task.values()), fallback
            )
            found[key] = JobStatus(JobState.FAILED, f"FAILED (error state Eqw: {why}; {deleted})")
        return found

    def _accounting(self, base: str) -> dict[str, JobStatus]:
        """qacct's records of an ended job: `<job>` or `<job>.<task>` -> status."""
        self.calls["qacct"] += 1
        proc = run_scheduler([self.qacct, "-j", base], what="ask SGE about ended jobs")
        if proc.returncode != 0:
            return {}  # no record (yet, or never: deleted while pending): asked again later
        found: dict[str, JobStatus] = {}
        for record in parse_qacct(proc.stdout):
            if record.get("jobnumber") != base:
                continue
            task = record.get("taskid", "")
            key = f"{base}.{task}" if task.isdigit() else base
            found[key] = qacct_status(record)  # a later record (a rerun) wins
        return found

    # ------------------------------------------------------------------ limits

    def max_array_size(self) -> int | None:
        """The cluster's `max_aj_tasks` (qconf -sconf), read once; None if unknown."""
        if not self._limit_read:
            self._limit_read = True
            # qconf beside the configured qsub (an installation outside PATH), else on PATH
            beside = os.path.join(os.path.dirname(self.qsub), "qconf")
            qconf = beside if os.path.dirname(self.qsub) and os.path.exists(beside) else "qconf"
            self.calls["qconf"] += 1
            try:
                out = run_command([qconf, "-sconf"], what="read SGE's configuration", timeout=30)
            except SchedulerError:
                return None
            m = re.search(r"^max_aj_tasks\s+(\d+)", out, re.MULTILINE)
            limit = int(m.group(1)) if m else 0
            self._max_array = limit or None  # 0: no limit
        return self._max_array
