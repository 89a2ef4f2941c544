"""Why an instance ran instead of being reused: the reasons `why` and a dry run give.

An instance is compared with its closest earlier instance: the same task of
the same workflow in an earlier run (the most recent first), with the same
item (the same per-element input hash, so a fan-out whose list gained an
item still finds each element's earlier self), else at the same index.  What
differs between the ingredients of the two identities (version, one hash per
parameter and per input) is named, with the old and new values where the
store has them.  A few reasons are not differences: a cache hit, a forced
task, `cache=False`, a cached output that failed its check (the engine kept
why when it decided), a retried attempt.

The facts come from the store (`Store.history_rows`, `reasons`, the runs'
parameters and options, the tasks' specs), a few queries per task, never one
per instance; `Run.why` reads a recorded run, a dry run (runner.dry_run)
feeds the engine's own decisions in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, Protocol

from . import codec
from .errors import error_line

if TYPE_CHECKING:
    from .stores import Store

__all__ = [
    "Cause", "Instance", "Outputs", "RunFacts", "StoredOutputs", "explain_task", "grouped",
    "instance_line", "prediction_lines", "short", "task_lines", "why_lines",
]  # fmt: skip

_BAD = frozenset({"FAILED", "CANCELLED", "SKIPPED"})
_SHORT = 40  # characters a value is shown in, at most
_EXAMPLES = 2  # instances a grouped line shows as examples
_EARLIER_RUNS = 20  # earlier runs searched for an instance's earlier self
# past the most recent earlier run, only the rows at the indices still unmatched are read
# when they are this few (an item that is new everywhere must not read 20 whole runs)
_FEW_LEFT = 1000


def short(value: Any) -> str:
    """A value as a reason shows it: repr-like, at most 40 characters (an ellipsis when cut)."""
    text = repr(str(value)) if isinstance(value, PurePath) else repr(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _hash(h: str | None) -> str:
    return "(none)" if h is None else f"#{h[:10]}"


class Cause:
    """One reason an instance ran (or was reused).

    `key`: the text instances that share the reason are grouped by;
    `more()`: (the full text for this instance, a short example), read only
    for the instances a line shows (their values may cost a query).
    """

    __slots__ = ("key", "more")

    def __init__(self, key: str, more: Callable[[], tuple[str, str]] | None = None) -> None:
        self.key, self.more = key, more

    def full(self) -> str:
        return self.key if self.more is None else self.more()[0]


class Instance:
    """One instance to explain: what the run did (or a dry run would do) with it.

    `parts`: the ingredients of its identity (JSON); `source`: (run, task,
    index) of a cache hit's output; `note`: why a cached output failed its
    check; `previous`: the state of the attempt before this one; `retry`: what
    changed from that attempt when it failed (see `retry_change`).
    """

    __slots__ = (
        "attempt", "error", "index", "note", "parts", "previous", "retry", "source", "state",
    )  # fmt: skip

    def __init__(
        self,
        index: int,
        state: str,
        parts: str | None,
        *,
        attempt: int = 1,
        source: tuple[str, str, int] | None = None,
        note: str | None = None,
        previous: str | None = None,
        error: str | None = None,
        retry: str | None = None,
    ) -> None:
        self.index, self.state, self.parts, self.attempt = index, state, parts, attempt
        self.source, self.note, self.previous, self.error = source, note, previous, error
        self.retry = retry


def retry_change(attempt: int, kind: str | None, before: str | None, now: str | None) -> str | None:
    """`after OOM (attempt 2, mem 120M -> 240M)`: why attempt `attempt` followed a failed one.

    `kind`: the failed attempt's failure kind; `before`, `now`: what it and
    this attempt asked for (JSON as stored).  None when the kind is not
    recorded (an attempt from before kinds were kept).
    """
    if kind is None:
        return None

    def asked(text: str | None) -> dict[str, Any]:
        try:
            doc = json.loads(text) if text else {}
        except ValueError:
            doc = {}
        return doc if isinstance(doc, dict) else {}

    old, new = asked(before), asked(now)
    changed = [
        f"{key} {old.get(key, '-')} -> {new.get(key, '-')}"
        for key in ("mem", "time", "cpus", *sorted((set(old) | set(new)) - {"mem", "time", "cpus"}))
        if old.get(key) != new.get(key)
    ]
    return f"after {kind} (" + ", ".join([f"attempt {attempt}", *changed]) + ")"


class Outputs(Protocol):
    """One run's upstream outputs, as an explanation reads them."""

    def hashes(self, task: str) -> dict[int, str | None]:
        """index -> output hash of the task's current instances."""
        ...

    def texts(self, task: str, indices: Sequence[int]) -> dict[int, str | None]:
        """index -> stored output text of some of the task's instances."""
        ...


