"""What the real-cluster tests (tests/cluster) share: waiting for runs,
a test's own store and run dirs, a spy on the submit command, the skip-or-fail gate.
"""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflow import Run, RunState, Workflow
from reflow.render import render_status


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


def run_job_ids(run: Run, element_separator: str) -> set[str]:
    """Every job of the run recorded in the store (base ids), its dispatcher included.

    `element_separator` splits an array element's id from its job's ("_" for
    Slurm's `123_4`, "." for SGE's `123.4`).
    """
    ids = {
        i["job_id"].split(element_separator, 1)[0]
        for i in run.store.instances(run.run_id)
        if i["job_id"]
    }
    dispatcher = run.info()["dispatcher"]
    if dispatcher:
        ids.add(str(dispatcher))
    return ids


class Cluster:
    """Submits runs into a test's own run dir and store, and cancels leftovers afterwards."""

    def __init__(self, tmp_path: Path, executor: str) -> None:
        self.tmp_path = tmp_path
        self.executor = executor
        self.store_path = tmp_path / "manifest.db"
        self.runs: list[Run] = []
        self._n = 0

    def run_dir(self) -> Path:
        self._n += 1
        return self.tmp_path / f"run{self._n}"

    def submit(self, wf: Workflow, **kwargs: Any) -> Run:
        kwargs.setdefault("executor", self.executor)
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


class SubmitSpy:
    """A submit command (`sbatch`, `qsub`) that logs what it printed, then is the real one.

    Point the executor's command (REFLOW_SBATCH, REFLOW_QSUB, ...) at `path`;
    dispatcher jobs use it too, so `ids()` are all the jobs a run submitted.
    """

    def __init__(self, directory: Path, tool: str, id_of: Callable[[str], str]) -> None:
        real = shutil.which(tool) or tool
        self.id_of = id_of
        self.log = directory / f"{tool}-calls.log"
        self.path = directory / f"{tool}-spy"
        self.path.write_text(
            "#!/bin/sh\n"
            f'out=$({shlex.quote(real)} "$@") || exit $?\n'
            f'echo "$out" >> {shlex.quote(str(self.log))}\n'
            'echo "$out"\n'
        )
        self.path.chmod(0o755)

    def ids(self) -> list[str]:
        """The job ids the command returned, in order."""
        if not self.log.exists():
            return []
        return [self.id_of(line) for line in self.log.read_text().split()]


def gate(problem: str | None, *, required: bool, variable: str, name: str, hint: str) -> None:
    """Skip the cluster's tests (with the reason), or fail them when it is required."""
    if problem is None:
        return
    if required:
        pytest.fail(f"{variable}=required but the {name} cluster is not usable: {problem}")
    pytest.skip(f"{hint} ({problem})")
