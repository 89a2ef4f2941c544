"""Text rendering for people: run status tables, live progress, the DAG (text, dot, mermaid)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .wiring import Graph

__all__ = [
    "DAG_FORMATS",
    "describe",
    "duration",
    "render_attempts",
    "render_dag",
    "render_progress",
    "render_status",
]

_ORDER = ("SUCCESS", "RUNNING", "SUBMITTED", "PENDING", "FAILED", "CANCELLED", "SKIPPED")
_TRACE_LINES = 15


def _where(inst: dict[str, Any]) -> str:
    idx = inst["array_index"]
    return inst["task_name"] if idx is None else f"{inst['task_name']}[{idx}]"


def render_status(doc: dict[str, Any], *, errors: bool = False) -> str:
    """A run's status: one line per task with state counts, failures beneath."""
    run = doc["run"]
    lines = [
        f"run {run['run_id']}  {run['status']}  (workflow {run['graph_name']}, "
        f"{run['executor']}, created {run['created_at']})",
        f"run dir: {run['run_dir']}",
    ]
    lines.extend(f"warning: {w}" for w in doc.get("warnings", []))
    why = (doc.get("dispatch_error") or "").rstrip()
    if why:  # the last dispatcher pass failed: its reason, as an instance's error is shown
        lines.append(f"dispatcher: {why.splitlines()[-1]}")
        if errors and len(why.splitlines()) > 1:
            lines.extend("    " + t for t in why.splitlines()[-_TRACE_LINES:])
    width = max([len(t) for t in doc["tasks"]] + [4])
    failed: dict[str, list[dict[str, Any]]] = {}
    problems = [
        *doc["failed_instances"],
        *doc.get("cancelled_instances", ()),
        *doc.get("skipped_instances", ()),
    ]
    for inst in sorted(
        problems, key=lambda i: -1 if i["array_index"] is None else i["array_index"]
    ):
        failed.setdefault(inst["task_name"], []).append(inst)
    for task in doc["tasks"]:
        counts = doc["summary"].get(task, {})
        if not counts:
            done = run["status"] == "SUCCESS"
            lines.append(
                f"  {task:<{width}}  {'0 instances (empty fan-out)' if done else 'not started'}"
            )
            continue
        total = sum(counts.values())
        parts = [f"{counts[s]} {s}" for s in _ORDER if counts.get(s)]
        cached = doc["cached"].get(task, 0)
        if cached:
            parts[0] += f" ({cached} cached)" if parts[0].endswith("SUCCESS") else ""
        took = doc.get("elapsed", {}).get(task)
        spent = f"  ({duration(took)})" if took is not None else ""
        retried = doc.get("retried", {}).get(task)
        again = f"; {retried} retried" if retried else ""
        lines.append(f"  {task:<{width}}  {total:>6}  " + ", ".join(parts) + again + spent)
        allowed = 1 + doc.get("retries", {}).get(task, 0)
        for inst in failed.get(task, []):
            job = f" job {inst['job_id']}" if inst["job_id"] else ""
            text = (inst["error_text"] or "").rstrip()
            last = text.splitlines()[-1] if text else ""
            note = _failure_note(inst, allowed) if inst["state"] == "FAILED" else ""
            lines.append(f"      {_where(inst)}  {inst['state']}{note}{job}: {last}")
            if errors and text and inst["state"] == "FAILED":
                tail = text.splitlines()[-_TRACE_LINES:]
                lines.extend("          " + t for t in tail)
    return "\n".join(lines)


def _failure_note(inst: dict[str, Any], allowed: int) -> str:
    """' (OOM, attempt 3 of 4)': a failed instance's kind and attempt, where they say something.

    `allowed`: 1 + the task's `retries`.  The attempt is shown once the task
    may retry or the instance was tried again: "3 of 4" when its automatic
    attempts began with the first and none was a requeue; else with what it
    used of its budget (`retries_used`, `requeues_used`: a manual `retry`
    starts a fresh budget, a preempted attempt is requeued without using it);
    "to be tried again" while a retry waits for its delay (`retry_pending`).
    """
    bits = [inst["failure_kind"]] if inst.get("failure_kind") else []
    attempt = inst.get("attempt") or 1
    used = inst.get("retries_used", attempt - 1)
    requeues = inst.get("requeues_used", 0)
    if attempt > 1 or allowed > 1:
        if attempt - used == 1 and not requeues and attempt <= allowed:
            bits.append(f"attempt {attempt} of {allowed}")
        else:
            spent = [f"{used} of {allowed - 1} retries used"] if allowed > 1 else []
            spent += [f"requeued {requeues}x"] if requeues else []
            bits.append(f"attempt {attempt}" + (f": {', '.join(spent)}" if spent else ""))
    if inst.get("retry_pending"):
        bits.append("to be tried again")
    return f" ({', '.join(bits)})" if bits else ""