class StoredOutputs:
    """`Outputs` of a run recorded in the store (each task's hashes read once)."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self._hashes: dict[str, dict[int, str | None]] = {}

    def hashes(self, task: str) -> dict[int, str | None]:
        if task not in self._hashes:
            rows = self.store.current_rows(self.run_id, task)
            self._hashes[task] = {r.array_index: r.output_hash for r in rows}
        return self._hashes[task]

    def texts(self, task: str, indices: Sequence[int]) -> dict[int, str | None]:
        return self.store.output_texts_for(self.run_id, task, list(indices))


def _value(out: Outputs, task: str, index: int, item: int | None = None) -> str:
    """An upstream output (or item `item` of it, a list) shortened, or '?' when unreadable."""
    text = out.texts(task, [index]).get(index)
    if text is None:
        return "?"
    try:
        value: Any = codec.loads(text)
        if item is not None:
            value = list(value)[item]
    except Exception:  # an output that is not a list, or cannot be read: say so
        return "?"
    return short(value)


#: an earlier instance: (index, its shared ingredients, its item, state)
_Entry = tuple[int, dict[str, Any], tuple[str, ...], str]


class _Splitter:
    """Splits ingredient texts into what a task's elements share and their own item.

    The elements of a run differ only in the hashes of their per-element
    inputs: those are cut out of the text (found by their names, inside the
    inputs map), and the rest is parsed once per distinct text, not once per
    element.  Elements that share their other ingredients share one dict.
    """

    def __init__(self, items: Sequence[str]) -> None:
        self.markers = [f'"{arg}":"' for arg in items]
        self._parsed: dict[str, dict[str, Any]] = {}

    def __call__(self, text: str) -> tuple[dict[str, Any], tuple[str, ...]]:
        hashes: list[str] = []
        if self.markers:
            start = text.find('"inputs":{')
            end = text.find("}", start)  # the map holds names and hex digests: no braces
            for marker in self.markers:
                i = text.find(marker, start, end)
                if i < 0:
                    hashes.append("")
                    continue
                i += len(marker)
                j = text.index('"', i)
                hashes.append(text[i:j])
                text = text[:i] + text[j:]
                end -= j - i
        shared = self._parsed.get(text)
        if shared is None:
            shared = self._parsed[text] = json.loads(text)
        return shared, tuple(hashes)


class _Earlier:
    """The instances of one earlier run of the task, by item and by index."""

    def __init__(self, store: Store, run_id: str) -> None:
        self.run_id = run_id
        self.outputs = StoredOutputs(store, run_id)
        self.by_item: dict[tuple[str, ...], _Entry] = {}
        self.by_index: dict[int, _Entry] = {}
        self._store = store
        self._params: dict[str, Any] | None = None

    def load(self, task: str, split: _Splitter, indices: Sequence[int] | None = None) -> _Earlier:
        for row in self._store.history_rows(self.run_id, task, indices):
            if row.parts is None:
                continue  # never computed (skipped): no earlier self
            shared, items = split(row.parts)
            entry = (row.array_index, shared, items, row.state)
            self.by_index.setdefault(row.array_index, entry)
            if items:
                self.by_item.setdefault(items, entry)
        return self

    def params(self) -> dict[str, Any]:
        if self._params is None:
            found = self._store.get_run(self.run_id)["params"]
            self._params = found if isinstance(found, dict) else {}
        return self._params


class RunFacts:
    """What explaining a run's instances needs to know of the run (recorded or a dry run's).

    `arrays`: task -> whether it is an array task; `outputs`, `params` and
    `options`: the run's; `before`: the run itself, so that only older runs
    count as earlier (None: every run in the store).
    """

    __slots__ = ("arrays", "before", "graph_name", "options", "outputs", "params", "store")

    def __init__(
        self,
        store: Store,
        graph_name: str,
        *,
        arrays: Mapping[str, bool],
        outputs: Outputs,
        params: Mapping[str, Any],
        options: Mapping[str, Any],
        before: str | None,
    ) -> None:
        self.store, self.graph_name, self.arrays, self.outputs = store, graph_name, arrays, outputs
        self.params, self.options, self.before = params, options, before


class _Context:
    """What explaining one task's instances needs to know, gathered once."""

    def __init__(self, facts: RunFacts, task: str, spec: Mapping[str, Any]) -> None:
        self.store, self.graph_name, self.task, self.spec = (
            facts.store, facts.graph_name, task, spec,
        )  # fmt: skip
        self.arrays, self.outputs, self.params = facts.arrays, facts.outputs, facts.params
        self.inputs: dict[str, Mapping[str, Any]] = {i["arg"]: i for i in spec.get("inputs", [])}
        self.keys: dict[str, str] = dict(spec.get("params", {}))
        # the arguments that differ from element to element: an element's "item"
        self.items = sorted(a for a, i in self.inputs.items() if i["mode"] in ("fanout", "chain"))
        self.split = _Splitter(self.items)
        self._memo: dict[tuple[Any, ...], Cause] = {}
        self._shared: dict[tuple[int, int, str], list[Cause]] = {}

    def memo(self, key: tuple[Any, ...], make: Callable[[], Cause]) -> Cause:
        """The one Cause of `key` (instances that share a reason share its object)."""
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = make()
        return found

    def shared_causes(
        self, new: dict[str, Any], old: dict[str, Any], earlier: _Earlier
    ) -> list[Cause]:
        """What differs in the ingredients elements share (once per pair of texts)."""
        key = (id(new), id(old), earlier.run_id)
        found = self._shared.get(key)
        if found is None:
            found = self._shared[key] = _shared_differences(self, new, old, earlier)
        return found


