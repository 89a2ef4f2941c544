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
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import ReflowError
from .instances import Outcome, Work
from .records import FrozenRecord

if TYPE_CHECKING:
    from pathlib import Path

# A job imports this module to read its wave and write its results: it works on
# os.path strings, so a job does not import pathlib for reflow's sake (functions
# that give a caller a path give a pathlib.Path, imported when they are called).

__all__ = [
    "RESULT_FORMAT",
    "Stamp",
    "WaveElement",
    "log_files",
    "log_paths",
    "read_element",
    "read_log",
    "read_results",
    "remove_results",
    "result_path",
    "scan_results",
    "write_result",
    "write_wave",
]

RESULT_FORMAT = 1
_HOST = os.uname().nodename  # socket.gethostname(), without importing socket in every job
WAVE_FORMAT = 1
_SAFE = str.maketrans({"/": "_", "\\": "_", "\0": "_"})


class ResultFileError(ReflowError):
    """A wave or result file is missing, malformed, or of an unknown format."""


def _name(text: str) -> str:
    """A path component that cannot escape its folder."""
    cleaned = text.translate(_SAFE)
    return "_" + cleaned if cleaned in ("", ".", "..") else cleaned


def _files(run_dir: str | os.PathLike[str], run_id: str, kind: str) -> str:
    return os.path.join(run_dir, kind, _name(run_id))


def run_files(run_dir: str | os.PathLike[str], run_id: str, kind: str) -> Path:
    """`<run_dir>/<kind>/<run_id>`: where a run keeps one kind of file."""
    from pathlib import Path

    return Path(_files(run_dir, run_id, kind))


def _result_file(
    run_dir: str | os.PathLike[str], run_id: str, task: str, index: int, attempt: int
) -> str:
    element = "single" if index < 0 else str(index)
    name = f"{element}.{attempt}.json"
    return os.path.join(_files(run_dir, run_id, "results"), _name(task), name)


def result_path(
    run_dir: str | os.PathLike[str], run_id: str, task: str, index: int, attempt: int
) -> Path:
    """Where the worker of (task, index, attempt) writes its result."""
    from pathlib import Path

    return Path(_result_file(run_dir, run_id, task, index, attempt))


def log_files(
    run_dir: str | os.PathLike[str], run_id: str, task: str, index: int, attempt: int
) -> tuple[str, str]:
    """`<run_dir>/logs/<run_id>/<task>/<element>.<attempt>.out` and `.err` of one attempt.

    Each run and each attempt has files of its own: runs often share a run
    directory (the config's `run_dir`), and a retry must not mix its output
    with the attempt before.
    """
    element = "single" if index < 0 else str(index)
    base = os.path.join(_files(run_dir, run_id, "logs"), _name(task), f"{element}.{attempt}")
    return base + ".out", base + ".err"


def log_paths(
    run_dir: str | os.PathLike[str], run_id: str, task: str, index: int, attempt: int
) -> tuple[Path, Path]:
    """`log_files` as pathlib paths."""
    from pathlib import Path

    out, err = log_files(run_dir, run_id, task, index, attempt)
    return Path(out), Path(err)


def _old_log_file(run_dir: str | os.PathLike[str], task: str, index: int, err: bool) -> str:
    """Where jobs wrote an instance's log before each run and attempt had its own: all in one."""
    element = "single" if index < 0 else str(index)
    return os.path.join(run_dir, "logs", _name(task), element + (".err" if err else ".out"))


#: the line a job writes before each instance's output ("== <date> <time> <task[i]>
#: attempt <k> job <id>"); in the old layout, it is what tells attempts apart
_HEADER = r"== \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+ attempt (\d+) job \S+"


def read_log(
    run_dir: str | os.PathLike[str], run_id: str, task: str, index: int, attempt: int, err: bool
) -> str | None:
    """What one attempt wrote to its stdout (or stderr), without reflow's header lines.

    None when it left no file.  Runs recorded before logs had a file per run
    and attempt are read from the old shared file, keeping the sections whose
    header names `attempt` (those cannot be told apart by run); only for a run
    without a logs folder of its own, which every run since makes when it
    starts: in a shared run dir, an instance of a newer run that wrote nothing
    must not show an old run's output.
    """
    import re

    header = re.compile(_HEADER)
    path = log_files(run_dir, run_id, task, index, attempt)[1 if err else 0]
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as fh:
            lines = fh.read().splitlines(keepends=True)
        return "".join(line for line in lines if not header.fullmatch(line.rstrip("\r\n")))
    except FileNotFoundError:
        if os.path.isdir(_files(run_dir, run_id, "logs")):
            return None
    try:
        with open(_old_log_file(run_dir, task, index, err), encoding="utf-8", errors="replace",
                  newline="") as fh:  # fmt: skip
            lines = fh.read().splitlines(keepends=True)
    except FileNotFoundError:
        return None
    kept: list[str] = []
    found, mine = False, False
    for line in lines:
        m = header.fullmatch(line.rstrip("\r\n"))
        if m:
            mine = int(m.group(1)) == attempt
            found = found or mine
        elif mine:
            kept.append(line)
    return "".join(kept) if found else None


