"""Re-attach on a real scheduler: a pass killed at any point never submits a job twice.

A wrapper of the submit command counts its calls (one counter per run) and,
at the calls a run's plan names, SIGKILLs its parent (the `submit`, the
dispatcher job's pass or the `retry` that runs the pass): before calling the
real command (which then still submits: the pass dies during the call),
after it (the pass dies before it reads the job id), or instead of it (the
pass dies after writing its journal entry, before the call).  Whenever
`status` says the run will not move on its own, the test runs `retry`, until
the run ends.  Then: SUCCESS with the right output, every task instance ran
once, and no wave of instances was submitted twice.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from schedulers import PIPELINES, Scheduler, every_scheduler, only

from reflow import RunState
from reflow.run import Run
from reflow.stores.sqlite import SqliteStore

# each run's plan: call number -> how the wrapper kills at it (14 runs, 28 points, of
# which about 25 are reached: a run makes 5 to 7 calls)
_MODES = ("before", "after", "instead")
PLANS = [
    {str(c): _MODES[(c + k) % 3], str(c + 2 + k % 2): _MODES[(c + k + 1) % 3]}
    for k in range(2)
    for c in range(1, 7)
] + [{"1": "after", "2": "before"}, {"2": "after", "3": "after"}]
N = 3  # items of the fan-out: make -> square[3] -> plus[3] -> total

_WRAPPER = """\
import fcntl, json, os, signal, subprocess, sys
here = {here!r}
script = sys.stdin.read()
with open(os.path.join(here, "lock"), "a") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        with open(os.path.join(here, "count")) as fh:
            n = int(fh.read()) + 1
    except OSError:
        n = 1
    with open(os.path.join(here, "count"), "w") as fh:
        fh.write(str(n))
with open(os.path.join(here, "plan.json")) as fh:
    mode = json.load(fh).get(str(n))
with open(os.path.join(here, f"call-{{n}}.sh"), "w") as fh:
    fh.write(script)
if mode:
    with open(os.path.join(here, f"kill-{{n}}.{{mode}}"), "w") as fh:
        fh.write(str(os.getppid()))
if mode == "instead":
    os.kill(os.getppid(), signal.SIGKILL)
    sys.exit(1)
if mode == "before":
    os.kill(os.getppid(), signal.SIGKILL)
proc = subprocess.run([{real!r}, *sys.argv[1:]], input=script, capture_output=True, text=True)
if proc.returncode == 0:
    with open(os.path.join(here, f"call-{{n}}.ok"), "w") as fh:
        fh.write(proc.stdout)
if mode == "after":
    os.kill(os.getppid(), signal.SIGKILL)
try:
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
except BrokenPipeError:
    pass
sys.exit(proc.returncode)
"""


class _Case:
    """One run with its own wrapper, plan and counters."""

    def __init__(self, tmp: Path, k: int, plan: dict[str, str], tool: str) -> None:
        self.dir = tmp / f"case{k}"
        self.dir.mkdir()
        (self.dir / "plan.json").write_text(json.dumps(plan))
        self.wrapper = self.dir / tool
        real = shutil.which(tool) or tool
        self.wrapper.write_text(
            f"#!{sys.executable}\n" + _WRAPPER.format(here=str(self.dir), real=real)
        )
        self.wrapper.chmod(0o755)
        self.store = self.dir / "manifest.db"
        (self.dir / "config.toml").write_text("")  # none of the user's settings
        self.calls = self.dir / "calls.log"
        self.run_id: str | None = None
        self.retries = 0

    def env(self, tool: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REFLOW_")}
        env.update(
            {
                f"REFLOW_{tool.upper()}": str(self.wrapper),
                "REFLOW_DISPATCH_MEM": "300M",
                "REFLOW_DISPATCH_TIME": "00:05:00",
                "RFTEST_CALLS": str(self.calls),
                "REFLOW_CONFIG": str(self.dir / "config.toml"),
            }
        )
        return env

    def cli(self, tool: str, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(PIPELINES / "pl_fanout.py"), *args],
            env=self.env(tool),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def store_option(self) -> list[str]:
        return ["--store-path", str(self.store)]

    def kills(self) -> list[str]:
        return sorted(p.name for p in self.dir.glob("kill-*"))

    def submitted_waves(self) -> list[str]:
        """The wave files of every job the real command accepted (a dispatcher: none)."""
        waves: list[str] = []
        for ok in self.dir.glob("call-*.ok"):
            script = ok.with_suffix(".sh").read_text()
            waves += re.findall(r"--wave (\S+)", script.replace("'", ""))
        return waves


@every_scheduler
def test_a_pass_killed_anywhere_never_submits_a_job_twice(
    scheduler: Scheduler, tmp_path: Path
) -> None:
    tool = scheduler.submit_tool
    cases = [_Case(tmp_path, k, plan, tool) for k, plan in enumerate(PLANS)]
    args = ["--executor", scheduler.name, "--n", str(N)]
    submits = {
        id(c): c.cli(tool, "submit", "--run-dir", str(c.dir / "run"), *args, *c.store_option())
        for c in cases
    }
    for c in cases:
        submits[id(c)].communicate(timeout=120)
        (run,) = SqliteStore(c.store).list_runs()  # recorded before the first sbatch call
        c.run_id = run["run_id"]
    deadline = time.monotonic() + 300
    open_cases = list(cases)
    while open_cases:
        assert time.monotonic() < deadline, [c.run_id for c in open_cases]
        for c in list(open_cases):
            assert c.run_id is not None
            store = SqliteStore(c.store)
            state = store.get_run(c.run_id)["status"]
            store.close()
            if state != RunState.RUNNING.value:
                open_cases.remove(c)
                continue
            status = c.cli(tool, "status", c.run_id, "--store-path", str(c.store), "--json")
            out, _ = status.communicate(timeout=60)
            warnings = json.loads(out)["warnings"] if out.strip().startswith("{") else []
            if any("retry" in w for w in warnings):
                c.retries += 1
                retry = c.cli(tool, "retry", c.run_id, "--store-path", str(c.store))
                retry.communicate(timeout=120)
        time.sleep(2.0)

    points = [k for c in cases for k in c.kills()]
    report = "\n".join(f"{c.run_id}: kills {c.kills()}, retries {c.retries}" for c in cases)
    assert len(points) >= 20, report
    for c in cases:
        assert c.run_id is not None
        store = SqliteStore(c.store)
        info = store.get_run(c.run_id)
        assert info["status"] == "SUCCESS", report + "\n" + json.dumps(info, default=str)
        assert Run(c.run_id, store).output("total") == sum(i * i + 1 for i in range(N))
        store.close()
        ran = sorted(c.calls.read_text().split())
        assert ran == sorted(["make", "total"] + ["square"] * N + ["plus"] * N), (c.run_id, ran)
        waves = c.submitted_waves()
        assert len(waves) == len(set(waves)), (c.run_id, shlex.join(waves))


# ---------------------------------------------------------------------- accounting outage

_OUTAGE_PIPELINE = """
import time
from typing import Annotated
from reflow import Result, Workflow

