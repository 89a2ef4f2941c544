"""PBSExecutor: job scripts for PBS Pro / OpenPBS and Torque, states from one qstat call.

- Flavour: `qstat --version` prints `pbs_version = 22.05.11` on PBS Pro and
  OpenPBS, `Version: 6.1.3` on Torque; `flavor="pro"|"torque"` overrides it,
  and the flavour found is recorded with the run, so later passes do not ask.
- Arrays: PBS Pro `-J 0-N%P` (PBS_ARRAY_INDEX; the `%P` limit needs PBS Pro
  2020.1 / OpenPBS 20), Torque `-t 0-N%P` (PBS_ARRAYID), both counted from 0
  as rendered.  PBS Pro refuses a one-element range, so a wave of one element
  is a plain job (element 0 of it is the job itself).
- Ids: qsub prints `1234.server`, `1234[].server` for an array; an element is
  PBS's own `1234[5].server`: the id in the store, the key of `states()`,
  `$PBS_JOBID` inside the job, and the name of its log `<dir>/1234[5].server.log`
  (the job script sends its output there; PBS's `-o` path cannot name a file
  after the job id, so `-o` names the directory, where PBS leaves its own
  `<name>.o<seq>` file with the server's messages, such as walltime kills).
- Dependencies: `-W depend=afterany:ID:ID`.  Only whole arrays are waited for
  (PBS Pro refuses dependencies on subjobs); Torque needs `afteranyarray:` for
  an array id.
- Resources: PBS Pro `-l select=1:ncpus=N:mem=M` (chunk-level extra options
  join the chunk), Torque `-l nodes=1:ppn=N` and `-l mem=M`; `-l walltime=`,
  `-q` (partition/queue, native key `queue`), `-A` (account).  Any other
  option is a resource request `-l key=value`; a one-letter option is the
  qsub flag of that letter (`m="abe"` -> `-m abe`).
- States: one `qstat -f -t [-x] ID ...` per pass (PBS Pro's `-x` adds the
  finished jobs of the job history; Torque's `-x` means XML, and Torque keeps
  finished jobs as `C` for `keep_completed` seconds).  qstat answers for the
  ids it knows and complains about the others on stderr.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ValidationError
from ._common import (
    BatchExecutor,
    aggregate,
    array_range,
    directives,
    exports,
    memory,
    option_key,
    run_scheduler,
    seconds,
)
from ._common import directive_value as _value
from .base import JobResources, JobState, JobStatus, SchedulerError

__all__ = ["FLAVORS", "PBSExecutor", "parse_qstat_full"]

FLAVORS = ("pro", "torque")

_ID = re.compile(r"^(?P<seq>\d+)(?:\[(?P<index>\d*)\])?(?P<server>\.[A-Za-z0-9_.\-]+)?$")
_ATTRIBUTE = re.compile(r"^\s+(?P<key>\S+) =(?: (?P<value>.*))?$")

# job_state letters of jobs that will still run, with what they mean
_LIVE: Mapping[str, tuple[JobState, str]] = {
    "Q": (JobState.PENDING, "queued"),
    "H": (JobState.PENDING, "held"),
    "W": (JobState.PENDING, "waiting for its start time"),
    "T": (JobState.PENDING, "being moved"),
    "M": (JobState.PENDING, "moved to another server"),
    "R": (JobState.RUNNING, "running"),
    "E": (JobState.RUNNING, "exiting"),
    "B": (JobState.RUNNING, "array begun"),
    "S": (JobState.RUNNING, "suspended"),
    "U": (JobState.RUNNING, "suspended: workstation busy"),
}
# F: finished (PBS Pro history); X: finished subjob (PBS Pro); C: completed (Torque)
_FINAL = frozenset({"F", "X", "C"})

# the server's own exit statuses (negative), by flavour: name and what they mean for reflow
# (the first four are the same in both)
_BOTH_CODES: Mapping[int, tuple[str, JobState]] = {
    -1: ("JOB_EXEC_FAIL1: the job could not start", JobState.FAILED),
    -2: ("JOB_EXEC_FAIL2: the job could not start", JobState.FAILED),
    -3: ("JOB_EXEC_RETRY: the job could not start", JobState.FAILED),
    -4: ("JOB_EXEC_INITABT: the job was aborted at start", JobState.FAILED),
}
_PRO_CODES: Mapping[int, tuple[str, JobState]] = {
    **_BOTH_CODES,
    -10: ("JOB_EXEC_FAILUID: invalid user", JobState.FAILED),
    -11: ("JOB_EXEC_RERUN: the job was requeued", JobState.NODE_FAIL),
    -14: ("JOB_EXEC_RERUN_ON_SIS_FAIL: a sister node failed", JobState.NODE_FAIL),
    -20: ("JOB_EXEC_RERUN_MS_FAIL: the mother superior failed", JobState.NODE_FAIL),
    -24: ("JOB_EXEC_KILL_NCPUS_BURST: killed for using too many CPUs", JobState.FAILED),
    -25: ("JOB_EXEC_KILL_NCPUS_SUM: killed for using too many CPUs", JobState.FAILED),
    -26: ("JOB_EXEC_KILL_VMEM: killed over its vmem limit", JobState.OUT_OF_MEMORY),
    -27: ("JOB_EXEC_KILL_MEM: killed over its mem limit", JobState.OUT_OF_MEMORY),
    -28: ("JOB_EXEC_KILL_CPUT: killed over its CPU time limit", JobState.TIMEOUT),
    -29: ("JOB_EXEC_KILL_WALLTIME: killed over its walltime", JobState.TIMEOUT),
}
_TORQUE_CODES: Mapping[int, tuple[str, JobState]] = {
    **_BOTH_CODES,
    -8: ("JOB_EXEC_CMDFAIL: the job's command failed to start", JobState.FAILED),
    -9: ("JOB_EXEC_STDOUTFAIL: the job's output file could not be created", JobState.FAILED),
    -10: ("JOB_EXEC_OVERLIMIT_MEM: killed over its memory limit", JobState.OUT_OF_MEMORY),
    -11: ("JOB_EXEC_OVERLIMIT_WT: killed over its walltime", JobState.TIMEOUT),
    -12: ("JOB_EXEC_OVERLIMIT_CPUT: killed over its CPU time limit", JobState.TIMEOUT),
}
# PBS Pro resources that belong to the whole job, not to a select chunk
_JOB_WIDE = frozenset(
    {"place", "software", "cput", "pcput", "file", "min_walltime", "max_walltime"}
)
# qstat's complaints about ids it does not know (or no longer shows): not errors for states()
_GONE = re.compile(r"Unknown Job Id|Job has finished|does not exist", re.IGNORECASE)


def parse_qstat_full(text: str) -> dict[str, dict[str, str]]:
    """`qstat -f` output as {job id: {attribute: value}} (wrapped values joined again)."""
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    last = ""
    for raw in text.splitlines():
        if raw.startswith("Job Id:"):
            current = jobs.setdefault(raw.split(":", 1)[1].strip(), {})
            last = ""
            continue
        if current is None or not raw.strip():
            continue
        if raw.startswith("\t") and last:  # a long value goes on after a newline and a tab
            current[last] += raw[1:]
            continue
        found = _ATTRIBUTE.match(raw)
        if found:
            last = found["key"]
            current[last] = found["value"] or ""
    return jobs


def _split_id(job_id: str) -> tuple[str, str | None, str]:
    """`1234[5].srv` -> ("1234", "5", ".srv"); `1234[].srv` -> index ""; `1234.srv` -> None."""
    found = _ID.match(job_id.strip())
    if not found:
        return job_id, None, ""
    return found["seq"], found["index"], found["server"] or ""


def _walltime(text: str | None) -> int | None:
    if not text:
        return None
    try:
        parts = [int(p) for p in text.strip().split(":")]
    except ValueError:
        return None
    total = 0
    for p in parts:
        total = total * 60 + p
    return total


def _mem(mem: str) -> str:
    """A PBS size: 4gb, 500mb."""
    return f"{memory(mem)}b".lower()


def _walltime_text(time: str) -> str:
    """A time limit as PBS's walltime, HH:MM:SS (hours past 24 as they are)."""
    total = seconds(time)
    return f"{total // 3600:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


