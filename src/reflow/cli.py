"""The command line: `wf.cli()` for pipeline scripts and the `reflow` console command.

Every parameter of the graph becomes a flag.  A user's mistake prints one
line on stderr and exits 2 (1 when a run or an operation failed); set
REFLOW_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import typing
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from .errors import ConfigError, ReflowError, RunNotFoundError, ValidationError

if TYPE_CHECKING:
    from .config import Config
    from .engine import Engine
    from .run import Run
    from .stores import Store
    from .wiring import Graph, ParamSpec, Pipeline

__all__ = ["main", "workflow_cli"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_STATES = ("RUNNING", "SUCCESS", "FAILED", "CANCELLED")


class _UsageError(Exception):
    """A command-line mistake caught by argparse."""


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line, raised rather than printed."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _version() -> str:
    from ._version import __version__

    return f"reflow {__version__}"


# ---------------------------------------------------------------------- parameter flags


def _type_label(p: ParamSpec) -> str:
    from .params import type_name

    return type_name(p.annotation).replace("NoneType", "None")


def _number_parser(convert: Callable[[str], Any], what: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expects {what}, not {text!r}") from None

    return parse


def _scalar_parser(t: Any, key: str) -> Callable[[str], Any]:
    if t is int:
        return _number_parser(int, "a whole number")
    if t is float:
        return _number_parser(float, "a number")
    if isinstance(t, type) and issubclass(t, os.PathLike):
        return Path
    return str


def _add_param(group: argparse._ArgumentGroup, p: ParamSpec) -> None:
    from .params import MISSING, optional_inner

    flags = ([p.short] if p.short else []) + [p.flag]
    t = p.annotation
    inner = optional_inner(t)
    if inner is not None:
        t = inner
    kwargs: dict[str, Any] = {"dest": f"param:{p.key}", "default": argparse.SUPPRESS}
    bits = [_type_label(p)]
    origin = typing.get_origin(t)
    if t is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin is Literal:
        choices = typing.get_args(t)
        kwargs["choices"] = list(choices)
        kwargs["type"] = _scalar_parser(type(choices[0]), p.key)
        bits = ["one of " + ", ".join(str(c) for c in choices)]
    elif t is list or origin in (list, Sequence):
        args = typing.get_args(t)
        kwargs["nargs"] = "*" if p.default is not MISSING else "+"
        kwargs["type"] = _scalar_parser(args[0] if args else str, p.key)
        kwargs["metavar"] = p.arg.upper()
    else:
        kwargs["type"] = _scalar_parser(t, p.key)
        kwargs["metavar"] = p.arg.upper()
    bits.append("required" if p.default is MISSING else f"default: {_show_default(p.default)}")
    if len(p.tasks) > 1:
        bits.append("tasks: " + ", ".join(p.tasks))
    text = (p.help + " " if p.help else "") + "(" + "; ".join(bits) + ")"
    kwargs["help"] = text.replace("%", "%%")
    try:
        group.add_argument(*flags, **kwargs)
    except argparse.ArgumentError:
        taken = [f for f in flags if f in group._option_string_actions]
        owner = f"task '{p.tasks[0]}'" if len(p.tasks) == 1 else "tasks " + ", ".join(p.tasks)
        raise ValidationError(
            f"parameter '{p.key}' of {owner} would be the flag {' / '.join(taken or flags)}, "
            "which is taken by another option: rename the parameter (or its short flag)"
        ) from None


def _show_default(value: Any) -> str:
    """A default as a user would type it: paths plainly, not as PosixPath('...')."""
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show_default(v) for v in value) + "]"
    return repr(value)


def _params_from(ns: argparse.Namespace) -> dict[str, Any]:
    return {k.split(":", 1)[1]: v for k, v in vars(ns).items() if k.startswith("param:")}


# ---------------------------------------------------------------------- parsers


def _store_option(parser: argparse.ArgumentParser, top: bool = False) -> None:
    parser.add_argument(
        "--store-path",
        metavar="PATH",
        default=None if top else argparse.SUPPRESS,
        help="the manifest store to use (default: REFLOW_STORE_PATH, the config file, "
        "then ~/.cache/reflow/manifest.db)",
    )


def _one_run_command(sub: Any, name: str, summary: str, description: str) -> Any:
    """A command about one run (`RUN_ID`), optionally narrowed to one task (`--task`)."""
    p = sub.add_parser(name, help=summary, description=description)
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--task", metavar="T", help="only this task")
    return p


def _add_store_commands(sub: Any, *, in_script: bool) -> None:
    what = "this workflow's runs" if in_script else "runs in the store"
    p = _one_run_command(
        sub,
        "status",
        "show a run's task states",
        "Show a run's task states: one line per task with counts (and how many instances "
        "were retried), failed elements beneath with their failure kind and attempt.",
    )
    p.add_argument("--errors", action="store_true", help="add the last 15 lines of tracebacks")
    p.add_argument("--json", action="store_true", help="print the full status as JSON")
    p.add_argument(
        "--attempts",
        nargs="?",
        const=("", None),
        type=_instance_of,
        metavar="TASK[INDEX]",
        help="add the history of attempts (state, failure kind, resources, start, end, error) "
        "of each instance tried more than once; of every instance of TASK, or of one element",
    )
    _watch_options(p)
    _store_option(p)

    p = sub.add_parser(
        "cancel",
        help="cancel runs",
        description="Cancel runs (or one task of them): unfinished instances become CANCELLED.",
    )
    p.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    p.add_argument("--task", metavar="T", help="only this task")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    _store_option(p)

    p = sub.add_parser("runs", help=f"list {what}", description=f"List {what}, newest first.")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--last", type=_positive, metavar="N", default=20, help="the last N (20)")
    g.add_argument("--all", action="store_true", help="all of them")
    p.add_argument(
        "--since", type=_date, metavar="DATE", help="created on or after DATE (YYYY-MM-DD)"
    )
    p.add_argument(
        "--until", type=_date, metavar="DATE", help="created on or before DATE (YYYY-MM-DD)"
    )
    p.add_argument(
        "--status",
        type=str.upper,
        choices=_STATES,
        metavar="STATE",
        help="only runs in this state: " + ", ".join(_STATES),
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument(
        "--delete",
        nargs="+",
        metavar="RUN_ID",
        help="forget these runs instead (as 'gc' does: rows, outputs and files only they use)",
    )
    _store_option(p)
    _add_gc_command(sub, in_script=in_script)
    _add_why_command(sub)
    _add_logs_command(sub)
    _add_report_command(sub)


def _add_gc_command(sub: Any, *, in_script: bool) -> None:
    p = sub.add_parser(
        "gc",
        help="forget old runs, and the outputs and files only they use",
        description="Forget old runs: their rows, the cached outputs and the run-dir files only "
        "they use. An output a kept run reuses is kept (moved into the kept run); a run still "
        "running is never forgotten. Prints what it removed, with sizes.",
    )
    p.add_argument(
        "--keep-last",
        type=lambda t: _whole(t, 0, "a whole number", "a number"),
        metavar="N",
        help="forget all but the N newest runs of each workflow",
    )
    p.add_argument(
        "--older-than",
        type=_age,
        metavar="AGE",
        help="forget runs created more than AGE ago: 45s, 90m, 12h, 30d, 2w (with --keep-last: "
        "runs that are both)",
    )
    p.add_argument(
        "--workflow",
        metavar="W",
        help="only runs of workflow W" + (" (default: this script's)" if in_script else ""),
    )
    p.add_argument("--dry-run", action="store_true", help="print what would go; change nothing")
    _store_option(p)


def _age(text: str) -> float:
    from .maintenance import parse_age

    try:
        return parse_age(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_why_command(sub: Any) -> None:
    p = sub.add_parser(
        "why",
        help="say why a run's instances ran or were reused",
        description="Say why each instance of a run ran instead of being reused (which "
        "parameter, upstream output or version changed since its closest earlier instance, "
        "forced, cache=False, a failed verify, a retry) or which run it was reused from; "
        "grouped per task, or one line for TASK INDEX.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("task", metavar="TASK", nargs="?", default=None, help="only this task")
    p.add_argument(
        "index",
        metavar="INDEX",
        nargs="?",
        default=None,
        type=_index,
        help="only this element of TASK (an array task)",
    )
    _store_option(p)


def _watch_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--watch",
        action="store_true",
        help="redraw live progress per task (done/total, rate, ETA) until the run ends, "
        "then print its status and exit with its exit code",
    )
    p.add_argument(
        "--interval",
        type=_interval,
        default=2.0,
        metavar="SECONDS",
        help="seconds between updates of --watch (2)",
    )


def _interval(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not 0 < seconds < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds above 0 and under a day, not {text}")
    return seconds


def _add_logs_command(sub: Any) -> None:
    p = sub.add_parser(
        "logs",
        help="print what one instance wrote to stdout (or stderr)",
        description="Print what one instance of a run wrote to stdout (--err: stderr), "
        "local and cluster runs alike; the latest attempt unless --attempt.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("task", metavar="TASK")
    p.add_argument(
        "index", metavar="INDEX", type=_index, nargs="?", help="the element of an array task"
    )
    p.add_argument("--err", action="store_true", help="stderr instead of stdout")
    p.add_argument("--attempt", type=_positive, metavar="K", help="attempt K (default: the latest)")
    _store_option(p)


def _index(text: str) -> int:
    return _whole(text, 0, "an element index", "an element index")


def _dry_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="say per task how many instances would run and how many would be reused, and "
        "why; run, record and submit nothing",
    )
    p.add_argument("--json", action="store_true", help="with --dry-run: print it as JSON")


def _add_report_command(sub: Any) -> None:
    p = sub.add_parser(
        "report",
        help="write a run's report as one HTML file",
        description="Write a run's report as one self-contained HTML file (the task graph "
        "with states, counts, cache reuse and retries, a timeline of attempts, durations, "
        "requested and used resources, failures with their tracebacks) to open in a browser.",
    )
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument(
        "-o",
        "--output",
        metavar="PATH",
        default=None,
        help="the file to write (default: RUN_ID.html in the current directory; "
        "a directory: RUN_ID.html in it)",
    )
    _store_option(p)


def _date(text: str) -> str:
    """A date or date-time as `runs --since/--until` take it (checked here, used as text)."""
    import datetime as dt

    try:
        dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a date YYYY-MM-DD or YYYY-MM-DDTHH:MM, not {text!r}"
        ) from None
    return text.strip()


def _pack(text: str) -> int | str:
    from .resources import ResourceError, normal_pack

    try:
        return normal_pack(text)
    except ResourceError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not valid: use {exc}") from None


def _instance_of(text: str) -> tuple[str, int | None]:
    """`TASK` or `TASK[INDEX]` as (task, index or None); the flag's one-line error if not."""
    import re

    found = re.fullmatch(r"([^\[\]\s]+)(?:\[(\d+)\])?", text)
    if not found:
        raise argparse.ArgumentTypeError(
            f"expected TASK or TASK[INDEX] (e.g. work[3]), not {text!r}"
        )
    return found[1], None if found[2] is None else int(found[2])


