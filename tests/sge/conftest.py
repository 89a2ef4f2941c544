"""The SGE cluster tests: a real single-node Grid Engine (scripts/sge-test-cluster/start-sge.sh).

Every test in this folder is marked `sge` and needs the cluster. Without it
they skip with the reason, unless REFLOW_TEST_SGE=required (scripts/test as
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
for _path in (HERE, HERE / "pipelines"):  # `import sge_support`, `import sge_fanout`
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from sge_support import Cluster, QsubSpy  # noqa: E402

from cluster_support import gate, mark_folder  # noqa: E402

# read now: the autouse fixture of tests/conftest.py removes REFLOW_* from each test's env
_REQUIRED = os.environ.get("REFLOW_TEST_SGE", "").strip().lower() == "required"
_HINT = "no SGE test cluster: run scripts/sge-test-cluster/start-sge.sh as root"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_folder(items, HERE, pytest.mark.sge)


def cluster_problem() -> str | None:
    """Why the test cluster cannot be used, or None when it can."""
    for tool in ("qsub", "qstat", "qdel", "qacct", "qconf"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not on PATH"
    try:
        proc = subprocess.run(
            ["qstat", "-f"], capture_output=True, text=True, timeout=20, check=False
        )
    except subprocess.TimeoutExpired:
        return "qstat did not answer in 20 s"
    if proc.returncode != 0:
        return f"qstat failed: {(proc.stderr or proc.stdout).strip()}"
    # queue instance lines: "all.q@vm  BIP  0/0/8  0.22  lx-amd64  [states]"
    usable = [
        line.split()
        for line in proc.stdout.splitlines()
        if "@" in line.split(" ", 1)[0] and len(line.split()) >= 5
    ]
    if not any(len(f) == 5 and f[3] != "-NA-" for f in usable):
        return "no queue instance is up (qstat -f shows none without an alarm or error state)"
    pe = subprocess.run(["qconf", "-sp", "smp"], capture_output=True, timeout=20, check=False)
    if pe.returncode != 0:
        return "the parallel environment 'smp' is missing (start-sge.sh defines it)"
    return None


@pytest.fixture(scope="session", autouse=True)
def sge_cluster() -> None:
    """Skip (or, when required, fail) every test here unless the cluster is usable."""
    problem = cluster_problem()
    gate(problem, required=_REQUIRED, variable="REFLOW_TEST_SGE", name="SGE", hint=_HINT)


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Any) -> Iterator[Cluster]:
    """A test's own store and run dirs; tasks append their names to `calls` (RFTEST_CALLS)."""
    monkeypatch.setenv("RFTEST_CALLS", str(calls.path))
    c = Cluster(tmp_path, "sge")
    yield c
    c.cleanup()


@pytest.fixture
def qsub_spy(tmp_path: Path) -> QsubSpy:
    """A qsub wrapper that records the jobs it submits (see QsubSpy)."""
    return QsubSpy(tmp_path)