def explain_task(
    facts: RunFacts, task: str, spec: Mapping[str, Any], instances: Sequence[Instance]
) -> list[tuple[int, list[Cause]]]:
    """The causes of each instance of one task: (index, causes), in the order given.

    `spec` is the task's spec as the store keeps it (`Store.task_specs`).
    """
    ctx = _Context(facts, task, spec)
    out: list[tuple[int, list[Cause]]] = []
    to_diff: list[tuple[int, Instance]] = []
    before = facts.before
    forced = _forced(task, facts.options)
    for inst in instances:
        found = _outright(ctx, inst, forced)
        out.append((inst.index, found))
        if not found:
            to_diff.append((len(out) - 1, inst))
    if to_diff:
        for k, causes in _diffed(ctx, [inst for _, inst in to_diff], before):
            out[to_diff[k][0]] = (out[to_diff[k][0]][0], causes)
    return out


def _forced(task: str, options: Mapping[str, Any]) -> str | None:
    if options.get("force"):
        return "forced (--force)"
    if task in (options.get("force_tasks") or ()):
        return f"forced (--force-tasks {task})"
    return None


def _outright(ctx: _Context, inst: Instance, forced: str | None) -> list[Cause]:
    """The causes that need no earlier instance (empty: compare with one)."""
    if inst.source is not None:
        run, task, index = inst.source
        key = f"cached from run {run}"
        if (task, index) == (ctx.task, inst.index):
            return [ctx.memo(("cached", run), lambda: Cause(key))]
        label = _label(task, index)
        return [Cause(key, lambda: (f"{key} ({label})", f"from {label}"))]
    if inst.parts is None and inst.state in _BAD:  # decided without an identity
        why = error_line(inst.error) if inst.error else "no reason recorded"
        key = f"{inst.state.lower()}: {why}"
        return [ctx.memo(("bad", key), lambda: Cause(key))]
    if inst.attempt > 1 and inst.previous in _BAD:
        if inst.previous == "FAILED" and inst.retry is not None:
            key = f"retried {inst.retry}"
        else:
            before = f"attempt {inst.attempt - 1} {inst.previous}"
            key = f"retried: attempt {inst.attempt} after {before}"
        return [ctx.memo(("retry", key), lambda: Cause(key))]
    if forced is not None:
        return [ctx.memo(("forced",), lambda: Cause(forced))]
    if not ctx.spec.get("cache", True):
        return [ctx.memo(("nocache",), lambda: Cause("cache=False"))]
    if inst.note is not None:
        note = inst.note
        return [Cause("verify failed", lambda: (f"verify failed: {note}", short_text(note)))]
    if inst.parts is None and inst.state in ("PENDING", "SUBMITTED", "RUNNING"):
        key = "submitted ahead of its inputs: its job decides when they are there"
        return [ctx.memo(("ahead",), lambda: Cause(key))]
    if inst.parts is None:
        return [
            ctx.memo(("unknown",), lambda: Cause("what its identity was made of is not recorded"))
        ]
    return []


