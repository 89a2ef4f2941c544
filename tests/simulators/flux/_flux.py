"""The Flux simulator: `flux submit`, `flux jobs`, `flux cancel` (and `flux job id`).

`flux submit` parses its options as flux-core 0.6x-0.8x does (argparse: an
unknown option such as `--mem` is refused), and with `--cc`/`--bcc` passes
the command and the options that take templates through `str.format(cc=i)`
while keeping `{{...}}` mustache templates, exactly like flux-core's Xcmd: a
word with a lone brace is refused (`Invalid replacement string in command`).
It prints one F58 job id (`ƒ...`) per job.  Jobs run detached
(tests/simulators/_simcore.py) in the submitter's directory (or `--cwd`)
with the submitter's environment, FLUX_JOB_ID, FLUX_JOB_CC, output where
`--output`/`--error` say (`{{id}}`, `{{id.dec}}`, `{{name}}` expanded), the
time limit enforced (result TIMEOUT), and `--dependency=afterany:ID`
honoured (an unknown id is refused).  `flux jobs -o FORMAT` formats fields
with Python's format syntax like the real command: `{id.dec}`, `{state}`,
`{result}`, `{returncode}`, `{waitstatus}`, `{exception.type}`, ...; it
filters by `--name`, `--since=-<duration>` and `--count`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _simcore as core

F58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_FSD = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
# options whose values flux submit formats for {cc} (flux-core's Xcmd.mutable_args)
_MUTABLE = (
    "queue", "bank", "time_limit", "env", "setopt", "setattr", "job_name", "output", "error",
    "dependency", "cwd",
)  # fmt: skip


def directory() -> Path:
    return core.state_dir("flux")


def f58(number: int) -> str:
    text = ""
    while True:
        number, digit = divmod(number, 58)
        text = F58[digit] + text
        if number == 0:
            return "ƒ" + text


def parse_id(text: str) -> int | None:
    word = text.strip()
    if word.isdigit():
        return int(word)
    if word.startswith("0x"):
        try:
            return int(word, 16)
        except ValueError:
            return None
    if word[:1] in ("ƒ", "f") and len(word) > 1:
        value = 0
        for char in word[1:]:
            if char not in F58:
                return None
            value = value * 58 + F58.index(char)
        return value
    return None


def _new_id(store: Path) -> int:
    """A FLUID: milliseconds since the instance started, then a sequence number."""
    seq = core.next_number(store, 1)
    epoch_file = store / "epoch"
    if not epoch_file.exists():
        epoch_file.write_text(str(int(time.time() * 1000) - 5000))
    epoch = int(epoch_file.read_text())
    return ((int(time.time() * 1000) - epoch) << 24) | (seq & 0xFFFFFF)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        core.fail(self.prog, f"{self.prog}: error: {message}", 2)
        raise SystemExit(2)


def _submit_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="flux-submit", add_help=False)
    p.add_argument("-n", "--ntasks", type=int)
    p.add_argument("-c", "--cores-per-task", type=int)
    p.add_argument("-g", "--gpus-per-task", type=int)
    p.add_argument("-N", "--nodes", type=int)
    p.add_argument("--cores", type=int)
    p.add_argument("--exclusive", action="store_true")
    p.add_argument("-t", "--time-limit")
    p.add_argument("--signal")  # SIG@TIME: SIG sent TIME before the time limit
    p.add_argument("-q", "--queue")
    p.add_argument("-B", "--bank")
    p.add_argument("--urgency", default="16")
    p.add_argument("--job-name")
    p.add_argument("-o", "--setopt", action="append")
    p.add_argument("-S", "--setattr", action="append")
    p.add_argument("--dependency", action="append")
    p.add_argument("--requires", action="append")
    p.add_argument("--env", action="append")
    p.add_argument("--output")
    p.add_argument("--error")
    p.add_argument("--cwd")
    p.add_argument("--flags")
    p.add_argument("--cc")
    p.add_argument("--bcc")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("command", nargs=argparse.REMAINDER)
    return p


def _format(value: Any, cc: int) -> Any:
    """{cc} replaced, {{mustache}} kept (flux-core's Xcmd)."""
    if isinstance(value, list):
        return [_format(v, cc) for v in value]
    if not isinstance(value, str):
        return value
    kept = value.replace("{{", "=stache=").replace("}}", "=/stache=")
    return kept.format(cc=cc).replace("=stache=", "{{").replace("=/stache=", "}}")


def _idset(text: str) -> list[int]:
    found: list[int] = []
    for part in text.strip("[]").split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            core.fail("flux-submit", f"flux-submit: ERROR: invalid idset: {text}", 1)
            raise SystemExit(1)
        found.extend(range(int(m[1]), int(m[2] or m[1]) + 1))
    return found


def _seconds(text: str) -> float:
    found = _FSD.match(text)
    if not found:
        core.fail("flux-submit", f"flux-submit: ERROR: invalid Flux standard duration '{text}'", 1)
        raise SystemExit(1)
    scale = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}[found[2]]
    return float(found[1]) * scale


