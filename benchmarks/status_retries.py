"""Benchmark: what retries and failure kinds cost `status` at 100,000 instances.

    python benchmarks/status_retries.py [N] [--rounds K] [--src DIR ...]
                                  (default: N = 100000, K = 15, this checkout's src)

1. For each `--src` (e.g. main's source from `git archive`, and this
   checkout's), a run of benchmarks/cli.py's fan-out / gather pipeline with N
   elements is built with that source in a store of its own; then `status
   RUN_ID` of each is timed in turns (round r runs every source once before
   round r + 1), so that a machine whose speed drifts treats all alike: the
   before/after of the text `status` on a run without retries.
2. With this checkout's source only (older ones have no `retries=`): a run
   whose `work` has `retries=1`, where 1% of the elements fail once and 0.1%
   fail every time (so N / 100 + N / 1000 instances were retried and N / 1000
   failed),
   and the time of `status`, `status --errors`, `status --attempts` and
   `status --json` on it (in turns, at most 7 rounds).

Each command runs in a fresh process, its output to /dev/null, after one
warm-up run (which also writes the byte-code a normal installation has).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

PIPELINE = """
from pathlib import Path
from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("bench-retries")
MARKS = Path(__file__).with_name("marks")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job({retries})
def work(item: Annotated[int, Result(step="split")]) -> int:
    if item % 1000 == 7:
        raise RuntimeError(f"item {{item}} always fails")
    if item % 100 == 3:
        mark = MARKS / str(item)
        if not mark.exists():  # fails on its first attempt only
            MARKS.mkdir(exist_ok=True)
            mark.touch()
            raise RuntimeError(f"item {{item}} failed once")
    return item * 2


@wf.job()
def total(items: Annotated[list[int], Result(step="work")]) -> int:
    return sum(items)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
"""


def _env(src: Path) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(src), REFLOW_CONFIG="")
    env["XDG_CONFIG_HOME"] = "/nonexistent-reflow-bench"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def build(folder: Path, src: Path, n: int, *, retries: bool) -> tuple[Path, str]:
    """A run of N elements built with `src` in a store of its own: (script, run id)."""
    folder.mkdir(parents=True)
    script = folder / "pipeline.py"
    script.write_text(PIPELINE.format(retries="retries=1" if retries else ""))
    store = folder / "store.db"
    subprocess.run(
        [PY, str(script), "run", "--run-dir", str(folder / "run"), "--store-path", str(store),
         "--n", str(n), "--on-error", "continue"],
        env=_env(src), stdout=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    out = subprocess.run(
        [PY, str(script), "runs", "--json", "--last", "1", "--store-path", str(store)],
        env=_env(src), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return script, str(json.loads(out)[0]["run_id"])


def once(script: Path, run_id: str, src: Path, *extra: str) -> float:
    store = script.with_name("store.db")
    argv = [PY, str(script), "status", run_id, "--store-path", str(store), *extra]
    t0 = time.perf_counter()
    subprocess.run(argv, env=_env(src), stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def line(label: str, walls: list[float]) -> str:
    best, median = min(walls) * 1000, statistics.median(walls) * 1000
    return f"{label:<52} best {best:>7.1f} ms  median {median:>7.1f} ms"


def main(argv: list[str]) -> None:
    rounds, srcs = 15, []
    while "--rounds" in argv:
        i = argv.index("--rounds")
        rounds = int(argv[i + 1])
        del argv[i : i + 2]
    while "--src" in argv:
        i = argv.index("--src")
        srcs.append(Path(argv[i + 1]).resolve())
        del argv[i : i + 2]
    srcs = srcs or [ROOT / "src"]
    n = int(argv[0]) if argv else 100_000
    print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; {rounds} rounds; N={n}")
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        plain = {src: build(tmp / f"plain{k}", src, n, retries=False) for k, src in enumerate(srcs)}
        walls: dict[Path, list[float]] = {src: [] for src in srcs}
        for r in range(rounds + 1):
            for src, (script, run_id) in plain.items():
                took = once(script, run_id, src)
                if r:  # round 0 warms up
                    walls[src].append(took)
        for src in srcs:
            print(line(f"status, no retries  ({src})", walls[src]))
        mine = ROOT / "src"
        script, run_id = build(tmp / "retried", mine, n, retries=True)
        extras = ((), ("--errors",), ("--attempts",), ("--json",))
        took: dict[tuple[str, ...], list[float]] = {e: [] for e in extras}
        for r in range(min(rounds, 7) + 1):  # in turns too; round 0 warms up
            for extra in extras:
                wall = once(script, run_id, mine, *extra)
                if r:
                    took[extra].append(wall)
        retried, failed = n // 100 + n // 1000, n // 1000
        for extra, walls_of in took.items():
            label = f"status {' '.join(extra)}, {retried:,} retried, {failed:,} failed"
            print(line(label.replace("status ,", "status,"), walls_of))
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main(sys.argv[1:])
