"""What keeps the command line fast: lazy imports and `status` by aggregate queries.

No timings here (benchmarks/cli.py measures them): these tests pin down the
properties the speed comes from.  `import reflow` and a pipeline script's
`--help` load neither the store nor the engine nor the executors; `status`
counts with SQL and reads only the instances it lists; `status --json`,
streamed from SQL, says exactly what `run.status(as_dict=True)` says.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import pytest

import reflow
from reflow import Param, Run, RunState, Workflow
from reflow.executors.base import Executor, JobResources, JobState, JobStatus
from reflow.render import render_status
from reflow.run import PROBLEM_STATES, status_dict, status_overview, write_status_json
from reflow.stores.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]

#: never loaded by `import reflow`, nor by a pipeline script's --help
HEAVY = (
    "sqlite3",
    "reflow.stores.sqlite",
    "reflow.engine",
    "reflow.codec",
    "reflow.dispatch",
    "reflow.executors",
    "reflow.worker",
    "reflow.local",
    "reflow.results",
    "multiprocessing",
    "concurrent.futures",
    "subprocess",
    "socket",
    "uuid",
    "decimal",
)

#: the modules that run work: a foreground run's `status` does without them
RUNNING_MACHINERY = (
    "reflow.engine",
    "reflow.dispatch",
    "reflow.executors",
    "reflow.worker",
    "reflow.local",
    "multiprocessing",
    "concurrent.futures",
)

# Runs a pipeline script (or a command) as `python script.py ARGS` would, then
# writes the names of the loaded modules to the file named by $PROBE_OUT.
PROBE = textwrap.dedent(
    """
    import json, os, runpy, sys
    try:
        if sys.argv[1] == "-c":
            exec(sys.argv[2])
        else:
            sys.argv = sys.argv[1:]
            runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    with open(os.environ["PROBE_OUT"], "w") as fh:
        json.dump({"code": code, "modules": sorted(sys.modules)}, fh)
    """
)

PIPELINE = """
from typing import Annotated

from reflow import Param, Result, Workflow

wf = Workflow("speedy")


@wf.job()
def items(n: Annotated[int, Param(help="how many")]) -> list[int]:
    return list(range(n))


@wf.array_job()
def square(x: Annotated[int, Result(step="items")]) -> int:
    if x == 3:
        raise ValueError("na\\u00efve \\u2713 \\U0001f600 \\"quoted\\" \\\\ tab\\there")
    return x * x


@wf.job()
def total(xs: Annotated[list[int], Result(step="square")]) -> int:
    return sum(xs)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)  # the isolated one of conftest.py
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env.pop("REFLOW_DEBUG", None)
    return env


def loaded_modules(tmp_path: Path, *args: str) -> tuple[Any, set[str]]:
    """Run `python PROBE ARGS` (a script and its arguments, or -c CODE); its modules."""
    out = tmp_path / "probe.json"
    env = child_env()
    env["PROBE_OUT"] = str(out)
    subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    doc = json.loads(out.read_text())
    return doc["code"], set(doc["modules"])


def loaded(modules: set[str], names: Sequence[str]) -> list[str]:
    """Which of `names` (or their submodules) are among `modules`."""
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


# ---------------------------------------------------------------------- lazy imports


def test_import_reflow_loads_nothing_heavy(tmp_path: Path) -> None:
    code, modules = loaded_modules(tmp_path, "-c", "import reflow")
    assert code == 0
    assert loaded(modules, HEAVY) == []
    assert loaded(modules, ["reflow"]) == ["reflow"]  # not even its own submodules


def test_public_names_still_import_and_are_the_real_objects() -> None:
    from reflow import (  # noqa: F401
        Flow,
        Param,
        ReflowError,
        Result,
        Run,
        RunDir,
        RunState,
        TaskState,
        Workflow,
    )
    from reflow.errors import ReflowError as Error
    from reflow.workflow import Workflow as Wf

    assert reflow.Workflow is Wf and reflow.ReflowError is Error
    assert set(reflow.__all__) <= set(dir(reflow))
    assert reflow.__version__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        reflow.Nope  # noqa: B018
    with pytest.raises(ImportError):
        from reflow import Nope  # type: ignore[attr-defined]  # noqa: F401


