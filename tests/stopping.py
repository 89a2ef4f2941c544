"""`stopped`: run a workflow locally that is meant to fail, with on_error="stop"."""

from __future__ import annotations

import os
from typing import Any

import pytest

from reflow import Run, Workflow
from reflow.errors import TaskFailedError


def stopped(wf: Workflow, run_dir: str | os.PathLike[str], **kwargs: Any) -> Run:
    """`wf.run_local(...)` that must stop on a failure: the FAILED Run its TaskFailedError holds."""
    with pytest.raises(TaskFailedError) as caught:
        wf.run_local(run_dir, **kwargs)
    run = caught.value.run
    assert isinstance(run, Run)
    return run