def _positive(text: str) -> int:
    return _whole(text, 1, "a whole number", "a number")


def _whole(text: str, least: int, what: str, low: str) -> int:
    """`text` as a whole number of at least `least`; the flag's one-line error if not."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, not {text!r}") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"expected {low} >= {least}, not {n}")
    return n


def _run_options(p: argparse.ArgumentParser, cfg_run_dir: Path | None) -> None:
    p.add_argument(
        "--run-dir",
        metavar="DIR",
        default=str(cfg_run_dir) if cfg_run_dir else None,
        help="directory for logs and files the tasks write"
        + (f" (default from config: {cfg_run_dir})" if cfg_run_dir else " (required)"),
    )
    p.add_argument("--force", action="store_true", help="recompute everything, reuse nothing")
    p.add_argument(
        "--force-tasks",
        nargs="+",
        metavar="T",
        default=None,
        help="recompute these tasks (downstream follows if outputs change)",
    )
    p.add_argument(
        "--verify",
        action="store_true",
        help="check that cached Path outputs still exist before reusing them",
    )
    _store_option(p)


def _param_options(p: argparse.ArgumentParser, graph: Graph | None) -> list[str]:
    """One flag per workflow parameter; returns the clashes with flags already taken."""
    problems: list[str] = []
    if graph is not None and graph.params:
        group = p.add_argument_group("workflow parameters")
        for spec in graph.params.values():
            try:
                _add_param(group, spec)
            except ValidationError as exc:  # reported when the command runs
                problems.append(str(exc))
    return problems


def _script_parser(
    wf: Pipeline, graph: Graph | None, broken: str | None, cfg_run_dir: Path | None
) -> tuple[_Parser, str | None]:
    """The pipeline script's parser, and why `run` cannot work (a flag clash), if so."""
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else wf.name
    if prog in ("", "-c", "__main__.py"):
        prog = wf.name
    parser = _Parser(prog=prog, description=f"Workflow '{wf.name}', run by reflow.")
    parser.add_argument("--version", action="version", version=_version())
    _store_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    run = sub.add_parser(
        "run",
        help="run the workflow here, in the foreground",
        description="Run the workflow on this machine and wait for it.",
    )
    _run_options(run, cfg_run_dir)
    run.add_argument(
        "--max-workers",
        type=_positive,
        default=1,
        metavar="N",
        help="run up to N instances at once in worker processes (1)",
    )
    run.add_argument(
        "--on-error",
        choices=("stop", "continue"),
        default="stop",
        help="after a failure: stop starting new work (default), or continue "
        "with everything that does not depend on it",
    )
    _dry_run_options(run)
    clashes = _param_options(run, graph)
    if broken is None and clashes:
        broken = clashes[0]
    submit = sub.add_parser(
        "submit",
        help="submit the workflow to the scheduler and return",
        description="Record the run, submit its first wave of jobs and return; a small "
        "chained dispatcher job drives the rest of the graph on the cluster.",
    )
    _run_options(submit, cfg_run_dir)
    submit.add_argument(
        "--executor",
        metavar="NAME",
        default=None,
        help="slurm, sge, pbs, lsf, flux, local or dry-run (default: [executor] mode in the "
        "config, or REFLOW_MODE)",
    )
    submit.add_argument(
        "--pack",
        metavar="N|auto",
        type=_pack,
        default=None,
        help="instances of an array task each array element runs: auto (sized from the "
        "scheduler's free slots and past durations), 1 (one each) or a number; a task's "
        "own pack= wins (default: [executor] pack in the config, or auto)",
    )
    _dry_run_options(submit)
    _param_options(submit, graph)
    if broken is not None:
        parser.epilog = run.epilog = f"the workflow cannot run: {broken}"
    p = _one_run_command(
        sub,
        "retry",
        "rerun a run's failed, cancelled and skipped tasks",
        "Rerun what failed, was cancelled or skipped; reused upstream outputs are verified first.",
    )
    _store_option(p)
    _add_store_commands(sub, in_script=True)
    p = sub.add_parser(
        "dag",
        help="print the task graph",
        description="Print the task graph: as text, Graphviz dot or a mermaid flowchart.",
    )
    p.add_argument(
        "--format",
        choices=("text", "dot", "mermaid"),
        default="text",
        help="text (default), dot (Graphviz: 'dot -Tsvg') or mermaid (a flowchart block)",
    )
    sub.add_parser(
        "describe",
        help="print the workflow as JSON",
        description="Print tasks, wiring, resources and parameters as JSON.",
    )
    return parser, clashes[0] if clashes else None


