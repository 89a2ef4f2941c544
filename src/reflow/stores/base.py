"""The store interface: what the engine, drivers, dispatcher and surfaces ask of a store.

Everything outside `reflow.stores` is typed against `Store`, never against a
concrete backend; `reflow.stores.open_store` is the one place that picks one.
A backend keeps runs (their records and task specs), task instances (every
attempt a row of its own, one of them current) and answers cache look-ups.

Guarantees every backend gives:

- Writes are atomic: each method that writes commits all of its rows or none,
  and joins the enclosing `transaction()` / `hold()` when one is open, so a
  process killed at any line leaves the store as it was before or after the
  whole batch.
- A SUCCESS instance always has its output (its own, or through the cache
  source it points at); a cache hit is never recorded without one.
- Only the process driving a run writes that run; other processes (status,
  cancel, a second driver of another run) may read and write concurrently and
  see every committed transaction, never part of one.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, NamedTuple, Protocol

from ..records import Record

__all__ = [
    "EXPORT_COLUMNS", "AttemptRow", "Health", "HistoryRow", "InstanceRow", "Moved", "NewInstance",
    "Reference", "RunExport", "Store",
]  # fmt: skip


#: an instance written after its task expanded: (run id, task, index, attempt, state,
#: identity, ingredients, output, output hash, error text, started, finished, failure
#: kind, resources JSON)
NewInstance = tuple[
    str, str, int, int, str, "str | None", "str | None", "str | None", "str | None",
    "str | None", "float | None", "float | None", "str | None", "str | None",
]  # fmt: skip


def without_password(url: str) -> str:
    """`url` with its password, if any, replaced by '***' (`user:pw@`, or `?password=pw`)."""
    url = re.sub(r"^([^:/]+://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&#]*", r"\1***", url) if "?" in url else url


class InstanceRow(NamedTuple):
    """The current attempt of one task instance, as the engine needs it."""

    array_index: int
    attempt: int
    state: str
    identity: str | None
    output_hash: str | None
    cached_from: int | None
    failure_kind: str | None = None
    resources: str | None = None  # JSON, as stored
    finished: float | None = None


class AttemptRow(NamedTuple):
    """One attempt of one task instance, current or not, with its times (for the report).

    `array_index` is -1 for a singleton (and for the placeholder row of an array
    task that never fanned out); times are seconds since the epoch, None when
    the attempt never reached that point (`submitted` is known for scheduler
    jobs only; a cache hit did not run).
    """

    task: str
    array_index: int
    attempt: int
    current: bool
    state: str
    cached: bool
    submitted: float | None
    started: float | None
    finished: float | None
    error_text: str | None
    failure_kind: str | None = None
    resources: dict[str, Any] | None = None


class HistoryRow(NamedTuple):
    """The current attempt of one task instance, as `why` reads it.

    `parts`: the ingredients of its identity (a cache hit's, its source's);
    `source_*`: where a cache hit's output came from (None otherwise);
    `previous`: the state of the attempt before this one (None for attempt 1).
    """

    array_index: int
    attempt: int
    state: str
    identity: str | None
    parts: str | None
    output_hash: str | None
    source_run: str | None
    source_task: str | None
    source_index: int | None
    error_text: str | None
    previous: str | None


#: a finished instance: (task, index, attempt, state, output, output hash, error text,
#: started, finished, failure kind: one of states.FAILURE_KINDS for a FAILED one, else None)
Finished = tuple[
    str, int, int, str, "str | None", "str | None", "str | None", "float | None",
    "float | None", "str | None",
]  # fmt: skip


class Health(Record):
    """What `Store.check_health` found, for `reflow doctor`.

    `schema_version`: the store's (0: not a reflow store at all);
    `supported_version`: the newest this reflow understands; `problems`: what
    is wrong with the store itself ("not a reflow store", integrity errors);
    `lost_outputs`: SUCCESS instances whose output is gone; `integrity`: the
    backend's own integrity check that passed, by name (None: it has none).
    """

    __slots__ = (
        "instances", "integrity", "lost_outputs", "problems", "runs", "schema_version",
        "supported_version",
    )  # fmt: skip

    def __init__(
        self,
        schema_version: int,
        supported_version: int,
        problems: list[str] | None = None,
        runs: int = 0,
        instances: int = 0,
        lost_outputs: int = 0,
    ) -> None:
        self.schema_version, self.supported_version = schema_version, supported_version
        self.problems: list[str] = [] if problems is None else problems
        self.runs, self.instances, self.lost_outputs = runs, instances, lost_outputs
        self.integrity: str | None = None


#: the columns of an exported instance row (`RunExport.instances`), in their order
EXPORT_COLUMNS = (
    "task_name", "array_index", "attempt", "current", "state", "identity", "parts", "output",
    "output_hash", "error_text", "job_id", "submitted_at", "started_at", "finished_at",
    "failure_kind", "resources",
)  # fmt: skip

#: where a cache hit's output lives: (run id, task, array index, attempt) of its source row
SourceKey = tuple[str, str, int, int]


class RunExport(NamedTuple):
    """Everything a store holds of one run, independent of the store's row ids.

    `run`: every column of its record as stored (times in Unix seconds);
    `tasks`: (name, position, is_array, spec, expected); `instances`: every
    attempt, the `EXPORT_COLUMNS` values of each, in the order they were
    written (a cache source before the hits that reuse it); `sources`: for
    each instance, the key of the row whose output it reuses (None for a row
    that owns its output or has none); `source_outputs`: the output text of
    each source in another run, by key (so that a copy can keep the output
    when that run is not in the destination); `reasons`: (task, index,
    attempt, reason).
    """

    run: dict[str, Any]
    tasks: list[tuple[str, int, bool, str, int | None]]
    instances: list[tuple[Any, ...]]
    sources: list[SourceKey | None]
    source_outputs: dict[SourceKey, str]
    reasons: list[tuple[str, int, int, str]]


class Reference(NamedTuple):
    """A row outside some runs that reuses the output of a row inside them (a cache hit).

    `source`: the (run id, task, index, attempt) whose output is reused;
    `hit`: the reusing row's; `output_bytes`: the size of the source's stored
    output text, in UTF-8 bytes.
    """

    source: SourceKey
    hit: SourceKey
    output_bytes: int


class Moved(NamedTuple):
    """An output `forget_runs` kept by moving it from a forgotten row into a kept one."""

    source: SourceKey
    into: SourceKey
    repointed: int  # other kept rows that now reuse it from `into`
    output_bytes: int


class Store(Protocol):
    """A manifest store of runs, task instances and cached outputs."""

    @property
    def location(self) -> str:
        """What `open_store` takes to open this same store from another process (no password)."""
        ...

    @property
    def last_commit_seconds(self) -> float:
        """How long the last commit of a `hold()` transaction took (0.0 before any)."""
        ...

    # -- transactions

    def transaction(self) -> AbstractContextManager[None]:
        """Make every write inside one transaction: committed at the end, or rolled back whole."""
        ...

    def hold(self) -> None:
        """Open a write transaction that later writes join until `release()` commits it.

        Safe to call from another thread than the one writing. Nothing if a
        transaction is already open.
        """
        ...

    def held_for(self) -> float | None:
        """Seconds since `hold()` opened the transaction still held, or None."""
        ...

    def release(self) -> None:
        """Commit the transaction `hold()` opened (nothing if none is held)."""
        ...

    def close(self) -> None:
        """Commit a held transaction and let go of the connection; the store reopens on use."""
        ...

    # -- runs

    def create_run(
        self,
        graph_name: str,
        *,
        run_dir: str,
        executor: str,
        params: str,
        options: str,
        tasks: Sequence[tuple[str, int, bool, str]],
        owner: tuple[str, int, str] | None = None,
    ) -> str:
        """Record a new RUNNING run with its task specs, in one transaction; return its id.

        The id is unique in the store (`<workflow>-<date>-<suffix>`).
        """
        ...

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's record as a dict; RunNotFoundError (one line naming the id) if none."""
        ...

    def task_specs(self, run_id: str) -> list[tuple[str, bool, dict[str, Any]]]:
        """The run's tasks in topological order: (name, is_array, spec dict)."""
        ...

    def set_run_status(self, run_id: str, status: str, *, release: bool = False) -> None:
        """Set the run's status (a final one records the finish time; `release` drops the owner)."""
        ...

    def claim_run(
        self, run_id: str, owner: tuple[str, int, str], *, alive: Callable[..., bool]
    ) -> None:
        """Make `owner` the process driving the run, atomically, unless a live one already is.

        `alive(host, pid, start) -> bool` says whether a recorded owner still
        runs; a live owner makes this raise StoreError and change nothing.
        """
        ...

    def set_dispatcher(self, run_id: str, job_id: str | None) -> None:
        """Record the job id of the run's chained dispatcher (None: none queued)."""
        ...

    def delete_run(self, run_id: str) -> None:
        """Remove a run and all its rows in one transaction."""
        ...

    def list_runs(
        self,
        graph_name: str | None = None,
        user_id: str | None = None,
        *,
        limit: int | None = None,
        since: str | dt.datetime | dt.date | None = None,
        until: str | dt.datetime | dt.date | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Runs, newest first, filtered by workflow, user, time window and status.

        Each a dict with at least `run_id`, `graph_name`, `status`, `created_at`,
        `finished_at`, `run_dir` and `executor`; a bad date is a StoreError.
        """
        ...

    # -- expanding and caching (the engine)

    def current_rows(self, run_id: str, task: str) -> list[InstanceRow]:
        """The current attempt of every written instance of `task`, by array index."""
        ...

    def expected_counts(self, run_id: str) -> dict[str, int]:
        """task -> how many instances its current expansion has (written or not)."""
        ...

    def max_attempts(self, run_id: str, task: str) -> dict[int, int]:
        """The highest attempt number recorded for each array index of `task`."""
        ...

    def lookup_cache(self, identities: Iterable[str]) -> dict[str, tuple[int, str]]:
        """For each identity with a successful instance anywhere: (source id, output hash).

        Any run's instances count; an identity whose source has no output is absent.
        """
        ...

    def write_expansion(
        self,
        run_id: str,
        task: str,
        *,
        supersede: Sequence[int],
        pending: Sequence[tuple[int, int, str | None, str | None]],
        hits: Sequence[tuple[int, int, str, int, str, str | None]],
        skipped: Sequence[tuple[int, int, str | None, str]],
        failed: Sequence[tuple[int, int, str | None, str]] = (),
        expected: int | None = None,
        interrupted: str = "interrupted before it finished; rerun by a later attempt",
        reasons: Sequence[tuple[int, int, str]] = (),
        resources: Mapping[int, str | None] | None = None,
        default_resources: str | None = None,
    ) -> list[int]:
        """Write one task's new instances in one transaction; return the indices of lost hits.

        A hit whose cache source lost its output meanwhile is written PENDING
        instead (its index is returned), never SUCCESS without an output.
        `reasons` (index, attempt, why) are kept, in the same transaction, for
        `reasons()`: why an instance runs although an output was cached.
        `resources`: index -> the JSON of what a PENDING row asks for, written
        in its row; `default_resources` for the PENDING rows it does not name.
        """
        ...

    def insert_instances(self, rows: Sequence[NewInstance]) -> None:
        """Write instances that `write_expansion(expected=...)` counted but did not write."""
        ...

    def mark_running(
        self, run_id: str, items: Sequence[tuple[str, int, int]], job_id: str | None = None
    ) -> None:
        """Mark (task, index, attempt) instances RUNNING, in one transaction."""
        ...

    def unmark_running(self, run_id: str, items: Sequence[tuple[str, int, int]]) -> None:
        """Put RUNNING instances that never started back to PENDING."""
        ...

    def record_outcomes(self, run_id: str, outcomes: Sequence[Finished]) -> None:
        """Record finished instances in one transaction; an instance already CANCELLED stays so.

        Each outcome: (task, index, attempt, state, output, output hash, error
        text, started, finished, failure kind); a FAILED one's kind is written
        by the same statement as its state, so no reader sees one without the other.
        """
        ...

    def retry_instances(
        self, run_id: str, rows: Sequence[tuple[str, int, int, str | None, str]]
    ) -> int:
        """Give FAILED instances their next attempt, in one transaction; return how many.

        Each row: (task, index, the new attempt's number, its resources JSON,
        why it is tried again).  The failed attempt's row stays as it was (its
        state, error, failure kind, resources and times) but is no longer
        current; the new attempt's row is current and PENDING, with the failed
        one's identity and ingredients, and `reasons()` gives it `why`.  An
        instance whose current attempt is not FAILED or not numbered one below
        the new attempt is left alone (another writer got there first).
        """
        ...

    # -- the cluster dispatcher

    def mark_submitted(self, run_id: str, items: Sequence[tuple[str, int, int, str]]) -> None:
        """Record (task, index, attempt, job id) instances as SUBMITTED, in one transaction."""
        ...

    def write_deferred(self, run_id: str, task: str, rows: Sequence[tuple[int, int, str]]) -> None:
        """Record (index, attempt, job id) instances submitted ahead of their inputs."""
        ...

    def in_flight(self, run_id: str) -> list[tuple[str, int, int, str, str | None, float | None]]:
        """Current instances handed to jobs: (task, index, attempt, state, job id, submitted)."""
        ...

    def mark_job_running(self, run_id: str, items: Sequence[tuple[str, int, int]]) -> None:
        """SUBMITTED instances whose jobs the scheduler reports running become RUNNING."""
        ...

    def record_resolved(
        self,
        run_id: str,
        rows: Sequence[tuple[str, int, int, str, str | None, int | None, float, float]],
        parts: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Fill in instances whose job resolved its own inputs, in one transaction.

        A cache hit takes its source's output hash in the same statement, and
        only while the source still has its output.
        """
        ...

    def instance_output(
        self, run_id: str, task: str, index: int, attempt: int
    ) -> tuple[str, str | None, str | None, str | None] | None:
        """(state, output text, output hash, error text) of one attempt, or None."""
        ...

    def source_output(self, source: int) -> str | None:
        """The stored output text of the instance row `source` (a cache source id)."""
        ...

    # -- outputs

    def output_texts_for(
        self, run_id: str, task: str, indices: Sequence[int]
    ) -> dict[int, str | None]:
        """Stored output texts of some current SUCCESS instances of `task`, by index."""
        ...

    def cached_output_texts(self, sources: Sequence[int]) -> dict[int, str | None]:
        """Stored output texts of cache source instances, by source id."""
        ...

    def get_singleton_output(self, run_id: str, task: str) -> Any:
        """The decoded output of singleton task `task`; StoreError saying why there is none."""
        ...

    def get_array_outputs(self, run_id: str, task: str) -> list[Any]:
        """The decoded outputs of array task `task`, in index order; StoreError if not all ran."""
        ...

    # -- status

    def cancel_instances(self, run_id: str, task: str | None, reason: str) -> int:
        """Mark the run's unfinished instances (of `task`, or all) CANCELLED; return how many."""
        ...

    def summary(self, run_id: str) -> dict[str, dict[str, int]]:
        """task -> state -> count over the current attempts (unwritten ones as PENDING)."""
        ...

    def status_counts(self, run_id: str) -> dict[str, dict[str, tuple[int, int]]]:
        """task -> state -> (instances, of which reused from the cache), by one query."""
        ...

    def cached_counts(self, run_id: str) -> dict[str, int]:
        """task -> number of current instances reused from the cache."""
        ...

    def instances(
        self, run_id: str, *, task: str | None = None, states: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The current attempt of the run's written instances as dicts, in the order written.

        Each with task_name, array_index (None for a singleton), attempt, state,
        job_id, cached, error_text, identity, output_hash, started_at,
        finished_at, updated_at (its last change), failure_kind (of a failed
        attempt; None when unknown), resources (what the attempt asked for: a
        dict with keys among mem, time, cpus; None when unknown) and output
        (decoded; None without one, or with `output_omitted` True above
        `OUTPUT_SHOWN_MAX`).
        """
        ...

    def list_task_instances(
        self,
        run_id: str,
        task_name: str | None = None,
        states: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """reflow-hpc's name for `instances` (states as names or TaskState members)."""
        ...

    def count_task_instances(self, run_id: str, task_name: str) -> int:
        """How many instances of `task_name` the run has written.

        An array task that never fanned out (its upstream failed) counts 0,
        though a placeholder row says why it was skipped.
        """
        ...

    def task_state_summary(self, run_id: str) -> dict[str, dict[str, int]]:
        """reflow-hpc's name for `summary`: task -> state -> count."""
        ...

    def iter_instances(
        self,
        run_id: str,
        *,
        task: str | None = None,
        states: Sequence[str] | None = None,
        chunk: int = 4096,
    ) -> Iterator[list[dict[str, Any]]]:
        """`instances(...)` a few thousand at a time; no read stays open between chunks."""
        ...

    # -- why (explaining reruns)

    def history_rows(
        self, run_id: str, task: str, indices: Sequence[int] | None = None
    ) -> list[HistoryRow]:
        """The current attempt of every written instance of `task` (or of those at `indices`),
        by array index, in one query (a few for many indices).

        With the ingredients of its identity (a cache hit's from its source),
        where a cache hit's output came from and the state of the attempt before.
        """
        ...

    def reasons(self, run_id: str, task: str) -> dict[tuple[int, int], str]:
        """(index, attempt) -> the reason `write_expansion(reasons=...)` kept for it."""
        ...

    def earlier_runs(
        self, graph_name: str, task: str, before: str | None = None, limit: int = 20
    ) -> list[str]:
        """Run ids of the workflow that have instances of `task`, newest first.

        Only runs created before the run `before`, when given; at most `limit`.
        """
        ...

    def source_rows(self, sources: Sequence[int]) -> dict[int, tuple[str, str, int]]:
        """(run id, task, array index) of instance rows (cache sources), by row id."""
        ...

    def recent_durations(self, graph_name: str, task: str, limit: int = 200) -> list[float]:
        """Seconds each of the task's latest instances ran (ran and succeeded, not cache hits).

        From the workflow's most recent runs; at most `limit`, newest first.
        """
        ...

    # -- logs and times (`logs`, `status`)

    def instance_attempts(self, run_id: str, task: str, index: int) -> list[AttemptRow]:
        """Every attempt of one instance (index -1: a singleton), by attempt number.

        As `run_attempts` reads them for the whole run; an empty list when the
        instance has not been written yet.  One look-up in the unique key's index.
        """
        ...

    def task_times(self, run_id: str) -> dict[str, tuple[float, float | None]]:
        """task -> (first start, last end) over every attempt of it that ran, in Unix seconds.

        Cache hits did not run and are left out; a task none of whose instances
        started is absent; the end is None while no attempt has finished.
        One aggregate query.
        """
        ...

    def run_attempts(self, run_id: str) -> list[AttemptRow]:
        """Every attempt of every written instance of the run, current or superseded.

        Ordered by task name, then index, then attempt; read in one query (a
        consistent snapshot), so it stays quick at 100,000 instances. Instances
        not written yet (a local run's unstarted ones) are absent: `status_counts`
        counts them.
        """
        ...

    # -- health (reflow doctor)

    def check_health(self) -> Health:
        """Inspect the store, changing nothing: schema version, integrity, counts, lost outputs.

        A store opened read-only (`open_store(..., read_only=True)`) can be
        checked before anything would migrate it.
        """
        ...

    def instance_states(
        self, run_id: str, keys: Sequence[tuple[str, int, int]]
    ) -> dict[tuple[str, int, int], str]:
        """The state of each (task, index, attempt) of the run that has a row."""
        ...

    # -- maintenance (`gc`, `runs --delete`, `store copy`)

    def export_run(self, run_id: str) -> RunExport:
        """Everything of the run (record, tasks, every attempt, reasons), read in one snapshot.

        RunNotFoundError if there is no such run.  The export names cache
        sources by their key, never by this store's row ids.
        """
        ...

    def import_run(self, exported: RunExport) -> int:
        """Write an exported run, all of it or nothing, in one transaction.

        Returns how many cache hits were written owning their output (below).
        A StoreError if a run with its id exists already (nothing is written).
        Each cache hit points at its source's row here: the row with the
        source's key, else a successful row of the same identity and output
        hash that owns its output; if neither is here, the hit is written
        owning the source's output (from `source_outputs`), so that no SUCCESS
        row is ever without its output.
        """
        ...

    def references_into(self, run_ids: Sequence[str]) -> list[Reference]:
        """Rows of other runs that reuse the output of a row of `run_ids`, by source then hit."""
        ...

    def outputs_naming(self, fragments: Sequence[str], excluding: Sequence[str]) -> list[str]:
        """The stored output texts, of rows outside the runs `excluding`, containing any of
        `fragments` (plain substrings; a backend may also return a few texts that do not)."""
        ...

    def forget_runs(self, run_ids: Sequence[str]) -> list[Moved]:
        """Remove the runs and all their rows (instances, tasks, reasons) in one transaction.

        Never an output another run reuses: for each forgotten row that rows of
        other runs reuse, the first of those (by row id) receives its output
        and its identity's ingredients and becomes the cache source of that
        identity; the others are pointed at it.  So every kept row reads the
        same output as before and the cache keeps serving the identity.
        Returns what was moved.  Unknown ids are ignored.
        """
        ...
