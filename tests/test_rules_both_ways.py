"""The engine's rules, both ways: run locally, and submitted ahead on a scheduler (issue 19).

An instance submitted ahead of its inputs decides in its own job whether an
upstream blocks it and whether its cached output still holds (resolve.py);
a local run decides in the engine.  Both call rules.py, and these tests run
the same cases both ways, through the PBS Pro and LSF simulators, and compare
what each did: the same states, the same reasons, the same instances rerun.
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reflow import Run, RunState

HERE = Path(__file__).resolve().parent
if str(HERE / "both_ways") not in sys.path:
    sys.path.insert(0, str(HERE / "both_ways"))

import pl_rules  # noqa: E402

from test_pbs_lsf_flux import Scheduler, _wait_all, sims  # noqa: E402, F401

pytestmark = pytest.mark.simulators

WAYS = ("local", "pbs-pro", "lsf")


def _outcome(run: Run) -> dict[tuple[str, int | None], tuple[str, str | None]]:
    """(task, index) -> (state, the reason of a skip or failure's last line)."""
    doc = run.status(as_dict=True)
    assert doc is not None
    return {
        (i["task_name"], i["array_index"]): (
            i["state"],
            None if i["error_text"] is None else i["error_text"].strip().splitlines()[-1],
        )
        for i in doc["instances"]
    }


def _calls(path: Path) -> list[str]:
    if not path.exists():
        return []
    names = sorted(path.read_text().split())
    path.unlink()
    return names


class Way:
    """One way of running pl_rules: locally, or submitted to a simulated scheduler."""

    def __init__(
        self, name: str, base: Path, sched: Scheduler | None, mp: pytest.MonkeyPatch
    ) -> None:
        self.name, self.sched, self.mp = name, sched, mp
        self.store = base / f"{name}.db"
        self.calls = base / f"calls-{name}.log"
        self.stale = base / f"stale-{name}"
        self.base = base
        self.runs = 0

    def _env(self) -> None:
        if self.sched is not None:
            self.sched.use(self.mp, pl_rules.wf)
        self.mp.setenv("RFTEST_CALLS", str(self.calls))  # after use(): its own log
        self.mp.setenv("RFTEST_STALE", str(self.stale))

    def start(self, **kwargs: Any) -> Run:
        self._env()
        self.runs += 1
        run_dir = self.base / f"run-{self.name}-{self.runs}"
        if self.sched is None:  # a submitted run goes on past a failure: so does this one
            return pl_rules.wf.run_local(run_dir, store=self.store, on_error="continue", **kwargs)
        return pl_rules.wf.submit(run_dir, executor=self.sched.executor(), store=self.store,
                                  **kwargs)  # fmt: skip

    def finish(self, run: Run) -> Run:
        if self.sched is not None:
            _wait_all({self.name: run}, timeout=90)
            self._env()
        return run

    def took(self) -> list[str]:
        return _calls(self.calls)


@pytest.fixture
def ways(
    sims: dict[str, Scheduler],  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, Way]:
    return {
        name: Way(name, tmp_path, None if name == "local" else sims[name], monkeypatch)
        for name in WAYS
    }


def _run_all(ways: dict[str, Way], **kwargs: Any) -> dict[str, Run]:
    started = {name: way.start(**kwargs) for name, way in ways.items()}
    return {name: ways[name].finish(run) for name, run in started.items()}


def _deferred_tasks(run: Run) -> set[str]:
    """The tasks whose instances a job resolved itself (their waves were submitted ahead)."""
    found = set()
    for wave in (run.run_dir / "work").rglob("*.jsonl"):
        with open(wave, encoding="utf-8") as fh:
            header = json.loads(fh.readline())
        if header.get("deferred") is not None:
            found.add(str(header["task"]))
    return found


def test_an_upstream_that_failed_or_was_skipped_skips_the_same_instances_for_the_same_reasons(
    ways: dict[str, Way],
) -> None:
    runs = _run_all(ways, n=3, bad=1)
    outcomes = {}
    for name, run in runs.items():
        assert run.state is RunState.FAILED, name
        outcomes[name] = _outcome(run)
        if name != "local":
            assert {"second", "third"} <= _deferred_tasks(run), name  # decided in the jobs
    local = outcomes["local"]
    assert local[("first", 1)][0] == "FAILED"
    assert local[("second", 1)] == ("SKIPPED", "'first'[1] is FAILED")
    assert local[("third", 1)] == ("SKIPPED", "'second'[1] is SKIPPED")
    assert local[("fourth", 1)] == ("SKIPPED", "'third'[1] is SKIPPED")
    assert local[("total", None)] == ("SKIPPED", "upstream 'fourth' has 1 SKIPPED")
    for name in WAYS[1:]:
        assert outcomes[name] == local, name
    took = {name: way.took() for name, way in ways.items()}
    assert len(set(map(tuple, took.values()))) == 1, took


def _corrupt_cached_output(store: Path, task: str, index: int) -> None:
    with sqlite3.connect(store) as db:
        db.execute(
            "UPDATE instances SET output = ? WHERE task_name = ? AND array_index = ? "
            "AND cached_from IS NULL",
            ('{"$no such tag":1}', task, index),
        )
    db.close()


CACHE_CASES: dict[str, tuple[Callable[[Way, Run], None], list[str]]] = {
    # what is done between the two runs, and what the second run then runs beyond
    # `first` (forced, so that what follows it is submitted ahead of its inputs)
    # and `fourth` (cache=False: every time)
    "cached output undecodable": (
        lambda way, run: _corrupt_cached_output(way.store, "second", 0),
        ["second[0]"],  # third[0] is fed the same value again: reused
    ),
    "verify= says stale": (
        lambda way, run: way.stale.write_text("1"),
        ["second[1]"],
    ),
    "a returned path that no longer exists": (
        lambda way, run: (run.run_dir / "third-2.txt").unlink(),
        ["third[2]"],
    ),
    "nothing changed": (lambda way, run: None, []),
}


@pytest.mark.parametrize("case", list(CACHE_CASES))
def test_a_cached_output_is_reused_or_rerun_alike(ways: dict[str, Way], case: str) -> None:
    prepare, expected = CACHE_CASES[case]
    first = _run_all(ways, n=3)
    for name, run in first.items():
        assert run.state is RunState.SUCCESS, name
        ways[name].took()
        prepare(ways[name], run)
    second = _run_all(ways, n=3, force_tasks=["first"], verify=True)
    took = {}
    for name, run in second.items():
        assert run.state is RunState.SUCCESS, (name, _outcome(run))
        assert run.output("total") == 3, name
        if name != "local":
            assert {"second", "third"} <= _deferred_tasks(run), name
        took[name] = [c for c in ways[name].took() if not c.startswith("first")]
    assert took["pbs-pro"] == took["local"] and took["lsf"] == took["local"], took
    # `fourth` has cache=False: it runs again every time, both ways
    assert took["local"] == sorted([*expected, "fourth[0]", "fourth[1]", "fourth[2]"]), took


# ---------------------------------------------------------------------- the two adapters


def _engine_reason(task: str, index: int, states: dict[str, dict[int, str]]) -> str | None:
    """What the engine decides for (task, index) when its upstream tasks ended in `states`."""
    from reflow.engine import Engine, _Row, _Task

    engine = Engine.__new__(Engine)  # only the graph and the rows: what _blockers reads
    engine.graph = pl_rules.wf.validate()
    engine._tasks = {}
    for name in engine.graph.order:
        rows = states.get(name, {})
        engine._tasks[name] = _Task(
            expanded=True,
            rows={i: _Row(s, 1, None, None) for i, s in rows.items()},
            bad=sum(1 for s in rows.values() if s != "SUCCESS"),
        )
    whole, per_element = engine._blockers(task)
    return whole if whole is not None else per_element.get(index)


def _job_reason(task: str, index: int, states: dict[str, dict[int, str]]) -> str | None:
    """What a job submitted ahead decides, reading the same states (result files, store)."""
    from reflow.resolve import FileUpstream, _blocked

    class Read(FileUpstream):
        def _load(self, dep: str, j: int) -> tuple[str, str | None, str | None, str]:
            state = states.get(dep, {}).get(j)
            if state is None:
                return "MISSING", None, None, f"'{dep}'[{j}] left no result"
            why = "" if state == "SUCCESS" else f"'{dep}'[{j}] is {state}"
            return state, "1" if state == "SUCCESS" else None, None, why

    attempts = {dep: dict.fromkeys(rows, 1) for dep, rows in states.items()}
    up = Read(Path("."), "run", None, attempts)  # type: ignore[arg-type]
    return _blocked(pl_rules.wf.validate(), task, index, up)


def _ok(n: int = 3) -> dict[int, str]:
    return dict.fromkeys(range(n), "SUCCESS")


@pytest.mark.parametrize("bad", ["FAILED", "SKIPPED", "CANCELLED"])
@pytest.mark.parametrize(
    ("task", "index", "upstream", "expected"),
    [
        ("second", 1, "first", "'first'[1] is {bad}"),  # a chain: that element only
        ("second", 0, "first", None),  # the other elements run
        ("total", -1, "fourth", "upstream 'fourth' has 1 {bad}"),  # a gather: the whole task
    ],
)
def test_both_callers_skip_alike(
    bad: str, task: str, index: int, upstream: str, expected: str | None
) -> None:
    states = {"items": {-1: "SUCCESS"}, "first": _ok(), "second": _ok(), "third": _ok(),
              "fourth": _ok()}  # fmt: skip
    states[upstream] = {**_ok(), 1: bad}
    want = None if expected is None else expected.format(bad=bad)
    assert _engine_reason(task, index, states) == want
    assert _job_reason(task, index, states) == want


def test_an_upstream_that_never_fanned_out_skips_the_whole_task_both_ways() -> None:
    states = {"items": {-1: "FAILED"}, "first": {-1: "SKIPPED"}}
    for task, index in (("second", 0), ("second", 2)):
        assert _engine_reason(task, index, states) == "upstream 'first' is SKIPPED"
        assert _job_reason(task, index, states) == "upstream 'first' is SKIPPED"
