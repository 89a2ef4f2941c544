"""What the benchmark scripts share: one size measured in a fresh process, growth lines.

Each size runs in its own process so that its peak RSS is its own; the child
prints its measurements as one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

TARGET_GROWTH = 12.0


def in_child(script: str, n: int, repeat: int, *extra: str) -> dict[str, Any]:
    """Run `script --one n --repeat repeat [extra]` and return the JSON it prints."""
    out = subprocess.run(
        [sys.executable, script, "--one", str(n), "--repeat", str(repeat), *extra],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def growth_line(symbol: str, ratios: dict[str, float]) -> str:
    """The growth-ratio line printed under the larger of two sizes ten times apart."""
    what = ", ".join(f"{name} {r:.1f}" if name else f"{r:.1f}" for name, r in ratios.items())
    return f"{'':>7} growth t(10{symbol})/t({symbol}): {what}  (target <= {TARGET_GROWTH:g})"
