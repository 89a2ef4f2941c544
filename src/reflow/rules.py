"""Two decisions the engine and a job submitted ahead of its inputs both make.

- Whether an upstream task blocks an instance: a failed, skipped or
  cancelled upstream skips the whole task, except along a chain (an array
  task fed element by element by another), where it skips only the matching
  element (`whole_task_block`, `element_block`).
- Whether a cached output still holds (`stale_reason`): it must be there,
  decode, and pass the checks the run asks for (`verify=True` on returned
  paths, the task's own `verify=`).

The engine (engine.py) feeds them the rows it keeps; the job-side resolver
(resolve.py) what it reads from result files and the store.  The rule itself
is written only here, so a run decides the same on a laptop and submitted
ahead on a cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from . import codec
from .errors import DecodeError
from .identity import returns_paths, verify_output
from .wiring import Mode

if TYPE_CHECKING:
    from .flow import TaskSpec
    from .wiring import Graph

__all__ = ["element_block", "elementwise_upstream", "stale_reason", "verifying", "whole_task_block"]

SUCCESS = "SUCCESS"


def _label(task: str, index: int) -> str:
    return f"'{task}'" if index < 0 else f"'{task}'[{index}]"


def elementwise_upstream(graph: Graph, task: str) -> frozenset[str]:
    """The upstream tasks whose bad element skips only the matching element of `task`.

    Those that feed it only through a chain (element by element, not
    concatenated) and that it needs for nothing else (no other input, no `after`).
    """
    spec = graph.tasks[task]
    chain = {i.sources[0].step for i in graph.inputs[task] if i.mode is Mode.CHAIN and not i.concat}
    other = {
        s.step for i in graph.inputs[task] if i.mode is not Mode.CHAIN for s in i.sources
    } | set(spec.after)
    return frozenset(chain - other)


def whole_task_block(
    graph: Graph, task: str, states_of: Callable[[str], Mapping[int, str]]
) -> str | None:
    """Why every instance of `task` is skipped, or None.

    `states_of(dep)` gives index -> state of the upstream task's current
    instances (-1 for a singleton, or for an array task that never fanned
    out); it may leave out the elements of an element-wise upstream other than
    the ones asked about, and give {} for an upstream with nothing bad.
    """
    elementwise = elementwise_upstream(graph, task)
    for dep in graph.tasks[task].upstream:
        states = states_of(dep)
        bad = [s for s in states.values() if s != SUCCESS]
        if not bad:
            continue
        if dep in elementwise and -1 not in states:
            continue  # element by element: see element_block
        if len(states) == 1 and -1 in states:
            return f"upstream '{dep}' is {bad[0]}"
        counts: dict[str, int] = {}
        for state in bad:
            counts[state] = counts.get(state, 0) + 1
        return f"upstream '{dep}' has " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    return None


def element_block(dep: str, index: int, state: str) -> str | None:
    """Why element `index` is skipped when element `index` of `dep` (element-wise) is `state`."""
    return None if state == SUCCESS else f"{_label(dep, index)} is {state}"


def verifying(spec: TaskSpec, verify: bool) -> bool:
    """Whether a cached output of `spec` is checked before it is reused (`verify`: the run's)."""
    return spec.verify is not None or (verify and returns_paths(spec.returns))


def stale_reason(spec: TaskSpec, text: str | None, verify: bool) -> str | None:
    """Why the cached output `text` of `spec` cannot be reused, or None when it holds."""
    if text is None:
        return "no stored output"
    try:
        value: Any = codec.loads(text)
    except DecodeError as exc:
        return f"stored output cannot be read: {exc}"
    return verify_output(
        value, check_paths=verify and returns_paths(spec.returns), custom=spec.verify
    )
