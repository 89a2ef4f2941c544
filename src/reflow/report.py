"""The HTML report of a run: one self-contained page a person opens from a cluster's disk.

The page shows the task graph with each task's state, per-task counts (cache
reuse, retries, elapsed time), a timeline of attempts, the distribution of
durations, requested against used resources and the failures with their
tracebacks.  Everything is inline (styles and SVG drawn here, no script, no
font, no image, and a Content-Security-Policy that forbids loading any), so
the file opens anywhere, offline.  What a person cannot read one by one is
aggregated: at 100,000 instances the timeline is a band per task, the
durations a histogram, the failures grouped by their message.  Every text
read from the store is HTML-escaped.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ValidationError, error_line
from .records import Record

if TYPE_CHECKING:
    from .stores import Store
    from .stores.base import AttemptRow

__all__ = ["default_report_path", "render_report", "write_report"]

#: fill colours of the states (cached: a SUCCESS reused from the cache)
COLOURS = {
    "SUCCESS": "#2da44e",
    "CACHED": "#9bd4a8",
    "RUNNING": "#2f6fd6",
    "SUBMITTED": "#9cc3f2",
    "PENDING": "#c4c8cc",
    "FAILED": "#d1242f",
    "CANCELLED": "#e5952f",
    "SKIPPED": "#8c959f",
}
#: the order states are counted and stacked in (the worst last)
_ORDER = ("SUCCESS", "RUNNING", "SUBMITTED", "PENDING", "SKIPPED", "CANCELLED", "FAILED")
#: the state that colours a task's box: the first of these it has
_WORST = ("FAILED", "RUNNING", "SUBMITTED", "PENDING", "CANCELLED", "SKIPPED", "SUCCESS")

_SLICES = 240  # time slices of a task's timeline band
_BARS_MAX = 200  # a task with at most this many attempts also gets one bar per attempt
_LANES_MAX = 40  # ... drawn in at most this many lanes
_BINS = 24  # bars of a duration histogram
_GROUPS_MAX = 50  # failure groups shown (the rest are counted)
_TRACES_PER_GROUP = 3  # tracebacks shown in full per group
_LABELS_PER_GROUP = 60  # instances named per group
_TRACE_CHARS = 20_000  # a longer traceback keeps its end (where the exception is)


#: an attempt on the timeline: (index, attempt, submitted, started, finished or now, state,
#: failure kind or "")
_Span = tuple[int, int, "float | None", "float | None", "float | None", str, str]


class _Task(Record):
    """What the report shows of one task, gathered in one pass over its attempts."""

    __slots__ = (
        "array", "attempts", "cached", "counts", "durations", "failures", "first", "instances",
        "last", "name", "retried", "retried_after", "runs", "spans", "spec",
    )  # fmt: skip

    def __init__(self, name: str, array: bool, spec: dict[str, Any]) -> None:
        self.name, self.array, self.spec = name, array, spec
        self.counts: dict[str, int] = {}
        self.cached = 0
        self.instances = 0
        self.attempts = 0
        self.retried = 0  # instances with more than one attempt
        self.retried_after: dict[str, int] = {}  # failure kind -> failed attempts tried again
        self.durations: list[tuple[float, bool]] = []  # (seconds, succeeded) of attempts that ran
        self.runs: list[float] = []  # the same seconds, sorted (once the attempts are in)
        self.spans: list[_Span] = []  # the attempts queued or started
        # (label, current, error text, failure kind or "")
        self.failures: list[tuple[str, bool, str, str]] = []
        self.first: float | None = None
        self.last: float | None = None

    @property
    def worst(self) -> str:
        """The state that colours the task: its worst one, PENDING before it has any."""
        return next((s for s in _WORST if self.counts.get(s)), "PENDING")

    def upstream(self) -> list[str]:
        """The tasks this one reads from or runs after, as recorded in its spec."""
        steps = [s for i in self.spec.get("inputs", []) for s in i.get("steps", [])]
        return list(dict.fromkeys([*steps, *self.spec.get("after", [])]))


class _Run(Record):
    """A run's record, its tasks in topological order, and the span of its timeline."""

    __slots__ = ("end", "info", "now", "start", "tasks")

    def __init__(
        self, info: dict[str, Any], tasks: list[_Task], start: float, end: float, now: float
    ) -> None:
        self.info, self.tasks, self.start, self.end, self.now = info, tasks, start, end, now


# ---------------------------------------------------------------------- entry points


def default_report_path(run_id: str) -> Path:
    """Where `report` writes without `-o`: `<run_id>.html` in the current directory."""
    return Path(f"{run_id}.html")


def write_report(store: Store, run_id: str, path: str | os.PathLike[str] | None = None) -> Path:
    """Write the run's report to `path` (a directory: `<run_id>.html` in it); return the file.

    An unknown run id is a RunNotFoundError; a path that cannot be written is a
    ValidationError naming it. The file appears whole or not at all.
    """
    text = render_report(store, run_id)
    target = default_report_path(run_id) if path is None else Path(path)
    if target.is_dir():
        target = target / default_report_path(run_id)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        reason = exc.strerror or str(exc)
        raise ValidationError(
            f"cannot write the report to {target}: {reason}; choose another path with -o"
        ) from None
    return target


