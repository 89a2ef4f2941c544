"""What a user sees of failure kinds and retries: `status` (text, --errors, --json,
--attempts), `Run.attempts`, `why`'s retry line and the report's kinds.

Two recorded runs: `retried` is a real `run_local` run with `retries=2` (one
element fails twice and then succeeds, one fails every time); `oom` is a run
whose attempts were rewritten through the Store API into what only a cluster
produces: attempts killed for memory at 120M and 240M, with the memory each
asked for.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import pytest

from reflow import Result, Run, Workflow, codec
from reflow.cli import main
from reflow.retrying import Limits, Used, next_attempt, resources_json
from reflow.stores import open_store


@dataclass
class Recorded:
    run: Run
    store: Path
    cli: Callable[[list[str]], int]


def _flaky(tmp: Path) -> Workflow:
    """items -> work (retries=2: [1] fails twice then succeeds, [2] always fails) -> total."""
    wf = Workflow("flakyretries")

    @wf.job()
    def items(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job(mem="120M", retries=2)
    def work(item: Annotated[int, Result(step="items")]) -> int:
        tries = tmp / f"tries-{item}"
        n = int(tries.read_text()) + 1 if tries.exists() else 1
        tries.write_text(str(n))
        if item == 2 or (item == 1 and n < 3):
            raise ValueError(f"item {item} failed on try {n}")
        return item

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="work")]) -> int:
        return sum(xs)

    return wf


@pytest.fixture(scope="module")
def retried(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    tmp = tmp_path_factory.mktemp("retried")
    wf = _flaky(tmp)
    store = tmp / "s.db"
    run = wf.run_local(tmp / "run", store=store, n=4, on_error="continue")
    return Recorded(run, store, wf.cli)


def _grower() -> Workflow:
    wf = Workflow("grower")

    @wf.job(mem="120M", retries=3, retry_on=["OOM"])
    def grow() -> int:
        raise RuntimeError("stands in for a job the scheduler killed for memory")

    return wf


def _oom_attempts(run: Run, wf: Workflow, *, last: str) -> None:
    """Rewrite `grow`'s attempts as the dispatcher records them from a cluster's accounting:
    killed for memory at 120M and 240M, each retried by the engine's rule with twice the
    memory, then `last` at 480M (SUCCESS, or FAILED for memory again)."""
    store, rid = run.store, run.run_id
    spec = wf.validate().tasks["grow"]
    killed = "slurm: job 7 OUT_OF_MEMORY: ran out of memory (asked for {})"
    used, asked, t = Used(), {"mem": "120M"}, time.time()
    for attempt in (1, 2, 3):
        ends = ("SUCCESS", *codec.dumps_hashed(7), None, None)
        if attempt < 3 or last != "SUCCESS":
            ends = ("FAILED", None, None, killed.format(asked["mem"]), "OOM")
        state, text, digest, error, kind = ends
        start = t + 2 * attempt
        store.record_outcomes(
            rid, [("grow", -1, attempt, state, text, digest, error, start, start + 1, kind)]
        )
        if attempt < 3:
            again = next_attempt(spec, "OOM", attempt, asked, used, Limits())
            assert again is not None
            used, asked = again.used, dict(again.resources)
            store.retry_instances(
                rid, [("grow", -1, again.attempt, resources_json(asked), again.reason)]
            )
    store.set_run_status(rid, last)


@pytest.fixture(scope="module", params=["SUCCESS", "FAILED"])
def oom(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    tmp = tmp_path_factory.mktemp("oom")
    wf = _grower()
    store = tmp / "s.db"
    run = wf.run_local(tmp / "run", store=store, on_error="continue")
    _oom_attempts(run, wf, last=request.param)
    return Recorded(Run(run.run_id, open_store(store), workflow=wf), store, wf.cli)


def status(rec: Recorded, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = rec.cli(["status", rec.run.run_id, "--store-path", str(rec.store), *args])
    out, err = capsys.readouterr()
    return code, out, err


def body(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines()[2:]]


# ---------------------------------------------------------------------- status


def test_status_counts_retried_instances_and_gives_each_failure_its_kind_and_attempt(
    retried: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = status(retried, capsys)
    assert code == 0 and err == ""
    lines = body(out)
    assert re.fullmatch(r"work\s+4\s+3 SUCCESS, 1 FAILED; 2 retried  \(\d+\.\d s\)", lines[1])
    assert lines[2] == "work[2]  FAILED (ERROR, attempt 3 of 3): ValueError: item 2 failed on try 3"
    assert re.fullmatch(r"items\s+1\s+1 SUCCESS  \(\d+\.\d s\)", lines[0])  # nothing retried


def test_status_errors_shows_the_kind_with_the_error(
    retried: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = status(retried, capsys, "--errors")[1].splitlines()
    at = next(i for i, line in enumerate(lines) if "work[2]  FAILED" in line)
    assert "(ERROR, attempt 3 of 3)" in lines[at]
    assert lines[at + 1].strip() == "Traceback (most recent call last):"  # a short one: whole
    assert any(line.strip() == "ValueError: item 2 failed on try 3" for line in lines[at:])


def test_status_json_gives_each_instance_its_attempt_kind_and_resources(
    retried: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(status(retried, capsys, "--json")[1])
    work = {i["array_index"]: i for i in doc["instances"] if i["task_name"] == "work"}
    assert [work[k]["attempt"] for k in range(4)] == [1, 3, 3, 1]
    assert work[2]["failure_kind"] == "ERROR" and work[1]["failure_kind"] is None
    assert work[1]["resources"] == {"mem": "120M"}
    assert doc["failed_instances"][0]["failure_kind"] == "ERROR"
    assert doc["retried"] == {"items": 0, "work": 2, "total": 0}
    assert doc["retries"]["work"] == 2
    # the history of every instance tried more than once, oldest attempt first
    history = [(a["array_index"], a["attempt"], a["state"]) for a in doc["attempts"]]
    assert history == [
        (1, 1, "FAILED"), (1, 2, "FAILED"), (1, 3, "SUCCESS"),
        (2, 1, "FAILED"), (2, 2, "FAILED"), (2, 3, "FAILED"),
    ]  # fmt: skip
    first = doc["attempts"][0]
    assert first["failure_kind"] == "ERROR" and first["current"] is False
    assert first["error"] == "ValueError: item 1 failed on try 1"
    assert first["started_at"] and first["finished_at"]


def test_status_attempts_prints_the_history_beneath_the_status(
    retried: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = status(retried, capsys, "--attempts")
    assert code == 0
    tail = out.split("attempts of the 2 instances tried more than once:\n", 1)[1].splitlines()
    assert [line.strip() for line in tail[::4]] == ["work[1]", "work[2]"]
    one = [line.split() for line in tail[1:4]]
    assert [(a[0], a[1], a[2]) for a in one] == [
        ("1", "FAILED", "ERROR"), ("2", "FAILED", "ERROR"), ("3", "SUCCESS", "mem")
    ]  # fmt: skip
    assert tail[1].endswith("ValueError: item 1 failed on try 1")
    assert "mem 120M" in tail[1] and "->" in tail[1]
    # one element's history, and --json with the same selection
    code, out, _ = status(retried, capsys, "--attempts", "work[0]")
    assert out.split("attempts of work[0]:\n", 1)[1].split()[:2] == ["work[0]", "1"]
    doc = json.loads(status(retried, capsys, "--json", "--attempts", "work")[1])
    assert len(doc["attempts"]) == 1 + 3 + 3 + 1
    # an attempt that never ran says so, with why
    tail = status(retried, capsys, "--attempts", "total")[1].split("attempts of total:\n", 1)[1]
    assert tail.splitlines()[1].split() == [
        "1", "SKIPPED", "did", "not", "run", "upstream", "'work'", "has", "1", "FAILED"
    ]  # fmt: skip


def test_run_attempts(retried: Recorded) -> None:
    rows = retried.run.attempts("work", 1)
    assert [(r["attempt"], r["state"], r["failure_kind"]) for r in rows] == [
        (1, "FAILED", "ERROR"), (2, "FAILED", "ERROR"), (3, "SUCCESS", None)
    ]  # fmt: skip
    assert [r["task_name"] for r in retried.run.attempts(retried=True)] == ["work"] * 6
    assert len(retried.run.attempts()) == 1 + 8 + 1


def test_a_manual_retry_starts_a_fresh_budget_and_status_says_what_was_used(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = Workflow("stubborn")

    @wf.job(retries=1)
    def always() -> int:
        raise RuntimeError("no")

    run = wf.run_local(tmp_path / "run", store=tmp_path / "s.db", on_error="continue")
    rec = Recorded(run, tmp_path / "s.db", wf.cli)
    assert (
        body(status(rec, capsys)[1])[1]
        == "always  FAILED (ERROR, attempt 2 of 2): RuntimeError: no"
    )
    run.retry()  # attempts 3 and 4: the retry's own budget
    line = body(status(rec, capsys)[1])[1]
    assert line == "always  FAILED (ERROR, attempt 4: 1 of 1 retries used): RuntimeError: no"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--attempts", "wrok"], ["no task 'wrok'", "Did you mean 'work'?"]),
        (["--attempts", "work[x]"], ["--attempts", "TASK[INDEX]", "'work[x]'"]),
        (["--attempts", "work[9]"], ["no element 9", "0..3"]),
        (["--attempts", "items[0]"], ["'items' is not an array task"]),
        (["--attempts", "work", "--task", "items"], ["--attempts work", "--task items"]),
        (["--attempts", "--watch"], ["--watch", "--attempts"]),
    ],
)
def test_bad_attempts_input_is_one_line_and_exit_2(
    retried: Recorded, capsys: pytest.CaptureFixture[str], args: list[str], words: list[str]
) -> None:
    code, out, err = status(retried, capsys, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("error: ")
    for word in words:
        assert word in err


# ---------------------------------------------------------------------- kinds a cluster gives


def test_oom_attempts_show_their_kind_and_memory(
    oom: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    ok = oom.run.state.value == "SUCCESS"
    lines = body(status(oom, capsys)[1])
    assert re.match(rf"grow\s+1\s+1 {'SUCCESS' if ok else 'FAILED'}; 1 retried", lines[0])
    if not ok:
        assert lines[1].startswith("grow  FAILED (OOM, attempt 3 of 4): slurm: job 7")
    doc = json.loads(status(oom, capsys, "--json")[1])
    assert [(a["attempt"], a["failure_kind"], a["resources"]) for a in doc["attempts"]] == [
        (1, "OOM", {"mem": "120M"}),
        (2, "OOM", {"mem": "240M"}),
        (3, None if ok else "OOM", {"mem": "480M"}),
    ]
    out = status(oom, capsys, "--attempts")[1]
    history = out.split("tried more than once:\n", 1)[1].splitlines()[1:]
    assert [line.split()[:5] for line in history[:2]] == [
        ["1", "FAILED", "OOM", "mem", "120M"], ["2", "FAILED", "OOM", "mem", "240M"]
    ]  # fmt: skip


def test_a_failure_waiting_for_its_retry_says_so_while_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a cluster run keeps a failed attempt current until the pass that submits the next one
    wf = _grower()
    run = wf.run_local(tmp_path / "run", store=tmp_path / "s.db", on_error="continue")
    t = time.time()
    killed = ("FAILED", None, None, "slurm: job 7 OUT_OF_MEMORY", t, t + 1, "OOM")
    run.store.record_outcomes(run.run_id, [("grow", -1, 1, *killed)])
    run.store.set_run_status(run.run_id, "RUNNING")
    rec = Recorded(run, tmp_path / "s.db", wf.cli)
    line = next(x for x in body(status(rec, capsys)[1]) if x.startswith("grow  FAILED"))
    assert line.startswith("grow  FAILED (OOM, attempt 1 of 4, to be tried again): slurm")
    run.store.set_run_status(run.run_id, "FAILED")  # over: nothing more is tried
    line = next(x for x in body(status(rec, capsys)[1]) if x.startswith("grow  FAILED"))
    assert line.startswith("grow  FAILED (OOM, attempt 1 of 4): slurm")


def test_why_says_what_the_retry_asked_for_after_an_oom(oom: Recorded) -> None:
    assert oom.run.why("grow") == ["grow: retried after OOM (attempt 3, mem 240M -> 480M)"]
    assert oom.run.why()[0] == "grow: retried after OOM (attempt 3, mem 240M -> 480M)"


def test_why_of_a_retried_element(retried: Recorded) -> None:
    assert retried.run.why("work", 1) == ["work[1]: retried after ERROR (attempt 3)"]


def test_the_report_shows_failure_kinds(oom: Recorded, tmp_path: Path) -> None:
    page = oom.run.report(tmp_path / "r.html").read_text(encoding="utf-8")
    failures = page.split("<section id='failures'>", 1)[1].split("</section>", 1)[0]
    assert "data-kind='OOM'" in failures
    assert "same failure kind" in failures
    table = page.split("<section id='tasks'>", 1)[1].split("</table>", 1)[0]
    assert "after 2 OOM" in table
    timeline = page.split("<svg id='timeline'", 1)[1].split("</svg>", 1)[0]
    assert "<title>grow attempt 2, FAILED (OOM), ran 1.0 s</title>" in timeline


def test_the_console_command_shows_the_same(
    oom: Recorded, capsys: pytest.CaptureFixture[str]
) -> None:
    script = status(oom, capsys, "--attempts")
    capsys.readouterr()
    code = main(["status", oom.run.run_id, "--store-path", str(oom.store), "--attempts"])
    assert code == 0 and capsys.readouterr().out == script[1]


# ---------------------------------------------------------------------- both backends


def test_the_history_and_counts_are_read_alike_on_both_backends(
    any_store: str, tmp_path: Path
) -> None:
    run = _flaky(tmp_path).run_local(tmp_path / "run", store=any_store, n=4, on_error="continue")
    store = open_store(any_store)
    assert store.retried_counts(run.run_id) == {"work": 2}
    history = store.attempt_history(run.run_id, retried=True)
    assert [(a["array_index"], a["attempt"], a["current"]) for a in history] == [
        (1, 1, False), (1, 2, False), (1, 3, True), (2, 1, False), (2, 2, False), (2, 3, True),
    ]  # fmt: skip
    assert history[0]["failure_kind"] == "ERROR" and history[0]["resources"] == {"mem": "120M"}
    assert history[0]["started_at"] and history[2]["error_text"] is None
    assert len(store.attempt_history(run.run_id, task="work", index=0)) == 1
    assert Run(run.run_id, store).why("work", 2) == ["work[2]: retried after ERROR (attempt 3)"]