def _template(path: str, job: int, name: str) -> str:
    for key, value in (
        ("{{id}}", f58(job)),
        ("{{jobid}}", f58(job)),
        ("{{id.f58}}", f58(job)),
        ("{{id.dec}}", str(job)),
        ("{{name}}", name),
    ):
        path = path.replace(key, value)
    return path


def submit(argv: list[str]) -> int:
    args = _submit_parser().parse_args(argv)
    if not args.command:
        core.fail("flux-submit", "flux-submit: error: job command and arguments are missing", 2)
    if args.cc and args.bcc:
        core.fail("flux-submit", "flux-submit: ERROR: specify only one of --cc or --bcc", 1)
    copies: list[int | None] = (
        list(_idset(args.cc or args.bcc)) if (args.cc or args.bcc) else [None]
    )
    store = directory()
    planned = []
    for cc in copies:
        values = {k: getattr(args, k) for k in _MUTABLE}
        command = list(args.command)
        if cc is not None:
            try:
                command = [_format(w, cc) for w in command]
            except (KeyError, IndexError, ValueError):
                bad = next(w for w in args.command if not _formats(w, cc))
                core.fail(
                    "flux-submit",
                    f"flux-submit: ERROR: Invalid replacement string in command: '{bad}'",
                    1,
                )
            try:
                values = {k: _format(v, cc) for k, v in values.items()}
            except (KeyError, IndexError, ValueError) as exc:
                core.fail("flux-submit", f"flux-submit: ERROR: Replacement key {exc} not found", 1)
        planned.append((cc, command, values))
    records = []
    for cc, command, values in planned:
        dependencies: list[str] = []
        for dep in values["dependency"] or []:
            scheme, _, target = dep.partition(":")
            if scheme != "afterany":
                core.fail(
                    "flux-submit",
                    f"flux-submit: ERROR: dependency scheme {scheme!r} is not simulated",
                    1,
                )
            job = parse_id(target)
            if job is None or core.Record.load(store, str(job)) is None:
                core.fail("flux-submit", f"flux-submit: ERROR: {dep}: job {target} not found", 1)
            dependencies.append(str(job))
        walltime = _seconds(values["time_limit"]) if values["time_limit"] else None
        warning = None
        if args.signal:
            sig, _, before = args.signal.partition("@")
            if sig not in ("SIGUSR1", "USR1", "10"):
                core.fail("flux-submit", f"flux-submit: ERROR: signal {sig} is not simulated", 1)
            warning = _seconds(before or "60s")
        env = dict(os.environ)
        for rule in values["env"] or []:
            if rule.startswith("-"):
                for key in [k for k in env if re.fullmatch(rule[1:].replace("*", ".*"), k)]:
                    del env[key]
            elif "=" in rule:
                key, _, value = rule.partition("=")
                env[key] = value
            else:
                env[rule] = os.environ.get(rule, "")
        attrs: dict[str, str] = {}
        for item in values["setattr"] or []:
            key, sep, value = item.partition("=")
            if not key.startswith(("system.", "user.", "attributes.")):
                key = "system." + key
            attrs[key] = value if sep else "1"
        cwd = values["cwd"] or attrs.get("system.cwd") or os.getcwd()
        job = _new_id(store)
        name = values["job_name"] or os.path.basename(command[0])
        env["FLUX_JOB_ID"] = f58(job)
        if cc is not None and args.cc:
            env["FLUX_JOB_CC"] = str(cc)
        out = _template(values["output"], job, name) if values["output"] else None
        err = _template(values["error"], job, name) if values["error"] else None
        element = core.Element(
            argv=command,
            env=env,
            cwd=cwd,
            stdout=out or str(store / f"{job}.output"),
            stderr=err,
        )
        fields = {
            "name": name,
            "queue": values["queue"] or "",
            "bank": values["bank"] or attrs.get("system.bank", ""),
            "ntasks": args.ntasks or 1,
            "cc": cc,
        }
        records.append(
            core.Record(
                str(job), "flux", fields, {"0": element}, dependencies, walltime, warning=warning
            )
        )
    for record in records:
        record.save(store)
    core.start_runner(Path(__file__), store, [r.key for r in records], None)
    if not args.quiet:
        for record in records:
            print(f58(int(record.key)))
    return 0