def _console_parser() -> _Parser:
    parser = _Parser(
        prog="reflow",
        description="reflow's store-level commands: list, inspect, cancel and forget runs "
        "without the pipeline script, copy stores, and show the configuration.",
    )
    parser.add_argument("--version", action="version", version=_version())
    _store_option(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    _add_store_commands(sub, in_script=False)
    p = sub.add_parser(
        "config",
        help="show the configuration in force",
        description="Show the configuration in force and the file it came from.",
    )
    p.add_argument(
        "--init",
        action="store_true",
        help="write a fully commented example config file if there is none",
    )
    p = sub.add_parser(
        "store",
        help="work on whole stores (copy)",
        description="Work on whole stores.",
    )
    store_sub = p.add_subparsers(dest="store_command", metavar="ACTION", parser_class=_Parser)
    p = store_sub.add_parser(
        "copy",
        help="copy every run of one store into another",
        description="Copy every run, instance (all attempts), reason and cached output of SRC "
        "into DST (created if needed). Runs already in DST with the same content are skipped; "
        "copying again adds nothing. Verified at the end by counts and digests.",
    )
    p.add_argument("src", metavar="SRC", help="the store to copy: a path or a URL")
    p.add_argument("dst", metavar="DST", help="the store to copy into: a path or a URL")
    p = sub.add_parser(
        "doctor",
        help="check the store's health (changes nothing unless --fix)",
        description="Check the store's integrity and schema, that every SUCCESS instance has "
        "its output, runs left RUNNING by a process that is gone, and result files nobody "
        "will ingest. Read-only unless --fix.",
    )
    p.add_argument(
        "--fix",
        action="store_true",
        help="mark runs whose driver died FAILED (retry resumes them) and remove leftover "
        "result files",
    )
    _store_option(p)
    return parser


def _cmd_doctor(ns: argparse.Namespace, cfg: Config) -> int:
    from .doctor import check_store

    path = _store_location(ns, cfg)
    report = check_store(path, fix=ns.fix)
    print(f"store {_shown(path)}")
    for line in report.lines:
        print(f"  {line}")
    if report.problems and not ns.fix:
        print(
            f"{report.problems} problem{'s' if report.problems != 1 else ''}; "
            "'reflow doctor --fix' repairs what it safely can"
        )
    return EXIT_FAILED if report.problems else EXIT_OK


def _cmd_config(ns: argparse.Namespace) -> int:
    from .config import config_path, ensure_config_exists

    if ns.init:
        existed = config_path().exists()
        path = ensure_config_exists()
        print(f"{'kept the existing' if existed else 'wrote an example'} config file {path}")
        return EXIT_OK
    import json

    doc = _config().as_dict()
    store_path = doc["defaults"].get("store_path")
    if isinstance(store_path, str):
        doc["defaults"]["store_path"] = _shown(store_path)
    print(json.dumps(doc, indent=2, default=str))
    return EXIT_OK


# ---------------------------------------------------------------------- running commands


def _config() -> Config:
    """The configuration in force; unknown keys are reported as one "warning:" line each."""
    from .config import ConfigWarning, load_config

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConfigWarning)
        cfg = load_config()
    for w in caught:
        print(f"warning: {w.message}", file=sys.stderr)
    return cfg


