"""Wiring inferred from types (SPEC 1 table) and the validation messages users read."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pytest

from reflow import Result, RunState, TaskState, Workflow
from reflow.wiring import Mode
from stopping import stopped


def _modes(wf: Workflow, task: str) -> dict[str, Mode]:
    return {i.arg: i.mode for i in wf.validate().inputs[task]}


# ---------------------------------------------------------------------- wire modes end to end


def test_direct_passes_the_value_as_is(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("direct")

    @wf.job()
    def make() -> dict[str, int]:
        return {"a": 1, "b": 2}

    @wf.job()
    def use(table: Annotated[dict[str, int], Result(step="make")]) -> list[str]:
        return sorted(table)

    assert _modes(wf, "use") == {"table": Mode.DIRECT}
    run = wf.run_local(tmp_path / "run", store=store_path)
    assert run.output("use") == ["a", "b"]


def test_fan_out_gives_one_element_per_item(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("fanout")

    @wf.job()
    def chunks(n: int) -> list[str]:
        return [f"c{i}" for i in range(n)]

    @wf.array_job()
    def shout(chunk: Annotated[str, Result(step="chunks")]) -> str:
        return chunk.upper()

    assert _modes(wf, "shout") == {"chunk": Mode.FANOUT}
    run = wf.run_local(tmp_path / "run", store=store_path, n=4)
    assert run.outputs("shout") == ["C0", "C1", "C2", "C3"]
    assert run.status(as_dict=True)["summary"]["shout"] == {"SUCCESS": 4}  # type: ignore[index]


def test_gather_collects_elements_in_index_order(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("gather")

    @wf.job()
    def numbers() -> list[int]:
        return [5, 3, 9, 1, 7, 2, 8, 6, 4, 0, 11, 10]

    @wf.array_job()
    def neg(x: Annotated[int, Result(step="numbers")]) -> int:
        return -x

    @wf.job()
    def collect(xs: Annotated[list[int], Result(step="neg")]) -> list[int]:
        return xs

    assert _modes(wf, "collect") == {"xs": Mode.GATHER}
    run = wf.run_local(tmp_path / "run", store=store_path, max_workers=1)
    # index order, not numeric or string order ("10" < "2")
    assert run.output("collect") == [-5, -3, -9, -1, -7, -2, -8, -6, -4, 0, -11, -10]


def test_chain_feeds_element_i_to_element_i(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("chain")

    @wf.job()
    def words() -> list[str]:
        return ["x", "yy", "zzz"]

    @wf.array_job()
    def length(w: Annotated[str, Result(step="words")]) -> int:
        return len(w)

    @wf.array_job()
    def times_ten(n: Annotated[int, Result(step="length")]) -> int:
        return n * 10

    assert _modes(wf, "times_ten") == {"n": Mode.CHAIN}
    run = wf.run_local(tmp_path / "run", store=store_path)
    assert run.outputs("times_ten") == [10, 20, 30]


def test_broadcast_gives_the_whole_value_to_every_element(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("broadcast")

    @wf.job()
    def items() -> list[int]:
        return [1, 2, 3]

    @wf.job()
    def offset() -> int:
        return 100

    @wf.array_job()
    def shift(
        x: Annotated[int, Result(step="items")],
        by: Annotated[int, Result(step="offset")],  # same type: broadcast implied
        everything: Annotated[list[int], Result(step="items", broadcast=True)],
    ) -> str:
        return f"{x + by}/{sum(everything)}"

    @wf.array_job()
    def with_all(
        x: Annotated[int, Result(step="shift_len")],
        gathered: Annotated[list[str], Result(step="shift")],  # an array task, gathered whole
    ) -> str:
        return f"{x}:{'|'.join(gathered)}"

    @wf.array_job()
    def shift_len(s: Annotated[str, Result(step="shift")]) -> int:
        return len(s)

    assert _modes(wf, "shift") == {
        "x": Mode.FANOUT,
        "by": Mode.BROADCAST,
        "everything": Mode.BROADCAST,
    }
    assert _modes(wf, "with_all") == {"x": Mode.CHAIN, "gathered": Mode.BROADCAST}
    run = wf.run_local(tmp_path / "run", store=store_path)
    assert run.outputs("shift") == ["101/6", "102/6", "103/6"]
    assert run.outputs("with_all") == ["5:101/6|102/6|103/6"] * 3


def test_steps_concatenate_outputs_in_the_given_order(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("concat")

    @wf.job()
    def first() -> list[str]:
        return ["a", "b"]

    @wf.job()
    def single() -> str:
        return "s"

    @wf.array_job()
    def upper(w: Annotated[str, Result(step="first")]) -> str:
        return w.upper()

    @wf.job()
    def merged(
        words: Annotated[list[str], Result(steps=["single", "upper", "first"])],
    ) -> list[str]:
        return words

    @wf.array_job()
    def each(w: Annotated[str, Result(steps=["first", "single", "upper"])]) -> str:
        return w + "!"

    assert _modes(wf, "merged") == {"words": Mode.DIRECT}
    assert _modes(wf, "each") == {"w": Mode.FANOUT}
    run = wf.run_local(tmp_path / "run", store=store_path)
    assert run.output("merged") == ["s", "A", "B", "a", "b"]
    assert run.outputs("each") == ["a!", "b!", "s!", "A!", "B!"]


def test_after_orders_without_passing_data(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("after")
    marker = tmp_path / "marker"

    @wf.job()
    def write() -> str:
        marker.write_text("written")
        return "ok"

    @wf.job(after=["write"])
    def read() -> str:
        return marker.read_text()

    # defined in the other order: `after` still puts `write` first
    assert wf.validate().order == ("write", "read")
    run = wf.run_local(tmp_path / "run", store=store_path)
    assert run.output("read") == "written"


def test_fan_out_over_an_empty_list_runs_no_elements(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("empty")
    ran: list[int] = []

    @wf.job()
    def nothing() -> list[int]:
        return []

    @wf.array_job()
    def each(x: Annotated[int, Result(step="nothing")]) -> int:
        ran.append(x)
        return x

    @wf.job()
    def count(xs: Annotated[list[int], Result(step="each")]) -> int:
        return len(xs)

    run = wf.run_local(tmp_path / "run", store=store_path)
    assert run.state is RunState.SUCCESS
    assert ran == []
    assert run.outputs("each") == []
    assert run.output("count") == 0


def test_fan_out_over_a_value_that_is_not_a_list_fails_the_task(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("notalist")

    @wf.job()
    def anything():  # type: ignore[no-untyped-def]  # unannotated: Any
        return "just a string"

    @wf.array_job()
    def each(x: Annotated[str, Result(step="anything")]) -> str:
        return x

    run = stopped(wf, tmp_path / "run", store=store_path)
    assert run.state is RunState.FAILED
    failed = run.status(as_dict=True)["failed_instances"]  # type: ignore[index]
    assert [(f["task_name"], f["state"]) for f in failed] == [("each", "FAILED")]
    assert (
        "returned str, not a list, so there is nothing to fan out over" in failed[0]["error_text"]
    )


def test_fan_out_inputs_of_different_lengths_fail_the_task(
    tmp_path: Path, store_path: Path
) -> None:
    wf = Workflow("ragged")

    @wf.job()
    def xs() -> list[int]:
        return [1, 2, 3]

    @wf.job()
    def ys() -> list[int]:
        return [1, 2]

    @wf.array_job()
    def pair(x: Annotated[int, Result(step="xs")], y: Annotated[int, Result(step="ys")]) -> int:
        return x + y

    run = stopped(wf, tmp_path / "run", store=store_path)
    assert run.state is RunState.FAILED
    (failed,) = run.status(as_dict=True)["failed_instances"]  # type: ignore[index]
    assert "differ in length (x: 3, y: 2)" in failed["error_text"]


# ---------------------------------------------------------------------- validation messages


def test_unknown_task_in_result_suggests_the_near_miss() -> None:
    wf = Workflow("typo")

    @wf.job()
    def prepare() -> list[int]:
        return [1]

    @wf.job()
    def use(x: Annotated[list[int], Result(step="prepar")]) -> int:
        return len(x)

    with pytest.raises(
        ValueError,
        match=r"task 'use', argument 'x': Result names unknown task 'prepar'\. "
        r"Did you mean 'prepare'\?",
    ):
        wf.validate()


def test_unknown_task_in_steps_and_after_suggest_the_near_miss() -> None:
    wf = Workflow("typo2")

    @wf.job()
    def prepare() -> list[int]:
        return [1]

    @wf.job()
    def use(x: Annotated[list[int], Result(steps=["prepare", "prepair"])]) -> int:
        return len(x)

    with pytest.raises(ValueError, match=r"unknown task 'prepair'\. Did you mean 'prepare'\?"):
        wf.validate()

    wf2 = Workflow("typo3")

    @wf2.job()
    def prepare() -> int:  # type: ignore[no-redef]  # noqa: F811
        return 1

    @wf2.job(after=["prepaer"])
    def later() -> int:
        return 2

    with pytest.raises(
        ValueError,
        match=r"task 'later': after= names unknown task 'prepaer'\. Did you mean 'prepare'\?",
    ):
        wf2.validate()


def test_unknown_task_far_from_any_name_gets_no_suggestion() -> None:
    wf = Workflow("far")

    @wf.job()
    def prepare() -> int:
        return 1

    @wf.job()
    def use(x: Annotated[int, Result(step="zzz")]) -> int:
        return x

    with pytest.raises(ValueError, match="unknown task 'zzz'") as caught:
        wf.validate()
    assert "Did you mean" not in str(caught.value)


def test_cycle_is_named() -> None:
    wf = Workflow("cycle")

    @wf.job()
    def a(x: Annotated[int, Result(step="c")]) -> int:
        return x

    @wf.job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x

    @wf.job(after=["b"])
    def c() -> int:
        return 1

    @wf.job()
    def unrelated() -> int:
        return 1

    with pytest.raises(ValueError, match=r"the tasks form a cycle: a -> b -> c -> a") as caught:
        wf.validate()
    assert "unrelated" not in str(caught.value)


def test_task_taking_its_own_result_is_refused() -> None:
    wf = Workflow("self")

    @wf.job()
    def me(x: Annotated[int, Result(step="me")]) -> int:
        return x

    with pytest.raises(ValueError, match="task 'me' cannot take its own Result"):
        wf.validate()


def test_type_mismatch_names_both_ends() -> None:
    wf = Workflow("mismatch")

    @wf.job()
    def produce() -> str:
        return "1"

    @wf.job()
    def consume(n: Annotated[int, Result(step="produce")]) -> int:
        return n

    with pytest.raises(
        ValueError, match=r"task 'consume', argument 'n' takes int but 'produce' returns str"
    ):
        wf.validate()


def test_type_mismatch_from_an_array_task_suggests_gathering() -> None:
    wf = Workflow("mismatch2")

    @wf.job()
    def items() -> list[int]:
        return [1]

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        return x

    @wf.job()
    def single(x: Annotated[int, Result(step="each")]) -> int:
        return x

    with pytest.raises(
        ValueError,
        match=r"task 'single', argument 'x' takes int but 'each' is an array task returning "
        r"int: take list\[int\] to gather its elements",
    ):
        wf.validate()


def test_type_mismatch_in_steps_names_the_contributor() -> None:
    wf = Workflow("mismatch3")

    @wf.job()
    def names() -> list[str]:
        return ["a"]

    @wf.job()
    def count() -> int:
        return 1

    @wf.job()
    def merged(xs: Annotated[list[str], Result(steps=["names", "count"])]) -> int:
        return len(xs)

    with pytest.raises(ValueError, match=r"'count' contributes items of type int"):
        wf.validate()


def test_compatible_types_are_accepted() -> None:
    wf = Workflow("compat")

    @wf.job()
    def num() -> int:
        return 1

    @wf.job()
    def as_float(x: Annotated[float, Result(step="num")]) -> float:
        return x

    @wf.job()
    def as_optional(x: Annotated[int | None, Result(step="num")]) -> int:
        return x or 0

    @wf.job()
    def choice() -> Literal["a", "b"]:
        return "a"

    @wf.job()
    def as_str(x: Annotated[str, Result(step="choice")]) -> str:
        return x

    assert set(wf.validate().order) == {"num", "as_float", "as_optional", "choice", "as_str"}


@pytest.mark.parametrize("kind", ["no_inputs", "only_params", "singleton_scalar"])
def test_array_task_with_nothing_to_fan_out_over(kind: str) -> None:
    wf = Workflow("nothing")

    @wf.job()
    def scalar() -> int:
        return 1

    if kind == "no_inputs":

        @wf.array_job()
        def lonely() -> int:
            return 1

    elif kind == "only_params":

        @wf.array_job()
        def lonely(n: int) -> int:
            return n

    else:

        @wf.array_job()
        def lonely(x: Annotated[int, Result(step="scalar")]) -> int:
            return x

    with pytest.raises(ValueError, match="array task 'lonely' has nothing to fan out over"):
        wf.validate()


def test_run_local_validates_before_running(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("checked")
    ran: list[str] = []

    @wf.job()
    def good() -> int:
        ran.append("good")
        return 1

    @wf.job()
    def bad(x: Annotated[int, Result(step="god")]) -> int:
        return x

    with pytest.raises(ValueError, match="Did you mean 'good'"):
        wf.run_local(tmp_path / "run", store=store_path)
    assert ran == []
    assert not store_path.exists()  # nothing recorded either


# ---------------------------------------------------------------------- run parameters


def _params_workflow() -> Workflow:
    wf = Workflow("params")

    @wf.job()
    def task(
        source: str,
        count: int,
        mode: Literal["fast", "slow"] = "fast",
        verbose: bool = False,
        ids: list[int] | None = None,
    ) -> str:
        return f"{source}:{count}:{mode}:{verbose}:{ids}"

    return wf


def test_unknown_parameters_are_each_named(tmp_path: Path, store_path: Path) -> None:
    wf = _params_workflow()
    with pytest.raises(ValueError, match=r"unknown parameter 'sorce'.*Did you mean 'source'\?"):
        wf.run_local(tmp_path / "run", store=store_path, sorce="x", count=1)
    with pytest.raises(ValueError) as caught:
        wf.run_local(tmp_path / "run", store=store_path, source="x", count=1, foo=1, bar=2)
    assert "'foo'" in str(caught.value) and "'bar'" in str(caught.value)


def test_missing_parameters_are_each_named(tmp_path: Path, store_path: Path) -> None:
    wf = _params_workflow()
    with pytest.raises(ValueError, match=r"missing required parameter 'count' \(--count\)"):
        wf.run_local(tmp_path / "run", store=store_path, source="x")
    with pytest.raises(
        ValueError, match=r"missing required parameters 'source' \(--source\), 'count' \(--count\)"
    ):
        wf.run_local(tmp_path / "run", store=store_path)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"count": "3"}, "parameter 'count' expects int, got str '3'"),
        ({"count": True}, "parameter 'count' expects int, got bool True"),
        ({"mode": "medium"}, "parameter 'mode' expects Literal['fast', 'slow'], got str 'medium'"),
        ({"verbose": "yes"}, "parameter 'verbose' expects bool, got str 'yes'"),
        ({"ids": ["a"]}, "parameter 'ids' expects list[int] | None, got list ['a']"),
        ({"source": 5}, "parameter 'source' expects str, got int 5"),
    ],
)
def test_wrong_parameter_types_are_refused(
    given: dict[str, object], message: str, tmp_path: Path, store_path: Path
) -> None:
    wf = _params_workflow()
    params: dict[str, object] = {"source": "s", "count": 1, **given}
    with pytest.raises(ValueError) as caught:
        wf.run_local(tmp_path / "run", store=store_path, **params)
    assert str(caught.value) == message


def test_parameters_reach_the_task(tmp_path: Path, store_path: Path) -> None:
    wf = _params_workflow()
    run = wf.run_local(tmp_path / "run", store=store_path, source="s", count=2, ids=[4, 5])
    assert run.output("task") == "s:2:fast:False:[4, 5]"
    assert run.state is RunState.SUCCESS
    assert run.status(as_dict=True)["instances"][0]["state"] == TaskState.SUCCESS  # type: ignore[index]


def test_bad_run_options_are_refused(tmp_path: Path, store_path: Path) -> None:
    wf = _params_workflow()
    ok = {"source": "s", "count": 1}
    with pytest.raises(ValueError, match=r"force_tasks names unknown task 'tsak'\. Did you mean"):
        wf.run_local(tmp_path / "run", store=store_path, force_tasks=["tsak"], **ok)
    with pytest.raises(ValueError, match="on_error='later' is not valid"):
        wf.run_local(tmp_path / "run", store=store_path, on_error="later", **ok)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_workers=0 must be a whole number >= 1"):
        wf.run_local(tmp_path / "run", store=store_path, max_workers=0, **ok)


def test_validate_raises_value_error() -> None:
    wf = Workflow("v")

    @wf.job()
    def only(x: Annotated[int, Result(step="missing")]) -> int:
        return x

    with pytest.raises(ValueError):
        wf.validate()


@pytest.mark.parametrize("name", ["store", "executor", "verify", "force_tasks", "on_error"])
def test_a_parameter_named_like_a_run_option_is_refused(name: str) -> None:
    wf = Workflow("clash")
    src = f"def task({name}: str) -> str:\n    return {name}\n"
    scope: dict[str, object] = {}
    exec(src, scope)
    wf.job()(scope["task"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"parameter '{name}' of task 'task' has the name of an"):
        wf.validate()
