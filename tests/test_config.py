"""Tests for reflow.config (settings file and REFLOW_* variables)."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

from reflow.config import (
    CONFIG_ENV,
    ENV_VARS,
    MODES,
    Config,
    ConfigWarning,
    config_path,
    default_store_path,
    ensure_config_exists,
    load_config,
    write_example_config,
)
from reflow.errors import ConfigError, ReflowError

FULL = """\
# a comment
[defaults]
store_path = "/shared/team/manifest.db"
run_dir = "/scratch/me/runs"

[executor]
mode = "sbatch"
python = "/opt/venv/bin/python"
sbatch = "/opt/slurm/bin/sbatch"
qacct = "/opt/sge/bin/qacct"

[executor.submit_options]
partition = "compute"
account = "my_project"
gpus = 2
exclusive = true

[dispatch]
cpus = 2
time = "1-00:30:00"
mem = "4G"
"""


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake home directory and an environment without XDG_* or REFLOW_* variables."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)  # tests/conftest.py may have made it
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("REFLOW_", "XDG_")):
            monkeypatch.delenv(name)
    return home


def write_config(text: str) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def load_quietly(path: Path | None = None) -> Config:
    """load_config(), failing the test on any warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return load_config(path)


# -- defaults and paths ------------------------------------------------------


def test_defaults_without_a_file(home: Path) -> None:
    config = load_quietly()
    assert config == Config()
    assert config.source is None
    assert config.mode == "local"
    assert config.python == sys.executable
    assert config.store_path is None and config.run_dir is None
    assert config.sbatch is None and config.flux is None
    assert dict(config.submit_options) == {}
    assert (config.dispatch_cpus, config.dispatch_time, config.dispatch_mem) == (
        1,
        "00:10:00",
        "1G",
    )
    assert config.resolved_store_path() == home / ".cache" / "reflow" / "manifest.db"


def test_default_locations_follow_home(home: Path) -> None:
    assert config_path() == home / ".config" / "reflow" / "config.toml"
    assert default_store_path() == home / ".cache" / "reflow" / "manifest.db"


def test_xdg_directories_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert config_path() == tmp_path / "cfg" / "reflow" / "config.toml"
    assert default_store_path() == tmp_path / "cache" / "reflow" / "manifest.db"
    write_config('[executor]\nmode = "flux"\n')
    assert (tmp_path / "cfg" / "reflow" / "config.toml").is_file()
    assert load_quietly().mode == "flux"
    assert load_quietly().resolved_store_path() == tmp_path / "cache" / "reflow" / "manifest.db"


