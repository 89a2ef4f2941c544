"""LocalExecutor: the scheduler protocol with subprocesses on this machine.

Each submitted job is a detached runner process that waits for the jobs it
depends on, then runs the job's command once per array element, up to
`array_parallelism` (or the number of cores) at a time, and records each
element's exit status in a small state file.  Nothing needs to be installed,
so `submit(executor="local")` exercises the same worker, result-file and
dispatcher path as a cluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._common import memory, seconds
from .base import Capacity, Executor, JobResources, JobState, JobStatus

__all__ = ["LocalExecutor"]

_POLL = 0.1


def _default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reflow" / "local-jobs"


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is not alive
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


class LocalExecutor(Executor):
    """Runs jobs as detached processes on this machine (arrays in parallel)."""

    name = "local"
    mode = "local"
    index_base = 0

    def __init__(self, state_dir: str | os.PathLike[str] | None = None) -> None:
        self.state_dir = Path(state_dir) if state_dir else _default_dir()

    def capacity(self, resources: JobResources) -> Capacity:
        """Array elements run up to the number of cores at a time."""
        return Capacity(slots=os.cpu_count() or 1)

    def render(self, command: Sequence[str], resources: JobResources) -> str:
        r = resources
        lines = ["#!/bin/bash", f"# reflow local job {r.name}"]
        if r.array_size is not None:
            par = r.array_parallelism or "cores"
            lines.append(f"# array: {r.array_size} elements, {par} at a time")
        if r.dependencies:
            lines.append("# after: " + " ".join(r.dependencies))
        if r.time:
            lines.append(f"# time limit {seconds(r.time)} s: not enforced on this machine")
        if r.mem:
            lines.append(f"# mem={memory(r.mem)}: not enforced on this machine")
        if r.workdir:
            lines.append("cd " + shlex.quote(r.workdir))
        lines.append("exec " + shlex.join(command))
        return "\n".join(lines) + "\n"

    def submit(self, command: Sequence[str], resources: JobResources) -> str:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # a journal token names the job, so that `find_submitted` finds it again
        job_id = f"local-{int(time.time())}-{resources.token or secrets.token_hex(4)}"
        spec = {
            "id": job_id,
            "command": list(command),
            "array_size": resources.array_size,
            "parallelism": resources.array_parallelism,
            "dependencies": list(resources.dependencies),
            "log": resources.stdout,
            "workdir": resources.workdir,
            "env": dict(resources.env),
        }
        _write_json(self.state_dir / f"{job_id}.job", spec)
        _write_json(self.state_dir / f"{job_id}.state", {"state": "PENDING"})
        proc = subprocess.Popen(
            [sys.executable, "-m", "reflow.executors.local", str(self.state_dir), job_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )
        _write_json(self.state_dir / f"{job_id}.state", {"state": "PENDING", "pid": proc.pid})
        return job_id

    def find_submitted(
        self, jobs: Sequence[tuple[str, str, float]]
    ) -> dict[str, str | None] | None:
        """A job is submitted once its spec file is written (before its process starts)."""
        found: dict[str, str | None] = {}
        for _, token, _ in jobs:
            specs = sorted(self.state_dir.glob(f"local-*-{token}.job"))
            found[token] = specs[0].name[: -len(".job")] if specs else None
        return found

    def cancel(self, job_ids: Sequence[str]) -> None:
        for job in {j.split("_", 1)[0] for j in job_ids}:
            doc = _read_json(self.state_dir / f"{job}.state")
            if not doc or doc.get("state") in ("COMPLETED", "FAILED", "CANCELLED"):
                continue
            pid = doc.get("pid")
            if isinstance(pid, int) and _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGTERM)
            deadline = time.monotonic() + 5
            while isinstance(pid, int) and _alive(pid) and time.monotonic() < deadline:
                time.sleep(_POLL)
            doc = _read_json(self.state_dir / f"{job}.state") or {}
            if doc.get("state") not in ("COMPLETED", "FAILED"):
                doc["state"] = "CANCELLED"
                _write_json(self.state_dir / f"{job}.state", doc)

    def _status(self, job: str) -> tuple[dict[str, Any], JobStatus]:
        doc = _read_json(self.state_dir / f"{job}.state")
        if doc is None:
            return {}, JobStatus(JobState.UNKNOWN, "unknown job")
        state = str(doc.get("state", "PENDING"))
        pid = doc.get("pid")
        if state in ("PENDING", "RUNNING") and isinstance(pid, int) and not _alive(pid):
            return doc, JobStatus(JobState.FAILED, "the local runner process died")
        return doc, JobStatus(
            JobState(state) if state in JobState.__members__ else JobState.UNKNOWN, state
        )

    def states(self, job_ids: Sequence[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        for job in {j.split("_", 1)[0] for j in job_ids}:
            doc, status = self._status(job)
            found[job] = status
            spec = _read_json(self.state_dir / f"{job}.job") or {}
            size = spec.get("array_size")
            elements = doc.get("elements", {}) if isinstance(doc.get("elements"), dict) else {}
            for k in range(int(size or 0)):
                e = elements.get(str(k))
                if isinstance(e, dict):
                    st = str(e.get("state"))
                    code = str(e.get("exit", ""))
                    found[f"{job}_{k}"] = JobStatus(JobState(st), st, code)
                elif status.state.final:
                    found[f"{job}_{k}"] = status
                else:
                    found[f"{job}_{k}"] = JobStatus(JobState.PENDING, "PENDING")
        return found


def _run_job(state_dir: Path, job_id: str) -> int:
    """The runner: wait for dependencies, then run the elements, recording their states."""
    spec = _read_json(state_dir / f"{job_id}.job")
    if spec is None:
        return 1
    state_file = state_dir / f"{job_id}.state"
    doc: dict[str, Any] = {"state": "PENDING", "pid": os.getpid(), "elements": {}}
    _write_json(state_file, doc)
    executor = LocalExecutor(state_dir)
    deps = [str(d) for d in spec.get("dependencies", [])]
    while deps:
        states = executor.states(deps)
        if all(states[d].state.final for d in deps if d in states):
            break
        time.sleep(_POLL)
    doc["state"] = "RUNNING"
    _write_json(state_file, doc)
    size = spec.get("array_size")
    count = int(size) if size is not None else 1
    limit = int(spec.get("parallelism") or 0) or (os.cpu_count() or 1)
    running: dict[int, subprocess.Popen[bytes]] = {}
    next_k = 0
    log = spec.get("log")
    failed = False
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    while (next_k < count or running) and not stopping:
        while next_k < count and len(running) < limit:
            env = dict(os.environ, **spec.get("env", {}))
            env["REFLOW_JOB_ID"] = f"{job_id}_{next_k}" if size is not None else job_id
            if size is not None:
                env["REFLOW_ARRAY_INDEX"] = str(next_k)
            out: Any = subprocess.DEVNULL
            if log:
                path = str(log).replace("%A", job_id).replace("%a", str(next_k))
                path = path.replace("%j", job_id)
                Path(path).parent.mkdir(parents=True, exist_ok=True)
                out = open(path, "ab")  # noqa: SIM115 - closed when the element ends
            running[next_k] = subprocess.Popen(
                spec["command"],
                cwd=spec.get("workdir") or None,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
            if out is not subprocess.DEVNULL:
                out.close()
            doc["elements"][str(next_k)] = {"state": "RUNNING"}
            next_k += 1
        _write_json(state_file, doc)
        time.sleep(_POLL)
        for k, proc in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[k]
            ok = code == 0
            failed = failed or not ok
            doc["elements"][str(k)] = {
                "state": "COMPLETED" if ok else "FAILED",
                "exit": f"{code}:0" if code >= 0 else f"0:{-code}",
            }
    if stopping:
        for proc in running.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for k, proc in running.items():
            proc.wait()
            doc["elements"][str(k)] = {"state": "CANCELLED", "exit": "0:15"}
        for k in range(next_k, count):
            doc["elements"][str(k)] = {"state": "CANCELLED", "exit": ""}
        doc["state"] = "CANCELLED"
    else:
        doc["state"] = "FAILED" if failed else "COMPLETED"
    _write_json(state_file, doc)
    return 0


if __name__ == "__main__":
    raise SystemExit(_run_job(Path(sys.argv[1]), sys.argv[2]))