def short_text(text: str, limit: int = 60) -> str:
    """A message cut to `limit` characters (an ellipsis when cut)."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def _diffed(
    ctx: _Context, instances: Sequence[Instance], before: str | None
) -> Iterable[tuple[int, list[Cause]]]:
    """Compare each instance with its closest earlier self; yield (position, causes)."""
    parsed = [ctx.split(inst.parts or "{}") for inst in instances]
    left = list(range(len(instances)))
    for n, run_id in enumerate(
        ctx.store.earlier_runs(ctx.graph_name, ctx.task, before, _EARLIER_RUNS)
    ):
        if not left:
            break
        few = n > 0 and len(left) <= _FEW_LEFT
        indices = [instances[k].index for k in left] if few else None
        earlier = _Earlier(ctx.store, run_id).load(ctx.task, ctx.split, indices)
        still: list[int] = []
        for k in left:
            shared, items = parsed[k]
            match = earlier.by_item.get(items) if items else None
            if match is None:
                match = earlier.by_index.get(instances[k].index)
            if match is None:
                still.append(k)
                continue
            yield k, _differences(ctx, instances[k].index, shared, items, match, earlier)
        left = still
    if left:
        key = "no earlier instance"
        full = f"no earlier instance of '{ctx.task}' in workflow '{ctx.graph_name}'"
        cause = Cause(key, lambda: (full, ""))
        for k in left:
            yield k, [cause]


def _differences(
    ctx: _Context,
    index: int,
    new: dict[str, Any],
    items: tuple[str, ...],
    match: _Entry,
    earlier: _Earlier,
) -> list[Cause]:
    """What differs between an instance's ingredients and its earlier self's."""
    old_index, old, old_items, old_state = match
    causes = ctx.shared_causes(new, old, earlier)
    if items != old_items:
        causes = list(causes)
        for arg, h_new, h_old in zip(ctx.items, items, old_items, strict=True):
            if h_new != h_old:
                causes.append(
                    _input_cause(ctx, arg, index, old_index, {arg: h_old}, {arg: h_new}, earlier)
                )
    if causes:
        return causes
    run_id = earlier.run_id
    if old_state != "SUCCESS":
        key = f"the same inputs as run {run_id}, where it was {old_state}"
        return [ctx.memo(("same", key), lambda: Cause(key))]
    key = f"the same inputs as run {run_id}, whose output was not reused (gone)"
    return [ctx.memo(("gone", run_id), lambda: Cause(key))]


def _shared_differences(
    ctx: _Context, new: dict[str, Any], old: dict[str, Any], earlier: _Earlier
) -> list[Cause]:
    """What differs in the version, the parameters and the whole (not per-element) inputs."""
    if new is old:
        return []
    causes: list[Cause] = []
    if new.get("version") != old.get("version"):
        causes.append(Cause(f"version {old.get('version')} -> {new.get('version')}"))
    new_p, old_p = new.get("params", {}), old.get("params", {})
    for arg in sorted(set(new_p) | set(old_p)):
        if new_p.get(arg) != old_p.get(arg):
            causes.append(_param_cause(ctx, arg, old_p, new_p, earlier))
    new_i, old_i = new.get("inputs", {}), old.get("inputs", {})
    for arg in sorted((set(new_i) | set(old_i)) - set(ctx.items)):
        if new_i.get(arg) != old_i.get(arg):
            causes.append(_input_cause(ctx, arg, -1, -1, old_i, new_i, earlier))
    if not causes:  # the same arguments, another identity scheme (workflow or task renamed)
        causes.append(Cause("its identity is computed differently"))
    return causes


def _param_cause(
    ctx: _Context,
    arg: str,
    old: Mapping[str, str],
    new: Mapping[str, str],
    earlier: _Earlier,
) -> Cause:
    name = ctx.keys.get(arg, arg)
    if arg not in old:
        return Cause(f"new parameter {name} = {_param_value(ctx.params, name, new.get(arg))}")
    if arg not in new:
        return Cause(f"parameter {name} removed")
    old_text = _param_value(earlier.params(), name, old[arg])
    new_text = _param_value(ctx.params, name, new[arg])
    return Cause(f"{name}: {old_text} -> {new_text}")


def _param_value(values: Mapping[str, Any], name: str, h: str | None) -> str:
    """A run's value of a parameter, shortened; its hash when the run has no such value."""
    if name in values:
        value = values[name]
        try:
            if h is None or codec.hash_value(value) == h:
                return short(value)
        except Exception:  # a value that no longer encodes: the hash says enough
            pass
    return _hash(h)


