"""reflow's settings: the TOML config file and the REFLOW_* environment variables.

Precedence, highest first: explicit arguments (CLI flags such as
``--store-path``, keyword arguments such as ``store=``) > ``REFLOW_*``
environment variables > the config file > built-in defaults.

The file is ``$XDG_CONFIG_HOME/reflow/config.toml`` (default
``~/.config/reflow/config.toml``); ``REFLOW_CONFIG=/path/to/file.toml`` makes
reflow read that file instead.  Every key has an environment variable; the
table is `ENV_VARS` (variable -> dotted key), and `write_example_config`
writes a file that documents every key, its default and its variable.
Empty environment variables count as unset.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeAlias

from reflow.errors import ConfigError
from reflow.resources import (
    MEM_EXPECTED,
    PACK_EXPECTED,
    TIME_EXPECTED,
    ResourceError,
    normal_mem,
    normal_pack,
    normal_time,
)

__all__ = [
    "CONFIG_ENV",
    "ENV_VARS",
    "MODES",
    "MODE_ALIASES",
    "Config",
    "ConfigWarning",
    "config_path",
    "default_store_path",
    "ensure_config_exists",
    "load_config",
    "write_example_config",
]

#: The environment variable naming an alternative config file.
CONFIG_ENV = "REFLOW_CONFIG"

#: The executor registry: `[executor] mode` -> (module in reflow.executors, class), the
#: module imported on use.  A new executor is one module there and one entry here.
EXECUTORS: Mapping[str, tuple[str, str]] = MappingProxyType(
    {
        "sbatch": ("slurm", "SlurmExecutor"),
        "qsub-pbs": ("pbs", "PBSExecutor"),
        "bsub": ("lsf", "LSFExecutor"),
        "qsub-sge": ("sge", "SGEExecutor"),
        "flux": ("flux", "FluxExecutor"),
        "local": ("local", "LocalExecutor"),
        "dry-run": ("dryrun", "DryRunExecutor"),
    }
)

#: Executor modes, as in the SPEC's scheduler table.
MODES: tuple[str, ...] = tuple(EXECUTORS)

#: Executor names accepted for `mode` and the mode each stands for.
MODE_ALIASES: Mapping[str, str] = MappingProxyType(
    {"slurm": "sbatch", "pbs": "qsub-pbs", "lsf": "bsub", "sge": "qsub-sge"}
)

SubmitOption: TypeAlias = "str | int | bool"


class ConfigWarning(UserWarning):
    """The config file has a section or key reflow does not know (it is ignored)."""


@dataclass(frozen=True)
class _Key:
    """One setting: where it lives in the file, its env var and its documentation."""

    section: str
    name: str
    env: str
    #: how values are checked: store, path, command, program, mode, cpus, count, grace,
    #: time, mem, pack
    kind: str
    example: str | int  # shown in the example file and in error messages
    default: str  # as documented in the example file
    help: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def field(self) -> str:
        """The `Config` attribute."""
        return f"dispatch_{self.name}" if self.section == "dispatch" else self.name


_SCHEDULER_COMMANDS = (
    ("sbatch", "Slurm"),
    ("squeue", "Slurm"),
    ("sacct", "Slurm"),
    ("scancel", "Slurm"),
    ("scontrol", "Slurm"),
    ("sinfo", "Slurm"),
    ("qsub", "PBS and SGE"),
    ("qstat", "PBS and SGE"),
    ("qdel", "PBS and SGE"),
    ("qacct", "SGE"),
    ("bsub", "LSF"),
    ("bjobs", "LSF"),
    ("bkill", "LSF"),
    ("flux", "Flux"),
)

_KEY_LIST: tuple[_Key, ...] = (
    _Key(
        "defaults",
        "store_path",
        env="REFLOW_STORE_PATH",
        kind="store",
        example="/shared/team/manifest.db",
        default="$XDG_CACHE_HOME/reflow/manifest.db (~/.cache/reflow/manifest.db)",
        help="The manifest that records every run and answers cache look-ups: an SQLite\n"
        "file, or a PostgreSQL database as a postgresql:// URL (docs/postgres.md).\n"
        "Put it where all nodes (and your team) can see it to share results.",
    ),
    _Key(
        "defaults",
        "run_dir",
        env="REFLOW_RUN_DIR",
        kind="path",
        example="/scratch/me/runs",
        default="none (give --run-dir)",
        help="The run directory used when --run-dir is not given: logs, files the\n"
        "tasks write and worker result files go there.",
    ),
    _Key(
        "executor",
        "mode",
        env="REFLOW_MODE",
        kind="mode",
        example="sbatch",
        default='"local"',
        help="How jobs run: " + ", ".join(MODES) + ".\n"
        "The executor names slurm, pbs, lsf and sge are accepted too.",
    ),
    _Key(
        "executor",
        "python",
        env="REFLOW_PYTHON",
        kind="program",
        example="/path/to/venv/bin/python",
        default="the Python running reflow (sys.executable)",
        help="The Python that runs tasks inside scheduler jobs; reflow and your\n"
        "pipeline's imports must work with it on the compute nodes.",
    ),
    _Key(
        "executor",
        "pack",
        env="REFLOW_PACK",
        kind="pack",
        example=4,
        default='"auto"',
        help="How many instances of an array task one array element runs on a\n"
        'scheduler: "auto" sizes packs from the slots the scheduler reports and the\n'
        "durations the store has seen; 1 gives every instance its own element.\n"
        "A task's own @wf.job(pack=...) and submit --pack win over this.",
    ),
    _Key(
        "executor",
        "max_submit_per_minute",
        env="REFLOW_MAX_SUBMIT_PER_MINUTE",
        kind="count",
        example=60,
        default="0 (no limit)",
        help="At most this many jobs submitted a minute by one dispatcher pass; a\n"
        "pass with more waits between them. 0: no limit.",
    ),
    _Key(
        "executor",
        "grace",
        env="REFLOW_GRACE",
        kind="grace",
        example=120,
        default="60",
        help="Seconds before a job's time limit at which the scheduler warns the job\n"
        "(SIGUSR1): the running task gets reflow.signals.TaskInterrupted and can\n"
        "write a checkpoint; the attempt is recorded as a TIMEOUT.  At most half\n"
        "the job's time limit is used; 0 asks for no warning.",
    ),
    *(
        _Key(
            "executor",
            name,
            env=f"REFLOW_{name.upper()}",
            kind="command",
            example=f"/usr/bin/{name}",
            default=f"{name} on PATH",
            help=scheduler,
        )
        for name, scheduler in _SCHEDULER_COMMANDS
    ),
    _Key(
        "executor",
        "max_mem",
        env="REFLOW_MAX_MEM",
        kind="mem",
        example="64G",
        default="none",
        help="The most memory an automatic retry after running out of memory asks for\n"
        "(each retry doubles the memory, up to this). A task's own max_mem= wins.",
    ),
    _Key(
        "executor",
        "max_time",
        env="REFLOW_MAX_TIME",
        kind="time",
        example="2-00:00:00",
        default="none",
        help="The longest time limit an automatic retry after a time-out asks for (each\n"
        "retry doubles the time, up to this). A task's own max_time= wins.",
    ),
    _Key(
        "executor",
        "max_requeues",
        env="REFLOW_MAX_REQUEUES",
        kind="count",
        example=5,
        default="3",
        help="How many times an instance whose job was preempted or whose node failed is\n"
        "requeued; these do not use up the task's retries=, but are bounded by this.",
    ),
    _Key(
        "dispatch",
        "cpus",
        env="REFLOW_DISPATCH_CPUS",
        kind="cpus",
        example=1,
        default="1",
        help="CPUs of the dispatcher job.",
    ),
    _Key(
        "dispatch",
        "time",
        env="REFLOW_DISPATCH_TIME",
        kind="time",
        example="00:10:00",
        default='"00:10:00"',
        help="Time limit of the dispatcher job: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or "
        "D-HH:MM:SS.",
    ),
    _Key(
        "dispatch",
        "mem",
        env="REFLOW_DISPATCH_MEM",
        kind="mem",
        example="1G",
        default='"1G"',
        help="Memory of the dispatcher job: 500M, 4G, 1T, with or without B, in any case "
        "(a plain number means MB).",
    ),
)

_SECTION_HELP: Mapping[str, str] = MappingProxyType(
    {
        "defaults": "Where reflow keeps its records and runs.",
        "executor": "How and where jobs run.",
        "dispatch": "The small dispatcher job that reflow chains on the cluster to collect\n"
        "results and submit the next wave of jobs (cluster executors only).",
    }
)
_COMMANDS_HELP = (
    "The scheduler commands reflow runs, if they are not on PATH or you need\n"
    "particular ones.  Default: the name, found on PATH.  Environment: REFLOW_<NAME>."
)
_KEYS: Mapping[str, _Key] = MappingProxyType({key.dotted: key for key in _KEY_LIST})
_SECTIONS = ("defaults", "executor", "dispatch")
_SUBMIT_OPTIONS = "executor.submit_options"
# Environment variables that set one scheduler option in [executor.submit_options].
_OPTION_ENV: Mapping[str, str] = MappingProxyType(
    {"REFLOW_PARTITION": "partition", "REFLOW_ACCOUNT": "account"}
)
# A variable setting the first key replaces a file's value for the synonyms too.
_OPTION_SYNONYMS: Mapping[str, tuple[str, ...]] = MappingProxyType({"partition": ("queue",)})

#: Every environment variable reflow reads for a setting -> the dotted key it sets.
ENV_VARS: Mapping[str, str] = MappingProxyType(
    {key.env: key.dotted for key in _KEY_LIST}
    | {env: f"{_SUBMIT_OPTIONS}.{option}" for env, option in _OPTION_ENV.items()}
)


# -- where files live --------------------------------------------------------


def _xdg_dir(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    # The XDG spec says relative paths in these variables are to be ignored.
    if value and os.path.isabs(value):
        return Path(value)
    return Path.home() / fallback


def config_path() -> Path:
    """The default config file: ``$XDG_CONFIG_HOME/reflow/config.toml``."""
    return _xdg_dir("XDG_CONFIG_HOME", ".config") / "reflow" / "config.toml"


def default_store_path() -> Path:
    """The default manifest store: ``$XDG_CACHE_HOME/reflow/manifest.db``."""
    return _xdg_dir("XDG_CACHE_HOME", ".cache") / "reflow" / "manifest.db"


def _expand(value: str) -> str:
    return os.path.expanduser(os.path.expandvars(value))


# -- checking values ---------------------------------------------------------


# a store given as a URL (`postgresql://...`, `sqlite:///...`), not a path
_STORE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class _Invalid(Exception):
    """A value does not fit its key: what is expected, and maybe a "Did you mean" hint."""

    def __init__(self, expected: str, hint: str = "") -> None:
        super().__init__(expected + hint)
        self.expected = expected
        self.hint = hint


_EXPECTED = {
    "path": "a non-empty path",
    "store": "a non-empty path, or a postgresql:// URL",
    "command": "a non-empty command name or path",
    "program": "a non-empty command name or path",
    "mode": "one of " + ", ".join(MODES) + " (or slurm, pbs, lsf, sge)",
    "cpus": "a whole number of CPUs, 1 or more",
    "count": "a whole number, 0 or more",
    "grace": "a whole number of seconds, 0 or more",
    "time": TIME_EXPECTED,
    "mem": MEM_EXPECTED,
    "pack": PACK_EXPECTED,
}


def _check(kind: str, value: object, *, from_text: bool = False) -> Any:
    """`value` normalised for a key of `kind`; `from_text` values are strings to parse."""
    if kind in ("cpus", "count", "grace"):
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise _Invalid(_EXPECTED[kind]) from None
        least = 1 if kind == "cpus" else 0
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise _Invalid(_EXPECTED[kind])
        return value
    if kind in ("time", "mem", "pack"):
        try:
            if kind == "pack":
                return normal_pack(value)
            return normal_time(value) if kind == "time" else normal_mem(value)
        except ResourceError as exc:
            raise _Invalid(exc.expected) from None
    if not isinstance(value, (str, os.PathLike)):
        raise _Invalid(_EXPECTED[kind])
    text = os.fspath(value).strip()
    if not text:
        raise _Invalid(_EXPECTED[kind])
    if kind == "store" and _STORE_URL.match(text):
        return text  # a URL stays as it is (a Path would fold its '//')
    if kind in ("path", "store"):
        return Path(_expand(text))
    if kind in ("command", "program"):
        return _expand(text)
    return _check_mode(text)


def _check_mode(text: str) -> str:
    mode = text.lower()
    mode = MODE_ALIASES.get(mode, mode)
    if mode not in MODES:
        raise _Invalid(_EXPECTED["mode"], _did_you_mean(mode, [*MODES, *MODE_ALIASES]))
    return mode


def _check_options(value: object) -> dict[str, SubmitOption]:
    """A copy of `value` if it maps option names to str, int or bool."""
    if not isinstance(value, Mapping):
        raise _Invalid("a table of scheduler options (name = value)")
    options: dict[str, SubmitOption] = {}
    for name, option in value.items():
        if not isinstance(name, str) or not isinstance(option, (str, int, bool)):
            raise _Invalid(f"option values that are strings, integers or booleans ({name!r})")
        options[name] = option
    return options


def _did_you_mean(word: str, candidates: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f". Did you mean {close[0]!r}?" if close else ""


# -- the settings ------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    """reflow's settings after merging defaults, the config file and REFLOW_* variables.

    `Config()` alone holds the built-in defaults; `load_config()` reads the file
    and the environment.  Values are checked and normalised on construction
    (``mode="slurm"`` becomes ``"sbatch"``, ``dispatch_mem=2048`` becomes
    ``"2048M"``), so `dataclasses.replace` is safe for explicit overrides.
    """

    # [defaults]
    store_path: Path | str | None = None  # a str only for a URL (a PostgreSQL store)
    run_dir: Path | None = None
    # [executor]
    mode: str = "local"
    python: str = field(default_factory=lambda: sys.executable)
    pack: int | str = "auto"
    grace: int = 60
    max_mem: str | None = None
    max_time: str | None = None
    max_requeues: int = 3
    max_submit_per_minute: int = 0
    sbatch: str | None = None
    squeue: str | None = None
    sacct: str | None = None
    scancel: str | None = None
    scontrol: str | None = None
    sinfo: str | None = None
    qsub: str | None = None
    qstat: str | None = None
    qdel: str | None = None
    qacct: str | None = None
    bsub: str | None = None
    bjobs: str | None = None
    bkill: str | None = None
    flux: str | None = None
    # [executor.submit_options]
    submit_options: Mapping[str, SubmitOption] = field(default_factory=dict, hash=False)
    # [dispatch]
    dispatch_cpus: int = 1
    dispatch_time: str = "00:10:00"
    dispatch_mem: str = "1G"
    #: The config file these settings were read from, if any.
    source: Path | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for key in _KEY_LIST:
            value = getattr(self, key.field)
            if value is None and (
                key.kind in ("store", "path", "command") or key.default == "none"
            ):
                continue
            try:
                checked = _check(key.kind, value)
            except _Invalid as exc:
                raise ConfigError(
                    f"Config({key.field}={value!r}) is invalid; expected {exc}"
                ) from None
            object.__setattr__(self, key.field, checked)
        try:
            options = _check_options(self.submit_options)
        except _Invalid as exc:
            raise ConfigError(
                f"Config(submit_options={self.submit_options!r}) is invalid; expected {exc}"
            ) from None
        object.__setattr__(self, "submit_options", MappingProxyType(options))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    def resolved_store_path(self) -> Path | str:
        """The manifest store to use: `store_path` (REFLOW_STORE_PATH > file), else the default.

        A path, or a URL as a str (`postgresql://...`).  `load_config` has already
        put ``REFLOW_STORE_PATH`` into `store_path`; the CLI's ``--store-path`` and
        ``store=`` bypass the config altogether.
        """
        if isinstance(self.store_path, str) and _STORE_URL.match(self.store_path):
            return self.store_path
        if self.store_path is not None:
            return Path(_expand(os.fspath(self.store_path)))
        return default_store_path()

    def as_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able data laid out like the config file."""
        out: dict[str, Any] = {"config_file": str(self.source) if self.source else None}
        for section in _SECTIONS:
            out[section] = {}
        for key in _KEY_LIST:
            value = getattr(self, key.field)
            out[key.section][key.name] = str(value) if isinstance(value, Path) else value
        out["executor"]["submit_options"] = dict(self.submit_options)
        return out