def _formats(word: str, cc: int) -> bool:
    try:
        _format(word, cc)
    except (KeyError, IndexError, ValueError):
        return False
    return True


# ----------------------------------------------------------------------------- flux jobs


class _Id:
    def __init__(self, number: int) -> None:
        self.dec = str(number)
        self.f58 = f58(number)
        self.hex = hex(number)

    def __format__(self, spec: str) -> str:
        return format(self.f58, spec)


class _Exception:
    def __init__(self, occurred: bool, kind: str, note: str) -> None:
        self.occurred = occurred
        self.type = kind
        self.note = note
        self.severity = 0 if occurred else ""

    def __format__(self, spec: str) -> str:
        return format(str(self.occurred), spec)


def _fields(record: core.Record, state: dict[str, Any]) -> dict[str, Any]:
    ran = "start" in state
    if state["state"] == core.PENDING:
        name = "DEPEND" if state.get("blocked") else "SCHED"
    elif state["state"] == core.RUNNING:
        name = "RUN"
    else:
        name = "INACTIVE"
    result, wait, code, kind, note = "", "", "", "", ""
    if name == "INACTIVE":
        if state.get("cancelled"):
            result, kind = "CANCELED", "cancel"
        elif state.get("timeout"):
            result, kind, note = "TIMEOUT", "timeout", "resource allocation expired"
        elif state.get("exit") == 0:
            result = "COMPLETED"
        else:
            result = "FAILED"
        if ran:
            # the job shell exits 128 + the signal when a task is killed by a signal
            status = (
                128 + int(state["signal"]) if state.get("signal") else int(state.get("exit") or 0)
            )
            wait = str(status << 8)
            code = str(status)
        elif result == "CANCELED":
            code = "-128"
    abbrev = {"COMPLETED": "CD", "FAILED": "F", "CANCELED": "CA", "TIMEOUT": "TO"}
    states = {"DEPEND": "D", "SCHED": "S", "RUN": "R"}
    runtime = (state.get("end", time.time()) - state["start"]) if ran else 0.0
    return {
        "id": _Id(int(record.key)),
        "name": record.fields["name"],
        "username": os.environ.get("USER") or "root",
        "userid": os.getuid(),
        "queue": record.fields["queue"],
        "bank": record.fields["bank"],
        "ntasks": record.fields["ntasks"],
        "nnodes": 1 if ran else "",
        "state": name,
        "state_single": states.get(name, "I"),
        "result": result,
        "result_abbrev": abbrev.get(result, ""),
        "status": result or name,
        "status_abbrev": abbrev.get(result, states.get(name, "")),
        "returncode": code,
        "waitstatus": wait,
        "exception": _Exception(bool(kind), kind, note),
        "runtime": f"{runtime:.3f}",
    }


_DEFAULT = (
    "{id.f58:>12} {username:<8.8} {name:<10.10} {status_abbrev:>2.2} {ntasks:>6} {nnodes:>6} "
    "{runtime:>8}"
)


