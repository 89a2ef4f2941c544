"""The submission journal: every job a dispatcher pass submits, written down before it is.

Before a pass calls the scheduler it writes an entry (fsync'd, in the run's
work folder) naming a fresh token and the instances the job will carry; the
job's name carries the token; once the store records the job's id the entry
goes.  A pass killed anywhere in between leaves the entry behind, and the
next pass (or `retry`, or `status`) asks the scheduler for a job of that name:
found, it is adopted (its id recorded); provably never submitted, the entry is
dropped and its instances are submitted as usual.  So a killed pass never
makes a queued or running job be submitted again.

The submit command inherits the entry's lock (`Pending.fd`): while that
command still runs (its parent killed, or not), a later pass sees the lock
held and waits for it, instead of asking the scheduler too early.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .results import run_files

__all__ = ["Entry", "entries", "new_token", "remove", "wait_free", "writing"]

#: the folder of a run's journal, in its work folder
FOLDER = "journal"


def new_token() -> str:
    """A fresh token for one job: `rf` and ten random letters and digits (no dots)."""
    return "rf" + base64.b32encode(os.urandom(10)).decode("ascii").lower()[:10]


class Entry:
    """One job a pass was about to submit.

    `kind` is "wave" (instances of `task`: `items` are (task, index, attempt)
    in element order, `per` of them to an element of an `array` job;
    `deferred` when they were submitted ahead of their inputs; `followers`
    (task, attempt) singletons fused behind) or "dispatcher" (the chained
    pass).  `name` is the job name the token was added to, `written` when.
    """

    __slots__ = (
        "array", "deferred", "followers", "items", "kind", "name", "path", "per", "task",
        "token", "written",
    )  # fmt: skip

    def __init__(self, doc: dict[str, Any], path: Path) -> None:
        self.token = str(doc["token"])
        self.kind = str(doc["kind"])
        self.name = str(doc["name"])
        self.written = float(doc["written"])
        self.task = str(doc.get("task", ""))
        self.items = [(str(t), int(i), int(a)) for t, i, a in doc.get("items", ())]
        self.per = int(doc.get("per", 1))
        self.array = bool(doc.get("array", False))
        self.deferred = bool(doc.get("deferred", False))
        self.followers = [(str(t), int(a)) for t, a in doc.get("followers", ())]
        self.path = path


def _folder(run_dir: Path, run_id: str) -> Path:
    return run_files(run_dir, run_id, "work") / FOLDER


def _sync_dir(path: Path) -> None:
    """Make a file's creation or removal in `path` durable (where directories can be synced)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def writing(
    run_dir: Path,
    run_id: str,
    kind: str,
    name: str,
    *,
    task: str = "",
    items: Sequence[tuple[str, int, int]] = (),
    per: int = 1,
    array: bool = False,
    deferred: bool = False,
    followers: Sequence[tuple[str, int]] = (),
) -> Iterator[tuple[Entry, int]]:
    """Write an entry durably and hold its lock; yield (entry, the lock's descriptor).

    Whoever the descriptor is handed to (the submit command) holds the lock
    too, until it exits.  The entry stays until `remove`.
    """
    folder = _folder(run_dir, run_id)
    folder.mkdir(parents=True, exist_ok=True)
    doc = {
        "token": new_token(), "kind": kind, "name": name, "written": time.time(), "task": task,
        "items": [list(i) for i in items], "per": per, "array": array, "deferred": deferred,
        "followers": [list(f) for f in followers],
    }  # fmt: skip
    path = folder / f"{doc['token']}.json"
    partial = path.with_suffix(".part")
    with open(partial, "w", encoding="utf-8") as fh:
        json.dump(doc, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)
    _sync_dir(folder)
    fd = os.open(path, os.O_RDONLY)
    try:
        _lock(fd, wait=True)
        yield Entry(doc, path), fd
    finally:
        os.close(fd)


def _lock(fd: int, *, wait: bool) -> bool:
    """Take the lock on an entry; False if another process holds it (`wait=False`)."""
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except (ImportError, OSError):  # no flock here: the journal works without the wait
        pass
    return True


def entries(run_dir: Path, run_id: str, *, clean: bool = False) -> list[Entry]:
    """The run's entries still pending, oldest first.

    `clean` (only while holding the run's pass lock): remove half-written
    entries; a `.part` file was never renamed into place, so its pass never
    called the scheduler with it.
    """
    folder = _folder(run_dir, run_id)
    if not folder.is_dir():
        return []
    found: list[Entry] = []
    for path in sorted(folder.iterdir()):
        if path.suffix == ".part" and clean:
            path.unlink(missing_ok=True)
        elif path.suffix == ".json":
            try:
                found.append(Entry(json.loads(path.read_text(encoding="utf-8")), path))
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not one of ours: left alone
    return sorted(found, key=lambda e: e.written)


def wait_free(entry: Entry, timeout: float) -> bool:
    """Wait up to `timeout` s until no submit command holds the entry; False if one still does."""
    try:
        fd = os.open(entry.path, os.O_RDONLY)
    except OSError:
        return True  # removed meanwhile
    try:
        deadline = time.monotonic() + timeout
        while not _lock(fd, wait=False):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True
    finally:
        os.close(fd)


def remove(entry: Entry) -> None:
    """Drop a settled entry, durably."""
    entry.path.unlink(missing_ok=True)
    _sync_dir(entry.path.parent)
