"""What every pipeline here shares: counting real executions (tests/counting.py reads them)."""

from __future__ import annotations

import os


def record(name: str) -> None:
    """Append `name` to the file $RFTEST_CALLS names, if any, so tests count real executions."""
    path = os.environ.get("RFTEST_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")