def render_report(store: Store, run_id: str, *, now: float | None = None) -> str:
    """The run's report as one self-contained HTML page."""
    run = _gather(store, run_id, time.time() if now is None else now)
    info = run.info
    title = f"reflow run {info['run_id']}"
    body = [
        _header(run),
        _section("Task graph", "dag", _dag(run.tasks)),
        _section("Tasks", "tasks", _task_table(run.tasks)),
        _section("Timeline of attempts", "timeline-section", _timeline(run)),
        _section("Durations", "durations", _durations(run.tasks)),
        _section("Resources: requested and used", "resources", _resources(run.tasks)),
        _section("Failures", "failures", _failures(run.tasks)),
    ]
    from ._version import __version__

    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n"
        # the page loads nothing: everything it shows is in this file
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'\">\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + f"\n<footer>Written by reflow {escape(__version__)} on {_clock(run.now)}.</footer>\n"
        "</body></html>\n"
    )


# ---------------------------------------------------------------------- reading the store


def _gather(store: Store, run_id: str, now: float) -> _Run:
    """Read the run once: its record, task specs, state counts and every attempt."""
    info = store.get_run(run_id)  # RunNotFoundError first, before anything else is read
    tasks = {name: _Task(name, array, spec) for name, array, spec in store.task_specs(run_id)}
    for name, by_state in store.status_counts(run_id).items():
        task = tasks.get(name)
        if task is not None:
            task.counts = {state: n for state, (n, _) in by_state.items()}
            task.cached = sum(hits for _, hits in by_state.values())
            task.instances = sum(task.counts.values())
    running = info["status"] == "RUNNING"
    for row in store.run_attempts(run_id):
        task = tasks.get(row.task)
        if task is not None:  # every instance belongs to a recorded task
            _add_attempt(task, row, now if running else None)
    for task in tasks.values():
        task.runs = sorted(d for d, _ in task.durations)
    times = [t for task in tasks.values() for t in (task.first, task.last) if t is not None]
    # from the first attempt (the record's creation time is in whole seconds)
    start = min(times, default=_timestamp(info.get("created_at")) or now)
    end = max(times, default=start)
    if running:
        end = max(end, now)
    return _Run(info, list(tasks.values()), start, max(end, start + 1e-3), now)


def _add_attempt(task: _Task, row: AttemptRow, now: float | None) -> None:
    """Count one attempt into its task; `now` ends the attempts of a run still going."""
    task.attempts += 1
    if row.current and row.attempt > 1:
        task.retried += 1
    kind = row.failure_kind or ""
    if row.state == "FAILED":
        label = _label(task.name, row.array_index, row.attempt)
        task.failures.append((label, row.current, row.error_text or "", kind))
        if not row.current:  # a later attempt followed it
            key = kind or "unknown"
            task.retried_after[key] = task.retried_after.get(key, 0) + 1
    if row.cached:
        return  # reused, not run: no time of its own
    sub, t0, t1 = row.submitted, row.started, row.finished
    if t0 is not None and t1 is not None:
        task.durations.append((max(0.0, t1 - t0), row.state == "SUCCESS"))
    if t1 is None and row.state in ("RUNNING", "SUBMITTED"):
        t1 = now
    if sub is None and t0 is None:
        return  # never queued nor started (skipped, cancelled before it ran): not on the timeline
    task.spans.append((row.array_index, row.attempt, sub, t0, t1, row.state, kind))
    begin = sub if sub is not None else t0  # as _begin and _end, without their calls
    end = t1 if t1 is not None else t0 if t0 is not None else sub
    assert begin is not None and end is not None
    if task.first is None or begin < task.first:
        task.first = begin
    if task.last is None or end > task.last:
        task.last = end


def _label(task: str, index: int, attempt: int) -> str:
    """How the page names an attempt: work[3], work[3] attempt 2, total."""
    label = task if index < 0 else f"{task}[{index}]"
    return label if attempt == 1 else f"{label} attempt {attempt}"


def _timestamp(text: Any) -> float | None:
    """An ISO time from the store as seconds since the epoch (None if absent)."""
    import datetime as dt

    if not isinstance(text, str):
        return None
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


