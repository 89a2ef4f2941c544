"""Benchmark: the fixed cost of a job, `python -m reflow worker` up to the user's function.

    python benchmarks/worker_startup.py [--repeat K]        (default K = 15)

Makes a one-task pipeline whose script imports nothing but reflow and whose
function returns at once, and the wave file a dispatcher would write for it,
then times fresh processes of this checkout's reflow (PYTHONPATH=src):

- `python -c pass`: the interpreter's own floor, which reflow cannot go below;
- `python -m reflow worker ...` running the instance: start-up, loading the
  pipeline, running it, writing its result file and its log lines;
- the same for an instance submitted ahead of its inputs (it opens the store
  and resolves its input from the upstream's result file).

reflow's own share is the worker's time minus the floor (the task itself and
the user's imports are nothing here).  Target (issue 13): at most 30 ms.
Last, the modules the worker imports, from `-X importtime`, largest first.
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


def timed(argv: list[str], env: dict[str, str], repeat: int) -> list[float]:
    times = []
    subprocess.run(argv, env=env, check=True, capture_output=True)  # warm the caches
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
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
        rows = {
            "python -c pass (floor)": [sys.executable, "-c", "pass"],
            "worker, one instance": [*worker, "--wave", f"{info['work']}/first.jsonl"],
            "worker, submitted ahead": [*worker, "--wave", f"{info['work']}/second.jsonl"],
        }
        results = {name: timed(argv, env, ns.repeat) for name, argv in rows.items()}
        floor = min(results["python -c pass (floor)"])
        print(f"python {sys.version.split()[0]}; {os.cpu_count()} CPUs; {ns.repeat} runs each")
        print(f"{'command':<28} {'best ms':>8} {'med. ms':>8} {'share ms':>9}  target")
        for name, times in results.items():
            best, med = min(times), statistics.median(times)
            share = "" if "floor" in name else f"{best - floor:9.1f}"
            mark = ""
            if share:
                mark = f"<= {TARGET_MS:.0f} ms " + ("ok" if best - floor <= TARGET_MS else "MISSED")
            print(f"{name:<28} {best:8.1f} {med:8.1f} {share:>9}  {mark}")
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
