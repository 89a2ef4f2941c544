"""Benchmark: how fast the command line answers (issue part d).

    python benchmarks/cli.py [N ...] [--repeat K] [--src DIR]
                                      (default: 10000 100000, K = 7, this checkout's src)

Builds, for each N, a run of a 3-stage fan-out / gather pipeline (one `split`,
N `work` elements, one `total`: N + 2 instances) with the pipeline script's
`run` command in a temporary store, then times fresh Python processes:

- `python -c pass` and `python -I -S -c pass`: the interpreter's own floor
  (site-packages start-up, .pth files) -- reflow cannot go below it; what
  `site` imports (`python -X importtime -c pass`) is printed above the table;
- `python -c "import reflow"`;
- `python examples/etl.py --help` and `reflow --help`;
- the same two with reflow's source never byte-compiled (a copy of it, run
  with PYTHONDONTWRITEBYTECODE=1: every import compiles it again);
- `status RUN_ID` and `status RUN_ID --json` on the largest run, through the
  pipeline script, the `reflow` console command and `python -m reflow`.

Each command runs K times; the table shows the best and the median wall time,
the peak RSS of the command and the target next to it.  The peak RSS comes
from one more run under /usr/bin/time (`%M`) when there is one, else from the
child's `ru_maxrss` (`os.wait4`), which starts from this process's own size:
the benchmark keeps itself small (it imports nothing of reflow, and a child
checks the outputs).  `status` output goes to a file, which is checked once to
be the whole run (`--json` parsed, every instance there).  Last, the growth
ratio t(10N)/t(N) of the status commands between consecutive sizes.
Children run with reflow from `--src` first on PYTHONPATH (run it once with
the source of an older commit, e.g. from `git archive`, for a before/after)
and without PYTHONDONTWRITEBYTECODE, so that the warm-up run of each command
leaves the byte-code a normal installation has.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SRC = ROOT / "src"  # the reflow measured (--src)

PIPELINE = """
from typing import Annotated

from reflow import Result, Workflow

wf = Workflow("bench-cli")


@wf.job()
def split(n: int) -> list[int]:
    return list(range(n))


@wf.array_job()
def work(item: Annotated[int, Result(step="split")]) -> int:
    return item * 2


@wf.job()
def total(items: Annotated[list[int], Result(step="work")]) -> int:
    return sum(items)


if __name__ == "__main__":
    raise SystemExit(wf.cli())
