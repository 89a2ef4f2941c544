"""Forgetting runs (`reflow gc`, `runs --delete`): which runs, what of them goes, what stays.

A forgotten run loses its rows (instances, task specs, reasons) and the files
it alone left in its run directory: its result files, logs and work files
(`<run_dir>/{results,logs,work}/<run_id>/`) and the files its outputs name
(`Path` values) inside that run directory.  Nothing a kept run reads goes:
an output a kept run reuses from the cache moves into the kept run's row
(`Store.forget_runs`), and a file a kept run's output names stays.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from . import codec
from .errors import DecodeError, ValidationError
from .owner import owner_alive
from .records import Record
from .results import run_files
from .stores import Store
from .stores.base import Moved, RunExport, SourceKey

__all__ = [
    "Plan", "collect", "forget", "in_flight", "parse_age", "plan_forgetting", "render",
    "runs_to_delete", "select_runs",
]  # fmt: skip

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
#: the folders of a run directory that hold one folder per run (see `results.run_files`)
_PER_RUN = ("results", "logs", "work")


def parse_age(text: str) -> float:
    """`30d`, `12h`, `90m`, `2w`, `45s` as seconds; ValueError saying the grammar if not."""
    found = _AGE.match(text)
    if found is None:
        raise ValueError(
            f"{text!r} is not an age: use a whole number and a unit, s, m, h, d or w (e.g. 30d)"
        )
    return int(found[1]) * _UNITS[found[2]]


def in_flight(info: dict[str, Any]) -> bool:
    """Whether a run (its full record) is still being driven: forgetting it would race its driver.

    RUNNING (or SUBMITTED) with a live foreground owner, or with a dispatcher
    job queued; a run whose owner died is not (nothing will write it again).
    """
    if info["status"] not in ("RUNNING", "SUBMITTED"):
        return False
    if info.get("dispatcher"):
        return True
    pid = info.get("owner_pid")
    return pid is not None and owner_alive(info.get("owner_host"), pid, info.get("owner_start"))


def _created(run: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(run["created_at"]).timestamp()


def select_runs(
    store: Store,
    *,
    keep_last: int | None,
    older_than: float | None,
    workflow: str | None,
    must_exist: bool = True,
    now: float | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """(runs to forget, all runs kept, ids of runs spared because they are in flight).

    A run is forgotten when it is beyond the `keep_last` newest of its
    workflow and/or older than `older_than` seconds (both, when both are
    given), of `workflow` only when given; never while in flight.  A
    `workflow` without runs is a ValidationError when `must_exist`.
    """
    if keep_last is None and older_than is None:
        raise ValidationError(
            "say which runs to forget: --keep-last N (per workflow) and/or --older-than AGE"
        )
    runs = store.list_runs()
    if must_exist and workflow is not None and not any(r["graph_name"] == workflow for r in runs):
        known = sorted({r["graph_name"] for r in runs})
        raise ValidationError(
            f"no runs of workflow '{workflow}' in the store {store.location}"
            + (f"; its workflows: {', '.join(known)}" if known else "; it has no runs")
        )
    cutoff = None if older_than is None else (time.time() if now is None else now) - older_than
    seen: dict[str, int] = {}
    forgotten: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    spared: list[str] = []
    for run in runs:  # newest first
        rank = seen[run["graph_name"]] = seen.get(run["graph_name"], 0) + 1
        chosen = (workflow is None or run["graph_name"] == workflow) and (
            (keep_last is None or rank > keep_last) and (cutoff is None or _created(run) < cutoff)
        )
        if chosen and run["status"] == "RUNNING" and in_flight(store.get_run(run["run_id"])):
            chosen = False
            spared.append(run["run_id"])
        (forgotten if chosen else kept).append(run)
    return forgotten, kept, spared


class RunPlan(Record):
    """What forgetting one run removes: its instances, stored output bytes, files."""

    __slots__ = ("files", "instances", "output_bytes", "run")

    def __init__(self, run: dict[str, Any], instances: int, output_bytes: int) -> None:
        self.run, self.instances, self.output_bytes = run, instances, output_bytes
        self.files: dict[Path, int] = {}  # file -> bytes


class Plan(Record):
    """What forgetting some runs removes and what it keeps by moving; `forget` carries it out."""

    __slots__ = ("kept", "moved", "paths", "runs", "spared")

    def __init__(self, runs: list[RunPlan], kept: list[dict[str, Any]], spared: list[str]) -> None:
        self.runs, self.kept, self.spared = runs, kept, spared
        self.moved: list[Moved] = []
        # the Path values each forgotten row's output names, by the row's key
        self.paths: dict[SourceKey, list[Path]] = {}

    @property
    def instances(self) -> int:
        return sum(r.instances for r in self.runs)

    @property
    def output_bytes(self) -> int:
        return sum(r.output_bytes for r in self.runs)

    @property
    def file_count(self) -> int:
        return sum(len(r.files) for r in self.runs)

    @property
    def file_bytes(self) -> int:
        return sum(sum(r.files.values()) for r in self.runs)


def _paths(value: Any) -> Iterator[Path]:
    """The `Path` values anywhere in a decoded output."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Path):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)