def _input_cause(
    ctx: _Context,
    arg: str,
    index: int,
    old_index: int,
    old: Mapping[str, str],
    new: Mapping[str, str],
    earlier: _Earlier,
) -> Cause:
    inp = ctx.inputs.get(arg)
    steps: list[str] = list(inp["steps"]) if inp else []
    named = ", ".join(f"'{s}'" for s in steps) or f"argument {arg}"
    key = f"upstream {named} output changed"
    if inp is None or len(steps) != 1:  # concatenated sources: their hashes only
        h_old, h_new = old.get(arg), new.get(arg)
        return ctx.memo(
            ("input", arg, h_old, h_new),
            lambda: Cause(key, lambda: (f"{key}: {_hash(h_old)} -> {_hash(h_new)}", "")),
        )
    step, mode = steps[0], inp["mode"]
    now, then = ctx.outputs, earlier.outputs
    if mode in ("fanout", "chain"):
        is_item = not ctx.arrays.get(step, False)  # an item of a singleton's list

        def item() -> tuple[str, str]:
            if is_item:
                a, b = _value(then, step, -1, old_index), _value(now, step, -1, index)
            else:
                a, b = _value(then, step, old_index), _value(now, step, index)
            label = _label(step, index)
            return f"upstream {label} output changed: {a} -> {b}", f"{label}: {a} -> {b}"

        return Cause(key, item)
    h_old, h_new = old.get(arg), new.get(arg)
    if not ctx.arrays.get(step, False):

        def whole() -> tuple[str, str]:
            a, b = _value(then, step, -1), _value(now, step, -1)
            return f"{key}: {a} -> {b}", f"{a} -> {b}"

        return ctx.memo(("input", arg, h_old, h_new), lambda: Cause(key, whole))

    def elements() -> tuple[str, str]:
        differ = _elements_differ(then.hashes(step), now.hashes(step))
        return f"{key}: {differ}", differ

    return ctx.memo(("input", arg, h_old, h_new), lambda: Cause(key, elements))


def _elements_differ(old: Mapping[int, str | None], new: Mapping[int, str | None]) -> str:
    """Which elements of a gathered array task differ between two runs, counted when many."""
    differ = sorted(i for i in set(old) | set(new) if old.get(i) != new.get(i))
    size = "" if len(old) == len(new) else f"{len(old):,} -> {len(new):,} elements, "
    if len(differ) == 1:
        return f"{size}element [{differ[0]}] differs"
    if len(differ) <= 3:
        return f"{size}elements " + ", ".join(f"[{i}]" for i in differ) + " differ"
    return f"{size}{len(differ):,} of {max(len(old), len(new)):,} elements differ"


# ---------------------------------------------------------------------- lines