def _store(ns: argparse.Namespace, cfg: Config) -> Store:
    """--store-path, else the configuration's store (REFLOW_STORE_PATH > file > default)."""
    from .stores import open_store

    return open_store(_store_location(ns, cfg))


def _shown(location: str) -> str:
    """A store's location as a message shows it: a URL's password as ***, never in clear."""
    from .stores.base import without_password

    return without_password(location)


def _store_location(ns: argparse.Namespace, cfg: Config) -> str:
    """Where the store is: --store-path, else the configuration's, as a path or URL."""
    from .stores import normal_location

    given = getattr(ns, "store_path", None)
    return normal_location(given) if given else str(cfg.resolved_store_path())


class _Progress:
    """Live progress on a terminal: tasks and instances done, elapsed time."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.start = time.monotonic()
        self.last = 0.0
        self.shown = False

    def __call__(self, engine: Engine) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.1:
            return
        self.last = now
        tdone, ttotal, idone, iknown = engine.progress()
        sys.stderr.write(
            f"\r{tdone}/{ttotal} tasks, {idone}/{iknown} instances, {now - self.start:.1f} s\033[K"
        )
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


_Snapshot = set[tuple[str, int | None, int, str]]


def _snapshot(run: Run) -> _Snapshot:
    """The run's current instances (task, index, attempt, state), to tell what a retry did."""
    return {
        (i["task_name"], i["array_index"], i["attempt"], i["state"])
        for i in run.store.instances(run.run_id)
    }


