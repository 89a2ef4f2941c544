"""Signals as exceptions, so a task can checkpoint before its job is killed.

A job asks its scheduler for a warning signal (SIGUSR1) `grace` seconds
before its time limit; Slurm, LSF and Flux send SIGTERM before a kill.
Inside `graceful_shutdown()` each of those raises `TaskInterrupted` in the
running code, which may catch it, write a checkpoint and re-raise:

    from reflow.signals import TaskInterrupted

    @wf.job(time="1:00:00")
    def fit(data: Path) -> Path:
        state = load_checkpoint() or start()
        try:
            while not state.done:
                state.step()
        except TaskInterrupted:
            save_checkpoint(state)
            raise

The worker runs every task inside `graceful_shutdown()`; an attempt ended by
the time-limit warning is recorded with the failure kind TIMEOUT.  The names
and their meaning are reflow-hpc's (`TaskInterrupted(signal_number)`, with
`signal_number` and `signal_name`).
"""

from __future__ import annotations

import signal
from types import FrameType, TracebackType
from typing import Any

__all__ = ["WARNING_SIGNAL", "TaskInterrupted", "graceful_shutdown"]

#: the signal a scheduler sends `grace` seconds before a job's time limit
WARNING_SIGNAL = signal.SIGUSR1
_SIGNALS = (signal.SIGTERM, signal.SIGINT, WARNING_SIGNAL)


class TaskInterrupted(Exception):
    """Raised in a running task when its job is told to stop (a signal arrived).

    `signal_number` and `signal_name` say which signal: SIGUSR1 is the warning
    before the time limit; SIGTERM and SIGINT, a kill on its way.
    """

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        try:
            self.signal_name = signal.Signals(signal_number).name
        except ValueError:
            self.signal_name = f"signal {signal_number}"
        super().__init__(f"Task interrupted by {self.signal_name} (signal {signal_number})")

    @property
    def time_limit(self) -> bool:
        """True when it is the warning before the job's time limit."""
        return self.signal_number == WARNING_SIGNAL


class graceful_shutdown:  # used as a function, as reflow-hpc's is
    """Within it, SIGTERM, SIGINT and SIGUSR1 raise `TaskInterrupted`; the old handlers after.

    `interrupted` keeps the last one raised.  Outside the main thread, where
    Python cannot handle signals, it does nothing.
    """

    def __init__(self) -> None:
        self._old: list[tuple[int, Any]] = []  # the handlers to put back
        self.interrupted: TaskInterrupted | None = None

    def _raise(self, signum: int, frame: FrameType | None) -> None:
        self.interrupted = TaskInterrupted(signum)
        raise self.interrupted

    def __enter__(self) -> graceful_shutdown:
        try:
            for number in _SIGNALS:
                self._old.append((number, signal.signal(number, self._raise)))
        except ValueError:  # not the main thread: signals stay as they are
            self.__exit__(None, None, None)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._old:
            number, old = self._old.pop()
            signal.signal(number, signal.SIG_DFL if old is None else old)
