"""Helpers the PBS, LSF and Flux executors share: units, directive values, dependency retries."""

from __future__ import annotations

import re
import signal
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ValidationError
from .base import JobState, JobStatus, SchedulerError

__all__ = [
    "aggregate",
    "directive_value",
    "job_name",
    "memory",
    "option_key",
    "run_scheduler",
    "seconds",
    "signal_name",
    "time_text",
    "without_gone",
]

_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:=+/@%\-\[\]]*$")
_NAME = re.compile(r"[^A-Za-z0-9_.\-]")
_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_TIME = re.compile(r"(?:(?P<d>[0-9]+)-)?(?P<h>[0-9]+):(?P<m>[0-9]{1,2}):(?P<s>[0-9]{1,2})")
_MEM = re.compile(r"(?P<n>[0-9]+)\s*(?:(?P<unit>[KMGT])B?)?", re.IGNORECASE)


def seconds(time: str) -> int:
    """`HH:MM:SS` or `D-HH:MM:SS` in seconds."""
    found = _TIME.fullmatch(time.strip())
    if found is None:
        raise ValidationError(f"time={time!r} is not a time limit: use 'HH:MM:SS' or 'D-HH:MM:SS'")
    days = int(found["d"] or 0)
    return ((days * 24 + int(found["h"])) * 60 + int(found["m"])) * 60 + int(found["s"])


def time_text(total: int) -> str:
    """`total` seconds as `HH:MM:SS`, or `D-HH:MM:SS` from a day on."""
    days, rest = divmod(int(total), 86400)
    clock = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}-{clock}" if days else clock


def memory(mem: str) -> tuple[int, str]:
    """`4G`, `500M`, `1T`, `512K` (a plain number is MB) as (number, unit letter)."""
    found = _MEM.fullmatch(str(mem).strip())
    if found is None or int(found["n"]) == 0:
        raise ValidationError(f"mem={mem!r} is not a memory size: use e.g. '500M' or '4G'")
    return int(found["n"]), (found["unit"] or "M").upper()


def directive_value(key: str, value: Any) -> str:
    """A value for a directive line, double-quoted when it has anything but plain characters."""
    text = str(value)
    if "\n" in text or "\r" in text or '"' in text:
        raise ValidationError(
            f"scheduler option {key}={text!r} contains a newline or a double quote: remove it"
        )
    return f'"{text}"' if not _SAFE_VALUE.match(text) else text


def option_key(key: str) -> str:
    """`key` if it can name a scheduler option (letters, digits, underscores)."""
    if not _KEY.match(key):
        raise ValidationError(f"scheduler option name {key!r} is not valid")
    return key


def job_name(name: str, limit: int) -> str:
    """A job name every scheduler takes: letters, digits, `_.-`, starting with a letter."""
    text = _NAME.sub("_", name) or "reflow"
    if not text[0].isalpha():
        text = "r" + text
    return text[:limit]


def signal_name(number: int) -> str:
    """`SIGKILL` for 9."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def run_scheduler(
    argv: Sequence[str], *, what: str, stdin: str | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command (an argv, never a shell string); a missing command is an error."""
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            cwd=cwd,
        )
    except FileNotFoundError:
        raise SchedulerError(
            f"cannot {what}: '{argv[0]}' was not found; install the scheduler's client or set "
            "its path in the config ([executor]) or a REFLOW_* variable"
        ) from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(f"cannot {what}: {argv[0]} did not answer in 120 s") from None
    except OSError as exc:  # not executable, ...
        raise SchedulerError(f"cannot {what}: cannot run '{argv[0]}': {exc}") from None


def without_gone(
    dependencies: Sequence[str], states: Callable[[Sequence[str]], dict[str, JobStatus]]
) -> list[str] | None:
    """The dependencies the scheduler still knows and that have not ended, or None if all stay.

    Schedulers refuse a dependency on a job they have forgotten (PBS, LSF and
    Flux forget finished jobs after a while); such a job has long ended, so a
    submission refused for it is repeated without it.
    """
    if not dependencies:
        return None
    found = states(dependencies)
    keep = [d for d in dependencies if d in found and not found[d].state.final]
    return keep if len(keep) < len(dependencies) else None


def aggregate(statuses: Sequence[JobStatus]) -> JobStatus:
    """An array's state from its elements' states (when the scheduler shows only elements)."""
    live = [s for s in statuses if not s.state.final]
    if live:
        running = any(s.state is JobState.RUNNING for s in live)
        return JobStatus(JobState.RUNNING if running else JobState.PENDING, "array")
    if all(s.state is JobState.COMPLETED for s in statuses):
        return JobStatus(JobState.COMPLETED, "array")
    return JobStatus(JobState.FAILED, "array: some elements did not complete")
