"""A pipeline that writes files, and checks them before reusing them (`verify`).

    python examples/thumbnails.py run --run-dir runs/thumbs --count 4
    rm runs/thumbs/tiles/tile_2.txt
    python examples/thumbnails.py run --run-dir runs/thumbs --count 4 --verify

Each `render` element writes one file and returns its path.  On the third
command the cache would normally be reused, but `--verify` checks that the
Path outputs still exist: only the deleted tile is rendered again.  `index`
also has a custom check (`verify=`): its cached file must not be empty.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from reflow import Param, Result, RunDir, Workflow

wf = Workflow("thumbnails")


@wf.job()
def plan(count: Annotated[int, Param(help="how many tiles to render")] = 4) -> list[int]:
    """The tile numbers to render."""
    return list(range(count))


@wf.array_job()
def render(tile: Annotated[int, Result(step="plan")], run_dir: RunDir = RunDir()) -> Path:
    """Write one tile (a small text 'image') and return its path."""
    out = run_dir / "tiles" / f"tile_{tile}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join("#" * (tile + 1) for _ in range(3)) + "\n")
    return out


@wf.job(verify=lambda path: Path(path).stat().st_size > 0 if Path(path).exists() else False)
def index(tiles: Annotated[list[Path], Result(step="render")], run_dir: RunDir = RunDir()) -> str:
    """Write an index of the tiles; the cached index is reused only if it is not empty."""
    out = run_dir / "index.txt"
    out.write_text("".join(f"{p.name} {p.stat().st_size}\n" for p in tiles))
    return str(out)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
