"""The command line: `wf.cli()` of pipeline scripts and the `reflow` console command.

What a user sees is checked through real subprocesses (help text, error paths,
config precedence, the terminal progress display); the rest runs in-process
(`wf.cli([...])`, `reflow.cli.main([...])`) with capsys, which is faster and
equivalent.  Every subprocess gets the isolated HOME/XDG dirs of conftest.py.
"""

from __future__ import annotations

import builtins
import datetime as dt
import importlib.util
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import reflow
from reflow.cli import main
from reflow.runner import task_rows
from reflow.stores.sqlite import SqliteStore

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
SALES = EXAMPLES / "data" / "sales.csv"

SUMMARY = re.compile(
    r"^run (?P<id>\S+) (?P<state>SUCCESS|FAILED|CANCELLED) in \d+\.\d s: "
    r"(?P<total>\d+) instances, (?P<ran>\d+) ran, (?P<cached>\d+) cached"
)


# ---------------------------------------------------------------------- helpers


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess: the test's isolated one, reflow importable."""
    env = dict(os.environ)  # already patched by conftest's autouse fixture
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO / "src"), *([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])]
    )
    env["COLUMNS"] = "200"  # argparse wraps help text at the terminal width
    env.pop("REFLOW_DEBUG", None)
    env.update(extra)
    return env


@dataclass
class Done:
    code: int
    out: str
    err: str


def cli(*args: object, cwd: Path, env: dict[str, str] | None = None) -> Done:
    """`python ARGS...` in a subprocess, stdin closed and output piped (not a terminal)."""
    proc = subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=cwd,
        env=env or child_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Done(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(done: Done, code: int, *words: str) -> str:
    """Exit `code`, exactly one line on stderr containing `words`, and no traceback."""
    assert done.code == code, done
    assert "Traceback" not in done.err, done.err
    lines = done.err.strip().splitlines()
    assert len(lines) == 1, done.err
    assert lines[0].startswith("error: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def in_process(
    fn: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str], *args: object
) -> Done:
    """`fn([args...])` in this process, with its captured output."""
    capsys.readouterr()
    code = fn([str(a) for a in args])
    out, err = capsys.readouterr()
    return Done(code, out, err)


def load_pipeline(path: Path, source: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """Write a pipeline script and import it as a module (its `wf` is the workflow)."""
    path.write_text(textwrap.dedent(source))
    name = f"_pipeline_{path.stem}_{abs(hash(path))}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def run_ids(store_path: Path) -> list[str]:
    return [r["run_id"] for r in SqliteStore(store_path).list_runs()]


def summary_of(text: str) -> re.Match[str]:
    found = [m for m in map(SUMMARY.match, text.splitlines()) if m]
    assert len(found) == 1, text
    return found[0]


# ---------------------------------------------------------------------- pipelines

PARAMS = '''
    """Every kind of parameter a pipeline can have."""
    from pathlib import Path
    from typing import Annotated, Literal

    from reflow import Param, Result, Workflow

    wf = Workflow("params")


    @wf.job()
    def prepare(
        count: Annotated[int, Param(help="how many items", short="-n")],
        mode: Annotated[Literal["fast", "slow"], Param(help="how hard to try")] = "fast",
        level: Annotated[Literal[1, 2, 3], Param(help="detail level")] = 2,
    ) -> list[int]:
        return list(range(count))


    @wf.array_job()
    def work(
        item: Annotated[int, Result(step="prepare")],
        scale: Annotated[int, Param(help="multiplier of each item", namespace="local")] = 2,
    ) -> int:
        return item * scale


    @wf.job()
    def total(
        items: Annotated[list[int], Result(step="work")],
        scale: Annotated[int, Param(help="multiplier of the sum", namespace="local")] = 3,
    ) -> int:
        return sum(items) * scale


    @wf.job()
    def echo(
        mode: Annotated[Literal["fast", "slow"], Param(help="how hard to try")] = "fast",
        dry: Annotated[bool, Param(help="only pretend")] = False,
        keep: Annotated[bool, Param(help="keep the scratch files")] = True,
        tags: Annotated[list[str], Param(help="labels to attach")] = [],
        labels: Annotated[list[str], Param(help="one or more names")] = ["x"],
        sizes: Annotated[list[int], Param(help="sizes to try")] = [1, 2],
        ratio: Annotated[float, Param(help="a fraction, 0-100%")] = 0.5,
        out: Annotated[Path, Param(help="where to write")] = Path("out"),
        note: Annotated[str | None, Param(help="a remark")] = None,
        region: Annotated[str, Param(help="one region")] = "north",
    ) -> dict:
        return {
            "mode": mode, "dry": dry, "keep": keep, "tags": tags, "labels": labels,
            "sizes": sizes, "ratio": ratio, "out": str(out), "note": note, "region": region,
        }


    if __name__ == "__main__":
        raise SystemExit(wf.cli())
'''

FLAKY = '''
    """Item 2 fails while the poison file exists, deep inside a helper."""
    from pathlib import Path
    from typing import Annotated

    from reflow import Param, Result, Workflow

    wf = Workflow("flaky")


    def dig(depth: int, item: int) -> int:
        if depth == 0:
            raise ValueError(f"item {item} is poisoned")
        return dig(depth - 1, item)


    @wf.job()
    def items(n: Annotated[int, Param(help="how many items")] = 4) -> list[int]:
        return list(range(n))


    @wf.array_job()
    def check(
        item: Annotated[int, Result(step="items")],
        poison: Annotated[Path, Param(help="while this file exists, item 2 fails")],
    ) -> int:
        if item == 2 and Path(poison).exists():
            dig(20, item)
        return item * 10


    @wf.job()
    def report(values: Annotated[list[int], Result(step="check")]) -> int:
        return sum(values)


    if __name__ == "__main__":
        raise SystemExit(wf.cli())
'''

SHAPES = '''
    """Every kind of edge."""
    from typing import Annotated

    from reflow import Result, Workflow

    wf = Workflow("shapes")


    @wf.job()
    def split(n: int = 3) -> list[int]:
        return list(range(n))


    @wf.job()
    def offset() -> int:
        return 10


    @wf.array_job()
    def square(
        x: Annotated[int, Result(step="split")],
        off: Annotated[int, Result(step="offset", broadcast=True)],
    ) -> int:
        return x * x + off


    @wf.array_job()
    def double(x: Annotated[int, Result(step="square")]) -> int:
        return 2 * x


    @wf.job(after=["offset"])
    def gather(xs: Annotated[list[int], Result(step="double")]) -> int:
        return sum(xs)


    if __name__ == "__main__":
        raise SystemExit(wf.cli())
'''

BROKEN = """
    from typing import Annotated

    from reflow import Param, Result, Workflow

    wf = Workflow("broken")


    @wf.job()
    def prepare(n: Annotated[int, Param(help="how many items")] = 2) -> list[int]:
        return list(range(n))


    @wf.array_job()
    def work(item: Annotated[int, Result(step="prepar")]) -> int:
        return item


    if __name__ == "__main__":
        raise SystemExit(wf.cli())
"""

SLOW = """
    import time
    from pathlib import Path
    from typing import Annotated

    from reflow import Param, Result, Workflow

    wf = Workflow("slow")


    @wf.job()
    def plan(n: int = 200) -> list[int]:
        return list(range(n))


    @wf.array_job()
    def nap(
        i: Annotated[int, Result(step="plan")],
        brake: Annotated[Path, Param(help="while this file exists, each element takes 50 ms")],
    ) -> int:
        if brake.exists():
            time.sleep(0.05)
        return i


    if __name__ == "__main__":
        raise SystemExit(wf.cli())
"""


@pytest.fixture
def params(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_pipeline(tmp_path / "params.py", PARAMS, monkeypatch)


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_pipeline(tmp_path / "flaky.py", FLAKY, monkeypatch)


@pytest.fixture
def shapes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_pipeline(tmp_path / "shapes.py", SHAPES, monkeypatch)


@dataclass
class FailedRun:
    store: Path
    run_id: str
    module: ModuleType


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FailedRun]:
    """A finished run of FLAKY: check[2] FAILED, report SKIPPED (read-only for the tests)."""
    base = tmp_path_factory.mktemp("failed_run")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(base))
        mp.setenv("XDG_CACHE_HOME", str(base / ".cache"))
        mp.setenv("XDG_CONFIG_HOME", str(base / ".config"))
        for key in list(os.environ):
            if key.startswith("REFLOW_"):
                mp.delenv(key)
        module = load_pipeline(base / "flaky.py", FLAKY, mp)
        poison = base / "poison"
        poison.touch()
        store = base / "manifest.db"
        run = module.wf.run_local(
            base / "run", store=store, on_error="continue", poison=str(poison)
        )
        yield FailedRun(store, run.run_id, module)