def _resources_text(resources: dict[str, Any] | None) -> str:
    """What an attempt asked for, as `mem 240M, time 00:20:00, cpus 2` ("" when not known)."""
    if not resources:
        return ""
    order = sorted(resources, key=lambda k: (_RESOURCE_ORDER.get(k, 9), k))
    return ", ".join(f"{k} {resources[k]}" for k in order)


_RESOURCE_ORDER = {"mem": 0, "time": 1, "cpus": 2}


def _clock(stamp: str, day: str | None = None) -> str:
    """An ISO time as `2026-12-07 01:02:03`, its date left out when it is `day`."""
    date, _, rest = stamp.partition("T")
    clock = rest[:8]
    return clock if date == day else f"{date} {clock}"


def render_attempts(rows: list[dict[str, Any]], heading: str) -> list[str]:
    """The history of attempts (see `run.attempt_history`): each instance, its attempts beneath.

    Each attempt: its number, state, failure kind, resources, start and end,
    and the last line of its error.
    """
    lines = [heading]
    if not rows:
        return lines
    kinds = max(len(r["failure_kind"] or "") for r in rows)
    asked = [_resources_text(r["resources"]) for r in rows]
    wide = max(len(a) for a in asked)
    last: tuple[str, Any] | None = None
    for r, res in zip(rows, asked, strict=True):
        key = (r["task_name"], r["array_index"])
        if key != last:
            lines.append(f"  {_where(r)}")
            last = key
        if r.get("cached"):
            span = "reused from the cache"
        elif r["started_at"] is None:
            span = "not started" if r["state"] in ("PENDING", "SUBMITTED") else "did not run"
        else:
            day = r["started_at"].partition("T")[0]
            end = _clock(r["finished_at"], day) if r["finished_at"] else "(running)"
            span = f"{_clock(r['started_at'])} -> {end}"
        cells = [f"{r['attempt']:>4}", f"{r['state']:<9}"]
        if kinds:
            cells.append(f"{r['failure_kind'] or '':<{kinds}}")
        if wide:
            cells.append(f"{res:<{wide}}")
        cells.append(span)
        error = r.get("error")
        lines.append("  " + "  ".join(cells) + (f"  {error}" if error else ""))
    return lines


_EDGE = {
    "direct": "",
    "fanout": "fan-out",
    "gather": "gather",
    "chain": "chain",
    "broadcast": "broadcast",
}


def duration(seconds: float) -> str:
    """A span of time as a person reads it: 4.2 s, 3 m 07 s, 2 h 05 m."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60} m {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} m"


def render_progress(rows: list[dict[str, Any]]) -> list[str]:
    """One line per task: done/total, rate and ETA (see `run.task_progress`)."""
    width = max([len(r["task"]) for r in rows] + [4])
    lines = []
    for r in rows:
        total = "?" if r["total"] is None else str(r["total"])
        bits = [f"{r['done']:>7}/{total:<7}"]
        if r["rate"] and not r["finished"]:
            bits.append(f"{r['rate']:.0f}/s" if r["rate"] >= 100 else f"{r['rate']:.3g}/s")
        if r["finished"]:
            bits.append("done" + (f" in {duration(r['elapsed'])}" if r["elapsed"] else ""))
        elif r["eta"] is not None:
            bits.append(f"ETA {duration(r['eta'])}")
        elif r["elapsed"] is None:
            bits.append("waiting")
        if r["failed"]:
            bits.append(f"{r['failed']} failed")
        lines.append(f"  {r['task']:<{width}}  " + "  ".join(bits))
    return lines


#: the formats `dag --format` writes
DAG_FORMATS = ("text", "dot", "mermaid")


def render_dag(graph: Graph, fmt: str = "text") -> str:
    """The task graph as text (one task per line, edges beneath), Graphviz dot or mermaid."""
    if fmt == "dot":
        return _dag_dot(graph)
    if fmt == "mermaid":
        return _dag_mermaid(graph)
    return _dag_text(graph)


def _edges(graph: Graph) -> list[tuple[str, str, str, bool]]:
    """(upstream, downstream, label, order only) of every edge, in run order."""
    edges = []
    for name in graph.order:
        for inp in graph.inputs[name]:
            mode = _EDGE[inp.mode.value]
            for src in inp.sources:
                edges.append((src.step, name, f"{inp.arg} ({mode})" if mode else inp.arg, False))
        for dep in graph.tasks[name].after:
            edges.append((dep, name, "after", True))
    return edges


def _dot_string(text: str) -> str:
    """A DOT quoted string (an ID or a label) that says exactly `text`."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("\r", "").replace("\n", "\\n") + '"'