class PBSExecutor(BatchExecutor):
    """Submits to PBS Pro / OpenPBS (`-J`) or Torque (`-t`) with qsub; states from one qstat."""

    name = "pbs"
    mode = "qsub-pbs"
    commands = ("qsub", "qstat", "qdel")
    index_base = 0
    queue_key = "queue"
    name_limit = 236
    submit_tool, submit_what = "qsub", "submit to PBS"

    def __init__(
        self,
        *,
        qsub: str | None = None,
        qstat: str | None = None,
        qdel: str | None = None,
        flavor: str | None = None,
        max_array_size: int | None = None,
    ) -> None:
        if flavor is not None and flavor not in FLAVORS:
            raise ValidationError(f"PBSExecutor(flavor={flavor!r}): use 'pro' or 'torque'")
        self.qsub = qsub or "qsub"
        self.qstat = qstat or "qstat"
        self.qdel = qdel or "qdel"
        self._flavor = flavor
        self._max_array = max_array_size
        self.calls: dict[str, int] = {"qsub": 0, "qstat": 0, "qdel": 0}

    # ------------------------------------------------------------------ flavour

    @property
    def flavor(self) -> str:
        """The flavour, "pro" (PBS Pro / OpenPBS) or "torque": given, or from `qstat --version`."""
        if self._flavor is None:
            proc = run_scheduler([self.qstat, "--version"], what="ask qstat which PBS it is")
            text = proc.stdout + proc.stderr
            if re.search(r"pbs_version\s*=", text):
                self._flavor = "pro"
            elif re.search(r"^\s*Version:\s*\S", text, re.MULTILINE):
                self._flavor = "torque"
            else:
                shown = text.strip().splitlines()[:1] or ["nothing"]
                raise SchedulerError(
                    f"cannot tell PBS Pro from Torque: '{self.qstat} --version' printed "
                    f"{shown[0]!r}; give PBSExecutor(flavor='pro') or flavor='torque'"
                )
        return self._flavor

    def settings(self) -> dict[str, Any]:
        found: dict[str, Any] = {"flavor": self.flavor}
        if self._max_array is not None:
            found["max_array_size"] = self._max_array
        return found

    def max_array_size(self) -> int | None:
        return self._max_array

    # ------------------------------------------------------------------ ids and logs

    def element_id(self, job_id: str, element: int) -> str:
        seq, index, server = _split_id(job_id)
        if index != "":  # a one-element wave runs as a plain job: its element 0 is the job
            return job_id
        return f"{seq}[{element}]{server}"

    def job_of(self, job_id: str) -> str:
        seq, index, server = _split_id(job_id)
        return job_id if index is None else f"{seq}[]{server}"

    def log_pattern(self, directory: str, array: bool) -> str:
        # %j: the job's (or subjob's) own id, $PBS_JOBID in the job
        return f"{directory}/%j.log"

    # ------------------------------------------------------------------ job scripts

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        """The qsub script: `#PBS` directives, then the command, every word quoted."""
        r = resources
        pro = self.flavor == "pro"
        letters: list[str] = []  # one-letter options: qsub flags
        chunk: list[str] = []  # PBS Pro: the select chunk; Torque: the nodes spec
        wide: list[str] = []  # -l key=value
        for key, value in sorted(r.extra.items()):
            if value is None or value is False:
                continue
            option_key(key)
            if len(key) == 1:
                letters.append(f"-{key}" + ("" if value is True else " " + _value(key, value)))
                continue
            item = f"{key}={self._resource(key, value)}"
            if (pro and key not in _JOB_WIDE) or (not pro and key == "gpus"):
                chunk.append(item)
            else:
                wide.append(item)
        lines = [
            "#!/bin/bash",
            *directives(
                "#PBS",
                [
                    f"-N {self.job_name(r.name, r.token)}",
                    "-S /bin/bash",
                    "-V",
                    r.time and f"-l walltime={_walltime_text(r.time)}",
                    *self._size(r, chunk),
                    r.partition and f"-q {_value('queue', r.partition)}",
                    r.account and f"-A {_value('account', r.account)}",
                    # PBS Pro refuses a one-element range: such a wave is a plain job
                    (r.array_size or 0) > 1 and f"{'-J' if pro else '-t'} {array_range(r)}",
                    *self._output_directives(r),
                    r.dependencies and f"-W depend={self._depend(r.dependencies)}",
                    *(f"-l {item}" for item in wide),
                    *letters,
                ],
            ),
        ]
        lines.append("")
        if r.stdout:
            out = self._job_path(r.stdout)
            if r.stderr == r.stdout or not r.stderr:
                lines.append(f"exec >>{out} 2>&1")
            else:
                lines.append(f"exec >>{out} 2>>{self._job_path(r.stderr)}")
        if r.workdir:
            lines.append("cd " + shlex.quote(r.workdir))
        lines += [*exports(r.env), "exec " + shlex.join(command)]
        return "\n".join(lines) + "\n"

    def _size(self, r: JobResources, chunk: Sequence[str]) -> list[str]:
        """CPUs and memory: PBS Pro's select chunk, Torque's nodes spec and mem."""
        if self.flavor == "pro":
            select = ["1"]
            if r.cpus:
                select.append(f"ncpus={int(r.cpus)}")
            if r.mem:
                select.append(f"mem={_mem(r.mem)}")
            return ["-l select=" + ":".join([*select, *chunk])] if len(select) > 1 or chunk else []
        nodes = ":".join([f"nodes=1:ppn={int(r.cpus or 1)}", *chunk])
        return [f"-l {nodes}" if r.cpus or chunk else "", f"-l mem={_mem(r.mem)}" if r.mem else ""]

    @staticmethod
    def _resource(key: str, value: Any) -> str:
        text = "true" if value is True else str(value)
        if not text or re.search(r"[\s,:=\"'#]", text):
            raise ValidationError(
                f"scheduler option {key}={text!r} cannot be a PBS resource request "
                f"(-l {key}=...): use a value without spaces, commas, colons or quotes"
            )
        return text

    @staticmethod
    def _pbs_path(key: str, path: str) -> str:
        if ":" in path:
            raise ValidationError(
                f"PBS reads '{path}' as host:path ({key}); use a run directory without ':'"
            )
        return _value(key, path)

    def _output_directives(self, r: JobResources) -> list[str]:
        """`-o`/`-e`: the log directory (PBS writes its own file there), or a fixed file."""
        lines: list[str] = []
        for flag, path in (("-o", r.stdout), ("-e", r.stderr)):
            if not path:
                continue
            if flag == "-e" and path == r.stdout:
                lines.insert(0, "-j oe")
                continue
            target = path.rsplit("/", 1)[0] + "/" if "%j" in path else path
            lines.append(f"{flag} {self._pbs_path('output', target)}")
        return lines

    @staticmethod
    def _job_path(pattern: str) -> str:
        """A log pattern as a shell word: `%j` becomes the job's own id."""
        parts = pattern.split("%j")
        return '"${PBS_JOBID}"'.join(shlex.quote(p) if p else "" for p in parts)

    def _depend(self, dependencies: Sequence[str]) -> str:
        ids: list[str] = []
        for dep in dependencies:
            for one in dep.split(","):
                job = self.job_of(one.strip())  # whole arrays: PBS cannot wait for a subjob
                if job and job not in ids:
                    if not _ID.match(job):
                        raise ValidationError(f"{job!r} is not a PBS job id")
                    ids.append(job)
        if self.flavor == "pro":
            return "afterany:" + ":".join(ids)
        plain = [i for i in ids if "[]" not in i]
        arrays = [i for i in ids if "[]" in i]
        kinds = []
        if plain:
            kinds.append("afterany:" + ":".join(plain))
        if arrays:
            kinds.append("afteranyarray:" + ":".join(arrays))
        return ",".join(kinds)

    # ------------------------------------------------------------------ scheduler calls

    def submit_argv(self) -> list[str]:
        return [self.qsub]

    def job_id(self, proc: subprocess.CompletedProcess[str]) -> str:
        lines = proc.stdout.strip().splitlines()
        job = lines[-1].strip() if lines else ""
        if not _ID.match(job):
            raise self.answered(proc)
        return job

    def cancel(self, job_ids: Sequence[str]) -> None:
        ids = [j for j in dict.fromkeys(job_ids) if j]
        if not ids:
            return
        self.calls["qdel"] += 1
        # qdel stops at nothing but reports finished or unknown ids: make sure each went
        self.cancel_all([self.qdel], ids, "cancel PBS jobs")

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        asked = [j for j in dict.fromkeys(job_ids) if j]
        if not asked:
            return {}
        argv = [self.qstat, "-f", "-t"]
        if self.flavor == "pro":
            argv.append("-x")  # finished jobs too, from the job history
        self.calls["qstat"] += 1
        proc = run_scheduler([*argv, *asked], what="ask PBS for job states")
        jobs = parse_qstat_full(proc.stdout)
        self.query_failed(proc, jobs, "ask PBS for job states", lambda ln: bool(_GONE.search(ln)))
        return self.parse_states(asked, jobs)

    def find_named(self, names: Sequence[str], since: float) -> dict[str, str | None] | None:
        """One `qstat -f -x` of every job, finished ones from the history (PBS Pro only:
        Torque forgets a finished job after `keep_completed`, so it cannot prove one
        never was)."""
        if self.flavor != "pro":
            return None
        self.calls["qstat"] += 1
        proc = run_scheduler([self.qstat, "-f", "-x"], what="list PBS jobs")
        if proc.returncode != 0:
            return {}  # cannot tell now
        by_name = {a.get("Job_Name", ""): job for job, a in parse_qstat_full(proc.stdout).items()}
        return {name: by_name.get(name) for name in names}

    def parse_states(
        self, asked: Sequence[str], jobs: Mapping[str, Mapping[str, str]]
    ) -> dict[str, JobStatus]:
        """The states of `asked` (and of their elements) from parsed `qstat -f` output.

        qstat may name the server differently than qsub did (short or full
        host name): jobs are matched by their sequence number.
        """
        by_seq: dict[str, str] = {}  # sequence number -> the id asked for (its spelling)
        for job in asked:
            seq, _, _ = _split_id(job)
            by_seq.setdefault(seq, self.job_of(job))
        found: dict[str, JobStatus] = {}
        elements: dict[str, list[JobStatus]] = {}
        for shown, attrs in jobs.items():
            seq, index, _ = _split_id(shown)
            base = by_seq.get(seq)
            if base is None:
                continue
            status = self._status(attrs)
            if index:  # a subjob
                key = self.element_id(base, int(index))
                elements.setdefault(base, []).append(status)
            else:
                key = base
            found[key] = status
        for base, statuses in elements.items():
            # an array's state is its subjobs' (Torque's -t shows no line for the array)
            found[base] = aggregate(statuses)
        wanted = set(asked) | {self.job_of(j) for j in asked}
        return {k: v for k, v in found.items() if k in wanted or self.job_of(k) in wanted}

    def _status(self, attrs: Mapping[str, str]) -> JobStatus:
        letter = attrs.get("job_state", "").strip()
        if letter not in _FINAL:
            state, word = _LIVE.get(letter, (JobState.UNKNOWN, "an unknown state"))
            return JobStatus(state, f"{letter} ({word})" if letter else word)
        text = (attrs.get("Exit_status") or attrs.get("exit_status") or "").strip()
        if not re.fullmatch(r"-?\d+", text):
            return JobStatus(JobState.CANCELLED, f"{letter} (deleted before it ran)")
        code = int(text)
        if attrs.get("substate", "").strip() == "91":  # PBS Pro: terminated by qdel
            return JobStatus(JobState.CANCELLED, f"{letter} (deleted, Exit_status {code})", text)
        if code == 0:
            return JobStatus(JobState.COMPLETED, letter, "0")
        if code < 0:
            table = _PRO_CODES if self.flavor == "pro" else _TORQUE_CODES
            what, state = table.get(code, (f"PBS could not run the job ({code})", JobState.FAILED))
            return JobStatus(state, f"{letter} ({what})", text)
        if code >= 256:  # the job's top process was killed by signal code - 256
            number = code - 256 if code - 256 < 128 else code % 256
            used = _walltime(attrs.get("resources_used.walltime"))
            limit = _walltime(attrs.get("Resource_List.walltime"))
            if used is not None and limit is not None and used >= limit:
                return JobStatus(
                    JobState.TIMEOUT,
                    f"{letter} (Exit_status {code}, after its walltime "
                    f"{attrs.get('Resource_List.walltime')})",
                    f"0:{number}",
                )
            return JobStatus(JobState.FAILED, f"{letter} (Exit_status {code})", f"0:{number}")
        return JobStatus(JobState.FAILED, letter, text)
