"""Packing array instances into few elements and fusing singleton chains (local executor).

The same dispatcher path as a cluster: wave files, worker processes, result
files, scheduler states (the local executor's).  The real-cluster versions
are in tests/cluster/test_cluster_packing.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Result, Run, RunState, Workflow
from reflow.cli import main
from reflow.config import load_config
from reflow.errors import ConfigError, ValidationError
from reflow.results import log_paths

PIPELINES = Path(__file__).resolve().parent / "cluster" / "pipelines"
if str(PIPELINES) not in sys.path:
    sys.path.insert(0, str(PIPELINES))

import pl_pack  # noqa: E402


def _final(run: Run, timeout: float = 60) -> RunState:
    deadline = time.monotonic() + timeout
    while run.state is RunState.RUNNING:
        if time.monotonic() > deadline:
            pytest.fail(f"run {run.run_id} still RUNNING: {run.status(as_dict=True)}")
        time.sleep(0.1)
    return run.state


def _elements(run: Run, task: str) -> dict[str, list[int]]:
    """job id -> the array indices that ran in it."""
    out: dict[str, list[int]] = {}
    for inst in run.store.instances(run.run_id, task=task):
        out.setdefault(inst["job_id"], []).append(inst["array_index"])
    return {k: sorted(v) for k, v in out.items()}


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("bad", [0, -2, True, "lots", 2.5, "0"])
def test_a_bad_pack_is_one_clear_error_naming_the_task(bad: object) -> None:
    wf = Workflow("p")
    with pytest.raises(ValidationError) as caught:

        @wf.array_job(pack=bad)
        def t(x: int) -> int:
            return x

    text = str(caught.value)
    assert text.startswith(f"task 't': pack={bad!r} is not valid: use 'auto'"), text
    assert "\n" not in text


def test_pack_and_fuse_are_task_options_not_scheduler_flags() -> None:
    wf = Workflow("p")

    @wf.array_job(pack="AUTO")
    def t(x: int) -> int:
        return x

    @wf.job(fuse=False, pack=3)
    def u() -> int:
        return 1

    assert wf.tasks["t"].pack == "auto" and wf.tasks["u"].pack == 3
    assert not wf.tasks["u"].fuse
    assert "pack" not in wf.tasks["t"].options and "fuse" not in wf.tasks["u"].options
    with pytest.raises(ValidationError, match=r"task 'v': fuse='no' must be True or False"):

        @wf.job(fuse="no")  # type: ignore[arg-type]
        def v() -> int:
            return 1


def test_the_config_pack_is_checked_with_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[executor]\nmode = "local"\npack = 0\n')
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"config file {path}, line 3" in str(caught.value)
    path.write_text('[executor]\npack = "auto"\n')
    assert load_config(path).pack == "auto"
    path.write_text("[executor]\npack = 12\n")
    assert load_config(path).pack == 12


def test_submit_pack_rejects_a_bad_value_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = PIPELINES / "pl_pack.py"
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(PIPELINES)!r}); "
         "import pl_pack; raise SystemExit(pl_pack.wf.cli())", "submit", "--run-dir",
         str(tmp_path / "r"), "--n", "3", "--pack", "none", "--executor", "local"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--pack: 'none' is not valid: use 'auto'" in done.stderr
    assert "Traceback" not in done.stderr
    assert script.exists()


# --------------------------------------------------------------------------- packing


def test_an_explicit_pack_runs_that_many_instances_per_element(
    store_path: Path, tmp_path: Path
) -> None:
    run = pl_pack.wf.submit(tmp_path / "run", executor="local", store=store_path, n=12)
    assert _final(run) is RunState.SUCCESS, run.status(as_dict=True)
    assert run.output("gather") == sum(i * i for i in range(12))
    elements = _elements(run, "crunch")
    assert sorted(elements.values()) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11]]
    assert all(job.rsplit("_", 1)[1] in ("0", "1", "2") for job in elements)
    for i in range(12):  # every instance keeps its own log
        log = log_paths(run.run_dir, run.run_id, "crunch", i, 1)[0]
        assert f"crunch[{i}] attempt 1" in log.read_text()


def test_an_exception_in_a_packed_instance_fails_only_it(store_path: Path, tmp_path: Path) -> None:
    run = pl_pack.wf.submit(
        tmp_path / "run", executor="local", store=store_path, n=10, trouble="raise", at=6
    )
    assert _final(run) is RunState.FAILED
    states = {i["array_index"]: i["state"] for i in run.store.instances(run.run_id, task="crunch")}
    assert [k for k, s in states.items() if s != "SUCCESS"] == [6]


def test_a_killed_element_fails_its_unfinished_instances_and_retry_completes(
    store_path: Path, tmp_path: Path
) -> None:
    run = pl_pack.wf.submit(
        tmp_path / "run", executor="local", store=store_path, n=10, trouble="kill", at=6
    )
    assert _final(run) is RunState.FAILED
    crunch = {i["array_index"]: i for i in run.store.instances(run.run_id, task="crunch")}
    assert {k for k, i in crunch.items() if i["state"] != "SUCCESS"} == {6, 7, 8, 9}
    assert "killed by SIGKILL" in crunch[8]["error_text"]
    run.retry()
    assert _final(run) is RunState.SUCCESS, run.status(as_dict=True)
    assert run.output("gather") == sum(i * i for i in range(10))


def test_auto_packs_to_the_slots_and_then_to_the_durations_it_has_seen(
    tmp_path: Path, store_path: Path
) -> None:
    wf = pl_pack.long_wf
    run = wf.submit(tmp_path / "a", executor="local", store=store_path, n=9, seconds=0.0)
    assert _final(run) is RunState.SUCCESS
    # a fresh store: as many elements as the local executor runs at once (its cores)
    import os

    assert len(_elements(run, "nap")) == min(9, os.cpu_count() or 1)
    # the store has seen `nap` take no time: the next wave of nine runs in one element
    again = wf.submit(tmp_path / "b", executor="local", store=store_path, n=9, seconds=0.001)
    assert _final(again) is RunState.SUCCESS
    assert len(_elements(again, "nap")) == 1


def test_submit_pack_one_gives_every_instance_its_element(tmp_path: Path) -> None:
    code = main(["config"])  # the console command works in this environment
    assert code == 0
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(PIPELINES)!r}); "
         "import pl_pack; raise SystemExit(pl_pack.long_wf.cli())", "submit", "--run-dir",
         str(tmp_path / "r"), "--n", "6", "--seconds", "0", "--pack", "1", "--executor",
         "local", "--store-path", str(tmp_path / "m.db")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.split()[2]
    from reflow.stores import open_store

    run = Run(run_id, open_store(tmp_path / "m.db"))
    assert _final(run) is RunState.SUCCESS
    assert len(_elements(run, "nap")) == 6
    assert run.info()["options"]["pack"] == 1


# --------------------------------------------------------------------------- fusion


def test_a_singleton_chain_runs_in_one_job_and_a_cached_task_in_it_does_not_run(
    tmp_path: Path, store_path: Path, calls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RFTEST_CALLS", str(calls.path))
    wf = pl_pack.chain_wf
    run = wf.submit(tmp_path / "a", executor="local", store=store_path, x=2)
    assert _final(run) is RunState.SUCCESS
    assert run.output("last") == 30
    assert len({i["job_id"] for i in run.store.instances(run.run_id)}) == 1
    assert calls.names() == ["first", "middle", "last"]
    again = wf.submit(tmp_path / "b", executor="local", store=store_path, x=2, force_tasks=["last"])
    assert _final(again) is RunState.SUCCESS
    assert calls.names()[3:] == ["first", "last"]
    rows = {i["task_name"]: i for i in again.store.instances(again.run_id)}
    assert rows["middle"]["cached"] and rows["middle"]["state"] == "SUCCESS"


def _chain(**middle: Any) -> Workflow:
    wf = Workflow(f"fuse-{len(middle)}-{'-'.join(sorted(middle))}")

    @wf.job(time="00:01:00")
    def a() -> int:
        return 1

    @wf.job(time="00:01:00", **middle)
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x + 1

    @wf.job(time="00:01:00")
    def c(x: Annotated[int, Result(step="b")]) -> int:
        return x + 1

    return wf


@pytest.mark.parametrize(
    "middle", [{"fuse": False}, {"mem": "1G"}, {"cpus": 2}], ids=["fuse=False", "mem", "cpus"]
)
def test_a_task_that_cannot_share_the_job_breaks_the_chain(
    middle: dict[str, Any], tmp_path: Path, store_path: Path
) -> None:
    from reflow.executors.base import JobResources
    from reflow.executors.dryrun import DryRunExecutor

    wf = _chain(**middle)
    seen: list[tuple[list[str], JobResources]] = []

    class Spy(DryRunExecutor):
        def submit(self, command: Any, resources: JobResources) -> str:
            seen.append((list(command), resources))
            return super().submit(command, resources)

    wf.submit(tmp_path / "r", executor=Spy(), store=store_path)
    waves = [sum(1 for w in cmd if w == "--wave") for cmd, res in seen if "worker" in cmd]
    # b cannot share a's job, nor c b's: three jobs of one task each
    assert waves == [1, 1, 1], (waves, [r.name for _, r in seen])


def test_a_fused_job_asks_for_the_sum_of_the_time_limits(tmp_path: Path, store_path: Path) -> None:
    from reflow.executors.base import JobResources
    from reflow.executors.dryrun import DryRunExecutor

    seen: list[tuple[list[str], JobResources]] = []

    class Spy(DryRunExecutor):
        def submit(self, command: Any, resources: JobResources) -> str:
            seen.append((list(command), resources))
            return super().submit(command, resources)

    _chain().submit(tmp_path / "r", executor=Spy(), store=store_path)
    (command, res), *_ = seen
    assert command.count("--wave") == 3
    assert res.time == "00:03:00"
