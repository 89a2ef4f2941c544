"""Workflow: a Flow that can be validated and run.  A thin facade over `runner`.

Nothing below this module imports it: the layers under it know a workflow as
a `wiring.Pipeline` (its name, tasks, graph and configuration).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from .errors import TaskFailedError
from .flow import Flow
from .states import RunState

# The engine, the store, the executors and the codec load when a run needs them, not
# when a pipeline script is imported: `--help` and `status` stay fast.
if TYPE_CHECKING:
    from .config import Config
    from .description import WorkflowDescription
    from .executors.base import Executor
    from .run import Run
    from .stores import Store
    from .wiring import Graph

__all__ = ["Workflow"]


class Workflow(Flow):
    """A named graph of tasks that reflow can run locally or on a cluster."""

    def __init__(self, name: str, config: Config | None = None) -> None:
        super().__init__(name)
        self._config = config
        self._graph: Graph | None = None
        self._graph_generation = -1

    @property
    def config(self) -> Config:
        """The configuration in force (loaded on first use unless given)."""
        if self._config is None:
            from .config import load_config

            self._config = load_config()
        return self._config

    def validate(self) -> Graph:
        """Check the wiring and return the graph; raise ValueError naming what is wrong."""
        if self._graph is None or self._graph_generation != self._generation:
            from .wiring import build_graph

            self._graph = build_graph(self.name, self.tasks)
            self._graph_generation = self._generation
        return self._graph

    def cli(self, argv: Sequence[str] | None = None) -> int:
        """Run the pipeline's command line (`run`, `status`, `retry`, ...); return the exit code."""
        from .cli import workflow_cli

        return workflow_cli(self, argv, config=self._config)

    def run_local(
        self,
        run_dir: str | os.PathLike[str],
        *,
        store: Store | str | os.PathLike[str] | None = None,
        force: bool = False,
        force_tasks: Iterable[str] | None = None,
        verify: bool = False,
        max_workers: int = 1,
        on_error: Literal["stop", "continue"] = "stop",
        **params: Any,
    ) -> Run:
        """Run the whole graph on this machine and return the finished Run.

        With `on_error="stop"` (the default) the first failure stops the run:
        once everything is recorded, `TaskFailedError` (a `RuntimeError`) is
        raised, naming the failed task(s), with the FAILED run as `err.run`.
        With `on_error="continue"` the rest of the graph still runs (what a
        failure blocks is SKIPPED) and the FAILED run is returned.
        """
        from .run import Run, failure_message
        from .runner import start_local

        run_id, st = start_local(
            self, run_dir, store=store, config=self._config, force=force,
            force_tasks=force_tasks, verify=verify, max_workers=max_workers, on_error=on_error,
            params=params,
        )  # fmt: skip
        run = Run(run_id, st, workflow=self)
        if on_error == "stop" and run.state is RunState.FAILED:
            raise TaskFailedError(failure_message(run), run)
        return run

    def dry_run(
        self,
        run_dir: str | os.PathLike[str],
        *,
        store: Store | str | os.PathLike[str] | None = None,
        force: bool = False,
        force_tasks: Iterable[str] | None = None,
        verify: bool = False,
        max_workers: int = 1,
        on_error: Literal["stop", "continue"] = "stop",
        **params: Any,
    ) -> dict[str, Any]:
        """What `run_local` with the same arguments would do, per task; runs and writes nothing.

        Returns `{"tasks": {task: {"run": n, "cached": n, "unknown": bool,
        "reasons": {reason: count}}}}`, every task present, in graph order. A
        task whose instances depend on an output the run would compute is
        `unknown`: its counts are what is certain, its reasons what it waits for.
        """
        from .runner import dry_run

        return dry_run(
            self, run_dir, store=store, config=self._config, force=force,
            force_tasks=force_tasks, verify=verify, max_workers=max_workers, on_error=on_error,
            params=params,
        )  # fmt: skip

    def submit(
        self,
        run_dir: str | os.PathLike[str],
        *,
        executor: str | Executor | None = None,
        store: Store | str | os.PathLike[str] | None = None,
        force: bool = False,
        force_tasks: Iterable[str] | None = None,
        verify: bool = False,
        **params: Any,
    ) -> Run:
        """Record the run, submit its first wave to the scheduler, and return.

        The rest of the graph is driven on the cluster by a small chained
        dispatcher job.  A fully cached run submits nothing and returns finished.
        `executor` is a name ("slurm", "local", "dry-run", ...) or an Executor;
        the default comes from the config (`[executor] mode`, `REFLOW_MODE`).
        """
        from .run import Run
        from .runner import submit

        run_id, st, dry = submit(
            self, run_dir, executor=executor, store=store, config=self.config, force=force,
            force_tasks=force_tasks, verify=verify, params=params,
        )  # fmt: skip
        run = Run(run_id, st, workflow=self)
        run.dry_run = dry
        return run

    def describe_typed(self) -> WorkflowDescription:
        """The workflow's structure as a typed `WorkflowDescription` (validated first)."""
        from .description import describe_graph

        return describe_graph(self.validate())

    def describe(self) -> dict[str, Any]:
        """The workflow's structure as a JSON-safe dict: tasks, options, dependencies, params."""
        return self.describe_typed().to_manifest_dict()

    def cancel_runs(
        self,
        run_ids: Iterable[str],
        store: Store | str | os.PathLike[str] | None = None,
        task_name: str | None = None,
    ) -> int:
        """Cancel several runs (their unfinished instances, of one task or all); return how many.

        Every run id is checked first: an unknown one cancels nothing.
        """
        from .errors import ValidationError
        from .run import Run
        from .runner import open_run_store

        if isinstance(run_ids, str):
            raise ValidationError(
                f"cancel_runs takes a list of run ids, not the string {run_ids!r}"
            )
        ids = list(run_ids)
        st = open_run_store(store, self._config)
        for run_id in ids:
            st.get_run(run_id)  # RunNotFoundError naming it
        return sum(Run(run_id, st, workflow=self).cancel(task_name) for run_id in ids)
