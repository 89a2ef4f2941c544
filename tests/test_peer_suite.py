"""reflow-hpc 2604.4.0's own public-API tests, run unchanged against this reflow (issue 18).

The test file is fetched from the package index at test time (its source
distribution, never committed) and run by pytest in a fresh process with this
checkout's `reflow` first on the path.  Every test must pass, except the ones
docs/migrating-from-reflow-hpc.md lists as deliberate differences, which must
fail (so the list stays true).  Without the package index the test skips with
the reason, except in CI (CI=true), where it fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.peer

REPO = Path(__file__).resolve().parents[1]
PEER = "reflow-hpc==2604.4.0"
PEER_TESTS = "tests/test_local_runner.py"
GUIDE = REPO / "docs" / "migrating-from-reflow-hpc.md"


def _fetch(into: Path) -> Path:
    """reflow-hpc's test file, from its source distribution on the package index."""
    got = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary",
         ":all:", "--disable-pip-version-check", "-d", str(into), PEER],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    archives = sorted(into.glob("reflow_hpc-*.tar.gz"))
    if got.returncode != 0 or not archives:
        why = f"cannot download {PEER} from the package index: {got.stderr.strip()[-300:]}"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    with tarfile.open(archives[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("/" + PEER_TESTS))
        data = tar.extractfile(member)
        assert data is not None
        target = into / "peer" / "test_local_runner.py"
        target.parent.mkdir()
        target.write_bytes(data.read())
    return target


def _deliberate() -> set[str]:
    """The peer tests the migration guide names as deliberate differences."""
    return set(re.findall(r"`(test_[a-z0-9_]+)`", GUIDE.read_text(encoding="utf-8")))


def test_reflow_hpc_s_local_runner_tests_pass_against_reflow(tmp_path: Path) -> None:
    tests = _fetch(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider",
         "--rootdir", str(tests.parent), str(tests)],
        capture_output=True, text=True, check=False, cwd=tests.parent, env=env, timeout=600,
    )  # fmt: skip
    outcomes = dict(
        (m.group(2).rsplit("::", 1)[-1], m.group(1))
        for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+)", done.stdout, re.M)
    )
    assert outcomes, done.stdout + done.stderr
    # the run really used this checkout's reflow
    assert "ModuleNotFoundError" not in done.stdout, done.stdout
    failed = {name for name, how in outcomes.items() if how != "PASSED"}
    deliberate = _deliberate() & set(outcomes)
    assert failed == deliberate, done.stdout[-4000:]
    assert len(outcomes) == 14 and len(deliberate) <= 1
