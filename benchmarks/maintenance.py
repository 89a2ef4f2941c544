"""Benchmark: `reflow store copy` and `reflow gc --keep-last 10` on a store of 100 runs.

    python benchmarks/maintenance.py [--runs 100] [--width 1000] [--dst URL] [--keep-last 10]

Builds a store of `--runs` runs of three workflows (a fan-out of `--width`
with Path outputs in the run dir, one of 50, a chain of three), the parameters
changing every few runs so that most runs reuse much of the runs before
(cache hits across runs), then times, each once, printing counts, sizes and
seconds:

- `store copy SRC DST` (DST: `--dst`, a path or URL as `--store-path` takes;
  default a new SQLite file beside SRC), then the same copy again (idempotent:
  it only compares), then DST back into a new SQLite file;
- `gc --keep-last N --dry-run`, then `gc --keep-last N`, on the copy.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reflow import Result, RunDir, Workflow
from reflow.cli import main
from reflow.stores import open_store


def workflows() -> list[Workflow]:
    wide = Workflow("bench-wide")

    @wide.job()
    def items(n: int, salt: int) -> list[int]:
        return list(range(n))

    @wide.array_job()
    def write(x: Annotated[int, Result(step="items")], salt: int, d: RunDir = RunDir()) -> Path:
        path = Path(d) / f"w-{salt}-{x}.txt"
        path.write_text(f"{x}\n" * 20)
        return path

    @wide.job()
    def count(paths: Annotated[list[Path], Result(step="write")]) -> int:
        return len(paths)

    small = Workflow("bench-small")

    @small.job()
    def seeds(n: int) -> list[int]:
        return list(range(n))

    @small.array_job()
    def square(x: Annotated[int, Result(step="seeds")], salt: int) -> str:
        return str(x * x * salt).rjust(100, ".")

    chain = Workflow("bench-chain")

    @chain.job()
    def a(salt: int) -> int:
        return salt

    @chain.job()
    def b(x: Annotated[int, Result(step="a")]) -> int:
        return x + 1

    @chain.job()
    def c(x: Annotated[int, Result(step="b")]) -> str:
        return "c" * 1000 + str(x)

    return [wide, small, chain]


def build(store_path: Path, base: Path, runs: int, width: int = 1000) -> float:
    started = time.perf_counter()
    store = open_store(store_path)
    flows = workflows()
    for k in range(runs):
        wf = flows[k % 3]
        salt = k // 9  # the same parameters for three runs of each workflow in a row
        folder = base / f"run{k}"
        if wf.name == "bench-wide":
            wf.run_local(folder, store=store, n=width, salt=salt)
        elif wf.name == "bench-small":
            wf.run_local(folder, store=store, n=50, salt=salt)
        else:
            wf.run_local(folder, store=store, salt=salt)
    store.close()
    return time.perf_counter() - started


def timed(argv: list[str]) -> tuple[float, list[str]]:
    out = io.StringIO()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    took = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    return took, out.getvalue().splitlines()


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.parent.glob(path.name + "*") if f.is_file())


def files_under(base: Path) -> tuple[int, int]:
    n = total = 0
    for folder, _, names in os.walk(base):
        for name in names:
            n += 1
            total += (Path(folder) / name).stat().st_size
    return n, total


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--width", type=int, default=1000, help="the wide fan-out's elements")
    parser.add_argument("--dst", help="the copy's destination (default: an SQLite file)")
    parser.add_argument("--keep-last", type=int, default=10)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        src = base / "src.db"
        built = build(src, base / "dirs", ns.runs, ns.width)
        store = open_store(src)
        instances = sum(sum(sum(s.values()) for s in store.summary(r["run_id"]).values())
                        for r in store.list_runs())  # fmt: skip
        store.close()
        n_files, file_bytes = files_under(base / "dirs")
        print(
            f"built {ns.runs} runs, {instances:,} instances in {built:.1f} s: store "
            f"{size(src):,} bytes, {n_files:,} files ({file_bytes:,} bytes) in the run dirs"
        )
        dst = ns.dst or str(base / "dst.db")
        took, lines = timed(["store", "copy", str(src), dst])
        print(f"store copy: {took:.2f} s; {lines[-2]}")
        print(f"  {lines[-1]}")
        took, lines = timed(["store", "copy", str(src), dst])
        print(f"store copy again: {took:.2f} s; {lines[-2]}")
        back = str(base / "back.db")  # the other way: from the copy into a new SQLite file
        took, lines = timed(["store", "copy", dst, back])
        print(f"store copy back: {took:.2f} s; {lines[-2]}")
        print(f"  {lines[-1]}")
        for dry in (True, False):
            argv = ["gc", "--keep-last", str(ns.keep_last), "--store-path", dst]
            took, lines = timed([*argv, "--dry-run"] if dry else argv)
            moved = sum(1 for line in lines if "by moving it into" in line)
            print(f"gc --keep-last {ns.keep_last}{' --dry-run' if dry else ''}: {took:.2f} s")
            print(f"  {lines[-1]} ({moved} moved)")
        if not ns.dst:
            n_after, bytes_after = files_under(base / "dirs")
            print(
                f"after gc: store {size(Path(dst)):,} bytes (before VACUUM), "
                f"{n_after:,} files ({bytes_after:,} bytes) in the run dirs"
            )


if __name__ == "__main__":
    main_()
