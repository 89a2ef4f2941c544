"""Tasks that return files: name the parts, write one file per part, sum their sizes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from task_calls import record

from reflow import Result, Workflow

wf = Workflow("rt-files")


@wf.job(time="00:05:00", mem="100M")
def names(n: int) -> list[str]:
    record("names")
    return [f"part{i}" for i in range(n)]


@wf.job(array=True, time="00:05:00", mem="100M")
def write(name: Annotated[str, Result(step="names")], out_dir: Path) -> Path:
    record(f"write:{name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.txt"
    path.write_text(name * 3)
    return path


@wf.job(time="00:05:00", mem="100M")
def sizes(paths: Annotated[list[Path], Result(step="write")]) -> int:
    record("sizes")
    return sum(p.stat().st_size for p in paths)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