def test_relative_xdg_directories_are_ignored(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/cfg")
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    assert config_path() == home / ".config" / "reflow" / "config.toml"
    assert default_store_path() == home / ".cache" / "reflow" / "manifest.db"


# -- the file ----------------------------------------------------------------


def test_file_values_are_read() -> None:
    path = write_config(FULL)
    config = load_quietly()
    assert config.source == path
    assert config.store_path == Path("/shared/team/manifest.db")
    assert config.run_dir == Path("/scratch/me/runs")
    assert config.mode == "sbatch"
    assert config.python == "/opt/venv/bin/python"
    assert config.sbatch == "/opt/slurm/bin/sbatch"
    assert config.qacct == "/opt/sge/bin/qacct"
    assert config.squeue is None
    assert dict(config.submit_options) == {
        "partition": "compute",
        "account": "my_project",
        "gpus": 2,
        "exclusive": True,
    }
    assert config.dispatch_cpus == 2
    assert config.dispatch_time == "1-00:30:00"
    assert config.dispatch_mem == "4G"
    assert config.resolved_store_path() == Path("/shared/team/manifest.db")


def test_a_store_url_stays_a_url_from_the_file_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = "postgresql://alice@db.example:5432/reflow?options=-csearch_path%3Dteam"
    write_config(f'[defaults]\nstore_path = "{url}"\n')
    config = load_quietly()
    assert config.store_path == url and config.resolved_store_path() == url  # not a Path
    monkeypatch.setenv("REFLOW_STORE_PATH", "postgres://bob@other/db")
    assert load_quietly().resolved_store_path() == "postgres://bob@other/db"
    monkeypatch.setenv("REFLOW_STORE_PATH", "~/team.db")  # a path is still a path
    assert load_quietly().resolved_store_path() == Path("~/team.db").expanduser()


def test_explicit_path_argument(tmp_path: Path) -> None:
    write_config('[executor]\nmode = "flux"\n')
    other = tmp_path / "other.toml"
    other.write_text('[executor]\nmode = "bsub"\n')
    assert load_quietly(other).mode == "bsub"
    assert load_config(str(other)).source == other


def test_paths_expand_home_and_variables(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEAM", "climate")
    write_config('[defaults]\nstore_path = "/shared/$TEAM/m.db"\nrun_dir = "~/runs"\n')
    config = load_quietly()
    assert config.store_path == Path("/shared/climate/m.db")
    assert config.run_dir == home / "runs"


def test_file_may_use_dotted_keys_and_inline_tables() -> None:
    write_config('executor.mode = "pbs"\nexecutor.submit_options = { queue = "short" }\n')
    config = load_quietly()
    assert config.mode == "qsub-pbs"
    assert dict(config.submit_options) == {"queue": "short"}


# -- REFLOW_CONFIG and the environment -------------------------------------------


def test_reflow_config_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[executor]\nmode = "flux"\n')
    other = tmp_path / "team.toml"
    other.write_text('[executor]\nmode = "qsub-sge"\n')
    monkeypatch.setenv(CONFIG_ENV, str(other))
    config = load_quietly()
    assert config.mode == "qsub-sge"
    assert config.source == other
    # an explicit argument beats REFLOW_CONFIG
    assert load_quietly(config_path()).mode == "flux"


def test_missing_named_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    with pytest.raises(ConfigError, match=rf"{re.escape(str(missing))} \(from REFLOW_CONFIG\)"):
        load_config()
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)


def test_env_overrides_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(FULL)
    monkeypatch.setenv("REFLOW_MODE", "flux")
    monkeypatch.setenv("REFLOW_DISPATCH_CPUS", " 8 ")
    monkeypatch.setenv("REFLOW_DISPATCH_MEM", "512")
    monkeypatch.setenv("REFLOW_PARTITION", "gpu")
    monkeypatch.setenv("REFLOW_ACCOUNT", "")  # empty means unset
    config = load_quietly()
    assert config.mode == "flux"
    assert config.dispatch_cpus == 8
    assert config.dispatch_mem == "512M"
    assert config.submit_options["partition"] == "gpu"
    assert config.submit_options["account"] == "my_project"
    assert config.dispatch_time == "1-00:30:00"  # not overridden


def test_partition_variable_replaces_a_queue_from_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    write_config('[executor.submit_options]\nqueue = "short"\nqos = "low"\n')
    monkeypatch.setenv("REFLOW_PARTITION", "long")
    assert dict(load_quietly().submit_options) == {"partition": "long", "qos": "low"}


ENV_VALUES = {
    "defaults.store_path": ("/env/m.db", Path("/env/m.db")),
    "defaults.run_dir": ("/env/runs", Path("/env/runs")),
    "executor.mode": ("LSF", "bsub"),
    "executor.python": ("/env/python", "/env/python"),
    "executor.pack": ("8", 8),
    "executor.grace": ("90", 90),
    "executor.max_mem": ("64g", "64G"),
    "executor.max_time": ("2-00:00:00", "2-00:00:00"),
    "executor.max_requeues": ("0", 0),
    "executor.max_submit_per_minute": ("30", 30),
    "dispatch.cpus": ("3", 3),
    "dispatch.time": ("02:00:00", "02:00:00"),
    "dispatch.mem": ("2g", "2G"),
}


@pytest.mark.parametrize("env", sorted(ENV_VARS))
def test_every_env_var_sets_its_key(env: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dotted = ENV_VARS[env]
    raw, expected = ENV_VALUES.get(dotted, (f"/env/{env.lower()}", f"/env/{env.lower()}"))
    if dotted.startswith("executor.submit_options."):
        expected = raw
    monkeypatch.setenv(env, raw)
    config = load_quietly()
    section, _, name = dotted.rpartition(".")
    if section == "executor.submit_options":
        assert config.submit_options[name] == expected
    else:
        field = f"dispatch_{name}" if section == "dispatch" else name
        assert getattr(config, field) == expected


def test_env_var_table_covers_every_setting() -> None:
    fields = {f.name for f in dataclasses.fields(Config)} - {"submit_options", "source"}
    keyed = {
        ("dispatch_" if key.startswith("dispatch.") else "") + key.rpartition(".")[2]
        for key in ENV_VARS.values()
        if not key.startswith("executor.submit_options.")
    }
    assert keyed == fields
    assert ENV_VARS["REFLOW_SBATCH"] == "executor.sbatch"
    assert ENV_VARS["REFLOW_PARTITION"] == "executor.submit_options.partition"
    assert ENV_VARS["REFLOW_ACCOUNT"] == "executor.submit_options.account"
    assert ENV_VARS["REFLOW_DISPATCH_CPUS"] == "dispatch.cpus"


def test_load_config_reads_the_environment_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_quietly().mode == "local"
    monkeypatch.setenv("REFLOW_MODE", "dry-run")
    assert load_quietly().mode == "dry-run"


# -- the store path ----------------------------------------------------------


def test_store_path_precedence(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_quietly().resolved_store_path() == home / ".cache/reflow/manifest.db"
    write_config(f'[defaults]\nstore_path = "{tmp_path / "file.db"}"\n')
    assert load_quietly().resolved_store_path() == tmp_path / "file.db"
    monkeypatch.setenv("REFLOW_STORE_PATH", str(tmp_path / "env.db"))
    assert load_quietly().resolved_store_path() == tmp_path / "env.db"


def test_resolved_store_path_expands_user(home: Path) -> None:
    assert Config(store_path=Path("~/m.db")).resolved_store_path() == home / "m.db"


# -- the example file --------------------------------------------------------


def test_ensure_config_exists_writes_the_example_once() -> None:
    path = ensure_config_exists()
    assert path == config_path()
    assert path.is_file()
    assert "REFLOW_CONFIG" in path.read_text()
    path.write_text('[executor]\nmode = "flux"\n')
    assert ensure_config_exists() == path
    assert path.read_text() == '[executor]\nmode = "flux"\n'


def test_the_example_says_a_store_may_be_a_postgresql_url(tmp_path: Path) -> None:
    text = write_example_config(tmp_path / "config.toml").read_text()
    assert "a PostgreSQL database as a postgresql:// URL (docs/postgres.md)" in text


def test_example_loads_to_the_defaults(tmp_path: Path) -> None:
    path = write_example_config(tmp_path / "deep" / "dir" / "config.toml")
    assert path.is_file()
    assert load_quietly(path) == Config()


def test_example_documents_every_key(tmp_path: Path) -> None:
    text = write_example_config(tmp_path / "config.toml").read_text()
    assert "[executor.submit_options]" in text
    for field in dataclasses.fields(Config):
        if field.name in ("source", "submit_options"):
            continue
        name = field.name.removeprefix("dispatch_")
        assert re.search(rf"^# {name} = ", text, re.MULTILINE), name
    for env in ENV_VARS:
        assert env in text, env


def test_example_values_are_valid_when_uncommented(tmp_path: Path) -> None:
    text = write_example_config(tmp_path / "config.toml").read_text()
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.MULTILINE)
    path = tmp_path / "uncommented.toml"
    path.write_text(uncommented)
    config = load_quietly(path)
    defaults = Config()
    for field in dataclasses.fields(Config):
        if field.name not in ("source", "dispatch_cpus", "dispatch_time", "dispatch_mem"):
            assert getattr(config, field.name) != getattr(defaults, field.name), field.name
    assert config.mode == "sbatch"


# -- malformed files and invalid values ------------------------------------------


def test_malformed_file_names_file_and_line() -> None:
    path = write_config('[executor]\nmode = "sbatch"\n\npartition "compute"\n')
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert message.startswith(f"config file {path}, line 4: expected '=' after a key")
    assert message.endswith("fix the file or remove it")
    assert isinstance(caught.value, ReflowError)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ('[defaults]\nstore_path = "/unterminated\n', 2),
        ("[dispatch]\ncpus = 1\ncpus = 2\n", 3),
        ("[dispatch]\n[dispatch]\n", 2),
        ("[executor\nmode = 'local'\n", 1),
        ("[dispatch]\nmem = [\n  1,\n  2\n", 4),
        ("[dispatch]\ncpus = 2\nmem = \n", 3),
        ('[defaults]\nrun_dir = "/tmp"\nstore_path = /nope\n', 3),
        ('[executor]\nmode = "sbatch" python = "x"\n', 2),
        ("# a comment\n[defaults] # \x01 a control character\n", 2),
        # An error at the end of the document points at its last non-blank line.
        ("[dispatch]\ncpus = 2\nmem = [1,\n  2,\n\n\n", 4),
    ],
)
def test_syntax_errors_report_the_line(text: str, line: int) -> None:
    path = write_config(text)
    pattern = rf"^config file {re.escape(str(path))}, line {line}: "
    with pytest.raises(ConfigError, match=pattern) as caught:
        load_config()
    assert "\n" not in str(caught.value)  # one line, however the parser words the error
    assert str(caught.value).endswith("; fix the file or remove it")


