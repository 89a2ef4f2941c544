"""A read-only bind mount of a folder, for tests of stores nobody may write."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Mount `folder` read-only over itself for the block; skip the test where that fails."""
    mount = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(folder), str(folder)], capture_output=True, check=False
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot make a read-only mount here: {mount.stderr.decode().strip()}")
    try:
        # some kernels ignore "ro" on the first bind: remount to make sure
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=False)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=False)
