"""Shared fixtures: every test gets a private HOME, config dir and store."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from counting import Calls

SRC = Path(__file__).resolve().parents[1] / "src"
if str(SRC) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(SRC))


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep tests away from the real ~/.cache and ~/.config and from REFLOW_* settings."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for key in list(os.environ):
        if key.startswith("REFLOW_"):
            monkeypatch.delenv(key)
    # a PostgreSQL store opened by a URL with a password hands it to the processes it
    # starts (PGPASSWORD): taken back after each test
    monkeypatch.delenv("PGPASSWORD", raising=False)
    yield


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A fresh manifest path for one test."""
    return tmp_path / "manifest.db"


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    """A fresh SQLite store path, for a test of what only the SQLite store has."""
    return tmp_path / "manifest.db"


#: the PostgreSQL server the `postgres` tests use (./scripts/test starts one as root),
#: read before each test's environment is cleared of REFLOW_* settings
POSTGRES_ENV = "REFLOW_TEST_POSTGRES"
POSTGRES_URL = os.environ.get(POSTGRES_ENV, "")


def postgres_server() -> str:
    """The URL of the test server, or skip (fail in CI) saying why there is none."""
    url = POSTGRES_URL
    reason = ""
    if not url:
        reason = (
            f"no PostgreSQL server: set {POSTGRES_ENV}=postgresql://... "
            "(./scripts/test starts one as root: scripts/postgres-test-cluster)"
        )
    else:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            reason = "psycopg is not installed: pip install 'reflow[postgres]'"
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


@contextlib.contextmanager
def _fresh_schema(base: str) -> Iterator[str]:
    import uuid

    import psycopg

    schema = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in base else "?"
    try:
        yield f"{base}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL of an empty store of its own on the test server: a fresh schema, dropped after."""
    with _fresh_schema(postgres_server()) as url:
        yield url


@pytest.fixture
def postgres_urls() -> Iterator[Callable[[], str]]:
    """Makes URLs of empty stores of their own on the test server, dropped after the test."""
    base = postgres_server()
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(_fresh_schema(base))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store location on each backend: an SQLite file, a PostgreSQL URL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "manifest.db")


@pytest.fixture
def calls(tmp_path: Path) -> Calls:
    """A fresh execution counter for one test."""
    return Calls(tmp_path / "calls.log")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that drive the scheduler simulators are integration tests: mark them."""
    for item in items:
        if "sims" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.simulators)