# ---------------------------------------------------------------------- formatting


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def _seconds(s: float) -> str:
    """A duration as a person reads it: 25 µs, 35 ms, 2.5 s, 12 s, 3 min 05 s, 2 h 04 min."""
    if s < 0.001:
        return f"{s * 1e6:.0f} µs" if s > 0 else "0 s"
    if s < 0.01:
        return f"{s * 1000:.1f} ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    m, sec = divmod(round(s), 60)
    if m < 60:
        return f"{m} min {sec:02d} s"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h} h {m:02d} min"
    d, h = divmod(h, 24)
    return f"{d} d {h:02d} h"


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile of sorted `values` (nearest rank)."""
    return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]


def _section(title: str, ident: str, content: str) -> str:
    return f"<section id='{ident}'><h2>{escape(title)}</h2>\n{content}\n</section>"


def _head_row(*names: str) -> str:
    return "<tr>" + "".join(f"<th>{escape(n)}</th>" for n in names) + "</tr>"


def _chip(state: str, n: int) -> str:
    return (
        f"<span class='chip' style='background:{COLOURS.get(state, '#ccc')}'>"
        f"{n:,} {escape(state)}</span>"
    )


# ---------------------------------------------------------------------- header


def _header(run: _Run) -> str:
    info = run.info
    state = str(info["status"])
    colour = COLOURS.get(state, COLOURS["PENDING"])
    created = _timestamp(info.get("created_at"))
    finished = _timestamp(info.get("finished_at"))
    took = ""
    if created is not None:
        end = finished if finished is not None else run.now
        # the record's times are whole seconds
        took = _seconds(end - created) if end - created >= 1 else "under a second"
        took += "" if finished is not None else " so far"
    params = info.get("params") if isinstance(info.get("params"), dict) else {}
    rows = [
        ("workflow", str(info["graph_name"])),
        ("user", f"{info['user']} on {info['host']}"),
        ("executor", str(info["executor"])),
        ("created", str(info.get("created_at") or "")),
        ("finished", str(info.get("finished_at") or "not yet")),
        ("elapsed", took),
        ("run dir", str(info["run_dir"])),
    ]
    rows += [(f"param {k}", _short(repr(v), 200)) for k, v in sorted((params or {}).items())]
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    snapshot = (
        f"<p class='note'>The run is still going: this is how it stood on {_clock(run.now)}.</p>"
        if state == "RUNNING"
        else ""
    )
    return (
        f"<header><h1>Run <code>{escape(str(info['run_id']))}</code> "
        f"<span class='badge' style='background:{colour}'>{escape(state)}</span></h1>"
        f"<table class='facts'>{table}</table>{snapshot}</header>"
    )


# ---------------------------------------------------------------------- the graph


_NODE_W, _NODE_H, _GAP_X, _GAP_Y, _PAD = 200, 58, 70, 20, 12
_EDGE_LABELS = {"fanout": "fan-out", "gather": "gather", "broadcast": "broadcast", "chain": "chain"}


def _layers(tasks: list[_Task]) -> list[list[_Task]]:
    """Tasks in columns: each one column right of its furthest upstream task.

    Within a column tasks are ordered by the mean row of their upstream tasks
    (a barycentre pass, which uncrosses most edges), ties in topological order.
    """
    by_name = {t.name: t for t in tasks}
    depth: dict[str, int] = {}
    for t in tasks:  # topological order: every upstream task has its depth already
        ups = [depth[u] for u in t.upstream() if u in depth]
        depth[t.name] = 1 + max(ups) if ups else 0
    columns: list[list[_Task]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for t in tasks:
        columns[depth[t.name]].append(t)
    row: dict[str, float] = {t.name: float(i) for i, t in enumerate(columns[0] if columns else [])}
    for col in columns[1:]:
        position = {t.name: i for i, t in enumerate(col)}

        def centre(t: _Task, position: dict[str, int] = position) -> tuple[float, int]:
            ups = [row[u] for u in t.upstream() if u in row and u in by_name]
            return (sum(ups) / len(ups) if ups else float(position[t.name]), position[t.name])

        col.sort(key=centre)
        row.update({t.name: float(i) for i, t in enumerate(col)})
    return columns


def _dag(tasks: list[_Task]) -> str:
    if not tasks:
        return "<p>The run has no tasks.</p>"
    columns = _layers(tasks)
    height = max(len(c) for c in columns) * (_NODE_H + _GAP_Y) - _GAP_Y + 2 * _PAD
    width = len(columns) * (_NODE_W + _GAP_X) - _GAP_X + 2 * _PAD
    where: dict[str, tuple[float, float]] = {}
    for i, col in enumerate(columns):
        top = (height - (len(col) * (_NODE_H + _GAP_Y) - _GAP_Y)) / 2  # centre short columns
        for j, t in enumerate(col):
            where[t.name] = (_PAD + i * (_NODE_W + _GAP_X), top + j * (_NODE_H + _GAP_Y))
    parts: list[str] = []
    for t in tasks:
        x2, y2 = where[t.name]
        modes = {s: i.get("mode", "") for i in t.spec.get("inputs", []) for s in i.get("steps", [])}
        for up in t.upstream():
            if up not in where:
                continue
            x1, y1 = where[up]
            ax, ay, bx, by = x1 + _NODE_W, y1 + _NODE_H / 2, x2, y2 + _NODE_H / 2
            mid = (ax + bx) / 2
            mode = _EDGE_LABELS.get(modes.get(up, ""), "" if up in modes else "after")
            dash = " stroke-dasharray='5 4'" if mode == "after" else ""
            parts.append(
                f"<path class='edge' d='M{ax:.0f},{ay:.0f} C{mid:.0f},{ay:.0f} {mid:.0f},"
                f"{by:.0f} {bx - 6:.0f},{by:.0f}'{dash} marker-end='url(#arrow)'>"
                f"<title>{escape(up)} → {escape(t.name)}{' (' + mode + ')' if mode else ''}"
                "</title></path>"
            )
            if mode:
                parts.append(
                    f"<text class='edge-label' x='{mid:.0f}' y='{(ay + by) / 2 - 4:.0f}'>"
                    f"{escape(mode)}</text>"
                )
    for t in tasks:
        parts.append(_node(t, *where[t.name]))
    return (
        "<div class='scroll'>"
        f"<svg id='dag' xmlns='http://www.w3.org/2000/svg' width='{width:.0f}' "
        f"height='{height:.0f}' viewBox='0 0 {width:.0f} {height:.0f}' role='img' "
        "aria-label='the task graph'>"
        "<defs><marker id='arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
        "markerHeight='7' orient='auto'><path d='M0,0 L10,5 L0,10 z' fill='#6e7781'/>"
        "</marker></defs>" + "".join(parts) + "</svg></div>" + _legend()
    )


def _node(t: _Task, x: float, y: float) -> str:
    """One task's box: its name, counts, and a bar of its instances' states."""
    total = t.instances
    colour = COLOURS[t.worst]
    bits = [f"{total:,} instance{'s' if total != 1 else ''}" if total else "not started"]
    if t.counts.get("FAILED"):
        bits.append(f"{t.counts['FAILED']:,} failed")
    elif t.cached:
        bits.append(f"{t.cached:,} cached")
    tip = f"{t.name}: " + ", ".join(f"{n:,} {s}" for s, n in _counted(t)) if total else t.name
    out = [
        f"<g class='task' data-task='{escape(t.name)}' data-state='{t.worst}'>"
        f"<title>{escape(tip)}</title>"
        f"<rect x='{x:.0f}' y='{y:.0f}' width='{_NODE_W}' height='{_NODE_H}' rx='6' "
        f"fill='#fff' stroke='{colour}' stroke-width='2.5'/>"
        f"<text class='name' x='{x + 10:.0f}' y='{y + 20:.0f}'>{escape(_short(t.name, 24))}"
        f"{' ▦' if t.array else ''}</text>"
        f"<text class='small' x='{x + 10:.0f}' y='{y + 37:.0f}'>{escape(' · '.join(bits))}</text>"
    ]
    bx, bw = x + 10, _NODE_W - 20
    for state, n in _counted(t):
        w = bw * n / total
        out.append(
            f"<rect x='{bx:.1f}' y='{y + _NODE_H - 14:.0f}' width='{max(w, 0.5):.1f}' height='6' "
            f"fill='{COLOURS[state]}'/>"
        )
        bx += w
    if not total:
        out.append(
            f"<rect x='{bx:.0f}' y='{y + _NODE_H - 14:.0f}' width='{bw}' height='6' "
            f"fill='{COLOURS['PENDING']}'/>"
        )
    return "".join(out) + "</g>"


def _counted(t: _Task) -> list[tuple[str, int]]:
    """(state, count) of the task's instances in the order they stack; cached apart."""
    out: list[tuple[str, int]] = []
    for state in _ORDER:
        n = t.counts.get(state, 0)
        if state == "SUCCESS" and t.cached:
            out.append(("CACHED", t.cached))
            n -= t.cached
        if n > 0:
            out.append((state, n))
    out += [(s, n) for s, n in t.counts.items() if s not in _ORDER and n]
    return out


