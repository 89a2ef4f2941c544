"""The LSF simulator: bsub, bjobs and bkill of IBM Spectrum LSF 10.1.

bsub takes a script on stdin (`bsub < script`, `#BSUB` lines up to the first
command) or a command; it refuses options it does not know (`bsub: illegal
option`), array indices below 1 or above MAX_JOB_ARRAY_SIZE (1000), a
malformed `-w` expression and a dependency on a job it does not know.  Jobs
run detached (tests/simulators/_simcore.py) in the submission directory (or
`-cwd`) with the submitter's environment, LSB_JOBID, LSB_JOBINDEX (1-based;
0 outside an array) and LSB_JOBNAME; output is appended to `-o` (`%J`, `%I`
replaced; stderr joins it unless `-e`), followed by LSF's job report; `-W`
is enforced (TERM_RUNLIMIT).  bjobs lists jobs by id, or all (`-a`: finished
ones too; `-J NAME`: of that name, an array by its name), and answers in the default table or in the
`-o "field ... delimiter='|'"` custom format.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import _simcore as core

MAX_JOB_ARRAY_SIZE = 1000
HOST = "sim-login"
NODE = "sim-node01"
CLUSTER = "sim"
# bsub options that take a value, and those that do not
_VALUED = {
    "-J", "-n", "-R", "-M", "-W", "-q", "-P", "-o", "-oo", "-e", "-eo", "-cwd", "-w",
    "-G", "-app", "-m", "-gpu", "-sla", "-U", "-u", "-g", "-Jd", "-E", "-Ep", "-L",
    "-wa", "-wt",
}  # fmt: skip
_FLAGS = {"-x", "-N", "-B", "-r", "-rn"}
_NOT_SIMULATED = {"-I", "-Ip", "-Is", "-K", "-XF", "-i", "-is", "-f"}
_CONDITION = re.compile(r"^\s*(ended|done|exit|started)\(\s*(\d+)(?:\[(\d+)\])?\s*\)\s*$")
_FIELDS = {
    "jobid", "jobindex", "stat", "exit_code", "exit_reason", "job_name", "queue", "user",
    "proj_name", "from_host", "exec_host", "submit_time", "start_time", "finish_time",
}  # fmt: skip
_TERM = {
    "timeout": "TERM_RUNLIMIT: job killed after reaching LSF run time limit",
    "cancel": "TERM_OWNER: job killed by owner",
}


def directory() -> Path:
    return core.state_dir("lsf")


def _illegal(option: str) -> None:
    core.fail(
        "bsub",
        f"bsub: illegal option -- {option.lstrip('-')}\n"
        "Usage: bsub [-h] [-V] [-J job_name] [-n num_tasks] [-q queue_name] ... command\n"
        "Job not submitted.",
        255,
    )


def _parse(words: list[str]) -> tuple[dict[str, str], list[str]]:
    options: dict[str, str] = {}
    i = 0
    while i < len(words):
        word = words[i]
        if not word.startswith("-") or word == "-":
            return options, words[i:]
        if word in _NOT_SIMULATED:
            core.fail("bsub", f"bsub: {word} is not simulated. Job not submitted.", 255)
        if word in _FLAGS:
            options[word] = ""
            i += 1
            continue
        if word not in _VALUED:
            _illegal(word)
        if i + 1 >= len(words):
            core.fail("bsub", f"bsub: option requires an argument -- {word[1:]}", 255)
        options[word] = words[i + 1]
        i += 2
    return options, []


def _directives(script: str) -> list[str]:
    words: list[str] = []
    for line in script.splitlines():
        text = line.strip()
        if not text or (text.startswith("#") and not text.startswith("#BSUB")):
            continue
        if not text.startswith("#BSUB"):
            break  # LSF reads #BSUB lines up to the first command
        try:
            words.extend(shlex.split(text[5:]))
        except ValueError:
            core.fail("bsub", f"bsub: bad #BSUB line: {text}. Job not submitted.", 255)
    return words


def _array(name: str) -> tuple[str, list[int] | None, int | None]:
    """`name[1-N:step,...]%P` -> (name, indices, limit)."""
    found = re.fullmatch(r"([^\[\]%]+)(?:\[([^\]]+)\](?:%(\d+))?)?", name)
    if not found:
        core.fail("bsub", "Bad job name. Job not submitted.", 255)
        raise SystemExit(255)
    if found[2] is None:
        return found[1], None, None
    indices: list[int] = []
    for part in found[2].split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+)(?::(\d+))?)?", part)
        if not m:
            core.fail("bsub", "Bad job name. Job not submitted.", 255)
            raise SystemExit(255)
        lo, hi, step = int(m[1]), int(m[2] or m[1]), int(m[3] or 1)
        if lo < 1 or hi < lo:
            core.fail("bsub", "Bad job name. Job not submitted.", 255)
        indices.extend(range(lo, hi + 1, step))
    if max(indices) > MAX_JOB_ARRAY_SIZE:
        core.fail(
            "bsub",
            f"The job array index exceeds MAX_JOB_ARRAY_SIZE ({MAX_JOB_ARRAY_SIZE}). "
            "Job not submitted.",
            255,
        )
    return found[1], indices, int(found[3]) if found[3] else None


def _minutes(text: str) -> float:
    found = re.fullmatch(r"(?:(\d+):)?(\d+)(?:/\S+)?", text)
    if not found:
        core.fail("bsub", f"{text}: Bad RUNLIMIT specification. Job not submitted.", 255)
        raise SystemExit(255)
    return (int(found[1] or 0) * 60 + int(found[2])) * 60.0


def _memory(text: str, where: str) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?([KMGTPE]B?)?", text, re.IGNORECASE):
        core.fail(
            "bsub", f"{where} {text}: Bad memory limit specification. Job not submitted.", 255
        )


def _requirement(text: str) -> None:
    sections = re.findall(r"(\w+)\[([^\]]*)\]", text)
    rest = re.sub(r"\w+\[[^\]]*\]", "", text).strip()
    if rest or not sections:
        core.fail("bsub", f"Bad resource requirement syntax: {text}. Job not submitted.", 255)
    for section, body in sections:
        if section not in ("select", "order", "rusage", "span", "same", "cu", "affinity"):
            core.fail("bsub", f"Bad resource requirement syntax: {text}. Job not submitted.", 255)
        if section == "rusage":
            for item in body.split(":"):
                key, _, value = item.partition("=")
                if key == "mem":
                    _memory(value, "rusage[mem]")


def _dependencies(text: str, store: Path) -> list[str]:
    keys: list[str] = []
    for clause in text.split("&&"):
        found = _CONDITION.match(clause)
        if not found:
            core.fail("bsub", f"{text}: Syntax error. Job not submitted.", 255)
            raise SystemExit(255)
        if found[1] != "ended":
            core.fail(
                "bsub", f"{found[1]}(): not simulated (ended() only). Job not submitted.", 255
            )
        if core.Record.load(store, found[2]) is None:
            core.fail("bsub", f"{found[2]}: No matching job found. Job not submitted.", 255)
        keys.append(found[2])
    return keys


def _path(pattern: str, job: str, index: int | None) -> str:
    return pattern.replace("%J", job).replace("%I", str(index or 0))


def bsub(argv: list[str]) -> int:
    options, command = _parse(argv)
    script = ""
    if not command:
        script = sys.stdin.read()
        if not script.strip():
            core.fail("bsub", "bsub: the job script is empty. Job not submitted.", 255)
        from_script, _ = _parse(_directives(script))
        options = {**from_script, **options}  # the command line wins
    store = directory()
    name, indices, limit = _array(options.get("-J", "NONAME"))
    walltime = _minutes(options["-W"]) if "-W" in options else None
    if "-n" in options and not options["-n"].isdigit():
        core.fail("bsub", f"{options['-n']}: Bad argument for option -n. Job not submitted.", 255)
    if "-M" in options:
        _memory(options["-M"], "-M")
    if "-R" in options:
        _requirement(options["-R"])
    dependencies = _dependencies(options["-w"], store) if "-w" in options else []
    cwd = options.get("-cwd", os.getcwd())
    if not Path(cwd).is_dir():
        core.fail("bsub", f"{cwd}: No such directory. Job not submitted.", 255)
    queue = options.get("-q", "normal")
    seq = str(core.next_number(store, 4200))
    if command:
        argv_ = command
    else:
        path = store / f"{seq}.sh"
        path.write_text(script)
        first = script.splitlines()[0] if script else ""
        shell = first[2:].strip().split()[0] if first.startswith("#!") else "/bin/sh"
        argv_ = [shell, str(path)]
    out = options.get("-oo") or options.get("-o")
    err = options.get("-eo") or options.get("-e")
    elements: dict[str, core.Element] = {}
    for index in indices if indices is not None else [None]:
        env = dict(os.environ)
        env.update(
            LSB_JOBID=seq,
            LSB_JOBINDEX=str(index or 0),
            LSB_JOBNAME=name if index is None else f"{name}[{index}]",
            LSB_QUEUE=queue,
            LS_SUBCWD=os.getcwd(),
        )
        if indices is not None:
            env["LSB_JOBINDEX_END"] = str(max(indices))
        stdout = _path(out, seq, index) if out else str(store / f"{seq}.{index or 0}.out")
        stderr = _path(err, seq, index) if err else None
        for target, overwrite in ((stdout, "-oo" in options), (stderr, "-eo" in options)):
            if target and overwrite:
                Path(target).write_text("")
        elements[str(index or 0)] = core.Element(
            argv=argv_, env=env, cwd=cwd, stdout=stdout, stderr=stderr
        )
    fields: dict[str, Any] = {
        "name": name,
        "array": indices is not None,
        "queue": queue,
        "project": options.get("-P", "default"),
        "cwd": cwd,
    }
    warning = None
    if "-wt" in options or "-wa" in options:
        # the job action warning: signal -wa (only USR1 is simulated) -wt before the limit
        if options.get("-wa") not in ("USR1", "SIGUSR1") or "-wt" not in options:
            why = "-wa/-wt: only '-wa USR1' with -wt is simulated. Job not submitted."
            core.fail("bsub", why, 255)
        warning = _minutes(options["-wt"])
    record = core.Record(seq, "lsf", fields, elements, dependencies, walltime, warning=warning)
    record.save(store)
    core.start_runner(Path(__file__), store, [seq], limit)
    where = f"queue <{queue}>" if "-q" in options else f"default queue <{queue}>"
    print(f"Job <{seq}> is submitted to {where}.")
    return 0


# ----------------------------------------------------------------------------- bjobs


def _row(record: core.Record, index: str, state: dict[str, Any]) -> dict[str, str]:
    stat = {core.PENDING: "PEND", core.RUNNING: "RUN"}.get(state["state"], "")
    code = state.get("exit")
    if state.get("signal"):
        code = 128 + int(state["signal"])
    if not stat:
        stat = "DONE" if code == 0 and not state.get("cancelled") else "EXIT"
    why = "-"
    if state.get("timeout"):
        why = _TERM["timeout"]
    elif state.get("cancelled"):
        why = _TERM["cancel"]
    array = record.fields["array"]
    user = os.environ.get("USER") or "root"
    return {
        "jobid": record.key,
        "jobindex": index if array else "0",
        "stat": stat,
        "exit_code": str(code) if stat == "EXIT" and code is not None else "-",
        "exit_reason": why,
        "job_name": f"{record.fields['name']}[{index}]" if array else record.fields["name"],
        "queue": record.fields["queue"],
        "user": user,
        "proj_name": record.fields["project"],
        "from_host": HOST,
        "exec_host": NODE if "start" in state else "-",
        "submit_time": time.strftime("%b %d %H:%M", time.localtime(record.submitted)),
        "start_time": "-" if "start" not in state else core.ctime(state["start"]),
        "finish_time": "-" if "end" not in state else core.ctime(state["end"]),
    }


def _format(text: str) -> tuple[list[str], str | None]:
    """`-o "f1 f2 delimiter='|'"` -> ([f1, f2], "|")."""
    delimiter = None
    found = re.search(r"\s*delimiter='(.)'\s*$", text)
    if found:
        delimiter = found[1]
        text = text[: found.start()]
    fields = [f.split(":")[0].lower() for f in text.split()]
    for f in fields:
        if f not in _FIELDS:
            core.fail("bjobs", f"{f}: Invalid field name in the output format", 255)
    return fields, delimiter


def bjobs(argv: list[str]) -> int:
    show_all, header, fmt, ids = False, True, None, []
    named: str | None = None  # -J: the jobs (and arrays) of that name
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "-a":
            show_all = True
        elif word == "-noheader":
            header = False
        elif word == "-w":
            pass
        elif word in ("-o", "-u", "-J"):
            if i + 1 >= len(argv):
                core.fail("bjobs", f"bjobs: option requires an argument -- {word[1:]}", 255)
            if word == "-o":
                fmt = argv[i + 1]
            if word == "-J":
                named = argv[i + 1]
            i += 1
        elif word.startswith("-"):
            core.fail("bjobs", f"bjobs: illegal option -- {word[1:]}", 255)
        else:
            ids.append(word)
        i += 1
    fields, delimiter = (
        _format(fmt)
        if fmt
        else (
            ["jobid", "user", "stat", "queue", "from_host", "exec_host", "job_name", "submit_time"],
            None,
        )
    )
    store = directory()
    rows: list[dict[str, str]] = []
    rc = 0
    if ids:
        for text in ids:
            found = re.fullmatch(r"(\d+)(?:\[(\d+)\])?", text)
            record = core.Record.load(store, found[1]) if found else None
            if record is None or found is None:
                print(f"Job <{text}> is not found", file=sys.stderr)
                rc = 255
                continue
            states = core.element_states(store, record)
            if found[2] is not None and found[2] not in states:
                print(f"Job <{text}> is not found", file=sys.stderr)
                rc = 255
                continue
            for index in sorted(states, key=int):
                if found[2] is None or found[2] == index:
                    rows.append(_row(record, index, states[index]))
    else:
        for record in core.all_records(store):
            if named is not None and record.fields["name"] != named:
                continue
            for index, state in sorted(core.element_states(store, record).items()):
                if show_all or state["state"] not in core.FINAL:
                    rows.append(_row(record, index, state))
        if not rows and named is not None:
            print(f"Job <{named}> is not found", file=sys.stderr)
            rc = 255
        elif not rows:
            print("No unfinished job found", file=sys.stderr)
    if delimiter is not None:
        if header and rows:
            print(delimiter.join(f.upper() for f in fields))
        for row in rows:
            print(delimiter.join(row[f] for f in fields))
    elif rows:
        if header:
            print(" ".join(f"{f.upper():<11}" for f in fields).rstrip())
        for row in rows:
            print(" ".join(f"{row[f]:<11}" for f in fields).rstrip())
    return rc


# ----------------------------------------------------------------------------- bkill


def bkill(argv: list[str]) -> int:
    ids = []
    i = 0
    while i < len(argv):
        if argv[i] == "-s":
            i += 2
            continue
        if argv[i].startswith("-"):
            core.fail("bkill", f"bkill: illegal option -- {argv[i][1:]}", 255)
        ids.append(argv[i])
        i += 1
    if not ids:
        core.fail("bkill", "Usage: bkill [-s signal] jobId ...", 255)
    store = directory()
    rc = 0
    targets: list[tuple[str, str | None]] = []
    for text in ids:
        found = re.fullmatch(r"(\d+)(?:\[(\d+)\])?", text)
        record = core.Record.load(store, found[1]) if found else None
        if record is None or found is None:
            print(f"Job <{text}>: No matching job found", file=sys.stderr)
            rc = 255
            continue
        states = core.element_states(store, record)
        wanted = [s for i, s in states.items() if found[2] is None or i == found[2]]
        if not wanted or all(s["state"] in core.FINAL for s in wanted):
            print(f"Job <{text}>: Job has already finished", file=sys.stderr)
            rc = 255
            continue
        print(f"Job <{text}> is being terminated")
        targets.append((record.key, found[2]))
    core.request_cancel(store, targets)
    return rc


# ----------------------------------------------------------------------------- the runner


def epilogue(store: Path, record: core.Record, index: str, state: dict[str, Any]) -> None:
    """LSF's job report, appended to the job's output file."""
    element = record.elements[index]
    if not element.stdout:
        return
    row = _row(record, index, state)
    label = f"{record.key}[{index}]" if record.fields["array"] else record.key
    lines = [
        "",
        "------------------------------------------------------------",
        f"Sender: LSF System <lsfadmin@{NODE}>",
        f"Subject: Job {label}: <{row['job_name']}> in cluster <{CLUSTER}> "
        + ("Done" if row["stat"] == "DONE" else "Exited"),
        "",
        f"Job <{row['job_name']}> was submitted from host <{HOST}> by user <{row['user']}> in "
        f"cluster <{CLUSTER}> at {core.ctime(record.submitted)}",
    ]
    if "start" in state:
        lines.append(
            f"Job was executed on host(s) <{NODE}>, in queue <{row['queue']}>, as user "
            f"<{row['user']}> in cluster <{CLUSTER}> at {core.ctime(state['start'])}"
        )
    lines.append("------------------------------------------------------------")
    lines.append("")
    if row["exit_reason"] != "-":
        lines.append(row["exit_reason"] + ".")
    if row["stat"] == "DONE":
        lines.append("Successfully completed.")
    elif row["exit_code"] != "-":
        lines.append(f"Exited with exit code {row['exit_code']}.")
    run = state.get("end", 0) - state.get("start", state.get("end", 0))
    lines += [
        "",
        "Resource usage summary:",
        "",
        f"    Run time :                                   {int(run)} sec.",
        "",
        "The output (if any) is above this job summary.",
        "",
    ]
    with open(element.stdout, "a") as fh:
        fh.write("\n".join(lines))


if __name__ == "__main__" and sys.argv[1:2] == ["run"]:
    raise SystemExit(core.run_batch(Path(sys.argv[2]), sys.argv[3], epilogue))
