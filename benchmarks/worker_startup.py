"""Benchmark: the fixed cost of a job, `python -m reflow worker` up to the user's function.

    python benchmarks/worker_startup.py [--repeat K]        (default K = 30)

Makes a two-task pipeline whose functions return at once (its script imports
reflow and `typing.Annotated`, for its `Result` wiring), and the wave files a
dispatcher would write for it, then times fresh processes of this checkout's
reflow (PYTHONPATH=src), the rows taking turns so that the machine's noise
falls on all of them alike:

- `python -c pass`: the interpreter's own floor, which reflow cannot go below;
- `python -c "from typing import Annotated"`: the floor plus the script's own
  imports, which are the user's, not reflow's;
- `python -m reflow worker ...` running the first task's instance: start-up,
  loading the pipeline, running it, writing its result file and log lines;
- the same for the second task's instance, submitted ahead of its input: it
  also opens the store and resolves its input from the upstream's result
  file and the store's cache.

reflow's own share is the worker's time minus the floor with the user's
imports (best of K, and median of K); the share over the bare interpreter is
shown too, charging the script's `typing` import to reflow.  Target
(issue 13): at most 30 ms.  Last, the modules the worker imports, from
`-X importtime`, largest first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 30.0

PIPELINE = """
from typing import Annotated
from reflow import Result, Workflow

wf = Workflow("startup")


@wf.job()
def first(x: int = 1) -> int:
    return x


@wf.job()
def second(x: Annotated[int, Result(step="first")]) -> int:
    return x + 1


if __name__ == "__main__":
    raise SystemExit(wf.cli())
"""

SETUP = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from reflow.instances import Work, execute
from reflow.results import run_files, write_result, write_wave
from reflow.stores import open_store
import pipeline
tmp = Path(sys.argv[2])
store = open_store(tmp / "manifest.db")
graph = pipeline.wf.validate()
from reflow.runner import task_rows
run_id = store.create_run("startup", run_dir=str(tmp / "run"), executor="local", params="{}",
                          options="{}", tasks=task_rows(graph))
work = run_files(tmp / "run", run_id, "work")
write_wave(work / "first.jsonl", run_id, [Work("first", -1, 1, {"x": 1})])
write_result(tmp / "run", run_id, execute(pipeline.wf.tasks["first"].func,
             Work("first", -1, 1, {"x": 1})), "job-1")
deferred = {"store": store.location, "upstream": {"first": [[-1, 1]]}, "no_cache": False,
            "verify": False}
write_wave(work / "second.jsonl", run_id, [Work("second", -1, 1, {})], deferred)
print(json.dumps({"run_id": run_id, "work": str(work)}))
"""


def timed(rows: dict[str, list[str]], env: dict[str, str], repeat: int) -> dict[str, list[float]]:
    """Wall times in ms of each row's command, the rows taking turns."""
    times: dict[str, list[float]] = {name: [] for name in rows}
    for argv in rows.values():
        subprocess.run(argv, env=env, check=True, capture_output=True)  # warm the caches
    for _ in range(repeat):
        for name, argv in rows.items():
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, check=True, capture_output=True)
            times[name].append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=30)
    ns = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "pipeline.py").write_text(PIPELINE)
        env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), HOME=str(tmp))
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(tmp), str(tmp)],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        info = json.loads(setup.stdout)
        origin = json.dumps({"script": str(tmp / "pipeline.py")})
        worker = [sys.executable, "-m", "reflow", "worker", "--run-dir", str(tmp / "run"),
                  "--origin", origin, "--workflow", "startup"]  # fmt: skip
        bare, user = "python -c pass (floor)", "python + the script's imports"
        rows = {
            bare: [sys.executable, "-c", "pass"],
            user: [sys.executable, "-c", "from typing import Annotated"],
            "worker, one instance": [*worker, "--wave", f"{info['work']}/first.jsonl"],
            "worker, submitted ahead": [*worker, "--wave", f"{info['work']}/second.jsonl"],
        }
        results = timed(rows, env, ns.repeat)
        best = {name: min(times) for name, times in results.items()}
        med = {name: statistics.median(times) for name, times in results.items()}
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; {ns.repeat} runs each")
        print(f"{'command':<30} {'best':>6} {'median':>7}   reflow's share: best, median "
              "(over the bare floor)")  # fmt: skip
        for name in rows:
            line = f"{name:<30} {best[name]:6.1f} {med[name]:7.1f}"
            if name.startswith("worker"):
                share, share_med = best[name] - best[user], med[name] - med[user]
                verdict = "ok" if share <= TARGET_MS else "MISSED"
                line += (
                    f"   {share:5.1f} {share_med:5.1f}  ({best[name] - best[bare]:.1f}, "
                    f"{med[name] - med[bare]:.1f})  <= {TARGET_MS:.0f} ms {verdict}"
                )
            print(line)
        imports = subprocess.run(
            [*rows["worker, submitted ahead"][:1], "-X", "importtime",
             *rows["worker, submitted ahead"][1:]],
            env=env, capture_output=True, text=True, check=False,
        ).stderr  # fmt: skip
        log = (tmp / "run" / "logs" / "second" / "single.err").read_text()
        own = [
            line.split("|")
            for line in (imports + log).splitlines()
            if line.startswith("import time:") and "reflow" in line.split("|")[-1]
        ]
        top = sorted(own, key=lambda p: -int(p[0].split(":")[1]))[:12]
        print("\nreflow modules the worker imports (self us, -X importtime):")
        print("  " + ", ".join(f"{p[2].strip()} {int(p[0].split(':')[1])}" for p in top))


if __name__ == "__main__":
    main()