def _atomic_write(path: str, data: bytes) -> None:
    folder, name = os.path.split(path)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
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
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# ---------------------------------------------------------------------- results


def write_result(
    run_dir: str | os.PathLike[str], run_id: str, outcome: Outcome, job_id: str | None
) -> Path:
    """Write one instance's result file atomically and return its path."""
    from pathlib import Path

    return Path(write_result_file(run_dir, run_id, outcome, job_id))


def write_result_file(
    run_dir: str | os.PathLike[str], run_id: str, outcome: Outcome, job_id: str | None
) -> str:
    """`write_result`, returning the path as a string (what a job calls)."""
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
        "host": _HOST,
        "job_id": job_id,
    }
    if outcome.identity is not None:
        doc.update(identity=outcome.identity, parts=outcome.parts)
    if outcome.cached_from is not None:
        doc["cached_from"] = outcome.cached_from
    if outcome.skipped:
        doc["skipped"] = True
    if outcome.kind is not None:
        doc["kind"] = outcome.kind
    path = _result_file(run_dir, run_id, outcome.task, outcome.index, outcome.attempt)
    _atomic_write(path, json.dumps(doc, ensure_ascii=False).encode("utf-8"))
    return path


def _matches(text: str, ohash: str) -> bool:
    """Whether `ohash` is the codec's hash of the stored text `text`.

    That hash is SHA-256 of the text's canonical form, which is the stored
    text itself unless the value holds a dict or a set: try that first, and
    canonicalise only when it fails.  (A text that is not canonical yet
    hashes to `ohash` as it stands could only have been forged, and such a
    hash names no value, so nothing could be reused for it by mistake.)
    """
    if codec.sha256_hex(text.encode("utf-8", "surrogatepass")) == ohash:
        return True
    return codec.hash_text(text) == ohash


def _record(doc: dict[str, Any], path: str | Path) -> Outcome:
    get = doc.get
    if get("format") != RESULT_FORMAT:
        raise ResultFileError(f"{path}: unknown result format {get('format')!r}")
    ok = get("ok")
    task = get("task")
    if not isinstance(ok, bool) or not isinstance(task, str):
        raise ResultFileError(f"{path}: malformed result")
    cached_from = get("cached_from")
    if cached_from is not None and (not isinstance(cached_from, int) or not ok):
        raise ResultFileError(f"{path}: malformed cache reference")
    output = get("output")
    ohash = get("output_hash")
    if ok and cached_from is None:
        if not isinstance(output, str) or not isinstance(ohash, str):
            raise ResultFileError(f"{path}: a successful result without its output")
        if not _matches(output, ohash):
            raise ResultFileError(f"{path}: the output does not match its hash")
    identity, parts = get("identity"), get("parts")
    if identity is not None and (not isinstance(identity, str) or not isinstance(parts, str)):
        raise ResultFileError(f"{path}: malformed identity")
    return Outcome(
        task,
        int(doc["index"]),
        int(doc["attempt"]),
        ok,
        output if ok and cached_from is None else None,
        ohash if ok else None,
        None if ok else str(get("error") or "the task failed without a message"),
        float(get("started") or time.time()),
        float(get("finished") or time.time()),
        identity,
        parts,
        cached_from,
        bool(get("skipped")),
        kind=_kind(get("kind")) if not ok else None,
    )


def _kind(value: object) -> str | None:
    """A result file's failure kind, if it is one reflow knows (else None: read as ERROR)."""
    from .states import FAILURE_KINDS

    return value if isinstance(value, str) and value in FAILURE_KINDS else None


#: (inode, size, modification time in ns) of a result file when it was read
Stamp = tuple[int, int, int]


