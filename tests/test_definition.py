"""Defining workflows: @wf.job options, markers, Flow and include (SPEC 1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest

from reflow import Flow, Param, ReflowError, Result, RunDir, Workflow
from reflow.errors import ValidationError

# ---------------------------------------------------------------------- @wf.job options


def test_job_records_every_option_of_spec_1() -> None:
    wf = Workflow("opts")

    def check(out: str) -> bool:
        return bool(out)

    @wf.job(
        cpus=4,
        time="1-02:03:04",
        mem="16G",
        cache=False,
        version=3,
        verify=check,
        partition="gpu",
        account="proj42",
        gpus=1,
        qos="long",
        constraint="a100",
    )
    def first() -> list[str]:
        return ["a"]

    @wf.job(array=True, array_parallelism=5, after=["first"], queue="short")
    def second(item: Annotated[str, Result(step="first")]) -> str:
        return item

    @wf.job(after="second")
    def third() -> int:
        return 1

    a, b, c = wf.tasks["first"], wf.tasks["second"], wf.tasks["third"]
    assert (a.cpus, a.time, a.mem) == (4, "1-02:03:04", "16G")
    assert a.cache is False
    assert a.version == "3"  # versions are strings; an int is accepted and converted
    assert a.verify is check
    assert a.array is False
    assert dict(a.options) == {
        "partition": "gpu",
        "account": "proj42",
        "gpus": 1,
        "qos": "long",
        "constraint": "a100",
    }
    assert b.array is True and b.array_parallelism == 5
    assert b.after == ("first",)
    assert dict(b.options) == {"queue": "short"}
    assert c.after == ("second",)  # a single name is accepted as well as a list


def test_job_defaults() -> None:
    wf = Workflow("defaults")

    @wf.job
    def bare() -> int:
        return 1

    spec = wf.tasks["bare"]
    assert (spec.cpus, spec.time, spec.mem) == (None, None, None)
    assert spec.array is False and spec.array_parallelism is None
    assert spec.cache is True
    assert spec.version == "1"
    assert spec.verify is None
    assert spec.after == ()
    assert dict(spec.options) == {}


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("00:10:00", "00:10:00"),
        ("48:00:00", "48:00:00"),
        ("100:00:00", "100:00:00"),
        ("2-12:00:00", "2-12:00:00"),
        ("10:00", "10:00"),  # minutes:seconds
        ("90", "90"),  # minutes
        ("1-12", "1-12"),  # days-hours
        ("1-12:30", "1-12:30"),  # days-hours:minutes
    ],
)
def test_valid_time_limits(value: str, stored: str) -> None:
    wf = Workflow("t")

    @wf.job(time=value)
    def task() -> int:
        return 1

    assert wf.tasks["task"].time == stored


@pytest.mark.parametrize(
    "value", ["10:60", "00:60:00", "00:00:60", "1-24:00:00", "1:2:3", "soon", "0", "1-24"]
)
def test_bad_time_limit_is_a_clear_error(value: str) -> None:
    wf = Workflow("t")
    with pytest.raises(ValidationError) as caught:

        @wf.job(time=value)
        def slow() -> int:
            return 1

    message = str(caught.value)
    assert "'slow'" in message
    assert f"time={value!r}" in message
    assert "HH:MM:SS" in message and "D-HH:MM:SS" in message
    assert "slow" not in wf.tasks


@pytest.mark.parametrize(
    ("value", "stored"),
    [("500M", "500M"), ("4g", "4G"), ("16GB", "16G"), ("1T", "1T"), (4096, "4096M")],
)
def test_valid_memory_sizes(value: str | int, stored: str) -> None:
    wf = Workflow("m")

    @wf.job(mem=value)  # type: ignore[arg-type]
    def task() -> int:
        return 1

    assert wf.tasks["task"].mem == stored


@pytest.mark.parametrize("value", ["", "lots", "0G", "1.5G", "-1G", "G", "4B", 0])
def test_bad_memory_is_a_clear_error(value: str | int) -> None:
    wf = Workflow("m")
    with pytest.raises(ValidationError) as caught:

        @wf.job(mem=value)  # type: ignore[arg-type]
        def hungry() -> int:
            return 1

    message = str(caught.value)
    assert "'hungry'" in message
    assert f"mem={value!r}" in message
    assert "4G" in message


@pytest.mark.parametrize("value", [0, -2, 1.5, "2", True])
def test_bad_cpus_is_a_clear_error(value: object) -> None:
    wf = Workflow("c")
    with pytest.raises(ValidationError, match=r"task 'busy': cpus=.* must be a whole number >= 1"):

        @wf.job(cpus=value)  # type: ignore[arg-type]
        def busy() -> int:
            return 1


def test_bad_array_parallelism_is_a_clear_error() -> None:
    wf = Workflow("p")

    @wf.job()
    def items() -> list[int]:
        return [1]

    with pytest.raises(ValidationError, match=r"array_parallelism=0 must be a whole number >= 1"):

        @wf.array_job(array_parallelism=0)
        def each(x: Annotated[int, Result(step="items")]) -> int:
            return x

    with pytest.raises(ValidationError, match="array_parallelism only applies to array tasks"):

        @wf.job(array_parallelism=3)
        def single(x: Annotated[list[int], Result(step="items")]) -> int:
            return len(x)


def test_verify_must_be_callable() -> None:
    wf = Workflow("v")
    with pytest.raises(ValidationError, match=r"task 'made': verify= must be a function"):

        @wf.job(verify=True)  # type: ignore[arg-type]
        def made() -> str:
            return "x"


def test_array_job_is_job_with_array_true() -> None:
    wf = Workflow("arr")

    @wf.job()
    def items() -> list[int]:
        return [1, 2]

    @wf.array_job
    def bare(x: Annotated[int, Result(step="items")]) -> int:
        return x

    @wf.array_job(cpus=2, array_parallelism=1)
    def called(x: Annotated[int, Result(step="items")]) -> int:
        return x

    assert wf.tasks["bare"].array is True
    assert wf.tasks["called"].array is True
    assert wf.tasks["called"].cpus == 2
    assert wf.tasks["called"].array_parallelism == 1


# ---------------------------------------------------------------------- names and callables


def test_duplicate_task_name_is_an_error() -> None:
    wf = Workflow("dup")

    @wf.job()
    def load() -> int:
        return 1

    with pytest.raises(ValidationError, match="a task named 'load' is already defined in 'dup'"):

        @wf.job()  # type: ignore[no-redef]
        def load() -> int:
            return 2

    assert wf.tasks["load"].func() == 1  # the first definition is kept


def test_decorated_function_stays_an_ordinary_callable() -> None:
    wf = Workflow("plain")

    def original(chunk: Annotated[str, Param(help="a chunk")], times: int = 2) -> str:
        return chunk * times

    decorated = wf.job(cpus=1)(original)
    assert decorated is original
    assert decorated("ab") == "abab"
    assert decorated(chunk="x", times=3) == "xxx"
    assert decorated.__name__ == "original"


def test_task_name_is_the_function_name_and_order_is_kept() -> None:
    wf = Workflow("names")

    @wf.job()
    def zeta() -> int:
        return 1

    @wf.job()
    def alpha() -> int:
        return 2

    assert list(wf.tasks) == ["zeta", "alpha"]


def test_workflow_name_must_be_usable() -> None:
    with pytest.raises(ValidationError, match="name 'bad name' is not valid"):
        Workflow("bad name")


def test_args_and_kwargs_are_refused() -> None:
    wf = Workflow("star")
    with pytest.raises(ValidationError, match=r"\*args and \*\*kwargs are not supported"):

        @wf.job()
        def loose(*args: int) -> int:
            return 0


# ---------------------------------------------------------------------- Param / Result / RunDir


def test_param_result_and_rundir_in_annotated_and_default_forms(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("forms")

    @wf.job()
    def source(
        a: Annotated[int, Param(help="first")],
        b: int = Param(help="second"),  # default form: still required
        c: Annotated[str, Param(help="third")] = "dflt",
        d: float = 0.5,  # no marker at all: a parameter with a default
    ) -> list[int]:
        return [a, b, len(c), int(d * 10)]

    @wf.array_job()
    def annotated(x: Annotated[int, Result(step="source")]) -> int:
        return x * 10

    @wf.array_job()
    def defaulted(x: int = Result(step="annotated")) -> int:
        return x + 1

    @wf.job()
    def finish(
        values: Annotated[list[int], Result("defaulted")],
        rd1: RunDir,
        rd2: Annotated[Path, RunDir()],
        rd3: RunDir = RunDir(),
    ) -> list[str]:
        return [str(sum(values)), str(rd1), str(rd2), str(rd3), type(rd1).__name__]

    graph = wf.validate()
    assert set(graph.params) == {"a", "b", "c", "d"}
    assert graph.params["a"].required and graph.params["b"].required
    assert graph.params["a"].help == "first" and graph.params["b"].help == "second"
    assert graph.params["c"].default == "dflt" and graph.params["d"].default == 0.5
    kinds = {a.name: a.kind for a in wf.tasks["finish"].args}
    assert kinds == {"values": "result", "rd1": "run_dir", "rd2": "run_dir", "rd3": "run_dir"}

    with pytest.raises(ValueError, match="missing required parameter 'b'"):
        wf.run_local(tmp_path / "run", store=store_path, a=1)

    run = wf.run_local(tmp_path / "run", store=store_path, a=1, b=2)
    assert run.outputs("annotated") == [10, 20, 40, 50]
    assert run.outputs("defaulted") == [11, 21, 41, 51]
    total, rd1, rd2, rd3, kind = run.output("finish")
    assert total == str(11 + 21 + 41 + 51)
    assert rd1 == rd2 == rd3 == str((tmp_path / "run").absolute())
    assert kind.endswith("Path")


def test_param_rejects_bad_options() -> None:
    with pytest.raises(ValidationError, match="namespace='shared'"):
        Param(namespace="shared")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="short='--s'"):
        Param(short="--s")


def test_result_needs_exactly_one_of_step_and_steps() -> None:
    with pytest.raises(ValidationError, match="exactly one of step="):
        Result()
    with pytest.raises(ValidationError, match="exactly one of step="):
        Result("a", steps=["b"])
    with pytest.raises(ValidationError, match="non-empty list of task names"):
        Result(steps=[])
    assert Result(steps=["a", "b"]).steps == ("a", "b")
    assert Result("a", broadcast=True).broadcast is True


def test_result_argument_cannot_have_a_default() -> None:
    wf = Workflow("rd")

    @wf.job()
    def up() -> int:
        return 1

    with pytest.raises(ValidationError, match="a Result argument cannot have a default"):

        @wf.job()
        def down(x: Annotated[int, Result(step="up")] = 3) -> int:
            return x


def test_unsupported_parameter_type_is_refused() -> None:
    wf = Workflow("types")
    with pytest.raises(ValidationError, match=r"parameter 'table' has type dict\[str, int\]"):

        @wf.job()
        def uses(table: dict[str, int]) -> int:
            return len(table)


def test_supported_parameter_types_are_accepted(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("ptypes")

    @wf.job()
    def echo(
        name: str,
        count: int,
        ratio: float,
        flag: bool,
        where: Path,
        mode: Literal["fast", "slow"],
        tags: list[str],
        maybe: int | None = None,
    ) -> list[object]:
        return [name, count, ratio, flag, where, mode, tags, maybe]

    run = wf.run_local(
        tmp_path / "run",
        store=store_path,
        name="n",
        count=2,
        ratio=1,  # an int is accepted for a float
        flag=True,
        where="data/x.csv",  # a str is accepted for a Path
        mode="slow",
        tags=["a", "b"],
    )
    out = run.output("echo")
    assert out == ["n", 2, 1.0, True, Path("data/x.csv"), "slow", ["a", "b"], None]
    assert isinstance(out[2], float) and isinstance(out[4], Path)


# ---------------------------------------------------------------------- local namespace


def test_global_parameters_are_shared_and_local_ones_are_per_task(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("ns")

    @wf.job()
    def first(
        scale: int, limit: Annotated[int, Param(help="first's limit", namespace="local")]
    ) -> list[int]:
        return [scale, limit]

    @wf.job()
    def second(
        scale: int,
        base: Annotated[list[int], Result(step="first")],
        limit: Annotated[int, Param(namespace="local")] = 7,
    ) -> list[int]:
        return [*base, scale, limit]

    graph = wf.validate()
    assert set(graph.params) == {"scale", "first_limit", "second_limit"}
    assert graph.params["scale"].tasks == ("first", "second")
    assert graph.params["first_limit"].flag == "--first-limit"
    assert graph.params["first_limit"].local

    with pytest.raises(
        ValueError, match="It is local to its task: pass first_limit or second_limit"
    ):
        wf.run_local(tmp_path / "run", store=store_path, scale=1, limit=3)

    run = wf.run_local(tmp_path / "run", store=store_path, scale=2, first_limit=3)
    assert run.output("second") == [2, 3, 2, 7]
    run = wf.run_local(tmp_path / "run", store=store_path, scale=2, first_limit=3, second_limit=9)
    assert run.output("second") == [2, 3, 2, 9]


def test_shared_parameter_with_two_types_is_an_error() -> None:
    wf = Workflow("clash")

    @wf.job()
    def one(n: int) -> int:
        return n

    @wf.job()
    def two(n: str) -> str:
        return n

    with pytest.raises(
        ValueError, match=r"parameter 'n' is int in task 'one' but str in task 'two'"
    ):
        wf.validate()


# ---------------------------------------------------------------------- Flow and include


def _make_flow() -> Flow:
    flow = Flow("cleaning")

    @flow.job()
    def fetch(url: str) -> list[str]:
        return [f"{url}/{i}" for i in range(3)]

    @flow.array_job()
    def clean(row: Annotated[str, Result(step="fetch")]) -> str:
        return row.upper()

    @flow.job(after=["clean"])
    def report(rows: Annotated[list[str], Result(step="clean")]) -> str:
        return ",".join(rows)

    return flow


def test_flow_has_tasks_but_no_execution_machinery() -> None:
    flow = _make_flow()
    assert list(flow.tasks) == ["fetch", "clean", "report"]
    assert not hasattr(flow, "run_local")
    assert not hasattr(flow, "submit")


def test_include_with_prefix_rewrites_result_and_after(tmp_path: Path, store_path: Path) -> None:
    flow = _make_flow()
    wf = Workflow("two_sources")
    wf.include(flow, prefix="raw")
    wf.include(flow, prefix="ref")

    @wf.job()
    def compare(
        a: Annotated[str, Result(step="raw_report")], b: Annotated[str, Result(step="ref_report")]
    ) -> bool:
        return a == b

    assert list(wf.tasks) == [
        "raw_fetch", "raw_clean", "raw_report", "ref_fetch", "ref_clean", "ref_report", "compare",
    ]  # fmt: skip
    report = wf.tasks["raw_report"]
    assert report.after == ("raw_clean",)
    assert report.args[0].result is not None
    assert report.args[0].result.steps == ("raw_clean",)
    assert wf.tasks["ref_clean"].upstream == ("ref_fetch",)
    # the flow itself is unchanged and can be included again
    assert flow.tasks["report"].after == ("clean",)

    run = wf.run_local(tmp_path / "run", store=store_path, url="u")
    assert run.output("raw_report") == "U/0,U/1,U/2"
    assert run.outputs("ref_clean") == ["U/0", "U/1", "U/2"]
    assert run.output("compare") is True


def test_include_keeps_references_to_tasks_outside_the_flow(
    tmp_path: Path, store_path: Path
) -> None:
    flow = Flow("stage")

    @flow.job()
    def double(values: Annotated[list[int], Result(step="numbers")]) -> list[int]:
        return [v * 2 for v in values]

    wf = Workflow("host")

    @wf.job()
    def numbers() -> list[int]:
        return [1, 2, 3]

    wf.include(flow, prefix="s")
    assert wf.tasks["s_double"].upstream == ("numbers",)
    assert wf.run_local(tmp_path / "run", store=store_path).output("s_double") == [2, 4, 6]


def test_include_without_prefix_and_name_clashes() -> None:
    flow = _make_flow()
    wf = Workflow("plain")
    wf.include(flow)
    assert list(wf.tasks) == ["fetch", "clean", "report"]
    with pytest.raises(ValidationError, match="a task named 'fetch' is already defined"):
        wf.include(flow)
    with pytest.raises(ValidationError, match="include prefix 'bad-prefix' is not valid"):
        wf.include(flow, prefix="bad-prefix")


def test_validation_errors_are_reflow_errors_and_value_errors() -> None:
    wf = Workflow("errs")
    with pytest.raises(ReflowError):
        wf.validate()  # no tasks
    with pytest.raises(ValueError, match="has no tasks"):
        wf.validate()


def test_signature_is_read_once_at_decoration(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("once")

    @wf.job()
    def task(n: int) -> int:
        return n + 1

    task.__annotations__["n"] = dict  # later changes to the function are not re-read
    assert wf.validate().params["n"].annotation is int
    assert wf.run_local(tmp_path / "r", store=store_path, n=1).output("task") == 2