def test_defining_a_workflow_loads_nothing_heavy(tmp_path: Path) -> None:
    script = tmp_path / "speedy.py"
    script.write_text(PIPELINE)
    code, modules = loaded_modules(tmp_path, "-c", f"import runpy; runpy.run_path({str(script)!r})")
    assert code == 0
    assert loaded(modules, HEAVY) == []


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["--version"], ["dag"]])
def test_a_pipeline_scripts_help_loads_nothing_heavy(tmp_path: Path, args: list[str]) -> None:
    code, modules = loaded_modules(tmp_path, str(REPO / "examples" / "etl.py"), *args)
    assert code == 0
    assert loaded(modules, HEAVY) == []


def test_the_console_help_loads_nothing_heavy(tmp_path: Path) -> None:
    code, modules = loaded_modules(
        tmp_path, "-c", "from reflow.cli import main; raise SystemExit(main(['--help']))"
    )
    assert code == 0
    assert loaded(modules, HEAVY) == []


# ---------------------------------------------------------------------- status


@pytest.fixture
def failed_run(tmp_path: Path) -> tuple[Path, Path, str]:
    """(script, store, run id) of a finished run with one failed element and a skip."""
    script = tmp_path / "speedy.py"
    script.write_text(PIPELINE)
    store = tmp_path / "manifest.db"
    done = subprocess.run(
        [sys.executable, str(script), "run", "--run-dir", str(tmp_path / "r"),
         "--store-path", str(store), "--n", "6", "--on-error", "continue"],
        env=child_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done
    (row,) = SqliteStore(store).list_runs()
    return script, store, row["run_id"]


def test_status_of_a_finished_run_loads_no_running_machinery(
    tmp_path: Path, failed_run: tuple[Path, Path, str]
) -> None:
    script, store, run_id = failed_run
    for args in (["status", run_id], ["status", run_id, "--json"], ["status", run_id, "--errors"]):
        code, modules = loaded_modules(tmp_path, str(script), *args, "--store-path", str(store))
        assert code == 0
        assert loaded(modules, RUNNING_MACHINERY) == [], args


def json_roundtrip(doc: Any) -> Any:
    return json.loads(json.dumps(doc, default=str))


def streamed(store: SqliteStore, run_id: str, task: str | None = None) -> Any:
    out = io.StringIO()
    write_status_json(store, run_id, task, out)
    text = out.getvalue()
    assert text.isascii()  # as json.dumps writes it, whatever the terminal's encoding
    return json.loads(text)


@pytest.mark.parametrize("task", [None, "square", "total", "items"])
def test_status_json_is_the_status_dict(failed_run: tuple[Path, Path, str], task: str) -> None:
    _, path, run_id = failed_run
    store = SqliteStore(path)
    doc = streamed(store, run_id, task)
    assert doc == json_roundtrip(status_dict(store, run_id, task))
    assert list(doc) == [
        "run", "tasks", "summary", "cached", "retried", "retries", "instances",
        "failed_instances", "cancelled_instances", "skipped_instances", "attempts",
        "warnings", "elapsed", "dispatch_error",
    ]  # fmt: skip
    if task in (None, "square"):
        (bad,) = [i for i in doc["failed_instances"] if i["state"] == "FAILED"]
        assert (
            bad["error_text"]
            .rstrip()
            .endswith('ValueError: na\u00efve \u2713 \U0001f600 "quoted" \\ tab\there')
        )


def test_status_json_through_both_commands(
    tmp_path: Path, failed_run: tuple[Path, Path, str]
) -> None:
    script, store, run_id = failed_run
    expected = json_roundtrip(status_dict(SqliteStore(store), run_id))
    for argv in ([str(script)], ["-m", "reflow"]):
        done = subprocess.run(
            [sys.executable, *argv, "status", run_id, "--json", "--store-path", str(store)],
            env=child_env(), capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        assert json.loads(done.stdout) == expected


def test_status_counts_by_aggregate_and_reads_only_what_it_lists(
    failed_run: tuple[Path, Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, path, run_id = failed_run
    store = SqliteStore(path)
    asked: list[dict[str, Any]] = []
    instances = store.instances

    def spy(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        asked.append(kwargs)
        return instances(*args, **kwargs)

    monkeypatch.setattr(store, "instances", spy)
    doc = status_overview(store, run_id)
    assert "instances" not in doc
    # only the tasks with failed, cancelled or skipped instances, and only those
    assert asked == [
        {"task": "square", "states": PROBLEM_STATES},
        {"task": "total", "states": PROBLEM_STATES},
    ]
    full = status_dict(SqliteStore(path), run_id)
    assert doc["summary"] == full["summary"] and doc["cached"] == full["cached"]
    assert render_status(doc) == render_status(full)
    assert render_status(doc, errors=True) == render_status(full, errors=True)


def test_status_json_streams_in_chunks_and_gives_the_same_document(
    failed_run: tuple[Path, Path, str],
) -> None:
    _, path, run_id = failed_run
    store = SqliteStore(path)
    chunks = list(store.iter_instances(run_id, chunk=2))
    assert len(chunks) > 1 and all(len(c) <= 2 for c in chunks)
    assert [i for c in chunks for i in c] == store.instances(run_id)
    assert streamed(store, run_id) == json_roundtrip(status_dict(store, run_id))


class FakeScheduler(Executor):
    """Takes jobs and runs nothing; reports the states a test gives it."""

    name = "fake"
    mode = "fake"

    def __init__(self) -> None:
        self.jobs: dict[str, int | None] = {}  # job id -> array size
        self.running: set[str] = set()

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        return ""

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        job_id = f"{len(self.jobs) + 101}"
        self.jobs[job_id] = resources.array_size
        return job_id

    def cancel(self, job_ids: Sequence[str]) -> None:
        return None

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        for job in job_ids:
            size = self.jobs.get(job)
            for one in [job] if size is None else [f"{job}_{i}" for i in range(size)]:
                state = JobState.RUNNING if one in self.running else JobState.PENDING
                out[one] = JobStatus(state)
        return out


def test_status_of_a_cluster_run_shows_live_job_states_alike_everywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reflow.dispatch

    wf = Workflow("live")

    @wf.job()
    def items() -> list[int]:
        return [1, 2]

    @wf.job()
    def other(n: Annotated[int, Param()] = 1) -> int:
        return n

    fake = FakeScheduler()
    run = wf.submit(tmp_path / "r", executor=fake, store=tmp_path / "m.db")
    assert run.state is RunState.RUNNING
    monkeypatch.setattr(reflow.dispatch, "make_executor", lambda *a, **k: fake)
    jobs = {i["task_name"]: i["job_id"] for i in run.store.instances(run.run_id)}
    fake.running = {jobs["items"]}  # `other` still queued

    store = SqliteStore(tmp_path / "m.db")
    full = status_dict(store, run.run_id)
    by_task = {i["task_name"]: i for i in full["instances"]}
    assert by_task["items"]["state"] == "RUNNING" and by_task["items"]["job_state"] == "RUNNING"
    assert by_task["other"]["state"] == "SUBMITTED" and by_task["other"]["job_state"] == "PENDING"
    assert full["summary"] == {"items": {"RUNNING": 1}, "other": {"SUBMITTED": 1}}
    assert full["warnings"] == []
    assert streamed(store, run.run_id) == json_roundtrip(full)
    overview = status_overview(store, run.run_id)
    assert overview["summary"] == full["summary"]
    assert render_status(overview) == render_status(full)
    only = streamed(store, run.run_id, "items")
    assert only["summary"] == {"items": {"RUNNING": 1}}
    assert [i["job_state"] for i in only["instances"]] == ["RUNNING"]
    assert Run(run.run_id, store).status(as_dict=True) == full
