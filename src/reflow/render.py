"""Text rendering for people: run status tables."""

from __future__ import annotations

from typing import Any

__all__ = ["render_status"]

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
    width = max([len(t) for t in doc["tasks"]] + [4])
    failed: dict[str, list[dict[str, Any]]] = {}
    for inst in doc["failed_instances"]:
        failed.setdefault(inst["task_name"], []).append(inst)
    for task in doc["tasks"]:
        counts = doc["summary"].get(task, {})
        if not counts:
            lines.append(f"  {task:<{width}}  not started")
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