# -- loading -----------------------------------------------------------------


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read settings: defaults, then the config file, then REFLOW_* variables.

    The file is `path` if given, else ``$REFLOW_CONFIG``, else `config_path()`.
    A missing default file means defaults; a file named explicitly (argument
    or REFLOW_CONFIG) must exist.  Raises `ConfigError` for an unreadable or
    malformed file or an invalid value; warns (`ConfigWarning`) about unknown keys.
    """
    environ = os.environ
    if path is not None:
        file, named_by = Path(path).expanduser(), "the path given"
    elif environ.get(CONFIG_ENV):
        file, named_by = Path(environ[CONFIG_ENV]).expanduser(), CONFIG_ENV
    else:
        file, named_by = config_path(), ""
    values: dict[str, Any] = {}
    options: dict[str, SubmitOption] = {}
    text = _read(file, named_by)
    if text is not None:
        _apply_file(file, text, values, options)
    _apply_env(environ, values, options)
    return Config(**values, submit_options=options, source=file if text is not None else None)


def _read(file: Path, named_by: str) -> str | None:
    """The text of `file`, or None if it does not exist and was not named explicitly."""
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        if not named_by:
            return None
        raise ConfigError(
            f"config file {file} (from {named_by}) does not exist; create it or fix the name"
        ) from None
    except IsADirectoryError:
        raise ConfigError(f"config file {file} is a directory, not a file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {file} is not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigError(f"config file {file} cannot be read: {reason}") from None


def _apply_file(
    file: Path, text: str, values: dict[str, Any], options: dict[str, SubmitOption]
) -> None:
    """Check the file's settings into `values` and `options`."""
    data = _parse(file, text)
    for section, table in data.items():
        if section not in _SECTIONS:
            _warn_unknown(file, text, "", section, isinstance(table, dict))
            continue
        if not isinstance(table, dict):
            raise ConfigError(
                f"{_where(file, text, section)}: {section} = {_show(table)} is invalid;"
                f" expected a table, written [{section}] on a line of its own"
            )
        for name, value in table.items():
            dotted = f"{section}.{name}"
            if dotted == _SUBMIT_OPTIONS:
                try:
                    options.update(_check_options(value))
                except _Invalid as exc:
                    raise ConfigError(
                        f"{_where(file, text, dotted)}: [{_SUBMIT_OPTIONS}] is invalid;"
                        f" expected {exc}"
                    ) from None
                continue
            key = _KEYS.get(dotted)
            if key is None:
                _warn_unknown(file, text, section, name, False)
                continue
            try:
                values[key.field] = _check(key.kind, value)
            except _Invalid as exc:
                raise ConfigError(
                    f"{_where(file, text, dotted)}: [{section}] {name} = {_show(value)}"
                    f" is invalid; expected {exc.expected}, e.g. {name} = {_show(key.example)}"
                    f"{exc.hint}"
                ) from None


