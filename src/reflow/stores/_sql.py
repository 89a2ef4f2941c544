"""What the SQL stores share: the schema, and every query both backends run.

`SqlStore` holds the queries, written once in the SQL that SQLite and
PostgreSQL both speak, and the transaction logic (nested writes join the
outermost; `hold()` / `release()`).  A backend (`sqlite.SqliteStore`,
`postgres.PostgresStore`) gives the connection, how a transaction begins, how a
busy database is waited for, what its errors mean, and its schema checks; a
`Dialect` says the little that the shared SQL words differently.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import re
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from .. import codec
from ..errors import RunNotFoundError, StoreError
from .base import (
    AttemptRow,
    Finished,
    Health,
    HistoryRow,
    InstanceRow,
    Moved,
    NewInstance,
    Reference,
    RunExport,
    SourceKey,
)

SCHEMA_VERSION = 5

_S = TypeVar("_S", bound="SqlStore")


def run_script(conn: Any, script: str) -> None:
    """Run each statement of `script` (the schema, a migration) on `conn`, in order."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


# why an instance ran instead of being reused, where only the engine knew it (schema 4)
_REASONS = """
CREATE TABLE reasons (
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name   TEXT NOT NULL,
    array_index INTEGER NOT NULL,
    attempt     INTEGER NOT NULL,
    reason      TEXT NOT NULL,
    PRIMARY KEY (run_id, task_name, array_index, attempt)
) WITHOUT ROWID;
"""

# what failed and what it asked for, per attempt (schema 5): the failure kind of a
# FAILED attempt (one of states.FAILURE_KINDS; NULL: not known, read as ERROR) and
# the resources that attempt asked for (JSON: keys among "mem", "time", "cpus"; NULL:
# not known, or the task asked for none)
_ATTEMPT_FACTS = """
ALTER TABLE instances ADD COLUMN failure_kind TEXT;
ALTER TABLE instances ADD COLUMN resources TEXT;
"""

_SCHEMA = (
    """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    graph_name  TEXT NOT NULL,
    user        TEXT NOT NULL,
    host        TEXT NOT NULL,
    run_dir     TEXT NOT NULL,
    executor    TEXT NOT NULL,
    params      TEXT NOT NULL,
    options     TEXT NOT NULL,
    status      TEXT NOT NULL,
    owner_host  TEXT,
    owner_pid   INTEGER,
    owner_start TEXT,
    dispatcher  TEXT,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    finished_at REAL
);
CREATE INDEX runs_by_created ON runs (created_at);
CREATE INDEX runs_by_graph ON runs (graph_name, created_at);
CREATE TABLE tasks (
    run_id    TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name TEXT NOT NULL,
    position  INTEGER NOT NULL,
    is_array  INTEGER NOT NULL,
    spec      TEXT NOT NULL,
    expected  INTEGER,
    PRIMARY KEY (run_id, task_name)
) WITHOUT ROWID;
CREATE TABLE instances (
    id           INTEGER PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    task_name    TEXT NOT NULL,
    array_index  INTEGER NOT NULL,
    attempt      INTEGER NOT NULL,
    current      INTEGER NOT NULL DEFAULT 1,
    state        TEXT NOT NULL,
    identity     TEXT,
    parts        TEXT,
    output       TEXT,
    output_hash  TEXT,
    cached_from  INTEGER REFERENCES instances (id),
    error_text   TEXT,
    job_id       TEXT,
    submitted_at REAL,
    started_at   REAL,
    finished_at  REAL,
    failure_kind TEXT,
    resources    TEXT,
    UNIQUE (run_id, task_name, array_index, attempt),
    CHECK (state <> 'SUCCESS' OR
           (output_hash IS NOT NULL AND (output IS NOT NULL OR cached_from IS NOT NULL)))
);
CREATE INDEX instances_current ON instances (run_id, task_name, state, cached_from)
    WHERE current = 1;
CREATE INDEX instances_cache ON instances (substr(identity, 1, 16)) WHERE cached_from IS NULL;
"""
    + _REASONS
)

# Why the schema is as it is, for speed at 100,000 instances: `parts` (the
# ingredients of the identity, kept to explain a cache miss) lives in the row
# written anyway, not in a table keyed by identity that every new instance
# would update at a random place; the cache index holds each identity's own
# rows only (hits point at them through cached_from) and does not depend on
# `state`, so it is written once, when a row is inserted, not again when the
# instance finishes.  It is keyed by the first 16 hex digits of the identity
# (64 bits; look-ups compare the whole identity): identities are random, so
# every commit rewrites index pages all over the index, and a key a quarter of
# the size means a quarter of those pages.  `status` counts a run's instances
# from `instances_current` alone (it holds cached_from for the "cached" counts).
#
# The local drivers write an instance that runs in their own process once, with
# its outcome, instead of inserting it PENDING and updating it when it ends;
# `tasks.expected` (the number of instances of the task's current expansion,
# NULL before it expands) lets `status` count the instances not written yet as
# PENDING.
#
# `reasons` keeps why an instance ran instead of being reused when only the engine
# knew it, at the moment it decided (a cached output that failed its check); every
# other reason `why` gives is recomputed from the rows and the runs.  A table of its
# own, written only when there is such a reason, so the rows of a run cost nothing more.

_INSTANCE_COLUMNS = (
    "task_name, array_index, attempt, state, job_id, cached_from IS NOT NULL, error_text, "
    "identity, output_hash, started_at, finished_at, "
    "COALESCE(output, (SELECT s.output FROM instances AS s WHERE s.id = instances.cached_from)), "
    "COALESCE(finished_at, started_at, submitted_at), failure_kind, resources"
)

#: an instance dict carries its decoded `output` up to this many characters of stored
#: text; a longer one is left out (`output` None, `output_omitted` True): read it with
#: `get_singleton_output` / `get_array_outputs` (`run.output()`, `run.outputs()`)
OUTPUT_SHOWN_MAX = 1 << 20

# The cache index's key; queries must use this very expression for SQLite to use it.
_CACHE_KEY_LEN = 16
_CACHE_KEY = f"substr(identity, 1, {_CACHE_KEY_LEN})"

_MIGRATIONS: dict[int, str] = {  # version -> SQL that upgrades from version - 1
    2: """
ALTER TABLE instances ADD COLUMN parts TEXT;
UPDATE instances SET parts = (SELECT parts FROM identities d WHERE d.identity = instances.identity)
    WHERE cached_from IS NULL AND identity IS NOT NULL;
DROP TABLE identities;
DROP INDEX instances_cache;
CREATE INDEX instances_cache ON instances (identity) WHERE cached_from IS NULL;
DROP INDEX instances_current;
CREATE INDEX instances_current ON instances (run_id, task_name, state, cached_from)
    WHERE current = 1;
""",
    3: """
DROP INDEX instances_cache;
CREATE INDEX instances_cache ON instances (substr(identity, 1, 16)) WHERE cached_from IS NULL;
ALTER TABLE tasks ADD COLUMN expected INTEGER;
""",
    4: _REASONS,
    5: _ATTEMPT_FACTS,
}


def _now() -> float:
    return time.time()


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return _iso_second(int(ts))


@functools.lru_cache(maxsize=4096)  # instances finish in the same seconds: format each once
def _iso_second(second: int) -> str:
    return dt.datetime.fromtimestamp(second, dt.timezone.utc).astimezone().isoformat()


