"""Kill reflow at hundreds of points and resume it; prints what it found.

    python benchmarks/crash_soak.py [--points 300] [--submit-points 30] [--seed 1] [--dir DIR]

Half of `--points` kill `pipeline.py run` (and the `retry`s resuming it)
in-process, half with `--max-workers 2`, over 1,000-instance runs;
`--submit-points` kill `submit --executor local` or dispatcher passes of its
chain (runs of `--submit-n` elements: every element is a process there).
The harness is tests/crash/harness.py: after each kill it checks that the
children are gone and that `status` says the owner is gone; at the end of each
run, the outputs, that nothing that was SUCCESS at a kill ran again, and that
no worker result was lost.  Exits 1 if anything must-be-0 is not.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "crash"))

from harness import Crasher, crash_runs, crash_submits  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300, help="kill points of run/retry")
    parser.add_argument("--submit-points", type=int, default=30, help="of submit/dispatcher")
    parser.add_argument("--n", type=int, default=1000, help="array elements of `run` pipelines")
    parser.add_argument("--submit-n", type=int, default=4, help="array elements under submit")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", help="where to put the runs (default: a temp dir, removed)")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ns.dir) as tmp:
        root = Path(tmp)
        # private config and local-job folders; no REFLOW_* setting from the caller
        os.environ["XDG_CACHE_HOME"] = str(root / "cache")
        os.environ["XDG_CONFIG_HOME"] = str(root / "config")
        for key in [k for k in os.environ if k.startswith("REFLOW_")]:
            del os.environ[key]
        started = time.monotonic()
        crashers: list[Crasher] = []
        timing: dict[str, float] = {}
        for workers in (1, 2):
            t = time.monotonic()
            crashers += crash_runs(
                root / f"run{workers}",
                workers=workers,
                points=ns.points // 2,
                seed=ns.seed * 10 + workers,
                n=ns.n,
            )
            timing[f"run, {workers} worker{'s' if workers > 1 else ''}"] = time.monotonic() - t
        if ns.submit_points:
            t = time.monotonic()
            crashers += crash_submits(
                root / "submit", points=ns.submit_points, seed=ns.seed, n=ns.submit_n
            )
            timing["submit --executor local"] = time.monotonic() - t
        wall = time.monotonic() - started
    kills = collections.Counter(k.what for c in crashers for k in c.kills)
    reruns = [r for c in crashers for r in c.reruns]
    lost = [r for c in crashers for r in c.lost]
    leftovers = [r for c in crashers for r in c.leftovers]
    problems = [p for c in crashers for p in c.problems]
    by_what = ", ".join(f"{n} {w}" for w, n in sorted(kills.items()))
    print(f"kill points                    {sum(kills.values())} ({by_what})")
    print(f"runs resumed to their end      {len(crashers)}")
    print(f"reruns of succeeded instances  {len(reruns)}  (must be 0)")
    print(f"lost worker results            {len(lost)}  (must be 0)")
    print(f"children outliving a kill      {len(leftovers)}  (must be 0)")
    print(f"other problems                 {len(problems)}  (must be 0)")
    for what, seconds in timing.items():
        print(f"time, {what:<24} {seconds:.1f} s")
    print(f"wall time                      {wall:.1f} s")
    for line in reruns + lost + leftovers + problems:
        print(line)
    return 1 if reruns or lost or leftovers or problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
