"""The engine: one state machine over the store, shared by every way of running.

It expands tasks into instances once their upstream tasks are complete,
computes identities, consults the cache, decides what must run, records
outcomes, skips what depends on a failure, and (on a resumed run) replaces
failed, cancelled and interrupted attempts with new ones.  Executors only run
the `Work` it hands out and give back `Outcome`s.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import codec
from .identity import identity_template, template_maker
from .inputs import Feed, InputError, per_item, whole
from .instances import NO_VALUE, Outcome, Work
from .params import MISSING
from .retrying import (
    Limits,
    Retry,
    Used,
    first_resources,
    next_attempt,
    resources_json,
    used_before,
)
from .rules import element_block, elementwise_upstream, stale_reason, verifying, whole_task_block
from .states import RunState
from .stores import InstanceRow, NewInstance, Store
from .wiring import Graph

__all__ = ["Decision", "Engine", "fewer_collections"]

SUCCESS, FAILED, CANCELLED, SKIPPED = "SUCCESS", "FAILED", "CANCELLED", "SKIPPED"
PENDING, RUNNING, SUBMITTED = "PENDING", "RUNNING", "SUBMITTED"
_FINAL = frozenset({SUCCESS, FAILED, CANCELLED, SKIPPED})
_BAD = frozenset({FAILED, CANCELLED, SKIPPED})


@dataclass(slots=True)
class _Row:
    state: str
    attempt: int
    identity: str | None
    output_hash: str | None
    written: bool = True  # False: counted in the store (tasks.expected), no row yet
    resources: str | None = None  # what this attempt asks for (JSON), None: nothing


@dataclass
class _Task:
    """What the engine knows about one task during a drive."""

    expanded: bool = False
    rows: dict[int, _Row] = field(default_factory=dict)
    texts: dict[int, str] = field(default_factory=dict)
    values: dict[int, Any] = field(default_factory=dict)
    unfinished: int = 0
    bad: int = 0
    unwritten: int = 0  # rows not written yet (write_once)
    # the ingredients of an instance's identity, for the rows written late (by index)
    parts: Callable[[int], str] | None = None
    # the Work of (index, attempt) again, for an instance retried in this process
    remake: Callable[[int, int], Work] | None = None
    used: dict[int, Used] = field(default_factory=dict)  # budget used, by index (retried ones)

    @property
    def complete(self) -> bool:
        return self.expanded and self.unfinished == 0

    @property
    def indices(self) -> list[int]:
        return sorted(self.rows)


def _parts_of(template: str, columns: list[list[str]]) -> Callable[[int], str]:
    """Index -> the ingredients of its identity (`identity_template` filled in)."""
    if len(columns) == 1:  # the common case, kept cheap: one varying input
        (column,) = columns
        return lambda i: template % (column[i],)
    return lambda i: template % tuple([c[i] for c in columns])


def _written_now(t: _Task, row: _Row, index: int) -> str:
    """Note that an instance written late gets its row now; return its ingredients."""
    assert t.parts is not None
    parts = t.parts(index)
    row.written = True
    t.unwritten -= 1
    if not t.unwritten:
        t.parts = None  # let go of the input hashes it holds
    return parts


def _works(
    task: str, pending: list[tuple[int, int]], shared: dict[str, Any], feeds: list[tuple[str, Feed]]
) -> Iterator[Work]:
    """The Work of each (index, attempt), made as it is taken: the shared arguments and
    each element's own."""
    if not feeds:
        for i, a in pending:
            yield Work(task, i, a, dict(shared))
        return
    for i, a in pending:
        kwargs = dict(shared)
        for arg, f in feeds:
            kwargs[arg] = f.value(i)
        yield Work(task, i, a, kwargs)


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def _asks(text: str | None) -> dict[str, Any] | None:
    """An attempt's stored resources (JSON) as a dict; None when not known."""
    if text is None:
        return None
    import json

    doc = json.loads(text)
    return doc if isinstance(doc, dict) else None


class _Plan:
    """What one task's expansion decided before anything is written (see `Engine._plan`).

    `order`, `idents` and `parts`: the instances to decide by identity, in
    ascending index order, with their identities and ingredients; `special`:
    index -> (SKIPPED or FAILED, why) for the others; `feeds` and `wholes`:
    the per-element and whole inputs; `template` and `columns`: the identity
    template and the varying input hashes (rebuilding an instance's
    ingredients later); `todo`: (index, identity, ingredients) of what is not
    kept from an earlier attempt; `notes`: index -> why an output it could
    have reused failed its check (kept in the store for `why`); `retries`:
    index -> the automatic next attempt of a failed instance, due now; `later`:
    index -> when a failed instance's next attempt is due, if not yet.
    """

    __slots__ = (
        "columns", "feeds", "idents", "later", "notes", "order", "parts", "retries", "special",
        "template", "todo", "wholes",
    )  # fmt: skip

    def __init__(self) -> None:
        self.special: dict[int, tuple[str, str]] = {}
        self.order: list[int] = []
        self.idents: list[str] = []
        self.parts: list[str] = []
        self.feeds: dict[str, Feed] = {}
        self.wholes: dict[str, tuple[str, Callable[[], Any]]] = {}
        self.template = ""
        self.columns: list[list[str]] = []
        self.todo: list[tuple[int, str, str]] = []
        self.notes: dict[int, str] = {}
        self.retries: dict[int, Retry] = {}
        self.later: dict[int, float] = {}  # index -> when its retry is due (kept FAILED till then)


