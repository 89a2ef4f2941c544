"""Who drives a run in the foreground, and whether that process still lives.

A run driven by `run_local` or `run` records its owner (host, pid, process
start time); `status`, `retry` and `doctor` ask whether it is still there.
"""

from __future__ import annotations

import os

__all__ = ["FOREGROUND", "current_owner", "owner_alive"]

#: the executor recorded for runs driven in the foreground by run_local / `run`
FOREGROUND = "foreground"


def _process_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...); [] if none."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _process_start(pid: int) -> str:
    fields = _process_stat(pid)
    return fields[19] if len(fields) > 19 else ""


def current_owner() -> tuple[str, int, str]:
    """This process as a run owner: (host, pid, start time)."""
    import socket

    pid = os.getpid()
    return socket.gethostname(), pid, _process_start(pid)


def owner_alive(host: str | None, pid: int | None, start: str | None) -> bool:
    """Whether a recorded run owner still runs (assumed so when on another host)."""
    if pid is None:
        return False
    import socket

    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    fields = _process_stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, but its parent has not reaped it yet
        return False
    return not start or (fields[19] if len(fields) > 19 else "") == start
