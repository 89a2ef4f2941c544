"""Benchmark: reflow against reflow-hpc 2604.4.0 on a real cluster, runs alternating.

    python benchmarks/cluster_vs_peer.py [--scheduler slurm|sge] [--rounds 3]
                                         [--cases fanout100,chain20,fanout1000]

Needs the Slurm (or Grid Engine) test cluster running (scripts/*-test-cluster).
reflow-hpc is installed from the package index into its own virtualenv
(~/.cache/reflow-bench/reflow-hpc-2604.4.0, made once); it is never vendored.
Both engines run the same pipeline scripts (benchmarks/slurm_pipelines/)
through their command line (`python pipeline.py submit --run-dir ...`), each
with its default configuration and a fresh store per run, one run at a time,
the engines alternating within every round.  For each run: the wall time from
starting `submit` until the store records the run's end (read-only, every
0.2 s), the state, whether the checked output
is right, and from the scheduler's accounting (Slurm's sacct) the jobs
submitted (sbatch calls), the scheduler tasks (array elements count one each)
and so the Python processes started (one per scheduler task, plus the
submitting one).  A run left RUNNING with no job queued for 30 s is reported
STUCK (an engine whose submission failed).  Prints a table of medians and the
ratio reflow / reflow-hpc.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEER = "reflow-hpc==2604.4.0"
PEER_VENV = Path.home() / ".cache" / "reflow-bench" / "reflow-hpc-2604.4.0"

# name -> (pipeline module, parameters, task whose output is checked, expected output)
CASES = {
    "fanout100": ("fanout", {"n": 100}, "total", sum(2 * i + 1 for i in range(100))),
    "chain20": ("chain", {"start": 1}, "t19", 20),
    "fanout1000": ("fanout", {"n": 1000}, "total", sum(2 * i + 1 for i in range(1000))),
}
TARGETS = {"fanout100": 0.4, "chain20": 0.2, "fanout1000": 0.1}  # issue 13: at most this ratio


def peer_python() -> Path:
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        print(f"installing {PEER} into {PEER_VENV} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", PEER],
            check=True,
        )
    return python


def accounting(scheduler: str, since: float) -> tuple[int, int]:
    """(jobs submitted, scheduler tasks) since `since`, from the scheduler's accounting.

    Jobs count by their submission time (the runs are one at a time, seconds
    apart); accounting lags the jobs a little, so it is read until it agrees
    with itself twice.
    """
    last: tuple[int, int] | None = None
    for _ in range(15):
        found = _accounting_once(scheduler, since)
        if found == last:
            return found
        last = found
        time.sleep(1.0)
    return last or (0, 0)


def _accounting_once(scheduler: str, since: float) -> tuple[int, int]:
    if scheduler == "slurm":
        start = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(since - 60))
        out = subprocess.run(
            ["sacct", "-X", "-n", "-P", "-S", start, "-E", "now", "-o", "JobID,Submit"],
            capture_output=True, text=True, check=False,
        ).stdout  # fmt: skip
        tasks = []
        for line in out.splitlines():
            job, _, submitted = line.partition("|")
            try:
                when = time.mktime(time.strptime(submitted, "%Y-%m-%dT%H:%M:%S"))
            except ValueError:
                continue
            if when >= int(since):
                tasks.append(job)
        return len({j.split("_")[0] for j in tasks}), len(tasks)
    out = subprocess.run(
        ["qacct", "-j", "*", "-b", time.strftime("%Y%m%d%H%M.%S", time.localtime(since))],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    tasks = [line.split()[1] for line in out.splitlines() if line.startswith("jobnumber")]
    return len(set(tasks)), len(tasks)


def _engine_env(engine: str, work: Path, scheduler: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        REFLOW_STORE_PATH=str(work / "manifest.db"),
        REFLOW_MODE="sbatch" if scheduler == "slurm" else "qsub-sge",
        XDG_CONFIG_HOME=str(work / "xdg"),  # no config file: each engine's defaults
    )
    env.pop("PYTHONPATH", None)
    if engine == "reflow":  # this checkout, also in the jobs (they inherit the environment)
        env["PYTHONPATH"] = str(ROOT / "src")
    return env


def _run_state(store: Path) -> tuple[str, str] | None:
    """(run id, status) of the one run in a fresh store, read-only; None before it exists."""
    if not store.exists():
        return None
    try:
        conn = sqlite3.connect(f"{store.as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            row = conn.execute("SELECT run_id, status FROM runs").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return (str(row[0]), str(row[1])) if row else None


_OUTPUT = (
    "import json, sys\n"
    "from reflow.stores.sqlite import SqliteStore\n"
    "print(json.dumps(SqliteStore(sys.argv[1]).get_singleton_output(sys.argv[2], sys.argv[3])))"
)


def _queue_empty(scheduler: str) -> bool:
    argv = ["squeue", "-h", "-o", "%i"] if scheduler == "slurm" else ["qstat", "-u", "*"]
    out = subprocess.run(argv, capture_output=True, text=True, check=False).stdout
    return not out.strip()


def one_run(engine: str, python: Path, case: str, scheduler: str, tmp: Path) -> dict[str, object]:
    """Submit one run through the pipeline script's CLI and wait for its end."""
    pipeline, params, check, expected = CASES[case]
    work = Path(tempfile.mkdtemp(prefix=f"{engine}-{case}-", dir=tmp))
    env = _engine_env(engine, work, scheduler)
    flags = [x for k, v in params.items() for x in (f"--{k}", str(v))]
    script = HERE / "slurm_pipelines" / f"{pipeline}.py"
    started = time.time()
    t0 = time.monotonic()
    done = subprocess.run(
        [str(python), str(script), "submit", "--run-dir", str(work / "run"), *flags],
        capture_output=True, text=True, env=env, cwd=work, check=False, timeout=600,
    )  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"{engine} {case}: submit failed:\n{done.stdout}\n{done.stderr}")
    store = work / "manifest.db"
    state = "RUNNING"
    run_id = ""
    idle_since: float | None = None
    while time.monotonic() - t0 < 1800:
        found = _run_state(store)
        if found is not None:
            run_id, state = found
            if state not in ("RUNNING", "PENDING"):
                break
        # the runs go one at a time on a cluster of our own: a run still RUNNING with no
        # job queued for 30 s will not move any more (an engine whose submission failed)
        if _queue_empty(scheduler):
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 30:
                state = "STUCK"
                break
        else:
            idle_since = None
        time.sleep(0.2)
    wall = time.monotonic() - t0
    out = subprocess.run(
        [str(python), "-c", _OUTPUT, str(store), run_id, check],
        capture_output=True, text=True, env=env, cwd=work, check=False,
    )  # fmt: skip
    try:
        output: object = json.loads(out.stdout)
    except ValueError:
        output = (out.stderr.strip().splitlines() or ["no output"])[-1]
    jobs, tasks = accounting(scheduler, started)
    return {
        "state": state, "wall": wall, "output": output, "ok": output == expected,
        "jobs": jobs, "tasks": tasks, "pythons": tasks + 1,
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scheduler", choices=("slurm", "sge"), default="slurm")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cases", default="fanout100,chain20,fanout1000")
    ns = ap.parse_args()
    cases = [c for c in ns.cases.split(",") if c]
    for c in cases:
        if c not in CASES:
            sys.exit(f"unknown case {c!r}: use {', '.join(CASES)}")
    engines = {"reflow": Path(sys.executable), "reflow-hpc": peer_python()}
    results: dict[tuple[str, str], list[dict[str, object]]] = {}
    with tempfile.TemporaryDirectory(prefix="reflow-vs-peer-", dir=os.environ.get("TMPDIR")) as d:
        for r in range(ns.rounds):
            for case in cases:
                order = list(engines) if r % 2 == 0 else list(reversed(engines))
                for engine in order:
                    doc = one_run(engine, engines[engine], case, ns.scheduler, Path(d))
                    results.setdefault((engine, case), []).append(doc)
                    print(
                        f"round {r + 1} {case:<11} {engine:<10} {doc['state']:<8} "
                        f"{doc['wall']:6.1f} s  jobs {doc['jobs']:>4}  tasks {doc['tasks']:>5}"
                        f"  output {'ok' if doc['ok'] else doc['output']}",
                        flush=True,
                    )
    print(f"\n{ns.scheduler}, medians of {ns.rounds} runs each, engines alternating")
    print(
        f"{'case':<11} {'engine':<10} {'wall s':>7} {'jobs':>5} {'tasks':>6} {'pythons':>8} "
        f"{'outputs':>8} {'ratio':>6} {'target':>7}"
    )
    for case in cases:
        walls = {
            e: statistics.median(float(x["wall"]) for x in results[(e, case)]) for e in engines
        }
        for engine in engines:
            docs = results[(engine, case)]
            peer_ok = all(x["state"] == "SUCCESS" for x in results[("reflow-hpc", case)])
            ratio = (
                walls["reflow"] / walls["reflow-hpc"] if engine == "reflow" and peer_ok else None
            )
            target = TARGETS.get(case)
            print(
                f"{case:<11} {engine:<10} {walls[engine]:7.1f} "
                f"{statistics.median(int(x['jobs']) for x in docs):5.0f} "
                f"{statistics.median(int(x['tasks']) for x in docs):6.0f} "
                f"{statistics.median(int(x['pythons']) for x in docs):8.0f} "
                f"{sum(bool(x['ok']) for x in docs)}/{len(docs):<6} "
                + (f"{ratio:6.2f} {'<= ' + str(target):>7}" if ratio is not None else "")
                + (
                    "  (reflow-hpc did not finish: no ratio)"
                    if engine == "reflow" and not peer_ok
                    else ""
                )
            )


if __name__ == "__main__":
    main()