def _legend() -> str:
    return (
        "<p class='legend'>"
        + " ".join(
            f"<span><i style='background:{c}'></i>{escape(s.lower())}</span>"
            for s, c in COLOURS.items()
        )
        + " <span>▦ array task</span> <span>- - - after (order only)</span></p>"
    )


# ---------------------------------------------------------------------- the task table


def _task_table(tasks: list[_Task]) -> str:
    head = _head_row(
        "task", "instances", "states", "cache reuse", "retried", "attempts", "elapsed",
        "median run",
    )  # fmt: skip
    rows = []
    for t in tasks:
        runs = t.runs
        elapsed = _seconds(t.last - t.first) if t.first is not None and t.last is not None else "–"
        reuse = f"{t.cached:,}/{t.instances:,}" if t.instances else "–"
        rows.append(
            f"<tr><td><b>{escape(t.name)}</b>{' (array)' if t.array else ''}</td>"
            f"<td class='num'>{t.instances:,}</td>"
            f"<td>{' '.join(_chip(s, n) for s, n in _counted(t)) or 'not started'}</td>"
            f"<td class='num'>{reuse}</td><td class='num'>{t.retried:,}{_after(t)}</td>"
            f"<td class='num'>{t.attempts:,}</td><td class='num'>{elapsed}</td>"
            f"<td class='num'>{_seconds(_quantile(runs, 0.5)) if runs else '–'}</td></tr>"
        )
    return (
        f"<table class='grid'>{head}{''.join(rows)}</table>"
        "<p class='note'>cache reuse: instances reused from an earlier run, of all; "
        "retried: instances run more than once (automatically, per the task's "
        "<code>retries</code>, or by <code>retry</code>), and the failure kinds of the attempts "
        "tried again; attempts: every "
        "attempt recorded, retries and cache hits included; elapsed: from the task's first "
        "attempt queued or started to its last one finished.</p>"
    )


def _after(t: _Task) -> str:
    """The failure kinds a task's instances were tried again after: ` (after 2 OOM, 1 ERROR)`."""
    if not t.retried_after:
        return ""
    kinds = sorted(t.retried_after.items(), key=lambda kv: (-kv[1], kv[0]))
    return (
        "<br><span class='small'>after "
        + escape(", ".join(f"{n:,} {kind}" for kind, n in kinds))
        + "</span>"
    )


# ---------------------------------------------------------------------- the timeline


_LABEL_W, _PLOT_W, _BAND_H, _LANE_H = 170, 900, 44, 7


