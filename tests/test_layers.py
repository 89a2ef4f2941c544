"""The shape of the package: layers that point down, no cycles, SQL only in stores/.

The rules live in pyproject.toml (`[tool.importlinter]`, see
docs/architecture.md); import-linter checks every import, at module level,
inside a function or under TYPE_CHECKING.  The scratch-copy tests prove the
check fails when the shape decays.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(
    not LINT.exists(), reason="import-linter is not installed (pip install -e '.[test]')"
)


def _lint(project: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(project / "src"))
    return subprocess.run(
        [str(LINT), "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _scratch(tmp_path: Path) -> Path:
    """A copy of the project's source and contracts to break on purpose."""
    shutil.copytree(ROOT / "src", tmp_path / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + "\n\n" + code + "\n", encoding="utf-8")


def test_the_package_keeps_every_contract() -> None:
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 kept, 0 broken" in done.stdout


def test_an_upward_import_inside_a_function_breaks_the_layers(tmp_path: Path) -> None:
    project = _scratch(tmp_path)
    _append(
        project / "src/reflow/engine.py",
        "def _upward() -> object:\n    from .workflow import Workflow\n\n    return Workflow",
    )
    done = _lint(project)
    assert done.returncode != 0
    assert "reflow's layers point down BROKEN" in done.stdout
    assert "reflow.engine -> reflow.workflow" in done.stdout


def test_an_upward_import_for_type_checking_breaks_the_layers(tmp_path: Path) -> None:
    project = _scratch(tmp_path)
    _append(
        project / "src/reflow/stores/base.py",
        "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from ..engine import Engine",
    )
    done = _lint(project)
    assert done.returncode != 0
    assert "reflow.stores.base -> reflow.engine" in done.stdout


def test_siblings_of_one_layer_may_not_import_each_other(tmp_path: Path) -> None:
    project = _scratch(tmp_path)
    _append(project / "src/reflow/local.py", "from . import dispatch  # noqa")
    done = _lint(project)
    assert done.returncode != 0
    assert "reflow.local -> reflow.dispatch" in done.stdout


def test_a_cycle_inside_a_package_is_found(tmp_path: Path) -> None:
    project = _scratch(tmp_path)
    # slurm imports base; base importing slurm back closes a loop inside reflow.executors
    _append(
        project / "src/reflow/executors/base.py",
        "def _loop() -> object:\n    from .slurm import SlurmExecutor\n\n    return SlurmExecutor",
    )
    done = _lint(project)
    assert done.returncode != 0
    assert "no import cycles between the modules of any package of reflow BROKEN" in done.stdout


def test_sql_outside_the_stores_is_refused(tmp_path: Path) -> None:
    project = _scratch(tmp_path)
    _append(project / "src/reflow/doctor.py", "import sqlite3  # noqa")
    done = _lint(project)
    assert done.returncode != 0
    assert "only reflow.stores speaks SQL BROKEN" in done.stdout


def test_a_module_without_a_layer_is_refused(tmp_path: Path) -> None:
    project = _scratch(tmp_path)
    (project / "src/reflow/newcomer.py").write_text('"""Not in any layer yet."""\n')
    done = _lint(project)
    assert done.returncode != 0
    assert "reflow.newcomer" in done.stdout
