"""Text rendering for people: run status tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .wiring import Graph

__all__ = ["describe", "render_dag", "render_status"]

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
        lines.append(f"  {task:<{width}}  {total:>6}  " + ", ".join(parts))
        for inst in failed.get(task, []):
            job = f" job {inst['job_id']}" if inst["job_id"] else ""
            text = (inst["error_text"] or "").rstrip()
            last = text.splitlines()[-1] if text else ""
            lines.append(f"      {_where(inst)}  {inst['state']}{job}: {last}")
            if errors and text and inst["state"] == "FAILED":
                tail = text.splitlines()[-_TRACE_LINES:]
                lines.extend("          " + t for t in tail)
    return "\n".join(lines)


_EDGE = {
    "direct": "",
    "fanout": "fan-out",
    "gather": "gather",
    "chain": "chain",
    "broadcast": "broadcast",
}


def render_dag(graph: Graph) -> str:
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