def _timeline(run: _Run) -> str:
    span = run.end - run.start
    y = 26.0
    parts: list[str] = []
    for t in run.tasks:
        if not t.spans:
            continue
        parts.append(
            f"<text class='name' x='4' y='{y + 16:.0f}'>{escape(_short(t.name, 22))}</text>"
        )
        queued, running = _occupancy(t.spans, run.start, span)
        peak = max((q + r for q, r in zip(queued, running, strict=True)), default=0.0)
        at_once = f"≈{peak:,.0f}" if peak >= 0.95 else "under 1"
        parts.append(
            f"<text class='small' x='4' y='{y + 30:.0f}'>{len(t.spans):,} attempt"
            f"{'s' if len(t.spans) != 1 else ''}</text>"
            f"<text class='small' x='4' y='{y + 43:.0f}'>peak {at_once} at once</text>"
        )
        parts.append(_band(queued, running, peak, y))
        y += _BAND_H + 6
        if len(t.spans) <= _BARS_MAX:
            lanes = _lanes(t.spans)
            if max(lanes, default=0) < _LANES_MAX:
                parts.append(_bars(t.name, t.spans, lanes, run.start, span, y))
                y += (max(lanes, default=0) + 1) * _LANE_H + 8
        y += 10
    if y == 26.0:
        return "<p>No attempt of this run has started yet, or every instance was cached.</p>"
    height = y + 4
    width = _LABEL_W + _PLOT_W + 20
    axis = _axis(span, height)
    return (
        "<div class='scroll'>"
        f"<svg id='timeline' xmlns='http://www.w3.org/2000/svg' width='{width}' "
        f"height='{height:.0f}' viewBox='0 0 {width} {height:.0f}' role='img' "
        "aria-label='timeline of attempts'>" + axis + "".join(parts) + "</svg></div>"
        "<p class='legend'>"
        f"<span><i style='background:{COLOURS['SUBMITTED']}'></i>queued (submitted, not yet "
        f"started)</span> <span><i style='background:{COLOURS['RUNNING']}'></i>running</span>"
        "</p><p class='note'>Each band is how many of the task's attempts were queued and "
        f"running, on average over each of {_SLICES} slices of the run, to scale with the "
        f"band's own peak. Tasks with at most {_BARS_MAX} attempts also get one bar per "
        "attempt, coloured by how it ended (hover a bar for its times); larger tasks show "
        "the band alone. Queued times are known for scheduler jobs only: a local run's "
        "attempts start when a worker takes them. Cached instances did not run and are not "
        "drawn.</p>"
    )


def _occupancy(
    spans: Iterable[_Span],
    start: float,
    span: float,
) -> tuple[list[float], list[float]]:
    """The mean number of attempts queued and running in each time slice of the run.

    Each interval adds its overlap with each slice (as a fraction of the slice),
    so a thousand attempts of a millisecond each in one slice count as the one
    worker they kept busy, not as a thousand at once.  Linear in the attempts.
    """
    scale = _SLICES / span
    queued = _Occupancy()
    running = _Occupancy()
    for _, _, sub, t0, t1, _, _ in spans:
        if sub is not None:  # queued until started, else until it ended (or now)
            until = t0 if t0 is not None else t1
            queued.add(
                (sub - start) * scale, (until - start) * scale if until is not None else _SLICES
            )
        if t0 is not None:
            running.add((t0 - start) * scale, (t1 - start) * scale if t1 is not None else t0)
    return queued.means(), running.means()


class _Occupancy:
    """Accumulates intervals (in slice units) into a mean count per slice."""

    def __init__(self) -> None:
        self.part = [0.0] * (_SLICES + 1)  # fractions of slices at the intervals' ends
        self.whole = [0] * (_SLICES + 2)  # +1/-1 where runs of whole slices begin and end

    def add(self, a: float, b: float) -> None:
        a = min(max(a, 0.0), float(_SLICES))
        b = min(max(b, a), float(_SLICES))
        ia, ib = int(a), int(b)
        if ia == ib:
            self.part[ia] += b - a
            return
        self.part[ia] += ia + 1 - a
        self.part[ib] += b - ib
        self.whole[ia + 1] += 1
        self.whole[ib] -= 1

    def means(self) -> list[float]:
        out, level = [], 0
        for k in range(_SLICES):
            level += self.whole[k]
            out.append(level + self.part[k])
        out[-1] += self.part[_SLICES]  # an interval ending exactly at the end
        return out


def _band(queued: list[float], running: list[float], peak: float, y: float) -> str:
    """The task's band: running stacked under queued, each a step-shaped area."""
    if peak <= 0:
        return ""
    step = _PLOT_W / _SLICES
    base = y + _BAND_H

    def steps(levels: list[float], order: range) -> list[str]:
        """Each slice's level as a flat step: its left and right corners."""
        out = []
        for k in order:
            x0, x1, top = (
                _LABEL_W + k * step,
                _LABEL_W + (k + 1) * step,
                base - _BAND_H * levels[k] / peak,
            )
            pair = (x0, x1) if order.step > 0 else (x1, x0)
            out.append(f"{pair[0]:.1f},{top:.1f} {pair[1]:.1f},{top:.1f}")
        return out

    def area(tops: list[float], bottoms: list[float], colour: str) -> str:
        outline = steps(tops, range(_SLICES)) + steps(bottoms, range(_SLICES - 1, -1, -1))
        return f"<polygon points='{' '.join(outline)}' fill='{colour}'/>"

    zero = [0.0] * _SLICES
    stacked = [q + r for q, r in zip(queued, running, strict=True)]
    out = [
        f"<g class='band'><rect x='{_LABEL_W}' y='{y:.0f}' width='{_PLOT_W}' "
        f"height='{_BAND_H}' fill='#f6f8fa'/>"
    ]
    if any(queued):
        out.append(area(stacked, running, COLOURS["SUBMITTED"]))
    out.append(area(running, zero, COLOURS["RUNNING"]))
    return "".join(out) + "</g>"


