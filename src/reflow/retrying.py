"""Automatic retries: whether a failed attempt is tried again, asking for what, and when.

The rule is written once, here, as pure functions of a task's options, the
failed attempt (its failure kind, number and resources), what the instance
has used of its budget, and the limits (the config's `[executor] max_mem`,
`max_time` and `max_requeues`, and the partition's, where the scheduler
reports them).  The engine applies it for every driver: the local loops as
outcomes arrive, the cluster dispatcher on the pass after a job failed.

- A kind not in the task's `retry_on` is final.  A user's cancel is no
  failure kind at all (the instance is CANCELLED, not FAILED): never retried.
- PREEMPTED and NODE_FAIL are requeued without using `retries`, at most
  `max_requeues` times in a row, with the same resources and no delay.
- Any other kind uses one of `retries`; the next attempt waits `retry_delay *
  backoff ** (retries used before it)` seconds (at most a week).  With `escalate`, after an
  OOM it asks for twice the memory, after a TIMEOUT for twice the time (only
  the resource that ran out), capped by the task's `max_mem` / `max_time`, else
  the config's, and by the partition's limits.  A resource the task gives as a
  callable of the attempt number is that callable's value instead (capped
  alike), whatever the kind; `escalate=False` keeps the others as they were.
- The budget is counted along the instance's chain of automatic attempts (each
  keeps why it ran, `reason`, in the store): a manual `retry` starts a new
  chain, so it gives a fresh budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .flow import TaskSpec
from .resources import normal_mem, normal_time, parse_mem, time_seconds, time_text

if TYPE_CHECKING:
    from .config import Config

__all__ = [
    "MAX_DELAY", "REQUEUED", "Limits", "Retry", "Used", "config_limits", "first_resources",
    "next_attempt", "resources_json", "used_before",
]  # fmt: skip

#: failure kinds that are the cluster's doing, not the task's: requeued, not retried
REQUEUED = frozenset({"NODE_FAIL", "PREEMPTED"})

#: the longest a retry is held back, however the backoff grew its delay
MAX_DELAY = 7 * 86400.0

_RETRIED = "tried again automatically after "
_REQUEUED = "requeued automatically after "


class Limits(NamedTuple):
    """What no automatic attempt may exceed, besides the task's own `max_mem` / `max_time`.

    `max_mem` / `max_time`: the config's `[executor]` caps; `partition_mem`
    (bytes) and `partition_seconds`: the largest the partition allows, where
    the scheduler says (None: no cap known).
    """

    max_mem: str | None = None
    max_time: str | None = None
    max_requeues: int = 3
    partition_mem: int | None = None
    partition_seconds: int | None = None


def config_limits(
    config: Config | None, partition_mem: int | None = None, partition_seconds: int | None = None
) -> Limits:
    """The `Limits` of the config's `[executor]` caps (and the partition's, where known)."""
    if config is None:
        return Limits(partition_mem=partition_mem, partition_seconds=partition_seconds)
    return Limits(
        config.max_mem, config.max_time, config.max_requeues, partition_mem, partition_seconds
    )


class Used(NamedTuple):
    """What an instance has used of its budget: retries, and requeues (preempted, node failed)."""

    retries: int = 0
    requeues: int = 0


class Retry(NamedTuple):
    """The next attempt of a failed instance: its number, what it asks for, when, and why."""

    attempt: int
    resources: dict[str, Any]
    delay: float
    used: Used
    reason: str


def first_resources(spec: TaskSpec, attempt: int = 1) -> dict[str, Any]:
    """What `attempt` of `spec` asks for when nothing escalated it (its callables, its values)."""
    out: dict[str, Any] = {}
    for key in ("mem", "time", "cpus"):
        value = getattr(spec, key)
        rule = spec.per_attempt.get(key)
        if rule is not None and attempt != 1:
            value = _called(key, rule, attempt, value)
        if value is not None:
            out[key] = value
    return out


def resources_json(resources: Mapping[str, Any]) -> str | None:
    """The stored form of an attempt's resources (None when it asks for nothing)."""
    return json.dumps(dict(resources), sort_keys=True, separators=(",", ":")) if resources else None


def used_before(reasons: Mapping[int, str], attempt: int) -> Used:
    """The budget used up to `attempt`: the automatic attempts in a row that led to it.

    `reasons`: attempt number -> why it ran (`Store.reasons`), for one instance.
    """
    retries = requeues = 0
    while attempt > 1:
        why = reasons.get(attempt, "")
        if why.startswith(_RETRIED):
            retries += 1
        elif why.startswith(_REQUEUED):
            requeues += 1
        else:
            break
        attempt -= 1
    return Used(retries, requeues)


