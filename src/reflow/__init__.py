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
    from .errors import ReflowError
    from .flow import Flow
    from .params import Param, Result, RunDir
    from .run import Run
    from .states import RunState, TaskState
    from .workflow import Workflow

__all__ = [
    "Flow",
    "Param",
    "ReflowError",
    "Result",
    "Run",
    "RunDir",
    "RunState",
    "TaskState",
    "Workflow",
    "__version__",
]

#: public name -> the submodule that defines it
_LAZY = {
    "Flow": "flow",
    "Param": "params",
    "ReflowError": "errors",
    "Result": "params",
    "Run": "run",
    "RunDir": "params",
    "RunState": "states",
    "TaskState": "states",
    "Workflow": "workflow",
    "__version__": "_version",
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
