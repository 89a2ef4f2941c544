"""What the scheduler executors share, written once.

- the command runner: `run_scheduler`, and `run_command` for a command that
  must succeed;
- `SchedulerExecutor`, the base of every scheduler's executor: the job-name
  rule (each scheduler's limit and lead letter are settings), the
  submit-with-retry loop (`submit_retrying`: once more without the
  dependencies the scheduler forgot), the one message of a refused
  submission, cancelling with a fallback, a failed state query;
- `BatchExecutor`, the submit path of a job script on a submit command's
  stdin: each scheduler gives only its argv and reads its job id;
- option names, directive values and lines, the lines every job script ends
  with;
- time limits and memory sizes as the executors render them: the numbers of
  `reflow.resources`, the one grammar, refused with its one message as a
  ValidationError (`seconds`, `memory`).

A scheduler module keeps what differs: its argv, its directives, how it
answers (ids, states, accounting).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import shlex
import signal
import string
import subprocess
import time
from abc import abstractmethod
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..errors import ValidationError
from ..resources import Memory, ResourceError, parse_mem, time_seconds, time_text
from .base import Executor, JobResources, JobState, JobStatus, SchedulerError

__all__ = [
    "BatchExecutor",
    "SchedulerExecutor",
    "aggregate",
    "array_range",
    "directive_value",
    "directives",
    "exports",
    "flags",
    "inheriting",
    "is_name",
    "last_words",
    "memory",
    "option_key",
    "run_command",
    "run_scheduler",
    "seconds",
    "signal_name",
    "time_text",
    "warning_seconds",
    "without_gone",
]

_PLAIN = frozenset(string.ascii_letters + string.digits + "_.,:=+/@%-[]")
_NAME_CHARS = frozenset(string.ascii_letters + string.digits + "_.-")
_LETTERS = frozenset(string.ascii_letters)


# --------------------------------------------------------------------------- resources


def seconds(time: str) -> int:
    """A task's time limit in seconds (the one grammar); ValidationError if it is not one."""
    try:
        return time_seconds(time)
    except ResourceError as exc:
        raise ValidationError(str(exc)) from None


def warning_seconds(resources: JobResources) -> int:
    """Seconds before the time limit a job asks to be warned (SIGUSR1); 0: no warning.

    The `grace` asked for, but at most half the time limit: a warning at the start
    of a job would stop every task before it began.  No limit, no warning.
    """
    if not resources.time or not resources.grace:
        return 0
    return min(int(resources.grace), seconds(resources.time) // 2)


def memory(mem: str) -> Memory:
    """A task's memory size (the one grammar); ValidationError if it is not one."""
    try:
        return parse_mem(mem)
    except ResourceError as exc:
        raise ValidationError(str(exc)) from None


# --------------------------------------------------------------------------- names and values


def is_name(text: str, dashes: bool = False) -> bool:
    """True for a letter, then letters, digits and `_` (and `-` with `dashes`)."""
    allowed = _NAME_CHARS - ({"."} if dashes else {".", "-"})
    return bool(text) and text[0] in _LETTERS and all(c in allowed for c in text)


def option_key(key: str, dashes: bool = False) -> str:
    """`key` if it can name a scheduler option (letters, digits, `_`, and `-` with `dashes`)."""
    if not is_name(key, dashes):
        raise ValidationError(f"scheduler option name {key!r} is not valid")
    return key


def directive_value(key: str, value: Any, plain: str = "") -> str:
    """A value for a directive line, double-quoted when it has anything but plain characters.

    `plain`: characters that are plain for this scheduler too (`$` for SGE).
    """
    text = str(value)
    if "\n" in text or "\r" in text or '"' in text:
        raise ValidationError(
            f"scheduler option {key}={text!r} contains a newline or a double quote: remove it"
        )
    return text if all(c in _PLAIN or c in plain for c in text) else f'"{text}"'


def directives(prefix: str, items: Iterable[object]) -> list[str]:
    """A job script's directive lines: `prefix` and each item that is given.

    Items are written `r.time and f"--time={...}"`: None, False, 0, "" and ()
    are not given and leave no line.
    """
    return [f"{prefix} {item}" for item in items if item]


def flags(
    extra: Mapping[str, Any],
    flag: Callable[[str], str],
    sep: str,
    value: Callable[[str, Any], str] = directive_value,
) -> list[str]:
    """Scheduler options as flags: `flag` for True, `flag<sep>value`; None and False left out."""
    return [
        flag(key) if given is True else f"{flag(key)}{sep}{value(key, given)}"
        for key, given in sorted(extra.items())
        if given is not None and given is not False
    ]


def array_range(resources: JobResources) -> str:
    """`0-N`, with `%P` for a parallelism limit: an array's elements counted from 0."""
    size = 1 if resources.array_size is None else resources.array_size
    spec = f"0-{size - 1}"
    return spec + (f"%{int(resources.array_parallelism)}" if resources.array_parallelism else "")


def exports(env: Mapping[str, str]) -> list[str]:
    """The `export` lines of a job script's environment."""
    return [f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())]


