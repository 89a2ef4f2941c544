"""Shared fixtures: every test gets a private HOME, config dir and store."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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
    yield


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """A fresh manifest path for one test."""
    return tmp_path / "manifest.db"


@pytest.fixture
def calls(tmp_path: Path) -> Calls:
    """A fresh execution counter for one test."""
    return Calls(tmp_path / "calls.log")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that drive the scheduler simulators are integration tests: mark them."""
    for item in items:
        if "sims" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.simulators)
