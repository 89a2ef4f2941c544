"""What the benchmark scripts share: one size measured in a fresh process, growth lines.

Each size runs in its own process so that its peak RSS is its own; the child
prints its measurements as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
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


def sizes_main(
    script: str,
    doc: str,
    defaults: list[int],
    one: Callable[[int, int], dict[str, float]],
    *,
    title: str,
    header: str,
    row: Callable[[int, dict[str, Any]], str],
    symbol: str,
) -> None:
    """The command line of a benchmark over sizes: each size in a child, growth lines.

    `one(n, repeat)` measures one size in the child; `row(n, measures)` is its
    printed line; growth is of the best time ("best"), between sizes ten apart.
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=defaults)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.repeat)))
        return
    print(f"{title}, best of {args.repeat} (median)")
    print(header)
    previous: tuple[int, float] | None = None
    for n in args.sizes:
        m = in_child(script, n, args.repeat)
        print(row(n, m))
        if previous and n == previous[0] * 10:
            print(growth_line(symbol, {"": m["best"] / previous[1]}))
        previous = (n, m["best"])
