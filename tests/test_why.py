"""`why`: the reason each instance ran instead of being reused, against its earlier self."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest

from reflow import Result, Run, Workflow
from reflow.cli import main


def _etl(version: str = "1", flag: Path | None = None) -> Workflow:
    """extract (a list) -> transform (fan-out) -> polish (chain) -> load (gather)."""
    wf = Workflow("etl")

    @wf.job()
    def extract(words: str = "a,b,c,d") -> list[str]:
        return words.split(",")

    @wf.array_job(version=version)
    def transform(w: Annotated[str, Result(step="extract")], factor: float = 0.5) -> str:
        if flag is not None and flag.exists() and w == "b":
            raise RuntimeError("b is not ready")
        return f"{w}{factor}"

    @wf.array_job()
    def polish(t: Annotated[str, Result(step="transform")]) -> str:
        return t.upper()

    @wf.job()
    def load(parts: Annotated[list[str], Result(step="polish")]) -> str:
        return ",".join(parts)

    return wf


def _run(wf: Workflow, tmp_path: Path, store: Path, name: str, **kw: object) -> Run:
    return wf.run_local(tmp_path / name, store=store, **kw)  # type: ignore[arg-type]


def test_a_first_run_has_no_earlier_instance_and_a_rerun_names_the_run_it_reused(
    tmp_path: Path, store_path: Path
) -> None:
    first = _run(_etl(), tmp_path, store_path, "r1")
    assert first.why() == [
        "extract: no earlier instance of 'extract' in workflow 'etl'",
        "transform: 4 of 4 elements: no earlier instance",
        "polish: 4 of 4 elements: no earlier instance",
        "load: no earlier instance of 'load' in workflow 'etl'",
    ]
    again = _run(_etl(), tmp_path, store_path, "r2")
    assert again.why() == [
        f"extract: cached from run {first.run_id}",
        f"transform: 4 of 4 elements: cached from run {first.run_id}",
        f"polish: 4 of 4 elements: cached from run {first.run_id}",
        f"load: cached from run {first.run_id}",
    ]


def test_a_changed_parameter_is_named_with_its_old_and_new_values(
    tmp_path: Path, store_path: Path
) -> None:
    _run(_etl(), tmp_path, store_path, "r1")
    run = _run(_etl(), tmp_path, store_path, "r2", factor=0.75)
    lines = run.why()
    assert lines[1] == "transform: 4 of 4 elements: factor: 0.5 -> 0.75"
    assert lines[2] == (
        "polish: 4 of 4 elements: upstream 'transform' output changed "
        "(e.g. [0] 'transform'[0]: 'a0.5' -> 'a0.75'; [1] 'transform'[1]: 'b0.5' -> 'b0.75')"
    )
    assert lines[3] == "load: upstream 'polish' output changed: 4 of 4 elements differ"
    assert run.why("transform", 2) == ["transform[2]: factor: 0.5 -> 0.75"]


def test_a_long_value_is_shortened(tmp_path: Path, store_path: Path) -> None:
    _run(_etl(), tmp_path, store_path, "r1")
    run = _run(_etl(), tmp_path, store_path, "r2", words="a," + "x" * 100)
    (line,) = run.why("extract")
    assert line == "extract: words: 'a,b,c,d' -> 'a," + "x" * 34 + "..."
    assert len(line.split(" -> ")[1]) == 40


def test_a_version_bump_is_named(tmp_path: Path, store_path: Path) -> None:
    _run(_etl(), tmp_path, store_path, "r1")
    run = _run(_etl(version="2"), tmp_path, store_path, "r2")
    assert run.why("transform") == ["transform: 4 of 4 elements: version 1 -> 2"]
    assert run.why("transform", 0) == ["transform[0]: version 1 -> 2"]


def test_one_changed_item_of_a_fan_out_names_only_that_elements_chain(
    tmp_path: Path, store_path: Path
) -> None:
    first = _run(_etl(), tmp_path, store_path, "r1")
    run = _run(_etl(), tmp_path, store_path, "r2", words="a,b,X,d")
    assert run.why() == [
        "extract: words: 'a,b,c,d' -> 'a,b,X,d'",
        f"transform: 3 of 4 elements: cached from run {first.run_id}",
        "transform: 1 of 4 elements: upstream 'extract' output changed "
        "(e.g. [2] 'extract'[2]: 'c' -> 'X')",
        f"polish: 3 of 4 elements: cached from run {first.run_id}",
        "polish: 1 of 4 elements: upstream 'transform' output changed "
        "(e.g. [2] 'transform'[2]: 'c0.5' -> 'X0.5')",
        "load: upstream 'polish' output changed: element [2] differs",
    ]
    assert run.why("polish", 2) == [
        "polish[2]: upstream 'transform'[2] output changed: 'c0.5' -> 'X0.5'"
    ]
    assert run.why("polish", 1) == [f"polish[1]: cached from run {first.run_id}"]


def test_an_element_finds_its_earlier_self_by_its_item_when_the_list_grew_at_the_front(
    tmp_path: Path, store_path: Path
) -> None:
    first = _run(_etl(), tmp_path, store_path, "r1")
    run = _run(_etl(), tmp_path, store_path, "r2", words="z,a,b,c,d", factor=0.75)
    lines = run.why("transform")
    # element 1 ('a') is compared with the earlier element 0 ('a'): only the factor changed
    assert lines == [
        "transform: 4 of 5 elements: factor: 0.5 -> 0.75",
        "transform: 1 of 5 elements: factor: 0.5 -> 0.75; upstream 'extract' output changed "
        "(e.g. [0] 'extract'[0]: 'a' -> 'z')",
    ]
    again = _run(_etl(), tmp_path, store_path, "r3", words="z,a,b,c,d")
    assert again.why("transform", 1) == [
        f"transform[1]: cached from run {first.run_id} ('transform'[0])"
    ]


def test_an_element_missing_from_the_last_run_is_compared_with_an_older_one(
    tmp_path: Path, store_path: Path
) -> None:
    _run(_etl(), tmp_path, store_path, "r1", words="a,b,c,d,e")
    _run(_etl(), tmp_path, store_path, "r2")
    run = _run(_etl(), tmp_path, store_path, "r3", words="a,b,c,d,e", factor=0.75)
    assert run.why("transform") == ["transform: 5 of 5 elements: factor: 0.5 -> 0.75"]
    assert run.why("transform", 4) == ["transform[4]: factor: 0.5 -> 0.75"]


def test_force_and_force_tasks_are_named(tmp_path: Path, store_path: Path) -> None:
    _run(_etl(), tmp_path, store_path, "r1")
    forced = _run(_etl(), tmp_path, store_path, "r2", force=True)
    assert forced.why("extract") == ["extract: forced (--force)"]
    some = _run(_etl(), tmp_path, store_path, "r3", force_tasks=["polish"])
    assert some.why("polish") == ["polish: 4 of 4 elements: forced (--force-tasks polish)"]
    assert some.why("load")[0].startswith("load: cached from run ")  # same outputs


def test_cache_false_is_named(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("nocache")

    @wf.job(cache=False)
    def stamp() -> int:
        return 1

    wf.run_local(tmp_path / "r1", store=store_path)
    run = wf.run_local(tmp_path / "r2", store=store_path)
    assert run.why() == ["stamp: cache=False"]


def test_a_failed_verify_is_named_with_the_missing_file(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("files")
    target = tmp_path / "out.txt"

    @wf.job()
    def write() -> Path:
        target.write_text("x")
        return target

    wf.run_local(tmp_path / "r1", store=store_path)
    target.unlink()
    run = wf.run_local(tmp_path / "r2", store=store_path, verify=True)
    assert run.why() == [f"write: verify failed: cached output file no longer exists: {target}"]


def test_a_retry_that_finds_its_own_file_gone_says_so(tmp_path: Path, store_path: Path) -> None:
    wf = Workflow("kept")
    target, flag = tmp_path / "out.txt", tmp_path / "broken"
    flag.touch()

    @wf.job()
    def write() -> Path:
        target.write_text("x")
        return target

    @wf.job()
    def use(p: Annotated[Path, Result(step="write")]) -> str:
        if flag.exists():
            raise RuntimeError("not yet")
        return p.read_text()

    run = wf.run_local(tmp_path / "r", store=store_path, on_error="continue")
    target.unlink()
    flag.unlink()
    run.retry()  # verifies the run's own success before keeping it
    assert run.why() == [
        f"write: verify failed: cached output file no longer exists: {target}",
        "use: retried after ERROR (attempt 2)",
    ]


def test_a_retried_attempt_names_the_attempt_before(tmp_path: Path, store_path: Path) -> None:
    flag = tmp_path / "broken"
    flag.touch()
    wf = _etl(flag=flag)
    run = wf.run_local(tmp_path / "r1", store=store_path, on_error="continue")
    flag.unlink()
    run.retry()
    lines = run.why("transform")
    assert "transform: 1 of 4 elements: retried after ERROR (attempt 2)" in lines
    assert run.why("polish", 1) == ["polish[1]: retried: attempt 2 after attempt 1 SKIPPED"]


# ---------------------------------------------------------------------- the command line


def test_why_on_the_command_line_with_a_store_path(
    tmp_path: Path, store_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(_etl(), tmp_path, store_path, "r1")
    run = _run(_etl(), tmp_path, store_path, "r2", factor=0.75)
    assert main(["why", run.run_id, "transform", "--store-path", str(store_path)]) == 0
    assert capsys.readouterr().out == "transform: 4 of 4 elements: factor: 0.5 -> 0.75\n"
    assert _etl().cli(["why", run.run_id, "transform", "3", "--store-path", str(store_path)]) == 0
    assert capsys.readouterr().out == "transform[3]: factor: 0.5 -> 0.75\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "error: no run 'nope' in the store"),
        (["{run}", "transfrom"], "error: run '{run}' has no task 'transfrom'. Did you mean"),
        (["{run}", "transform", "9"], "error: task 'transform' of run '{run}' has no element 9"),
        (["{run}", "extract", "0"], "error: task 'extract' is not an array task"),
        (["{run}", "transform", "x"], "error: argument INDEX: expected an element index"),
    ],
)  # fmt: skip
def test_bad_input_to_why_is_one_line(
    tmp_path: Path,
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    run = _run(_etl(), tmp_path, store_path, "r1")
    argv = ["why", *(a.format(run=run.run_id) for a in args), "--store-path", str(store_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.format(run=run.run_id)) and err.count("\n") == 1


def test_why_without_a_store_creates_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    assert main(["why", "etl-1", "--store-path", str(missing)]) == 2
    assert "there is no store at" in capsys.readouterr().err
    assert not missing.exists()