# ---------------------------------------------------------------------- help


def test_top_level_help_lists_every_command(tmp_path: Path) -> None:
    done = cli(EXAMPLES / "etl.py", "--help", cwd=tmp_path)
    assert done.code == 0 and done.err == ""
    assert done.out.startswith("usage: etl.py ")
    for command in ("run", "submit", "retry", "status", "cancel", "runs", "dag", "describe"):
        assert re.search(rf"^\s+{command}\s+\S", done.out, re.M), command
    assert "--store-path" in done.out and "--version" in done.out


def test_every_command_has_help(params: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "submit", "retry", "status", "cancel", "runs", "dag", "describe"):
        done = in_process(params.wf.cli, capsys, command, "--help")
        assert done.code == 0, command
        assert f" {command} [-h]" in done.out, done.out


def test_run_help_lists_each_parameter(tmp_path: Path) -> None:
    (tmp_path / "params.py").write_text(textwrap.dedent(PARAMS))
    done = cli(tmp_path / "params.py", "run", "--help", cwd=tmp_path)
    assert done.code == 0 and done.err == ""
    help_lines = {
        # flag(s) as argparse prints them -> what the description must say
        "-n COUNT, --count COUNT": "how many items (int; required)",
        "--mode {fast,slow}": "how hard to try (one of fast, slow; default: 'fast'; "
        "tasks: prepare, echo)",
        "--level {1,2,3}": "detail level (one of 1, 2, 3; default: 2)",
        "--work-scale SCALE": "multiplier of each item (int; default: 2)",
        "--total-scale SCALE": "multiplier of the sum (int; default: 3)",
        "--dry, --no-dry": "only pretend (bool; default: False)",
        "--keep, --no-keep": "keep the scratch files (bool; default: True)",
        "--tags [TAGS ...]": "labels to attach (list[str]; default: [])",
        "--labels [LABELS ...]": "one or more names (list[str]; default: ['x'])",
        "--sizes [SIZES ...]": "sizes to try (list[int]; default: [1, 2])",
        "--ratio RATIO": "a fraction, 0-100% (float; default: 0.5)",
        "--out OUT": "where to write (Path; default: out)",
        "--note NOTE": "a remark (str | None; default: None)",
        "--region REGION": "one region (str; default: 'north')",
    }
    for flags, text in help_lines.items():
        assert re.search(rf"^  {re.escape(flags)}\s+{re.escape(text)}$", done.out, re.M), (
            flags,
            done.out,
        )
    # the engine's own options are there too, and no flag for the local params' bare names
    for option in ("--run-dir DIR", "--force", "--force-tasks", "--verify", "--max-workers N"):
        assert option in done.out
    assert "--on-error {stop,continue}" in done.out
    assert not re.search(r"^\s+--scale\b", done.out, re.M)


def test_required_list_parameter_takes_one_or_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_pipeline(
        tmp_path / "lists.py",
        """
        from typing import Annotated
        from reflow import Param, Workflow

        wf = Workflow("lists")

        @wf.job()
        def join(names: Annotated[list[str], Param(help="one or more names")]) -> str:
            return ",".join(names)
        """,
        monkeypatch,
    )
    done = in_process(module.wf.cli, capsys, "run", "--help")
    assert "--names NAMES [NAMES ...]" in done.out
    assert "(list[str]; required)" in done.out
    store = tmp_path / "s.db"
    args = ["run", "--run-dir", tmp_path / "r", "--store-path", store]
    done = in_process(module.wf.cli, capsys, *args, "--names")
    assert_one_line_error(done, 2, "--names", "expected at least one argument")
    done = in_process(module.wf.cli, capsys, *args, "--names", "a", "b")
    assert done.code == 0
    assert SqliteStore(store).get_singleton_output(summary_of(done.out)["id"], "join") == "a,b"


