"""reflow: a workflow engine for batch work on HPC clusters.

Write plain functions, mark them with `@wf.job(...)`, wire them with type
annotations, and run the graph locally or on a scheduler; work whose inputs
have not changed is never redone.

The public names are imported on first use (module `__getattr__`), so that
`import reflow` and a pipeline script's `--help` stay fast: the store, the
engine and the executors load only when a run needs them.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not `typing.TYPE_CHECKING`: `import reflow` does not import typing
if TYPE_CHECKING:
    from typing import Any

    from ._version import __version__
    from .config import (
        Config,
        config_path,
        ensure_config_exists,
        load_config,
        write_example_config,
    )
    from .description import WorkflowDescription
    from .errors import ReflowError, TaskFailedError
    from .executors.base import Executor, JobResources
    from .executors.flux import FluxExecutor
    from .executors.local import LocalExecutor
    from .executors.lsf import LSFExecutor
    from .executors.pbs import PBSExecutor
    from .executors.sge import SGEExecutor
    from .executors.slurm import SlurmExecutor
    from .flow import Flow, TaskSpec
    from .params import Param, Result, RunDir
    from .run import Run
    from .signals import TaskInterrupted
    from .states import RunState, TaskState
    from .workflow import Workflow

__all__ = [
    "Config",
    "Executor",
    "Flow",
    "FluxExecutor",
    "JobResources",
    "LSFExecutor",
    "LocalExecutor",
    "PBSExecutor",
    "Param",
    "ReflowError",
    "Result",
    "Run",
    "RunDir",
    "RunState",
    "SGEExecutor",
    "SlurmExecutor",
    "TaskFailedError",
    "TaskInterrupted",
    "TaskSpec",
    "TaskState",
    "Workflow",
    "WorkflowDescription",
    "__version__",
    "config_path",
    "ensure_config_exists",
    "load_config",
    "write_example_config",
]

#: public name -> the submodule that defines it
_LAZY = {
    "Config": "config",
    "Executor": "executors.base",
    "Flow": "flow",
    "FluxExecutor": "executors.flux",
    "JobResources": "executors.base",
    "LSFExecutor": "executors.lsf",
    "LocalExecutor": "executors.local",
    "PBSExecutor": "executors.pbs",
    "Param": "params",
    "ReflowError": "errors",
    "Result": "params",
    "Run": "run",
    "RunDir": "params",
    "RunState": "states",
    "SGEExecutor": "executors.sge",
    "SlurmExecutor": "executors.slurm",
    "TaskFailedError": "errors",
    "TaskInterrupted": "signals",
    "TaskSpec": "flow",
    "TaskState": "states",
    "Workflow": "workflow",
    "WorkflowDescription": "description",
    "__version__": "_version",
    "config_path": "config",
    "ensure_config_exists": "config",
    "load_config": "config",
    "write_example_config": "config",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'reflow' has no attribute {name!r}")
    import sys

    __import__(f"{__name__}.{module}")
    value = getattr(sys.modules[f"{__name__}.{module}"], name)
    globals()[name] = value  # later look-ups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