def _fail_parsing(monkeypatch: pytest.MonkeyPatch, pos: int | None) -> None:
    """Make the TOML parser raise "Something is wrong", with no position in the message.

    With `pos`, the error carries the attributes of a TOMLDecodeError from
    Python 3.14 or tomli 2.1+ (msg, doc, pos, lineno, colno); without, nothing
    says where the error is.
    """
    # What config.py parses with: tomllib, or tomli on Python 3.10.
    parser: Any = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")

    def loads(document: str) -> object:
        error = parser.TOMLDecodeError.__new__(parser.TOMLDecodeError)
        ValueError.__init__(error, "Something is wrong")  # 3.14's __init__ would add the position
        if pos is not None:
            error.msg, error.doc, error.pos = "Something is wrong", document, pos
            error.lineno = document.count("\n", 0, pos) + 1
            error.colno = pos - document.rfind("\n", 0, pos)
        raise error

    monkeypatch.setattr(parser, "loads", loads)


@pytest.mark.parametrize(
    ("text", "pos", "line"),
    [
        ('[executor]\nmode = "sbatch"\nmdoe "x"\n', 32, 3),
        ("[dispatch]\nmem = [1,\n\n", 22, 2),  # the end of the document: its last line
    ],
)
def test_syntax_error_position_from_attributes(
    text: str, pos: int, line: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert pos <= len(text)
    _fail_parsing(monkeypatch, pos)
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == (
        f"config file {path}, line {line}: something is wrong; fix the file or remove it"
    )


def test_syntax_error_without_a_position_names_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    _fail_parsing(monkeypatch, None)
    path = write_config("[dispatch]\ncpus = 2\n")
    with pytest.raises(ConfigError) as caught:
        load_config()
    assert str(caught.value) == f"config file {path}: something is wrong; fix the file or remove it"


def test_parser_is_imported_only_to_read_a_file() -> None:
    code = "import sys, reflow.config; print(sorted({'tomllib', 'tomli'} & set(sys.modules)))"
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ('[dispatch]\ncpus = "two"\n', ["line 2", '[dispatch] cpus = "two"', "whole number"]),
        ("[dispatch]\ncpus = 0\n", ["cpus = 0", "1 or more"]),
        ("[dispatch]\ncpus = true\n", ["cpus = true", "whole number"]),
        ('[dispatch]\ntime = "10 minutes"\n', ["time", "HH:MM:SS or D-HH:MM:SS"]),
        ('[dispatch]\ntime = "00:61:00"\n', ["time", "HH:MM:SS"]),
        ('\n[dispatch]\nmem = "lots"\n', ["line 3", "[dispatch] mem", "500M, 4G or 1T"]),
        ('[executor]\nmode = "slurmm"\n', ["[executor] mode", "one of sbatch", "'slurm'?"]),
        ("[defaults]\nstore_path = 3\n", ["[defaults] store_path = 3", "path"]),
        ('[executor]\npython = ""\n', ["[executor] python", "command name or path"]),
        ("[executor.submit_options]\nnodes = [1, 2]\n", ["submit_options", "'nodes'"]),
        ("[executor]\nsubmit_options = 5\n", ["submit_options", "table"]),
        ("dispatch = 3\n", ["dispatch = 3", "expected a table"]),
    ],
)
def test_wrong_values_in_the_file(text: str, pieces: list[str]) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert message.startswith(f"config file {path}")
    for piece in pieces:
        assert piece in message


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("REFLOW_DISPATCH_CPUS", "abc", "whole number"),
        ("REFLOW_DISPATCH_CPUS", "1.5", "whole number"),
        ("REFLOW_DISPATCH_TIME", "ten", "HH:MM:SS"),
        ("REFLOW_DISPATCH_MEM", "4X", "500M, 4G or 1T"),
        ("REFLOW_MODE", "kubernetes", "one of sbatch"),
    ],
)
def test_wrong_values_in_the_environment(
    env: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(FULL)
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as caught:
        load_config()
    message = str(caught.value)
    assert message.startswith(f"environment variable {env}={value!r}")
    assert ENV_VARS[env] in message
    assert expected in message


@pytest.mark.parametrize(
    ("value", "normalised"),
    [("00:10:00", "00:10:00"), ("48:00:00", "48:00:00"), ("2-12:00:00", "2-12:00:00"),
     ("10:00", "10:00"), ("90", "90"), ("1-12", "1-12"), ("1-12:30", "1-12:30")],
)  # fmt: skip
def test_valid_times(value: str, normalised: str) -> None:
    assert Config(dispatch_time=value).dispatch_time == normalised


@pytest.mark.parametrize(
    "value", ["10:60", "1-24:00:00", "00:00:60", "1:2:3", "-1:00:00", "00:00:00"]
)
def test_invalid_times(value: str) -> None:
    with pytest.raises(ConfigError, match="dispatch_time"):
        Config(dispatch_time=value)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("500M", "500M"),
        ("4g", "4G"),
        ("1T", "1T"),
        ("16GB", "16G"),
        ("2048", "2048M"),
        (512, "512M"),
    ],
)
def test_valid_memory(value: str | int, normalised: str) -> None:
    assert Config(dispatch_mem=value).dispatch_mem == normalised  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["", "0G", "4B", "1.5G", "-1G", "G", 0])
