"""The examples run end to end, and the commands the README and their docstrings show work.

Each test copies examples/ into a fresh folder (as a new user's clone would
have it) and runs the commands as written, with `python`/`python3` being this
interpreter and reflow importable from src/ (what `pip install -e .` gives).
"""

from __future__ import annotations

import ast
import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

from reflow.cli import main
from reflow.stores.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
README = REPO / "README.md"

SUMMARY = re.compile(
    r"^run (?P<id>\S+) (?P<state>SUCCESS|FAILED|CANCELLED) in \d+\.\d s: "
    r"(?P<total>\d+) instances, (?P<ran>\d+) ran, (?P<cached>\d+) cached"
)


@dataclass
class Done:
    code: int
    out: str
    err: str


def child_env() -> dict[str, str]:
    """The test's isolated environment (conftest), with reflow importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    return env


def sh(command: str, cwd: Path, run_id: str | None = None) -> Done:
    """One documented command line, as written (`python`/`python3` -> this interpreter)."""
    if run_id is not None:
        command = command.replace("RUN_ID", run_id)
    argv = shlex.split(command.split("#", 1)[0])
    if argv[0] in ("python", "python3"):
        argv[0] = sys.executable
    elif shutil.which(argv[0]) is None:
        pytest.skip(f"{argv[0]} is not installed")
    proc = subprocess.run(
        argv,
        cwd=cwd,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Done(proc.returncode, proc.stdout, proc.stderr)


def summary(done: Done) -> re.Match[str]:
    found = [m for m in map(SUMMARY.match, done.out.splitlines()) if m]
    assert len(found) == 1, done
    return found[0]


def docstring_commands(script: Path) -> list[str]:
    """The indented command lines of an example's docstring (its usage walk-through)."""
    doc = ast.get_docstring(ast.parse(script.read_text())) or ""
    return [
        line.strip()
        for line in doc.splitlines()
        if line.startswith("    ") and not line.strip().startswith("#")
    ]