def test_version(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected = f"reflow {reflow.__version__}"
    done = cli(EXAMPLES / "etl.py", "--version", cwd=tmp_path)
    assert done.code == 0, done
    assert done.out.strip() == expected
    done = in_process(main, capsys, "--version")
    assert done.code == 0 and done.out.strip() == expected


def test_submit_takes_the_same_parameters(
    params: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_help = in_process(params.wf.cli, capsys, "run", "--help").out
    submit_help = in_process(params.wf.cli, capsys, "submit", "--help").out
    group = run_help[run_help.index("workflow parameters:") :]
    assert group == submit_help[submit_help.index("workflow parameters:") :]
    assert "--executor NAME" in submit_help
    done = in_process(
        params.wf.cli, capsys, "submit", "--run-dir", tmp_path / "r", "-n", "2",
        "--executor", "nope", "--store-path", tmp_path / "s.db",
    )  # fmt: skip
    assert_one_line_error(done, 2, "unknown executor 'nope'")


def test_flags_reach_the_tasks(
    params: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.db"
    done = in_process(
        params.wf.cli, capsys, "run", "--run-dir", tmp_path / "r", "--store-path", store,
        "-n", "3", "--mode", "slow", "--level", "3", "--work-scale", "5", "--total-scale", "7",
        "--dry", "--no-keep", "--tags", "a", "b", "--labels", "--sizes", "4", "5", "6",
        "--ratio", "0.25", "--out", "elsewhere", "--note", "hello", "--region", "south",
    )  # fmt: skip
    assert done.code == 0, done
    assert done.err == ""
    run_id = summary_of(done.out)["id"]
    st = SqliteStore(store)
    assert st.get_array_outputs(run_id, "work") == [0, 5, 10]
    assert st.get_singleton_output(run_id, "total") == 105
    assert st.get_singleton_output(run_id, "echo") == {
        "mode": "slow", "dry": True, "keep": False, "tags": ["a", "b"], "labels": [],
        "sizes": [4, 5, 6], "ratio": 0.25, "out": "elsewhere", "note": "hello",
        "region": "south",
    }  # fmt: skip
    # defaults when nothing is given
    done = in_process(
        params.wf.cli, capsys, "run", "--run-dir", tmp_path / "r", "--store-path", store,
        "--count", "2",
    )  # fmt: skip
    assert done.code == 0, done
    assert st.get_singleton_output(summary_of(done.out)["id"], "echo") == {
        "mode": "fast", "dry": False, "keep": True, "tags": [], "labels": ["x"],
        "sizes": [1, 2], "ratio": 0.5, "out": "out", "note": None, "region": "north",
    }  # fmt: skip


# ---------------------------------------------------------------------- run


def test_run_prints_one_summary_line_and_second_run_is_cached(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.db"
    args = ["run", "--run-dir", tmp_path / "r", "--store-path", store, "--poison", "absent"]
    first = in_process(flaky.wf.cli, capsys, *args)
    assert first.code == 0, first
    assert first.err == ""  # not a terminal: no progress
    assert first.out.count("\n") == 1
    m = summary_of(first.out)
    assert (m["state"], m["total"], m["ran"], m["cached"]) == ("SUCCESS", "6", "6", "0")
    second = in_process(flaky.wf.cli, capsys, *args)
    assert second.code == 0
    m2 = summary_of(second.out)
    assert (m2["state"], m2["total"], m2["ran"], m2["cached"]) == ("SUCCESS", "6", "0", "6")
    assert m2["id"] != m["id"]
    assert run_ids(store) == [m2["id"], m["id"]]
    # --force reuses nothing, --force-tasks reruns those tasks only
    forced = summary_of(in_process(flaky.wf.cli, capsys, *args, "--force").out)
    assert (forced["ran"], forced["cached"]) == ("6", "0")
    some = summary_of(in_process(flaky.wf.cli, capsys, *args, "--force-tasks", "report").out)
    assert (some["ran"], some["cached"]) == ("1", "5")


def test_failed_run_exits_1_and_says_what_to_do_next(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    poison = tmp_path / "poison"
    poison.touch()
    done = in_process(
        flaky.wf.cli, capsys, "run", "--run-dir", tmp_path / "r",
        "--store-path", tmp_path / "s.db", "--poison", poison, "--on-error", "continue",
    )  # fmt: skip
    assert done.code == 1
    assert done.err == ""
    m = summary_of(done.out)
    assert m["state"] == "FAILED"
    assert "1 FAILED" in done.out and "1 SKIPPED" in done.out
    assert f"status {m['id']} --errors" in done.out
    assert f"retry {m['id']}" in done.out


# ---------------------------------------------------------------------- status


def status(failed_run: FailedRun, capsys: pytest.CaptureFixture[str], *args: str) -> Done:
    return in_process(
        failed_run.module.wf.cli,
        capsys,
        "status",
        failed_run.run_id,
        "--store-path",
        failed_run.store,
        *args,
    )


def test_status_lists_tasks_in_order_with_failures_beneath(
    failed_run: FailedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    done = status(failed_run, capsys)
    assert done.code == 0 and done.err == ""
    lines = done.out.splitlines()
    assert lines[0].startswith(f"run {failed_run.run_id}  FAILED")
    body = [line.strip() for line in lines[2:]]
    # each task's elapsed time, first start to last end; none for one that never started
    assert re.fullmatch(r"items\s+1\s+1 SUCCESS  \(\d+\.\d s\)", body[0])
    assert re.fullmatch(r"check\s+4\s+3 SUCCESS, 1 FAILED  \(\d+\.\d s\)", body[1])
    assert body[2] == "check[2]  FAILED (ERROR): ValueError: item 2 is poisoned"
    assert re.fullmatch(r"report\s+1\s+1 SKIPPED", body[3])
    assert body[4].startswith("report  SKIPPED: ") and "check" in body[4]
    assert len(body) == 5
    assert "Traceback" not in done.out


def test_status_errors_adds_the_last_15_lines_of_the_traceback(
    failed_run: FailedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    done = status(failed_run, capsys, "--errors")
    assert done.code == 0
    lines = done.out.splitlines()
    start = next(i for i, line in enumerate(lines) if "check[2]  FAILED" in line)
    trace = []
    for line in lines[start + 1 :]:
        if not line.startswith("          "):
            break
        trace.append(line.strip())
    assert len(trace) == 15  # the traceback is deeper (20 frames): only its tail is shown
    assert trace[-1] == "ValueError: item 2 is poisoned"
    assert any("in dig" in line for line in trace)
    assert "Traceback (most recent call last):" not in trace


def test_status_task_shows_one_task(
    failed_run: FailedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    done = status(failed_run, capsys, "--task", "check")
    assert done.code == 0
    body = [line.strip() for line in done.out.splitlines()[2:]]
    assert len(body) == 2
    assert body[0].startswith("check ") and body[1].startswith("check[2]  FAILED")


def test_status_json(failed_run: FailedRun, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads(status(failed_run, capsys, "--json").out)
    assert {"run", "summary", "instances", "failed_instances"} <= set(doc)
    assert doc["run"]["run_id"] == failed_run.run_id
    assert doc["run"]["status"] == "FAILED"
    assert doc["summary"] == {
        "items": {"SUCCESS": 1},
        "check": {"SUCCESS": 3, "FAILED": 1},
        "report": {"SKIPPED": 1},
    }
    assert len(doc["instances"]) == 6
    failed = {(i["task_name"], i["array_index"]): i for i in doc["failed_instances"]}
    assert set(failed) == {("check", 2)}  # FAILED only: skipped ones have their own list
    assert [(i["task_name"], i["state"]) for i in doc["skipped_instances"]] == [
        ("report", "SKIPPED")
    ]
    assert doc["cancelled_instances"] == []
    for inst in failed.values():
        assert {"task_name", "array_index", "state", "job_id", "error_text"} <= set(inst)
        assert {"output", "updated_at"} <= set(inst)
    assert failed[("check", 2)]["state"] == "FAILED"
    outputs = {
        (i["task_name"], i["array_index"]): i["output"]
        for i in doc["instances"]
        if i["state"] == "SUCCESS"
    }
    assert outputs[("items", None)] == [0, 1, 2, 3]
    assert all(i["updated_at"] for i in doc["instances"])
    assert "ValueError: item 2 is poisoned" in failed[("check", 2)]["error_text"]
    # --task narrows the JSON too
    doc = json.loads(status(failed_run, capsys, "--json", "--task", "report").out)
    assert list(doc["summary"]) == ["report"]
    assert {i["task_name"] for i in doc["instances"]} == {"report"}


def test_console_status_matches_the_script(
    failed_run: FailedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    script = status(failed_run, capsys, "--errors")
    console = in_process(
        main, capsys, "status", failed_run.run_id, "--store-path", failed_run.store, "--errors"
    )
    assert console.code == 0
    assert console.out == script.out
    # --store-path also works before the command
    before = in_process(main, capsys, "--store-path", failed_run.store, "status", failed_run.run_id)
    assert before.code == 0 and before.out.startswith(f"run {failed_run.run_id}")


# ---------------------------------------------------------------------- retry


def test_retry_reruns_only_what_failed(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    poison = tmp_path / "poison"
    poison.touch()
    store = tmp_path / "s.db"
    done = in_process(
        flaky.wf.cli, capsys, "run", "--run-dir", tmp_path / "r", "--store-path", store,
        "--poison", poison, "--on-error", "continue",
    )  # fmt: skip
    run_id = summary_of(done.out)["id"]
    # still poisoned: the retry fails the same way
    again = in_process(flaky.wf.cli, capsys, "retry", run_id, "--store-path", store)
    assert again.code == 1
    assert summary_of(again.out)["state"] == "FAILED"
    poison.unlink()
    before = {
        (i["task_name"], i["array_index"]): i["attempt"]
        for i in SqliteStore(store).instances(run_id)
    }
    fixed = in_process(flaky.wf.cli, capsys, "retry", run_id, "--store-path", store)
    assert fixed.code == 0, fixed
    assert fixed.out.splitlines()[0] == "retried 2 instances"
    m = summary_of(fixed.out)
    assert (m["id"], m["state"], m["total"], m["ran"], m["cached"]) == (
        run_id, "SUCCESS", "6", "2", "0"
    )  # fmt: skip
    assert "4 unchanged" in fixed.out
    after = {
        (i["task_name"], i["array_index"]): i["attempt"]
        for i in SqliteStore(store).instances(run_id)
    }
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {("check", 2), ("report", None)}
    assert SqliteStore(store).get_singleton_output(run_id, "report") == 60


def test_retry_one_task(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    poison = tmp_path / "poison"
    poison.touch()
    store = tmp_path / "s.db"
    done = in_process(
        flaky.wf.cli, capsys, "run", "--run-dir", tmp_path / "r", "--store-path", store,
        "--poison", poison, "--on-error", "continue",
    )  # fmt: skip
    run_id = summary_of(done.out)["id"]
    poison.unlink()
    one = in_process(
        flaky.wf.cli, capsys, "retry", run_id, "--task", "check", "--store-path", store
    )
    # the failed element, and the dependant that was skipped because of it
    assert one.out.splitlines()[0] == "retried 2 instances"
    assert one.code == 0
    assert SqliteStore(store).summary(run_id) == {
        "items": {"SUCCESS": 1},
        "check": {"SUCCESS": 4},
        "report": {"SUCCESS": 1},
    }


# ---------------------------------------------------------------------- cancel


def make_running_runs(wf: Any, store_path: Path, n: int) -> list[str]:
    """`n` runs recorded as RUNNING (by no live process: nothing to stop but the records)."""
    store = SqliteStore(store_path)
    rows = task_rows(wf.validate())
    return [
        store.create_run(
            wf.name,
            run_dir="/nowhere",
            executor="foreground",
            params="{}",
            options="{}",
            tasks=rows,
        )
        for _ in range(n)
    ]


def states(store_path: Path, ids: list[str]) -> list[str]:
    return [SqliteStore(store_path).get_run(i)["status"] for i in ids]


def test_cancel_one_run(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.db"
    a, b = make_running_runs(flaky.wf, store, 2)
    done = in_process(flaky.wf.cli, capsys, "cancel", a, "--store-path", store)
    assert done.code == 0, done
    assert done.out.startswith(f"cancelled run {a}")
    assert states(store, [a, b]) == ["CANCELLED", "RUNNING"]


def test_cancel_a_finished_run_changes_nothing(
    failed_run: FailedRun, capsys: pytest.CaptureFixture[str]
) -> None:
    done = in_process(main, capsys, "cancel", failed_run.run_id, "--store-path", failed_run.store)
    assert done.code == 0
    assert done.out.strip() == (
        f"run {failed_run.run_id} had already finished (FAILED): nothing to cancel"
    )
    assert states(failed_run.store, [failed_run.run_id]) == ["FAILED"]


def test_cancel_several_runs_needs_confirmation(
    flaky: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = tmp_path / "s.db"
    ids = make_running_runs(flaky.wf, store, 3)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal
    done = in_process(flaky.wf.cli, capsys, "cancel", *ids, "--store-path", store)
    assert_one_line_error(done, 2, "3 runs", "confirm", "--yes")
    assert done.out == ""
    assert states(store, ids) == ["RUNNING"] * 3
    # an unknown id among them: nothing is cancelled either
    done = in_process(
        flaky.wf.cli, capsys, "cancel", ids[0], "nope", "--yes", "--store-path", store
    )
    assert_one_line_error(done, 2, "no run 'nope'")
    assert states(store, ids) == ["RUNNING"] * 3
    done = in_process(flaky.wf.cli, capsys, "cancel", *ids, "--yes", "--store-path", store)
    assert done.code == 0
    assert done.out.count("cancelled run") == 3
    assert states(store, ids) == ["CANCELLED"] * 3


def test_cancel_asks_on_a_terminal(
    flaky: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    store = tmp_path / "s.db"
    ids = make_running_runs(flaky.wf, store, 2)
    monkeypatch.setattr(sys, "stdin", Terminal())
    answers = iter(["n", "y"])
    prompts: list[str] = []

    def fake_input(prompt: str = "") -> str:
        prompts.append(prompt)
        return next(answers)

    monkeypatch.setattr(builtins, "input", fake_input)
    done = in_process(flaky.wf.cli, capsys, "cancel", *ids, "--store-path", store)
    assert done.code == 1 and "nothing cancelled" in done.out
    assert states(store, ids) == ["RUNNING"] * 2
    assert ids[0] in prompts[0] and "[y/N]" in prompts[0]
    done = in_process(flaky.wf.cli, capsys, "cancel", *ids, "--store-path", store)
    assert done.code == 0
    assert states(store, ids) == ["CANCELLED"] * 2


def start_slow_run(tmp_path: Path) -> tuple[subprocess.Popen[str], Path, str]:
    """Start SLOW in the background, braked; return the process, its store and run id."""
    (tmp_path / "slow.py").write_text(textwrap.dedent(SLOW))
    (tmp_path / "brake").touch()
    store = tmp_path / "s.db"
    args = ["run", "--run-dir", "r", "--store-path", store, "--brake", "brake"]
    proc = subprocess.Popen(
        [sys.executable, "slow.py", *args],
        cwd=tmp_path,
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        return proc, store, wait_until_running(proc, store, "nap")
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def wait_until_running(
    proc: subprocess.Popen[str], store: Path, task: str, timeout: float = 30
) -> str:
    """The id of the run in `store` once one `task` instance has succeeded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the run ended early ({proc.returncode}): {out}{err}")
        if store.exists():
            st = SqliteStore(store)
            runs = st.list_runs()
            if runs and st.summary(runs[0]["run_id"]).get(task, {}).get("SUCCESS"):
                st.close()
                return str(runs[0]["run_id"])
            st.close()
        time.sleep(0.05)
    raise AssertionError("the run did not start")


def test_cancel_a_live_run_from_another_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, store, run_id = start_slow_run(tmp_path)
    try:
        done = in_process(main, capsys, "cancel", run_id, "--store-path", store)
        assert done.code == 0 and done.out.startswith(f"cancelled run {run_id}")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1, (out, err)
    assert err == ""
    assert summary_of(out)["state"] == "CANCELLED"
    counts = SqliteStore(store).summary(run_id)["nap"]
    assert counts.get("CANCELLED", 0) > 0
    assert counts.get("SUCCESS", 0) < 200


def test_ctrl_c_cancels_the_run_and_retry_resumes_it(tmp_path: Path) -> None:
    proc, store, run_id = start_slow_run(tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert err.strip() == (
        f"interrupted: run {run_id} is CANCELLED; resume it with 'retry {run_id}'"
    )
    assert SqliteStore(store).get_run(run_id)["status"] == "CANCELLED"
    (tmp_path / "brake").unlink()  # the retry runs at full speed
    done = cli(tmp_path / "slow.py", "retry", run_id, "--store-path", store, cwd=tmp_path)
    assert done.code == 0, done
    m = summary_of(done.out)
    assert m["state"] == "SUCCESS" and 0 < int(m["ran"]) < 200
    assert SqliteStore(store).summary(run_id) == {"plan": {"SUCCESS": 1}, "nap": {"SUCCESS": 200}}


# ---------------------------------------------------------------------- runs


@pytest.fixture
def many_runs(flaky: ModuleType, shapes: ModuleType, tmp_path: Path) -> tuple[Path, list[str]]:
    """22 runs of 'flaky' (newest first, some FAILED or CANCELLED) and one of 'shapes'."""
    store = tmp_path / "many.db"
    ids = make_running_runs(flaky.wf, store, 22)
    st = SqliteStore(store)
    for i, run_id in enumerate(ids):
        st.set_run_status(run_id, "FAILED" if i % 5 == 0 else "CANCELLED" if i == 7 else "SUCCESS")
    other = make_running_runs(shapes.wf, store, 1)
    return store, [*other, *reversed(ids)]


def listed(done: Done) -> list[str]:
    lines = done.out.splitlines()
    assert lines[0].split() == ["RUN", "STATUS", "CREATED", "RUN", "DIR"]
    return [line.split()[0] for line in lines[1:]]


def test_runs_shows_the_last_20_of_this_workflow(
    flaky: ModuleType, many_runs: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, ids = many_runs
    flaky_ids = [i for i in ids if i.startswith("flaky-")]
    done = in_process(flaky.wf.cli, capsys, "runs", "--store-path", store)
    assert done.code == 0
    assert listed(done) == flaky_ids[:20]
    assert (
        listed(in_process(flaky.wf.cli, capsys, "runs", "--last", "3", "--store-path", store))
        == (flaky_ids[:3])
    )
    assert listed(in_process(flaky.wf.cli, capsys, "runs", "--all", "--store-path", store)) == (
        flaky_ids
    )
    # the console command lists every workflow's runs
    assert listed(in_process(main, capsys, "runs", "--all", "--store-path", store)) == ids
    assert listed(in_process(main, capsys, "runs", "--store-path", store)) == ids[:20]


def test_runs_filters(
    flaky: ModuleType, many_runs: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    store, ids = many_runs

    def runs(*args: str) -> list[str]:
        done = in_process(flaky.wf.cli, capsys, "runs", "--all", "--store-path", store, *args)
        assert done.code == 0, done
        return [] if done.out.startswith("no runs") else listed(done)

    st = SqliteStore(store)
    failed = [i for i in ids if i.startswith("flaky-") and st.get_run(i)["status"] == "FAILED"]
    assert len(failed) == 5
    assert runs("--status", "FAILED") == failed
    assert runs("--status", "failed") == failed
    assert len(runs("--status", "CANCELLED")) == 1
    assert runs("--status", "RUNNING") == []
    today = dt.date.today()
    yesterday, tomorrow = today - dt.timedelta(days=1), today + dt.timedelta(days=1)
    assert len(runs("--since", str(yesterday))) == 22
    assert runs("--since", str(tomorrow)) == []
    assert runs("--until", str(yesterday)) == []
    assert len(runs("--since", str(yesterday), "--until", str(tomorrow))) == 22
    hour_ago = (dt.datetime.now() - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    assert len(runs("--since", hour_ago, "--status", "SUCCESS")) == 16
    done = in_process(flaky.wf.cli, capsys, "runs", "--json", "--last", "2", "--store-path", store)
    rows = json.loads(done.out)
    assert [r["run_id"] for r in rows] == [i for i in ids if i.startswith("flaky-")][:2]
    assert {"run_id", "graph_name", "status", "created_at"} <= set(rows[0])


def test_runs_of_an_empty_store_names_the_store(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "empty.db"
    done = in_process(flaky.wf.cli, capsys, "runs", "--store-path", store)
    assert done.code == 0
    assert done.out.strip() == f"no runs: there is no store at {store} yet"
    assert not store.exists()  # looking does not create a store
    SqliteStore(store).list_runs()  # now it exists, empty
    done = in_process(flaky.wf.cli, capsys, "runs", "--store-path", store)
    assert done.code == 0
    assert done.out.strip() == f"no runs of workflow 'flaky' in {store}"


def test_status_with_a_mistyped_store_path_creates_nothing(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "typo.db"
    done = in_process(flaky.wf.cli, capsys, "status", "flaky-20260101-abcd", "--store-path", store)
    assert done.code == 2
    assert (
        done.err.strip()
        == f"error: no run 'flaky-20260101-abcd': there is no store at {store}: check "
        "--store-path or REFLOW_STORE_PATH"
    )
    assert not store.exists()


# ---------------------------------------------------------------------- dag, describe


def test_dag_marks_every_kind_of_edge(
    shapes: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    done = in_process(shapes.wf.cli, capsys, "dag")
    assert done.code == 0 and done.err == ""
    lines = [line.strip() for line in done.out.splitlines()]
    assert lines[0] == "workflow shapes: 5 tasks"
    assert lines[1:] == [
        "split  [task]",
        "offset  [task]",
        "square  [array]",
        "<- split (fan-out) as x",
        "<- offset (broadcast) as off",
        "double  [array]",
        "<- square (chain) as x",
        "gather  [task]",
        "<- double (gather) as xs",
        "<- offset (after: order only)",
    ]


def test_describe_prints_json(shapes: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    done = in_process(shapes.wf.cli, capsys, "describe")
    assert done.code == 0 and done.err == ""
    doc = json.loads(done.out)
    assert doc["workflow"] == "shapes"
    assert [t["name"] for t in doc["tasks"]] == ["split", "offset", "square", "double", "gather"]
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert tasks["square"]["array"] is True
    assert {i["arg"]: i["mode"] for i in tasks["square"]["inputs"]} == {
        "x": "fanout",
        "off": "broadcast",
    }
    assert tasks["double"]["inputs"] == [{"arg": "x", "steps": ["square"], "mode": "chain"}]
    assert tasks["gather"]["after"] == ["offset"]
    assert doc["params"] == [
        {
            "name": "n",
            "flag": "--n",
            "short": None,
            "type": "int",
            "required": False,
            "default": 3,
            "help": "",
            "tasks": ["split"],
        }
    ]


def test_describe_lists_every_parameter(
    params: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(in_process(params.wf.cli, capsys, "describe").out)
    by_flag = {p["flag"]: p for p in doc["params"]}
    assert by_flag["--count"]["required"] is True and by_flag["--count"]["short"] == "-n"
    assert {"--work-scale", "--total-scale", "--mode", "--out"} <= set(by_flag)
    assert by_flag["--mode"]["tasks"] == ["prepare", "echo"]


# ---------------------------------------------------------------------- the `reflow` command


def test_console_command_in_a_subprocess(flaky: ModuleType, tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    ids = make_running_runs(flaky.wf, store, 2)
    env = child_env(REFLOW_STORE_PATH=str(store))
    done = cli("-m", "reflow.cli", "runs", cwd=tmp_path, env=env)
    assert done.code == 0 and done.err == ""
    assert listed(done) == ids[::-1]
    done = cli("-m", "reflow.cli", "cancel", *ids, cwd=tmp_path, env=env)
    assert_one_line_error(done, 2, "2 runs", "--yes")
    assert states(store, ids) == ["RUNNING", "RUNNING"]
    done = cli("-m", "reflow.cli", "cancel", *ids, "-y", cwd=tmp_path, env=env)
    assert done.code == 0, done
    assert states(store, ids) == ["CANCELLED", "CANCELLED"]


def test_console_help_and_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    done = in_process(main, capsys, "--help")
    assert done.code == 0
    for command in ("status", "cancel", "runs", "config"):
        assert re.search(rf"^\s+{command}\s+\S", done.out, re.M), command
    done = in_process(main, capsys)
    assert done.code == 2 and "usage: reflow" in done.out

    config_file = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    doc = json.loads(in_process(main, capsys, "config").out)
    assert doc["config_file"] is None
    assert doc["executor"]["mode"] == "local"
    done = in_process(main, capsys, "config", "--init")
    assert done.code == 0
    assert done.out.strip() == f"wrote an example config file {config_file}"
    text = config_file.read_text()
    assert "[defaults]" in text and "# store_path = " in text
    done = in_process(main, capsys, "config", "--init")
    assert done.out.strip() == f"kept the existing config file {config_file}"
    assert config_file.read_text() == text
    config_file.write_text('[executor]\nmode = "slurm"\n')
    doc = json.loads(in_process(main, capsys, "config").out)
    assert doc["config_file"] == str(config_file)
    assert doc["executor"]["mode"] == "sbatch"


def test_console_script_is_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert re.search(r'^reflow = "reflow\.cli:main"$', text, re.M)


# ---------------------------------------------------------------------- error paths


def test_unknown_flag(tmp_path: Path) -> None:
    done = cli(
        EXAMPLES / "etl.py", "run", "--run-dir", "r", "--source", SALES, "--bogus", cwd=tmp_path
    )
    assert_one_line_error(done, 2, "unrecognized arguments: --bogus", "--help")
    assert not (tmp_path / "r").exists()


def test_bad_int_value(tmp_path: Path) -> None:
    done = cli(EXAMPLES / "thumbnails.py", "run", "--run-dir", "r", "--count", "abc", cwd=tmp_path)
    assert_one_line_error(done, 2, "--count", "whole number", "'abc'")


def test_bad_literal_choice(tmp_path: Path) -> None:
    (tmp_path / "params.py").write_text(textwrap.dedent(PARAMS))
    done = cli(
        tmp_path / "params.py", "run", "--run-dir", "r", "-n", "2", "--mode", "medium",
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(done, 2, "--mode", "invalid choice", "'medium'", "fast", "slow")


def test_missing_required_parameter(tmp_path: Path) -> None:
    done = cli(EXAMPLES / "etl.py", "run", "--run-dir", "r", cwd=tmp_path)
    assert_one_line_error(done, 2, "missing required parameter", "--source")
    assert run_ids(Path(os.environ["XDG_CACHE_HOME"]) / "reflow" / "manifest.db") == []


def test_unknown_run_id_names_the_store(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    SqliteStore(store).list_runs()  # an existing store without that run
    done = cli(EXAMPLES / "etl.py", "status", "etl-nope", "--store-path", store, cwd=tmp_path)
    assert_one_line_error(done, 2, "no run 'etl-nope'", str(store), "runs")


def test_broken_graph_fails_in_one_line_but_help_prints(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text(textwrap.dedent(BROKEN))
    done = cli(tmp_path / "broken.py", "run", "--run-dir", "r", cwd=tmp_path)
    assert_one_line_error(done, 2, "cannot run", "unknown task 'prepar'", "Did you mean 'prepare'")
    done = cli(tmp_path / "broken.py", "--help", cwd=tmp_path)
    assert done.code == 0 and done.err == ""
    assert "usage: broken.py" in done.out
    assert "the workflow cannot run" in done.out and "prepar" in done.out


def test_malformed_config_names_file_and_line(tmp_path: Path) -> None:
    config_file = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text('[defaults]\nrun_dir = "/tmp"\nstore_path = /nope\n')
    done = cli(EXAMPLES / "etl.py", "runs", cwd=tmp_path)
    assert_one_line_error(done, 2, str(config_file), "line 3")


def test_bad_reflow_mode(tmp_path: Path) -> None:
    done = cli(EXAMPLES / "etl.py", "runs", cwd=tmp_path, env=child_env(REFLOW_MODE="slurmm"))
    assert_one_line_error(done, 2, "REFLOW_MODE", "'slurmm'", "sbatch", "Did you mean 'slurm'?")


def test_store_path_is_a_directory(tmp_path: Path) -> None:
    done = cli(EXAMPLES / "etl.py", "runs", "--store-path", tmp_path, cwd=tmp_path)
    assert_one_line_error(done, 1, str(tmp_path), "is a directory")


def test_store_path_is_not_a_database(tmp_path: Path) -> None:
    junk = tmp_path / "notes.txt"
    junk.write_text("these are my notes, not a database\n" * 20)
    done = cli(
        EXAMPLES / "etl.py", "run", "--run-dir", "r", "--source", SALES, "--store-path", junk,
        cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(done, 1, str(junk), "not a reflow store")
    assert junk.read_text().startswith("these are my notes")


def test_unwritable_run_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = cli(
        EXAMPLES / "etl.py", "run", "--run-dir", blocker / "runs", "--source", SALES,
        "--store-path", tmp_path / "s.db", cwd=tmp_path,
    )  # fmt: skip
    assert_one_line_error(done, 1, "cannot create the run directory", str(blocker / "runs"))


def test_reflow_debug_shows_the_traceback(tmp_path: Path) -> None:
    store = tmp_path / "s.db"
    SqliteStore(store).list_runs()
    done = cli(
        EXAMPLES / "etl.py", "status", "etl-nope", "--store-path", store,
        cwd=tmp_path, env=child_env(REFLOW_DEBUG="1"),
    )  # fmt: skip
    assert done.code != 0
    assert "Traceback (most recent call last)" in done.err
    assert "RunNotFoundError" in done.err and "no run 'etl-nope'" in done.err


def test_unknown_task(
    failed_run: FailedRun, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    wf, run_id, store = failed_run.module.wf, failed_run.run_id, failed_run.store
    for command in ("status", "cancel", "retry"):
        done = in_process(wf.cli, capsys, command, run_id, "--task", "chek", "--store-path", store)
        assert_one_line_error(done, 2, "'chek'", "Did you mean 'check'?")
    done = in_process(main, capsys, "status", run_id, "--task", "nope", "--store-path", store)
    assert_one_line_error(done, 2, "no task 'nope'", "items, check, report")
    done = in_process(
        wf.cli, capsys, "run", "--run-dir", tmp_path / "r", "--store-path", tmp_path / "s.db",
        "--poison", "x", "--force-tasks", "reprot",
    )  # fmt: skip
    assert_one_line_error(done, 2, "unknown task 'reprot'", "Did you mean 'report'?")
    assert SqliteStore(store).get_run(run_id)["status"] == "FAILED"


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["run", "--poison", "p"], ["--run-dir"]),
        (["run", "--run-dir", "r", "--poison", "p", "--n", "2.5"], ["--n", "whole number"]),
        (["run", "--run-dir", "r", "--poison", "p", "--max-workers", "0"], ["--max-workers"]),
        (["run", "--run-dir", "r", "--poison", "p", "--on-error", "go"], ["--on-error", "'go'"]),
        (["runs", "--last", "x"], ["--last", "'x'"]),
        (["runs", "--last", "2", "--all"], ["--all", "not allowed with"]),
        (["runs", "--since", "last tuesday"], ["--since", "YYYY-MM-DD", "'last tuesday'"]),
        (["runs", "--until", "2024-13-01"], ["--until", "YYYY-MM-DD"]),
        (["runs", "--status", "DONE"], ["--status", "invalid choice", "SUCCESS"]),
        (["status"], ["RUN_ID"]),
        (["frobnicate"], ["invalid choice: 'frobnicate'", "run"]),
    ],
)
def test_usage_errors_are_one_line(
    flaky: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    words: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    done = in_process(flaky.wf.cli, capsys, *args, "--store-path", tmp_path / "s.db")
    assert_one_line_error(done, 2, *words)
    assert not (tmp_path / "r").exists()


def test_no_command_prints_help_and_exits_2(
    flaky: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    done = in_process(flaky.wf.cli, capsys)
    assert done.code == 2
    assert "usage:" in done.out and "COMMAND" in done.out


def test_parameter_that_clashes_with_an_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load_pipeline(
        tmp_path / "clash.py",
        """
        from reflow import Workflow

        wf = Workflow("clash")

        @wf.job()
        def a(force: int = 1) -> int:
            return force
        """,
        monkeypatch,
    )
    done = in_process(module.wf.cli, capsys, "run", "--run-dir", tmp_path / "r")
    # a run option's name: refused by validation, so run_local(force=...) is never ambiguous
    assert_one_line_error(done, 2, "parameter 'force'", "run_local() and submit()", "rename it")
    done = in_process(module.wf.cli, capsys, "run", "--help")
    assert done.code == 0 and "the workflow cannot run: parameter 'force'" in done.out


def test_config_warning_is_one_line(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text('[defaults]\nstor_path = "x.db"\n')
    for args in (["runs"], ["runs", "--store-path", tmp_path / "s.db"]):
        done = in_process(flaky.wf.cli, capsys, *args)
        assert done.code == 0
        assert done.err.splitlines() == [
            f"warning: config file {config_file}, line 2: unknown key 'stor_path' in "
            "[defaults] is ignored. Did you mean 'store_path'?"
        ]


def test_malformed_config_does_not_block_help(
    flaky: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text("[defaults\n")
    assert in_process(flaky.wf.cli, capsys, "run", "--help").code == 0
    # ... but every command reports it, even when --store-path makes the store explicit
    done = in_process(flaky.wf.cli, capsys, "runs", "--store-path", tmp_path / "s.db")
    assert_one_line_error(done, 2, str(config_file), "line 1")


# ---------------------------------------------------------------------- configuration


def test_config_precedence_through_the_cli(tmp_path: Path) -> None:
    """--store-path > REFLOW_STORE_PATH > [defaults] store_path > $XDG_CACHE_HOME default."""
    flag_db, env_db, file_db = tmp_path / "flag.db", tmp_path / "env.db", tmp_path / "file.db"
    default_db = Path(os.environ["XDG_CACHE_HOME"]) / "reflow" / "manifest.db"
    config_file = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config_file.parent.mkdir(parents=True)
    file_runs = tmp_path / "file-runs"
    config_file.write_text(f'[defaults]\nstore_path = "{file_db}"\nrun_dir = "{file_runs}"\n')
    etl = [EXAMPLES / "etl.py", "run", "--source", SALES]

    def where() -> dict[str, int]:
        return {
            db.stem: len(run_ids(db))
            for db in (flag_db, env_db, file_db, default_db)
            if db.exists()
        }

    def run(*args: object, env: dict[str, str]) -> None:
        done = cli(*etl, *args, cwd=tmp_path, env=env)
        assert done.code == 0, done
        assert done.err == ""  # quiet when piped: only the summary line on stdout
        assert done.out.count("\n") == 1 and summary_of(done.out)

    with_env = child_env(REFLOW_STORE_PATH=str(env_db), REFLOW_RUN_DIR=str(tmp_path / "env-runs"))
    run("--store-path", flag_db, "--run-dir", tmp_path / "flag-runs", env=with_env)
    assert where() == {"flag": 1}
    assert (tmp_path / "flag-runs" / "report.csv").is_file()
    run(env=with_env)
    assert where() == {"flag": 1, "env": 1}
    assert (tmp_path / "env-runs" / "report.csv").is_file()
    run(env=child_env())
    assert where() == {"flag": 1, "env": 1, "file": 1}
    assert (file_runs / "report.csv").is_file()  # [defaults] run_dir when --run-dir is absent
    config_file.unlink()
    run("--run-dir", tmp_path / "default-runs", env=child_env())
    assert where() == {"flag": 1, "env": 1, "file": 1, "manifest": 1}


def test_run_dir_from_config_is_shown_in_help(
    flaky: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "500")  # keep the long path on one line
    config_file = Path(os.environ["XDG_CONFIG_HOME"]) / "reflow" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f'[defaults]\nrun_dir = "{tmp_path / "cfg-runs"}"\n')
    done = in_process(flaky.wf.cli, capsys, "run", "--help")
    assert f"(default from config: {tmp_path / 'cfg-runs'})" in done.out


# ---------------------------------------------------------------------- progress


def test_progress_on_a_terminal(tmp_path: Path) -> None:
    """Attached to a pseudo-terminal, `run` shows tasks and instances done as it goes."""
    primary, secondary = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable, str(EXAMPLES / "etl.py"), "run", "--run-dir", "r",
            "--source", str(SALES), "--store-path", str(tmp_path / "s.db"),
        ],
        cwd=tmp_path, env=child_env(), stdin=secondary, stdout=secondary, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([primary], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(primary)
        proc.wait(timeout=60)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0, text
    assert re.search(r"\d+/3 tasks, \d+/\d+ instances, \d+\.\d s", text), text
    assert re.search(r"run etl-\S+ SUCCESS in \d+\.\d s: 6 instances, 6 ran", text), text
