"""Manifest stores: the `Store` interface and `open_store`, which picks the backend.

A filesystem path (or a `sqlite:///path` URL) opens the SQLite store
(`reflow.stores.sqlite.SqliteStore`);
a `postgresql://` (or `postgres://`) URL the PostgreSQL store
(`reflow.stores.postgres.PostgresStore`, with the `reflow[postgres]` extra).
Both run the queries of `reflow.stores._sql.SqlStore`.
"""

from __future__ import annotations

import os
import re

from ..errors import StoreError
from .base import Health, HistoryRow, InstanceRow, NewInstance, Store
from .base import without_password as _without_password

__all__ = [
    "Health", "HistoryRow", "InstanceRow", "NewInstance", "Store", "normal_location", "open_store",
    "store_exists",
]  # fmt: skip

_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://")
_POSTGRES = ("postgresql", "postgres")


def open_store(
    location: str | os.PathLike[str] | Store | None = None,
    *,
    read_only: bool = False,
    peek: bool = False,
) -> Store:
    """The store at `location`: a path (SQLite) or a URL; None is the configured default.

    A Store given is returned as it is.  `read_only=True` opens a store that is
    never created, migrated or written (what `reflow doctor` inspects);
    `peek=True` one that is read and left exactly as it was, nothing beside it
    either, and refused if it needs an upgrade (what a dry run reads).  An
    unknown kind of URL is a StoreError naming it, without its password.
    """
    if location is not None and not isinstance(location, (str, os.PathLike)):
        return location
    if location is not None:
        text = os.fspath(location)
        found = _URL.match(text)
        if found is not None:
            scheme = found["scheme"].lower()
            shown = _without_password(text)
            if scheme == "sqlite":  # sqlite:///abs/path.db, as SQLAlchemy writes it
                from .sqlite import SqliteStore

                return SqliteStore(text[len(found[0]) :] or None, read_only=read_only, peek=peek)
            if scheme in _POSTGRES:
                from .postgres import PostgresStore

                return PostgresStore(text, read_only=read_only, peek=peek)
            raise StoreError(
                f"cannot open {shown}: '{scheme}://' is not a kind of store reflow knows; "
                "use a path to an SQLite file or a postgresql:// URL"
            )
    else:
        from ..config import load_config

        configured = load_config().resolved_store_path()
        if isinstance(configured, str) and _URL.match(configured):
            return open_store(configured, read_only=read_only, peek=peek)
    from .sqlite import SqliteStore

    return SqliteStore(location, read_only=read_only, peek=peek)


def store_exists(location: str | os.PathLike[str]) -> bool:
    """Whether there is a store at `location` already (looking never creates one)."""
    text = os.fspath(location)
    found = _URL.match(text)
    if found is None:
        return os.path.exists(os.path.expanduser(text))
    if found["scheme"].lower() == "sqlite":
        return os.path.exists(text[len(found[0]) :])
    if found["scheme"].lower() in _POSTGRES:  # a database without reflow's tables: no store
        from .postgres import PostgresStore

        return PostgresStore(text, read_only=True).exists()
    return True  # another kind: opening it says what is wrong


def normal_location(location: str | os.PathLike[str]) -> str:
    """`location` as the store commands show and open it: a path with `~` expanded, or a URL."""
    text = os.fspath(location)
    return text if _URL.match(text) else os.path.expanduser(text)
