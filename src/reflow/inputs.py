"""Assembling a task instance's Result arguments: the values and the hashes that identify them.

The engine (from the store and memory) and a worker resolving its own inputs
(from result files) both go through these functions, so an instance's
identity is computed the same way wherever it is computed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from . import codec
from .codec import hash_parts
from .wiring import Input, Part, Source

__all__ = [
    "Feed", "InputError", "Upstream", "one_item", "per_item", "source_whole_hash", "whole",
]  # fmt: skip


class InputError(Exception):
    """An upstream value cannot feed this task (not a list, lengths differ, no elements)."""


class Upstream(Protocol):
    """Read access to the outputs of upstream instances."""

    def elements(self, task: str) -> list[int]:
        """The element indices of an array task (InputError for a singleton)."""

    def output_hash(self, task: str, index: int) -> str:
        """The output hash of one upstream instance."""

    def text(self, task: str, index: int) -> str:
        """The stored (typed JSON) output of one upstream instance."""

    def value(self, task: str, index: int) -> Any:
        """The decoded output of one upstream instance."""


class Feed:
    """Per-element hashes and a value getter for a list of items."""

    __slots__ = ("hashes", "value")

    def __init__(self, hashes: list[str], value: Callable[[int], Any]) -> None:
        self.hashes, self.value = hashes, value


def source_items(up: Upstream, src: Source) -> Feed:
    """The items one source contributes to a list."""
    if src.part is Part.ELEMENTS:
        idx = up.elements(src.step)
        return Feed(
            [up.output_hash(src.step, i) for i in idx], lambda j: up.value(src.step, idx[j])
        )
    if src.part is Part.ITEM:
        return Feed(
            [hash_parts("item", [up.output_hash(src.step, -1)])],
            lambda j: up.value(src.step, -1),
        )
    tree = json.loads(up.text(src.step, -1))
    if isinstance(tree, dict) and set(tree) == {"$tuple"}:
        tree = tree["$tuple"]
    if not isinstance(tree, list):
        raise InputError(
            f"'{src.step}' returned {type(codec.decode(tree)).__name__}, not a list, so "
            "there is nothing to fan out over"
        )
    items = tree
    return Feed([codec.hash_tree(x) for x in items], lambda j: codec.decode(items[j]))


def source_whole_hash(up: Upstream, src: Source) -> str:
    """The hash of everything one source contributes."""
    if src.part is Part.ELEMENTS:
        return hash_parts("gather", [up.output_hash(src.step, i) for i in up.elements(src.step)])
    if src.part is Part.ITEM:
        return hash_parts("item", [up.output_hash(src.step, -1)])
    return up.output_hash(src.step, -1)


def whole(up: Upstream, inp: Input) -> tuple[str, Callable[[], Any]]:
    """The hash and value getter of an argument that receives one whole value."""
    if not inp.concat:
        src = inp.sources[0]
        if src.part is Part.VALUE:
            return source_whole_hash(up, src), lambda: up.value(src.step, -1)
        idx = up.elements(src.step)
        return source_whole_hash(up, src), lambda: [up.value(src.step, i) for i in idx]
    h = hash_parts("concat", [source_whole_hash(up, s) for s in inp.sources])
    feeds = [source_items(up, s) for s in inp.sources]
    return h, lambda: [f.value(j) for f in feeds for j in range(len(f.hashes))]


def one_item(up: Upstream, inp: Input, k: int) -> tuple[str, Callable[[], Any]]:
    """The hash and value getter of item `k` of a fan-out or chain argument.

    The same as `per_item(up, inp)` at `k`, without reading every other item
    when the argument chains one array element by element (an instance
    submitted ahead reads its own upstream element, not all of them).
    """
    if len(inp.sources) == 1 and inp.sources[0].part is Part.ELEMENTS:
        step = inp.sources[0].step
        idx = up.elements(step)
        return up.output_hash(step, idx[k]), lambda: up.value(step, idx[k])
    feed = per_item(up, inp)
    return feed.hashes[k], lambda: feed.value(k)


def per_item(up: Upstream, inp: Input) -> Feed:
    """Per-element hashes and values of a fan-out or chain argument."""
    feeds = [source_items(up, s) for s in inp.sources]
    if len(feeds) == 1:
        return feeds[0]
    spans: list[tuple[Feed, int]] = [(f, j) for f in feeds for j in range(len(f.hashes))]
    return Feed([f.hashes[j] for f, j in spans], lambda k: spans[k][0].value(spans[k][1]))
