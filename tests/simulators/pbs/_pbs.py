"""The PBS simulator: qsub, qstat and qdel of PBS Pro / OpenPBS or Torque.

The flavour is $PBS_SIM_FLAVOR: "pro" (the default) or "torque".  Each
command takes the options its flavour documents that reflow may use, and
refuses the others the way the real command does (`qsub: invalid option -- 't'`
on PBS Pro, `Unknown resource type` for `select` on Torque, `illegal -J value`
for a one-element PBS Pro range, `-lresource=` mixed with `select`, ...).

Jobs run on this machine, detached, through tests/simulators/_simcore.py: in
$HOME (PBS starts jobs there), with only a login environment unless `-V`, the
PBS_* variables of the flavour (PBS_ARRAY_INDEX / PBS_ARRAY_ID on PBS Pro,
PBS_ARRAYID on Torque), their output in the `-o`/`-e` file or directory
(PBS's default name `<name>.o<seq>`, `.o<seq>.<index>` for a PBS Pro subjob,
`.o<seq>-<index>` for a Torque one), and the walltime enforced.
"""

from __future__ import annotations

import getopt
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _simcore as core

FLAVOR_ENV = "PBS_SIM_FLAVOR"
SERVERS = {"pro": "pbs-sim", "torque": "torque-sim.cluster"}
VERSIONS = {
    "pro": "pbs_version = 22.05.11\n",
    "torque": "Version: 6.1.3\nCommit: 0d3bd4fc0ab1bd8e5e4e8ae5aa1e84a2bf2ad3ab\n",
}
HOST = "sim-login"
NODE = "sim-node01"
_ID = re.compile(r"^(?P<seq>\d+)(?:\[(?P<index>\d*)\])?(?:\.(?P<server>[A-Za-z0-9_.\-]+))?$")

# qsub options that take a value, by flavour (getopt strings)
_QSUB_OPTS = {
    "pro": "a:A:c:C:e:fhIJ:j:k:l:m:M:N:o:p:P:q:r:R:S:u:v:VW:Xz",
    "torque": "a:A:b:c:C:d:D:e:fhIj:k:l:m:M:nN:o:p:P:q:r:S:t:u:v:VW:w:xXz",
}
_QSTAT_OPTS = {"pro": "fxtwH1u:F:D:", "torque": "fxtwa1u:n"}
# resources each flavour knows; PBS Pro's chunk-level ones go inside select
_PRO_CHUNK = {"ncpus", "mem", "ngpus", "vmem", "host", "vnode", "mpiprocs", "ompthreads", "arch"}
_PRO_JOB = {"select", "walltime", "place", "cput", "pcput", "software", "file"}
_TORQUE = {"nodes", "walltime", "mem", "pmem", "vmem", "pvmem", "cput", "ncpus", "procs", "gpus"}
_SIZE = re.compile(r"^\d+([kmgtp]?[bw])?$", re.IGNORECASE)
_TIME = re.compile(r"^\d+(:\d{1,2}){0,2}$")


def flavor() -> str:
    value = os.environ.get(FLAVOR_ENV, "pro")
    if value not in SERVERS:
        core.fail("qsub", f"{FLAVOR_ENV}={value!r}: use 'pro' or 'torque'", 2)
    return value


def directory() -> Path:
    return core.state_dir(f"pbs-{flavor()}")


def job_id(seq: str, index: str | None) -> str:
    """`1234.srv`, `1234[].srv` (an array), `1234[5].srv` (a subjob)."""
    server = SERVERS[flavor()]
    return f"{seq}.{server}" if index is None else f"{seq}[{index}].{server}"


def parse_id(text: str) -> tuple[str, str | None] | None:
    """(sequence, index) of a job id: index None for a plain job, "" for a whole array."""
    found = _ID.match(text.strip())
    if not found:
        return None
    return found["seq"], found["index"]


def _usage(program: str) -> None:
    core.fail(program, f"usage: {program} [options] [script]", 2)


# ----------------------------------------------------------------------------- qsub


def _directives(script: str) -> list[str]:
    """The words of the `#PBS` lines before the first command of the script."""
    import shlex

    words: list[str] = []
    for line in script.splitlines():
        text = line.strip()
        if not text or (text.startswith("#") and not text.startswith("#PBS")):
            continue
        if not text.startswith("#PBS"):
            break  # PBS reads directives up to the first command
        try:
            words.extend(shlex.split(text[4:]))
        except ValueError:
            core.fail("qsub", f"directive error: {text}", 1)
    return words