def readme_blocks(kind: str = "console") -> list[list[str]]:
    """The README's ```console blocks, each as its `$ ` command lines."""
    blocks = re.findall(rf"```{kind}\n(.*?)```", README.read_text(), re.S)
    return [[line[2:] for line in b.splitlines() if line.startswith("$ ")] for b in blocks]


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    """A folder with the examples as a clone of the repository has them."""
    root = tmp_path / "clone"
    shutil.copytree(EXAMPLES, root / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def default_store() -> SqliteStore:
    return SqliteStore(Path(os.environ["XDG_CACHE_HOME"]) / "reflow" / "manifest.db")


# ---------------------------------------------------------------------- etl


def expected_report(sales: Path) -> list[list[str]]:
    """report.csv as it must be, computed here from the data file."""
    units: dict[str, int] = defaultdict(int)
    revenue: dict[str, float] = defaultdict(float)
    with open(sales, newline="") as fh:
        for row in csv.DictReader(fh):
            units[row["region"]] += int(row["units"])
            revenue[row["region"]] += int(row["units"]) * float(row["unit_price"])
    return [["region", "units", "revenue"]] + [
        [region, str(units[region]), f"{revenue[region]:.2f}"] for region in units
    ]


def test_readme_quick_start(clone: Path) -> None:
    """The first command of the README's quick start, as written, twice."""
    quick_start = readme_blocks()[0]
    assert len(quick_start) == 2, quick_start
    install, _, run_etl = quick_start[0].partition(" && ")
    assert install == "python3 -m pip install -e ."  # done here by PYTHONPATH=src
    assert quick_start[1] == "./scripts/test"

    first = sh(run_etl, clone)
    assert first.code == 0, first
    assert first.err == ""  # piped: no progress, only the summary line
    assert first.out.count("\n") == 1
    m = summary(first)
    assert (m["state"], m["total"], m["ran"], m["cached"]) == ("SUCCESS", "6", "6", "0")

    report = clone / "runs" / "etl" / "report.csv"  # where the README says it lands
    with open(report, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == expected_report(EXAMPLES / "data" / "sales.csv")
    assert len(rows) == 5  # north, south, east, west

    # "Run it again and every task is reused from the cache."
    second = sh(run_etl, clone)
    assert second.code == 0, second
    m2 = summary(second)
    assert (m2["state"], m2["ran"], m2["cached"]) == ("SUCCESS", "0", "6")
    # both runs are in the default store under $XDG_CACHE_HOME
    assert [r["run_id"] for r in default_store().list_runs()] == [m2["id"], m["id"]]


def test_etl_docstring_command_is_the_readme_one() -> None:
    commands = docstring_commands(EXAMPLES / "etl.py")
    assert commands == [readme_blocks()[0][0].partition(" && ")[2].replace("python3", "python")]


def test_etl_in_worker_processes(clone: Path) -> None:
    done = sh(
        "python examples/etl.py run --run-dir runs/pool --source examples/data/sales.csv "
        "--max-workers 3",
        clone,
    )
    assert done.code == 0, done
    assert summary(done)["ran"] == "6"
    with open(clone / "runs" / "pool" / "report.csv", newline="") as fh:
        assert list(csv.reader(fh)) == expected_report(EXAMPLES / "data" / "sales.csv")


def test_ci_runs_the_readme_test_command() -> None:
    commands = [
        line.strip()
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and not line.startswith(("set ", "cd "))
    ]
    assert commands == [readme_blocks()[0][1]]


# ---------------------------------------------------------------------- thumbnails


def test_thumbnails_verify_rerenders_only_the_deleted_tile(clone: Path) -> None:
    first, remove, verify = docstring_commands(EXAMPLES / "thumbnails.py")
    assert remove == "rm runs/thumbs/tiles/tile_2.txt"
    assert verify.endswith("--verify")
    tiles = clone / "runs" / "thumbs" / "tiles"

    done = sh(first, clone)
    assert done.code == 0, done
    assert summary(done)["ran"] == "6"  # plan, 4 tiles, index
    assert sorted(p.name for p in tiles.iterdir()) == [f"tile_{i}.txt" for i in range(4)]
    index = (clone / "runs" / "thumbs" / "index.txt").read_text()
    mtimes = {p.name: p.stat().st_mtime_ns for p in tiles.iterdir()}

    (tiles / "tile_2.txt").unlink()  # the docstring's `rm`
    # without --verify the cache is trusted: nothing runs, the tile stays missing
    done = sh(first, clone)
    assert (summary(done)["ran"], summary(done)["cached"]) == ("0", "6")
    assert not (tiles / "tile_2.txt").exists()

    done = sh(verify, clone)
    assert done.code == 0, done
    m = summary(done)
    assert (m["state"], m["total"], m["ran"], m["cached"]) == ("SUCCESS", "6", "1", "5")
    assert (tiles / "tile_2.txt").read_text() == "###\n###\n###\n"
    assert {p.name: p.stat().st_mtime_ns for p in tiles.iterdir() if p.name != "tile_2.txt"} == {
        k: v for k, v in mtimes.items() if k != "tile_2.txt"
    }
    # the same path came back, so `index` stayed cached and its file is unchanged
    assert (clone / "runs" / "thumbs" / "index.txt").read_text() == index
    runs = default_store().list_runs()
    rendered = {
        i["array_index"]: i["cached"]
        for i in default_store().instances(runs[0]["run_id"], task="render")
    }
    assert rendered == {0: True, 1: True, 2: False, 3: True}

    # index's own verify= check: an emptied index file is rebuilt on --verify
    (clone / "runs" / "thumbs" / "index.txt").write_text("")
    done = sh(verify, clone)
    assert (summary(done)["ran"], summary(done)["cached"]) == ("1", "5")
    assert (clone / "runs" / "thumbs" / "index.txt").read_text() == index


# ---------------------------------------------------------------------- stations


def test_stations_fails_then_retry_succeeds(
    clone: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The stations docstring walk-through and the README's retry commands, as written."""
    mkdir, copy, run, fix, retry = docstring_commands(EXAMPLES / "stations.py")
    readme_status, readme_retry = readme_blocks()[1]
    assert readme_retry.startswith("python examples/stations.py retry RUN_ID")
    assert retry == readme_retry.split("#")[0].strip()

    assert sh(mkdir, clone).code == 0
    assert sh(copy, clone).code == 0
    failed = sh(run, clone)
    assert failed.code == 1, failed
    assert failed.err == ""
    m = summary(failed)
    run_id = m["id"]
    assert m["state"] == "FAILED"
    assert f"status {run_id} --errors" in failed.out and f"retry {run_id}" in failed.out

    status = sh(readme_status, clone, run_id)
    assert status.code == 0, status
    assert (
        "daily_mean[1]  FAILED (ERROR): ValueError: station_b.csv, hour 2: "
        "'n/a' is not a temperature" in status.out
    )
    assert "Traceback (most recent call last):" in status.out  # --errors

    store = default_store()
    before = {(i["task_name"], i["array_index"]): i for i in store.instances(run_id)}
    assert before[("daily_mean", 1)]["state"] == "FAILED"

    assert sh(fix, clone).code == 0
    assert "n/a" not in (clone / "runs" / "readings" / "station_b.csv").read_text()
    fixed = sh(retry, clone, run_id)
    assert fixed.code == 0, fixed
    m = summary(fixed)
    assert (m["id"], m["state"]) == (run_id, "SUCCESS")

    after = {(i["task_name"], i["array_index"]): i for i in store.instances(run_id)}
    assert all(i["state"] == "SUCCESS" for i in after.values())
    # what succeeded the first time was not computed again
    for key in (("find", None), ("daily_mean", 0)):
        assert after[key]["attempt"] == before[key]["attempt"] == 1, key
    assert after[("daily_mean", 1)]["attempt"] == 2
    assert "2 unchanged" in fixed.out
    expected = {}
    for path in sorted((clone / "runs" / "readings").glob("*.csv")):
        with open(path, newline="") as fh:
            values = [float(row["celsius"]) for row in csv.DictReader(fh)]
        expected[path.stem] = sum(values) / len(values)
    means = dict(store.get_array_outputs(run_id, "daily_mean"))
    assert means.keys() == expected.keys() == {"station_a", "station_b", "station_c"}
    for name, mean in expected.items():
        assert means[name] == pytest.approx(mean, abs=0.006)
    coldest_first = sorted(expected, key=expected.__getitem__)
    lines = store.get_singleton_output(run_id, "summary").splitlines()
    assert [line.split(":")[0] for line in lines] == coldest_first
    assert lines[0] == f"station_c: {means['station_c']:+.2f} C"

    capsys.readouterr()
    assert main(["status", run_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run"]["status"] == "SUCCESS"