def _parse(file: Path, text: str) -> dict[str, Any]:
    """The TOML document `text` of `file`; `ConfigError` naming the line if it is malformed."""
    # Imported here, not at the top: `import reflow` and a script's --help stay fast.
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        try:
            import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
        except ImportError:  # installed without its dependencies
            raise ConfigError(
                f"reading the config file {file} on Python 3.10 needs the 'tomli' package: "
                "pip install 'tomli>=2.0.1' (reflow's one dependency there)"
            ) from None
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, msg = _syntax_error(exc, text)
        where = f"config file {file}, line {line}" if line else f"config file {file}"
        raise ConfigError(f"{where}: {msg}; fix the file or remove it") from None
    return data


def _syntax_error(exc: ValueError, text: str) -> tuple[int | None, str]:
    """The line (1-based, None if unknown) and the message of a `TOMLDecodeError`.

    Python 3.14's tomllib and tomli 2.1+ give `.msg`, `.pos` and `.lineno`;
    before, the position is only at the end of the message: "(at line N,
    column M)" or "(at end of document)".  An error at the end of the document
    points at its last non-blank line, where the unfinished statement is.
    """
    msg, pos, lineno = (getattr(exc, name, None) for name in ("msg", "pos", "lineno"))
    if isinstance(msg, str) and isinstance(lineno, int):
        if isinstance(pos, int) and pos >= len(text):
            lineno = _last_line(text)
        return lineno, _lower_first(msg)
    found = re.fullmatch(r"(.*) \(at line (\d+), column \d+\)", str(exc), re.DOTALL)
    if found:
        return int(found[2]), _lower_first(found[1])
    found = re.fullmatch(r"(.*) \(at end of document\)", str(exc), re.DOTALL)
    if found:
        return _last_line(text), _lower_first(found[1])
    return None, _lower_first(str(exc))


