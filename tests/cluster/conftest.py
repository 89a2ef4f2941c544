"""The real-cluster tests: single-node Slurm and Grid Engine clusters
(scripts/slurm-test-cluster/start-slurm.sh, scripts/sge-test-cluster/start-sge.sh).

Every test here runs on the schedulers it names (`@every_scheduler`, or
`@only("sge")` for what one scheduler alone does), through the `scheduler`
fixture, and carries that scheduler's marker (`slurm`, `sge`). Without its
cluster a test skips with the reason, unless REFLOW_TEST_SLURM=required /
REFLOW_TEST_SGE=required (scripts/test as root, and CI), where a cluster
that is not usable fails it. What differs between the schedulers is in
schedulers.py; the pipelines the tests submit are in pipelines/.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
for _path in (HERE, HERE / "pipelines"):  # `import schedulers`, `import pl_fanout`
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from schedulers import SCHEDULERS, Scheduler  # noqa: E402

from cluster_support import Cluster, SubmitSpy  # noqa: E402


@pytest.fixture
def scheduler(request: pytest.FixtureRequest) -> Scheduler:
    """The scheduler of this case (parametrized by `every_scheduler` / `only`), if usable."""
    sched = SCHEDULERS[request.param]
    sched.check()
    return sched


@pytest.fixture
def cluster(
    scheduler: Scheduler, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Any
) -> Iterator[Cluster]:
    """A test's own store and run dirs; tasks append their names to `calls` (RFTEST_CALLS)."""
    monkeypatch.setenv("RFTEST_CALLS", str(calls.path))
    c = Cluster(tmp_path, scheduler.name)
    yield c
    c.cleanup()


@pytest.fixture
def submit_spy(scheduler: Scheduler, tmp_path: Path) -> SubmitSpy:
    """A wrapper of the submit command (sbatch, qsub) that records the jobs it submits."""
    return scheduler.spy(tmp_path)