def grouped(
    task: str, is_array: bool, explained: Sequence[tuple[int, list[Cause]]]
) -> list[tuple[str, int, list[str]]]:
    """Instances that share their causes, most common first: (key, count, examples).

    Examples (at most two, those with details) read like "[3] 'extract'[3]: 'a' -> 'b'".
    """
    groups: dict[str, list[tuple[int, list[Cause]]]] = {}
    for index, causes in explained:
        key = causes[0].key if len(causes) == 1 else "; ".join(c.key for c in causes)
        groups.setdefault(key, []).append((index, causes))
    out: list[tuple[str, int, list[str]]] = []
    for key, members in sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        examples: list[str] = []
        for index, causes in members:
            if len(examples) >= _EXAMPLES:
                break
            shown = [ex for c in causes if c.more is not None for ex in [c.more()[1]] if ex]
            if shown:
                prefix = f"[{index}] " if is_array and index >= 0 else ""
                examples.append(prefix + ", ".join(shown))
        out.append((key, len(members), examples))
    return out


def task_lines(
    task: str, is_array: bool, explained: Sequence[tuple[int, list[Cause]]]
) -> list[str]:
    """`why`'s lines for one task: one per group of instances sharing their reasons."""
    if not is_array:
        return [f"{task}: " + "; ".join(c.full() for c in causes) for _, causes in explained]
    total = len(explained)
    lines = []
    for key, count, examples in grouped(task, is_array, explained):
        line = f"{task}: {count:,} of {total:,} element{'s' if total != 1 else ''}: {key}"
        if examples:
            line += " (e.g. " + "; ".join(examples) + ")"
        lines.append(line)
    return lines


def instance_line(task: str, index: int, causes: Sequence[Cause]) -> str:
    """`why`'s line for one instance, every reason in full."""
    label = task if index < 0 else f"{task}[{index}]"
    return f"{label}: " + "; ".join(c.full() for c in causes)


def why_lines(
    store: Store, run_id: str, task: str | None = None, index: int | None = None
) -> list[str]:
    """Why each instance of a recorded run ran or was reused: grouped per task, or one
    line for instance `task`[`index`] (the caller checks that they exist)."""
    info = store.get_run(run_id)
    specs = store.task_specs(run_id)
    facts = RunFacts(
        store, info["graph_name"], arrays={name: is_array for name, is_array, _ in specs},
        outputs=StoredOutputs(store, run_id),
        params=info["params"] if isinstance(info["params"], dict) else {},
        options=info["options"] if isinstance(info["options"], dict) else {}, before=run_id,
    )  # fmt: skip
    lines: list[str] = []
    for name, is_array, spec in specs:
        if task is not None and name != task:
            continue
        rows = store.history_rows(run_id, name)
        if index is not None:
            rows = [r for r in rows if r.array_index == index]
        if not rows:
            lines.append(f"{name}: no instances (the run did not get to it, or its list was empty)")
            continue
        notes = store.reasons(run_id, name)
        instances = [
            Instance(
                r.array_index, r.state, r.parts, attempt=r.attempt,
                source=None if r.source_run is None else (
                    r.source_run, r.source_task or name, r.array_index
                    if r.source_index is None else r.source_index
                ),
                note=notes.get((r.array_index, r.attempt)), previous=r.previous,
                error=r.error_text, retry=retry_change(
                    r.attempt, r.previous_kind, r.previous_resources, r.resources
                ),
            )
            for r in rows
        ]  # fmt: skip
        explained = explain_task(facts, name, spec, instances)
        if index is not None:
            lines.extend(instance_line(name, i, causes) for i, causes in explained)
        else:
            fanned = is_array and any(r.array_index >= 0 for r in rows)
            lines.extend(task_lines(name, fanned, explained))
    return lines


def prediction_lines(prediction: Mapping[str, Any]) -> list[str]:
    """A dry run's prediction (`Workflow.dry_run`'s dict) as the lines `run --dry-run` prints."""
    lines = ["dry run: nothing was run, recorded or submitted"]
    for name, doc in prediction["tasks"].items():
        if doc["unknown"]:
            head = f"{name}: unknown"
            if doc["run"] or doc["cached"]:
                head += f" (certain: {doc['run']:,} to run, {doc['cached']:,} cached)"
        else:
            head = f"{name}: {doc['run']:,} to run, {doc['cached']:,} cached"
        lines.append(head)
        for reason, count in doc["reasons"].items():
            lines.append(f"  {count:,}: {reason}" if count else f"  {reason}")
    return lines
