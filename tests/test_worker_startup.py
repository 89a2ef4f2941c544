"""What keeps a job's start-up short: what `python -m reflow worker` does not import.

No timings here (benchmarks/worker_startup.py measures them): these tests pin
down the properties the speed comes from.  A job that runs an instance imports
neither dataclasses nor inspect nor argparse, nor pathlib, hashlib or datetime
for reflow's sake; the lightweight replacements behave like what they replace.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from reflow import Param, Result, Workflow, codec
from reflow.errors import ValidationError
from reflow.instances import NO_VALUE, Outcome, Work
from reflow.params import ArgSpec, read_signature
from reflow.results import ResultFileError, WaveElement, read_element, write_result, write_wave

REPO = Path(__file__).resolve().parents[1]

#: what a job that runs one instance must not import for reflow's sake
NOT_IN_A_JOB = (
    "dataclasses",
    "inspect",
    "argparse",
    "pathlib",
    "hashlib",
    "datetime",
    "shutil",
    "sqlite3",
    "reflow.wiring",
    "reflow.stores",
    "reflow.engine",
)

PIPELINE = """
from reflow import Param, Workflow

wf = Workflow("startup")


@wf.job()
def first(x: int = 1, label: str = "a") -> int:
    return x * 2
"""


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO / "src"))


def test_a_job_running_an_instance_imports_none_of_the_slow_modules(tmp_path: Path) -> None:
    (tmp_path / "pipeline.py").write_text(PIPELINE)
    run_dir = tmp_path / "run"
    wave = tmp_path / "first.jsonl"
    write_wave(wave, "startup-1", [Work("first", -1, 1, {"x": 21, "label": "b"})])
    probe = textwrap.dedent(
        f"""
        import json, sys
        from reflow.__main__ import main
        code = main(["worker", "--wave", {str(wave)!r}, "--run-dir", {str(run_dir)!r},
                     "--origin", json.dumps({{"script": {str(tmp_path / "pipeline.py")!r}}}),
                     "--workflow", "startup"])
        with open({str(tmp_path / "modules.json")!r}, "w") as fh:
            json.dump(sorted(sys.modules), fh)
        raise SystemExit(code)
        """
    )
    subprocess.run([sys.executable, "-c", probe], env=_env(), check=True, cwd=tmp_path)
    loaded = set(json.loads((tmp_path / "modules.json").read_text()))
    assert "__reflow_pipeline__" in loaded  # the script was loaded and its task run
    assert [m for m in NOT_IN_A_JOB if m in loaded] == []
    result = json.loads(next((run_dir / "results").rglob("single.1.json")).read_text())
    assert result["ok"] and result["output"] == "42"
    assert result["output_hash"] == hashlib.sha256(b"42").hexdigest()


def test_the_worker_says_what_is_wrong_with_its_command_line(tmp_path: Path) -> None:
    def worker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "reflow", "worker", *args],
            env=_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip

    bad = worker("--wave", "w", "--run-dir", "d", "--origin", "{}", "--workflow", "x", "--pack")
    assert bad.returncode == 2 and "unrecognized argument '--pack'" in bad.stderr
    assert "usage: python -m reflow worker" in bad.stderr and "Traceback" not in bad.stderr
    missing = worker("--wave", "w", "--run-dir", "d")
    assert missing.returncode == 2
    assert "required: --origin, --workflow" in missing.stderr
    dangling = worker("--wave")
    assert "argument --wave: expected one argument" in dangling.stderr
    offset = worker("--wave=w", "--run-dir=d", "--origin={}", "--workflow=x", "--offset=-1")
    assert "invalid int value: '-1'" in offset.stderr


def test_paths_and_dates_round_trip_in_a_process_that_had_not_imported_them() -> None:
    probe = textwrap.dedent(
        """
        import sys
        from reflow import codec
        assert "pathlib" not in sys.modules and "datetime" not in sys.modules
        assert "hashlib" not in sys.modules
        text = '{"$path":"/data/a.txt"}'
        value = codec.loads(text)
        import pathlib, datetime
        assert value == pathlib.Path("/data/a.txt")
        when = datetime.datetime(2026, 12, 4, 21, 0, 5)
        assert codec.loads(codec.dumps([value, when])) == [value, when]
        assert codec.dumps(pathlib.PurePosixPath("x")) == '{"$pureposixpath":"x"}'
        print(codec.hash_value([value, when]), codec.dumps_hashed("x" * 300_000)[1])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, check=True
    ).stdout.split()
    when = __import__("datetime").datetime(2026, 12, 4, 21, 0, 5)
    assert out == [
        codec.hash_value([Path("/data/a.txt"), when]),
        codec.dumps_hashed("x" * 300_000)[1],
    ]


