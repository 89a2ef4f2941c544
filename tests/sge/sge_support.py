"""Helpers of the SGE cluster tests: waiting for runs, asking SGE what it has queued."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflow import Run, RunState, Workflow
from reflow.executors.sge import parse_qstat_xml
from reflow.render import render_status

PIPELINES = Path(__file__).resolve().parent / "pipelines"


def status_text(run: Run) -> str:
    """What `status` shows for the run (with tracebacks)."""
    try:
        return render_status(run.status(as_dict=True) or {}, errors=True)
    except Exception as exc:  # the status itself must not hide the original failure
        return f"(status of {run.run_id} failed: {exc!r})"


def wait_until(check: Callable[[], Any], timeout: float, what: str, run: Run | None = None) -> Any:
    """Poll `check` every 0.3 s until it returns something true; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = f"\n{status_text(run)}" if run is not None else ""
            pytest.fail(f"{what}: not reached within {timeout:.0f} s{detail}")
        time.sleep(0.3)


def wait_final(run: Run, timeout: float = 60) -> RunState:
    """Wait for the run to leave RUNNING (bounded); fail with its status on timeout."""
    state = wait_until(
        lambda: run.state if run.state is not RunState.RUNNING else None,
        timeout,
        f"run {run.run_id} to finish",
        run,
    )
    assert isinstance(state, RunState)
    return state


def qstat_jobs() -> dict[str, dict[int | None, str]]:
    """Every job in qstat (all users): job number -> {task (None: not an array) -> state}."""
    out = subprocess.run(
        ["qstat", "-u", "*", "-xml"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return parse_qstat_xml(out)


def qstat_ids() -> set[str]:
    """The job numbers in qstat."""
    return set(qstat_jobs())


def run_job_ids(run: Run) -> set[str]:
    """Every job number of the run recorded in the store, its dispatcher included."""
    ids = {i["job_id"].split(".", 1)[0] for i in run.store.instances(run.run_id) if i["job_id"]}
    dispatcher = run.info()["dispatcher"]
    if dispatcher:
        ids.add(str(dispatcher))
    return ids


class Cluster:
    """Submits runs into a test's own run dir and store, and cancels leftovers afterwards."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store_path = tmp_path / "manifest.db"
        self.runs: list[Run] = []
        self._n = 0

    def run_dir(self) -> Path:
        self._n += 1
        return self.tmp_path / f"run{self._n}"

    def submit(self, wf: Workflow, **kwargs: Any) -> Run:
        kwargs.setdefault("executor", "sge")
        kwargs.setdefault("store", self.store_path)
        run = wf.submit(kwargs.pop("run_dir", None) or self.run_dir(), **kwargs)
        self.runs.append(run)
        return run

    def cleanup(self) -> None:
        for run in self.runs:
            try:
                if run.state is RunState.RUNNING:
                    run.cancel()
            except Exception as exc:  # pragma: no cover - best effort
                print(f"could not cancel {run.run_id}: {exc!r}", file=sys.stderr)


class QsubSpy:
    """A `qsub` that records the id of every job it submits, then is the real one.

    Point REFLOW_QSUB (or SGEExecutor(qsub=...)) at `path`; the run records the
    path, so dispatcher jobs use it too and `ids()` are all the jobs a run submitted.
    """

    def __init__(self, directory: Path) -> None:
        real = shutil.which("qsub") or "qsub"
        self.log = directory / "qsub-calls.log"
        self.path = directory / "qsub-spy"
        self.path.write_text(
            "#!/bin/sh\n"
            f'out=$({shlex.quote(real)} "$@") || exit $?\n'
            f'echo "$out" >> {shlex.quote(str(self.log))}\n'
            'echo "$out"\n'
        )
        self.path.chmod(0o755)

    def ids(self) -> list[str]:
        """Job numbers qsub returned, in order."""
        if not self.log.exists():
            return []
        return [line.split(".")[0] for line in self.log.read_text().split()]
