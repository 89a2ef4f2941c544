"""Benchmark: the HTML report of a 100,000-instance run, written and opened in Chromium.

    python benchmarks/report.py [--n N] [--fail-every K] [--store PATH] [--repeat R]
                                (defaults: N = 100000, K = 100, a scratch store, R = 3)

Builds a run of a 3-stage fan-out / gather (one `split`, N `work` elements of
which every K-th fails with its own traceback, one `total`, skipped) with
`run_local(on_error="continue")`; with `--store PATH` it reuses the run of that
size already in the store, if any (the build takes seconds).  Then, best and
median of R, each in this process:

- the report's generation (`render_report`: reading the store and drawing),
  and its size on disk;
- headless Chromium (Debian's `chromium`) loading it: wall time of
  `--dump-dom` (parse, style, layout, print the DOM) and of `--screenshot`
  (a full render, 1280x4000), and of the same on an empty page, the browser's
  own start-up, printed beside them so the page's share can be read off.

Targets (issue 15): under 20 MB; opens in a browser in a few seconds; the
generator a few seconds at most.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reflow import Result, Workflow
from reflow.report import render_report, write_report
from reflow.stores import open_store

SIZE_TARGET_MB = 20


def build(fail_every: int) -> Workflow:
    wf = Workflow("bench-report")

    @wf.job()
    def split(n: int) -> list[int]:
        return list(range(n))

    @wf.array_job(cpus=1, mem="2G", time="00:30:00")
    def work(item: Annotated[int, Result(step="split")]) -> int:
        if fail_every and item % fail_every == fail_every - 1:
            raise ValueError(f"element {item} is out of range")
        return item * 2

    @wf.job()
    def total(items: Annotated[list[int], Result(step="work")]) -> int:
        return sum(items)

    return wf


def the_run(store: Path, n: int, fail_every: int) -> str:
    """The id of a run of size `n` in `store`: one found there, or a new one."""
    st = open_store(store)
    for run in st.list_runs("bench-report", limit=20):
        if st.expected_counts(run["run_id"]).get("work") == n:
            print(f"reusing run {run['run_id']} in {store}")
            return str(run["run_id"])
    t0 = time.perf_counter()
    run = build(fail_every).run_local(store.parent / "run", store=store, n=n, on_error="continue")
    print(f"built run {run.run_id} ({n:,} work elements) in {time.perf_counter() - t0:.1f} s")
    run.store.close()
    return run.run_id


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best and median wall time of `fn` over `repeat` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def chromium(*args: str, profile: Path) -> None:
    browser = shutil.which("chromium") or "chromium"
    flags = ["--headless", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    subprocess.run(
        [browser, *flags, *args],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--fail-every", type=int, default=100)
    ap.add_argument("--store", type=Path, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        store = args.store or scratch / "m.db"
        run_id = the_run(store.resolve(), args.n, args.fail_every)
        st = open_store(store)
        best, median = timed(lambda: render_report(st, run_id), args.repeat)
        page = write_report(st, run_id, scratch / "report.html")
        size = page.stat().st_size / 1e6
        print(
            f"generate  {best:7.2f} s  (median {median:.2f})   size {size:.2f} MB "
            f"(target <= {SIZE_TARGET_MB} MB{'' if size <= SIZE_TARGET_MB else ': MISSED'})"
        )
        if not shutil.which("chromium"):
            print("chromium is not installed (apt-get install chromium): no browser figures")
            return
        blank = scratch / "blank.html"
        blank.write_text("<!DOCTYPE html><title>blank</title>", encoding="utf-8")
        shot = scratch / "shot.png"
        for what, extra in (
            ("dump-dom", ["--dump-dom"]),
            ("screenshot", [f"--screenshot={shot}", "--window-size=1280,4000"]),
        ):
            for name, target in (("report", page), ("blank", blank)):
                b, m = timed(
                    lambda extra=extra, target=target: chromium(
                        *extra, target.as_uri(), profile=scratch / "profile"
                    ),
                    args.repeat,
                )
                print(f"chromium --{what:<10} {name:<6} {b:6.2f} s  (median {m:.2f})")


if __name__ == "__main__":
    main()