def _dag_dot(graph: Graph) -> str:
    lines = [f"digraph {_dot_string(graph.name)} {{", "  node [shape=box];"]
    for name in graph.order:
        if graph.tasks[name].array:  # an array task: a double border and the word
            lines.append(
                f"  {_dot_string(name)} [label={_dot_string(name + ' [array]')}, peripheries=2];"
            )
        else:
            lines.append(f"  {_dot_string(name)};")
    for up, down, label, order_only in _edges(graph):
        style = ", style=dashed" if order_only else ""
        lines.append(
            f"  {_dot_string(up)} -> {_dot_string(down)} [label={_dot_string(label)}{style}];"
        )
    lines.append("}")
    return "\n".join(lines)


def _mermaid_text(text: str) -> str:
    """A mermaid quoted label that shows `text` (its quotes and brackets as entity codes)."""
    out = text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return '"' + out.replace("\r", "").replace("\n", " ") + '"'


def _dag_mermaid(graph: Graph) -> str:
    # nodes get ids of their own (t0, t1, ...): a task's name is only ever a label
    ids = {name: f"t{k}" for k, name in enumerate(graph.order)}
    lines = ["flowchart TD"]
    for name in graph.order:
        if graph.tasks[name].array:  # an array task: the subroutine shape and the word
            lines.append(f"  {ids[name]}[[{_mermaid_text(name + ' [array]')}]]")
        else:
            lines.append(f"  {ids[name]}[{_mermaid_text(name)}]")
    for up, down, label, order_only in _edges(graph):
        arrow = "-.->" if order_only else "-->"
        lines.append(f"  {ids[up]} {arrow}|{_mermaid_text(label)}| {ids[down]}")
    return "\n".join(lines)


def _dag_text(graph: Graph) -> str:
    """The task graph, one task per line in run order, each with the edges feeding it."""
    lines = [f"workflow {graph.name}: {len(graph.order)} tasks"]
    for name in graph.order:
        spec = graph.tasks[name]
        kind = "array" if spec.array else "task"
        lines.append(f"  {name}  [{kind}]")
        for inp in graph.inputs[name]:
            mode = _EDGE[inp.mode.value]
            steps = " + ".join(s.step for s in inp.sources)
            label = f" ({mode})" if mode else ""
            lines.append(f"    <- {steps}{label} as {inp.arg}")
        for dep in spec.after:
            lines.append(f"    <- {dep} (after: order only)")
    return "\n".join(lines)


def describe(graph: Graph) -> dict[str, Any]:
    """The workflow as plain data: tasks, wiring, resources and parameters."""
    from .params import MISSING, type_name

    tasks = []
    for name in graph.order:
        spec = graph.tasks[name]
        tasks.append(
            {
                "name": name,
                "array": spec.array,
                "version": spec.version,
                "cache": spec.cache,
                "verify": spec.verify is not None,
                "returns": type_name(spec.returns),
                "after": list(spec.after),
                "inputs": [
                    {
                        "arg": i.arg,
                        "steps": [s.step for s in i.sources],
                        "mode": i.mode.value,
                    }
                    for i in graph.inputs[name]
                ],
                "params": graph.param_keys(name),
                "resources": {
                    "cpus": spec.cpus,
                    "time": spec.time,
                    "mem": spec.mem,
                    "array_parallelism": spec.array_parallelism,
                    **dict(spec.options),
                },
            }
        )
    params = [
        {
            "name": p.key,
            "flag": p.flag,
            "short": p.short,
            "type": type_name(p.annotation),
            "required": p.default is MISSING,
            "default": None if p.default is MISSING else p.default,
            "help": p.help,
            "tasks": list(p.tasks),
        }
        for p in graph.params.values()
    ]
    return {"workflow": graph.name, "tasks": tasks, "params": params}
