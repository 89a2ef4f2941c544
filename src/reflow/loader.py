"""Finding a workflow again inside a job: by the script file or module that defines it."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import typing
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .errors import ReflowError
from .flow import Flow

if TYPE_CHECKING:  # not imported in a job that only runs instances: it costs start-up
    from .wiring import Pipeline

__all__ = ["load_workflow", "workflow_origin"]


def workflow_origin(wf: Pipeline) -> dict[str, str]:
    """Where a job can import `wf` from: {"script": path} or {"module": name}."""
    from pathlib import Path  # on the submitting side; a job's start-up does without

    modules = {getattr(t.func, "__module__", None) for t in wf.tasks.values()}
    module = next(iter(modules)) if len(modules) == 1 else None
    if module is None or module == "__main__" or module not in sys.modules:
        main = sys.modules.get(module or "__main__")
        path = getattr(main, "__file__", None)
        if not path:
            raise ReflowError(
                f"workflow '{wf.name}' must be defined in a Python file for its tasks to run "
                "in scheduler jobs (not in an interactive session); put it in a script"
            )
        return {"script": str(Path(path).resolve())}
    mod = sys.modules[module]
    path = getattr(mod, "__file__", None)
    origin = {"module": module}
    if path:
        # the folder the module is importable from, for jobs started elsewhere
        depth = module.count(".") + (1 if Path(path).name == "__init__.py" else 0)
        origin["path"] = str(Path(path).resolve().parents[depth])
    return origin


def _load_script(file: str) -> ModuleType:
    if not os.path.isfile(file):
        raise ReflowError(f"the pipeline script {file} is gone; the run cannot continue")
    sys.path.insert(0, os.path.dirname(file))
    spec = importlib.util.spec_from_file_location("__reflow_pipeline__", file)
    if spec is None or spec.loader is None:
        raise ReflowError(f"cannot load the pipeline script {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["__reflow_pipeline__"] = module
    spec.loader.exec_module(module)
    return module


def _is_workflow(value: object, name: str) -> bool:
    """A workflow called `name`: a Flow that can also be validated and run (a Pipeline)."""
    # looked up on the type: reading `config` on the instance would load the configuration
    return (
        isinstance(value, Flow)
        and value.name == name
        and callable(getattr(type(value), "validate", None))
    )


def load_workflow(origin: dict[str, Any], name: str) -> Pipeline:
    """Import the script or module in `origin` and return its workflow called `name`."""
    if "script" in origin:
        module = _load_script(str(origin["script"]))
    elif "module" in origin:
        if origin.get("path"):
            sys.path.insert(0, str(origin["path"]))
        module = importlib.import_module(str(origin["module"]))
    else:
        raise ReflowError("the run does not record where its workflow is defined")
    found = [v for v in vars(module).values() if _is_workflow(v, name)]
    if not found:
        raise ReflowError(
            f"{origin.get('script') or origin.get('module')} defines no workflow named "
            f"'{name}' at module level"
        )
    return typing.cast("Pipeline", found[0])
