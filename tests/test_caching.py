"""The seed page "Caching and retries", sentence by sentence, through `wf.run_local`.

Every test counts real executions (the tasks append their name to a file) to
show what ran and what was reused.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backends import execute
from counting import Calls
from reflow import Result, RunState, TaskState, Workflow
from reflow.identity import compute_identity, identity_template, template_maker
from reflow.stores import open_store
from stopping import stopped


@pytest.fixture
def store_path(any_store: str) -> str:
    """Every test here runs on both backends (an SQLite file, a PostgreSQL schema)."""
    return any_store


def _summary(run: Any) -> dict[str, dict[str, int]]:
    return run.status(as_dict=True)["summary"]  # type: ignore[no-any-return]


def _cached(run: Any) -> dict[str, int]:
    return run.status(as_dict=True)["cached"]  # type: ignore[no-any-return]


def pipeline(
    calls: Calls, data_file: Path, *, process_version: str = "1", new_logic: bool = False
) -> Workflow:
    """load (reads a file) -> process -> report, the shape the seed page talks about."""
    wf = Workflow("seed")

    @wf.job()
    def load(source: str) -> list[str]:
        calls("load")
        return [f"{source}:{line}" for line in data_file.read_text().split()]

    @wf.job(version=process_version)
    def process(rows: Annotated[list[str], Result(step="load")]) -> str:
        calls("process")
        return "new logic" if new_logic else "|".join(r.upper() for r in rows)

    @wf.job()
    def report(text: Annotated[str, Result(step="process")]) -> str:
        calls("report")
        return f"report of {text}"

    return wf


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.csv"
    path.write_text("a b c")
    return path


# ---------------------------------------------------------------------- how it works


def test_identity_is_built_from_name_version_params_and_upstream_hashes(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    wf = pipeline(calls, data_file)
    run = wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    store = open_store(store_path)
    rows = {i["task_name"]: i for i in run.status(as_dict=True)["instances"]}  # type: ignore[index]

    # full-length SHA-256 identities, and their ingredients are kept for explaining misses
    for row in rows.values():
        assert len(row["identity"]) == 64 and len(row["output_hash"]) == 64
    load = store.identity_parts(rows["load"]["identity"])
    process = store.identity_parts(rows["process"]["identity"])
    assert load is not None and process is not None
    assert (load["workflow"], load["task"], load["version"]) == ("seed", "load", "1")
    assert set(load["params"]) == {"source"} and load["inputs"] == {}
    assert process["params"] == {}
    assert process["inputs"] == {"rows": rows["load"]["output_hash"]}

    # the same name, version, parameters and upstream outputs: nothing runs
    calls.take()
    again = wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    assert calls.take() == {}
    assert [i["identity"] for i in again.status(as_dict=True)["instances"]] == [  # type: ignore[index]
        rows[t]["identity"] for t in ("load", "process", "report")
    ]

    # a different parameter value is a different identity: the task reruns
    wf.run_local(tmp_path / "r", store=store_path, source="other.csv")
    assert calls.take() == {"load": 1, "process": 1, "report": 1}


def test_parameters_a_task_does_not_take_do_not_touch_its_identity(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = Workflow("params")

    @wf.job()
    def first(alpha: int) -> int:
        calls("first")
        return alpha

    @wf.job()
    def second(beta: int) -> int:
        calls("second")
        return beta

    wf.run_local(tmp_path / "r", store=store_path, alpha=1, beta=1)
    calls.take()
    wf.run_local(tmp_path / "r", store=store_path, alpha=1, beta=2)
    assert calls.take() == {"second": 1}
    wf.run_local(tmp_path / "r", store=store_path, alpha=1, beta=1)  # back: still cached
    assert calls.take() == {}


def test_upstream_hashes_are_bound_to_the_argument_that_receives_them(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    def build(swapped: bool) -> Workflow:
        wf = Workflow("bound")

        @wf.job()
        def x() -> int:
            return 1

        @wf.job()
        def y() -> int:
            return 2

        if swapped:

            @wf.job()
            def diff(
                a: Annotated[int, Result(step="y")], b: Annotated[int, Result(step="x")]
            ) -> int:
                calls("diff")
                return a - b

        else:

            @wf.job()
            def diff(
                a: Annotated[int, Result(step="x")], b: Annotated[int, Result(step="y")]
            ) -> int:
                calls("diff")
                return a - b

        return wf

    assert build(False).run_local(tmp_path / "r", store=store_path).output("diff") == -1
    assert build(True).run_local(tmp_path / "r", store=store_path).output("diff") == 1
    assert calls.take() == {"diff": 2}  # the same two inputs, swapped, are not a cache hit


def test_a_successful_result_is_reused_by_later_runs_in_any_run_dir(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    wf = pipeline(calls, data_file)
    first = wf.run_local(tmp_path / "r1", store=store_path, source="data.csv")
    assert calls.take() == {"load": 1, "process": 1, "report": 1}
    assert _cached(first) == {"load": 0, "process": 0, "report": 0}

    second = wf.run_local(tmp_path / "r2", store=store_path, source="data.csv")
    assert calls.take() == {}
    assert second.run_id != first.run_id
    assert second.state is RunState.SUCCESS
    assert _summary(second) == {t: {"SUCCESS": 1} for t in ("load", "process", "report")}
    assert _cached(second) == {"load": 1, "process": 1, "report": 1}
    assert all(i["cached"] for i in second.status(as_dict=True)["instances"])  # type: ignore[index]
    expected = "report of DATA.CSV:A|DATA.CSV:B|DATA.CSV:C"
    assert first.output("report") == second.output("report") == expected


def test_failed_instances_are_never_reused(tmp_path: Path, store_path: Path, calls: Calls) -> None:
    wf = Workflow("flaky")
    switch = tmp_path / "ok"

    @wf.job()
    def flaky() -> str:
        calls("flaky")
        if not switch.exists():
            raise RuntimeError("not yet")
        return "fine"

    assert stopped(wf, tmp_path / "r", store=store_path).state is RunState.FAILED
    switch.touch()
    run = wf.run_local(tmp_path / "r", store=store_path)
    assert run.state is RunState.SUCCESS and run.output("flaky") == "fine"
    assert calls.take() == {"flaky": 2}


# ---------------------------------------------------------------------- cache invalidation


def test_version_bump_reruns_the_task_and_everything_downstream(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    pipeline(calls, data_file).run_local(tmp_path / "r", store=store_path, source="data.csv")
    calls.take()

    bumped = pipeline(calls, data_file, process_version="2", new_logic=True)
    run = bumped.run_local(tmp_path / "r", store=store_path, source="data.csv")
    assert calls.take() == {"process": 1, "report": 1}  # load is upstream: reused
    assert run.output("report") == "report of new logic"
    assert _cached(run) == {"load": 1, "process": 0, "report": 0}

    # and version 2 is now cached in turn
    bumped.run_local(tmp_path / "r", store=store_path, source="data.csv")
    assert calls.take() == {}


def test_version_bump_with_the_same_output_keeps_downstream_cached(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    pipeline(calls, data_file).run_local(tmp_path / "r", store=store_path, source="data.csv")
    calls.take()
    refactored = pipeline(calls, data_file, process_version="2")  # new code, same result
    run = refactored.run_local(tmp_path / "r", store=store_path, source="data.csv")
    assert calls.take() == {"process": 1}
    assert _cached(run) == {"load": 1, "process": 0, "report": 1}


def test_gather_reruns_only_when_an_element_output_changes(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = Workflow("parity")

    @wf.job()
    def items(values: list[int]) -> list[int]:
        return values

    @wf.array_job()
    def parity(x: Annotated[int, Result(step="items")]) -> int:
        calls("parity")
        return x % 2

    @wf.job()
    def odd_count(bits: Annotated[list[int], Result(step="parity")]) -> int:
        calls("odd_count")
        return sum(bits)

    wf.run_local(tmp_path / "r", store=store_path, values=[1, 2, 3])
    calls.take()
    run = wf.run_local(tmp_path / "r", store=store_path, values=[1, 4, 3])  # 2 -> 4: same parity
    assert calls.take() == {"parity": 1}
    assert run.output("odd_count") == 2
    run = wf.run_local(tmp_path / "r", store=store_path, values=[1, 5, 3])  # parity changes
    assert calls.take() == {"parity": 1, "odd_count": 1}
    assert run.output("odd_count") == 3


def test_upstream_rerun_with_identical_output_keeps_downstream_cached(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    wf = pipeline(calls, data_file)
    wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    calls.take()

    run = wf.run_local(tmp_path / "r", store=store_path, source="data.csv", force_tasks=["load"])
    assert calls.take() == {"load": 1}  # it ran, gave the same output: nothing below reruns
    assert _cached(run) == {"load": 0, "process": 1, "report": 1}


def test_changed_upstream_output_recomputes_everything_below(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    wf = pipeline(calls, data_file)
    wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    calls.take()

    data_file.write_text("a b c d")
    run = wf.run_local(tmp_path / "r", store=store_path, source="data.csv", force_tasks=["load"])
    assert calls.take() == {"load": 1, "process": 1, "report": 1}
    assert run.output("report").endswith("DATA.CSV:D")


# ---------------------------------------------------------------------- forcing recomputation


def test_force_reruns_everything(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    wf = pipeline(calls, data_file)
    wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    calls.take()

    run = wf.run_local(tmp_path / "r", force=True, store=store_path, source="data.csv")
    assert calls.take() == {"load": 1, "process": 1, "report": 1}
    assert _cached(run) == {"load": 0, "process": 0, "report": 0}
    assert run.state is RunState.SUCCESS


def test_force_tasks_reruns_only_those_tasks(
    tmp_path: Path, store_path: Path, calls: Calls, data_file: Path
) -> None:
    wf = pipeline(calls, data_file)
    wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    calls.take()

    run = wf.run_local(tmp_path / "r", force_tasks=["process"], store=store_path, source="data.csv")
    assert calls.take() == {"process": 1}
    assert _cached(run) == {"load": 1, "process": 0, "report": 1}


def test_cache_false_runs_every_time(tmp_path: Path, store_path: Path, calls: Calls) -> None:
    wf = Workflow("fresh")

    @wf.job(cache=False)
    def always_run() -> str:
        calls("always_run")
        return "fresh every time"

    @wf.job()
    def cached(text: Annotated[str, Result(step="always_run")]) -> int:
        calls("cached")
        return len(text)

    for _ in range(3):
        run = wf.run_local(tmp_path / "r", store=store_path)
        assert run.output("always_run") == "fresh every time"
    # always_run ran each time; its identical output kept `cached` cached after the first
    assert calls.take() == {"always_run": 3, "cached": 1}
    assert _cached(run) == {"always_run": 0, "cached": 1}


# ---------------------------------------------------------------------- output verification


def _file_workflow(calls: Calls, out_dir: Path) -> Workflow:
    wf = Workflow("files")

    @wf.job()
    def one_file() -> Path:
        calls("one_file")
        path = out_dir / "single.txt"
        path.write_text("single")
        return path

    @wf.job()
    def many_files() -> list[Path]:
        calls("many_files")
        paths = [out_dir / f"part{i}.txt" for i in range(3)]
        for p in paths:
            p.write_text(p.name)
        return paths

    @wf.job()
    def names(
        single: Annotated[Path, Result(step="one_file")],
        parts: Annotated[list[Path], Result(step="many_files")],
    ) -> list[str]:
        calls("names")
        return [single.read_text()] + [p.read_text() for p in parts]

    return wf


def test_verify_true_reruns_a_task_whose_path_output_is_gone(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    wf = _file_workflow(calls, out)
    wf.run_local(tmp_path / "r", store=store_path)
    calls.take()

    # files present: verify=True reuses everything
    wf.run_local(tmp_path / "r", store=store_path, verify=True)
    assert calls.take() == {}

    (out / "single.txt").unlink()
    # without verify the stale cache is trusted (the file stays missing)
    wf.run_local(tmp_path / "r", store=store_path)
    assert calls.take() == {}
    assert not (out / "single.txt").exists()

    run = wf.run_local(tmp_path / "r", store=store_path, verify=True)
    assert calls.take() == {"one_file": 1}  # same path again: `names` stays cached
    assert (out / "single.txt").read_text() == "single"
    assert run.output("names") == ["single", "part0.txt", "part1.txt", "part2.txt"]


def test_verify_true_checks_every_path_of_a_list_output(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    wf = _file_workflow(calls, out)
    wf.run_local(tmp_path / "r", store=store_path)
    calls.take()

    (out / "part2.txt").unlink()
    wf.run_local(tmp_path / "r", store=store_path, verify=True)
    assert calls.take() == {"many_files": 1}
    assert (out / "part2.txt").exists()


def test_verify_true_ignores_outputs_that_are_not_paths(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = Workflow("strs")

    @wf.job()
    def name() -> str:
        calls("name")
        return str(tmp_path / "never-created.txt")  # a str, not a Path: not checked

    wf.run_local(tmp_path / "r", store=store_path)
    wf.run_local(tmp_path / "r", store=store_path, verify=True)
    assert calls.take() == {"name": 1}


def test_custom_verify_function_from_the_seed_page(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    target = tmp_path / "output.csv"
    wf = Workflow("custom")

    @wf.job(verify=lambda output: Path(output).stat().st_size > 0)
    def create_file() -> str:
        calls("create_file")
        target.write_text("x,y\n1,2\n")
        return str(target)

    wf.run_local(tmp_path / "r", store=store_path)
    wf.run_local(tmp_path / "r", store=store_path)  # non-empty file: reused
    assert calls.take() == {"create_file": 1}

    target.write_text("")  # empty: the verify function rejects it, even without verify=True
    wf.run_local(tmp_path / "r", store=store_path)
    assert calls.take() == {"create_file": 1}
    assert target.stat().st_size > 0

    target.unlink()  # stat() raises: treated as stale, not as a crash
    run = wf.run_local(tmp_path / "r", store=store_path)
    assert run.state is RunState.SUCCESS
    assert calls.take() == {"create_file": 1}


# ---------------------------------------------------------------------- scoping and granularity


def test_two_workflows_never_share_results(tmp_path: Path, store_path: Path, calls: Calls) -> None:
    def build(name: str) -> Workflow:
        wf = Workflow(name)

        @wf.job()
        def load(n: int) -> int:
            calls(f"{name}.load")
            return n

        return wf

    build("alpha").run_local(tmp_path / "a", store=store_path, n=1)
    run = build("beta").run_local(tmp_path / "b", store=store_path, n=1)
    assert calls.take() == {"alpha.load": 1, "beta.load": 1}
    assert _cached(run) == {"load": 0}
    build("alpha").run_local(tmp_path / "a", store=store_path, n=1)
    assert calls.take() == {}


def test_changing_one_item_of_a_1000_item_fan_out_reruns_one_element_per_array_task(
    tmp_path: Path, store_path: Path
) -> None:
    ran: dict[str, list[int]] = {"double": [], "plus_one": [], "total": [], "items": []}
    wf = Workflow("fine")

    @wf.job()
    def items(values: list[int]) -> list[int]:
        ran["items"].append(0)
        return values

    @wf.array_job()
    def double(x: Annotated[int, Result(step="items")]) -> int:
        ran["double"].append(x)
        return 2 * x

    @wf.array_job()
    def plus_one(x: Annotated[int, Result(step="double")]) -> int:
        ran["plus_one"].append(x)
        return x + 1

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="plus_one")]) -> int:
        ran["total"].append(len(xs))
        return sum(xs)

    values = list(range(1000))
    run = wf.run_local(tmp_path / "r", store=store_path, values=values)
    assert {k: len(v) for k, v in ran.items()} == {
        "items": 1, "double": 1000, "plus_one": 1000, "total": 1,
    }  # fmt: skip
    assert run.output("total") == sum(2 * v + 1 for v in values)
    for v in ran.values():
        v.clear()

    values[617] = -5
    run = wf.run_local(tmp_path / "r", store=store_path, values=values)
    assert ran == {"items": [0], "double": [-5], "plus_one": [-10], "total": [1000]}
    assert _cached(run) == {"items": 0, "double": 999, "plus_one": 999, "total": 0}
    assert run.outputs("plus_one")[617] == -9
    assert run.output("total") == sum(2 * v + 1 for v in values)


def test_element_identity_follows_its_own_item_not_its_position(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = Workflow("items")

    @wf.job()
    def items(values: list[str]) -> list[str]:
        return values

    @wf.array_job()
    def each(x: Annotated[str, Result(step="items")]) -> str:
        calls(f"each.{x}")
        return x * 2

    wf.run_local(tmp_path / "r", store=store_path, values=["a", "b", "c"])
    calls.take()
    run = wf.run_local(tmp_path / "r", store=store_path, values=["c", "new", "a", "b"])
    assert calls.take() == {"each.new": 1}  # moved items are reused from the cache
    assert run.outputs("each") == ["cc", "newnew", "aa", "bb"]


# ---------------------------------------------------------------------- the store keeps one copy


def test_cache_hits_point_at_the_cached_output_instead_of_copying_it(
    tmp_path: Path, store_path: Path, data_file: Path, calls: Calls
) -> None:
    wf = pipeline(calls, data_file)
    first = wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    second = wf.run_local(tmp_path / "r", store=store_path, source="data.csv")
    third = wf.run_local(tmp_path / "r", store=store_path, source="data.csv")

    rows = {
        (run_id, task): (rid, output, cached_from)
        for rid, run_id, task, output, cached_from in execute(
            store_path, "SELECT id, run_id, task_name, output, cached_from FROM instances"
        )
    }
    for task in ("load", "process", "report"):
        origin_id, origin_output, origin_from = rows[(first.run_id, task)]
        assert origin_output is not None and origin_from is None
        for later in (second, third):
            _, output, cached_from = rows[(later.run_id, task)]
            assert output is None  # no copy of the value
            assert cached_from == origin_id  # points at the run that computed it
        assert third.output(task) == first.output(task)
    assert third.output("report") == "report of DATA.CSV:A|DATA.CSV:B|DATA.CSV:C"


# ---------------------------------------------------------------------- typed outputs


class NotStorable:
    pass


def test_output_that_cannot_be_encoded_fails_its_instance(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    wf = Workflow("enc")

    @wf.job()
    def items() -> list[int]:
        return [0, 1, 2]

    @wf.array_job()
    def maybe(x: Annotated[int, Result(step="items")]) -> Any:
        calls("maybe")
        return {"value": NotStorable()} if x == 1 else x

    @wf.job()
    def weird() -> Any:
        return NotStorable()

    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    assert run.state is RunState.FAILED
    failed = {
        (f["task_name"], f["array_index"]): f["error_text"]
        for f in run.status(as_dict=True)["failed_instances"]  # type: ignore[index]
    }
    assert set(failed) == {("maybe", 1), ("weird", None)}
    assert "task 'weird' returned a value reflow cannot store" in failed[("weird", None)]
    assert "NotStorable" in failed[("weird", None)]
    assert "task 'maybe'[1] returned a value reflow cannot store" in failed[("maybe", 1)]
    assert "NotStorable at ['value']" in failed[("maybe", 1)]
    summary = _summary(run)
    assert summary["maybe"] == {"SUCCESS": 2, "FAILED": 1}


def test_typed_outputs_round_trip_and_reach_downstream_with_their_types(
    tmp_path: Path, store_path: Path, calls: Calls
) -> None:
    value = {
        "path": Path("/data/x.nc"),
        "pair": (1, "two"),
        "when": dt.datetime(2026, 4, 1, 12, 30, tzinfo=dt.timezone.utc),
        "day": dt.date(2026, 4, 1),
        "price": Decimal("12.50"),
        "by_id": {1: "one", 2: "two"},
        "uid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "tags": {"b", "a"},
        "blob": b"\x00\xff",
        "nothing": None,
        "ratio": 0.1,
        "nested": [{"deep": (Path("a"), Decimal("1.0"))}],
    }
    wf = Workflow("typed")
    seen: list[dict[str, Any]] = []

    @wf.job()
    def make() -> dict[str, Any]:
        calls("make")
        return value

    @wf.job(cache=False)
    def inspect(v: Annotated[dict[str, Any], Result(step="make")]) -> dict[str, str]:
        seen.append(v)
        return {k: type(x).__name__ for k, x in v.items()}

    first = wf.run_local(tmp_path / "r", store=store_path)
    second = wf.run_local(tmp_path / "r", store=store_path)  # `make` is now a cache hit
    assert calls.take() == {"make": 1}
    assert len(seen) == 2
    for received in seen:
        assert received == value
        assert isinstance(received["path"], Path)
        assert isinstance(received["pair"], tuple)
        assert isinstance(received["when"], dt.datetime) and received["when"].tzinfo is not None
        assert type(received["day"]) is dt.date
        assert isinstance(received["price"], Decimal) and str(received["price"]) == "12.50"
        assert list(received["by_id"]) == [1, 2]
        assert isinstance(received["uid"], uuid.UUID)
        assert received["tags"] == {"a", "b"} and isinstance(received["tags"], set)
        assert isinstance(received["nested"][0]["deep"], tuple)
    for run in (first, second):
        out = run.output("make")
        assert out == value and isinstance(out["pair"], tuple)
    assert second.output("inspect")["price"] == "Decimal"
    assert _summary(second) == {"make": {"SUCCESS": 1}, "inspect": {"SUCCESS": 1}}
    assert second.status(as_dict=True)["instances"][0]["state"] == TaskState.SUCCESS  # type: ignore[index]


@given(
    workflow=st.text(min_size=1, max_size=12),
    version=st.text(max_size=6),
    params=st.dictionaries(
        st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True),
        st.text("0123456789abcdef", min_size=64, max_size=64),  # parameters enter as hashes
    ),
    args=st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True), unique=True, max_size=4),
    data=st.data(),
)
@settings(max_examples=300, deadline=None)
def test_identities_built_from_a_template_equal_the_one_by_one_computation(
    workflow: str, version: str, params: dict[str, str], args: list[str], data: st.DataObject
) -> None:
    # the engine builds one template per task and fills in each element's hashes;
    # a job resolving its own inputs computes the identity one by one: they must agree
    varying = data.draw(st.lists(st.sampled_from(args), unique=True)) if args else []
    hexes = st.text("0123456789abcdef", min_size=64, max_size=64)  # hashes, drawn quickly
    fixed = {a: data.draw(hexes) for a in args if a not in varying}
    own = {a: data.draw(hexes) for a in varying}
    template = identity_template(workflow, "t%s", version, params, fixed, varying)
    expected = compute_identity(workflow, "t%s", version, params, {**fixed, **own})
    hashes = tuple(own[a] for a in sorted(varying))
    assert template_maker(template)(hashes) == expected
    # a local run writes an instance's ingredients late, from the same template
    assert template % hashes == expected[1]