class Decision:
    """What a dry run's engine decided for one task, without writing it (see `Engine.dry`).

    `run`: (index, identity, ingredients) of the instances that would run;
    `hits`: index -> (cache source row, output hash) of those that would be
    reused; `special`: index -> (SKIPPED or FAILED, why) of the others;
    `notes`: index -> why a cached output failed its check; `waiting`: the
    elements not decided, because an element they are fed by would run.
    """

    __slots__ = ("hits", "notes", "run", "special", "waiting")

    def __init__(
        self,
        run: list[tuple[int, str, str]],
        hits: dict[int, tuple[int, str]],
        special: dict[int, tuple[str, str]],
        notes: dict[int, str],
        waiting: frozenset[int] = frozenset(),
    ) -> None:
        self.run, self.hits, self.special, self.notes = run, hits, special, notes
        self.waiting = waiting


class Engine:
    """Drives one run of a graph over the store."""

    def __init__(
        self,
        graph: Graph,
        store: Store,
        run_id: str,
        *,
        params: Mapping[str, Any],
        run_dir: Path,
        force: bool = False,
        force_tasks: Iterable[str] = (),
        verify: bool = False,
        retry_tasks: Iterable[str] | None = None,
        on_error: str = "stop",
        resume: bool = False,
        keep_in_flight: bool = False,
        verify_kept: bool = True,
        write_once: bool = False,
        dry: bool = False,
        limits: Callable[[str], Limits] | None = None,
    ) -> None:
        self.graph = graph
        self.store = store
        self.run_id = run_id
        self.run_dir = run_dir
        self.params = dict(params)
        self.force = force
        self.force_tasks = frozenset(force_tasks)
        self.verify = verify
        self.retry_tasks = None if retry_tasks is None else frozenset(retry_tasks)
        self.on_error = on_error
        self.resume = resume
        # a dispatcher pass keeps submitted and running instances (their jobs are alive);
        # a local resume replaces them (the process that ran them is gone)
        self.keep_in_flight = keep_in_flight
        # re-check the run's own successes too (a retry), not only outputs reused from
        # the cache; a routine dispatcher pass leaves what it already accepted alone
        self.verify_kept = verify_kept
        # the local drivers write an instance that runs in their own process once, when
        # it is marked RUNNING or with its outcome, not PENDING first and again at its end
        self.write_once = write_once
        # a dry run decides every task it can and writes nothing: its decisions are
        # collected in `decisions`, and a task with instances to run never completes,
        # so what depends on its outputs is not decided (it is unknown), but for the
        # elements of a chain whose own input is known (`decide_elements`)
        self.dry = dry
        self.decisions: dict[str, Decision] = {}
        # the caps of automatic retries beside the task's own, by task (the config's
        # [executor] max_mem, max_time, max_requeues; the partition's limits)
        self.limits = limits or (lambda task: Limits())
        # retries waiting for their delay: (due, task, index, attempt), soonest first
        self._delayed: list[tuple[float, str, int, int]] = []
        # a dispatcher pass: when the soonest failed instance kept for a later retry is due
        self.retry_due: float | None = None
        self._sources: dict[str, dict[int, int]] = {}  # dry: index -> cache source row
        # the last task's reasons, index -> attempt -> why (the budgets of automatic retries)
        self._reasons: tuple[str, dict[int, dict[int, str]]] | None = None
        self._expected_before = store.expected_counts(run_id) if resume else {}
        self.stopping = False
        self.cancelled = False
        self.reset = 0  # failed/cancelled/skipped/interrupted instances given a new attempt
        self.cache_hits = 0
        self._tasks = {name: _Task() for name in graph.order}
        self.on_progress: Callable[[Engine], None] | None = None
        # which tasks may expand: a task is ready once all its upstream tasks are
        # complete; kept by counting, so a long chain costs O(tasks), not O(tasks^2)
        self._position = {name: k for k, name in enumerate(graph.order)}
        self._dependants: dict[str, list[str]] = {name: [] for name in graph.order}
        self._waiting: dict[str, int] = {}
        for name in graph.order:
            ups = set(graph.tasks[name].upstream)
            self._waiting[name] = len(ups)
            for up in ups:
                self._dependants[up].append(name)
        self._ready = [(k, n) for k, n in enumerate(graph.order) if self._waiting[n] == 0]

    # ------------------------------------------------------------------ public

    def advance(self) -> Iterator[Work]:
        """Expand every task whose upstream tasks are complete; return what must run now.

        The tasks are expanded (and their instances recorded) at once; each
        Work is made as it is taken, so a wave of 100,000 instances is not
        100,000 argument dicts alive at the same time.
        """
        works: list[Iterator[Work]] = []
        if self.stopping:
            return iter(())
        if self._delayed and self._delayed[0][0] <= time.time():
            works.append(iter(self._due()))
        ready = self._ready
        with _set_aside():
            while ready:  # in graph order; expanding one task may make its dependants ready
                _, name = heapq.heappop(ready)
                works.append(self._expand(name))
                if self._tasks[name].unfinished == 0:
                    self._completed(name)
        self._notify()
        return itertools.chain.from_iterable(works)

    @property
    def next_due(self) -> float | None:
        """When the soonest retry waiting for its delay is due (time.time()), or None."""
        return self._delayed[0][0] if self._delayed and not self.stopping else None

    def _due(self) -> list[Work]:
        """The Work of every retry whose delay is over."""
        now = time.time()
        out = []
        while self._delayed and self._delayed[0][0] <= now:
            _, task, index, attempt = heapq.heappop(self._delayed)
            remake = self._tasks[task].remake
            assert remake is not None
            out.append(remake(index, attempt))
        return out

    def retrying(self, outcome: Outcome) -> bool:
        """Whether a failed outcome will be tried again (so a run does not stop for it)."""
        return not outcome.ok and self._again(outcome) is not None

    def _again(self, o: Outcome) -> Retry | None:
        """The next attempt of an instance that just failed here, or None: it stays failed."""
        t = self._tasks[o.task]
        row = t.rows.get(o.index)
        if t.remake is None or o.skipped or row is None or row.state in _FINAL or self.stopping:
            return None
        return next_attempt(
            self.graph.tasks[o.task], o.kind, row.attempt, _asks(row.resources),
            t.used.get(o.index, Used()), self.limits(o.task),
        )  # fmt: skip

    def _completed(self, name: str) -> None:
        for dep in self._dependants[name]:
            self._waiting[dep] -= 1
            if self._waiting[dep] == 0:
                heapq.heappush(self._ready, (self._position[dep], dep))

    def mark_running(self, works: Sequence[Work], job_id: str | None = None) -> None:
        """Record that these instances are about to run (before they do)."""
        if not works:
            return
        now = time.time()
        written: list[tuple[str, int, int]] = []
        new: list[NewInstance] = []
        for w in works:
            t = self._tasks[w.task]
            row = t.rows[w.index]
            if row.written:
                written.append((w.task, w.index, w.attempt))
            else:
                new.append(self._new_row(w.task, w.index, t, row, RUNNING, now))
            row.state = RUNNING
        self.store.insert_instances(new)
        if written:
            self.store.mark_running(self.run_id, written, job_id)

    def _new_row(
        self, task: str, index: int, t: _Task, row: _Row, state: str, started: float | None = None
    ) -> NewInstance:
        """The store row of an instance written late, with no outcome (and note it written).

        `record` builds the rows of finished instances, with their outcomes.
        """
        return (self.run_id, task, index, row.attempt, state, row.identity,
                _written_now(t, row, index), None, None, None, started, None, None,
                row.resources)  # fmt: skip

    def write_pending(self) -> None:
        """Write every instance not written yet as PENDING (the run stops before they run)."""
        new = [
            self._new_row(name, i, t, row, PENDING)
            for name, t in self._tasks.items()
            if t.unwritten
            for i, row in sorted(t.rows.items())
            if not row.written
        ]
        self.store.insert_instances(new)

    def unmark_running(self, works: Sequence[Work]) -> None:
        """Put instances that were marked running but never started back to PENDING."""
        if works:
            self.store.unmark_running(self.run_id, [(w.task, w.index, w.attempt) for w in works])
            for w in works:
                self._tasks[w.task].rows[w.index].state = PENDING

    def record(self, outcomes: Sequence[Outcome]) -> None:
        """Record finished instances in one transaction and update what is ready."""
        if not outcomes:
            return
        updates = []  # rows written before: updated
        new: list[NewInstance] = []  # rows not written yet: inserted, once
        retried: list[tuple[str, int, int, str | None, str]] = []  # failed, tried again
        run_id = self.run_id
        tasks = self._tasks
        for o in outcomes:
            t = tasks[o.task]
            row = t.rows[o.index]
            state = SUCCESS if o.ok else FAILED
            kind = None if o.ok else o.kind or "ERROR"
            again = None if o.ok else self._again(o)
            if row.written:
                updates.append(
                    (
                        o.task, o.index, o.attempt, state, o.output, o.output_hash, o.error,
                        o.started, o.finished, kind,
                    )
                )  # fmt: skip
            elif row.state not in _FINAL:
                new.append(
                    (
                        run_id, o.task, o.index, row.attempt, state, row.identity,
                        _written_now(t, row, o.index), o.output, o.output_hash, o.error,
                        o.started, o.finished, kind, row.resources,
                    )
                )  # fmt: skip
            if row.state in _FINAL:
                continue
            if again is not None:  # not final: its next attempt is written, run when due
                asks = resources_json(again.resources)
                retried.append((o.task, o.index, again.attempt, asks, again.reason))
                row.state, row.attempt, row.resources, row.written = (
                    PENDING,
                    again.attempt,
                    asks,
                    True,
                )
                t.used[o.index] = again.used
                heapq.heappush(
                    self._delayed, (time.time() + again.delay, o.task, o.index, again.attempt)
                )
                continue
            t.unfinished -= 1
            if t.unfinished == 0 and t.expanded:
                self._completed(o.task)
            if o.ok:
                row.state = SUCCESS
                row.output_hash = o.output_hash
                assert o.output is not None
                if o.value is not NO_VALUE:  # an immutable value run here: no need to decode
                    t.values[o.index] = o.value  # (its text is read back only if ever asked for)
                else:
                    t.texts[o.index] = o.output
            else:
                row.state = FAILED
                t.bad += 1
                if self.on_error == "stop":
                    self.stopping = True
        if retried:  # the failed attempts and their next ones: one transaction
            with self.store.transaction():
                self.store.insert_instances(new)
                self.store.record_outcomes(run_id, updates)
                self.store.retry_instances(run_id, retried)
        else:
            self.store.insert_instances(new)
            self.store.record_outcomes(run_id, updates)
        self._notify()

    def progress(self) -> tuple[int, int, int, int]:
        """(tasks complete, tasks, instances finished, instances known so far)."""
        tasks = self._tasks.values()
        known = sum(len(t.rows) for t in tasks)
        return (
            sum(1 for t in tasks if t.complete),
            len(self._tasks),
            known - sum(t.unfinished for t in tasks),
            known,
        )

    def _notify(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self)

    def stop(self, cancelled: bool = False) -> None:
        """Hand out no more work (the run failed with on_error='stop', or was cancelled)."""
        self.stopping = True
        self.cancelled = self.cancelled or cancelled

    def param_values(self, task: str) -> dict[str, Any]:
        """The values of the run parameters `task` takes, by argument name."""
        return self._param_hashes(task)[0]

    def known_rows(self, task: str) -> dict[int, tuple[str, int]] | None:
        """(state, attempt) of each instance of an expanded task; None if not expanded."""
        t = self._tasks[task]
        if not t.expanded:
            return None
        return {i: (r.state, r.attempt) for i, r in t.rows.items()}

    @property
    def in_flight(self) -> int:
        """Instances handed out whose outcome has not been recorded, or waiting for a retry."""
        return sum(t.unfinished for t in self._tasks.values())

    def resources_of(self, task: str, index: int) -> dict[str, Any] | None:
        """What the current attempt of an instance asks for (None: the task's own)."""
        row = self._tasks[task].rows.get(index)
        return None if row is None else _asks(row.resources)

    def final_state(self) -> RunState:
        """The run's state once nothing is in flight."""
        if self.cancelled:
            return RunState.CANCELLED
        if all(t.complete and t.bad == 0 for t in self._tasks.values()):
            return RunState.SUCCESS
        return RunState.FAILED

    # ------------------------------------------------------------------ values

    # the Upstream view of inputs.py
    def text(self, task: str, index: int) -> str:
        t = self._tasks[task]
        text = t.texts.get(index)
        if text is None:
            missing = [
                i
                for i, r in t.rows.items()
                if r.state == SUCCESS and i not in t.texts and (i == index or i not in t.values)
            ]
            for i, txt in self._output_texts(task, missing).items():
                if txt is not None:
                    t.texts[i] = txt
            text = t.texts.get(index)
            if text is None:
                raise RuntimeError(f"output of {_label(task, index)} is missing from the store")
        return text

    def _output_texts(self, task: str, indices: list[int]) -> dict[int, str | None]:
        if not self.dry:
            return self.store.output_texts_for(self.run_id, task, indices)
        # a dry run's decided outputs are cache hits, read from their sources
        sources = self._sources.get(task, {})
        texts = self.store.cached_output_texts([sources[i] for i in indices if i in sources])
        return {i: texts.get(sources[i]) for i in indices if i in sources}

    def value(self, task: str, index: int) -> Any:
        values = self._tasks[task].values
        try:
            return values[index]
        except KeyError:
            value = values[index] = codec.loads(self.text(task, index))
            return value

    def elements(self, task: str) -> list[int]:
        idx = self._tasks[task].indices
        if idx and idx[0] < 0:
            raise InputError(f"'{task}' has no elements")
        return idx

    def output_hash(self, task: str, index: int) -> str:
        return self._tasks[task].rows[index].output_hash or ""

    # ------------------------------------------------------------------ expansion

    def _blockers(self, name: str) -> tuple[str | None, dict[int, str]]:
        """Why the whole task must be skipped, or which elements must be (chain): rules.py."""

        def states_of(dep: str) -> dict[int, str]:
            t = self._tasks[dep]
            return {i: r.state for i, r in t.rows.items()} if t.bad else {}

        whole_reason = whole_task_block(self.graph, name, states_of)
        if whole_reason is not None:
            return whole_reason, {}
        per_element: dict[int, str] = {}
        elementwise = elementwise_upstream(self.graph, name)
        for dep in self.graph.tasks[name].upstream:
            t = self._tasks[dep]
            if dep in elementwise and t.bad:
                for i, r in t.rows.items():
                    why = element_block(dep, i, r.state)
                    if why is not None:
                        per_element.setdefault(i, why)
        return None, per_element

    def _param_hashes(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        values: dict[str, Any] = {}
        for arg, key in self.graph.param_keys(name).items():
            if key in self.params:
                values[arg] = self.params[key]
            else:
                default = self.graph.params[key].default
                assert default is not MISSING
                values[arg] = default
        return values, {arg: codec.hash_value(v) for arg, v in values.items()}

    def _expand(self, name: str) -> Iterator[Work]:
        """Decide every instance of a task whose upstream is complete; return the Work to run.

        In five steps: the instances and their identities (or why they are
        SKIPPED or FAILED outright), what a resumed run keeps of its earlier
        rows, the cache look-ups for the rest, the new rows (one transaction)
        with the engine's picture of the task, and the Work of what must run.
        """
        existing = (
            {r.array_index: r for r in self.store.current_rows(self.run_id, name)}
            if self.resume
            else {}
        )
        pvalues, phashes = self._param_hashes(name)
        plan = self._plan(name, phashes)
        keep = self._kept(name, existing, plan)
        plan.todo = [
            (i, ident, p)
            for i, ident, p in zip(plan.order, plan.idents, plan.parts, strict=True)
            if i not in keep
        ]
        plan.parts = []  # the texts live on in `todo` only
        hits = self._cache_hits(name, plan)
        if self.dry:
            self._decide_only(name, plan, hits)
            return iter(())
        pending = self._write(name, plan, existing, keep, hits)
        return self._hand_out(name, pvalues, plan, pending)

    def _plan(self, name: str, phashes: dict[str, str]) -> _Plan:
        """Step 1: each instance's identity (ascending indices), or SKIPPED/FAILED outright."""
        spec = self.graph.tasks[name]
        plan = _Plan()
        skip_all, skip_some = self._blockers(name)
        if skip_all is not None:
            plan.special[-1] = (SKIPPED, skip_all)
            return plan
        try:
            for inp in self.graph.inputs[name]:
                if inp.mode.per_item:
                    plan.feeds[inp.arg] = per_item(self, inp)
                else:
                    plan.wholes[inp.arg] = whole(self, inp)
            sizes = {arg: len(f.hashes) for arg, f in plan.feeds.items()}
            if len(set(sizes.values())) > 1:
                raise InputError(
                    "its array inputs differ in length ("
                    + ", ".join(f"{a}: {n}" for a, n in sizes.items())
                    + "); give them the same number of items"
                )
            indices = range(next(iter(sizes.values()))) if spec.array else range(-1, 0)
        except InputError as exc:
            plan.special[-1] = (FAILED, f"task '{name}' cannot start: {exc}")
            indices = range(0)
        plan.template = identity_template(
            self.graph.name, name, spec.version, phashes,
            {arg: h for arg, (h, _) in plan.wholes.items()}, list(plan.feeds),
        )  # fmt: skip
        make = template_maker(plan.template)
        columns = plan.columns = [plan.feeds[arg].hashes for arg in sorted(plan.feeds)]
        for i in indices:
            if i in skip_some:
                plan.special[i] = (SKIPPED, skip_some[i])
                continue
            ident, text = make(tuple([c[i] for c in columns]))
            plan.order.append(i)
            plan.idents.append(ident)
            plan.parts.append(text)
        return plan

    def _kept(self, name: str, existing: dict[int, InstanceRow], plan: _Plan) -> dict[int, _Row]:
        """Step 2: the rows of a resumed run that still hold (verified when asked)."""
        keep: dict[int, _Row] = {}
        if not existing:
            return keep
        retryable = self.retry_tasks is None or name in self.retry_tasks
        ident_of = dict(zip(plan.order, plan.idents, strict=True))
        for i, old in existing.items():
            if i in plan.special:
                if plan.special[i][0] == SKIPPED and old.state == SKIPPED:
                    keep[i] = _Row(SKIPPED, old.attempt, old.identity, None)
            elif i in ident_of:
                new_ident = ident_of[i]
                same = old.identity == new_ident
                if same and old.state == SUCCESS:
                    keep[i] = _Row(SUCCESS, old.attempt, new_ident, old.output_hash)
                elif self._still_holds(old, same, retryable):
                    if (
                        old.state == FAILED
                        and self.keep_in_flight
                        and self._retry_later(name, i, old, plan)
                    ):
                        continue  # tried again now: a new attempt
                    # (what it asks for goes along: a PENDING one is handed out again)
                    keep[i] = _Row(old.state, old.attempt, new_ident, None, True, old.resources)
        if keep and self.verify_kept and self._verifying(name):
            stale = self._stale(name, [i for i, r in keep.items() if r.state == SUCCESS])
            for i, why in stale.items():
                del keep[i]
                plan.notes[i] = why
        return keep

    def _retry_later(self, name: str, index: int, old: InstanceRow, plan: _Plan) -> bool:
        """Whether a failed instance a dispatcher pass found gets its automatic next attempt now.

        Its job failed since the last pass (the scheduler's kind, or the one its
        result file gave).  Its budget is read from the reasons its attempts keep
        (`retrying.used_before`); a retry not due yet stays FAILED, and the task
        unfinished, until a pass at or after `plan.later[index]`.
        """
        spec = self.graph.tasks[name]
        kind = old.failure_kind or "ERROR"  # not known (written before schema 5): an error
        if kind not in spec.retry_on:
            return False
        if self._reasons is None or self._reasons[0] != name:
            by_index: dict[int, dict[int, str]] = {}
            for (i, a), why in self.store.reasons(self.run_id, name).items():
                by_index.setdefault(i, {})[a] = why
            self._reasons = (name, by_index)
        again = next_attempt(
            spec, kind, old.attempt, _asks(old.resources),
            used_before(self._reasons[1].get(index, {}), old.attempt), self.limits(name),
        )  # fmt: skip
        if again is None:
            return False
        due = (old.finished or 0.0) + again.delay
        if due > time.time():
            plan.later[index] = due
            return False
        plan.retries[index] = again
        return True

    def _cache_hits(self, name: str, plan: _Plan) -> dict[int, tuple[int, str]]:
        """Step 3: index -> (source instance, output hash) of the instances the cache has.

        A cached output that fails its check is not reused; why goes to `plan.notes`.
        """
        spec = self.graph.tasks[name]
        todo = plan.todo
        if not todo or self.force or name in self.force_tasks or not spec.cache:
            return {}
        found = self.store.lookup_cache(ident for _, ident, _ in todo)
        if not found:
            return {}
        hits = {i: found[ident] for i, ident, _ in todo if ident in found}
        if hits and self._verifying(name):
            texts = self.store.cached_output_texts([src for src, _ in hits.values()])
            for i in list(hits):
                why = self._stale_reason(name, texts.get(hits[i][0]))
                if why is not None:
                    del hits[i]
                    plan.notes[i] = why
        return hits

    def decide_elements(self) -> None:
        """A dry run's last step: decide what can be decided of the tasks left waiting.

        A task fed element by element (a chain) by a task some of whose
        elements would run waits for those elements only: every other element
        has its input already (a cache hit) and is decided now, exactly as
        `_expand` decides, along chains of chains too.  A task that waits only
        for the order of another (`after=`), not for its output, is decided whole.
        """
        assert self.dry
        for name in self.graph.order:
            t = self._tasks[name]
            data = {s.step for inp in self.graph.inputs[name] for s in inp.sources}
            if t.expanded or not all(self._tasks[u].expanded for u in data):
                continue
            open_ups = {u for u in data if self._tasks[u].unfinished}
            if not open_ups <= elementwise_upstream(self.graph, name):
                continue  # a whole input is not known yet
            waiting = frozenset(
                i for u in open_ups for i, r in self._tasks[u].rows.items() if r.state == PENDING
            )
            plan = self._plan(name, self._param_hashes(name)[1])
            if -1 in plan.special:  # the whole task is skipped or cannot start
                waiting = frozenset()
            plan.todo = [
                (i, ident, p)
                for i, ident, p in zip(plan.order, plan.idents, plan.parts, strict=True)
                if i not in waiting
            ]
            for i in waiting:
                plan.special.pop(i, None)
            self._decide_only(name, plan, self._cache_hits(name, plan), waiting)

    def _decide_only(
        self,
        name: str,
        plan: _Plan,
        hits: dict[int, tuple[int, str]],
        waiting: frozenset[int] = frozenset(),
    ) -> None:
        """A dry run's step 4: keep the decisions, and the picture of the task, unwritten.

        The cache hits stand in for outputs (read from their sources); an
        instance that would run, or that waits, leaves the task incomplete.
        """
        t = self._tasks[name]
        run = [todo for todo in plan.todo if todo[0] not in hits]
        self.decisions[name] = Decision(run, hits, dict(plan.special), dict(plan.notes), waiting)
        rows = t.rows = {i: _Row(PENDING, 1, None, None) for i in waiting}
        for i, ident, _ in plan.todo:
            hit = hits.get(i)
            rows[i] = (
                _Row(PENDING, 1, ident, None) if hit is None else _Row(SUCCESS, 1, ident, hit[1])
            )
        for i, (state, _) in plan.special.items():
            rows[i] = _Row(state, 1, None, None)
        self._sources[name] = {i: src for i, (src, _) in hits.items()}
        t.expanded = True
        t.unfinished = len(run) + len(waiting)
        t.bad = len(plan.special)

    def _write(
        self,
        name: str,
        plan: _Plan,
        existing: dict[int, InstanceRow],
        keep: dict[int, _Row],
        hits: dict[int, tuple[int, str]],
    ) -> list[tuple[int, int, str | None]]:
        """Step 4: write the new rows in one transaction, and the engine's picture of the task.

        Returns the (index, attempt, identity) of every instance to hand out.
        """
        t = self._tasks[name]
        order, special, todo = plan.order, plan.special, plan.todo
        supersede = [i for i in existing if i not in keep]
        self.reset += len(supersede)  # every replaced attempt runs again (or is reused)
        # and so does every instance an earlier drive counted but never wrote (killed)
        self.reset += max(0, self._expected_before.get(name, 0) - len(existing))
        attempts = self.store.max_attempts(self.run_id, name) if existing else {}
        att = (
            {i: attempts.get(i, 0) + 1 for i in (*order, *special)}
            if attempts
            else dict.fromkeys((*order, *special), 1)  # first expansion: all attempt 1
        )
        to_run = [(i, att[i], ident, p) for i, ident, p in todo if i not in hits]
        hit_rows = [(i, att[i], ident, *hits[i], p) for i, ident, p in todo if i in hits]
        asks, default = self._resources_for(name, plan, att, to_run)
        plan.todo = todo = []
        skipped = [
            (i, att[i], None, why)
            for i, (st, why) in special.items()
            if st == SKIPPED and i not in keep
        ]
        reasons = [(i, att[i], why) for i, why in plan.notes.items()]
        reasons += [(i, att[i], r.reason) for i, r in plan.retries.items() if i not in hits]
        failed = [(i, att[i], None, why) for i, (st, why) in special.items() if st == FAILED]
        # with write_once, the instances to run are only counted now (`expected`), and
        # written when they are marked running or finish (or the run stops)
        defer = self.write_once and bool(to_run)
        lost = self.store.write_expansion(
            self.run_id, name, supersede=supersede, pending=[] if defer else to_run,
            hits=hit_rows, skipped=skipped, failed=failed, expected=len(order) + len(special),
            reasons=reasons, resources=asks, default_resources=default,
        )  # fmt: skip
        pending: list[tuple[int, int, str | None]] = [(i, a, d) for i, a, d, _ in to_run]
        del to_run

        # instances written earlier but never handed to a job are handed out again
        again = [(i, r.attempt, r.identity) for i, r in keep.items() if r.state == PENDING]

        # the in-memory picture of the task (new rows are PENDING, SKIPPED or FAILED;
        # kept ones may be in any state)
        # (a failed one waiting for its retry's delay is unfinished, not bad)
        later = plan.later
        kept_unfinished = sum(1 for r in keep.values() if r.state not in _FINAL) + len(later)
        kept_bad = sum(1 for r in keep.values() if r.state in _BAD) - len(later)
        if later:
            soonest = min(later.values())
            self.retry_due = soonest if self.retry_due is None else min(self.retry_due, soonest)
        rows = t.rows = keep
        for i, a, pending_ident in pending:
            rows[i] = _Row(PENDING, a, pending_ident, None, not defer, asks.get(i, default))
        if defer:
            t.unwritten = len(pending)
            t.parts = _parts_of(plan.template, plan.columns)
        if lost:
            hit_ident = {h[0]: h[2] for h in hit_rows}
            for i in lost:
                del hits[i]
                pending.append((i, att[i], hit_ident[i]))
                rows[i] = _Row(PENDING, att[i], hit_ident[i], None, True, asks.get(i, default))
        self.cache_hits += len(hits)
        for i, a, ident, _, ohash, _ in hit_rows:
            if i in hits:
                rows[i] = _Row(SUCCESS, a, ident, ohash)
        for i, a, _, _ in skipped:
            rows[i] = _Row(SKIPPED, a, None, None)
        for i, a, _, _ in failed:
            rows[i] = _Row(FAILED, a, None, None)
        t.expanded = True
        t.unfinished = len(pending) + kept_unfinished
        t.bad = len(skipped) + len(failed) + kept_bad
        pending.extend(again)
        if failed and self.on_error == "stop":  # only new failures stop; kept ones are history
            self.stopping = True
        return pending

    def _resources_for(
        self,
        name: str,
        plan: _Plan,
        att: dict[int, int],
        to_run: Sequence[tuple[int, int, str, str]],
    ) -> tuple[dict[int, str | None], str | None]:
        """(index -> resources JSON where it differs, the JSON of the rest) of new rows.

        An automatic retry asks for what `retrying` decided; any other attempt
        for the task's own resources for its number (its callables).
        """
        spec = self.graph.tasks[name]
        default = resources_json(first_resources(spec))
        asks: dict[int, str | None] = {}
        if spec.per_attempt:  # a callable of the attempt number: attempts after 1 differ
            for i, a, _, _ in to_run:
                if a != 1:
                    asks[i] = resources_json(first_resources(spec, a))
        for i, again in plan.retries.items():
            asks[i] = resources_json(again.resources)
        return asks, default

    def _hand_out(
        self,
        name: str,
        pvalues: dict[str, Any],
        plan: _Plan,
        pending: list[tuple[int, int, str | None]],
    ) -> Iterator[Work]:
        """Step 5: the Work of each instance to run, in index order, made as it is taken."""
        if not pending:
            return iter(())
        shared = dict(pvalues)
        for arg_spec in self.graph.tasks[name].args:
            if arg_spec.kind == "run_dir":
                shared[arg_spec.name] = self.run_dir
        for arg, (_, getter) in plan.wholes.items():
            shared[arg] = getter()  # once: every element gets the same object
        pending.sort()
        feeds = list(plan.feeds.items())
        if self.graph.tasks[name].retries:  # an instance retried here needs its Work again
            self._tasks[name].remake = lambda i, a: next(_works(name, [(i, a)], shared, feeds))
        return _works(name, [(i, a) for i, a, _ in pending], shared, feeds)

    def _still_holds(self, old: InstanceRow, same: bool, retryable: bool) -> bool:
        """Whether a failed or unfinished earlier attempt stays as it is."""
        if old.state in (FAILED, CANCELLED):
            return same and not retryable
        # in flight: a dispatcher pass keeps it (its job is alive); an identity of None
        # means it was submitted ahead of its inputs and computes its identity itself
        return old.state not in _FINAL and self.keep_in_flight and (same or old.identity is None)

    def _verifying(self, name: str) -> bool:
        return verifying(self.graph.tasks[name], self.verify)

    def _stale_reason(self, name: str, text: str | None) -> str | None:
        return stale_reason(self.graph.tasks[name], text, self.verify)

    def _stale(self, name: str, indices: list[int]) -> dict[int, str]:
        """index -> why its own output no longer holds, for those that do not."""
        texts = self.store.output_texts_for(self.run_id, name, indices)
        stale = {i: self._stale_reason(name, texts.get(i)) for i in indices}
        return {i: why for i, why in stale.items() if why is not None}


_driving = 0  # how many fewer_collections() blocks are open (a run inside a task: 2)
_freezing = False  # whether the open blocks set objects aside (gc.freeze)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a big run is driven or dispatched.

    The engine keeps a few objects per instance alive for the whole run; with
    Python's default thresholds every full collection walks all of them again,
    which cost a fifth of a 100,000-instance run.  Cycles are still collected,
    after every 50,000 new objects instead of 700.  Inside this block the
    engine also sets aside what it keeps from each expansion (`_set_aside`);
    at its end those objects are handed back to the collector's oldest
    generation (unless the program had frozen objects itself: then nothing
    is set aside).
    """
    global _driving, _freezing
    before = gc.get_threshold()
    if before[0]:  # 0: the program turned collection off; leave it so
        gc.set_threshold(max(before[0], 50_000), *before[1:])
    if not _driving:
        # a program that froze objects itself (a preforking server) keeps them frozen
        _freezing = gc.get_freeze_count() == 0
    _driving += 1
    try:
        yield
    finally:
        _driving -= 1
        if not _driving and _freezing:
            gc.unfreeze()
        gc.set_threshold(*before)


@contextlib.contextmanager
def _set_aside() -> Iterator[None]:
    """Expand without collecting, then keep the collector off what the expansion made.

    An expansion allocates a few objects per instance (rows, identities) that
    live until the run ends and can form no cycle; at 100,000 instances the
    collector walked them again and again, finding nothing (0.1-0.15 s of a
    2 s cached rerun).  No task runs here: only the engine's own code and the
    `verify` callables of the tasks being expanded, if any.  Outside
    `fewer_collections` (nothing would hand them back) the objects are left as
    they are.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
            if _driving and _freezing:
                gc.freeze()
