"""SqliteStore: the shared manifest of runs, task instances and cached outputs, in a file.

One SQLite file holds every run.  Only the process driving a run writes to
it (workers never do), each wave in one transaction.  The schema is
versioned; a store written by a newer reflow is refused, never rewritten.
The queries are `_sql.SqlStore`'s (shared with PostgreSQL); this module holds
what is SQLite's own: the file (created atomically, private by default), the
journal mode by filesystem, waiting on a busy file, read-only and peek modes,
and the schema checks and upgrades.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import StoreError
from ._sql import _MIGRATIONS, _SCHEMA, OUTPUT_SHOWN_MAX, SCHEMA_VERSION, SqlStore, run_script
from .base import Health, InstanceRow, NewInstance

__all__ = ["OUTPUT_SHOWN_MAX", "SCHEMA_VERSION", "InstanceRow", "NewInstance", "SqliteStore"]

# Network and cluster filesystems on which SQLite's WAL mode is unsafe (WAL needs
# shared memory between all processes using the file, which these cannot give).
_NETWORK_FS = frozenset(
    {
        "nfs", "nfs4", "lustre", "gpfs", "cifs", "smb3", "smbfs", "beegfs", "ceph",
        "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.s3fs", "panfs", "pvfs2",
        "fuse.ceph", "ocfs2", "gfs2", "afs", "9p", "wekafs", "fuse.juicefs",
    }
)  # fmt: skip


#: the mount table `_filesystem_type` reads (a test points it at a fake one)
MOUNT_TABLE = "/proc/mounts"


def _filesystem_type(path: Path) -> str:
    """The type of the filesystem holding `path`, from the mount table ('' if unknown)."""
    try:
        with open(MOUNT_TABLE, encoding="utf-8", errors="replace") as fh:
            mounts = [line.split()[1:3] for line in fh if len(line.split()) >= 3]
    except OSError:
        return ""
    target = str(path.resolve())
    best, fstype = -1, ""
    for mount_point, kind in mounts:
        # the table escapes space, tab, newline and backslash as octal (\040, ...)
        mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mount_point)
        # `>=`: of two mounts on one point (autofs, then the NFS it mounts) the later wins
        if (target == mp or target.startswith(mp.rstrip("/") + "/")) and len(mp) >= best:
            best, fstype = len(mp), kind
    return fstype


class SqliteStore(SqlStore):
    """The manifest store in one SQLite file (default `~/.cache/reflow/manifest.db`)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        timeout: float = 60.0,
        read_only: bool = False,
        peek: bool = False,
    ):
        if path is None:
            from ..config import load_config

            path = load_config().resolved_store_path()
        self.path = Path(path).expanduser()
        self.timeout = timeout
        # read-only: never created, migrated or written (what `reflow doctor` inspects)
        self.read_only = read_only
        # peek: read an existing store of this schema without changing a byte of it and
        # without leaving a file beside it (a dry run); refused if it would need an upgrade
        self.peek = peek
        self._start()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    @property
    def location(self) -> str:
        """The store's file, as `open_store` takes it."""
        return str(self.path)

    @property
    def _shown(self) -> str:
        return str(self.path)

    _BEGIN = "BEGIN IMMEDIATE"  # take the write lock at once: no deadlock upgrading a read
    _Error = sqlite3.DatabaseError
    _IntegrityError = sqlite3.IntegrityError
    _UnusableError = sqlite3.OperationalError  # read-only, disk full, I/O, locked: say so

    # ------------------------------------------------------------------ connection

    def _open(self) -> sqlite3.Connection:
        if self.read_only:
            return self._open_read_only()
        if self.peek:
            return self._open_peek()
        path = self.path
        if path.is_dir():
            raise StoreError(f"store path {path} is a directory: give the path of a file")
        created = not path.exists()
        if created:
            try:
                if self._is_default():
                    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                self._create_file(path)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the store {path}: {exc.strerror or exc}; set REFLOW_STORE_PATH "
                    "or --store-path to a writable location"
                ) from None
        try:
            conn = self._connect(path)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            # 16 MiB: at 100,000 instances 64 MiB cost 100 MB more peak RSS and was no faster
            conn.execute("PRAGMA cache_size = -16384")
            try:
                self._check_schema(conn, created)
                self._set_journal(conn)
            except BaseException:
                conn.close()  # a refused store keeps no handle (nor -wal/-shm files) open
                raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._describe_error(exc)) from None
        return conn

    def _is_default(self) -> bool:
        """Whether this is the default store, the user's own, created private.

        (A 0700 folder and a 0600 file; a team store elsewhere keeps the
        permissions its owner gives it.)
        """
        from ..config import default_store_path  # only when creating a store

        return self.path.absolute() == default_store_path().absolute()

    def _open_read_only(self) -> sqlite3.Connection:
        path = self.path
        if not path.exists():
            raise StoreError(
                f"there is no store at {path}: check --store-path or REFLOW_STORE_PATH"
            )
        try:
            conn = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=ro",
                uri=True,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"{path} is not a readable SQLite database ({exc}); it was left untouched"
            ) from None
        return conn

    def _open_peek(self) -> sqlite3.Connection:
        """A connection that reads and can write nothing (`query_only`).

        Unlike `mode=ro`, it is an ordinary reader of a WAL store: the last
        connection to close removes the -wal and -shm files, as after any
        command, so the store's folder is left as it was.
        """
        path = self.path
        if not path.is_file():
            raise StoreError(
                f"there is no store at {path}: check --store-path or REFLOW_STORE_PATH"
            )
        try:
            conn = sqlite3.connect(
                f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=self.timeout,
                isolation_level=None, check_same_thread=False,
            )  # fmt: skip
            conn.execute("PRAGMA query_only = 1")
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(self._describe_error(exc)) from None
        version = int(row[0]) if row else 0
        if version != SCHEMA_VERSION:
            conn.close()
            raise StoreError(
                f"the store {path} has schema version {version} and this reflow reads "
                f"{SCHEMA_VERSION}; a dry run changes nothing, so it does not upgrade it: "
                "run 'reflow runs' once to upgrade it (the upgrade keeps every run)"
            )
        return conn

    def _connect(self, path: Path) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                str(path), timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            if os.access(path.parent, os.W_OK) or not path.exists():
                raise
        # a store on a read-only mount (SQLite cannot make its -shm file there): it can
        # still be read; any write fails with "attempt to write a readonly database"
        uri = f"{path.absolute().as_uri()}?mode=ro&immutable=1"
        return sqlite3.connect(
            uri, uri=True, timeout=self.timeout, isolation_level=None, check_same_thread=False
        )

    def _describe_error(self, exc: BaseException) -> str:
        msg = str(exc)
        if "not a database" in msg or "malformed" in msg or "file is encrypted" in msg:
            return (
                f"{self.path} is not a reflow store or is corrupt ({msg}); it was left "
                "untouched: move it aside, or point REFLOW_STORE_PATH elsewhere"
            )
        if "full" in msg or "disk i/o" in msg:
            return (
                f"cannot write the store {self.path} ({msg}): free some space or move the "
                "store; nothing was lost, the transaction was rolled back"
            )
        if "readonly" in msg or "unable to open" in msg:
            return (
                f"cannot open the store {self.path} ({msg}): check its permissions, or set "
                "REFLOW_STORE_PATH to a writable location"
            )
        if "locked" in msg:
            return (
                f"the store {self.path} stayed locked for {self.timeout:.0f} s ({msg}); "
                "another reflow process holds it: try again when it finishes"
            )
        return f"cannot use the store {self.path}: {msg}"

    def _set_journal(self, conn: sqlite3.Connection) -> None:
        fstype = _filesystem_type(self.path)
        wanted = "delete" if fstype in _NETWORK_FS or fstype.startswith("nfs") else "wal"
        forced = os.environ.get("REFLOW_SQLITE_JOURNAL", "").strip().lower()
        if forced in ("wal", "delete", "truncate", "persist"):
            wanted = forced
        current = conn.execute("PRAGMA journal_mode").fetchone()[0]
        if current != wanted:
            with contextlib.suppress(sqlite3.OperationalError):
                conn.execute(f"PRAGMA journal_mode = {wanted}")
        conn.execute(
            "PRAGMA synchronous = NORMAL" if wanted == "wal" else "PRAGMA synchronous = FULL"
        )

    def _check_schema(self, conn: sqlite3.Connection, created: bool) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if not created and not self._fresh_empty_file():
                raise StoreError(
                    f"{self.path} exists but holds no reflow store (an empty file); it was left "
                    "untouched: remove it, or choose another store path"
                )
            self._retry(lambda: self._create_schema(conn))
            return
        if "meta" not in tables and {"task_instances", "task_specs"} <= tables:
            raise StoreError(
                f"{self.path} is a reflow-hpc store, which reflow cannot use (its schema is "
                "not reflow's); it was left untouched: move it aside or choose another store "
                "path (see docs/migrating-from-reflow-hpc.md)"
            )
        if "meta" not in tables:
            raise StoreError(
                f"{self.path} is an SQLite file but not a reflow store (no 'meta' table); it "
                "was left untouched: choose another store path"
            )
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this reflow "
                f"understands ({SCHEMA_VERSION}): upgrade reflow to use it"
            )
        if version < SCHEMA_VERSION:
            try:
                self._retry(lambda: self._migrate(conn, version))
            except sqlite3.OperationalError as exc:
                if "readonly" not in str(exc) and "read-only" not in str(exc):
                    raise
                raise StoreError(
                    f"the store {self.path} has schema version {version} and this reflow needs "
                    f"{SCHEMA_VERSION}, but it cannot upgrade it here ({exc}): open it once "
                    "with this reflow where it is writable (the upgrade keeps every run)"
                ) from None

    def _fresh_empty_file(self) -> bool:
        """An empty file made moments ago: another reflow process is creating the store."""
        try:
            st = self.path.stat()
        except OSError:
            return True
        return st.st_size == 0 and time.time() - st.st_mtime < 10

    def _create_file(self, path: Path) -> None:
        """Make a new store: the schema is written under a temporary name, then linked in.

        So a process killed while creating the store never leaves an empty or
        half-made file at `path`; two processes creating it at once both end
        up using whichever file was linked first.
        """
        import secrets

        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))  # private
        try:
            conn = sqlite3.connect(str(tmp), isolation_level=None)
            try:
                self._create_schema(conn)
            finally:
                conn.close()
            try:
                os.link(tmp, path)  # never replaces a store another process made meanwhile
            except FileExistsError:
                pass
            except OSError:  # a filesystem without hard links
                if not path.exists():
                    os.replace(tmp, path)
        except sqlite3.DatabaseError as exc:
            raise OSError(f"cannot write a new database ({exc})") from None
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            exists = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type='table' AND name='meta'"
            ).fetchone()
            if not exists:  # another process may have created it while we waited
                run_script(conn, _SCHEMA)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # read again under the lock: another process opening the store at the same
            # moment (a thousand jobs after an upgrade) may have migrated it meanwhile
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            version = int(row[0]) if row else version
            for v in range(version + 1, SCHEMA_VERSION + 1):
                run_script(conn, _MIGRATIONS[v])
            conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),)
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _retry(self, fn: Any) -> Any:
        """Run `fn`, retrying with jittered back-off while the database is locked."""
        delay = 0.01
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return fn()
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                import random

                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)

    @contextlib.contextmanager
    def _checks_deferred(self) -> Iterator[None]:
        """Foreign keys unchecked for the statements inside (when no transaction is open).

        SQLite looks for the rows pointing at each row it deletes; with no index
        on `cached_from` that is a scan of every instance per deleted row (two
        runs of 10,001 rows in a store of 50,000: 319 s checked, 0.34 s not),
        so `forget_runs` checks the one reference that matters, `cached_from`,
        itself, once, before it commits (PostgreSQL keeps an index on cached_from).
        """
        with self._lock:
            outer = not self._depth and self._held_since is None
            if outer:
                self.conn.execute("PRAGMA foreign_keys = OFF")
            try:
                yield
            finally:
                if outer:
                    self.conn.execute("PRAGMA foreign_keys = ON")

    # ------------------------------------------------------------------ health

    def check_health(self) -> Health:
        """Inspect the store, changing nothing: schema version, integrity, counts, lost outputs."""
        conn = self.conn
        with self._lock:
            tables = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if "meta" not in tables:
                return Health(
                    0,
                    SCHEMA_VERSION,
                    [f"{self.path} is an SQLite file but not a reflow store (no 'meta' table)"],
                )
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            health = Health(int(row[0]) if row else 0, SCHEMA_VERSION)
            if health.schema_version > SCHEMA_VERSION:
                return health
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check(20)")]
            if problems != ["ok"]:
                health.problems = [f"SQLite integrity: {p}" for p in problems]
                return health
            health.integrity = "SQLite integrity check"
            self._count(health)
        return health
