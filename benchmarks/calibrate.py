"""How fast this machine is right now: a fixed pure-Python workload, best of 5.

    python benchmarks/calibrate.py

The shared 2-core machines these figures come from vary by up to 2x over an
hour (other virtual machines on the host); run this before and after the
other benchmarks and quote it with them, so figures taken at different times
can be compared.  The workload (hashing, dict and list work, string
formatting: what the engine does per instance) takes about 0.25 s on a quiet
machine of this kind.
"""

from __future__ import annotations

import hashlib
import time


def workload() -> float:
    t0 = time.perf_counter()
    rows: dict[int, tuple[str, int]] = {}
    for i in range(100_000):
        text = f'{{"inputs":{{"item":"{i:064x}"}},"task":"work"}}'
        rows[i] = (hashlib.sha256(text.encode()).hexdigest(), i * 2)
    sorted(rows.values())
    return time.perf_counter() - t0


def main() -> None:
    best = min(workload() for _ in range(5))
    print(f"calibration: {best:.3f} s (a quiet machine of this kind: about 0.25 s)")


if __name__ == "__main__":
    main()
