"""Inside a job: resolve the inputs of an instance submitted ahead of them.

The dispatcher may submit a task before its upstream jobs have finished (its
instance count is already known: a singleton, or a chain of a known array),
with scheduler dependencies.  Such an instance finds its upstream outputs in
their result files (or, once ingested, in the store, read only), computes its
identity exactly as the engine would, reuses a cached output when there is
one, and otherwise runs.  It is skipped when something it needs failed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import codec
from .identity import compute_identity
from .inputs import InputError, one_item, whole
from .instances import Outcome, Work, execute, failure
from .results import result_path
from .rules import element_block, elementwise_upstream, stale_reason, verifying, whole_task_block

if TYPE_CHECKING:
    from .stores import Store
    from .wiring import Graph, Pipeline

__all__ = ["FileUpstream", "run_deferred"]


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


class FileUpstream:
    """Upstream outputs from result files, falling back to the store (read only)."""

    def __init__(
        self, run_dir: Path, run_id: str, store: Store, attempts: dict[str, dict[int, int]]
    ) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.store = store
        self.attempts = attempts
        self._cache: dict[tuple[str, int], tuple[str, str | None, str | None, str]] = {}

    def load(self, task: str, index: int) -> tuple[str, str | None, str | None, str]:
        """(state, output text, output hash, why not SUCCESS) of one upstream instance."""
        key = (task, index)
        if key not in self._cache:
            self._cache[key] = self._load(task, index)
        return self._cache[key]

    def _load(self, task: str, index: int) -> tuple[str, str | None, str | None, str]:
        attempt = self.attempts.get(task, {}).get(index)
        if attempt is None:
            return "MISSING", None, None, f"{_label(task, index)} is unknown"
        path = result_path(self.run_dir, self.run_id, task, index, attempt)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict):
            if doc.get("skipped"):
                return "SKIPPED", None, None, f"{_label(task, index)} is SKIPPED"
            if not doc.get("ok"):
                return "FAILED", None, None, f"{_label(task, index)} is FAILED"
            source = doc.get("cached_from")
            text = (
                self.store.source_output(source) if isinstance(source, int) else doc.get("output")
            )
            return "SUCCESS", text, doc.get("output_hash"), ""
        row = self.store.instance_output(self.run_id, task, index, attempt)
        if row is None:
            return "MISSING", None, None, f"{_label(task, index)} left no result"
        state, text, ohash, _ = row
        if state != "SUCCESS":
            why = "ended without a result" if state in ("SUBMITTED", "RUNNING") else f"is {state}"
            return state, None, None, f"{_label(task, index)} {why}"
        return state, text, ohash, ""

    def elements(self, task: str) -> list[int]:
        idx = sorted(self.attempts.get(task, {}))
        if idx and idx[0] < 0:
            raise InputError(f"'{task}' has no elements")
        return idx

    def output_hash(self, task: str, index: int) -> str:
        return self.load(task, index)[2] or ""

    def text(self, task: str, index: int) -> str:
        text = self.load(task, index)[1]
        if text is None:
            raise InputError(f"the output of {_label(task, index)} cannot be found")
        return text

    def value(self, task: str, index: int) -> Any:
        return codec.loads(self.text(task, index))


_STATES = frozenset({"SUCCESS", "FAILED", "CANCELLED", "SKIPPED"})


def _blocked(graph: Graph, task: str, index: int, up: FileUpstream) -> str | None:
    """Why the instance cannot run (an upstream it needs did not succeed), or None.

    The engine's rule (rules.py), fed from the result files and the store; an
    upstream instance that has not ended the way the engine's rows all have (no
    result at all, or a job that ended without one) is said as such.
    """
    elementwise = elementwise_upstream(graph, task)

    def states_of(dep: str) -> dict[int, str]:
        known = up.attempts.get(dep, {})
        # of an element-wise upstream only the matching element (see element_block below)
        indices = [index] if dep in elementwise and -1 not in known else sorted(known)
        states = {}
        for j in indices:
            state, _, _, why = up.load(dep, j)
            if state not in _STATES:
                raise _Unfinished(why if dep in elementwise else f"upstream {why}")
            states[j] = state
        return states

    try:
        why = whole_task_block(graph, task, states_of)
        if why is not None:
            return why
        for dep in graph.tasks[task].upstream:
            if dep in elementwise and -1 not in up.attempts.get(dep, {}):
                state, _, _, unfinished = up.load(dep, index)
                if state not in _STATES:
                    return unfinished
                why = element_block(dep, index, state)
                if why is not None:
                    return why
    except _Unfinished as exc:
        return str(exc)
    return None


class _Unfinished(Exception):
    """An upstream instance with no final state a job can read."""


def run_deferred(
    wf: Pipeline, work: Work, deferred: dict[str, Any], run_dir: Path, run_id: str
) -> Outcome:
    """Resolve the inputs of one instance submitted ahead, then reuse or run it."""
    from .stores import open_store

    graph = wf.validate()
    spec = graph.tasks[work.task]
    started = time.time()
    attempts = {
        t: {int(i): int(a) for i, a in rows} for t, rows in dict(deferred["upstream"]).items()
    }
    store = open_store(str(deferred["store"]))
    up = FileUpstream(run_dir, run_id, store, attempts)
    why = _blocked(graph, work.task, work.index, up)
    if why is not None:
        return failure(work, why, started, skipped=True)
    try:
        hashes: dict[str, str] = {}
        getters: dict[str, Any] = {}
        for inp in graph.inputs[work.task]:
            if inp.mode.per_item:
                hashes[inp.arg], getters[inp.arg] = one_item(up, inp, work.index)
            else:
                hashes[inp.arg], getters[inp.arg] = whole(up, inp)
    except (InputError, IndexError) as exc:
        return failure(work, f"task '{work.task}' cannot start: {exc}", started)
    params = {arg: codec.hash_value(work.kwargs[arg]) for arg in graph.param_keys(work.task)}
    identity, parts = compute_identity(graph.name, work.task, spec.version, params, hashes)
    if not deferred.get("no_cache"):
        found = store.lookup_cache([identity]).get(identity)
        if found is not None:
            source, ohash = found
            check = bool(deferred.get("verify"))
            stale = None
            if verifying(spec, check):
                stale = stale_reason(spec, store.source_output(source), check)
            if stale is None:
                return Outcome(
                    work.task,
                    work.index,
                    work.attempt,
                    True,
                    None,
                    ohash,
                    None,
                    started,
                    time.time(),
                    identity,
                    parts,
                    source,
                )
    kwargs = dict(work.kwargs)
    for arg, get in getters.items():
        kwargs[arg] = get()
    outcome = execute(spec.func, Work(work.task, work.index, work.attempt, kwargs))
    return outcome.replace(identity=identity, parts=parts)
