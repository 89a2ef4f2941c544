"""reflow-hpc users' pipelines run unchanged: its keywords, names and behaviours (issue 18)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest

from reflow import Param, Result, Run, RunState, Workflow
from reflow.errors import MissingParameterError, ReflowError, TaskFailedError, ValidationError


def test_name_submit_options_extra_and_backend_are_taken_as_reflow_hpc_takes_them() -> None:
    wf = Workflow("compat")

    @wf.job("prepare", submit_options={"qos": "high"}, extra={"gres": "gpu:1"}, backend="hpc")
    def _make() -> list[int]:
        return [1, 2]

    @wf.array_job(name="work", submit_options={"partition": "short"}, qos="long")
    def _work(x: Annotated[int, Result(step="prepare")]) -> int:
        return x

    @wf.array_job("again")
    def _again(x: Annotated[int, Result(step="work")]) -> int:
        return x

    prepare, work = wf.tasks["prepare"], wf.tasks["work"]
    assert list(wf.tasks) == ["prepare", "work", "again"]
    assert prepare.func is _make and prepare.backend == "hpc" and not prepare.array
    assert dict(prepare.options) == {"qos": "high", "gres": "gpu:1"}  # merged
    assert work.array and dict(work.options) == {"partition": "short", "qos": "long"}
    assert wf.tasks["again"].array
    assert wf.validate().order == ("prepare", "work", "again")


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"retires": 2}, "submit_options={'retires': ...}"),
        ({"memory": "4G"}, "unknown keyword 'memory'. Did you mean 'mem'?"),
        ({"cpu": 2}, "unknown keyword 'cpu'. Did you mean 'cpus'?"),
        ({"mail": "me"}, "unknown keyword 'mail'. "),
        ({"nonsense_flag": 1}, "submit_options={'nonsense_flag': ...}"),
    ],
)
def test_an_unknown_keyword_is_an_error_naming_it(keywords: dict[str, Any], message: str) -> None:
    wf = Workflow("typos")
    with pytest.raises(ValidationError) as caught:

        @wf.job(**keywords)
        def task() -> int:
            return 1

    assert str(caught.value).startswith("task 'task': @job got an unknown keyword")
    assert message in str(caught.value)
    assert "task" not in wf.tasks


@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"submit_options": ["qos"]}, "submit_options= must be a dict of scheduler options"),
        ({"submit_options": {"bad key": 1}}, "submit_options key 'bad key' is not an option name"),
        ({"extra": {"qos": ["a"]}}, "extra['qos']=['a'] must be a string, number or bool"),
        ({"backend": 3}, "backend=3 must be a string"),
        ({"after": [3]}, "after= must name tasks"),
        ({"qos": ["long"]}, "task 'task': qos=['long'] must be a string, number or bool"),
    ],
)
def test_bad_option_values_are_one_clear_error(keywords: dict[str, Any], message: str) -> None:
    wf = Workflow("bad")
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):

        @wf.job(**keywords)
        def task() -> int:
            return 1


def test_a_name_is_given_once_and_must_be_a_name() -> None:
    wf = Workflow("names")
    with pytest.raises(ValidationError, match="give the task's name once"):
        wf.job("a", name="b")
    with pytest.raises(ValidationError, match="task name 'two words' is not valid"):
        wf.job(name="two words")(lambda: 1)
    with pytest.raises(ValidationError, match="drop array="):
        wf.array_job(array=False)


def test_no_unknown_keyword_reaches_a_job_script(tmp_path: Path) -> None:
    wf = Workflow("scripted")

    @wf.job(submit_options={"qos": "high", "mail-type": "END"}, constraint="a100")
    def task() -> int:
        return 1

    from reflow.executors.base import JobResources
    from reflow.executors.slurm import SlurmExecutor

    spec = wf.tasks["task"]
    script = SlurmExecutor().render(
        ["python", "-m", "reflow", "worker"],
        JobResources(name="task", extra=dict(spec.options), workdir=str(tmp_path)),
    )
    directives = [line for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "#SBATCH --qos=high" in directives
    assert "#SBATCH --mail-type=END" in directives
    assert "#SBATCH --constraint=a100" in directives
    with pytest.raises(ValidationError):
        wf.job(retires=2)(lambda: 1)  # type: ignore[call-overload]


# ---------------------------------------------------------------------- run_local


def _failing() -> Workflow:
    wf = Workflow("fails")

    @wf.job()
    def good() -> str:
        return "ok"

    @wf.job()
    def boom() -> str:
        raise ValueError("intentional")

    return wf


def test_on_error_stop_raises_a_runtime_error_carrying_the_recorded_run(
    tmp_path: Path, store_path: Path
) -> None:
    with pytest.raises(RuntimeError, match=r"boom.*failed") as caught:
        _failing().run_local(tmp_path / "r", store=store_path, on_error="stop")
    err = caught.value
    assert isinstance(err, TaskFailedError) and isinstance(err, ReflowError)
    assert "task 'boom' failed: ValueError: intentional" in str(err)
    run = err.run
    assert isinstance(run, Run) and run.state is RunState.FAILED
    assert Run(run.run_id, run.store).state is RunState.FAILED  # recorded before it was raised


def test_on_error_continue_returns_the_failed_run(tmp_path: Path, store_path: Path) -> None:
    run = _failing().run_local(tmp_path / "r", store=store_path, on_error="continue")
    assert run.state is RunState.FAILED and run.output("good") == "ok"


def test_the_cli_run_prints_its_summary_and_exits_1_when_a_task_fails(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _failing().cli(
        ["run", "--run-dir", str(tmp_path / "r"), "--store-path", str(store_path)]
    )
    out = capsys.readouterr()
    assert code == 1 and "FAILED" in out.out and "Traceback" not in out.err


def test_a_missing_parameter_is_a_type_error_and_a_value_error(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("params")

    @wf.job()
    def task(x: Annotated[str, Param(help="X")]) -> str:
        return x

    for kind in (TypeError, ValueError, MissingParameterError):
        with pytest.raises(kind, match=r"missing required parameter 'x' \(--x\)"):
            wf.run_local(tmp_path / "r", store=store_path)


def test_the_taskspec_records_the_backend(tmp_path: Path) -> None:
    wf = Workflow("backend")

    @wf.job(backend="slurm-gpu")
    def task() -> int:
        return 1

    from reflow.runner import task_rows

    ((_, _, _, spec),) = task_rows(wf.validate())
    assert json.loads(spec)["backend"] == "slurm-gpu"
    assert sys.modules["reflow.flow"].TaskSpec is type(wf.tasks["task"])


# ---------------------------------------------------------------------- the public names


def test_every_name_of_reflow_hpc_s_reference_is_importable_and_does_what_it_says(
    tmp_path: Path, store_path: Path, monkeypatch: pytest.MonkeyPatch, calls: Any
) -> None:
    import time

    from reflow import (
        Config,
        Executor,
        FluxExecutor,
        JobResources,
        LocalExecutor,
        LSFExecutor,
        PBSExecutor,
        SGEExecutor,
        SlurmExecutor,
        TaskSpec,
        WorkflowDescription,
        config_path,
        ensure_config_exists,
        load_config,
        write_example_config,
    )

    # configuration
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "reflow" / "config.toml"
    assert ensure_config_exists() == config_path() and config_path().exists()
    example = write_example_config(tmp_path / "example.toml")
    config = load_config(example)
    assert isinstance(config, Config) and isinstance(load_config(), Config)
    wf = Workflow("named", config=config)

    # executors, each accepted by submit(executor=...)
    executors = [
        SlurmExecutor(sbatch="/opt/slurm/bin/sbatch"),
        # (flavor: this machine's qstat is Grid Engine's, which PBSExecutor would ask)
        PBSExecutor(qsub="/opt/pbs/bin/qsub", flavor="pro"),
        LSFExecutor(bsub="/opt/lsf/bin/bsub"),
        SGEExecutor(qsub="/opt/sge/bin/qsub"),
        FluxExecutor(flux="/opt/flux/bin/flux"),
        LocalExecutor(tmp_path / "jobs"),
    ]
    assert all(isinstance(e, Executor) for e in executors)
    assert isinstance(JobResources(name="x", cpus=2, mem="1G"), JobResources)

    @wf.job()
    def make(n: Annotated[int, Param(help="how many")] = 2) -> list[int]:
        return list(range(n))

    @wf.array_job()
    def square(x: Annotated[int, Result(step="make")]) -> int:
        return x * x

    assert isinstance(wf.tasks["square"], TaskSpec)
    with pytest.raises(ReflowError, match="/opt/pbs/bin/qsub"):
        wf.submit(tmp_path / "pbs", executor=executors[1], store=store_path)
    # a job imports its workflow: one defined at module level, in the cluster tests' pipelines
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "cluster" / "pipelines"))
    import pl_fanout

    monkeypatch.setenv("RFTEST_CALLS", str(calls.path))
    submitted = pl_fanout.wf.submit(
        tmp_path / "local", executor=executors[5], store=store_path, n=2
    )
    deadline = time.monotonic() + 60
    while submitted.state is RunState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.1)
    assert submitted.state is RunState.SUCCESS and submitted.output("total") == 3
    run = wf.run_local(tmp_path / "r", store=store_path, n=3)
    assert run.outputs("square") == [0, 1, 4]

    # describe
    typed = wf.describe_typed()
    assert isinstance(typed, WorkflowDescription)
    doc = wf.describe()
    assert json.loads(json.dumps(doc)) == doc  # JSON-safe
    assert doc["name"] == "named" and [t["name"] for t in doc["tasks"]] == ["make", "square"]
    square_doc = doc["tasks"][1]
    assert square_doc["is_array"] and square_doc["dependencies"] == ["make"]
    assert square_doc["result_deps"] == {"x": {"steps": ["make"], "broadcast": False}}
    (n,) = doc["cli_params"]
    assert (n["name"], n["flag"], n["type"], n["required"], n["default"], n["help"]) == (
        "n", "--n", "int", False, 2, "how many",
    )  # fmt: skip

    # the store's listing helpers, and cancelling several runs
    store = run.store
    user = store.get_run(run.run_id)["user"]
    (listed,) = store.list_runs("named", user, status="SUCCESS")  # the PBS one FAILED
    assert listed["run_id"] == run.run_id and store.list_runs(user_id="nobody-else") == []
    assert store.count_task_instances(run.run_id, "square") == 3
    assert [i["output"] for i in store.list_task_instances(run.run_id, "square")] == [0, 1, 4]
    assert store.task_state_summary(run.run_id) == {
        "make": {"SUCCESS": 1}, "square": {"SUCCESS": 3},
    }  # fmt: skip
    assert store.list_runs(graph_name="named", limit=1, since="2000-01-01", until="2999-01-01",
                           status="SUCCESS")[0]["run_id"] == run.run_id  # fmt: skip
    # the Run methods of the reference, once each
    assert run.run_id.startswith("named-") and run.run_dir == tmp_path / "r"
    assert run.status() is None and run.status(errors=True) is None
    assert run.status(as_dict=True)["failed_instances"] == []  # type: ignore[index]
    assert run.cancel() == 0 and run.cancel(task="make") == 0  # it had finished
    assert run.retry() == 0 and run.retry(task="square") == 0  # nothing failed
    wf.validate()
    assert wf.cancel_runs([run.run_id, submitted.run_id], store) == 0  # both had finished
    with pytest.raises(KeyError, match="no run 'nope'"):
        wf.cancel_runs(["nope"], store)
    with pytest.raises(ValidationError, match="a list of run ids"):
        wf.cancel_runs(run.run_id, store)


def test_a_dispatcher_job_is_told_the_commands_its_executor_was_given() -> None:
    from reflow.config import Config
    from reflow.dispatch import command_env
    from reflow.executors.pbs import PBSExecutor
    from reflow.executors.slurm import SlurmExecutor

    config = Config()
    assert command_env(PBSExecutor(qsub="/opt/pbs/bin/qsub"), config) == {
        "REFLOW_QSUB": "/opt/pbs/bin/qsub"
    }
    assert command_env(SlurmExecutor(), config) == {}


def test_a_reflow_hpc_store_is_named_and_left_untouched(tmp_path: Path) -> None:
    import sqlite3

    from reflow.errors import StoreError
    from reflow.stores.sqlite import SqliteStore

    old = tmp_path / "manifest.db"
    with sqlite3.connect(old) as db:  # the tables reflow-hpc's store has
        for table in ("runs", "task_specs", "task_instances", "task_dependencies"):
            db.execute(f"CREATE TABLE {table} (id INTEGER)")
    before = old.read_bytes()
    with pytest.raises(StoreError, match="is a reflow-hpc store, which reflow cannot use"):
        SqliteStore(old).list_runs()
    assert old.read_bytes() == before


def test_run_dicts_carry_reflow_hpc_s_names_too(tmp_path: Path, store_path: Path) -> None:
    run = _failing().run_local(tmp_path / "r", store=store_path, on_error="continue")
    info = run.store.get_run(run.run_id)
    assert info["user_id"] == info["user"] and info["parameters"] == info["params"] == {}
    (listed,) = run.store.list_runs()
    assert listed["user_id"] == info["user"]


def test_an_array_task_that_never_fanned_out_has_no_instances(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("unfanned")

    @wf.job()
    def fail_step() -> list[str]:
        raise RuntimeError("boom")

    @wf.array_job()
    def child(item: Annotated[str, Result(step="fail_step")]) -> str:
        return item

    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    assert run.store.count_task_instances(run.run_id, "child") == 0
    assert run.store.count_task_instances(run.run_id, "fail_step") == 1
    assert run.status(as_dict=True)["summary"]["child"] == {"SKIPPED": 1}  # type: ignore[index]
