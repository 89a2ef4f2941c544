"""reflow: a workflow engine for batch work on HPC clusters.

Write plain functions, mark them with `@wf.job(...)`, wire them with type
annotations, and run the graph locally or on a scheduler; work whose inputs
have not changed is never redone.
"""

from __future__ import annotations

from .errors import ReflowError
from .flow import Flow
from .params import Param, Result, RunDir
from .run import Run
from .states import RunState, TaskState
from .workflow import Workflow

__version__ = "0.1.0"

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
