"""Benchmark: submit() on the Slurm test cluster; wall time and scheduler calls.

    python benchmarks/slurm_waves.py            (needs scripts/slurm-test-cluster running)

Two pipelines: a 3-stage fan-out of 100 (split -> 100 x work -> 100 x again ->
total) and a chain of 20 singleton tasks.  Every sbatch and sacct call, in this
process and in the chained dispatcher jobs, is counted through wrapper scripts
named by REFLOW_SBATCH / REFLOW_SACCT.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def wrappers(tmp: Path) -> Path:
    log = tmp / "calls.log"
    for name in ("sbatch", "sacct", "squeue"):
        real = shutil.which(name)
        if real is None:
            sys.exit(f"{name} not found: start scripts/slurm-test-cluster/start-slurm.sh first")
        script = tmp / name
        script.write_text(f'#!/bin/sh\necho {name} >> "{log}"\nexec "{real}" "$@"\n')
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        os.environ[f"REFLOW_{name.upper()}"] = str(script)
    return log


def wait(run: object, timeout: float = 900) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = run.state.value  # type: ignore[attr-defined]
        if state != "RUNNING":
            return str(state)
        time.sleep(0.2)
    return "TIMEOUT"


def main() -> None:
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent / "src"))
    from slurm_pipelines import chain, fanout

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        tmp = Path(d)
        log = wrappers(tmp)
        print(
            f"{'pipeline':<22} {'state':<8} {'wall s':>7} {'sbatch':>7} {'sacct':>6} "
            f"{'instances':>9}"
        )
        for name, wf, params, instances in (
            ("fan-out 100 x 3", fanout.wf, {"n": 100}, 202 + 1),
            ("chain of 20", chain.wf, {"start": 1}, 20),
        ):
            log.write_text("")
            t0 = time.monotonic()
            run = wf.submit(
                tmp / name.replace(" ", "_"), executor="slurm", store=tmp / "manifest.db", **params
            )
            state = wait(run)
            wall = time.monotonic() - t0
            calls = log.read_text().split()
            print(
                f"{name:<22} {state:<8} {wall:>7.1f} {calls.count('sbatch'):>7} "
                f"{calls.count('sacct'):>6} {instances:>9}"
            )


if __name__ == "__main__":
    main()
