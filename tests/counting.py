"""Counting real task executions in tests (imported as `from counting import Calls`)."""

from __future__ import annotations

from pathlib import Path


class Calls:
    """Counts real executions: each task appends its name to a file (works across processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, name: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(name + "\n")

    def names(self) -> list[str]:
        """Every recorded execution, in order."""
        if not self.path.exists():
            return []
        return self.path.read_text(encoding="utf-8").split()

    def count(self, name: str) -> int:
        """How many times `name` ran since the last `take()`."""
        return self.names().count(name)

    def take(self) -> dict[str, int]:
        """Executions per name since the last `take()`, then start counting afresh."""
        counts: dict[str, int] = {}
        for n in self.names():
            counts[n] = counts.get(n, 0) + 1
        self.path.unlink(missing_ok=True)
        return counts