"""

#: targets of the issue: wall seconds and peak RSS in MB (None: no target)
HELP_TARGET = (0.100, None)
STATUS_TARGET = (0.200, 60.0)
# `status --json` prints every instance (35 MB of JSON at 100,000): the issue sets it
# no time, only the growth ratio; its memory must stay flat like `status`'s
STATUS_JSON_TARGET = (None, 60.0)


def _env(src: Path | None = None, bytecode: bool = True) -> dict[str, str]:
    env = dict(os.environ)
    # the reflow measured, even if the venv's is another one; no user config file
    env["PYTHONPATH"] = str(src or SRC) + os.pathsep + env.get("PYTHONPATH", "")
    env["REFLOW_CONFIG"] = ""
    env["XDG_CONFIG_HOME"] = "/nonexistent-reflow-bench"
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


#: GNU time, to read the peak RSS of the command itself (not of a fork of this process)
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def peak_rss(argv: list[str], out: Path | None, env: dict[str, str] | None) -> float:
    """The peak RSS (MB) of one run of `argv`."""
    if TIME is None:
        return measure(argv, out, env)[1]
    with tempfile.NamedTemporaryFile("r") as report:
        measure([TIME, "-f", "%M", "-o", report.name, *argv], out, env)
        return int(report.read().split()[-1]) / 1024


def measure(
    argv: list[str], out: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, float, int]:
    """Run `argv` once: (wall seconds, peak RSS MB of that child, exit status)."""
    sink = open(out, "wb") if out else subprocess.DEVNULL  # noqa: SIM115
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdout=sink, stderr=subprocess.PIPE, env=env or _env(), cwd=ROOT
        )
        assert proc.stderr is not None
        err = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    finally:
        if out:
            sink.close()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024, proc.returncode


class Row:
    def __init__(
        self,
        label: str,
        argv: list[str],
        target: tuple[float | None, float | None],
        env: dict[str, str] | None = None,
    ):
        self.label, self.argv, self.target, self.env = label, argv, target, env
        self.walls: list[float] = []
        self.rss = 0.0

    def run(self, repeat: int, out: Path | None = None) -> Row:
        measure(self.argv, out, self.env)  # warm the OS cache and __pycache__
        for _ in range(repeat):
            self.walls.append(measure(self.argv, out, self.env)[0])
        self.rss = peak_rss(self.argv, out, self.env)
        return self

    @property
    def best(self) -> float:
        return min(self.walls)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    def line(self) -> str:
        wall_t, rss_t = self.target
        target = []
        ok = True
        if wall_t is not None:
            target.append(f"<= {wall_t * 1000:.0f} ms")
            ok = ok and self.median <= wall_t
        if rss_t is not None:
            target.append(f"<= {rss_t:.0f} MB")
            ok = ok and self.rss <= rss_t
        verdict = "" if not target else ("ok" if ok else "MISSED")
        return (
            f"{self.label:<44} {self.best * 1000:>8.1f} {self.median * 1000:>8.1f} "
            f"{self.rss:>8.1f}  {', '.join(target):<20} {verdict}"
        )


def reflow_command() -> list[str] | None:
    """The `reflow` console script installed next to this Python, if any."""
    found = Path(PY).with_name("reflow")
    if found.exists():
        return [str(found)]
    which = shutil.which("reflow")
    return [which] if which else None


def build_run(tmp: Path, script: Path, n: int) -> tuple[Path, str]:
    """Run the pipeline with N elements in a store of its own; (store, run id)."""
    store = tmp / f"manifest-{n}.db"
    t0 = time.perf_counter()
    subprocess.run(
        [PY, str(script), "run", "--run-dir", str(tmp / f"run-{n}"), "--store-path", str(store),
         "--n", str(n)],
        check=True, env=_env(), stdout=subprocess.DEVNULL,
    )  # fmt: skip
    rows = json.loads(
        subprocess.run(
            [PY, "-m", "reflow", "runs", "--json", "--last", "1", "--store-path", str(store)],
            check=True, env=_env(), capture_output=True, text=True,
        ).stdout
    )  # fmt: skip
    print(f"built run {rows[0]['run_id']}: {n + 2} instances in {time.perf_counter() - t0:.1f} s")
    return store, rows[0]["run_id"]


def status_rows(
    script: Path, store: Path, run_id: str, n: int
) -> list[tuple[str, list[str], bool]]:
    """(label, argv, is_json) of every status command to time on one run."""
    tail = [run_id, "--store-path", str(store)]
    commands: list[tuple[str, list[str]]] = [("script", [PY, str(script), "status"])]
    console = reflow_command()
    if console:
        commands.append(("reflow", [*console, "status"]))
    commands.append(("python -m reflow", [PY, "-m", "reflow", "status"]))
    out = []
    for name, argv in commands:
        out.append((f"{name} status  (N={n})", [*argv, *tail], False))
        out.append((f"{name} status --json  (N={n})", [*argv, *tail, "--json"], True))
    return out


CHECK = """
import json, sys
out, is_json, run_id, instances = sys.argv[1], sys.argv[2] == "1", sys.argv[3], int(sys.argv[4])
text = open(out).read()
if is_json:
    doc = json.loads(text)
    assert doc["run"]["run_id"] == run_id, doc["run"]
    assert len(doc["instances"]) == instances, len(doc["instances"])
    assert sum(sum(c.values()) for c in doc["summary"].values()) == instances
else:
    assert text.startswith(f"run {run_id}"), text[:200]
    assert f"{instances - 2:>6}  {instances - 2} SUCCESS" in text, text
