"""Benchmark: a dispatcher pass ingesting the result files of a big array job.

    python benchmarks/ingest.py [--repeat R] [N ...]     (defaults: R = 5, N = 5000 50000)

For each N: a run of `split` (returns list(range(N))) -> `work` (array) ->
`total` (gather) is submitted through an executor that runs nothing (it only
hands out job ids, and calls the jobs it was given finished when asked).
The benchmark then plays the scheduler: it runs `split`'s job, lets a
dispatcher pass expand `work` into one N-element array job, and runs every
element of that job the way a worker does (`read_element` of the wave file,
`execute`, `write_result`), in parallel processes, leaving N result files
under `<run_dir>/results/<run_id>/work/`.  None of that is timed.

Every size is set up first; then each is timed R times over the same files,
the sizes in turns as in _harness.py, so that a growth ratio compares two
sizes measured on the same machine speed (the store and the files are
restored from copies before each repeat, and `os.sync()` runs first so the
kernel's write-back of the setup is not timed): the next dispatcher pass
(`dispatch_pass`), and inside it exactly the ingest (`dispatch._ingest`:
read the N files and record their outcomes in the store, one transaction),
and the removal of the files the store then holds (`remove_results`, which
the pass does last, once the next wave is on its way).  Prints the best
ingest time next to its target (N = 50,000 in <= 2 s), the median, the
per-instance cost, the removal and the whole pass (of the best repeat) for
information, the untimed setup, peak RSS of the process (all sizes), and the growth
ratio t(10N)/t(N) of the best ingest (target <= 12).  After each pass it
checks that every element is SUCCESS with one attempt, that the outputs are
right, and that no result file is left.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from reflow import Result, Workflow
from reflow import dispatch as dispatch_module
from reflow.dispatch import dispatch_pass
from reflow.executors.base import Executor, JobResources, JobState, JobStatus
from reflow.instances import execute
from reflow.results import read_element, run_files, write_result
from reflow.stores.sqlite import SqliteStore

TARGET_SECONDS = {50_000: 2.0}
TARGET_GROWTH = 12.0

wf = Workflow("bench-ingest")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def work(item: Annotated[int, Result(step="split")]) -> int:
    return item * 2


@wf.job()
def total(items: Annotated[list[int], Result(step="work")]) -> int:
    return sum(items)


class NullExecutor(Executor):
    """Submits nothing: remembers each job's command and size; `finish` marks it ended."""

    name = "null"
    mode = "null"

    def __init__(self) -> None:
        self.jobs: dict[str, tuple[list[str], int | None]] = {}
        self.finished: set[str] = set()

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        return " ".join(command)

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        job = f"null{len(self.jobs) + 1}"
        self.jobs[job] = (list(command), resources.array_size)
        return job

    def cancel(self, job_ids: Sequence[str]) -> None:
        return None

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        for job in job_ids:
            base = self.job_of(job)
            state = JobState.COMPLETED if base in self.finished else JobState.PENDING
            found[job] = JobStatus(state, state.value)
            size = self.jobs.get(base, ([], None))[1]
            for k in range(size or 0):
                found[self.element_id(base, k)] = JobStatus(state, state.value)
        return found

    def wave_of(self, task: str) -> tuple[str, Path, int]:
        """(job id, wave file, elements) of the job that runs `task`."""
        for job, (command, size) in self.jobs.items():
            if "--wave" in command:
                wave = Path(command[command.index("--wave") + 1])
                if wave.name.startswith(f"{task}."):
                    return job, wave, size or 1
        raise LookupError(f"no job runs '{task}'")


def _run_elements(args: tuple[str, str, str, int, int, bool]) -> int:
    """Run elements [lo, hi) of a wave as the worker does, writing one result file each."""
    job, wave, run_dir, lo, hi, array = args
    for k in range(lo, hi):
        item = read_element(Path(wave), k)
        outcome = execute(wf.tasks[item.work.task].func, item.work)
        job_id = f"{job}_{k}" if array else job
        write_result(Path(run_dir), item.run_id, outcome, job_id)
    return hi - lo