def _last_line(text: str) -> int:
    return text.count("\n", 0, len(text.rstrip())) + 1


def _lower_first(msg: str) -> str:
    return msg[:1].lower() + msg[1:]


def _apply_env(
    environ: Mapping[str, str], values: dict[str, Any], options: dict[str, SubmitOption]
) -> None:
    """Let the REFLOW_* variables that are set override `values` and `options`."""
    for key in _KEY_LIST:
        raw = environ.get(key.env)
        if not raw:
            continue
        try:
            values[key.field] = _check(key.kind, raw, from_text=True)
        except _Invalid as exc:
            raise ConfigError(
                f"environment variable {key.env}={raw!r} is invalid for {key.dotted};"
                f" expected {exc.expected}, e.g. {key.env}={key.example}{exc.hint}"
            ) from None
    for env, option in _OPTION_ENV.items():
        raw = environ.get(env)
        if raw:
            for synonym in _OPTION_SYNONYMS.get(option, ()):
                options.pop(synonym, None)
            options[option] = raw


def _where(file: Path, text: str, dotted: str) -> str:
    line = _line_of(text, dotted)
    return f"config file {file}, line {line}" if line else f"config file {file}"


# Patterns, not compiled ones: `re` compiles (and caches) them on first use,
# on the error and warning paths only, so importing this module stays cheap.
_HEADER = r"\s*\[\s*([^\[\]]+?)\s*\]"
_ASSIGNMENT = r"\s*([A-Za-z0-9_\-.\"' ]+?)\s*="


