"""Task-instance identities and output verification.

An identity is the hash of: the workflow name, the task name, its version,
the hash of each run parameter the task takes, and the hash of exactly the
upstream value each `Result` argument receives.  The ingredients are kept
next to the identity so a cache miss can be explained later.
"""

from __future__ import annotations

import functools
import json
import typing
from collections.abc import Callable, Mapping, Sequence
from pathlib import PurePath
from typing import Any

from . import codec

__all__ = [
    "compute_identity",
    "identity_template",
    "returns_paths",
    "template_maker",
    "verify_output",
]

IDENTITY_VERSION = "1"


def _hash_map(items: Mapping[str, str]) -> str:
    # argument names are Python identifiers and values hex digests: no escaping needed,
    # so this is the canonical JSON object (sorted keys, no spaces) of the mapping
    return "{" + ",".join(f'"{k}":"{v}"' for k, v in sorted(items.items())) + "}"


@functools.lru_cache(maxsize=1024)
def _head(workflow: str, task: str, version: str) -> str:
    return json.dumps(
        {"task": task, "v": IDENTITY_VERSION, "version": version, "workflow": workflow},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def compute_identity(
    workflow: str,
    task: str,
    version: str,
    params: Mapping[str, str],
    inputs: Mapping[str, str],
) -> tuple[str, str]:
    """Return (identity, ingredients as JSON) for one task instance.

    `params` and `inputs` map argument names to the hashes of their values.
    The ingredients are canonical JSON (sorted keys, no spaces); the identity
    is the SHA-256 of a version prefix and that text.
    """
    head = _head(workflow, task, version)
    text = f'{{"inputs":{_hash_map(inputs)},"params":{_hash_map(params)},{head[1:]}'
    return codec.sha256_hex(b"reflow-identity\n" + text.encode("utf-8")), text


def identity_template(
    workflow: str,
    task: str,
    version: str,
    params: Mapping[str, str],
    fixed: Mapping[str, str],
    varying: Sequence[str],
) -> str:
    """The ingredients text of `compute_identity` with a `%s` for each varying input hash.

    `template % hashes`, with the hashes of the `varying` arguments in the
    order of `sorted(varying)`, is the text `compute_identity` returns for the
    merged inputs.
    """
    marker = "\x00"
    merged = dict(fixed)
    for arg in varying:
        merged[arg] = marker
    text = compute_identity(workflow, task, version, params, merged)[1]
    # names and versions are JSON-escaped in `text`, so a raw NUL can only be a marker
    if text.count(f'"{marker}"') != len(varying):  # pragma: no cover - args are identifiers
        raise ValueError("cannot build an identity template")
    return text.replace("%", "%%").replace(f'"{marker}"', '"%s"')


def template_maker(template: str) -> Callable[[tuple[str, ...]], tuple[str, str]]:
    """`compute_identity` for many instances of one task, from its `identity_template`.

    The returned function takes the hashes of the varying arguments, in the
    order of `sorted(varying)`, and returns what `compute_identity` would for
    the merged inputs: (identity, ingredients).
    """
    import hashlib  # many identities in one process: OpenSSL's SHA-256, the fastest

    prefix = b"reflow-identity\n"
    sha256 = hashlib.sha256

    def make(hashes: tuple[str, ...]) -> tuple[str, str]:
        t = template % hashes
        return sha256(prefix + t.encode("utf-8")).hexdigest(), t

    return make


def returns_paths(annotation: Any) -> bool:
    """True when a return annotation is, or may contain, a Path (so verify=True checks it)."""
    if annotation is Any or annotation is object:
        return True
    if isinstance(annotation, type) and issubclass(annotation, PurePath):
        return True
    return any(returns_paths(a) for a in typing.get_args(annotation))


def _missing_paths(value: Any, limit: int = 3) -> list[str]:
    missing: list[str] = []
    stack = [value]
    while stack and len(missing) < limit:
        v = stack.pop()
        if isinstance(v, PurePath):
            from pathlib import Path

            if not Path(v).exists():
                missing.append(str(v))
        elif isinstance(v, (list, tuple, set, frozenset)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
    return missing


def verify_output(
    value: Any, *, check_paths: bool, custom: Callable[[Any], bool] | None
) -> str | None:
    """Check a cached output before reuse; return why it is stale, or None if it is good."""
    if check_paths:
        missing = _missing_paths(value)
        if missing:
            return "cached output file no longer exists: " + ", ".join(missing)
    if custom is not None:
        try:
            ok = custom(value)
        except Exception as exc:
            return f"verify function raised {type(exc).__name__}: {exc}"
        if not ok:
            return "verify function rejected the cached output"
    return None