def _named_paths(text: str | None) -> list[Path]:
    if text is None or "$path" not in text:
        return []
    try:
        return list(_paths(codec.loads(text)))
    except DecodeError:
        return []


def _inside(path: Path, folder: Path) -> bool:
    return path != folder and folder in path.parents


class _Kept:
    """Paths kept runs name: is a path one of them, inside one, or a folder holding one?

    Sets of the paths and of their folders, so that each question costs the
    depth of the path, not the number of kept paths.
    """

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = set(paths)
        self.folders = {f for p in self.paths for f in p.parents}

    def touches(self, path: Path) -> bool:
        return path in self.folders or any(p in self.paths for p in (path, *path.parents))


def _real(path: Path | str) -> Path:
    return Path(os.path.realpath(path))


def _located(path: Path) -> Path:
    """`path` with the symlinks of its folders resolved, not a symlink it ends in.

    What an output names is the link itself: removing it must not remove
    the file the link points at, which the run may not own.
    """
    if path.name in ("", ".."):
        return _real(path)
    return _real(path.parent) / path.name


def _forms(path: Path) -> tuple[Path, Path]:
    """A kept path as it is located and as it resolves: neither may be removed."""
    return _located(path), _real(path)


def _sizes(path: Path) -> Iterator[tuple[Path, int]]:
    """Every file under `path` (or `path` itself), with its size; symlinks not followed."""
    if path.is_symlink() or path.is_file():
        yield path, path.lstat().st_size
        return
    for folder, _, names in os.walk(path):
        for name in names:
            file = Path(folder) / name
            yield file, file.lstat().st_size


def plan_forgetting(
    store: Store, runs: Sequence[dict[str, Any]], kept: Sequence[dict[str, Any]], spared: list[str]
) -> Plan:
    """What forgetting `runs` (list_runs dicts) removes, reading the store and the run dirs."""
    plan = Plan([], list(kept), spared)
    ids = [r["run_id"] for r in runs]
    for run in runs:
        exported = store.export_run(run["run_id"])
        owned = [row[7] for row in exported.instances if row[7] is not None]
        step = RunPlan(run, len(exported.instances), sum(_size(t) for t in owned))
        plan.runs.append(step)
        _note_paths(plan, exported)
    # outputs kept runs reuse stay (moved into a kept row): so do the files they name
    references = store.references_into(ids)
    moved_keys: dict[SourceKey, list[SourceKey]] = {}
    sizes: dict[SourceKey, int] = {}
    for ref in references:
        moved_keys.setdefault(ref.source, []).append(ref.hit)
        sizes[ref.source] = ref.output_bytes
    plan.moved = [
        Moved(src, hits[0], len(hits) - 1, sizes[src]) for src, hits in moved_keys.items()
    ]
    by_id = {step.run["run_id"]: step for step in plan.runs}
    for m in plan.moved:
        by_id[m.source[0]].output_bytes -= m.output_bytes
    protected = _Kept(_protected(store, plan, ids, moved_keys))
    named: dict[str, list[Path]] = {}
    for (owner, *_), paths in plan.paths.items():
        # a relative path says nothing of where it was: left alone
        named.setdefault(owner, []).extend(_located(p) for p in paths if p.is_absolute())
    shared = {_real(r["run_dir"]) for r in kept}
    for step in plan.runs:
        _collect_files(step, named.get(step.run["run_id"], []), protected, shared)
    return plan


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _note_paths(plan: Plan, exported: RunExport) -> None:
    run_id = exported.run["run_id"]
    for row in exported.instances:
        named = _named_paths(row[7])
        if named:
            plan.paths[(run_id, row[0], row[1], row[2])] = named


def _protected(
    store: Store, plan: Plan, ids: list[str], moved: dict[SourceKey, list[SourceKey]]
) -> list[Path]:
    """Paths that outputs of kept runs name (their own, and those moved into them)."""
    # as recorded and as resolved: an output may spell its run dir either way
    dirs = {d for step in plan.runs for d in (step.run["run_dir"], str(_real(step.run["run_dir"])))}
    # an output names a path as JSON text: look for each run dir as the JSON spells it
    fragments = [json.dumps(d, ensure_ascii=False)[1:-1] for d in dirs]
    found = [p for text in store.outputs_naming(fragments, ids) for p in _named_paths(text)]
    for key in moved:
        found.extend(plan.paths.get(key, ()))
    # the folders of kept runs that share a run dir with a forgotten one
    for run in plan.kept:
        if run["run_dir"] in dirs:
            found.extend(run_files(run["run_dir"], run["run_id"], kind) for kind in _PER_RUN)
    return [f for p in found for f in _forms(p)]