def test_invalid_memory(value: str | int) -> None:
    with pytest.raises(ConfigError, match="dispatch_mem"):
        Config(dispatch_mem=value)  # type: ignore[arg-type]


def test_memory_as_plain_integer_in_file() -> None:
    write_config("[dispatch]\nmem = 2048\n")
    assert load_quietly().dispatch_mem == "2048M"


# -- modes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ("slurm", "sbatch"),
        ("pbs", "qsub-pbs"),
        ("lsf", "bsub"),
        ("sge", "qsub-sge"),
        ("SLURM", "sbatch"),
    ]
    + [(mode, mode) for mode in MODES],
)
def test_mode_aliases(given: str, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(f'[executor]\nmode = "{given}"\n')
    assert load_quietly().mode == mode
    monkeypatch.setenv("REFLOW_MODE", given)
    assert load_quietly().mode == mode
    assert Config(mode=given).mode == mode


# -- unknown keys ------------------------------------------------------------


def test_unknown_key_warns_with_a_suggestion() -> None:
    path = write_config('[executor]\nmdoe = "sbatch"\n')
    with pytest.warns(ConfigWarning) as caught:
        config = load_config()
    assert config.mode == "local"
    message = str(caught[0].message)
    assert str(path) in message
    assert "line 2" in message
    assert "'mdoe'" in message
    assert "Did you mean 'mode'?" in message
    assert caught[0].filename == __file__  # points at the caller of load_config()


@pytest.mark.parametrize(
    ("text", "pieces"),
    [
        ("[dispach]\ncpus = 2\n", ["section [dispach]", "Did you mean [dispatch]?"]),
        ('[defaults]\nmode = "sbatch"\n', ["'mode' in [defaults]", "'mode' in [executor]?"]),
        ('mode = "sbatch"\n', ["'mode' outside any section", "'mode' in [executor]?"]),
        ('[executor]\npartition = "x"\n', ["'partition'", "[executor.submit_options]"]),
        ("[submit_options]\nqos = 1\n", ["[submit_options]", "[executor.submit_options]?"]),
        ("[telemetry]\nx = 1\n", ["section [telemetry] is ignored"]),
    ],
)
def test_unknown_names_warn(text: str, pieces: list[str]) -> None:
    write_config(text)
    with pytest.warns(ConfigWarning) as caught:
        load_config()
    message = str(caught[0].message)
    for piece in pieces:
        assert piece in message
    if "telemetry" in text:
        assert "Did you mean" not in message


def test_submit_options_accept_any_name() -> None:
    write_config('[executor.submit_options]\nconstraint = "a100"\nqos = "long"\n')
    assert load_quietly().submit_options == {"constraint": "a100", "qos": "long"}


# -- unreadable files --------------------------------------------------------


def test_directory_instead_of_a_file() -> None:
    config_path().mkdir(parents=True)
    with pytest.raises(ConfigError, match="is a directory"):
        load_config()


def test_unreadable_file(monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(FULL)

    def refuse(self: Path, *args: object, **kwargs: object) -> str:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(path))} cannot be read: Permission"):
        load_config()


