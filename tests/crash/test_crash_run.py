"""SIGKILL `run` (1 and 2 workers) and the `retry`s that resume it, at many points.

Each kill point is checked right after the kill (children gone, `status` says
the owner is gone, no SUCCESS row without output) and at the end of the run
(SUCCESS, right outputs, nothing that was SUCCESS at a kill ran again).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import PIPELINE, RunCrasher, after_commits, crash_runs, status_text, warnings_of

POINTS = 20  # per number of workers


def _report(crashers: list[RunCrasher]) -> str:
    lines = []
    for c in crashers:
        lines.append(f"{c.name}: " + "; ".join(f"{k.what} {k.label}" for k in c.kills))
    return "\n".join(lines)


@pytest.mark.parametrize("workers", [1, 2], ids=["inline", "two-workers"])
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_killed_run_resumes_without_rerunning_or_losing_anything(
    tmp_path: Path, workers: int, backend: str, request: pytest.FixtureRequest
) -> None:
    """SIGKILL of a driver writing to SQLite, or to PostgreSQL, then `retry`."""
    stores = request.getfixturevalue("postgres_urls") if backend == "postgres" else None
    crashers = crash_runs(tmp_path, workers=workers, points=POINTS, seed=workers, stores=stores)
    kills = [k for c in crashers for k in c.kills]
    assert len(kills) >= POINTS, _report(crashers)
    # the kills landed all along the run: before anything was recorded, mid-array, late
    assert any(len(k.successes) == 0 for k in kills), _report(crashers)
    assert any(0 < len(k.successes) < 1000 for k in kills), _report(crashers)
    assert any(len(k.successes) >= 1001 for k in kills), _report(crashers)
    for c in crashers:
        c.assert_ok()


def test_children_of_a_killed_run_die_with_it(tmp_path: Path) -> None:
    """The pool's workers are gone within seconds of a SIGKILL of `run` (checked per kill)."""
    c = RunCrasher(tmp_path / "pool", workers=2, task_seconds=0.002)
    assert c.kill_at(after_commits(100))
    assert len(c.kills[0].children) == 2  # its two workers, gone within 5 s of the kill
    assert c.leftovers == []
    c.finish()
    c.assert_ok()


def test_status_and_retry_see_a_killed_owner_that_was_not_reaped(tmp_path: Path) -> None:
    """A killed `run` whose parent has not reaped it (a zombie) is gone, not RUNNING."""
    c = RunCrasher(tmp_path, n=200, task_seconds=0.005)
    argv = ["run", "--run-dir", str(c.run_dir), "--store-path", str(c.store_path), "--n", "200"]
    proc = subprocess.Popen(
        [sys.executable, str(PIPELINE), *argv],
        env=c.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while c._find_run() is None or c.store.counts(c.run_id).get("SUCCESS", 0) < 5:
            assert proc.poll() is None, "the run ended before it could be killed"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, not reaped: a zombie
        said = warnings_of(status_text(c.store_path, str(c.run_id)))
        assert said and f"pid {proc.pid}" in said[0] and "gone" in said[0], said
        retry = subprocess.run(
            [sys.executable, str(PIPELINE), "retry", str(c.run_id), "--store-path", c.store_path],
            env=c.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert retry.returncode == 0, retry.stdout + retry.stderr
        assert c.status() == "SUCCESS"
    finally:
        proc.wait()
        c.close()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_two_retries_at_once_drive_a_killed_run_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two `retry`s of one killed run: one drives it, the other refuses (or finds it done)."""
    store = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    c = RunCrasher(tmp_path, workers=2, task_seconds=0.002, store=store)
    assert c.kill_at(after_commits(200))
    start = len(c.log.lines())  # the killed run's workers are gone by now
    argv = [sys.executable, str(PIPELINE), "retry", str(c.run_id), "--store-path", c.store_path]
    procs = [
        subprocess.Popen(argv, env=c.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outs = [(p.wait(120), (p.stdout.read() if p.stdout else b"").decode()) for p in procs]
    assert any(code == 0 for code, _ in outs), outs
    for code, text in outs:
        assert code == 0 or "is being driven by process" in text, outs
        assert "Traceback" not in text and "locked" not in text, outs
    c.check_final()  # SUCCESS, right outputs, nothing that was SUCCESS at the kill ran again
    c.assert_ok()
    after = collections.Counter((t, i) for t, i, _ in c.log.lines()[start:])
    assert after and max(after.values()) == 1, after.most_common(3)  # one driver, not two
    c.close()