@pytest.mark.parametrize("size", [0, 1, 300, 1 << 18, 1 << 20])
def test_cpython_s_own_sha256_gives_hashlib_s_digest(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    assert codec._SMALL_SHA256 is not None
    assert codec._SMALL_SHA256(data).hexdigest() == hashlib.sha256(data).hexdigest()
    assert codec.sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_a_process_that_hashes_much_switches_to_hashlib() -> None:
    probe = textwrap.dedent(
        """
        import sys
        from reflow import codec
        first = [codec.hash_value(i) for i in range(100)]
        assert "hashlib" not in sys.modules, "a few hashes do not import hashlib"
        more = [codec.hash_value(i) for i in range(100, 10_000)]
        assert "hashlib" in sys.modules, "thousands of hashes do"
        print(first[7], more[-1])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], env=_env(), capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [codec.hash_value(7), codec.hash_value(9_999)]


def test_records_compare_hash_print_and_copy_like_dataclasses() -> None:
    a = Result("prep", broadcast=True)
    assert a == Result("prep", broadcast=True) and a != Result("prep")
    assert hash(a) == hash(Result("prep", broadcast=True))
    assert repr(a) == "Result(broadcast=True, concat=False, steps=('prep',))"
    with pytest.raises(AttributeError, match="frozen"):
        a.broadcast = False  # type: ignore[misc]
    p = Param("help text", short="-s")
    assert p.replace(help="other") == Param("other", short="-s")
    with pytest.raises(TypeError, match="no field 'hepl'"):
        p.replace(hepl="x")
    element = WaveElement("r", Work("t", 1, 1, {}))
    assert element.deferred is None and element == WaveElement("r", Work("t", 1, 1, {}))
    w = Work("t", 0, 1, {"x": 1})
    with pytest.raises(TypeError):
        hash(w)  # a record whose fields may change is not hashable


def test_an_outcome_sent_to_another_process_leaves_its_value_behind() -> None:
    done = Outcome("t", 3, 1, True, "[1]", "h", None, 1.0, 2.0, value=[1])
    back = pickle.loads(pickle.dumps(done))
    assert back == done  # value is not compared
    assert back.value is NO_VALUE and back.output == "[1]" and back.index == 3
    assert "value" not in repr(done)


def _plain(a: int, b: str = "x", *, c: float = 1.5, d: bool) -> None: ...


def _positional_only(a: int, /, b: int = 2) -> None: ...


@functools.wraps(_plain)
def _wrapped(*args: Any, **kwargs: Any) -> None: ...


def _names_and_defaults(specs: tuple[ArgSpec, ...]) -> list[tuple[str, Any]]:
    return [(s.name, s.default) for s in specs]


def test_signatures_are_read_without_inspect_as_inspect_reads_them() -> None:
    from reflow.params import MISSING

    expected = [("a", MISSING), ("b", "x"), ("c", 1.5), ("d", MISSING)]
    assert _names_and_defaults(read_signature(_plain, "t")[0]) == expected
    # a wrapper that names what it wraps: read through inspect, as the function it wraps
    assert _names_and_defaults(read_signature(_wrapped, "t")[0]) == expected
    assert _names_and_defaults(read_signature(_positional_only, "t")[0]) == [
        ("a", MISSING), ("b", 2),
    ]  # fmt: skip

    def star(*names: str) -> None: ...

    with pytest.raises(ValidationError, match=r"\*args and \*\*kwargs are not supported"):
        read_signature(star, "t")


def test_path_parameters_are_recognised_and_coerced() -> None:
    wf = Workflow("paths")

    @wf.job()
    def use(where: Path = Path("/tmp"), pure: Path | None = None) -> str:
        return str(where)

    (where, pure), _ = read_signature(use, "use")
    assert where.annotation is Path and pure.kind == "param"
    graph = wf.validate()
    assert graph.params["where"].default == Path("/tmp")
    with pytest.raises(ValidationError, match="parameter 'where' expects Path"):
        from reflow.params import coerce_param

        coerce_param("where", Path, 3)


def test_a_wave_element_is_read_from_its_own_lines(tmp_path: Path) -> None:
    wave = tmp_path / "w.jsonl"
    works = [Work("t", i, 1, {"i": i, "shared": "s"}) for i in range(1000)]
    write_wave(wave, "r-1", works)
    assert read_element(wave, 999).work == works[999]
    assert read_element(str(wave), 0).work.kwargs == {"i": 0, "shared": "s"}
    (tmp_path / "w.idx").write_bytes((tmp_path / "w.idx").read_bytes()[:24])
    with pytest.raises(ResultFileError, match=r"cannot read wave file .*the index has no line 3"):
        read_element(wave, 2)
    assert write_result(tmp_path, "r-1", Outcome("t", 0, 1, False, None, None, "e", 0, 0), None)
