"""What only the Slurm cluster tests check (the shared cases are in test_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from case_helpers import run_script
from schedulers import PIPELINES, only

from cluster_support import Cluster, SubmitSpy
from reflow.stores.sqlite import SqliteStore


@only("slurm")
def test_cli_submit_dry_run_prints_script_and_records_nothing(
    cluster: Cluster, tmp_path: Path, submit_spy: SubmitSpy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dry-run executor renders Slurm's scripts unless told otherwise."""
    monkeypatch.setenv("REFLOW_SBATCH", str(submit_spy.path))
    res = run_script(
        PIPELINES / "pl_fanout.py",
        "submit",
        "--run-dir",
        str(tmp_path / "dry"),
        "--executor",
        "dry-run",
        "--store-path",
        str(cluster.store_path),
        "--n",
        "2",
    )
    assert res.returncode == 0, res.stderr
    assert "#!/bin/bash" in res.stdout
    assert "#SBATCH --job-name=rt-fanout.make" in res.stdout
    assert "#SBATCH --time=00:05:00" in res.stdout
    assert "-m reflow worker" in res.stdout
    assert "nothing was submitted and nothing was recorded" in res.stdout
    assert SqliteStore(cluster.store_path).list_runs() == []
    assert not list((tmp_path / "dry").glob("work/*"))
    assert submit_spy.ids() == [] and not submit_spy.log.exists()
