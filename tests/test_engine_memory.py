"""What a run does to the interpreter's garbage collector, seen from the program around it.

While a run is driven the engine keeps the collector off what it expands
(gc.freeze); when run_local returns, everything is collectable again, and a
program that froze objects itself finds them as it left them.
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Annotated

from reflow import Result, Workflow


class _Node:
    """An object in a reference cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


def _workflow(made: list[weakref.ref[_Node]]) -> Workflow:
    wf = Workflow("gcw")

    @wf.job()
    def items() -> list[int]:
        return list(range(20))

    @wf.array_job()
    def each(x: Annotated[int, Result(step="items")]) -> int:
        node = _Node()  # garbage in a cycle, made by task code while the run goes
        made.append(weakref.ref(node))
        return x

    @wf.job()
    def total(xs: Annotated[list[int], Result(step="each")]) -> int:
        return sum(xs)

    return wf


def test_after_a_run_nothing_is_left_frozen_and_cycles_made_by_tasks_are_freed(
    tmp_path: Path, store_path: Path
) -> None:
    made: list[weakref.ref[_Node]] = []
    assert gc.get_freeze_count() == 0
    run = _workflow(made).run_local(tmp_path / "r", store=store_path)
    assert run.output("total") == 190
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert len(made) == 20 and all(ref() is None for ref in made)


def test_objects_the_program_froze_itself_stay_frozen(tmp_path: Path, store_path: Path) -> None:
    made: list[weakref.ref[_Node]] = []
    keep = [_Node() for _ in range(10)]
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        _workflow(made).run_local(tmp_path / "r", store=store_path)
        assert gc.get_freeze_count() == frozen  # neither thawed nor added to
    finally:
        gc.unfreeze()
    del keep