wf = Workflow("rt-outage")

@wf.job(time="00:05:00", mem="100M")
def slow() -> int:
    time.sleep(20)  # in flight while the pass after `make` asks about it
    return 100

@wf.job(time="00:05:00", mem="100M")
def make(n: int) -> list[int]:
    return list(range(n))

@wf.array_job(time="00:05:00", mem="100M")
def square(x: Annotated[int, Result(step="make")]) -> int:
    return x * x

@wf.job(time="00:05:00", mem="100M")
def total(xs: Annotated[list[int], Result(step="square")],
          s: Annotated[int, Result(step="slow")]) -> int:
    return sum(xs) + s

if __name__ == "__main__":
    raise SystemExit(wf.cli())
"""


def _slurmdbd_pid() -> int | None:
    base = Path(os.environ.get("SLURM_TEST_BASE", "/tmp/slurm-test"))
    try:
        pid = int((base / "run" / "slurmdbd.pid").read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def _start_slurmdbd() -> None:
    base = Path(os.environ.get("SLURM_TEST_BASE", "/tmp/slurm-test"))
    with open(base / "log" / "slurmdbd.stderr", "a") as log:
        subprocess.run(["slurmdbd"], stdin=subprocess.DEVNULL, stdout=log, stderr=log, check=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        done = subprocess.run(["sacctmgr", "-n", "list", "cluster"], capture_output=True)
        if done.returncode == 0:
            return
        time.sleep(0.5)


@only("slurm")
def test_the_run_waits_out_an_accounting_outage(scheduler: Scheduler, tmp_path: Path) -> None:
    """slurmdbd stopped for 60 s in the middle of a run: sacct fails, the run completes."""
    pid = _slurmdbd_pid()
    if pid is None or os.geteuid() != 0:
        pytest.skip("needs root and the test cluster's slurmdbd (its pid file)")
    script = tmp_path / "outage.py"
    script.write_text(_OUTAGE_PIPELINE)
    case = _Case(tmp_path, 0, {}, scheduler.submit_tool)
    env = case.env(scheduler.submit_tool)
    store = ["--store-path", str(case.store)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    run_dir = ["--run-dir", str(tmp_path / "run")]
    done = cli("submit", *run_dir, "--executor", "slurm", "--n", "3", *store)
    assert done.returncode == 0, done.stderr
    (run,) = SqliteStore(case.store).list_runs()
    os.kill(pid, 15)
    try:
        time.sleep(60)
        # what every dispatcher pass so far did, while sacct could not answer
        logs = "".join(p.read_text() for p in (tmp_path / "run" / "logs" / "_dispatcher").glob("*"))
        assert subprocess.run(["sacct", "-n", "-j", "1"], capture_output=True).returncode != 0
    finally:
        _start_slurmdbd()
    deadline = time.monotonic() + 180
    while (state := SqliteStore(case.store).get_run(run["run_id"])["status"]) == "RUNNING":
        assert time.monotonic() < deadline, cli("status", run["run_id"], *store).stdout
        time.sleep(2)
    assert state == "SUCCESS", cli("status", run["run_id"], "--errors", *store).stdout + logs
    assert Run(run["run_id"], SqliteStore(case.store)).output("total") == 0 + 1 + 4 + 100
    assert "ingested" in logs  # a pass ran during the outage, and did not fail the run