def signal_name(number: int) -> str:
    """`SIGKILL` for 9."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


# --------------------------------------------------------------------------- running commands

# descriptors the scheduler commands run now inherit (see `inheriting`)
_INHERITED: contextvars.ContextVar[tuple[int, ...]] = contextvars.ContextVar(
    "reflow_inherited", default=()
)


@contextlib.contextmanager
def inheriting(*fds: int) -> Iterator[None]:
    """Hand `fds` to every scheduler command run inside (the journal's lock to a submit)."""
    token = _INHERITED.set(fds)
    try:
        yield
    finally:
        _INHERITED.reset(token)


def run_scheduler(
    argv: Sequence[str],
    *,
    what: str,
    stdin: str | None = None,
    cwd: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run a scheduler command (an argv, never a shell string); a missing command is an error."""
    try:
        return subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            pass_fds=_INHERITED.get(),
        )
    except FileNotFoundError:
        raise SchedulerError(
            f"cannot {what}: '{argv[0]}' was not found; install the scheduler's client or set "
            "its path in the config ([executor]) or a REFLOW_* variable"
        ) from None
    except subprocess.TimeoutExpired:
        raise SchedulerError(
            f"cannot {what}: {argv[0]} did not answer in {timeout:.0f} s"
        ) from None
    except OSError as exc:  # not executable, ...
        raise SchedulerError(f"cannot {what}: cannot run '{argv[0]}': {exc}") from None


def last_words(
    proc: subprocess.CompletedProcess[str], noise: Collection[str] = (), silent: str = ""
) -> str:
    """The last line a failed command said (stderr, else stdout), else `silent` or its exit."""
    said = [
        line
        for line in (proc.stderr or proc.stdout).strip().splitlines()
        if line.strip() and line.strip() not in noise
    ]
    return said[-1] if said else silent or f"exit {proc.returncode}"


def run_command(argv: Sequence[str], *, what: str, timeout: float = 120) -> str:
    """Run a scheduler command that must succeed; return its stdout."""
    proc = run_scheduler(argv, what=what, timeout=timeout)
    if proc.returncode != 0:
        raise SchedulerError(
            f"cannot {what}: {argv[0]} exited with {proc.returncode}: "
            + last_words(proc, silent="no message")
        )
    return proc.stdout


# --------------------------------------------------------------------------- the executors


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


class SchedulerExecutor(Executor):
    """An executor of a batch scheduler: the rules they share; what differs, as settings."""

    #: the longest job name the scheduler takes
    name_limit: int = 200
    #: what goes before a job name that does not start with a letter ("": any start will do)
    name_lead: str = "r"
    #: the name said when the scheduler refuses a job (and the key of `calls` counting them)
    submit_tool: str = ""
    #: what a failing submission could not do ("submit to LSF")
    submit_what: str = ""
    #: repeat a submission refused for a dependency the scheduler has forgotten
    retry_gone: bool = True
    #: lines of the scheduler's refusal that are not the reason
    refusal_noise: tuple[str, ...] = ()
    calls: dict[str, int]

    #: what a scheduler says when it is busy or cannot be reached and did nothing: the
    #: command is run again after each of `backoff`'s delays
    busy_words: tuple[str, ...] = ()
    #: what it says when a command took too long: it may have been done, so only a
    #: query (never a submission) is run again
    slow_words: tuple[str, ...] = ()
    #: seconds to wait before each repeat of a busy command
    backoff: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)

    def job_name(self, name: str, token: str | None = None) -> str:
        """A job name the scheduler takes: letters, digits and `_.-` (others become `_`).

        With a `name_lead`, a name that does not start with a letter gets it in
        front (an empty name is `reflow`); then it is cut to `name_limit`.  A
        journal `token` is kept whole at the end (`<name>.<token>`).
        """
        text = "".join(c if c in _NAME_CHARS else "_" for c in name)
        if self.name_lead:
            text = text or "reflow"
            if text[0] not in _LETTERS:
                text = self.name_lead + text
        if token:
            return f"{text[: self.name_limit - len(token) - 1]}.{token}"
        return text[: self.name_limit]

    def find_submitted(
        self, jobs: Sequence[tuple[str, str, float]]
    ) -> dict[str, str | None] | None:
        """By the names the tokens are in (`find_named`, each scheduler's own query)."""
        names = {self.job_name(name, token): token for name, token, _ in jobs}
        if not names:
            return {}
        found = self.find_named(list(names), min(w for *_, w in jobs))
        if found is None:
            return None
        return {names[name]: job for name, job in found.items()}

    def find_named(self, names: Sequence[str], since: float) -> dict[str, str | None] | None:
        """Job name -> the job's id, None if the scheduler never had it (left out: it
        cannot tell now), for jobs submitted after `since`; None: it cannot be asked."""
        return None

    def patiently(
        self, run: Callable[[], subprocess.CompletedProcess[str]], *, query: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command, again after each `backoff` delay while it answers busy.

        `query=False` (a submission) repeats only answers that prove nothing
        was done (`busy_words`), never a slow one that may have been.
        """
        words = self.busy_words + (self.slow_words if query else ())
        proc = run()
        for delay in self.backoff:
            said = (proc.stderr + proc.stdout).lower()
            if proc.returncode == 0 or not any(w in said for w in words):
                break
            time.sleep(delay)
            proc = run()
        return proc

    def ask(self, query: Callable[[], str]) -> str:
        """Run a query (`query` returns its output or raises SchedulerError), again while
        the scheduler answers busy or slow, after each of `backoff`'s delays."""
        words = self.busy_words + self.slow_words
        for delay in (*self.backoff, None):
            try:
                return query()
            except SchedulerError as exc:
                if delay is None or not any(w in str(exc).lower() for w in words):
                    raise
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def submit_retrying(
        self,
        attempt: Callable[[JobResources], subprocess.CompletedProcess[str]],
        resources: JobResources,
        ids: Callable[[Sequence[str]], list[str]] = list,
    ) -> subprocess.CompletedProcess[str]:
        """Submit with `attempt`; refused with dependencies, once more without the gone ones.

        A busy scheduler is asked again after a while (`patiently`).

        With `retry_gone`, the scheduler is asked about the dependencies (`ids`
        turns reflow's ids into its own); those it has forgotten or that have
        ended are left out of the second attempt.
        """
        proc = self.patiently(lambda: attempt(resources), query=False)
        if proc.returncode != 0 and resources.dependencies and self.retry_gone:
            keep = without_gone(ids(resources.dependencies), self.states)
            if keep is not None:
                fewer = dataclasses.replace(resources, dependencies=tuple(keep))
                proc = self.patiently(lambda: attempt(fewer), query=False)
        return proc

    def refused(self, proc: subprocess.CompletedProcess[str]) -> SchedulerError:
        """The one error of a refused submission: `sbatch refused the job: <what it said>`."""
        said = last_words(proc, self.refusal_noise)
        return SchedulerError(f"{self.submit_tool} refused the job: {said}")

    def answered(self, proc: subprocess.CompletedProcess[str]) -> SchedulerError:
        """The error for an accepted submission whose answer holds no job id."""
        return SchedulerError(f"{self.submit_tool} answered {proc.stdout.strip()!r}, not a job id")

    #: a cancel command that fails for some ids leaves the others alone: send them one by one
    cancel_alone: bool = True

    def cancel_all(self, argv: Sequence[str], ids: Sequence[str], what: str) -> None:
        """One `argv ID...`; when it fails for several ids (finished ones make some
        commands stop), each alone, unless the command went on with the rest
        (`cancel_alone = False`).  Still busy after `backoff`: a SchedulerError, since
        nothing was cancelled."""
        proc = self.patiently(lambda: run_scheduler([*argv, *ids], what=what))
        said = (proc.stderr + proc.stdout).lower()
        if proc.returncode != 0 and any(w in said for w in self.busy_words):
            raise SchedulerError(f"cannot {what}: {last_words(proc)}")
        if proc.returncode != 0 and len(ids) > 1 and self.cancel_alone:
            for job in ids:
                run_scheduler([*argv, job], what=what)

    @staticmethod
    def query_failed(
        proc: subprocess.CompletedProcess[str],
        found: object,
        what: str,
        gone: Callable[[str], bool],
    ) -> None:
        """Raise when a state query failed with nothing to show, for more than `gone` ids."""
        if proc.returncode != 0 and not found:
            errors = [line for line in proc.stderr.strip().splitlines() if not gone(line)]
            if errors:
                raise SchedulerError(f"cannot {what}: {errors[-1]}")


class BatchExecutor(SchedulerExecutor):
    """A scheduler whose jobs are scripts given to a submit command on its stdin.

    A scheduler module says how: `submit_argv`, and how to read the job id
    from what the command printed (`job_id`).
    """

    @abstractmethod
    def submit_argv(self) -> list[str]:
        """The submit command, reading the job script on its stdin."""

    @abstractmethod
    def job_id(self, proc: subprocess.CompletedProcess[str]) -> str:
        """The id in an accepted submission's answer; SchedulerError if there is none."""

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        def attempt(res: JobResources) -> subprocess.CompletedProcess[str]:
            script = self.render(command, res)
            self.calls[self.submit_tool] += 1
            return run_scheduler(self.submit_argv(), what=self.submit_what, stdin=script)

        proc = self.submit_retrying(attempt, resources)
        if proc.returncode != 0:
            raise self.refused(proc)
        return self.job_id(proc)


def aggregate(statuses: Sequence[JobStatus]) -> JobStatus:
    """An array's state from its elements' states (when the scheduler shows only elements)."""
    live = [s for s in statuses if not s.state.final]
    if live:
        running = any(s.state is JobState.RUNNING for s in live)
        return JobStatus(JobState.RUNNING if running else JobState.PENDING, "array")
    if all(s.state is JobState.COMPLETED for s in statuses):
        return JobStatus(JobState.COMPLETED, "array")
    return JobStatus(JobState.FAILED, "array: some elements did not complete")
