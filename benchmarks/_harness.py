"""What the benchmark scripts share: sizes measured in turns, each in a fresh process.

Each measurement runs in a child process of its own (so its peak RSS is its
own), which prints its figures as one JSON object.  The sizes take turns:
round r measures every size once before round r + 1 starts.  These shared
machines change speed by up to 2x within minutes, so measuring N now and 10N
a minute later made the growth ratio t(10N)/t(N) swing from 8 to 16 between
two runs of the same code; in turns, both sizes see the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

TARGET_GROWTH = 12.0


def in_child(script: str, n: int, *extra: str) -> dict[str, Any]:
    """Run `script --one n [extra]` and return the JSON it prints."""
    out = subprocess.run(
        [sys.executable, script, "--one", str(n), *extra],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    result: dict[str, Any] = json.loads(out)
    return result


def in_turns(
    script: str, sizes: Sequence[int], rounds: int, times: Sequence[str], *extra: str
) -> dict[int, dict[str, Any]]:
    """Measure every size `rounds` times, in turns; combine each size's samples.

    For each name in `times`: its best (the name itself) and its median
    (`<name>_median`) over the rounds; any other figure: its largest value.
    """
    samples: dict[int, list[dict[str, Any]]] = {n: [] for n in sizes}
    for _ in range(rounds):
        for n in sizes:
            samples[n].append(in_child(script, n, *extra))
    combined: dict[int, dict[str, Any]] = {}
    for n, got in samples.items():
        m: dict[str, Any] = {k: max(s[k] for s in got) for k in got[0] if k not in times}
        for name in times:
            values = [s[name] for s in got]
            m[name], m[f"{name}_median"] = min(values), statistics.median(values)
        combined[n] = m
    return combined


def growth_line(symbol: str, ratios: dict[str, float]) -> str:
    """The growth-ratio line printed under the larger of two sizes ten times apart."""
    what = ", ".join(f"{name} {r:.1f}" if name else f"{r:.1f}" for name, r in ratios.items())
    return f"{'':>7} growth t(10{symbol})/t({symbol}): {what}  (target <= {TARGET_GROWTH:g})"


def sizes_main(
    script: str,
    doc: str,
    defaults: list[int],
    one: Callable[[int], dict[str, float]],
    *,
    title: str,
    header: str,
    row: Callable[[int, dict[str, Any]], str],
    symbol: str,
    times: Sequence[str] = ("wall",),
) -> None:
    """The command line of a benchmark over sizes: sizes in turns, growth lines.

    `one(n)` makes one measurement in the child, with its wall time as "wall"
    (and any other times named in `times`); `row(n, m)` is a size's printed
    line, with m["wall"] the best and m["wall_median"] the median over the
    rounds; growth is of the best wall times, between sizes ten apart.
    """
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("sizes", nargs="*", type=int, default=defaults)
    ap.add_argument("--repeat", type=int, default=5, help="rounds: each size is measured R times")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one)))
        return
    print(f"{title}, best of {args.repeat} (median), the sizes measured in turns")
    print(header)
    measured = in_turns(script, args.sizes, args.repeat, times)
    previous: tuple[int, float] | None = None
    for n in args.sizes:
        m = measured[n]
        print(row(n, m))
        if previous and n == previous[0] * 10:
            print(growth_line(symbol, {"": m["wall"] / previous[1]}))
        previous = (n, m["wall"])
