"""The cluster tests: a real single-node Slurm (scripts/slurm-test-cluster/start-slurm.sh).

Every test in this folder is marked `slurm` and needs the cluster. Without it
they skip with the reason, unless REFLOW_TEST_SLURM=required (scripts/test as
root, and CI), where a cluster that is not usable fails them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE / "pipelines"):  # `import slurm_support`, `import pl_fanout`
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from slurm_support import Cluster, SbatchSpy  # noqa: E402

from cluster_support import gate, mark_folder  # noqa: E402

# read now: the autouse fixture of tests/conftest.py removes REFLOW_* from each test's env
_REQUIRED = os.environ.get("REFLOW_TEST_SLURM", "").strip().lower() == "required"
_HINT = "no Slurm test cluster: run scripts/slurm-test-cluster/start-slurm.sh as root"
_USABLE = ("idle", "mixed", "allocated", "completing")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_folder(items, HERE, pytest.mark.slurm)


def cluster_problem() -> str | None:
    """Why the test cluster cannot be used, or None when it can."""
    for tool in ("sbatch", "sinfo", "squeue", "sacct", "scancel"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not on PATH"
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s"
    if proc.returncode != 0:
        return f"sinfo failed: {(proc.stderr or proc.stdout).strip()}"
    states = [s.strip().rstrip("*~#!%$@^-") for s in proc.stdout.split()]
    if not any(s in _USABLE for s in states):
        return f"no node is idle, mixed or allocated (sinfo: {', '.join(states) or 'nothing'})"
    return None


@pytest.fixture(scope="session", autouse=True)
def slurm_cluster() -> None:
    """Skip (or, when required, fail) every test here unless the cluster is usable."""
    problem = cluster_problem()
    gate(problem, required=_REQUIRED, variable="REFLOW_TEST_SLURM", name="Slurm", hint=_HINT)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Any) -> Iterator[Cluster]:
    """A test's own store and run dirs; tasks append their names to `calls` (RFTEST_CALLS)."""
    monkeypatch.setenv("RFTEST_CALLS", str(calls.path))
    c = Cluster(tmp_path, "slurm")
    yield c
    c.cleanup()


@pytest.fixture
def sbatch_spy(tmp_path: Path) -> SbatchSpy:
    """An sbatch wrapper that records the jobs it submits (see SbatchSpy)."""
    return SbatchSpy(tmp_path)