def test_file_that_is_not_utf8() -> None:
    path = config_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b'[executor]\nmode = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config()


# -- the Config object -------------------------------------------------------


def test_config_is_frozen_and_checked() -> None:
    config = Config(mode="pbs", submit_options={"partition": "a"})
    assert config.mode == "qsub-pbs"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.mode = "local"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.submit_options["partition"] = "b"  # type: ignore[index]
    with pytest.raises(ConfigError, match=r"Config\(dispatch_cpus='2'\)"):
        Config(dispatch_cpus="2")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="submit_options"):
        Config(submit_options={"x": 1.5})  # type: ignore[dict-item]
    assert dataclasses.replace(config, mode="sge").mode == "qsub-sge"
    assert hash(config) == hash(Config(mode="qsub-pbs", submit_options={"partition": "b"}))


def test_as_dict_mirrors_the_file() -> None:
    path = write_config(FULL)
    data = load_quietly().as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["config_file"] == str(path)
    assert data["defaults"] == {
        "store_path": "/shared/team/manifest.db",
        "run_dir": "/scratch/me/runs",
    }
    assert data["executor"]["mode"] == "sbatch"
    assert data["executor"]["sbatch"] == "/opt/slurm/bin/sbatch"
    assert data["executor"]["squeue"] is None
    assert data["executor"]["submit_options"]["gpus"] == 2
    assert data["dispatch"] == {"cpus": 2, "time": "1-00:30:00", "mem": "4G"}
    assert Config().as_dict()["config_file"] is None


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("max_requeues", "-1", "a whole number, 0 or more"),
        ("max_mem", "lots", "a memory size above zero"),
        ("max_time", "1:99", "a time limit above zero"),
    ],
)
def test_a_bad_retry_limit_in_the_config_is_one_clear_error(
    tmp_path: Path, key: str, value: str, expected: str
) -> None:
    file = tmp_path / "config.toml"
    file.write_text(f'[executor]\n{key} = "{value}"\n')
    with pytest.raises(ConfigError, match=rf"{key} = .* is invalid; expected {expected}"):
        load_config(file)
