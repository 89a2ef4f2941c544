"""What the executor tests share: tests/golden/ and the job commands they render.

`check_golden(name, text)` compares a rendered job script with
tests/golden/<name>; `UPDATE_GOLDEN=1` rewrites the file (review the diff).
"""

from __future__ import annotations

import os
from pathlib import Path

GOLDEN = Path(__file__).resolve().parent / "golden"

# a worker command as the dispatcher writes it (the argv of the job)
WORKER = [
    "/opt/venv/bin/python",
    "-m",
    "reflow.worker",
    "--wave",
    "/scratch/runs/r1/work/etl-20260401-a1b2/transform.0.1.0.jsonl",
    "--run-dir",
    "/scratch/runs/r1",
    "--origin",
    '{"script": "/home/ana/etl pipeline/etl.py"}',
    "--workflow",
    "etl",
]
DISPATCH = ["/opt/venv/bin/python", "-m", "reflow.dispatch", "--run-id", "etl-20260401-a1b2"]


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>; UPDATE_GOLDEN=1 rewrites it (review the diff)."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text(), f"the script differs from {path}"
