"""Files between the dispatcher and the workers of a run.

- A *wave file* holds the instances one job runs: a header with the values
  every element shares, then one line per element, plus an offsets file so
  element k is found with one seek (a 100,000-element array never has each
  element parse the whole file).
- A *result file* is what one worker writes for its instance, atomically
  (temporary name, fsync, rename), under `<run_dir>/results/<run_id>/`.

Both are typed JSON through the one codec; nothing is pickled.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import codec
from .errors import ReflowError
from .worker import Outcome, Work

__all__ = [
    "RESULT_FORMAT",
    "WaveElement",
    "read_element",
    "read_results",
    "result_path",
    "write_result",
    "write_wave",
]

RESULT_FORMAT = 1
WAVE_FORMAT = 1
_SAFE = str.maketrans({"/": "_", "\\": "_", "\0": "_"})


class ResultFileError(ReflowError):
    """A wave or result file is missing, malformed, or of an unknown format."""


def _name(text: str) -> str:
    """A path component that cannot escape its folder."""
    cleaned = text.translate(_SAFE)
    return "_" + cleaned if cleaned in ("", ".", "..") else cleaned


def run_files(run_dir: Path, run_id: str, kind: str) -> Path:
    """`<run_dir>/<kind>/<run_id>`: where a run keeps one kind of file."""
    return run_dir / kind / _name(run_id)


def result_path(run_dir: Path, run_id: str, task: str, index: int, attempt: int) -> Path:
    """Where the worker of (task, index, attempt) writes its result."""
    element = "single" if index < 0 else str(index)
    return run_files(run_dir, run_id, "results") / _name(task) / f"{element}.{attempt}.json"


def log_paths(run_dir: Path, task: str, index: int) -> tuple[Path, Path]:
    """`<run_dir>/logs/<task>/<index>.out` and `.err` of one instance."""
    element = "single" if index < 0 else str(index)
    base = run_dir / "logs" / _name(task)
    return base / f"{element}.out", base / f"{element}.err"


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ---------------------------------------------------------------------- results


def write_result(run_dir: Path, run_id: str, outcome: Outcome, job_id: str | None) -> Path:
    """Write one instance's result file atomically and return its path."""
    doc = {
        "format": RESULT_FORMAT,
        "run_id": run_id,
        "task": outcome.task,
        "index": outcome.index,
        "attempt": outcome.attempt,
        "ok": outcome.ok,
        "output": outcome.output,
        "output_hash": outcome.output_hash,
        "error": outcome.error,
        "started": outcome.started,
        "finished": outcome.finished,
        "host": socket.gethostname(),
        "job_id": job_id,
    }
    if outcome.identity is not None:
        doc.update(identity=outcome.identity, parts=outcome.parts)
    if outcome.cached_from is not None:
        doc["cached_from"] = outcome.cached_from
    if outcome.skipped:
        doc["skipped"] = True
    path = result_path(run_dir, run_id, outcome.task, outcome.index, outcome.attempt)
    _atomic_write(path, json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    return path


def _outcome(doc: Mapping[str, Any], path: Path) -> Outcome:
    if doc.get("format") != RESULT_FORMAT:
        raise ResultFileError(f"{path}: unknown result format {doc.get('format')!r}")
    ok = doc.get("ok")
    output = doc.get("output")
    ohash = doc.get("output_hash")
    if not isinstance(ok, bool) or not isinstance(doc.get("task"), str):
        raise ResultFileError(f"{path}: malformed result")
    cached_from = doc.get("cached_from")
    if cached_from is not None and (not isinstance(cached_from, int) or not ok):
        raise ResultFileError(f"{path}: malformed cache reference")
    if ok and cached_from is None:
        if not isinstance(output, str) or not isinstance(ohash, str):
            raise ResultFileError(f"{path}: a successful result without its output")
        if codec.hash_text(output) != ohash:
            raise ResultFileError(f"{path}: the output does not match its hash")
    identity, parts = doc.get("identity"), doc.get("parts")
    if identity is not None and (not isinstance(identity, str) or not isinstance(parts, str)):
        raise ResultFileError(f"{path}: malformed identity")
    return Outcome(
        task=doc["task"],
        index=int(doc["index"]),
        attempt=int(doc["attempt"]),
        ok=ok,
        output=output if ok and cached_from is None else None,
        output_hash=ohash if ok else None,
        error=None if ok else str(doc.get("error") or "the task failed without a message"),
        started=float(doc.get("started") or time.time()),
        finished=float(doc.get("finished") or time.time()),
        identity=identity,
        parts=parts,
        cached_from=cached_from,
        skipped=bool(doc.get("skipped")),
    )


def read_results(run_dir: Path, run_id: str) -> Iterator[tuple[Path, Outcome | str]]:
    """Every result file of the run: (path, outcome) or (path, why it cannot be read)."""
    base = run_files(run_dir, run_id, "results")
    if not base.is_dir():
        return
    for task_dir in sorted(base.iterdir()):
        if not task_dir.is_dir():
            continue
        for path in sorted(task_dir.iterdir()):
            if path.name.startswith(".") or not path.name.endswith(".json"):
                continue  # a temporary file still being written
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
                if not isinstance(doc, dict) or doc.get("run_id") != run_id:
                    raise ResultFileError(f"{path}: not a result of run {run_id}")
                yield path, _outcome(doc, path)
            except (OSError, ValueError, KeyError, TypeError, ReflowError) as exc:
                yield path, f"unreadable result file {path}: {exc}"


# ---------------------------------------------------------------------- waves


@dataclass(frozen=True)
class WaveElement:
    """One element of a wave file, decoded: the Work to run."""

    run_id: str
    work: Work
    deferred: dict[str, Any] | None = None  # how an instance submitted ahead finds its inputs


def write_wave(
    path: Path, run_id: str, works: Sequence[Work], deferred: Mapping[str, Any] | None = None
) -> None:
    """Write the instances of one job; arguments equal for all elements are stored once.

    `deferred` marks instances submitted ahead of their inputs: it says where
    the worker finds the upstream outputs (see resolve.py).
    """
    if not works:
        raise ValueError("a wave needs at least one instance")
    first = works[0].kwargs
    shared_keys = [
        k for k in first if all(w.kwargs.get(k, _MISSING) is first[k] for w in works[1:])
    ]
    header = {
        "format": WAVE_FORMAT,
        "run_id": run_id,
        "task": works[0].task,
        "count": len(works),
        "shared": codec.encode({k: first[k] for k in shared_keys}),
    }
    if deferred is not None:
        header["deferred"] = dict(deferred)
    lines = [json.dumps(header, ensure_ascii=False)]
    for w in works:
        own = {k: v for k, v in w.kwargs.items() if k not in shared_keys}
        lines.append(
            json.dumps(
                {"index": w.index, "attempt": w.attempt, "kwargs": codec.encode(own)},
                ensure_ascii=False,
            )
        )
    data = bytearray()
    offsets = array("Q")
    for line in lines:
        offsets.append(len(data))
        data += line.encode("utf-8") + b"\n"
    offsets.append(len(data))
    _atomic_write(path.with_suffix(".idx"), offsets.tobytes())
    _atomic_write(path, bytes(data))


_MISSING = object()


def _line(fh: Any, offsets: array[int], k: int) -> dict[str, Any]:
    fh.seek(offsets[k])
    doc = json.loads(fh.read(offsets[k + 1] - offsets[k]))
    if not isinstance(doc, dict):
        raise ValueError("a wave line is not an object")
    return doc


def read_element(path: Path, element: int) -> WaveElement:
    """Element `element` (0-based) of a wave file."""
    try:
        offsets = array("Q")
        offsets.frombytes(path.with_suffix(".idx").read_bytes())
        with open(path, "rb") as fh:
            header = _line(fh, offsets, 0)
            if header.get("format") != WAVE_FORMAT:
                raise ResultFileError(f"{path}: unknown wave format {header.get('format')!r}")
            count = int(header["count"])
            if not 0 <= element < count:
                raise ResultFileError(f"{path}: element {element} is not in 0..{count - 1}")
            line = _line(fh, offsets, element + 1)
        kwargs = codec.decode(header["shared"])
        own = codec.decode(line["kwargs"])
        if not isinstance(kwargs, dict) or not isinstance(own, dict):
            raise ResultFileError(f"{path}: malformed arguments")
        kwargs.update(own)
        work = Work(str(header["task"]), int(line["index"]), int(line["attempt"]), kwargs)
        deferred = header.get("deferred")
        return WaveElement(
            str(header["run_id"]), work, deferred if isinstance(deferred, dict) else None
        )
    except (OSError, ValueError, KeyError, IndexError) as exc:
        raise ResultFileError(f"cannot read wave file {path}: {exc}") from None