def _summary_line(run: Run, seconds: float, before: _Snapshot | None = None) -> str:
    """One line: the run's state and instance counts (for a retry, what it ran itself)."""
    summary = run.store.summary(run.run_id)
    cached = sum(run.store.cached_counts(run.run_id).values())
    totals: dict[str, int] = {}
    for counts in summary.values():
        for state, n in counts.items():
            totals[state] = totals.get(state, 0) + n
    total = sum(totals.values())
    bits = [f"{total} instances"]
    if before is None:
        ran = totals.get("SUCCESS", 0) - cached
        bits.append(f"{ran} ran, {cached} cached")
    else:  # a retry: count what it changed, not what earlier attempts did
        done = [
            i
            for i in run.store.instances(run.run_id)
            if (i["task_name"], i["array_index"], i["attempt"], i["state"]) not in before
        ]
        ok = [i for i in done if i["state"] == "SUCCESS"]
        ran = sum(1 for i in ok if not i["cached"])
        bits.append(f"{ran} ran, {len(ok) - ran} cached, {total - len(done)} unchanged")
    for state in ("FAILED", "SKIPPED", "CANCELLED", "PENDING"):
        if totals.get(state):
            bits.append(f"{totals[state]} {state}")
    state = run.state.value
    line = f"run {run.run_id} {state} in {seconds:.1f} s: " + ", ".join(bits)
    if state in ("FAILED", "CANCELLED"):
        prog = sys.argv[0] if sys.argv and sys.argv[0] else "pipeline.py"
        line += f"\n  see: python {prog} status {run.run_id} --errors"
        line += f"\n  then: python {prog} retry {run.run_id}"
        line += f"\n  what a task printed: python {prog} logs {run.run_id} TASK [INDEX]"
    return line


def _cmd_dry_run(wf: Pipeline, ns: argparse.Namespace, cfg: Config) -> int:
    """`run --dry-run` / `submit --dry-run`: the engine's prediction, nothing touched."""
    from .runner import dry_run

    if not ns.dry_run:
        raise ValidationError(f"{ns.command} --json prints a dry run: add --dry-run")
    if not ns.run_dir:
        raise ValidationError(
            f"{ns.command} needs --run-dir DIR (or [defaults] run_dir in the config)"
        )
    prediction = dry_run(
        wf,
        ns.run_dir,
        store=_store_location(ns, cfg),
        config=cfg,
        force=ns.force,
        force_tasks=ns.force_tasks,
        verify=ns.verify,
        max_workers=getattr(ns, "max_workers", 1),
        on_error=getattr(ns, "on_error", "stop"),
        params=_params_from(ns),
    )
    if ns.json:
        import json

        print(json.dumps(prediction, indent=2))
        return EXIT_OK
    from .explain import prediction_lines

    print("\n".join(prediction_lines(prediction)))
    return EXIT_OK


def _cmd_why(ns: argparse.Namespace, cfg: Config) -> int:
    from .run import Run

    lines = Run(ns.run_id, _store(ns, cfg)).why(ns.task, ns.index)
    print("\n".join(lines))
    return EXIT_OK


def _cmd_submit(wf: Pipeline, ns: argparse.Namespace, cfg: Config) -> int:
    from .run import Run
    from .runner import submit

    if ns.dry_run or ns.json:
        return _cmd_dry_run(wf, ns, cfg)
    if not ns.run_dir:
        raise ValidationError("submit needs --run-dir DIR (or [defaults] run_dir in the config)")
    run_id, store, dry = submit(
        wf,
        ns.run_dir,
        executor=ns.executor or cfg.mode,
        store=_store(ns, cfg),
        config=cfg,
        force=ns.force,
        force_tasks=ns.force_tasks,
        verify=ns.verify,
        params=_params_from(ns),
        pack=ns.pack,
    )
    run = Run(run_id, store, workflow=wf)
    if dry:
        print("dry run: nothing was submitted and nothing was recorded")
        return EXIT_OK
    info = run.info()
    state = info["status"]
    prog = sys.argv[0] if sys.argv and sys.argv[0] else "pipeline.py"
    if state == "RUNNING":
        from .dispatch import make_executor

        options = info["options"] if isinstance(info["options"], dict) else {}
        job_of = make_executor(options.get("executor"), cfg).job_of
        jobs = sorted({job_of(j) for *_, j, _ in run.store.in_flight(run.run_id) if j})
        print(
            f"submitted run {run.run_id} to {info['executor']}: {len(jobs)} job"
            f"{'s' if len(jobs) != 1 else ''} ({', '.join(jobs)}), dispatcher "
            f"{info['dispatcher']}\n  follow it: python {prog} status {run.run_id}"
        )
        return EXIT_OK
    print(_summary_line(run, 0.0))
    return EXIT_OK if state == "SUCCESS" else EXIT_FAILED