"""


def check_output(out: Path, is_json: bool, run_id: str, instances: int) -> None:
    """Check a status output in a child (parsing 40 MB of JSON would grow this process)."""
    subprocess.run(
        [PY, "-c", CHECK, str(out), "1" if is_json else "0", run_id, str(instances)], check=True
    )


def site_imports() -> str:
    """What `site` imports at start-up (.pth files and the like), from -X importtime."""
    err = subprocess.run(
        [PY, "-X", "importtime", "-c", "pass"], env=_env(), capture_output=True, text=True
    ).stderr
    total, parts, children = "?", [], []
    for line in err.splitlines():  # a module's imports are listed before it, indented
        fields = line.removeprefix("import time:").split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name, cumulative = fields[2].rstrip(), int(fields[1]) / 1000
        if name.startswith("   ") and not name.startswith("    "):
            children.append(f"{name.strip()} {cumulative:.1f}")
        elif not name.startswith("  "):
            if name == " site":
                total, parts = f"{cumulative:.1f} ms", children
            children = []
    return f"site imports {total} at start-up (-X importtime): {', '.join(parts)}"


def main(argv: list[str]) -> None:
    global SRC
    repeat = 7
    if "--repeat" in argv:
        i = argv.index("--repeat")
        repeat = int(argv[i + 1])
        del argv[i : i + 2]
    if "--src" in argv:
        i = argv.index("--src")
        SRC = Path(argv[i + 1]).resolve()
        del argv[i : i + 2]
    sizes = sorted(int(a) for a in argv) or [10000, 100000]
    print(f"python {sys.version.split()[0]} at {PY}; {os.cpu_count()} CPUs; {repeat} runs each")
    print(f"reflow from {SRC}; load average {os.getloadavg()[0]:.2f} at the start")
    print(site_imports())
    header = f"{'command':<44} {'best ms':>8} {'med. ms':>8} {'peak MB':>8}  {'target':<20}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        script = tmp / "bench_cli.py"
        script.write_text(PIPELINE)
        runs = {n: build_run(tmp, script, n) for n in sizes}
        console = reflow_command()
        cold = _env(
            shutil.copytree(SRC, tmp / "src", ignore=shutil.ignore_patterns("__pycache__")),
            bytecode=False,
        )
        etl = [PY, "examples/etl.py", "--help"]
        rows = [
            Row("python -c pass (floor)", [PY, "-c", "pass"], (None, None)),
            Row("python -I -S -c pass (no site)", [PY, "-I", "-S", "-c", "pass"], (None, None)),
            Row('python -c "import reflow"', [PY, "-c", "import reflow"], HELP_TARGET),
            Row("python examples/etl.py --help", etl, HELP_TARGET),
            Row("python bench_cli.py run --help", [PY, str(script), "run", "--help"], HELP_TARGET),
        ]
        if console:
            rows.append(Row("reflow --help", [*console, "--help"], HELP_TARGET))
        rows += [
            Row(
                '  "import reflow", no .pyc of reflow',
                [PY, "-c", "import reflow"],
                HELP_TARGET,
                cold,
            ),
            Row("  etl.py --help, no .pyc of reflow", etl, HELP_TARGET, cold),
        ]
        print()
        print(header)
        for row in rows:
            print(row.run(repeat).line(), flush=True)
        timed: dict[tuple[str, int], Row] = {}
        for n in sizes:
            store, run_id = runs[n]
            for label, cmd, is_json in status_rows(script, store, run_id, n):
                out = tmp / "status.out"
                target = STATUS_JSON_TARGET if is_json else STATUS_TARGET
                row = Row(label, cmd, target).run(repeat, out)
                check_output(out, is_json, run_id, n + 2)
                print(row.line(), flush=True)
                timed[(label.split("  (")[0], n)] = row
        print()
        for (label, n), row in timed.items():
            smaller = timed.get((label, n // 10))
            if smaller is not None:
                print(
                    f"growth t(10N)/t(N), {label}, N={n // 10} -> {n}: "
                    f"{row.median / smaller.median:.1f} (target <= 12)"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
