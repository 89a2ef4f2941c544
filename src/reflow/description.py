"""`WorkflowDescription`: a workflow's structure as data, in reflow-hpc's manifest form.

`wf.describe_typed()` returns one; `wf.describe()` its JSON-safe dict (what a
service would need to rebuild the submit form and the dispatch: tasks, their
options and dependencies, and the command-line parameters).  Values that are
not plain JSON (a `Path` default, say) are written as reflow's typed JSON.
(`python pipeline.py describe` prints reflow's own, shorter description: see
`render.describe`.)
"""

from __future__ import annotations

import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import codec
from .params import MISSING, optional_inner, type_name

if typing.TYPE_CHECKING:
    from .wiring import Graph

__all__ = ["SCHEMA_VERSION", "CliParamDescription", "TaskDescription", "WorkflowDescription"]

#: the version of the manifest form `to_manifest_dict` writes
SCHEMA_VERSION = 1


def _json(value: Any) -> Any:
    return codec.encode(value)


@dataclass(frozen=True)
class CliParamDescription:
    """One command-line parameter of the workflow."""

    name: str
    task: str | None  # the task of a `namespace="local"` parameter; None for a shared one
    flag: str
    type_repr: str
    required: bool
    default: Any
    namespace: str
    help: str | None
    choices: list[Any] | None

    def to_manifest_dict(self) -> dict[str, Any]:
        """This parameter as JSON-safe data."""
        return {
            "name": self.name,
            "task": self.task,
            "flag": self.flag,
            "type": self.type_repr,
            "required": self.required,
            "default": None if self.default is MISSING else _json(self.default),
            "namespace": self.namespace,
            "help": self.help,
            "choices": None if self.choices is None else _json(self.choices),
        }


@dataclass(frozen=True)
class TaskDescription:
    """One task: its options, what it depends on and which arguments upstream results feed."""

    name: str
    is_array: bool
    config: dict[str, Any]
    dependencies: list[str]
    result_deps: dict[str, dict[str, Any]]
    return_type: str | None
    has_verify: bool

    def to_manifest_dict(self) -> dict[str, Any]:
        """This task as JSON-safe data."""
        return {
            "name": self.name,
            "is_array": self.is_array,
            "config": _json(self.config),
            "dependencies": list(self.dependencies),
            "result_deps": _json(self.result_deps),
            "return_type": self.return_type,
            "has_verify": self.has_verify,
        }


@dataclass(frozen=True)
class WorkflowDescription:
    """A workflow definition: where it runs from, its tasks in run order, its parameters."""

    name: str
    entrypoint: Path
    python: Path
    working_dir: Path
    tasks: list[TaskDescription]
    cli_params: list[CliParamDescription]
    schema_version: int = SCHEMA_VERSION

    def to_manifest_dict(self) -> dict[str, Any]:
        """The description as JSON-safe data (`wf.describe()`)."""
        return {
            "schema_version": self.schema_version,
            "name": self.name,
            "entrypoint": str(self.entrypoint),
            "python": str(self.python),
            "working_dir": str(self.working_dir),
            "tasks": [t.to_manifest_dict() for t in self.tasks],
            "cli_params": [p.to_manifest_dict() for p in self.cli_params],
        }


def describe_graph(graph: Graph) -> WorkflowDescription:
    """The description of a validated graph, run from this process's script."""
    tasks = []
    for name in graph.order:
        spec = graph.tasks[name]
        config: dict[str, Any] = {
            "cpus": spec.cpus,
            "time": spec.time,
            "mem": spec.mem,
            "array": spec.array,
            "array_parallelism": spec.array_parallelism,
            "after": list(spec.after),
            "submit_options": dict(spec.options),
            "version": spec.version,
            "cache": spec.cache,
            "backend": spec.backend,
            "pack": spec.pack,
            "fuse": spec.fuse,
        }
        tasks.append(
            TaskDescription(
                name=name,
                is_array=spec.array,
                config=config,
                dependencies=list(spec.upstream),
                result_deps={
                    a.name: {"steps": list(a.result.steps), "broadcast": a.result.broadcast}
                    for a in spec.args
                    if a.result is not None
                },
                return_type=type_name(spec.returns),
                has_verify=spec.verify is not None,
            )
        )
    params = [
        CliParamDescription(
            name=p.arg,
            task=p.tasks[0] if p.local else None,
            flag=p.flag,
            type_repr=type_name(p.annotation),
            required=p.required,
            default=p.default,
            namespace="local" if p.local else "global",
            help=p.help or None,
            choices=_choices(p.annotation),
        )
        for p in graph.params.values()
    ]
    main = sys.modules.get("__main__")
    script = getattr(main, "__file__", None) or sys.argv[0] or "."
    return WorkflowDescription(
        name=graph.name,
        entrypoint=Path(script).expanduser().resolve(),
        python=Path(sys.executable),
        working_dir=Path.cwd(),
        tasks=tasks,
        cli_params=params,
    )


def _choices(annotation: Any) -> list[Any] | None:
    inner = optional_inner(annotation)
    target = annotation if inner is None else inner
    if typing.get_origin(target) is typing.Literal:
        return list(typing.get_args(target))
    return None