def _timestamp(value: str | dt.datetime | dt.date | float | None, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time()).timestamp()
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise StoreError(
            f"{what}={value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None
    return parsed.timestamp()


class SqlStore:
    """The queries and transactions of a store in an SQL database, for a backend to connect.

    A backend sets the class attributes below, gives `_open()` (returning a
    connection: an object with `execute(sql, args)` returning a cursor,
    `executemany(sql, rows)` and `close()`, taking `?` placeholders), calls
    `_start()` in its constructor, and gives
    `_describe_error` (one line for a database error), `_shown` (where the store
    is, as messages name it) and `location`.
    """

    #: the statement that opens a write transaction
    _BEGIN = "BEGIN"
    #: the statement that opens a read transaction whose queries all see one state
    _SNAPSHOT_BEGIN = "BEGIN"
    #: appended to a SELECT whose rows the transaction then relies on: they stay as read
    #: until it commits (SQLite has one writer at a time and needs none)
    _LOCK_ROWS = ""
    #: appended to a SELECT of rows that other rows will then reference
    _SHARE_ROWS = ""
    #: the driver's errors: any database error; a broken constraint; an error that says
    #: the database could not be used (locked, read-only, full, gone), not a wrong statement
    _Error: type[Exception] = Exception
    _IntegrityError: type[Exception] = Exception
    _UnusableError: type[Exception] = Exception

    timeout: float
    last_commit_seconds: float

    def _start(self) -> None:
        """Set up the transaction bookkeeping (a backend's constructor calls it)."""
        self._depth = 0  # write transactions open (nested ones join the outermost)
        self._held_since: float | None = None  # when hold() opened the transaction it holds
        self.last_commit_seconds = 0.0  # how long release() took to commit, the last time
        self._lock = threading.RLock()
        self._touched: set[str] = set()  # runs whose updated_at this transaction has set
        self._locked: set[str] = set()  # runs whose row this transaction has locked

    _conn: Any = None

    @property
    def conn(self) -> Any:
        """The open connection; the store is opened (and created) on first use."""
        if self._conn is None:
            self._conn = self._open()
            # Python's sqlite3.Connection is in a reference cycle with its statement
            # cache, so a store dropped without close() would keep its connection (and up
            # to 16 MiB of page cache) until a full garbage collection: close it as soon
            # as the store goes (a script calling run_local in a loop stays flat)
            self._closer = weakref.finalize(self, self._conn.close)
        return self._conn

    def _open(self) -> Any:  # pragma: no cover - every backend gives its own
        """Connect (creating or upgrading the store as the backend does)."""
        raise NotImplementedError

    def close(self) -> None:
        """Close the connection (committing a held transaction); the store reopens on next use."""
        self.release()
        if self._conn is not None:
            self._closer()
            self._conn = None

    def __enter__(self: _S) -> _S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def _shown(self) -> str:  # pragma: no cover - every backend gives its own
        """The store as messages name it (a URL without its password)."""
        raise NotImplementedError

    def _describe_error(self, exc: BaseException) -> str:  # pragma: no cover
        """One line for a database error: what went wrong and what to do."""
        raise NotImplementedError

    def _retry(self, fn: Any) -> Any:
        """Run `fn`, retrying while the database is busy (a backend that waits itself: once)."""
        return fn()

    #: how many values the queries that look up many at once (`_among`) send per query
    _CHUNK = 500

    def _among(self, expr: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`expr` is one of `values` (up to `_CHUNK` of them): the SQL and its arguments."""
        return f"{expr} IN ({','.join('?' * len(values))})", list(values)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Make every write inside one transaction (committed at the end, or rolled back)."""
        with self._write():
            yield

    def hold(self) -> None:
        """Open a write transaction that later writes join, until `release()` commits it.

        The local driver holds one across many tiny instances, so a chain of
        small tasks costs a commit every few dozen milliseconds instead of
        several per task; it releases it on a timer (from another thread too:
        every use of the connection takes the store's lock), so other writers
        wait little and nothing stays uncommitted while a long task runs.
        """
        with self._lock:
            if self._held_since is not None or self._depth:
                return
            self._begin()
            self._held_since = time.monotonic()

    def held_for(self) -> float | None:
        """Seconds since `hold()` opened the transaction still held, or None."""
        since = self._held_since
        return None if since is None else time.monotonic() - since

    def release(self) -> None:
        """Commit the transaction `hold()` opened (nothing if none is held).

        `last_commit_seconds` then says how long that commit took.
        """
        with self._lock:
            if self._held_since is None:
                return
            self._held_since = None
            started = time.monotonic()
            self._commit()
            self.last_commit_seconds = time.monotonic() - started

    def _begin(self) -> None:
        self._touched.clear()
        self._locked.clear()
        try:
            self._retry(lambda: self.conn.execute(self._BEGIN))
        except self._Error as exc:
            raise StoreError(self._describe_error(exc)) from None

    def _commit(self) -> None:
        conn = self.conn
        try:
            self._retry(lambda: conn.execute("COMMIT"))
        except self._Error as exc:
            with contextlib.suppress(self._Error):
                conn.execute("ROLLBACK")
            raise StoreError(self._describe_error(exc)) from None

    def _rollback(self, exc: BaseException) -> BaseException:
        """Roll the open transaction back; what to raise instead of `exc`."""
        self._held_since = None
        with contextlib.suppress(self._Error):
            self.conn.execute("ROLLBACK")
        if isinstance(exc, self._UnusableError):  # read-only, disk full, I/O: say so
            return StoreError(self._describe_error(exc))
        return exc

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction, committed on success, rolled back on error.

        Inside `transaction()` or `hold()` it joins the open transaction; an
        error rolls the whole of it back.
        """
        with self._lock:
            outer = not self._depth and self._held_since is None
            if outer:
                self._begin()
            self._depth += 1
            try:
                yield self.conn
            except BaseException as exc:
                self._depth = 0
                raised = self._rollback(exc)
                if raised is exc:
                    raise
                raise raised from None
            self._depth -= 1
            if outer:
                self._commit()

    def _lock_run(self, conn: Any, run_id: str) -> None:
        """Take the run's row lock for this transaction, once (where rows can be locked).

        Every write to a run takes it first, so two processes writing one run
        (a driver holding its transaction, a `cancel` from another terminal) take
        turns, as SQLite's one writer does, and neither works from rows the other
        has not committed yet.
        """
        if self._LOCK_ROWS and run_id not in self._locked:
            conn.execute("SELECT 1 FROM runs WHERE run_id = ?" + self._LOCK_ROWS, (run_id,))
            self._locked.add(run_id)

    def _touch(self, conn: Any, run_id: str, now: float) -> None:
        """Note that the run changed: once a transaction (a grouped one spans many writes)."""
        if run_id not in self._touched:
            conn.execute("UPDATE runs SET updated_at = ? WHERE run_id = ?", (now, run_id))
            self._touched.add(run_id)

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        with self._lock:
            try:
                return list(self._retry(lambda: self.conn.execute(sql, args).fetchall()))
            except self._Error as exc:
                raise StoreError(self._describe_error(exc)) from None

    # ------------------------------------------------------------------ runs

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
        """Record a new RUNNING run with its task specs and return its unique id."""
        import secrets
        import socket

        day = dt.date.today().strftime("%Y%m%d")
        now = _now()
        host, pid, start = owner if owner else (None, None, None)
        for attempt in range(64):
            width = 4 if attempt < 8 else 6 if attempt < 24 else 10
            run_id = f"{graph_name}-{day}-{secrets.token_hex(width // 2)}"
            try:
                with self._write() as conn:
                    conn.execute(
                        "INSERT INTO runs (run_id, graph_name, \"user\", host, run_dir, executor, "
                        "params, options, status, owner_host, owner_pid, owner_start, "
                        "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,'RUNNING',?,?,?,?,?)",
                        (
                            run_id, graph_name, _user(), socket.gethostname(), run_dir,
                            executor, params, options, host, pid, start, now, now,
                        ),
                    )  # fmt: skip
                    conn.executemany(
                        "INSERT INTO tasks (run_id, task_name, position, is_array, spec) "
                        "VALUES (?,?,?,?,?)",
                        [(run_id, n, p, int(a), s) for n, p, a, s in tasks],
                    )
                return run_id
            except self._IntegrityError:
                continue
        raise StoreError("could not find a free run id after 64 tries")  # pragma: no cover

    def get_run(self, run_id: str) -> dict[str, Any]:
        """The run's record as a dict; RunNotFoundError if there is none."""
        rows = self._read(f"SELECT {_columns(_RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            raise RunNotFoundError(self._unknown_run(run_id))
        doc = _as_dict(_RUN_COLUMNS, rows[0])
        doc["params"], doc["options"] = codec.loads(doc["params"]), codec.loads(doc["options"])
        # reflow-hpc's names for two of them
        doc["user_id"], doc["parameters"] = doc["user"], codec.loads(rows[0][6])
        return doc

    def _unknown_run(self, run_id: str) -> str:
        import difflib

        recent = [
            r[0] for r in self._read("SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 200")
        ]
        close = difflib.get_close_matches(run_id, recent, n=1, cutoff=0.7)
        hint = f" Did you mean '{close[0]}'?" if close else " List runs with 'runs'."
        return f"no run '{run_id}' in the store {self._shown}.{hint}"

    def task_specs(self, run_id: str) -> list[tuple[str, bool, dict[str, Any]]]:
        """The run's tasks in topological order: (name, is_array, spec dict)."""
        import json

        rows = self._read(
            "SELECT task_name, is_array, spec FROM tasks WHERE run_id = ? ORDER BY position",
            (run_id,),
        )
        return [(r[0], bool(r[1]), json.loads(r[2])) for r in rows]

    def set_run_status(self, run_id: str, status: str, *, release: bool = False) -> None:
        """Set the run's status; a final status records the finish time."""
        now = _now()
        finished = now if status != "RUNNING" else None
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET status = ?, updated_at = ?, finished_at = ?"
                + (", owner_host = NULL, owner_pid = NULL, owner_start = NULL" if release else "")
                + " WHERE run_id = ?",
                (status, now, finished, run_id),
            )

    def claim_run(self, run_id: str, owner: tuple[str, int, str], *, alive: Any) -> None:
        """Make `owner` the process driving the run, unless a live process already is.

        `alive(host, pid, start) -> bool` tells whether a recorded owner still runs.
        """
        with self._write() as conn:
            row = conn.execute(
                "SELECT owner_host, owner_pid, owner_start FROM runs WHERE run_id = ?"
                + self._LOCK_ROWS,
                (run_id,),
            ).fetchone()
            if row is None:
                raise RunNotFoundError(self._unknown_run(run_id))
            if row[1] is not None and tuple(row) != owner and alive(row[0], row[1], row[2]):
                raise StoreError(
                    f"run '{run_id}' is being driven by process {row[1]} on {row[0]}: wait "
                    "for it to finish, or cancel the run first"
                )
            conn.execute(
                "UPDATE runs SET owner_host = ?, owner_pid = ?, owner_start = ?, "
                "status = 'RUNNING', updated_at = ?, finished_at = NULL WHERE run_id = ?",
                (*owner, _now(), run_id),
            )

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
        """Runs, newest first, filtered by workflow, user, time window and status."""
        where: list[str] = []
        args: list[Any] = []
        if graph_name is not None:
            where.append("graph_name = ?")
            args.append(graph_name)
        if user_id is not None:
            where.append('"user" = ?')
            args.append(user_id)
        if status is not None:
            where.append("status = ?")
            args.append(str(status).upper())
        lo, hi = _timestamp(since, "since"), _timestamp(until, "until")
        if lo is not None:
            where.append("created_at >= ?")
            args.append(lo)
        if hi is not None:
            if isinstance(until, dt.date) and not isinstance(until, dt.datetime):
                hi += 86400  # a date means "up to the end of that day"
            elif isinstance(until, str) and len(until.strip()) == 10:
                hi += 86400
            where.append("created_at < ?")
            args.append(hi)
        sql = (
            f"SELECT {_columns(_LISTED_RUN_COLUMNS)} FROM runs"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY created_at DESC, rowid DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        listed = [_as_dict(_LISTED_RUN_COLUMNS, r) for r in self._read(sql, args)]
        for doc in listed:
            doc["user_id"] = doc["user"]  # reflow-hpc's name
        return listed

    # ------------------------------------------------------------------ instances

    def current_rows(self, run_id: str, task: str) -> list[InstanceRow]:
        """The current attempt of every instance of `task`, by array index."""
        rows = self._read(
            "SELECT array_index, attempt, state, identity, output_hash, cached_from, "
            "failure_kind, resources, finished_at "
            "FROM instances WHERE run_id = ? AND task_name = ? AND current = 1 "
            "ORDER BY array_index",
            (run_id, task),
        )
        return [InstanceRow(*r) for r in rows]

    def expected_counts(self, run_id: str) -> dict[str, int]:
        """task -> the number of instances of its current expansion, for expanded tasks."""
        return dict(
            self._read(
                "SELECT task_name, expected FROM tasks WHERE run_id = ? AND expected IS NOT NULL",
                (run_id,),
            )
        )

    def max_attempts(self, run_id: str, task: str) -> dict[int, int]:
        """The highest attempt number recorded for each array index of `task`."""
        rows = self._read(
            "SELECT array_index, MAX(attempt) FROM instances WHERE run_id = ? AND task_name = ? "
            "GROUP BY array_index",
            (run_id, task),
        )
        return {r[0]: r[1] for r in rows}

    def lookup_cache(self, identities: Iterable[str]) -> dict[str, tuple[int, str]]:
        """For each identity with a successful instance anywhere: (source id, output hash)."""
        found: dict[str, tuple[int, str]] = {}
        unique = list(dict.fromkeys(identities))
        wanted = set(unique)
        for i in range(0, len(unique), self._CHUNK):
            chunk = unique[i : i + self._CHUNK]
            among, args = self._among(_CACHE_KEY, [ident[:_CACHE_KEY_LEN] for ident in chunk])
            rows = self._read(
                "SELECT identity, id, output_hash FROM instances WHERE cached_from IS NULL "
                f"AND state = 'SUCCESS' AND {among}",
                args,
            )
            for ident, source, ohash in rows:
                if ident in wanted:  # the key is a prefix: another identity may share it
                    found.setdefault(ident, (source, ohash))
        return found

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
        """Write one task's new instances in one transaction.

        `supersede`: array indices whose current row is replaced; `pending`:
        (index, attempt, identity, its ingredients) to run; `hits`: (index,
        attempt, identity, source id, output hash, ingredients) reused from the
        cache; `skipped`/`failed`: (index, attempt, identity, reason); `expected`:
        the number of instances the task now has, written or not (instances
        the caller writes later, with `insert_instances`, count as PENDING until
        then); `reasons`: (index, attempt, why) of instances that run although
        an output was cached (it failed its check), kept for `why`;
        `resources`: index -> what a pending row asks for (JSON), written with
        it; `default_resources` for the pending rows it does not name.  A hit
        whose source vanished meanwhile is written as PENDING instead; the
        indices of such hits are returned.
        """
        asks = resources or {}
        asks_default = default_resources
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, run_id)
            if reasons:
                conn.executemany(
                    "INSERT INTO reasons (run_id, task_name, array_index, attempt, reason) "
                    "VALUES (?,?,?,?,?) ON CONFLICT (run_id, task_name, array_index, attempt) "
                    "DO UPDATE SET reason = excluded.reason",
                    [(run_id, task, i, a, why) for i, a, why in reasons],
                )
            if expected is not None:
                conn.execute(
                    "UPDATE tasks SET expected = ? WHERE run_id = ? AND task_name = ?",
                    (expected, run_id, task),
                )
            if supersede:
                conn.executemany(
                    "UPDATE instances SET current = 0, finished_at = COALESCE(finished_at, ?), "
                    "error_text = CASE WHEN state IN ('PENDING', 'SUBMITTED', 'RUNNING') "
                    "THEN ? ELSE error_text END, "
                    "state = CASE WHEN state IN ('PENDING', 'SUBMITTED', 'RUNNING') "
                    "THEN 'CANCELLED' ELSE state END "
                    "WHERE run_id = ? AND task_name = ? AND array_index = ? AND current = 1",
                    [(now, interrupted, run_id, task, i) for i in supersede],
                )
            if pending:
                conn.executemany(
                    "INSERT INTO instances (run_id, task_name, array_index, attempt, state, "
                    "identity, parts, resources) VALUES (?,?,?,?,'PENDING',?,?,?)",
                    [
                        (run_id, task, i, a, ident, parts, asks.get(i, asks_default))
                        for i, a, ident, parts in pending
                    ],
                )
            lost: list[int] = []
            if hits:
                # a hit is SUCCESS only if its source still is (a run deleted meanwhile
                # takes its rows along): checked inside this transaction, the sources in
                # id order, so that 100,000 of them are read as a scan, not at random
                sources = sorted({h[3] for h in hits})
                alive: set[int] = set()
                for k in range(0, len(sources), self._CHUNK):
                    among, args = self._among("id", sources[k : k + self._CHUNK])
                    alive.update(
                        r[0]
                        for r in conn.execute(
                            f"SELECT id FROM instances WHERE state = 'SUCCESS' AND {among}"
                            + self._SHARE_ROWS,
                            args,
                        )
                    )
                conn.executemany(
                    "INSERT INTO instances (run_id, task_name, array_index, attempt, state, "
                    "identity, output_hash, cached_from, started_at, finished_at) "
                    "VALUES (?,?,?,?,'SUCCESS',?,?,?,?,?)",
                    [
                        (run_id, task, i, a, ident, ohash, src, now, now)
                        for i, a, ident, src, ohash, _ in hits
                        if src in alive
                    ],
                )
                if len(alive) != len(sources):
                    missing = [(i, a, d, p) for i, a, d, src, _, p in hits if src not in alive]
                    conn.executemany(
                        "INSERT INTO instances (run_id, task_name, array_index, attempt, state, "
                        "identity, parts, resources) VALUES (?,?,?,?,'PENDING',?,?,?)",
                        [(run_id, task, *m, asks.get(m[0], asks_default)) for m in missing],
                    )
                    lost = [m[0] for m in missing]
            for state, rows in (("SKIPPED", skipped), ("FAILED", failed)):
                if rows:
                    conn.executemany(
                        "INSERT INTO instances (run_id, task_name, array_index, attempt, state, "
                        "identity, error_text, finished_at) VALUES (?,?,?,?,?,?,?,?)",
                        [(run_id, task, i, a, state, ident, err, now) for i, a, ident, err in rows],
                    )
            self._touch(conn, run_id, now)
        return lost

    def insert_instances(self, rows: Sequence[NewInstance]) -> None:
        """Write instances counted by `write_expansion(expected=...)` but not written then.

        Each row: (run id, task, index, attempt, state, identity, ingredients,
        output, output hash, error text, started, finished, failure kind,
        resources JSON), all of one run (the
        id is in each row so that the rows are bound as they are); the state is
        PENDING, RUNNING, SUCCESS or FAILED.  One statement for all of them: an
        instance that runs here is written once, with its outcome.
        """
        if not rows:
            return
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, rows[0][0])
            conn.executemany(
                "INSERT INTO instances (run_id, task_name, array_index, attempt, state, "
                "identity, parts, output, output_hash, error_text, started_at, finished_at, "
                "failure_kind, resources) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            self._touch(conn, rows[0][0], now)

    def mark_running(
        self, run_id: str, items: Sequence[tuple[str, int, int]], job_id: str | None = None
    ) -> None:
        """Mark (task, index, attempt) instances RUNNING, in one transaction.

        Consecutive indices of a task are marked by one statement per range,
        so a big wave of tiny tasks costs a few statements, not one per row.
        """
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, run_id)
            for task, lo, hi in _ranges(items):
                conn.execute(
                    "UPDATE instances SET state = 'RUNNING', started_at = ?, job_id = ? "
                    "WHERE run_id = ? AND task_name = ? AND current = 1 "
                    "AND array_index BETWEEN ? AND ? AND state IN ('PENDING', 'SUBMITTED')",
                    (now, job_id, run_id, task, lo, hi),
                )

    def mark_submitted(self, run_id: str, items: Sequence[tuple[str, int, int, str]]) -> None:
        """Record (task, index, attempt, job id) instances as SUBMITTED, in one transaction."""
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.executemany(
                "UPDATE instances SET state = 'SUBMITTED', job_id = ?, submitted_at = ? "
                "WHERE run_id = ? AND task_name = ? AND array_index = ? AND attempt = ? "
                "AND state = 'PENDING'",
                [(job, now, run_id, t, i, a) for t, i, a, job in items],
            )

    def in_flight(self, run_id: str) -> list[tuple[str, int, int, str, str | None, float | None]]:
        """Current instances handed to jobs: (task, index, attempt, state, job id, submitted)."""
        return [
            (r[0], r[1], r[2], r[3], r[4], r[5])
            for r in self._read(
                "SELECT task_name, array_index, attempt, state, job_id, submitted_at "
                "FROM instances WHERE run_id = ? AND current = 1 "
                "AND state IN ('SUBMITTED', 'RUNNING') ORDER BY id",
                (run_id,),
            )
        ]

    def mark_job_running(self, run_id: str, items: Sequence[tuple[str, int, int]]) -> None:
        """SUBMITTED instances whose jobs the scheduler reports running become RUNNING."""
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.executemany(
                "UPDATE instances SET state = 'RUNNING', started_at = COALESCE(started_at, ?) "
                "WHERE run_id = ? AND task_name = ? AND array_index = ? AND attempt = ? "
                "AND state = 'SUBMITTED'",
                [(now, run_id, t, i, a) for t, i, a in items],
            )

    def delete_run(self, run_id: str) -> None:
        """Remove a run and its instances (a dry run leaves nothing behind)."""
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.execute("DELETE FROM reasons WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM instances WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM tasks WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))

    def set_dispatcher(self, run_id: str, job_id: str | None) -> None:
        """Record the job id of the run's chained dispatcher (None: no dispatcher queued)."""
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.execute(
                "UPDATE runs SET dispatcher = ?, updated_at = ? WHERE run_id = ?",
                (job_id, _now(), run_id),
            )

    def unmark_running(self, run_id: str, items: Sequence[tuple[str, int, int]]) -> None:
        """Put RUNNING instances that never started back to PENDING."""
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.executemany(
                "UPDATE instances SET state = 'PENDING', started_at = NULL "
                "WHERE run_id = ? AND task_name = ? AND array_index = ? AND attempt = ? "
                "AND state = 'RUNNING'",
                [(run_id, t, i, a) for t, i, a in items],
            )

    def record_outcomes(self, run_id: str, outcomes: Sequence[Finished]) -> None:
        """Record finished instances in one transaction.

        Each outcome: (task, index, attempt, state, output, output hash, error
        text, started, finished, failure kind).  An instance already CANCELLED
        stays so.
        """
        if not outcomes:
            return
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.executemany(
                "UPDATE instances SET state = ?, output = ?, output_hash = ?, error_text = ?, "
                "started_at = COALESCE(?, started_at), finished_at = ?, failure_kind = ? "
                "WHERE run_id = ? AND task_name = ? AND array_index = ? AND attempt = ? "
                "AND state NOT IN ('CANCELLED', 'SUCCESS')",
                [
                    (st, out, oh, err, t0, t1 or now, kind, run_id, task, i, a)
                    for task, i, a, st, out, oh, err, t0, t1, kind in outcomes
                ],
            )
            self._touch(conn, run_id, now)

    def retry_instances(
        self, run_id: str, rows: Sequence[tuple[str, int, int, str | None, str]]
    ) -> int:
        """Give FAILED instances their next attempt, in one transaction; return how many.

        Each row: (task, index, the new attempt's number, its resources JSON,
        why it is tried again).  The failed attempt stays as it was (its state,
        error, kind, resources and times), no longer current; the new attempt
        is current and PENDING, with the failed one's identity and ingredients,
        and the reason is kept for `reasons()`.  An instance whose current
        attempt is not FAILED, or not the one before the new number, is left alone.
        """
        if not rows:
            return 0
        now = _now()
        done = 0
        with self._write() as conn:
            self._lock_run(conn, run_id)
            for task, index, attempt, asks, why in rows:
                cur = conn.execute(
                    "UPDATE instances SET current = 0 WHERE run_id = ? AND task_name = ? "
                    "AND array_index = ? AND attempt = ? AND current = 1 AND state = 'FAILED'",
                    (run_id, task, index, attempt - 1),
                )
                if cur.rowcount != 1:
                    continue
                conn.execute(
                    "INSERT INTO instances (run_id, task_name, array_index, attempt, state, "
                    "identity, parts, resources) SELECT run_id, task_name, array_index, ?, "
                    "'PENDING', identity, parts, ? FROM instances WHERE run_id = ? "
                    "AND task_name = ? AND array_index = ? AND attempt = ?",
                    (attempt, asks, run_id, task, index, attempt - 1),
                )
                conn.execute(
                    "INSERT INTO reasons (run_id, task_name, array_index, attempt, reason) "
                    "VALUES (?,?,?,?,?) ON CONFLICT (run_id, task_name, array_index, attempt) "
                    "DO UPDATE SET reason = excluded.reason",
                    (run_id, task, index, attempt, why),
                )
                done += 1
            self._touch(conn, run_id, now)
        return done

    def record_resolved(
        self,
        run_id: str,
        rows: Sequence[tuple[str, int, int, str, str | None, int | None, float, float]],
        parts: Sequence[tuple[str, str]] = (),
    ) -> None:
        """Fill in instances that resolved their own inputs in the job (look-ahead).

        Each row: (task, index, attempt, identity, None, cached-from id or None,
        started, finished); the identity was computed by the worker.  A cache
        hit takes its source's output hash in the same statement, and only if the
        source is still SUCCESS, so no SUCCESS row is ever left without an output.
        """
        now = _now()
        parts_of = dict(parts)
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.executemany(
                "UPDATE instances SET identity = ?, parts = ? WHERE run_id = ? AND task_name = ? "
                "AND array_index = ? AND attempt = ? AND identity IS NULL",
                [
                    (ident, parts_of.get(ident) if src is None else None, run_id, t, i, a)
                    for t, i, a, ident, _, src, _, _ in rows
                ],
            )
            hits = [r for r in rows if r[5] is not None]
            conn.executemany(
                "UPDATE instances SET state = 'SUCCESS', "
                "cached_from = (SELECT COALESCE(s.cached_from, s.id) FROM instances s "
                "  WHERE s.id = ? AND s.state = 'SUCCESS'), "
                "output_hash = (SELECT s.output_hash FROM instances s "
                "  WHERE s.id = ? AND s.state = 'SUCCESS'), "
                "started_at = ?, finished_at = ? "
                "WHERE run_id = ? AND task_name = ? AND array_index = ? AND attempt = ? "
                "AND state NOT IN ('CANCELLED', 'SUCCESS') "
                "AND EXISTS (SELECT 1 FROM instances s WHERE s.id = ? AND s.state = 'SUCCESS')",
                [
                    (src, src, t0, t1 or now, run_id, t, i, a, src)
                    for t, i, a, _, _, src, t0, t1 in hits
                ],
            )

    def write_deferred(self, run_id: str, task: str, rows: Sequence[tuple[int, int, str]]) -> None:
        """Record instances submitted ahead of their inputs: SUBMITTED, identity unknown yet.

        Each row: (index, attempt, job id).
        """
        now = _now()
        with self._write() as conn:
            self._lock_run(conn, run_id)
            conn.executemany(
                "INSERT INTO instances (run_id, task_name, array_index, attempt, state, job_id, "
                "submitted_at) VALUES (?,?,?,?,'SUBMITTED',?,?)",
                [(run_id, task, i, a, job, now) for i, a, job in rows],
            )

    def instance_output(
        self, run_id: str, task: str, index: int, attempt: int
    ) -> tuple[str, str | None, str | None, str | None] | None:
        """(state, output text, output hash, error text) of one attempt, or None."""
        rows = self._read(
            "SELECT i.state, COALESCE(i.output, s.output), i.output_hash, i.error_text "
            "FROM instances i LEFT JOIN instances s ON s.id = i.cached_from "
            "WHERE i.run_id = ? AND i.task_name = ? AND i.array_index = ? AND i.attempt = ?",
            (run_id, task, index, attempt),
        )
        return (rows[0][0], rows[0][1], rows[0][2], rows[0][3]) if rows else None

    def source_output(self, source: int) -> str | None:
        """The stored output text of instance row `source`."""
        rows = self._read("SELECT output FROM instances WHERE id = ?", (source,))
        return rows[0][0] if rows else None

    def cancel_instances(self, run_id: str, task: str | None, reason: str) -> int:
        """Mark the run's unfinished instances (of `task`, or all) CANCELLED; return how many.

        Cancelling a RUNNING run as a whole also counts the instances its local
        driver has not written yet: they will never run (the driver stops and
        writes them CANCELLED; a driver that is gone never will, and `status`
        shows them CANCELLED once the run is no longer RUNNING).
        """
        now = _now()
        sql = (
            "UPDATE instances SET state = 'CANCELLED', error_text = ?, finished_at = ? "
            "WHERE run_id = ? AND current = 1 AND state IN ('PENDING', 'SUBMITTED', 'RUNNING')"
        )
        args: list[Any] = [reason, now, run_id]
        if task is not None:
            sql += " AND task_name = ?"
            args.append(task)
        with self._write() as conn:
            self._lock_run(conn, run_id)
            n = int(conn.execute(sql, args).rowcount)
            if task is None:
                rows = dict(
                    conn.execute(
                        "SELECT task_name, COUNT(*) FROM instances WHERE run_id = ? "
                        "AND current = 1 GROUP BY task_name",
                        (run_id,),
                    ).fetchall()
                )
                state, unwritten = self._unwritten(run_id, rows)
                if state == "PENDING":  # not counted by an earlier cancel
                    n += sum(unwritten.values())
            return n

    def output_texts(self, run_id: str, task: str) -> list[tuple[int, str | None]]:
        """(index, stored output text) of every current SUCCESS instance of `task`."""
        return [
            (r[0], r[1])
            for r in self._read(
                "SELECT i.array_index, COALESCE(i.output, s.output) FROM instances i "
                "LEFT JOIN instances s ON s.id = i.cached_from "
                "WHERE i.run_id = ? AND i.task_name = ? AND i.current = 1 "
                "AND i.state = 'SUCCESS' ORDER BY i.array_index",
                (run_id, task),
            )
        ]

    def output_texts_for(
        self, run_id: str, task: str, indices: Sequence[int]
    ) -> dict[int, str | None]:
        """Stored output texts of some current SUCCESS instances of `task`, by index."""
        found: dict[int, str | None] = {}
        for i in range(0, len(indices), 500):
            chunk = list(indices[i : i + 500])
            for idx, text in self._read(
                "SELECT i.array_index, COALESCE(i.output, s.output) FROM instances i "
                "LEFT JOIN instances s ON s.id = i.cached_from "
                "WHERE i.run_id = ? AND i.task_name = ? AND i.current = 1 "
                f"AND i.state = 'SUCCESS' AND i.array_index IN ({','.join('?' * len(chunk))})",
                [run_id, task, *chunk],
            ):
                found[idx] = text
        return found

    def cached_output_texts(self, sources: Sequence[int]) -> dict[int, str | None]:
        """Stored output texts of source instances, by row id."""
        found: dict[int, str | None] = {}
        for i in range(0, len(sources), 500):
            chunk = list(sources[i : i + 500])
            for rid, text in self._read(
                f"SELECT id, output FROM instances WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[rid] = text
        return found

    def _task_output(self, run_id: str, task: str) -> list[tuple[int, str | None, str]]:
        status = self.get_run(run_id)["status"]
        rows = self._read(
            "SELECT i.array_index, COALESCE(i.output, s.output), i.state FROM instances i "
            "LEFT JOIN instances s ON s.id = i.cached_from "
            "WHERE i.run_id = ? AND i.task_name = ? AND i.current = 1 ORDER BY i.array_index",
            (run_id, task),
        )
        if not rows:
            arrays = dict(
                self._read("SELECT task_name, is_array FROM tasks WHERE run_id = ?", (run_id,))
            )
            if task not in arrays:
                raise StoreError(
                    f"run '{run_id}' has no task '{task}': its tasks are {', '.join(arrays)}"
                )
            if arrays[task] and status == "SUCCESS":
                return []  # every task completed: this one fanned out over an empty list
            raise StoreError(f"task '{task}' of run '{run_id}' has not run yet")
        bad = [(i, st) for i, _, st in rows if st != "SUCCESS"]
        # instances expanded but not written yet (the run is still going, or its driver
        # was killed) are PENDING
        state, by_task = self._unwritten(run_id, {task: len(rows)})
        unwritten = by_task.get(task, 0)
        if unwritten:
            present = {i for i, _, _ in rows}
            bad.append((next(i for i in range(len(rows) + unwritten) if i not in present), state))
            bad.sort()
        if bad:
            i, st = bad[0]
            where = f"'{task}'" if i < 0 else f"'{task}'[{i}]"
            n = len(bad) + max(0, unwritten - 1)
            raise StoreError(
                f"{where} of run '{run_id}' is {st}, so it has no output"
                + (f" ({n} instances are not SUCCESS)" if n > 1 else "")
            )
        return rows

    def get_singleton_output(self, run_id: str, task: str) -> Any:
        """The decoded output of singleton task `task` in run `run_id`."""
        rows = self._task_output(run_id, task)
        if len(rows) != 1 or rows[0][0] != -1:
            raise StoreError(
                f"'{task}' is an array task: use get_array_outputs / run.outputs('{task}')"
            )
        return codec.loads(rows[0][1] or "null")

    def get_array_outputs(self, run_id: str, task: str) -> list[Any]:
        """The decoded outputs of array task `task` in run `run_id`, in index order."""
        rows = self._task_output(run_id, task)
        if rows and rows[0][0] == -1:
            raise StoreError(
                f"'{task}' is not an array task: use get_singleton_output / run.output('{task}')"
            )
        return [codec.loads(text or "null") for _, text, _ in rows]

    # ------------------------------------------------------------------ status

    def summary(self, run_id: str) -> dict[str, dict[str, int]]:
        """task -> state -> count over the current attempts (`status_counts` without the
        cached counts)."""
        return {
            task: {state: n for state, (n, _) in by_state.items()}
            for task, by_state in self.status_counts(run_id).items()
        }

    def _unwritten(self, run_id: str, rows: dict[str, int]) -> tuple[str, dict[str, int]]:
        """The instances of the run's expanded tasks that have no row yet, and their state.

        A local run writes an instance once, when it starts or ends; until then
        only its task's `expected` count knows of it.  Given `rows`, task ->
        current rows, returns (state, task -> instances without a row): PENDING
        while the run goes (or its driver was killed and nobody has said so),
        CANCELLED once the run was cancelled or given up (they will never run).
        """
        found = self._read(
            "SELECT t.task_name, t.expected, r.status FROM tasks t JOIN runs r "
            "ON r.run_id = t.run_id WHERE t.run_id = ? AND t.expected IS NOT NULL",
            (run_id,),
        )
        out = {task: n - rows.get(task, 0) for task, n, _ in found if n > rows.get(task, 0)}
        running = not found or found[0][2] == "RUNNING"
        return ("PENDING" if running else "CANCELLED"), out

    def status_counts(self, run_id: str) -> dict[str, dict[str, tuple[int, int]]]:
        """task -> state -> (instances, of which reused from the cache), by one query.

        Answered from the `instances_current` index alone, so it stays quick at
        100,000 instances.
        """
        out: dict[str, dict[str, tuple[int, int]]] = {}
        for task, state, count, cached in self._read(
            "SELECT task_name, state, COUNT(*), COUNT(cached_from) FROM instances "
            "WHERE run_id = ? AND current = 1 GROUP BY task_name, state",
            (run_id,),
        ):
            out.setdefault(task, {})[state] = (count, cached)
        state, unwritten = self._unwritten(
            run_id, {t: sum(n for n, _ in c.values()) for t, c in out.items()}
        )
        for task, n in unwritten.items():
            by_state = out.setdefault(task, {})
            have, cached = by_state.get(state, (0, 0))
            by_state[state] = (have + n, cached)
        return out

    def iter_instances(
        self,
        run_id: str,
        *,
        task: str | None = None,
        states: Sequence[str] | None = None,
        chunk: int = 4096,
    ) -> Iterator[list[dict[str, Any]]]:
        """`instances(...)`, a few thousand at a time, in the same order.

        Each chunk is read whole before it is handed on, so no read stays open
        (holding a lock on a rollback-journal store) while a slow consumer
        writes it out, and memory stays flat however many instances there are.
        """
        where, args = self._instance_filter(run_id, task, states)
        sql = f"SELECT id FROM instances WHERE {where} ORDER BY id"
        ids = [r[0] for r in self._read(sql, args)]
        for k in range(0, len(ids), chunk):
            part = ids[k : k + chunk]
            # the run's ids are (nearly) contiguous: a range scan of the table, filtered
            yield self._instance_dicts(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id BETWEEN ? AND ? "
                f"AND {where} ORDER BY id",
                [part[0], part[-1], *args],
            )

    def cached_counts(self, run_id: str) -> dict[str, int]:
        """task -> number of current instances reused from the cache."""
        return {
            t: n
            for t, n in self._read(
                "SELECT task_name, COUNT(*) FROM instances WHERE run_id = ? AND current = 1 "
                "AND cached_from IS NOT NULL GROUP BY task_name",
                (run_id,),
            )
        }

    def instances(
        self, run_id: str, *, task: str | None = None, states: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """The current attempt of the run's instances as dicts (optionally filtered)."""
        where, args = self._instance_filter(run_id, task, states)
        return self._instance_dicts(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE {where} ORDER BY id", args
        )

    @staticmethod
    def _instance_filter(
        run_id: str, task: str | None, states: Sequence[str] | None
    ) -> tuple[str, list[Any]]:
        where, args = "run_id = ? AND current = 1", [run_id]
        if task is not None:
            where += " AND task_name = ?"
            args.append(task)
        if states:
            where += f" AND state IN ({','.join('?' * len(states))})"
            args.extend(states)
        return where, args

    def _instance_dicts(self, sql: str, args: Sequence[Any]) -> list[dict[str, Any]]:
        return [
            {
                "task_name": r[0],
                "array_index": None if r[1] < 0 else r[1],
                "attempt": r[2],
                "state": r[3],
                "job_id": r[4],
                "cached": bool(r[5]),
                "error_text": r[6],
                "identity": r[7],
                "output_hash": r[8],
                "started_at": _iso(r[9]),
                "finished_at": _iso(r[10]),
                "updated_at": _iso(r[12]),
                "failure_kind": r[13],
                "resources": _asked(r[14]),
                **_shown_output(r[11]),
            }
            for r in self._read(sql, args)
        ]

    def list_task_instances(
        self,
        run_id: str,
        task_name: str | None = None,
        states: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """reflow-hpc's name for `instances` (states as names or TaskState members)."""
        return self.instances(run_id, task=task_name, states=_state_names(states))

    def count_task_instances(self, run_id: str, task_name: str) -> int:
        """How many instances of `task_name` the run has written (0 for one never expanded)."""
        # an array task that never fanned out (its upstream failed) has one placeholder row
        # saying why, at index -1: that is no instance
        rows = self._read(
            "SELECT COUNT(*) FROM instances i JOIN tasks t "
            "ON t.run_id = i.run_id AND t.task_name = i.task_name "
            "WHERE i.run_id = ? AND i.task_name = ? AND i.current = 1 "
            "AND (t.is_array = 0 OR i.array_index >= 0)",
            (run_id, task_name),
        )
        return int(rows[0][0])

    def task_state_summary(self, run_id: str) -> dict[str, dict[str, int]]:
        """reflow-hpc's name for `summary`: task -> state -> count."""
        return self.summary(run_id)

    def attempts(self, run_id: str, task: str, index: int | None = None) -> list[dict[str, Any]]:
        """Every attempt of `task` (one index or all), oldest first, with its error text."""
        sql = (
            f"SELECT {', '.join(_ATTEMPT_COLUMNS)} FROM instances "
            "WHERE run_id = ? AND task_name = ?"
        )
        args: list[Any] = [run_id, task]
        if index is not None:
            sql += " AND array_index = ?"
            args.append(index)
        sql += " ORDER BY array_index, attempt"
        return [_as_dict(_ATTEMPT_COLUMNS, r) for r in self._read(sql, args)]

    def identity_parts(self, identity: str) -> dict[str, Any] | None:
        """The ingredients an identity was computed from, or None if unknown."""
        import json

        rows = self._read(
            f"SELECT parts FROM instances WHERE {_CACHE_KEY} = ? AND identity = ? "
            "AND cached_from IS NULL AND parts IS NOT NULL LIMIT 1",
            (identity[:_CACHE_KEY_LEN], identity),
        )
        return json.loads(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ why

    def history_rows(
        self, run_id: str, task: str, indices: Sequence[int] | None = None
    ) -> list[HistoryRow]:
        """The current attempt of every written instance of `task` (or of those at
        `indices`), with what `why` reads.

        One query (one per 500 indices): a cache hit carries its source's
        ingredients and where the source is; an attempt after the first, the
        state of the one before.
        """
        sql = (
            "SELECT i.array_index, i.attempt, i.state, i.identity, COALESCE(i.parts, s.parts), "
            "i.output_hash, s.run_id, s.task_name, s.array_index, i.error_text, "
            "CASE WHEN i.attempt > 1 THEN (SELECT p.state FROM instances p "
            "  WHERE p.run_id = i.run_id AND p.task_name = i.task_name "
            "  AND p.array_index = i.array_index AND p.attempt = i.attempt - 1) END "
            "FROM instances i LEFT JOIN instances s ON s.id = i.cached_from "
            "WHERE i.run_id = ? AND i.task_name = ? AND i.current = 1"
        )
        if indices is None:
            return [
                HistoryRow(*r) for r in self._read(sql + " ORDER BY i.array_index", (run_id, task))
            ]
        found: list[HistoryRow] = []
        wanted = sorted(set(indices))
        for k in range(0, len(wanted), 500):
            chunk = wanted[k : k + 500]
            found.extend(
                HistoryRow(*r)
                for r in self._read(
                    sql + f" AND i.array_index IN ({','.join('?' * len(chunk))}) "
                    "ORDER BY i.array_index",
                    [run_id, task, *chunk],
                )
            )
        return found

    def reasons(self, run_id: str, task: str) -> dict[tuple[int, int], str]:
        """(index, attempt) -> why it ran although an output was cached, as the engine said."""
        return {
            (i, a): why
            for i, a, why in self._read(
                "SELECT array_index, attempt, reason FROM reasons WHERE run_id = ? "
                "AND task_name = ?",
                (run_id, task),
            )
        }

    def earlier_runs(
        self, graph_name: str, task: str, before: str | None = None, limit: int = 20
    ) -> list[str]:
        """Runs of the workflow with instances of `task`, newest first (older than `before`)."""
        sql = (
            "SELECT r.run_id FROM runs r WHERE r.graph_name = ? AND EXISTS (SELECT 1 FROM "
            "instances i WHERE i.run_id = r.run_id AND i.task_name = ? AND i.current = 1)"
        )
        args: list[Any] = [graph_name, task]
        if before is not None:
            sql += (
                " AND (r.created_at, r.rowid) < (SELECT b.created_at, b.rowid FROM runs b "
                "WHERE b.run_id = ?)"
            )
            args.append(before)
        sql += " ORDER BY r.created_at DESC, r.rowid DESC LIMIT ?"
        args.append(int(limit))
        return [r[0] for r in self._read(sql, args)]

    def source_rows(self, sources: Sequence[int]) -> dict[int, tuple[str, str, int]]:
        """(run id, task, index) of cache source instances, by row id."""
        found: dict[int, tuple[str, str, int]] = {}
        ordered = sorted(set(sources))
        for k in range(0, len(ordered), 500):
            chunk = ordered[k : k + 500]
            for rid, run_id, task, index in self._read(
                "SELECT id, run_id, task_name, array_index FROM instances "
                f"WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[rid] = (run_id, task, index)
        return found

    def recent_durations(self, graph_name: str, task: str, limit: int = 200) -> list[float]:
        """Seconds each of the task's latest instances ran, that ran and succeeded.

        From the workflow's last five runs (cache hits did not run: they are left out).
        """
        rows = self._read(
            "SELECT i.finished_at - i.started_at FROM instances i WHERE i.run_id IN "
            "(SELECT run_id FROM runs WHERE graph_name = ? ORDER BY created_at DESC LIMIT 5) "
            "AND i.task_name = ? AND i.state = 'SUCCESS' AND i.current = 1 "
            "AND i.cached_from IS NULL AND i.started_at IS NOT NULL "
            "AND i.finished_at IS NOT NULL ORDER BY i.id DESC LIMIT ?",
            (graph_name, task, int(limit)),
        )
        return [max(0.0, float(r[0])) for r in rows]

    # ------------------------------------------------------------------ logs and times

    def instance_attempts(self, run_id: str, task: str, index: int) -> list[AttemptRow]:
        """Every attempt of one instance (index -1: a singleton), by attempt number."""
        rows = self._read(
            f"SELECT {_ATTEMPT_ROW} FROM instances "
            "WHERE run_id = ? AND task_name = ? AND array_index = ? ORDER BY attempt",
            (run_id, task, index),
        )
        return [_attempt_row(r) for r in rows]

    def task_times(self, run_id: str) -> dict[str, tuple[float, float | None]]:
        """task -> (first start, last end) over every attempt that ran (not cache hits)."""
        rows = self._read(
            "SELECT task_name, MIN(started_at), MAX(finished_at) FROM instances "
            "WHERE run_id = ? AND cached_from IS NULL AND started_at IS NOT NULL "
            "GROUP BY task_name",
            (run_id,),
        )
        return {
            task: (float(first), None if last is None else float(last))
            for task, first, last in rows
        }

    def run_attempts(self, run_id: str) -> list[AttemptRow]:
        """Every attempt of every written instance of the run, current or superseded.

        By task name, index and attempt: the order of the unique key's index, so
        one query reads them without sorting.
        """
        rows = self._read(
            f"SELECT {_ATTEMPT_ROW} FROM instances "
            "WHERE run_id = ? ORDER BY task_name, array_index, attempt",
            (run_id,),
        )
        return [_attempt_row(r) for r in rows]

    # ------------------------------------------------------------------ health

    def _count(self, health: Health) -> None:
        """Fill in the runs, instances and lost outputs `check_health` reports."""
        conn = self.conn
        health.runs, health.instances = conn.execute(
            "SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM instances)", ()
        ).fetchone()
        health.lost_outputs = conn.execute(
            "SELECT COUNT(*) FROM instances i LEFT JOIN instances s ON s.id = i.cached_from "
            "WHERE i.state = 'SUCCESS' AND COALESCE(i.output, s.output) IS NULL",
            (),
        ).fetchone()[0]

    def instance_states(
        self, run_id: str, keys: Sequence[tuple[str, int, int]]
    ) -> dict[tuple[str, int, int], str]:
        """The state of each (task, index, attempt) of the run that has a row."""
        found: dict[tuple[str, int, int], str] = {}
        for task, index, attempt in keys:
            rows = self._read(
                "SELECT state FROM instances WHERE run_id = ? AND task_name = ? "
                "AND array_index = ? AND attempt = ?",
                (run_id, task, index, attempt),
            )
            if rows:
                found[(task, index, attempt)] = rows[0][0]
        return found

    # ------------------------------------------------------------------ maintenance
    # `gc`, `runs --delete` and `store copy` (reflow.maintenance, reflow.storecopy), in
    # SQL both backends run as it is; `_checks_deferred` is each backend's own.

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[Any]:
        """A read transaction, so that several queries see one state of the store."""
        with self._lock:
            conn = self.conn
            outer = not self._depth and self._held_since is None
            if outer:
                self._retry(lambda: conn.execute(self._SNAPSHOT_BEGIN))
            try:
                yield conn
            finally:
                if outer:
                    conn.execute("COMMIT")

    def export_run(self, run_id: str) -> RunExport:
        """Everything of the run, read in one snapshot; its cache sources named by key."""
        with self._snapshot() as conn:
            row = conn.execute(
                f"SELECT {_columns(_RUN_COLUMNS)} FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise RunNotFoundError(self._unknown_run(run_id))
            tasks = [
                (r[0], r[1], bool(r[2]), r[3], r[4])
                for r in conn.execute(
                    "SELECT task_name, position, is_array, spec, expected FROM tasks "
                    "WHERE run_id = ? ORDER BY position",
                    (run_id,),
                )
            ]
            rows = conn.execute(
                "SELECT i.task_name, i.array_index, i.attempt, i.current, i.state, i.identity, "
                "i.parts, i.output, i.output_hash, i.error_text, i.job_id, i.submitted_at, "
                "i.started_at, i.finished_at, i.failure_kind, i.resources, "
                "s.run_id, s.task_name, s.array_index, s.attempt, "
                "CASE WHEN s.run_id <> i.run_id THEN s.output END "
                "FROM instances i LEFT JOIN instances s ON s.id = i.cached_from "
                "WHERE i.run_id = ? ORDER BY i.id",
                (run_id,),
            ).fetchall()
            reasons = [
                (r[0], r[1], r[2], r[3])
                for r in conn.execute(
                    "SELECT task_name, array_index, attempt, reason FROM reasons "
                    "WHERE run_id = ? ORDER BY task_name, array_index, attempt",
                    (run_id,),
                )
            ]
        sources: list[SourceKey | None] = []
        source_outputs: dict[SourceKey, str] = {}
        for r in rows:
            key = None if r[16] is None else (r[16], r[17], r[18], r[19])
            sources.append(key)
            if key is not None and r[20] is not None:
                source_outputs[key] = r[20]
        return RunExport(
            dict(zip(_RUN_COLUMNS, row, strict=True)),
            tasks,
            [tuple(r[:16]) for r in rows],
            sources,
            source_outputs,
            reasons,
        )

    def import_run(self, exported: RunExport) -> int:
        """Write an exported run in one transaction, its cache hits pointed at rows here."""
        run = exported.run
        run_id = run["run_id"]
        kept_by_value = 0
        with self._write() as conn:
            if conn.execute(
                "SELECT 1 FROM runs WHERE run_id = ?" + self._LOCK_ROWS, (run_id,)
            ).fetchone():
                raise StoreError(f"run '{run_id}' is in the store {self._shown} already")
            conn.execute(
                f"INSERT INTO runs ({_columns(_RUN_COLUMNS)}) "
                f"VALUES ({','.join('?' * len(_RUN_COLUMNS))})",
                [run[c] for c in _RUN_COLUMNS],
            )
            conn.executemany(
                "INSERT INTO tasks (run_id, task_name, position, is_array, spec, expected) "
                "VALUES (?,?,?,?,?,?)",
                [(run_id, n, p, int(a), spec, e) for n, p, a, spec, e in exported.tasks],
            )
            # in the order the rows were written (a cache source before its hits), each
            # hit in the run pointed at its source's new row by key, in the same statement
            insert = (
                "INSERT INTO instances (run_id, task_name, array_index, attempt, current, state, "
                "identity, parts, output, output_hash, error_text, job_id, submitted_at, "
                "started_at, finished_at, failure_kind, resources, cached_from) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                "COALESCE(?, (SELECT COALESCE(s.cached_from, s.id) FROM instances s "
                "WHERE s.run_id = ? AND s.task_name = ? AND s.array_index = ? AND s.attempt = ?)))"
            )
            found: dict[SourceKey, int] = {}
            elsewhere = {src[0] for src in exported.sources if src and src[0] != run_id}
            for source_run in sorted(elsewhere):
                for rid, root, t, i, a in conn.execute(
                    "SELECT id, cached_from, task_name, array_index, attempt FROM instances "
                    "WHERE run_id = ?",
                    (source_run,),
                ):
                    found[(source_run, t, i, a)] = rid if root is None else root
            written = []
            nokey = (None, None, None, None)
            for r, src in zip(exported.instances, exported.sources, strict=True):
                if src is None:
                    written.append((run_id, *r, None, *nokey))
                    continue
                if src[0] == run_id:
                    written.append((run_id, *r, None, *src))
                    continue
                target = found.get(src)
                if target is None and r[5] is not None:  # the same identity's output, if here
                    same = conn.execute(
                        "SELECT id FROM instances WHERE cached_from IS NULL AND state = 'SUCCESS' "
                        f"AND {_CACHE_KEY} = ? AND identity = ? AND output_hash = ? "
                        "ORDER BY id LIMIT 1",
                        (r[5][:_CACHE_KEY_LEN], r[5], r[8]),
                    ).fetchone()
                    target = None if same is None else same[0]
                if target is not None:
                    written.append((run_id, *r, target, *nokey))
                    continue
                if src not in exported.source_outputs:
                    raise StoreError(
                        f"run '{run_id}': the output that {r[0]}[{r[1]}] reuses from run "
                        f"'{src[0]}' is neither in the export nor in {self._shown}"
                    )
                owned = list(r)
                owned[7] = exported.source_outputs[src]
                written.append((run_id, *owned, None, *nokey))
                kept_by_value += 1
            conn.executemany(insert, written)
            conn.executemany(
                "INSERT INTO reasons (run_id, task_name, array_index, attempt, reason) "
                "VALUES (?,?,?,?,?)",
                [(run_id, *r) for r in exported.reasons],
            )
        return kept_by_value

    def _references(
        self, conn: Any, run_ids: Sequence[str]
    ) -> list[tuple[int, int, SourceKey, SourceKey, str | None]]:
        """(source id, hit id, source key, hit key, source output) of rows of other runs
        reusing rows of `run_ids`, by source id then hit id."""
        wanted = list(dict.fromkeys(run_ids))
        inside = set(wanted)
        found = []
        for k in range(0, len(wanted), 500):
            chunk = wanted[k : k + 500]
            # hits first: every hit is read once and its source found by its primary key
            # (there is no index on cached_from to go the other way)
            for r in conn.execute(
                "SELECT s.id, h.id, s.run_id, s.task_name, s.array_index, s.attempt, h.run_id, "
                "h.task_name, h.array_index, h.attempt, s.output "
                "FROM instances h CROSS JOIN instances s "
                "WHERE h.cached_from IS NOT NULL AND s.id = h.cached_from "
                f"AND s.run_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                if r[6] not in inside:
                    found.append(
                        (r[0], r[1], (r[2], r[3], r[4], r[5]), (r[6], r[7], r[8], r[9]), r[10])
                    )
        return sorted(found, key=lambda f: (f[0], f[1]))

    def references_into(self, run_ids: Sequence[str]) -> list[Reference]:
        """Rows of other runs that reuse the output of a row of `run_ids`, by source then hit."""
        with self._snapshot() as conn:
            refs = self._references(conn, run_ids)
        return [Reference(s, h, _utf8_size(out)) for _, _, s, h, out in refs]

    def outputs_naming(self, fragments: Sequence[str], excluding: Sequence[str]) -> list[str]:
        """Stored output texts of rows outside `excluding` that contain one of `fragments`."""
        outside = set(excluding)
        texts: list[str] = []
        wanted = sorted(set(fragments))
        for k in range(0, len(wanted), 50):
            chunk = wanted[k : k + 50]
            patterns = ["%" + re.sub(r"([%_!])", r"!\1", f) + "%" for f in chunk]
            texts.extend(
                out
                for run_id, out in self._read(
                    "SELECT run_id, output FROM instances WHERE output IS NOT NULL AND ("
                    + " OR ".join(["output LIKE ? ESCAPE '!'"] * len(chunk))
                    + ")",
                    patterns,
                )
                if run_id not in outside
            )
        return texts

    def forget_runs(self, run_ids: Sequence[str]) -> list[Moved]:
        """Remove the runs and their rows in one transaction, moving outputs others reuse."""
        wanted = list(dict.fromkeys(run_ids))
        moved: list[Moved] = []
        with self._checks_deferred(), self._write() as conn:
            if self._LOCK_ROWS:
                # the rows a new hit could reuse, locked first: a hit another process is
                # writing (it holds its source `_SHARE_ROWS`) commits before the references
                # are read, so it is seen and kept; a later one finds its source gone
                for k in range(0, len(wanted), 500):
                    chunk = wanted[k : k + 500]
                    conn.execute(
                        "SELECT id FROM instances WHERE cached_from IS NULL "
                        f"AND state = 'SUCCESS' AND run_id IN ({','.join('?' * len(chunk))}) "
                        "ORDER BY id" + self._LOCK_ROWS,  # in id order, as hits lock them
                        chunk,
                    ).fetchall()
            refs = self._references(conn, wanted)
            by_source: dict[int, list[tuple[int, SourceKey, SourceKey, str | None]]] = {}
            for sid, hid, skey, hkey, out in refs:
                by_source.setdefault(sid, []).append((hid, skey, hkey, out))
            for sid, hits in by_source.items():
                root, skey, hkey, out = hits[0]  # the first by id: the oldest reuse
                conn.execute(
                    "UPDATE instances "
                    "SET output = (SELECT s.output FROM instances s WHERE s.id = ?), "
                    "parts = COALESCE(parts, (SELECT s.parts FROM instances s WHERE s.id = ?)), "
                    "cached_from = NULL WHERE id = ?",
                    (sid, sid, root),
                )
                conn.executemany(
                    "UPDATE instances SET cached_from = ? WHERE id = ?",
                    [(root, h[0]) for h in hits[1:]],
                )
                moved.append(Moved(skey, hkey, len(hits) - 1, _utf8_size(out)))
            for where in ("reasons", "hits", "instances", "tasks", "runs"):
                table = "instances" if where == "hits" else where
                extra = " AND cached_from IS NOT NULL" if where == "hits" else ""
                # a run's hits go before any cache source they point at
                for k in range(0, len(wanted), 500):
                    chunk = wanted[k : k + 500]
                    conn.execute(
                        f"DELETE FROM {table} WHERE run_id IN ({','.join('?' * len(chunk))})"
                        + extra,
                        chunk,
                    )
            dangling = conn.execute(
                "SELECT COUNT(*) FROM instances h WHERE h.cached_from IS NOT NULL "
                "AND NOT EXISTS (SELECT 1 FROM instances s WHERE s.id = h.cached_from)"
            ).fetchone()[0]
            if dangling:  # pragma: no cover - the moves above leave none; refuse rather than lose
                raise StoreError(
                    f"forgetting {len(wanted)} runs would leave {dangling} cached outputs "
                    "without their source; nothing was removed"
                )
        return moved

    @contextlib.contextmanager
    def _checks_deferred(self) -> Iterator[None]:
        """Around `forget_runs`: what the backend needs to delete many rows fast.

        Nothing here: PostgreSQL checks each deleted row's references through the
        index on `cached_from` it keeps; SQLite has no such index and turns its
        foreign-key checks off instead (`forget_runs` checks the one that matters).
        """
        yield


#: the columns of an AttemptRow, in its order
_ATTEMPT_ROW = (
    "task_name, array_index, attempt, current, state, cached_from IS NOT NULL, "
    "submitted_at, started_at, finished_at, error_text, failure_kind, resources"
)


def _attempt_row(r: Sequence[Any]) -> AttemptRow:
    t, i, a, cur, st, hit, sub, t0, t1, err, kind, asks = r
    return AttemptRow(t, i, a, bool(cur), st, bool(hit), sub, t0, t1, err, kind, _asked(asks))


def _ranges(items: Sequence[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """(task, first, last) runs of consecutive array indices among (task, index, attempt)."""
    out: list[tuple[str, int, int]] = []
    for task, index, _ in sorted(items):
        if out and out[-1][0] == task and out[-1][2] == index - 1:
            out[-1] = (task, out[-1][1], index)
        else:
            out.append((task, index, index))
    return out


_RUN_COLUMNS = (
    "run_id", "graph_name", "user", "host", "run_dir", "executor", "params", "options", "status",
    "owner_host", "owner_pid", "owner_start", "created_at", "updated_at", "finished_at",
    "dispatcher",
)  # fmt: skip
_LISTED_RUN_COLUMNS = (
    "run_id", "graph_name", "status", "created_at", "finished_at", "user", "host", "run_dir",
    "executor",
)  # fmt: skip
_ATTEMPT_COLUMNS = (
    "array_index", "attempt", "state", "error_text", "job_id", "started_at", "finished_at",
    "failure_kind", "resources",
)  # fmt: skip
_TIMES = frozenset({"created_at", "updated_at", "finished_at", "started_at"})


def _columns(names: Sequence[str]) -> str:
    """Column names for a SELECT; `user` quoted (in PostgreSQL it is a keyword)."""
    return ", ".join('"user"' if n == "user" else n for n in names)


def _as_dict(columns: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row as a dict by its column names: times as ISO text, index -1 (a singleton) as None."""
    doc = dict(zip(columns, row, strict=True))
    for key in _TIMES.intersection(doc):
        doc[key] = _iso(doc[key])
    if "resources" in doc:
        doc["resources"] = _asked(doc["resources"])
    if doc.get("array_index", 0) is not None and doc.get("array_index", 0) < 0:
        doc["array_index"] = None
    return doc


def _asked(text: str | None) -> dict[str, Any] | None:
    """An attempt's stored resources (JSON) as a dict; None when not known."""
    if text is None:
        return None
    import json

    try:
        doc = json.loads(text)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def _shown_output(text: str | None) -> dict[str, Any]:
    if text is None:
        return {"output": None}
    if len(text) > OUTPUT_SHOWN_MAX:
        return {"output": None, "output_omitted": True}
    return {"output": codec.loads(text)}


def _state_names(states: Sequence[Any] | None) -> list[str] | None:
    if states is None:
        return None
    return [str(getattr(s, "value", s)) for s in states]


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:  # no passwd entry, e.g. in a container
        return str(os.getuid())


def _utf8_size(text: str | None) -> int:
    return 0 if text is None else len(text.encode("utf-8", "surrogatepass"))