def _lanes(spans: Sequence[_Span]) -> list[int]:
    """A lane for each attempt, so that attempts in one lane do not overlap (greedy)."""
    ends: list[float] = []
    lanes = [0] * len(spans)
    order = sorted(range(len(spans)), key=lambda i: _begin(spans[i]))
    for i in order:
        begin, end = _begin(spans[i]), _end(spans[i])
        lane = next((k for k, e in enumerate(ends) if e <= begin), len(ends))
        if lane == len(ends):
            ends.append(end)
        else:
            ends[lane] = end
        lanes[i] = lane
    return lanes


def _begin(s: _Span) -> float:
    """When an attempt enters the timeline: queued, else started."""
    begin = s[2] if s[2] is not None else s[3]
    assert begin is not None  # a span is queued or started
    return begin


def _end(s: _Span) -> float:
    """When an attempt leaves the timeline: finished, else the last time it has."""
    return next(t for t in (s[4], s[3], s[2]) if t is not None)


def _bars(
    task: str,
    spans: Sequence[_Span],
    lanes: list[int],
    start: float,
    span: float,
    y: float,
) -> str:
    """One bar per attempt: queued (light), then running, coloured by how it ended."""
    scale = _PLOT_W / span
    out = ["<g class='bars'>"]
    for (index, attempt, sub, t0, t1, state, kind), lane in zip(spans, lanes, strict=True):
        top = y + lane * _LANE_H
        tip = [_label(task, index, attempt), f"{state} ({kind})" if kind else state]
        if sub is not None and t0 is not None:
            tip.append(f"queued {_seconds(t0 - sub)}")
        if t0 is not None and t1 is not None:
            tip.append(f"ran {_seconds(t1 - t0)}")
        title = f"<title>{escape(', '.join(tip))}</title>"
        if sub is not None:
            q_end = t0 if t0 is not None else (t1 if t1 is not None else sub)
            out.append(_bar(sub, q_end, start, scale, top, COLOURS["SUBMITTED"], title))
        if t0 is not None:
            colour = COLOURS.get(state, COLOURS["PENDING"])
            out.append(_bar(t0, t1 if t1 is not None else t0, start, scale, top, colour, title))
    return "".join(out) + "</g>"


def _bar(a: float, b: float, start: float, scale: float, top: float, fill: str, tip: str) -> str:
    x = _LABEL_W + (a - start) * scale
    w = max(1.0, (b - a) * scale)
    return (
        f"<rect x='{x:.1f}' y='{top:.0f}' width='{w:.1f}' height='{_LANE_H - 2}' "
        f"fill='{fill}'>{tip}</rect>"
    )


def _axis(span: float, height: float) -> str:
    """Ticks along the top: time since the run's first moment, at round steps."""
    step = _nice_step(span / 8)
    out = ["<text class='small' x='4' y='12'>time since start</text>"]
    k = 0
    while k * step <= span * 1.0001:
        x = _LABEL_W + k * step / span * _PLOT_W
        out.append(
            f"<line x1='{x:.1f}' y1='16' x2='{x:.1f}' y2='{height:.0f}' class='tick'/>"
            f"<text class='small' x='{x:.1f}' y='12' text-anchor='middle'>"
            f"{escape(_seconds(k * step) if k else '0')}</text>"
        )
        k += 1
    return "".join(out)


def _nice_step(raw: float) -> float:
    """A round step near `raw` seconds: 1, 2 or 5 times a power of ten, or whole minutes/hours."""
    for nice in (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400):
        if raw <= nice and raw > 30:
            return float(nice)
    if raw > 86400:
        return 86400.0 * math.ceil(raw / 86400)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


# ---------------------------------------------------------------------- durations


def _durations(tasks: list[_Task]) -> str:
    cards = [_histogram(t) for t in tasks if t.durations]
    if not cards:
        return "<p>No attempt has run to its end yet (cached instances did not run).</p>"
    return (
        "<div class='cards'>" + "".join(cards) + "</div>"
        "<p class='note'>How long each attempt that ran took (started to finished), "
        f"in {_BINS} bins from the shortest to the longest (of equal width, or on a log "
        "scale when the longest is over 20 times the shortest); "
        f"<span style='color:{COLOURS['FAILED']}'>red</span>: attempts that did not "
        "succeed. Cached instances did not run and are left out.</p>"
    )