def next_attempt(
    spec: TaskSpec,
    kind: str | None,
    attempt: int,
    resources: Mapping[str, Any] | None,
    used: Used,
    limits: Limits,
) -> Retry | None:
    """The attempt after failed `attempt` (of `kind`, asking `resources`), or None: it is final.

    `resources`: what the failed attempt asked for (None: not known, read as
    the task's own for that attempt).
    """
    kind = kind or "ERROR"
    if kind not in spec.retry_on:
        return None
    asked = dict(resources) if resources is not None else first_resources(spec, attempt)
    if kind in REQUEUED:
        if used.requeues >= limits.max_requeues:
            return None
        done = Used(used.retries, used.requeues + 1)
        why = f"{_REQUEUED}{kind} (requeue {done.requeues} of {limits.max_requeues})"
        return Retry(attempt + 1, asked, 0.0, done, why)
    if used.retries >= spec.retries:
        return None
    done = Used(used.retries + 1, used.requeues)
    try:
        delay = min(MAX_DELAY, (spec.retry_delay or 0.0) * spec.backoff**used.retries)
    except OverflowError:  # a big backoff, many retries
        delay = MAX_DELAY
    new = _escalated(spec, kind, attempt + 1, asked, limits)
    why = f"{_RETRIED}{kind} (retry {done.retries} of {spec.retries})"
    return Retry(attempt + 1, new, delay, done, why)


def _escalated(
    spec: TaskSpec, kind: str, attempt: int, asked: dict[str, Any], limits: Limits
) -> dict[str, Any]:
    """What `attempt` asks for after the one before it failed of `kind` asking `asked`."""
    new = dict(asked)
    for key, rule in spec.per_attempt.items():  # the task's own rule replaces doubling
        new[key] = _called(key, rule, attempt, asked.get(key))
    if spec.escalate:
        if kind == "OOM" and "mem" not in spec.per_attempt and "mem" in asked:
            last = parse_mem(asked["mem"])
            new["mem"] = str(type(last)(last.amount * 2, last.unit))
        if kind == "TIMEOUT" and "time" not in spec.per_attempt and "time" in asked:
            new["time"] = time_text(time_seconds(asked["time"]) * 2)
    if "mem" in new:
        new["mem"] = _cap_mem(new["mem"], asked.get("mem"), spec.max_mem or limits.max_mem, limits)
    if "time" in new:
        new["time"] = _cap_time(
            new["time"], asked.get("time"), spec.max_time or limits.max_time, limits
        )
    return new


def _called(key: str, rule: Any, attempt: int, fallback: Any) -> Any:
    """`rule(attempt)`, checked as `key`; `fallback` if it fails or is not a valid value.

    The callable was checked for attempt 1 when the task was defined; a later
    attempt's wrong answer must not end the run, so the attempt before stands.
    """
    try:
        value = rule(attempt)
        if key == "mem":
            return normal_mem(value)
        if key == "time":
            return normal_time(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return fallback
        return value
    except Exception:  # the user's function may raise anything
        return fallback


def _cap_mem(value: str, before: str | None, cap: str | None, limits: Limits) -> str:
    """`value` no larger than `cap` and the partition's memory, nor smaller than `before`."""
    mem = parse_mem(value)
    if cap is not None and mem.nbytes > parse_mem(cap).nbytes:
        mem = parse_mem(cap)
    if limits.partition_mem and mem.nbytes > limits.partition_mem:
        mem = parse_mem(f"{limits.partition_mem >> 20}M")
    if before is not None and mem.nbytes < parse_mem(before).nbytes <= parse_mem(value).nbytes:
        return before  # a cap below what already ran: ask for that again, not less
    return str(mem)


def _cap_time(value: str, before: str | None, cap: str | None, limits: Limits) -> str:
    """`value` no longer than `cap` and the partition's limit, nor shorter than `before`."""
    wanted = time_seconds(value)
    total = wanted
    if cap is not None:
        total = min(total, time_seconds(cap))
    if limits.partition_seconds:
        total = min(total, limits.partition_seconds)
    if total == wanted:
        return value
    if before is not None and total < time_seconds(before) <= wanted:
        return before
    return time_text(total)