def _normalise_key(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def _line_of(text: str, dotted: str) -> int | None:
    """The line that sets `dotted` (or opens it as a table), found by a plain scan."""
    table = ""
    for lineno, line in enumerate(text.splitlines(), start=1):
        header = re.match(_HEADER, line)
        if header:
            table = _normalise_key(header[1])
            if table == dotted:
                return lineno
            continue
        assignment = re.match(_ASSIGNMENT, line)
        if assignment:
            name = _normalise_key(assignment[1])
            if (f"{table}.{name}" if table else name) == dotted:
                return lineno
    return None


def _show(value: object) -> str:
    """`value` as it would be written in TOML, for messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        import json

        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return "[...] (an array)"
    if isinstance(value, dict):
        return "{...} (a table)"
    return str(value)


def _warn_unknown(file: Path, text: str, section: str, name: str, is_table: bool) -> None:
    """Warn that `name` in `section` ("" for the top level) is ignored."""
    dotted = f"{section}.{name}" if section else name
    if is_table:
        what = f"section [{dotted}]"
    elif section:
        what = f"key {name!r} in [{section}]"
    else:
        what = f"key {name!r} outside any section"
    warnings.warn(
        f"{_where(file, text, dotted)}: unknown {what} is ignored{_suggestion(section, name)}",
        ConfigWarning,
        stacklevel=4,  # the caller of load_config()
    )


def _suggestion(section: str, name: str) -> str:
    """ " Did you mean ...?" for an unknown key or section, or ""."""
    homes = [key for key in _KEY_LIST if key.name == name and key.section != section]
    if homes:
        return f". Did you mean {name!r} in [{homes[0].section}]?"
    if not section:
        import difflib

        tables = [*_SECTIONS, _SUBMIT_OPTIONS]
        close = difflib.get_close_matches(name, tables, n=1, cutoff=0.6)
        if name == "submit_options":
            close = [_SUBMIT_OPTIONS]
        return f". Did you mean [{close[0]}]?" if close else ""
    names = [key.name for key in _KEY_LIST if key.section == section]
    if section == "executor":
        names.append("submit_options")
    hint = _did_you_mean(name, names)
    if not hint and section == "executor":
        hint = f". Scheduler options such as {name!r} go in [{_SUBMIT_OPTIONS}]"
    return hint


# -- the example file --------------------------------------------------------


def _example_text() -> str:
    """A config file that explains every key and sets none of them."""
    lines = [
        "# reflow configuration.",
        "#",
        "# Every setting is commented out, so this file changes nothing until you",
        "# uncomment a line.  Each shows an example value, the default and the",
        "# environment variable that overrides it.  Precedence, highest first:",
        "# command-line flags and keyword arguments, REFLOW_* environment variables,",
        "# this file, built-in defaults.  Set REFLOW_CONFIG=/path/to/file.toml to",
        "# make reflow read another file instead of this one.",
    ]
    for section in _SECTIONS:
        lines += ["", *_comment(_SECTION_HELP[section]), f"[{section}]"]
        for key in _KEY_LIST:
            if key.section != section:
                continue
            if key.kind != "command":
                lines += ["", *_comment(key.help)]
                lines += [f"# Default: {key.default}", f"# Environment: {key.env}"]
                lines += [f"# {key.name} = {_show(key.example)}"]
                continue
            if lines[-1].startswith("# python"):
                lines += ["", *_comment(_COMMANDS_HELP)]
            setting = f"# {key.name} = {_show(key.example)}"
            lines += [f"{setting:<34}# {key.help}, {key.env}"]
        if section == "executor":
            option_envs = ", ".join(f"{env} ({name})" for env, name in _OPTION_ENV.items())
            lines += [
                "",
                "# Options given to the scheduler for every job; a task's own options",
                "# (@wf.job(partition=..., account=...)) take precedence.  `partition`",
                "# and `queue` are synonyms; any other key (qos, gpus, constraint, ...)",
                "# is passed through.  Values are strings, integers or booleans.",
                f"# Environment: {option_envs}",
                f"[{_SUBMIT_OPTIONS}]",
                '# partition = "compute"',
                '# account = "my_project"',
                '# qos = "normal"',
            ]
    return "\n".join(lines) + "\n"


def _comment(text: str) -> list[str]:
    return [f"# {line}" for line in text.splitlines()]


def write_example_config(path: str | os.PathLike[str]) -> Path:
    """Write the fully commented example config to `path` (replacing it); return the path."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_example_text(), encoding="utf-8")
    return target


def ensure_config_exists() -> Path:
    """Write the example config at `config_path()` unless a file is there; return the path."""
    target = config_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with target.open("x", encoding="utf-8") as handle:  # never overwrite
            handle.write(_example_text())
    except FileExistsError:
        pass
    return target