def _histogram(t: _Task) -> str:
    values = t.runs
    lo, hi = values[0], values[-1]
    # a long tail (microseconds to seconds) would leave all but one bin empty: log bins
    log = lo > 0 and hi / lo > 20
    ratio = math.log(hi / lo) if log else (hi - lo) or 1.0

    def edge(k: float) -> float:
        return lo * math.exp(ratio * k / _BINS) if log else lo + ratio * k / _BINS

    ok = [0] * _BINS
    bad = [0] * _BINS
    for d, succeeded in t.durations:
        where = math.log(d / lo) if log else d - lo
        k = min(_BINS - 1, int(where / ratio * _BINS))
        (ok if succeeded else bad)[k] += 1
    top = max(a + b for a, b in zip(ok, bad, strict=True))
    w, h, bw = 300, 90, 300 / _BINS
    bars = []
    for k in range(_BINS):
        if not ok[k] + bad[k]:
            continue
        tip = (
            f"<title>{_seconds(edge(k))} – {_seconds(edge(k + 1))}: "
            f"{ok[k] + bad[k]:,} attempts</title>"
        )
        y = float(h)
        for n, colour in ((ok[k], COLOURS["SUCCESS"]), (bad[k], COLOURS["FAILED"])):
            if n:
                bh = max(1.0, h * n / top)
                y -= bh
                bars.append(
                    f"<rect x='{k * bw + 0.5:.1f}' y='{y:.1f}' width='{bw - 1:.1f}' "
                    f"height='{bh:.1f}' fill='{colour}'>{tip}</rect>"
                )
    stats = (
        f"n {len(values):,} · min {_seconds(lo)} · median {_seconds(_quantile(values, 0.5))} · "
        f"p95 {_seconds(_quantile(values, 0.95))} · max {_seconds(hi)}"
    )
    return (
        f"<figure class='card'><figcaption><b>{escape(t.name)}</b><br>"
        f"<span class='small'>{stats}</span></figcaption>"
        f"<svg class='histogram' xmlns='http://www.w3.org/2000/svg' width='{w}' "
        f"height='{h + 14}' viewBox='0 0 {w} {h + 14}'>"
        f"<line x1='0' y1='{h + 0.5}' x2='{w}' y2='{h + 0.5}' class='tick'/>{''.join(bars)}"
        f"<text class='small' x='0' y='{h + 12}'>{_seconds(lo)}</text>"
        f"<text class='small' x='{w / 2}' y='{h + 12}' text-anchor='middle'>"
        f"{'log scale' if log else ''}</text>"
        f"<text class='small' x='{w}' y='{h + 12}' text-anchor='end'>{_seconds(hi)}</text>"
        "</svg></figure>"
    )


# ---------------------------------------------------------------------- resources


def _resources(tasks: list[_Task]) -> str:
    from .resources import ResourceError, time_seconds

    head = _head_row(
        "task", "cpus", "memory", "time limit", "other", "longest run", "p95 run",
        "of the limit", "memory used",
    )  # fmt: skip
    rows = []
    for t in tasks:
        res = dict(t.spec.get("resources", {}))
        cpus, mem, limit = res.pop("cpus", None), res.pop("mem", None), res.pop("time", None)
        other = ", ".join(f"{k}={v}" for k, v in sorted(res.items()) if v not in (None, "", []))
        runs = t.runs
        longest = runs[-1] if runs else None
        share = "–"
        if limit is not None and longest is not None:
            try:
                fraction = longest / time_seconds(limit)
            except ResourceError:
                fraction = None
            if fraction is not None:
                colour = COLOURS["FAILED"] if fraction > 0.9 else COLOURS["SUCCESS"]
                share = (
                    f"<span class='meter'><i style='width:{min(fraction, 1) * 100:.0f}%;"
                    f"background:{colour}'></i></span> {fraction:.0%}"
                )
        rows.append(
            f"<tr><td><b>{escape(t.name)}</b></td>"
            f"<td class='num'>{escape(str(cpus if cpus is not None else '–'))}</td>"
            f"<td class='num'>{escape(str(mem if mem is not None else '–'))}</td>"
            f"<td class='num'>{escape(str(limit if limit is not None else '–'))}</td>"
            f"<td>{escape(_short(other, 80)) or '–'}</td>"
            f"<td class='num'>{_seconds(longest) if longest is not None else '–'}</td>"
            f"<td class='num'>{_seconds(_quantile(runs, 0.95)) if runs else '–'}</td>"
            f"<td>{share}</td><td class='muted'>not recorded</td></tr>"
        )
    return (
        f"<table class='grid'>{head}{''.join(rows)}</table>"
        "<p class='note'>Requested: what each task asked for (<code>cpus=</code>, "
        "<code>mem=</code>, <code>time=</code> and scheduler options), as recorded with the "
        "run. Used: the store records how long each attempt ran, shown against the time "
        "limit; it does not record the memory or CPU an attempt used, so those are "
        "<em>not recorded</em> rather than guessed.</p>"
    )


# ---------------------------------------------------------------------- failures


def _failures(tasks: list[_Task]) -> str:
    import re

    # messages that differ only in their numbers ("diverged at step 5", "... step 22")
    # are one kind of failure, within one failure kind (an OOM is not an ERROR)
    groups: dict[tuple[str, str, str], list[tuple[str, bool, str, str]]] = {}
    for t in tasks:
        for failure in t.failures:
            shape = re.sub(r"\d+", "#", error_line(failure[2]))
            groups.setdefault((t.name, failure[3], shape), []).append(failure)
    if not groups:
        return "<p>No attempt failed.</p>"
    ordered = sorted(groups.items(), key=lambda kv: -len(kv[1]))
    total = sum(len(v) for v in groups.values())
    parts = [
        f"<p>{total:,} failed attempt{'s' if total != 1 else ''} in {len(groups):,} "
        f"group{'s' if len(groups) != 1 else ''} (same task, same failure kind, same error "
        "message up to its numbers). Attempts marked <em>retried</em> failed and were run "
        "again later.</p>"
    ]
    for n, ((task, kind, _), members) in enumerate(ordered[:_GROUPS_MAX]):
        parts.append(_failure_group(task, kind, members, open_=n < 3 and len(ordered) <= 3))
    if len(ordered) > _GROUPS_MAX:
        rest = sum(len(m) for _, m in ordered[_GROUPS_MAX:])
        parts.append(
            f"<p class='note'>and {len(ordered) - _GROUPS_MAX:,} more groups ({rest:,} failed "
            "attempts): see <code>status RUN_ID --errors</code>.</p>"
        )
    return "".join(parts)