def _options(argv: list[str], where: str) -> tuple[list[tuple[str, str]], list[str]]:
    try:
        return getopt.getopt(argv, _QSUB_OPTS[flavor()])
    except getopt.GetoptError as exc:
        what = f"invalid option -- '{exc.opt}'" if exc.opt else str(exc)
        core.fail("qsub", f"{what}{where}", 2)
        raise  # unreachable


def _resources(values: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for value in values:
        parts = [value] if value.startswith("select=") else value.split(",")
        for part in parts:
            key, sep, val = part.partition("=")
            if not sep or not val:
                core.fail("qsub", f"illegal -l value {value}", 2)
            found[key] = val
    pro = flavor() == "pro"
    for key, val in found.items():
        known = (_PRO_CHUNK | _PRO_JOB) if pro else _TORQUE
        if key not in known:
            if pro:
                core.fail("qsub", f"Unknown resource Resource_List.{key}", 2)
            core.fail("qsub", f"submit error (Unknown resource type  Resource_List.{key})", 2)
        if key == "walltime" and not _TIME.match(val):
            core.fail("qsub", f"illegal -l value walltime={val}", 2)
        if key in ("mem", "vmem", "pmem") and not _SIZE.match(val):
            core.fail("qsub", f"illegal -l value {key}={val}", 2)
    if pro and "select" in found:
        mixed = sorted(set(found) & _PRO_CHUNK)
        if mixed:
            core.fail(
                "qsub",
                f'"-lresource=" cannot be used with "select" or "place", resource is: {mixed[0]}',
                2,
            )
        chunk = found["select"].split(":")
        if not chunk[0].isdigit():
            core.fail("qsub", f"illegal -l value select={found['select']}", 2)
        for item in chunk[1:]:
            key, sep, val = item.partition("=")
            if not sep or key not in _PRO_CHUNK:
                core.fail("qsub", f"Unknown resource Resource_List.{key}", 2)
            if key in ("mem", "vmem") and not _SIZE.match(val):
                core.fail("qsub", f"illegal -l value select={found['select']}", 2)
    if not pro and "nodes" in found:
        spec = found["nodes"].split(":")
        if not spec[0].isdigit() or any(
            p.partition("=")[1] and p.partition("=")[0] not in ("ppn", "gpus") for p in spec[1:]
        ):
            core.fail(
                "qsub",
                f"submit error (Illegal attribute or resource value  nodes={found['nodes']})",
                2,
            )
    return found


def _walltime(text: str | None) -> float | None:
    if text is None:
        return None
    total = 0
    for part in text.split(":"):
        total = total * 60 + int(part)
    return float(total)


def _array(option: str, value: str) -> tuple[list[int], int | None]:
    """The indices and the running limit of `-J X-Y[:Z][%P]` (PBS Pro) or `-t` (Torque)."""
    if option == "-J":
        found = re.fullmatch(r"(\d+)-(\d+)(?::(\d+))?(?:%(\d+))?", value)
        if not found or int(found[1]) >= int(found[2]):
            core.fail("qsub", "illegal -J value", 2)
            raise SystemExit(2)
        step = int(found[3] or 1)
        return list(range(int(found[1]), int(found[2]) + 1, step)), (
            int(found[4]) if found[4] else None
        )
    spec, _, limit = value.partition("%")
    indices: list[int] = []
    for part in spec.split(","):
        lo, dash, hi = part.partition("-")
        if not lo.isdigit() or (dash and not hi.isdigit()):
            core.fail("qsub", "submit error (Bad array request)", 2)
        indices.extend(range(int(lo), int(hi or lo) + 1))
    if limit and not limit.isdigit():
        core.fail("qsub", "submit error (Bad array request)", 2)
    return indices, int(limit) if limit else None


def _depend(value: str, directory_: Path) -> list[str]:
    """The jobs `-W depend=...` waits for (keys of records), checked like the server does."""
    keys: list[str] = []
    torque = flavor() == "torque"
    for clause in value.split(","):
        kind, _, ids = clause.partition(":")
        allowed = {"afterany", "afteranyarray"} if torque else {"afterany"}
        if kind not in allowed or not ids:
            core.fail("qsub", f"illegal -W value depend={value} (simulated: afterany only)", 2)
        for text in ids.split(":"):
            parsed = parse_id(text)
            if parsed is None:
                core.fail("qsub", f"illegal -W value depend={value}", 2)
                raise SystemExit(2)
            seq, index = parsed
            record = core.Record.load(directory_, seq)
            if record is None:
                core.fail(
                    "qsub",
                    f"submit error (Unknown Job Id Error {text})"
                    if torque
                    else f"Unknown Job Id {text}",
                    153,
                )
                raise SystemExit(153)
            is_array = bool(record.fields.get("array"))
            if index not in (None, ""):
                core.fail("qsub", f"cannot depend on a subjob: {text}", 2)
            if torque and (kind == "afteranyarray") != is_array:
                core.fail(
                    "qsub",
                    "submit error (Invalid request MSG="
                    + (
                        f"{text} is an array job: use afteranyarray)"
                        if is_array
                        else f"{text} is not an array job: use afterany)"
                    ),
                    2,
                )
            keys.append(seq)
    return keys


def _output_path(path: str | None, default_name: str, cwd: str) -> str:
    if path is None:
        return str(Path(cwd) / default_name)
    if ":" in path:
        path = path.split(":", 1)[1]
    if path.endswith("/") or Path(path).is_dir():
        return str(Path(path) / default_name)
    return path


def qsub(argv: list[str]) -> int:
    pro = flavor() == "pro"
    opts, rest = _options(argv, "")
    if len(rest) > 1:
        _usage("qsub")
    script = Path(rest[0]).read_text() if rest else sys.stdin.read()
    if not script.strip():
        core.fail("qsub", "script file is empty", 2)
    from_script, _ = _options(_directives(script), " (in a #PBS directive)")
    options: dict[str, list[str]] = {}
    for flag, value in from_script + opts:  # the command line after the directives: it wins
        if flag in ("-l", "-W", "-v"):
            options.setdefault(flag, []).append(value)
        else:
            options[flag] = [value]

    def one(flag: str) -> str | None:
        return options[flag][-1] if flag in options else None

    for flag in ("-a", "-c", "-C", "-h", "-I", "-k", "-u", "-X", "-z", "-b", "-D", "-w", "-x"):
        if flag in options:
            core.fail("qsub", f"{flag} is not simulated", 2)
    store = directory()
    cwd = os.getcwd()
    name = one("-N") or "STDIN"
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.+\-]{0,235}", name):
        core.fail("qsub", "illegal -N value", 2)
    resources = _resources(options.get("-l", []))
    indices: list[int] | None = None
    limit: int | None = None
    for flag in ("-J", "-t"):
        request = one(flag)
        if request is not None:
            indices, limit = _array(flag, request)
    dependencies: list[str] = []
    for value in options.get("-W", []):
        key, _, rest_ = value.partition("=")
        if key != "depend":
            core.fail("qsub", f"-W {key}= is not simulated", 2)
        dependencies.extend(_depend(rest_, store))
    join = one("-j") or "n"
    if join not in ("oe", "eo", "n"):
        core.fail("qsub", "illegal -j value", 2)
    shell = one("-S") or "/bin/sh"
    if not Path(shell).exists():
        core.fail("qsub", f"illegal -S value {shell}", 2)

    seq = str(core.next_number(store, 1000))
    array = indices is not None
    shown_id = job_id(seq, "" if array else None)
    script_path = store / f"{seq}.sh"
    script_path.write_text(script)
    home = os.environ.get("HOME", "/")
    workdir = one("-d") or home
    base = (
        dict(os.environ)
        if "-V" in options
        else {k: os.environ[k] for k in ("HOME", "LOGNAME", "USER") if k in os.environ}
    )
    if "-V" not in options:
        base["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    for value in options.get("-v", []):
        for item in value.split(","):
            key, sep, val = item.partition("=")
            base[key] = val if sep else os.environ.get(key, "")
    queue = one("-q") or ("workq" if pro else "batch")
    base.update(
        PBS_O_HOME=home,
        PBS_O_WORKDIR=cwd,
        PBS_O_HOST=HOST,
        PBS_O_QUEUE=queue,
        PBS_O_PATH=os.environ.get("PATH", ""),
        PBS_O_SHELL=os.environ.get("SHELL", "/bin/sh"),
        PBS_JOBNAME=name,
        PBS_QUEUE=queue,
        PBS_ENVIRONMENT="PBS_BATCH",
    )
    elements: dict[str, core.Element] = {}
    for index in indices if indices is not None else [None]:
        env = dict(base)
        env["PBS_JOBID"] = job_id(seq, None if index is None else str(index))
        suffix = ""
        if index is not None:
            suffix = f".{index}" if pro else f"-{index}"
            if pro:
                env["PBS_ARRAY_INDEX"] = str(index)
                env["PBS_ARRAY_ID"] = shown_id
            else:
                env["PBS_ARRAYID"] = str(index)
        out = _output_path(one("-o"), f"{name}.o{seq}{suffix}", cwd)
        err = _output_path(one("-e"), f"{name}.e{seq}{suffix}", cwd)
        if join == "oe":
            err = out
        elif join == "eo":
            out = err
        elements["0" if index is None else str(index)] = core.Element(
            argv=[shell, str(script_path)], env=env, cwd=workdir, stdout=out, stderr=err
        )
    fields: dict[str, Any] = {
        "id": shown_id,
        "name": name,
        "queue": queue,
        "account": one("-A"),
        "resources": resources,
        "join": join,
        "output": one("-o"),
        "error": one("-e"),
        "array": array,
        "array_request": one("-J") or one("-t"),
        "variables": {k: v for k, v in base.items() if k.startswith("PBS_O_")},
        "depend": options.get("-W", []),
    }
    record = core.Record(
        key=seq,
        scheduler=f"pbs-{flavor()}",
        fields=fields,
        elements=elements,
        dependencies=dependencies,
        walltime=_walltime(resources.get("walltime")),
    )
    record.save(store)
    core.start_runner(Path(__file__), store, [seq], limit)
    print(shown_id)
    return 0


# ----------------------------------------------------------------------------- qstat


def _letter(record: core.Record, state: dict[str, Any], sub: bool) -> str:
    pro = flavor() == "pro"
    if state["state"] == core.PENDING:
        return "H" if state.get("blocked") else "Q"
    if state["state"] == core.RUNNING:
        return "R"
    if pro:
        return "X" if sub else "F"
    return "C"


def _exit_status(state: dict[str, Any]) -> int | None:
    """What PBS records as the exit status of an ended element (None: it never ran)."""
    if "start" not in state:
        return None
    if state.get("timeout") and flavor() == "pro":
        return -29  # JOB_EXEC_KILL_WALLTIME
    if state.get("signal"):
        return 256 + int(state["signal"])
    code = state.get("exit")
    return int(code) if code is not None else None


def _wrap(key: str, value: str) -> list[str]:
    """`    key = value`, wrapped at 80 columns with tab-led continuation lines, as qstat -f."""
    line = f"    {key} = {value}"
    if len(line) <= 80:
        return [line]
    lines = [line[:80]]
    rest = line[80:]
    while rest:
        lines.append("\t" + rest[:79])
        rest = rest[79:]
    return lines


def _attributes(
    record: core.Record, index: str | None, states: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """The `qstat -f` attributes of a job, an array (index "") or a subjob."""
    pro = flavor() == "pro"
    f = record.fields
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
    state: dict[str, Any]
    if index in (None, ""):
        parts = list(states.values())
        if all(s["state"] in core.FINAL for s in parts):
            state = parts[-1] if index is None else {"state": core.DONE, "start": 0.0}
        elif any(s["state"] == core.RUNNING or "start" in s for s in parts):
            state = {
                "state": core.RUNNING,
                "start": min(s.get("start", time.time()) for s in parts),
            }
        else:
            state = parts[0]
        letter = _letter(record, state, False)
        if index == "" and letter == "R" and pro:
            letter = "B"
    else:
        state = states[index]
        letter = _letter(record, state, True)
    attrs: list[tuple[str, str]] = [("Job_Name", f["name"]), ("Job_Owner", f"{user}@{HOST}")]
    if "start" in state and index != "":
        used = state.get("end", time.time()) - state["start"]
        attrs.append(("resources_used.walltime", core.clock(used)))
    attrs += [
        ("job_state", letter),
        ("queue", f["queue"]),
        ("server", SERVERS[flavor()]),
        ("Checkpoint", "u"),
        ("ctime", core.ctime(record.submitted)),
        ("Error_Path", f"{HOST}:{f['error'] or ''}"),
    ]
    if "start" in state and index != "":
        attrs.append(("exec_host", f"{NODE}/0"))
    attrs += [
        ("Hold_Types", "s" if state.get("blocked") else "n"),
        ("Join_Path", f["join"]),
        ("Keep_Files", "n"),
        ("Mail_Points", "a"),
        ("Output_Path", f"{HOST}:{f['output'] or ''}"),
        ("Priority", "0"),
        ("qtime", core.ctime(record.submitted)),
        ("Rerunable", "True"),
    ]
    attrs += [(f"Resource_List.{k}", v) for k, v in sorted(f["resources"].items())]
    if f.get("account"):
        attrs.append(("Account_Name", f["account"]))
    final = letter in ("F", "X", "C")
    if pro:
        substate = {"Q": 10, "H": 20, "R": 42, "B": 42, "F": 92, "X": 92}[letter]
        if final and index != "" and state.get("cancelled"):
            substate = 91
        attrs.append(("substate", str(substate)))
    variables = ",".join(f"{k}={v}" for k, v in sorted(f["variables"].items()))
    attrs.append(("Variable_List", variables))
    if state.get("blocked"):
        attrs.append(("comment", "job held, too many dependencies or a dependency is not done"))
    elif letter in ("R", "B"):
        attrs.append(
            ("comment", f"Job run at {core.ctime(state.get('start', 0))} on ({NODE}:ncpus=1)")
        )
    elif final:
        attrs.append(
            (
                "comment",
                f"Job run at {core.ctime(record.submitted)} on ({NODE}:ncpus=1) and finished",
            )
        )
    if final and index != "":
        code = _exit_status(state)
        if code is not None:
            attrs.append(("Exit_status" if pro else "exit_status", str(code)))
    elif final and pro:  # an array: 0 all subjobs exited 0, 1 some did not, 2 some deleted
        codes = [_exit_status(s) for s in states.values()]
        summary = 2 if None in codes else 1 if any(codes) else 0
        attrs.append(("Exit_status", str(summary)))
    if index == "" and pro:
        counts = {"Queued": 0, "Running": 0, "Exiting": 0, "Expired": 0}
        for s in states.values():
            key = {core.PENDING: "Queued", core.RUNNING: "Running"}.get(s["state"], "Expired")
            counts[key] += 1
        attrs += [
            ("array", "True"),
            ("array_indices_submitted", f["array_request"].split("%")[0]),
            ("array_state_count", " ".join(f"{k}:{v}" for k, v in counts.items()) + " "),
        ]
    elif index == "":
        attrs.append(("job_array_request", f["array_request"]))
    elif index is not None and pro:
        attrs += [("array_id", record.fields["id"]), ("array_index", index)]
    elif index is not None:
        attrs.append(("job_array_id", index))
    attrs.append(
        ("Submit_arguments", "<jsdl-hpcpa:Argument>-</jsdl-hpcpa:Argument>" if not pro else "-")
    )
    return attrs


def _summary_line(shown: str, record: core.Record, attrs: dict[str, str]) -> str:
    user = attrs["Job_Owner"].split("@")[0]
    used = attrs.get("resources_used.walltime", "0")
    name, queue = str(record.fields["name"])[:16], str(record.fields["queue"])
    return f"{shown[:16]:<16}  {name:<16} {user[:16]:<16}  {used:>8} {attrs['job_state']} {queue}"


def qstat(argv: list[str]) -> int:
    pro = flavor() == "pro"
    if argv == ["--version"]:
        sys.stdout.write(VERSIONS[flavor()])
        return 0
    try:
        opts, ids = getopt.getopt(argv, _QSTAT_OPTS[flavor()])
    except getopt.GetoptError as exc:
        core.fail("qstat", f"invalid option -- '{exc.opt}'", 2)
        raise
    flags = {k for k, _ in opts}
    if "-F" in flags or "-H" in flags or "-u" in flags:
        core.fail("qstat", "this option is not simulated", 2)
    full, history, expand = "-f" in flags, pro and "-x" in flags, "-t" in flags
    xml = not pro and "-x" in flags
    store = directory()
    rc = 0
    shown: list[tuple[str, core.Record, str | None, dict[str, dict[str, Any]]]] = []
    targets = ids or [
        job_id(r.key, "" if r.fields["array"] else None) for r in core.all_records(store)
    ]
    for text in targets:
        parsed = parse_id(text)
        record = core.Record.load(store, parsed[0]) if parsed else None
        if record is None or parsed is None:
            print(
                f"qstat: Unknown Job Id {text}" if pro else f"qstat: Unknown Job Id Error {text}",
                file=sys.stderr,
            )
            rc = 153
            continue
        states = core.element_states(store, record)
        _, index = parsed
        ended = all(s["state"] in core.FINAL for s in states.values())
        if pro and ended and not history:
            if ids:
                print(
                    f"qstat: {text} Job has finished, use -x or -H to obtain historical job "
                    "information",
                    file=sys.stderr,
                )
                rc = 35
            continue
        if index not in (None, ""):
            if index not in states:
                print(f"qstat: Unknown Job Id {text}", file=sys.stderr)
                rc = 153
                continue
            shown.append((job_id(record.key, index), record, index, states))
            continue
        if record.fields["array"]:
            if pro or not expand:
                shown.append((job_id(record.key, ""), record, "", states))
            if expand:
                for i in sorted(states, key=int):
                    shown.append((job_id(record.key, i), record, i, states))
        else:
            shown.append((job_id(record.key, None), record, None, states))
    if xml:
        sys.stdout.write("<Data>")
        for name, record, index, states in shown:
            attrs = _attributes(record, index, states)
            body = "".join(f"<{k}>{v}</{k}>" for k, v in attrs if "." not in k)
            sys.stdout.write(f"<Job><Job_Id>{name}</Job_Id>{body}</Job></Data>")
        sys.stdout.write("\n")
        return rc
    if full:
        for name, record, index, states in shown:
            print(f"Job Id: {name}")
            for key, value in _attributes(record, index, states):
                print("\n".join(_wrap(key, value)))
            print()
        return rc
    if shown:
        print("Job id            Name             User              Time Use S Queue")
        print("----------------  ---------------- ----------------  -------- - -----")
        for name, record, index, states in shown:
            print(_summary_line(name, record, dict(_attributes(record, index, states))))
    return rc


# ----------------------------------------------------------------------------- qdel


def qdel(argv: list[str]) -> int:
    pro = flavor() == "pro"
    try:
        _, ids = getopt.getopt(argv, "W:x" if pro else "W:pmca:")
    except getopt.GetoptError as exc:
        core.fail("qdel", f"invalid option -- '{exc.opt}'", 2)
        raise
    if not ids:
        core.fail("qdel", "usage: qdel [-W force|suppress_email=X] [-x] job_identifier...", 2)
    store = directory()
    rc = 0
    targets: list[tuple[str, str | None]] = []
    for text in ids:
        parsed = parse_id(text)
        record = core.Record.load(store, parsed[0]) if parsed else None
        if record is None or parsed is None:
            print(
                f"qdel: Unknown Job Id {text}" if pro else f"qdel: Unknown Job Id Error {text}",
                file=sys.stderr,
            )
            rc = 153
            continue
        index = parsed[1] or None
        states = core.element_states(store, record)
        wanted = [s for i, s in states.items() if index is None or i == index]
        if not wanted or all(s["state"] in core.FINAL for s in wanted):
            if pro:
                print(f"qdel: Job has finished {text}", file=sys.stderr)
                rc = 35
            else:
                print(f"qdel: Invalid state for job - COMPLETE {text}", file=sys.stderr)
                rc = 170
            continue
        targets.append((record.key, index))
    core.request_cancel(store, targets)
    return rc


# ----------------------------------------------------------------------------- the runner


def epilogue(store: Path, record: core.Record, index: str, state: dict[str, Any]) -> None:
    """The server's own words in the job's error file, as MOM writes them."""
    if not state.get("timeout"):
        return
    element = record.elements[index]
    used = int(state.get("end", 0) - state.get("start", 0))
    limit = int(record.walltime or 0)
    with open(element.stderr or element.stdout or os.devnull, "a") as fh:
        fh.write(f"=>> PBS: job killed: walltime {used} exceeded limit {limit}\n")


if __name__ == "__main__" and sys.argv[1:2] == ["run"]:
    raise SystemExit(core.run_batch(Path(sys.argv[2]), sys.argv[3], epilogue))