def _collect_files(step: RunPlan, named: list[Path], protected: _Kept, shared: set[Path]) -> None:
    """The files of `step`'s run: its per-run folders, and what its outputs name in its run dir.

    In a run dir a kept run uses too (`shared`), a folder an output names is
    left whole: it may hold what the kept run wrote without naming it.  A
    kept run's run dir inside this one is left whole, and so are the folders
    holding it.
    """
    run_id, run_dir = step.run["run_id"], _real(step.run["run_dir"])
    nested = _Kept(d for d in shared if _inside(d, run_dir))
    candidates = [_located(run_files(run_dir, run_id, kind)) for kind in _PER_RUN]
    in_shared = run_dir in shared
    candidates.extend(p for p in named if not (in_shared and p.is_dir() and not p.is_symlink()))
    for path in candidates:
        if not _inside(path, run_dir) or protected.touches(path) or nested.touches(path):
            continue
        if path.exists() or path.is_symlink():
            step.files.update(_sizes(path))


def forget(store: Store, plan: Plan) -> Plan:
    """Forget the plan's runs: their rows in one transaction, then their files.

    Files go after the rows, so that a failure halfway never leaves a run
    whose outputs name files that are gone.  Returns the plan, its moves as done.
    """
    ids = [step.run["run_id"] for step in plan.runs]
    plan.moved = store.forget_runs(ids)
    # a run started since the plan may have reused an output that had to move: its files stay
    protected = _Kept(
        f for m in plan.moved for p in plan.paths.get(m.source, ()) for f in _forms(p)
    )
    for step in plan.runs:
        run_dir = _real(step.run["run_dir"])
        for path in list(step.files):
            if protected.touches(path):
                del step.files[path]
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            _prune(path.parent, run_dir)
        for kind in _PER_RUN:
            folder = run_files(run_dir, step.run["run_id"], kind)
            if folder.is_dir() and not any(folder.rglob("*")):
                shutil.rmtree(folder, ignore_errors=True)
            _prune(folder.parent, run_dir)
    return plan


def _prune(folder: Path, top: Path) -> None:
    """Remove `folder` and its parents while empty, up to (not including) `top`.

    The run directory itself stays, empty or not: another run may be given it.
    """
    while folder != top and top in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def _bytes(n: int) -> str:
    return f"{n:,} byte{'s' if n != 1 else ''}"


def _count(n: int, what: str) -> str:
    return f"{n:,} {what}{'s' if n != 1 else ''}"


def _key(key: SourceKey) -> str:
    run_id, task, index, attempt = key
    return f"{run_id} {task}" + ("" if index < 0 else f"[{index}]") + f" (attempt {attempt})"


def render(plan: Plan, *, dry_run: bool) -> list[str]:
    """The lines `gc` and `runs --delete` print: each run, each moved output, a total."""
    forgot, keep, remove = (
        ("would forget", "would keep", "would remove") if dry_run else ("forgot", "kept", "removed")
    )
    lines = [f"kept run {spared}: still running" for spared in plan.spared]
    if not plan.runs:
        return [*lines, "nothing to forget"]
    for step in plan.runs:
        run = step.run
        lines.append(
            f"{forgot} run {run['run_id']} ({run['status']}, created {run['created_at']}): "
            f"{_count(step.instances, 'instance')}, {_bytes(step.output_bytes)} of outputs, "
            f"{_count(len(step.files), 'file')} ({_bytes(sum(step.files.values()))})"
        )
    for m in plan.moved:
        more = f", reused by {m.repointed} more" if m.repointed else ""
        lines.append(
            f"{keep} the output of {_key(m.source)} ({_bytes(m.output_bytes)}) by moving it "
            f"into {_key(m.into)}{more}"
        )
    lines.append(
        f"total: {forgot} {_count(len(plan.runs), 'run')} "
        f"({len(plan.kept)} kept), {_count(plan.instances, 'instance')}, "
        f"{_bytes(plan.output_bytes)} of outputs; {keep} "
        f"{_count(len(plan.moved), 'output')} by moving; {remove} "
        f"{_count(plan.file_count, 'file')} ({_bytes(plan.file_bytes)})"
    )
    return lines


def runs_to_delete(
    store: Store, run_ids: Sequence[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the runs `runs --delete` names, the others); an unknown or in-flight run refuses all."""
    wanted = list(dict.fromkeys(run_ids))
    for run_id in wanted:
        info = store.get_run(run_id)  # RunNotFoundError: one line naming the id
        if in_flight(info):
            raise ValidationError(
                f"run '{run_id}' is still running ({info['status']}): cancel it first "
                f"('cancel {run_id}') or wait for it to finish"
            )
    listed = store.list_runs()
    chosen = set(wanted)
    return [r for r in listed if r["run_id"] in chosen], [
        r for r in listed if r["run_id"] not in chosen
    ]


def collect(
    store: Store,
    runs: Sequence[dict[str, Any]],
    kept: Sequence[dict[str, Any]],
    spared: list[str],
    *,
    dry_run: bool,
    echo: Callable[[str], None] = print,
) -> Plan:
    """Plan forgetting `runs`, carry it out unless `dry_run`, print what it did (or would)."""
    plan = plan_forgetting(store, runs, kept, spared)
    if not dry_run and plan.runs:
        forget(store, plan)
    for line in render(plan, dry_run=dry_run):
        echo(line)
    return plan