def jobs(argv: list[str]) -> int:
    p = _Parser(prog="flux-jobs", add_help=False)
    p.add_argument("-a", action="store_true")
    p.add_argument("-A", action="store_true")
    p.add_argument("-n", "--no-header", action="store_true")
    p.add_argument("-o", "--format", default=_DEFAULT)
    p.add_argument("--name")
    p.add_argument("--since")
    p.add_argument("-c", "--count", type=int, default=1000)
    p.add_argument("jobids", nargs="*")
    args = p.parse_args(argv)
    # --since=-<FSD>: the jobs active since then (implies -a); only offsets are simulated
    since = time.time() - _seconds(args.since[1:]) if args.since else None
    if args.since and not args.since.startswith("-"):
        core.fail("flux-jobs", "flux-jobs: ERROR: only --since=-<duration> is simulated", 1)
    store = directory()
    rc = 0
    rows: list[dict[str, Any]] = []
    if args.jobids:
        for text in args.jobids:
            job = parse_id(text)
            record = core.Record.load(store, str(job)) if job is not None else None
            if record is None:
                print(f"flux-jobs: ERROR: {text}: unknown job id", file=sys.stderr)
                rc = 1
                continue
            rows.append(_fields(record, core.element_states(store, record)["0"]))
    else:
        for record in core.all_records(store):
            state = core.element_states(store, record)["0"]
            if args.name is not None and record.fields["name"] != args.name:
                continue
            if since is not None:
                if state["state"] in core.FINAL and state.get("end", time.time()) < since:
                    continue
            elif not (args.a or args.A) and state["state"] in core.FINAL:
                continue
            rows.append(_fields(record, state))
        rows = rows[-args.count :] if args.count else rows  # the newest
    if not args.no_header and args.format == _DEFAULT:
        print("       JOBID USER     NAME       ST NTASKS NNODES  RUNTIME")
    for row in rows:
        try:
            print(args.format.format(**row))
        except (KeyError, AttributeError) as exc:
            core.fail("flux-jobs", f"flux-jobs: ERROR: Unknown format field: {exc}", 1)
    return rc


# ----------------------------------------------------------------------------- flux cancel


def cancel(argv: list[str]) -> int:
    p = _Parser(prog="flux-cancel", add_help=False)
    p.add_argument("-m", "--message")
    p.add_argument("-q", "--quiet", action="store_true")
    p.add_argument("jobids", nargs="*")
    args = p.parse_args(argv)
    if not args.jobids:
        core.fail("flux-cancel", "flux-cancel: ERROR: specify at least one jobid", 1)
    store = directory()
    rc = 0
    targets: list[tuple[str, str | None]] = []
    for text in args.jobids:
        job = parse_id(text)
        record = core.Record.load(store, str(job)) if job is not None else None
        if record is None:
            print(f"flux-cancel: ERROR: {text}: unknown job id", file=sys.stderr)
            rc = 1
            continue
        if core.finished(store, record.key):
            print(f"flux-cancel: ERROR: {text}: job is inactive", file=sys.stderr)
            rc = 1
            continue
        targets.append((record.key, None))
    core.request_cancel(store, targets)
    return rc


def job_command(argv: list[str]) -> int:
    if argv[:1] != ["id"]:
        core.fail("flux-job", "flux-job: only 'flux job id' is simulated", 1)
    to = "dec"
    words = []
    for word in argv[1:]:
        if word.startswith("--to="):
            to = word.split("=", 1)[1]
        else:
            words.append(word)
    for word in words:
        job = parse_id(word)
        if job is None:
            core.fail("flux-job", f"flux-job: ERROR: {word}: malformed input", 1)
            raise SystemExit(1)
        print(job if to == "dec" else f58(job))
    return 0


def main(argv: list[str]) -> int:
    commands = {"submit": submit, "jobs": jobs, "cancel": cancel, "job": job_command}
    if not argv or argv[0] not in commands:
        word = argv[0] if argv else ""
        core.fail("flux", f"flux: '{word}' is not a flux command.  See 'flux --help'", 1)
    return commands[argv[0]](argv[1:])


# ----------------------------------------------------------------------------- the runner


def epilogue(store: Path, record: core.Record, index: str, state: dict[str, Any]) -> None:
    """The job's exception, as the job shell logs it in the job's stderr."""
    if not (state.get("timeout") or state.get("cancelled")) or "start" not in state:
        return
    element = record.elements[index]
    kind = "timeout" if state.get("timeout") else "cancel"
    note = " resource allocation expired" if kind == "timeout" else ""
    with open(element.stderr or element.stdout or os.devnull, "a") as fh:
        fh.write(f"flux-job: {f58(int(record.key))}: job.exception type={kind} severity=0{note}\n")


if __name__ == "__main__" and sys.argv[1:2] == ["run"]:
    raise SystemExit(core.run_batch(Path(sys.argv[2]), sys.argv[3], epilogue))