def _failure_group(
    task: str, kind: str, members: list[tuple[str, bool, str, str]], open_: bool
) -> str:
    """One kind of failure of one task: how many, which instances, the first tracebacks."""
    members = sorted(members, key=lambda m: not m[1])  # the failures that stand first
    shown = members[:_TRACES_PER_GROUP]
    line = error_line(members[0][2])
    if any(error_line(text) != line for _, _, text, _ in members[1:]):
        line += "  (and the same with other numbers)"
    labels = [label + ("" if current else " (retried)") for label, current, _, _ in members]
    named = ", ".join(labels[:_LABELS_PER_GROUP])
    if len(labels) > _LABELS_PER_GROUP:
        named += f" and {len(labels) - _LABELS_PER_GROUP:,} more"
    traces = "".join(
        f"<details class='trace'{' open' if i == 0 else ''}><summary>{escape(label)}"
        f"{'' if current else ' (retried)'}</summary><pre>{escape(_tail(text))}</pre></details>"
        for i, (label, current, text, _) in enumerate(shown)
    )
    more = (
        f"<p class='small'>{len(members) - len(shown):,} more with the same message, "
        "not shown in full.</p>"
        if len(members) > len(shown)
        else ""
    )
    return (
        f"<details class='failure'{' open' if open_ else ''}><summary>"
        f"<span class='chip' style='background:{COLOURS['FAILED']}'>{len(members):,}</span> "
        f"<b>{escape(task)}</b>{_kind_tag(kind)}: <code>{escape(_short(line, 200))}</code>"
        "</summary>"
        f"<p class='small'>{escape(named)}</p>{traces}{more}</details>"
    )


def _kind_tag(kind: str) -> str:
    """A failure group's kind beside its task (` OOM`), nothing when it is not recorded."""
    return f" <span class='kind' data-kind='{escape(kind)}'>{escape(kind)}</span>" if kind else ""


def _tail(text: str) -> str:
    if len(text) <= _TRACE_CHARS:
        return text
    return f"[… {len(text) - _TRACE_CHARS:,} characters cut …]\n" + text[-_TRACE_CHARS:]


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;
margin:0 auto;max-width:1200px;padding:16px 24px;background:#fff}
h1{font-size:22px;margin:4px 0 10px}h2{font-size:17px;margin:28px 0 8px;
border-bottom:1px solid #d0d7de;padding-bottom:4px}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{background:#f6f8fa;padding:8px;overflow:auto;max-height:420px;white-space:pre-wrap}
.badge,.chip{display:inline-block;color:#fff;border-radius:10px;padding:0 8px;font-size:12px;
text-shadow:0 0 2px rgba(0,0,0,.45)}.badge{font-size:14px;vertical-align:middle}
.chip{margin:1px 2px}.kind{font-size:12px;font-weight:600;color:#cf222e;
border:1px solid #cf222e;border-radius:4px;padding:0 4px;margin-left:4px}
table{border-collapse:collapse}.facts th{text-align:left;padding:1px 12px 1px 0;
color:#57606a;font-weight:normal}.facts td{padding:1px 0}
.grid th,.grid td{border:1px solid #d0d7de;padding:3px 8px;vertical-align:top}
.grid th{background:#f6f8fa;text-align:left}.num{text-align:right;white-space:nowrap}
.note,.small,.muted{color:#57606a}.note{font-size:12.5px}.small{font-size:12px}
.scroll{overflow:auto;border:1px solid #d0d7de;border-radius:6px;background:#fff}
svg text{font-family:system-ui,sans-serif;font-size:12px;fill:#1f2328}
svg text.small,svg .edge-label{font-size:10.5px;fill:#57606a}svg text.name{font-weight:600}
svg .edge-label{text-anchor:middle}
.edge{fill:none;stroke:#8c959f;stroke-width:1.5}.tick{stroke:#d8dee4;stroke-width:1}
.legend span{margin-right:12px;font-size:12px;color:#57606a;white-space:nowrap}
.legend i{display:inline-block;width:11px;height:11px;margin-right:4px;border-radius:2px;
vertical-align:-1px}
.cards{display:flex;flex-wrap:wrap;gap:12px}.card{margin:0;border:1px solid #d0d7de;
border-radius:6px;padding:8px}.card figcaption{margin-bottom:4px}
.meter{display:inline-block;width:60px;height:8px;background:#eaeef2;border-radius:4px;
overflow:hidden;vertical-align:middle}.meter i{display:block;height:100%}
details.failure{border:1px solid #d0d7de;border-radius:6px;padding:6px 10px;margin:6px 0}
details.failure>summary{cursor:pointer}details.trace{margin:4px 0 4px 12px}
details.trace>summary{cursor:pointer;font-size:12.5px}
footer{margin-top:32px;color:#8c959f;font-size:12px}
"""