def _cmd_run(wf: Pipeline, ns: argparse.Namespace, cfg: Config) -> int:
    from .run import Run
    from .runner import start_local

    if ns.dry_run or ns.json:
        return _cmd_dry_run(wf, ns, cfg)
    if not ns.run_dir:
        raise ValidationError("run needs --run-dir DIR (or [defaults] run_dir in the config)")
    progress = _Progress(sys.stderr.isatty())
    started = time.monotonic()
    run_ids: list[str] = []
    try:
        run_id, store = start_local(
            wf,
            ns.run_dir,
            store=_store(ns, cfg),
            config=cfg,
            force=ns.force,
            force_tasks=ns.force_tasks,
            verify=ns.verify,
            max_workers=ns.max_workers,
            on_error=ns.on_error,
            params=_params_from(ns),
            progress=progress,
            on_start=run_ids.append,
        )
    except KeyboardInterrupt:
        progress.clear()
        if run_ids:
            print(
                f"interrupted: run {run_ids[0]} is CANCELLED; resume it with 'retry {run_ids[0]}'",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED
    progress.clear()
    run = Run(run_id, store, workflow=wf)
    print(_summary_line(run, time.monotonic() - started))
    return EXIT_OK if run.state.value == "SUCCESS" else EXIT_FAILED


def _cmd_retry(wf: Pipeline, ns: argparse.Namespace, cfg: Config) -> int:
    from .run import Run
    from .runner import resume

    store = _store(ns, cfg)
    run = Run(ns.run_id, store, workflow=wf)
    run.info()  # unknown run id -> one clear line
    before = _snapshot(run)
    progress = _Progress(sys.stderr.isatty())
    started = time.monotonic()
    try:
        tasks = None if ns.task is None else [ns.task]
        reset = resume(wf, run.run_id, store, tasks=tasks, verify=True, progress=progress)
    except KeyboardInterrupt:
        progress.clear()
        print(
            f"interrupted: run {ns.run_id} is CANCELLED; resume it with 'retry {ns.run_id}'",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    progress.clear()
    print(f"retried {reset} instance{'s' if reset != 1 else ''}")
    print(_summary_line(run, time.monotonic() - started, before))
    # RUNNING: a scheduler run handed back to its jobs and dispatcher, as `submit` does
    return EXIT_OK if run.state.value in ("SUCCESS", "RUNNING") else EXIT_FAILED


def _cmd_status(ns: argparse.Namespace, cfg: Config) -> int:
    # counts by aggregate queries, and --json streamed: fast at 100,000 instances
    if ns.watch:
        if ns.json or ns.attempts:
            flag = "--json" if ns.json else "--attempts"
            raise ValidationError(f"status --watch draws progress for people: leave out {flag}")
        return _cmd_watch(ns, cfg)
    of, index = ns.attempts or (None, None)
    if of and ns.task and of != ns.task:
        raise ValidationError(
            f"--attempts {of} names another task than --task {ns.task}: give one of them"
        )
    task = ns.task or of or None  # "" (no value): the instances tried more than once
    store = _store(ns, cfg)
    if ns.json:
        from .run import write_status_json

        write_status_json(store, ns.run_id, ns.task, sys.stdout, attempts=(task, index, not of))
        return EXIT_OK
    from .render import render_attempts, render_status
    from .run import attempt_history, status_overview

    # the history is read first: a bad --attempts is one line, with nothing printed before it
    rows = attempt_history(store, ns.run_id, task, index, retried=not of) if ns.attempts else []
    print(render_status(status_overview(store, ns.run_id, ns.task), errors=ns.errors))
    if ns.attempts:
        print("\n".join(render_attempts(rows, _attempts_heading(rows, of, index))))
    return EXIT_OK


def _attempts_heading(rows: list[dict[str, Any]], task: str | None, index: int | None) -> str:
    """The line above `status --attempts`' history: which instances it shows."""
    n = len({(r["task_name"], r["array_index"]) for r in rows})
    if not task:
        if not n:
            return "attempts: no instance was tried more than once"
        return f"attempts of the {n} instance{'s' if n != 1 else ''} tried more than once:"
    label = task if index is None else f"{task}[{index}]"
    if not n:
        return f"attempts of {label}: none recorded yet"
    return f"attempts of {label}:" if n == 1 else f"attempts of {label} ({n} instances):"


def _cmd_report(ns: argparse.Namespace, cfg: Config) -> int:
    from .report import write_report

    path = write_report(_store(ns, cfg), ns.run_id, ns.output)
    print(f"wrote the report of run {ns.run_id} to {path}")
    return EXIT_OK


def _cmd_cancel(ns: argparse.Namespace, cfg: Config) -> int:
    from .run import Run, _check_task

    store = _store(ns, cfg)
    runs = [Run(r, store) for r in dict.fromkeys(ns.run_ids)]
    for run in runs:  # every id (and --task) must exist before anything is cancelled
        run.info()
        if ns.task is not None:
            _check_task(store, run.run_id, ns.task)
    if len(runs) > 1 and not ns.yes:
        if not sys.stdin.isatty():
            raise ValidationError(
                f"cancelling {len(runs)} runs needs confirmation: pass --yes to confirm"
            )
        answer = input(f"cancel {len(runs)} runs ({', '.join(r.run_id for r in runs)})? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing cancelled")
            return EXIT_FAILED
    for run in runs:
        before = run.info()["status"]
        n = run.cancel(ns.task)
        what = f"task '{ns.task}' of run" if ns.task else "run"
        if n == 0 and before != "RUNNING":
            print(f"{what} {run.run_id} had already finished ({before}): nothing to cancel")
            continue
        print(f"cancelled {what} {run.run_id}: {n} instance{'s' if n != 1 else ''}")
    return EXIT_OK


def _cmd_runs(ns: argparse.Namespace, cfg: Config, graph_name: str | None) -> int:
    store = _store(ns, cfg)
    rows = store.list_runs(
        graph_name=graph_name,
        limit=None if ns.all else ns.last,
        since=ns.since,
        until=ns.until,
        status=ns.status,
    )
    if ns.json:
        import json

        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print(
            "no runs"
            + (f" of workflow '{graph_name}'" if graph_name else "")
            + f" in {store.location}"
        )
        return EXIT_OK
    w = max(len(r["run_id"]) for r in rows)
    print(f"{'RUN':<{w}}  {'STATUS':<9}  {'CREATED':<25}  RUN DIR")
    for r in rows:
        print(f"{r['run_id']:<{w}}  {r['status']:<9}  {r['created_at']:<25}  {r['run_dir']}")
    return EXIT_OK


def _cmd_gc(ns: argparse.Namespace, cfg: Config, graph_name: str | None) -> int:
    from .maintenance import collect, select_runs

    store = _store(ns, cfg)
    forgotten, kept, spared = select_runs(
        store,
        keep_last=ns.keep_last,
        older_than=ns.older_than,
        workflow=ns.workflow or graph_name,
        must_exist=ns.workflow is not None,
    )
    collect(store, forgotten, kept, spared, dry_run=ns.dry_run)
    return EXIT_OK


def _cmd_delete(ns: argparse.Namespace, cfg: Config) -> int:
    from .maintenance import collect, runs_to_delete

    store = _store(ns, cfg)
    forgotten, kept = runs_to_delete(store, ns.delete)
    collect(store, forgotten, kept, [], dry_run=False)
    return EXIT_OK


def _cmd_store(ns: argparse.Namespace) -> int:
    from .storecopy import copy_store

    if ns.store_command is None:
        raise _UsageError("say what to do with the store: 'reflow store copy SRC DST'")
    copy_store(ns.src, ns.dst)
    return EXIT_OK


def _cmd_dag(graph: Graph, fmt: str) -> int:
    from .render import render_dag

    print(render_dag(graph, fmt))
    return EXIT_OK


def _cmd_logs(ns: argparse.Namespace, cfg: Config) -> int:
    from .run import instance_log

    text = instance_log(
        _store(ns, cfg), ns.run_id, ns.task, ns.index, err=ns.err, attempt=ns.attempt
    )
    if not text:
        print("(no output)", file=sys.stderr)  # it ran and wrote nothing: not a mistake
        return EXIT_OK
    sys.stdout.write(text)
    sys.stdout.flush()
    return EXIT_OK


def _cmd_watch(ns: argparse.Namespace, cfg: Config) -> int:
    """`status --watch`: progress per task until the run ends, then its status.

    On a terminal the lines are redrawn in place; elsewhere each update is
    plain lines, without escape codes.
    Ctrl-C stops watching and leaves the run alone.
    """
    import shutil

    from .render import render_progress, render_status
    from .run import _check_task_in, driver_gone, status_overview, task_progress

    store = _store(ns, cfg)
    tty = sys.stdout.isatty()
    drawn = 0  # lines drawn by the last update, on a terminal
    told: set[str] = set()  # tasks whose end was printed, elsewhere
    try:
        while True:
            info, rows = task_progress(store, ns.run_id)
            if ns.task is not None:
                _check_task_in([r["task"] for r in rows], ns.run_id, ns.task)
                rows = [r for r in rows if r["task"] == ns.task]
            if info["status"] != "RUNNING" or driver_gone(info):
                break
            stamp = time.strftime("%H:%M:%S")
            if tty:
                width = shutil.get_terminal_size().columns - 1
                lines = [f"run {ns.run_id}  {stamp}", *render_progress(rows)]
                up = f"\033[{drawn}F\033[J" if drawn else ""
                sys.stdout.write(up + "".join(line[:width] + "\n" for line in lines))
                drawn = len(lines)
            else:
                # what moves: tasks under way, and each task once when it is done
                fresh = [
                    r
                    for r in rows
                    if (r["finished"] and r["task"] not in told)
                    or (not r["finished"] and r["elapsed"] is not None)
                ]
                told.update(r["task"] for r in rows if r["finished"])
                for line in render_progress(fresh):
                    sys.stdout.write(f"{stamp}{line}\n")
            sys.stdout.flush()
            time.sleep(ns.interval)
    except KeyboardInterrupt:
        print(f"\nstopped watching; run {ns.run_id} goes on", file=sys.stderr)
        return EXIT_INTERRUPTED
    if drawn:
        sys.stdout.write(f"\033[{drawn}F\033[J")
    print(render_status(status_overview(store, ns.run_id, ns.task)))
    return EXIT_OK if info["status"] == "SUCCESS" else EXIT_FAILED


def _cmd_describe(graph: Graph) -> int:
    import json

    from .render import describe

    print(json.dumps(describe(graph), indent=2, default=str))
    return EXIT_OK


# ---------------------------------------------------------------------- entry points


def _guard(body: Callable[[], int]) -> int:
    """Run a command; a user's mistake becomes one line on stderr and an exit code."""
    debug = os.environ.get("REFLOW_DEBUG", "") not in ("", "0")
    try:
        return body()
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValidationError, ConfigError, RunNotFoundError) as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ReflowError as exc:
        if debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `... | head`
        sys.stderr.close()
        return EXIT_OK


def _parse(parser: _Parser, argv: Sequence[str] | None) -> argparse.Namespace:
    ns = parser.parse_args(argv)
    if ns.command is None:
        parser.print_help()
        raise SystemExit(EXIT_USAGE)
    return ns


def _try_config() -> tuple[Config | None, ConfigError | None]:
    try:
        return _config(), None
    except ConfigError as exc:
        return None, exc


def workflow_cli(
    wf: Pipeline, argv: Sequence[str] | None = None, *, config: Config | None = None
) -> int:
    """The command line of a pipeline script (what `wf.cli()` runs).

    `config` is the workflow's own configuration, if it was given one: `submit`
    uses it instead of the one the command line loads.
    """
    graph: Graph | None = None
    broken: str | None = None
    try:
        graph = wf.validate()
    except ValidationError as exc:
        broken = str(exc)

    def body() -> int:
        # --help works with a broken graph or a bad config file; commands report them
        cfg, cfg_error = _try_config()
        parser, clash = _script_parser(wf, graph, broken, cfg.run_dir if cfg else None)
        try:
            ns = _parse(parser, argv)
        except SystemExit as exc:  # --help, --version
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        if ns.command in ("run", "submit", "retry", "dag", "describe") and graph is None:
            raise ValidationError(f"the workflow cannot run: {broken}")
        if ns.command in ("run", "submit") and clash is not None:
            raise ValidationError(f"the workflow cannot run: {clash}")
        if cfg_error is not None:
            raise cfg_error
        assert cfg is not None
        if ns.command == "run":
            return _cmd_run(wf, ns, cfg)
        if ns.command == "submit":
            return _cmd_submit(wf, ns, config or cfg)
        if ns.command == "retry":
            return _cmd_retry(wf, ns, cfg)
        if ns.command == "dag":
            return _cmd_dag(graph, ns.format)  # type: ignore[arg-type]
        if ns.command == "describe":
            return _cmd_describe(graph)  # type: ignore[arg-type]
        return _store_command(ns, cfg, wf.name)

    return _guard(body)


def _store_command(ns: argparse.Namespace, cfg: Config, graph_name: str | None) -> int:
    from .stores import store_exists

    path = _store_location(ns, cfg)
    if not store_exists(path):  # looking must not create a store (a mistyped --store-path)
        if ns.command == "runs" and not ns.delete:
            print(f"no runs: there is no store at {_shown(path)} yet")
            return EXIT_OK
        ids = (
            getattr(ns, "run_ids", None)
            or getattr(ns, "delete", None)
            or [getattr(ns, "run_id", None)]
        )
        named = ", ".join(f"'{i}'" for i in ids if i)
        head = f"no run {named}: " if named else ""
        raise ValidationError(
            f"{head}there is no store at {_shown(path)}: check --store-path or REFLOW_STORE_PATH"
        )
    if ns.command == "status":
        return _cmd_status(ns, cfg)
    if ns.command == "cancel":
        return _cmd_cancel(ns, cfg)
    if ns.command == "logs":
        return _cmd_logs(ns, cfg)
    if ns.command == "report":
        return _cmd_report(ns, cfg)
    if ns.command == "why":
        return _cmd_why(ns, cfg)
    if ns.command == "gc":
        return _cmd_gc(ns, cfg, graph_name)
    if ns.delete:
        return _cmd_delete(ns, cfg)
    return _cmd_runs(ns, cfg, graph_name)


def main(argv: Sequence[str] | None = None) -> int:
    """The `reflow` console command: runs, status and cancel without a pipeline script."""

    def body() -> int:
        try:
            ns = _parse(_console_parser(), argv)
        except SystemExit as exc:
            return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_USAGE
        if ns.command == "config":
            return _cmd_config(ns)
        if ns.command == "doctor":
            return _cmd_doctor(ns, _config())
        if ns.command == "store":
            return _cmd_store(ns)
        return _store_command(ns, _config(), None)

    return _guard(body)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