def run_job(ex: NullExecutor, task: str, run_dir: Path) -> None:
    """Play the scheduler: run every element of `task`'s job, then call the job ended."""
    job, wave, count = ex.wave_of(task)
    array = ex.jobs[job][1] is not None
    procs = os.cpu_count() or 1
    step = max(1, -(-count // (procs * 8)))
    chunks = [(job, str(wave), str(run_dir), lo, min(lo + step, count), array)
              for lo in range(0, count, step)]  # fmt: skip
    if count < 100:
        done = sum(map(_run_elements, chunks))
    else:
        with multiprocessing.get_context("fork").Pool(procs) as pool:
            done = sum(pool.imap_unordered(_run_elements, chunks))
    assert done == count
    ex.finished.add(job)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def target(n: int) -> str:
    limit = TARGET_SECONDS.get(n)
    return f"(target <= {limit:g} s)" if limit is not None else "(no target at this N)"


def _timed_pass(store: SqliteStore, run_id: str, ex: NullExecutor) -> tuple[float, float, float]:
    """Seconds of (ingest, removing the files, the whole pass) of one dispatcher pass."""
    # time what the pass spends in the ingest (read + record) and in removing the files
    # (an older reflow removes the files inside the ingest and has no `remove_results`)
    names = {"ingest": "_ingest", "remove": "remove_results"}
    spent = {name: 0.0 for name, attr in names.items() if hasattr(dispatch_module, attr)}
    real = {name: getattr(dispatch_module, names[name]) for name in spent}

    def timed(name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return real[name](*args, **kwargs)
            finally:
                spent[name] += time.perf_counter() - t0

        return call

    for name in spent:
        setattr(dispatch_module, names[name], timed(name))
    try:
        t0 = time.perf_counter()
        res = dispatch_pass(wf, store, run_id, ex, config=wf.config)
        whole = time.perf_counter() - t0
    finally:
        for name in spent:
            setattr(dispatch_module, names[name], real[name])
    n = ex.jobs[ex.wave_of("work")[0]][1] or 1
    assert res.ingested == n, f"ingested {res.ingested}, expected {n}"
    return spent["ingest"], spent.get("remove", float("nan")), whole


class Prepared:
    """A run of N elements whose `work` job has left its N result files, and copies to restore."""

    def __init__(self, tmp: Path, n: int, run_id: str, run_dir: Path, ex: NullExecutor) -> None:
        self.tmp, self.n, self.run_id, self.run_dir, self.ex = tmp, n, run_id, run_dir, ex
        self.setup = 0.0
        self.names: list[str] = []
        self.passes = 0

    @property
    def results(self) -> Path:
        return run_files(self.run_dir, self.run_id, "results") / "work"


def prepare(tmp: Path, n: int) -> Prepared:
    """Submit the run, run `split`, expand `work` and run its N elements (untimed)."""
    t_setup = time.perf_counter()
    ex = NullExecutor()
    db = tmp / f"m{n}.db"
    store = SqliteStore(db)
    run_dir = tmp / f"run{n}"
    run = wf.submit(run_dir, executor=ex, store=store, n=n)  # submits split
    run_job(ex, "split", run.run_dir)
    dispatch_pass(wf, store, run.run_id, ex, config=wf.config)  # expands and submits work
    run_job(ex, "work", run.run_dir)
    results = run_files(run.run_dir, run.run_id, "results") / "work"
    names = sorted(p.name for p in results.iterdir())
    assert len(names) == n, "the result files are not all there"
    # keep what a repeat starts from: the store as it is, and copies of the result
    # files (copies, not hard links: removing a file that has another link frees nothing,
    # so it would cost less than removing a worker's file)
    store.close()
    with sqlite3.connect(db) as src, sqlite3.connect(tmp / f"keep{n}.db") as dst:
        src.backup(dst)
    keep = tmp / f"keep{n}"
    keep.mkdir()
    for name in names:
        shutil.copyfile(results / name, keep / name)
    prep = Prepared(tmp, n, run.run_id, run.run_dir, ex)
    prep.names = names
    prep.setup = time.perf_counter() - t_setup
    return prep


def timed(prep: Prepared) -> tuple[float, float, float]:
    """(ingest, remove, pass) seconds of one pass over the N files, checked afterwards."""
    n, tmp, results = prep.n, prep.tmp, prep.results
    db = tmp / f"m{n}.db"
    if prep.passes:  # back to the start: the store, and the files the last pass removed
        with sqlite3.connect(tmp / f"keep{n}.db") as src, sqlite3.connect(db) as dst:
            src.backup(dst)
        for name in prep.names:
            shutil.copyfile(tmp / f"keep{n}" / name, results / name)
    prep.passes += 1
    os.sync()  # time the pass, not the kernel writing back what the setup wrote
    store = SqliteStore(db)
    timing = _timed_pass(store, prep.run_id, prep.ex)
    summary = store.summary(prep.run_id)
    assert summary["work"] == {"SUCCESS": n}, summary["work"]
    assert len(store.attempts(prep.run_id, "work", n - 1)) == 1
    assert not any(results.iterdir()), "result files left behind"
    assert store.get_array_outputs(prep.run_id, "work")[-1] == 2 * (n - 1)
    store.close()
    return timing


def main(sizes: list[int], repeat: int) -> None:
    print(f"best and median of {repeat} passes over the same files, the sizes in turns")
    print(
        f"{'N':>8} {'ingest s':>9} {'median':>7} {'':<22} {'us/inst':>8} {'remove s':>9} "
        f"{'pass s':>8} {'setup s':>8} {'peak MB':>8}"
    )
    previous: tuple[int, float] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        preps = [prepare(Path(tmp), n) for n in sizes]
        passes: dict[int, list[tuple[float, float, float]]] = {n: [] for n in sizes}
        for _ in range(repeat):  # the sizes in turns, as in _harness.py
            for prep in preps:
                passes[prep.n].append(timed(prep))
        for prep in preps:
            n, timings, setup = prep.n, passes[prep.n], prep.setup
            ingest, remove, whole = min(timings)
            median = statistics.median(t[0] for t in timings)
            print(
                f"{n:>8} {ingest:>9.3f} {median:>7.3f} {target(n):<22} {ingest / n * 1e6:>8.1f} "
                f"{remove:>9.3f} {whole:>8.3f} {setup:>8.1f} {peak_rss_mb():>8.0f}"
            )
            if previous and n == previous[0] * 10:
                print(
                    f"{'':>8} growth t(10N)/t(N) of the ingest (best): "
                    f"{ingest / previous[1]:.1f} (target <= {TARGET_GROWTH:g})"
                )
            previous = (n, ingest)


if __name__ == "__main__":
    args = sys.argv[1:]
    repeat = 5
    if args[:1] == ["--repeat"]:
        repeat, args = int(args[1]), args[2:]
    main([int(a) for a in args] or [5000, 50000], repeat)