def _read_file(path: str) -> tuple[bytes, Stamp]:
    """The bytes of a file and its stamp, taken from the same open file."""
    fd = os.open(path, _READ_FLAGS)
    try:
        st = os.fstat(fd)
        # a buffer of the file's size: a fixed big one costs more than the read itself
        data = os.read(fd, st.st_size + 1)
        if len(data) != st.st_size:  # a short read, or the file changed: read to the end
            chunks = [data]
            while chunks[-1]:
                chunks.append(os.read(fd, 1 << 16))
            data = b"".join(chunks)
    finally:
        os.close(fd)
    return data, (st.st_ino, st.st_size, st.st_mtime_ns)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)
_raw_decode = json.JSONDecoder().raw_decode


def _parse(text: str) -> Any:
    """`json.loads(text)`, without its look for white space around a worker's JSON."""
    try:
        doc, end = _raw_decode(text)
        if end == len(text):
            return doc
    except ValueError:
        pass
    return json.loads(text)  # the white space, or the error worth reporting


def _stamp_of(path: str) -> Stamp | None:
    """The stamp of the file at `path` now (None: there is none)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def scan_results(
    run_dir: str | os.PathLike[str], run_id: str, skip: Mapping[str, Stamp] | None = None
) -> Iterator[tuple[str, Outcome | str, Stamp | None]]:
    """Every result file of the run, in order: (path, its record or why it cannot be read, stamp).

    The stamp says which file was read (a job running the same attempt again
    replaces it with another): see `remove_results`.  A file in `skip` that
    is still the one stamped there (or is gone) is passed over unread.
    """
    base = _files(run_dir, run_id, "results")
    try:
        with os.scandir(base) as entries:
            task_dirs = sorted(e.path for e in entries if e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for task_dir in task_dirs:
        try:
            with os.scandir(task_dir) as entries:
                # a name starting with "." is a temporary file still being written
                names = [e.name for e in entries if e.name.endswith(".json") and e.name[:1] != "."]
        except OSError:  # removed meanwhile
            continue
        # shorter names first: "<element>.<attempt>.json" in element order (while attempts
        # have one digit), the order of the store's rows, which it then updates in turn
        names.sort()
        names.sort(key=len)
        prefix = task_dir + os.sep
        for name in names:
            path = prefix + name
            if skip and path in skip:
                now = _stamp_of(path)
                if now is None or now == skip[path]:
                    continue
            stamp: Stamp | None = None
            try:
                data, stamp = _read_file(path)
                doc = _parse(data.decode("utf-8"))
                if not isinstance(doc, dict) or doc.get("run_id") != run_id:
                    raise ResultFileError(f"{path}: not a result of run {run_id}")
                yield path, _record(doc, path), stamp
            except (OSError, ValueError, KeyError, TypeError, ReflowError) as exc:
                yield path, f"unreadable result file {path}: {exc}", stamp


def read_results(
    run_dir: str | os.PathLike[str], run_id: str
) -> Iterator[tuple[Path, Outcome | str]]:
    """Every result file of the run: (path, outcome) or (path, why it cannot be read)."""
    from pathlib import Path

    for path, item, _ in scan_results(run_dir, run_id):
        yield Path(path), item


def remove_results(files: Mapping[str, Stamp]) -> int:
    """Remove result files the store has recorded; return how many went.

    A file is removed only while it is still the one that was read (same
    stamp): another job of the same attempt may have replaced it since, and
    its result has not been read yet.  Many files are removed by a few
    threads at once: an unlink mostly waits for the file system (its journal,
    or a network file system's server), so they overlap well.
    """
    items = list(files.items())
    if len(items) < _REMOVE_IN_THREADS_FROM:
        return _remove_some(items)
    from concurrent.futures import ThreadPoolExecutor

    step = -(-len(items) // (_REMOVERS * 8))
    chunks = [items[i : i + step] for i in range(0, len(items), step)]
    with ThreadPoolExecutor(_REMOVERS, thread_name_prefix="reflow-remove") as pool:
        return sum(pool.map(_remove_some, chunks))


_REMOVERS = 4
_REMOVE_IN_THREADS_FROM = 256


def _remove_some(items: Sequence[tuple[str, Stamp]]) -> int:
    removed = 0
    for path, stamp in items:
        # checked just before: the window for a replacement to slip in is this short
        if _stamp_of(path) == stamp:
            with contextlib.suppress(OSError):  # gone, or not ours: the next pass sees it
                os.unlink(path)
                removed += 1
    return removed


# ---------------------------------------------------------------------- waves


class WaveElement(FrozenRecord):
    """One element of a wave file, decoded: the Work to run.

    `deferred`: how an instance submitted ahead of its inputs finds them.
    """

    __slots__ = ("deferred", "run_id", "work")
    run_id: str
    work: Work
    deferred: dict[str, Any] | None

    def __init__(self, run_id: str, work: Work, deferred: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "run_id", run_id)
        object.__setattr__(self, "work", work)
        object.__setattr__(self, "deferred", deferred)


def write_wave(
    path: str | os.PathLike[str],
    run_id: str,
    works: Sequence[Work],
    deferred: Mapping[str, Any] | None = None,
    *,
    per: int = 1,
) -> None:
    """Write the instances of one job; arguments equal for all elements are stored once.

    `deferred` marks instances submitted ahead of their inputs: it says where
    the worker finds the upstream outputs (see resolve.py).  `per`: how many
    instances each array element runs, in order (element e runs instances
    e * per to e * per + per - 1).
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
    if per > 1:
        header["per"] = per
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
    from array import array

    data = bytearray()
    offsets = array("Q")
    for line in lines:
        offsets.append(len(data))
        data += line.encode("utf-8") + b"\n"
    offsets.append(len(data))
    _atomic_write(_index_file(path), offsets.tobytes())
    _atomic_write(os.fspath(path), bytes(data))


def _index_file(wave: str | os.PathLike[str]) -> str:
    """The offsets file beside a wave file: its name with the suffix `.idx`."""
    return os.path.splitext(os.fspath(wave))[0] + ".idx"


_MISSING = object()


_OFFSET = 8  # bytes per offset in the index file: array("Q"), in this machine's byte order


class Wave:
    """An open wave file: its header, and the instances one array element runs.

    Each line is found through its two offsets in the index file, read alone
    (element k of a 100,000-instance wave reads 16 bytes of the index, not 800 kB).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self._index = _index_file(path)
        try:
            header = self._line(0)
            if header.get("format") != WAVE_FORMAT:
                raise ResultFileError(f"{path}: unknown wave format {header.get('format')!r}")
            self.count = int(header["count"])
            self.per = max(1, int(header.get("per", 1)))
            self._shared = header["shared"]
            self._task = str(header["task"])
            self._run_id = str(header["run_id"])
            deferred = header.get("deferred")
            self._deferred = deferred if isinstance(deferred, dict) else None
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise ResultFileError(f"cannot read wave file {path}: {exc}") from None

    def _line(self, k: int) -> dict[str, Any]:
        """Line k of the file (0: the header), parsed."""
        fd = os.open(self._index, _READ_FLAGS)
        try:
            raw = os.pread(fd, 2 * _OFFSET, k * _OFFSET)
        finally:
            os.close(fd)
        if len(raw) != 2 * _OFFSET:
            raise ValueError(f"the index has no line {k}")
        start = int.from_bytes(raw[:_OFFSET], sys.byteorder)
        end = int.from_bytes(raw[_OFFSET:], sys.byteorder)
        with open(self.path, "rb") as fh:
            fh.seek(start)
            doc = json.loads(fh.read(end - start))
        if not isinstance(doc, dict):
            raise ValueError("a wave line is not an object")
        return doc

    def positions(self, element: int) -> range:
        """The instances (0-based positions in the file) array element `element` runs."""
        if not 0 <= element * self.per < self.count:
            raise ResultFileError(
                f"{self.path}: element {element} is not in 0..{-(-self.count // self.per) - 1}"
            )
        return range(element * self.per, min(self.count, (element + 1) * self.per))

    def instance(self, position: int) -> WaveElement:
        """The instance at `position`, decoded."""
        try:
            line = self._line(position + 1)
            kwargs = codec.decode(self._shared)
            own = codec.decode(line["kwargs"])
            if not isinstance(kwargs, dict) or not isinstance(own, dict):
                raise ResultFileError(f"{self.path}: malformed arguments")
            kwargs.update(own)
            work = Work(self._task, int(line["index"]), int(line["attempt"]), kwargs)
            return WaveElement(self._run_id, work, self._deferred)
        except (OSError, ValueError, KeyError, IndexError) as exc:
            raise ResultFileError(f"cannot read wave file {self.path}: {exc}") from None


def read_element(path: str | os.PathLike[str], element: int) -> WaveElement:
    """Instance `element` (0-based) of a wave file."""
    wave = Wave(path)
    if not 0 <= element < wave.count:
        raise ResultFileError(f"{path}: element {element} is not in 0..{wave.count - 1}")
    return wave.instance(element)
