"""Typed JSON: the one codec every parameter, output and result file goes through.

`encode` turns a Python value into a JSON tree; `decode` turns it back.  Types
JSON has no notation for travel as *tagged* values: a JSON object with exactly
one key starting with ``$``, e.g. ``{"$tuple": [1, 2]}`` or ``{"$path": "a/b"}``.
A dict whose keys are not all strings, or that has a string key starting with
``$``, is stored as ``{"$dict": [[key, value], ...]}``, so user keys never
collide with tags.

`dumps` / `loads` give the stored text (dict insertion order preserved).
`canonical_bytes` gives the form hashed for caching: sorted keys, sorted set
members and tagged-dict pairs, exact float text.  Equal values give equal
bytes and values of different types give different bytes, in any process on
any node.  `hash_value`, `hash_tree` and `hash_text` are SHA-256 of that form,
from a value, a tree, or `dumps` text.  `hash_parts` combines hashes.

Only exact types are accepted (no subclasses: an `IntEnum`, a `str` enum or a
numpy scalar raises `EncodeError`), and decoding only builds the types listed
in `SUPPORTED`: it never imports, evaluates, unpickles or executes anything.
Decoding accepts exactly the trees `encode` produces, so a tree that decodes
hashes the same as the value it decodes to.

Nesting depth is limited only by the `json` module, which stops near Python's
recursion limit (about 1000 JSON levels; a tuple, set or tagged dict takes two
or three).  Anything deeper raises `EncodeError` / `DecodeError`, never
`RecursionError`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeAlias

from reflow.errors import DecodeError, EncodeError

__all__ = [
    "SUPPORTED",
    "JSONValue",
    "canonical_bytes",
    "canonical_tree_bytes",
    "decode",
    "dumps",
    "encode",
    "hash_parts",
    "hash_text",
    "hash_tree",
    "hash_value",
    "loads",
    "sha256_hex",
]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None
"""A JSON tree as the `json` module reads and writes it."""

SUPPORTED = (
    "str, int, float, bool, None, list, tuple, dict, Path, datetime, date, time, "
    "UUID, Decimal, bytes, set"
)
"""The types reflow stores, as named in error messages."""

# The fast path (`_native`) recurses; values nested deeper than this take the
# iterative path instead, which is also what catches self-referencing lists.
_FAST_DEPTH = 48

_SCALARS: frozenset[type] = frozenset({str, int, bool, type(None)})
_CONTAINERS: frozenset[type] = frozenset({list, tuple, dict, set, frozenset})
# Tags whose members have no order of their own: the canonical form sorts them.
_UNORDERED_TAGS = frozenset({"$set", "$frozenset", "$dict"})
_UNORDERED_MARKS = ('{"$set":', '{"$frozenset":', '{"$dict":')


def _make_dump(sort_keys: bool) -> Callable[[object], str]:
    """Compact JSON writer; uses the C encoder directly when it is there.

    `json.JSONEncoder.encode` builds a new C encoder on every call, a third of
    the cost of encoding a small dict; one built here is reused.  No circular
    check: trees from `encode` are acyclic by construction.
    """
    encoder = json.JSONEncoder(
        ensure_ascii=False,
        allow_nan=False,
        check_circular=False,
        sort_keys=sort_keys,
        separators=(",", ":"),
    )
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return encoder.encode
    try:
        chunks_of = make(
            None, encoder.default, json.encoder.encode_basestring, None, ":", ",",
            sort_keys, False, False,
        )  # fmt: skip

        def dump(tree: object) -> str:
            return "".join(chunks_of(tree, 0))

        probe = {"b": [1, -0.0, 1e300, "\u00e9\n", None, True], "a": {}}
        if dump(probe) == encoder.encode(probe):
            return dump
    except Exception:  # an interpreter whose private C encoder differs
        pass
    return encoder.encode


_dump_text = _make_dump(sort_keys=False)
_dump_canonical = _make_dump(sort_keys=True)


_encode_str: Callable[[str], str] = json.encoder.encode_basestring  # what the encoder uses


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_parse_text = json.JSONDecoder(parse_constant=_reject_constant).decode

# A place in a value or tree, innermost last: (parent, kind, key) or None for
# the top.  Rendered only when something goes wrong.
_Node: TypeAlias = "tuple[_Node, str, Any] | None"


def _type_name(t: type) -> str:
    if t.__module__ == "builtins":
        return t.__qualname__
    return f"{t.__module__}.{t.__qualname__}"


def _short_repr(value: object) -> str:
    try:
        text = repr(value)
    except Exception:
        return f"<{_type_name(type(value))}>"
    return text if len(text) <= 60 else text[:57] + "..."


def _segment(kind: str, key: Any) -> str:
    if kind == "index":
        return f"[{key}]"
    if kind == "key":
        return f"[{_short_repr(key)}]"
    if kind == "dict key":
        return f"<key {_short_repr(key)}>"
    if kind == "member":
        return f"<member {_short_repr(key)}>"
    tag, index = key  # kind == "tag": an item inside a tagged value
    return f"[{tag!r}]" if index is None else f"[{tag!r}][{index}]"


def _where(node: _Node) -> str:
    segments: list[str] = []
    while node is not None:
        node, kind, key = node
        segments.append(_segment(kind, key))
    return "".join(reversed(segments)) or "the top level"


class _Fault(Exception):
    """Internal: a problem at `node`; the public functions turn it into their error."""

    def __init__(self, head: str, tail: str, node: _Node) -> None:
        super().__init__(head)
        self.head = head
        self.tail = tail
        self.node = node

    def render(self) -> str:
        return f"{self.head} at {_where(self.node)}{self.tail}"


# --------------------------------------------------------------------------- encode


def _native(value: Any, depth: int) -> bool:
    """Whether `value` is its own encoding: exact JSON-native types only."""
    t = type(value)
    if t is dict:
        if depth > _FAST_DEPTH:
            return False
        for key in value:
            if type(key) is not str or key[:1] == "$":
                return False
        items = value.values()
    elif t is list:
        if depth > _FAST_DEPTH:
            return False
        items = value
    elif t in _SCALARS:
        return True
    elif t is float:
        return bool(value - value == 0.0)  # false for nan and infinities
    else:
        return False
    depth += 1
    for item in items:
        t = type(item)
        if t in _SCALARS:
            continue
        if t is float:
            if item - item != 0.0:
                return False
        elif not _native(item, depth):
            return False
    return True


def _is_native(value: object) -> bool:
    try:
        return _native(value, 0)
    except RecursionError:  # the caller's stack is already deep: take the slow path
        return False


def _tag_str(tag: str) -> Callable[[Any], JSONValue]:
    def encode_leaf(value: Any) -> JSONValue:
        return {tag: str(value)}

    return encode_leaf


def _tag_iso(tag: str) -> Callable[[Any], JSONValue]:
    def encode_leaf(value: Any) -> JSONValue:
        return {tag: value.isoformat()}

    return encode_leaf


def _encode_bytes(value: Any) -> JSONValue:
    import base64

    return {"$bytes": base64.b64encode(value).decode("ascii")}


def _encode_float(value: float) -> JSONValue:
    if value - value == 0.0:
        return value
    if value != value:
        return {"$float": "nan"}
    return {"$float": "inf" if value > 0 else "-inf"}


_LEAF_ENCODERS: dict[type, Callable[[Any], JSONValue]] = {
    float: _encode_float,
    bytes: _encode_bytes,
}


def _register_paths() -> None:
    import pathlib

    _LEAF_ENCODERS[pathlib.PosixPath] = _tag_str("$path")
    _LEAF_ENCODERS[pathlib.WindowsPath] = _tag_str("$path")
    _LEAF_ENCODERS[pathlib.PurePosixPath] = _tag_str("$pureposixpath")
    _LEAF_ENCODERS[pathlib.PureWindowsPath] = _tag_str("$purewindowspath")


def _register_times() -> None:
    import datetime

    _LEAF_ENCODERS[datetime.datetime] = _tag_iso("$datetime")
    _LEAF_ENCODERS[datetime.date] = _tag_iso("$date")
    _LEAF_ENCODERS[datetime.time] = _tag_iso("$time")


def _register_numbers() -> None:
    import decimal
    import uuid

    _LEAF_ENCODERS[uuid.UUID] = _tag_str("$uuid")
    _LEAF_ENCODERS[decimal.Decimal] = _tag_str("$decimal")


# Leaf types register when a value of one is first met: their modules cost a job's
# start-up to import, and a value of a type can only exist once its module is loaded.
_REGISTER_BY_MODULE: dict[str, Callable[[], None]] = {
    "pathlib": _register_paths,
    "datetime": _register_times,
    "uuid": _register_numbers,
    "decimal": _register_numbers,
    "_decimal": _register_numbers,
    "_pydecimal": _register_numbers,
}


def _leaf_encoder(t: type) -> Callable[[Any], JSONValue] | None:
    """The encoder of a leaf type (None: not a type reflow stores)."""
    leaf = _LEAF_ENCODERS.get(t)
    if leaf is None:
        register = _REGISTER_BY_MODULE.get(t.__module__.partition(".")[0])
        if register is not None:
            register()
            leaf = _LEAF_ENCODERS.get(t)
    return leaf


def _copy_pushing(
    item: dict[str, Any], push: Callable[[tuple[Any, Any, Any, _Node]], None], node: _Node
) -> dict[str, Any]:
    """A copy of the str-keyed dict `item`; each value that is not a scalar is pushed to be
    worked into its slot of the copy (last first, so they pop in order)."""
    obj = dict(item)
    for key in reversed(obj):
        child = obj[key]
        if type(child) not in _SCALARS:
            push((child, obj, key, (node, "key", key)))
    return obj


def _encode_slow(value: object) -> JSONValue:
    """Encode any supported value, iteratively (no recursion limit) with checks.

    Each container is copied, its scalars kept in place and every other item
    pushed to be encoded into its slot.  A marker pushed before a container's
    items pops after all of them, so `active` holds exactly the containers on
    the path to the current item: meeting one again is a self-reference.
    """
    root: list[JSONValue] = [None]
    active: set[int] = set()
    stack: list[tuple[Any, Any, Any, _Node]] = [(value, root, 0, None)]
    push = stack.append
    pop = stack.pop
    while stack:
        item, target, slot, node = pop()
        if target is None:  # every item of container id(item) is done
            active.discard(item)
            continue
        t = type(item)
        if t not in _CONTAINERS:
            if t in _SCALARS:
                target[slot] = item
                continue
            leaf = _leaf_encoder(t)
            if leaf is None:
                raise _Fault(
                    f"cannot encode {_type_name(t)}",
                    f": reflow stores {SUPPORTED}; convert it first",
                    node,
                )
            target[slot] = leaf(item)
            continue
        ident = id(item)
        if ident in active:
            raise _Fault(
                f"cannot encode {_type_name(t)}",
                ": it contains itself; reflow stores trees, not self-referencing containers",
                node,
            )
        active.add(ident)
        push((ident, None, None, None))
        if t is list or t is tuple:
            items = list(item)
            target[slot] = items if t is list else {"$tuple": items}
            for index in range(len(items) - 1, -1, -1):
                child = items[index]
                if type(child) not in _SCALARS:
                    push((child, items, index, (node, "index", index)))
        elif t is dict:
            if all(type(key) is str and key[:1] != "$" for key in item):
                target[slot] = _copy_pushing(item, push, node)
            else:
                pairs = [[key, child] for key, child in item.items()]
                target[slot] = {"$dict": pairs}
                for pair in reversed(pairs):
                    key, child = pair
                    if type(child) not in _SCALARS:
                        push((child, pair, 1, (node, "key", key)))
                    if type(key) not in _SCALARS:
                        push((key, pair, 0, (node, "dict key", key)))
        else:  # set, frozenset
            members = list(item)
            target[slot] = {"$set" if t is set else "$frozenset": members}
            for index in range(len(members) - 1, -1, -1):
                child = members[index]
                if type(child) not in _SCALARS:
                    push((child, members, index, (node, "member", child)))
    return root[0]


def _encode_checked(value: object) -> JSONValue:
    try:
        return _encode_slow(value)
    except _Fault as fault:
        raise EncodeError(fault.render()) from None


def encode(value: object) -> JSONValue:
    """Turn `value` into a JSON tree, tagging types JSON cannot express.

    A value made only of exact JSON-native types (str, int, finite float, bool,
    None, list, dict with str keys not starting with ``$``) is its own encoding
    and is returned as is, sharing structure with the argument: copy it before
    mutating either.  Raises `EncodeError` naming the offending type and where
    it sits for anything else outside `SUPPORTED` (subclasses included), and
    for containers that contain themselves.
    """
    if _is_native(value):
        return value  # type: ignore[return-value]
    return _encode_checked(value)


# --------------------------------------------------------------------------- decode


def _bad(problem: str, node: _Node) -> _Fault:
    return _Fault("cannot decode typed JSON", f": {problem}", node)


def _json_kind(payload: object) -> str:
    t = type(payload)
    if t is dict:
        return "an object"
    if t is list:
        return "a list"
    if t is str:
        return "a string"
    if t is bool:
        return "a boolean"
    if t is int or t is float:
        return "a number"
    if payload is None:
        return "null"
    return _type_name(t)


def _text_leaf(
    tag: str, build: Callable[[str], object], show: Callable[[Any], str] = str
) -> Callable[[str], object]:
    """Decoder for a string-tagged leaf: accepts only the text `encode` writes."""

    def decode_leaf(text: str) -> object:
        try:
            value = build(text)
            exact = show(value) == text
        except (ValueError, ArithmeticError, TypeError):
            exact = False
        if not exact:
            raise ValueError(f"{tag} value {_short_repr(text)} is not in the form reflow writes")
        return value

    return decode_leaf


def _decode_float(text: str) -> object:
    if text not in ("nan", "inf", "-inf"):
        raise ValueError(f'$float is only for "nan", "inf" and "-inf", got {_short_repr(text)}')
    return float(text)


def _decode_bytes(text: str) -> object:
    import base64

    try:
        value = base64.b64decode(text, validate=True)
        exact = base64.b64encode(value).decode("ascii") == text
    except ValueError:
        exact = False
    if not exact:
        raise ValueError(f"$bytes value {_short_repr(text)} is not canonical base64")
    return value


def _lazy(module: str, name: str) -> Callable[[Any], Any]:
    """`module.name` (a dotted name inside the module), imported on the first call."""
    found: list[Callable[[Any], Any]] = []

    def call(arg: Any) -> Any:
        if not found:
            target: Any = __import__(module)
            for part in name.split("."):
                target = getattr(target, part)
            found.append(target)
        return found[0](arg)

    return call


_LEAF_DECODERS: dict[str, Callable[[str], object]] = {
    "$float": _decode_float,
    "$path": _text_leaf("$path", _lazy("pathlib", "Path")),
    "$pureposixpath": _text_leaf("$pureposixpath", _lazy("pathlib", "PurePosixPath")),
    "$purewindowspath": _text_leaf("$purewindowspath", _lazy("pathlib", "PureWindowsPath")),
    "$datetime": _text_leaf(
        "$datetime",
        _lazy("datetime", "datetime.fromisoformat"),
        _lazy("datetime", "datetime.isoformat"),
    ),
    "$date": _text_leaf(
        "$date", _lazy("datetime", "date.fromisoformat"), _lazy("datetime", "date.isoformat")
    ),
    "$time": _text_leaf(
        "$time", _lazy("datetime", "time.fromisoformat"), _lazy("datetime", "time.isoformat")
    ),
    "$uuid": _text_leaf("$uuid", _lazy("uuid", "UUID")),
    "$decimal": _text_leaf("$decimal", _lazy("decimal", "Decimal")),
    "$bytes": _decode_bytes,
}
_LIST_TAGS = frozenset({"$tuple", "$set", "$frozenset", "$dict"})


def _finish(tag: str, items: list[Any], node: _Node) -> object:
    """Build a tagged container once all its items are decoded."""
    if tag == "$tuple":
        return tuple(items)
    if tag == "$dict":
        try:
            result: dict[object, object] = dict(items)
        except (TypeError, ArithmeticError):
            raise _bad("$dict has a key that cannot be a dict key", node) from None
        if len(result) != len(items):
            raise _bad("$dict has equal keys", node)
        if all(type(key) is str and key[:1] != "$" for key in result):
            raise _bad(
                "$dict is only for dicts with a non-str key or a key starting with '$'", node
            )
        return result
    try:
        members = set(items) if tag == "$set" else frozenset(items)
    except (TypeError, ArithmeticError):
        raise _bad(f"{tag} has a member that cannot be in a set", node) from None
    if len(members) != len(items):
        raise _bad(f"{tag} has equal members", node)
    return members


def _decode_slow(tree: object) -> object:
    """Decode and check any tree, iteratively, like `_encode_slow`.

    A tagged container is built by a marker pushed before its items, so it
    pops after all of them are decoded into a list.
    """
    root: list[object] = [None]
    stack: list[tuple[Any, Any, Any, _Node]] = [(tree, root, 0, None)]
    push = stack.append
    pop = stack.pop
    while stack:
        item, target, slot, node = pop()
        if target is None:  # build a tagged container: item = (tag, items, target, slot)
            tag, items, target, slot = item
            target[slot] = _finish(tag, items, node)
            continue
        t = type(item)
        if t in _SCALARS:
            target[slot] = item
        elif t is float:
            if item - item != 0.0:
                raise _bad("a non-finite number (those are stored as $float tags)", node)
            target[slot] = item
        elif t is list:
            items = list(item)
            target[slot] = items
            for index in range(len(items) - 1, -1, -1):
                child = items[index]
                if type(child) not in _SCALARS:
                    push((child, items, index, (node, "index", index)))
        elif t is dict:
            if len(item) == 1:
                ((tag, payload),) = item.items()
                if type(tag) is str and tag[:1] == "$":
                    _push_tag(tag, payload, target, slot, node, push)
                    continue
            for key in item:
                if type(key) is not str:
                    raise _bad(f"object key {_short_repr(key)} is not a string", node)
                if key[:1] == "$":
                    raise _bad(f"key {key!r} starts with '$' but is not a lone type tag", node)
            target[slot] = _copy_pushing(item, push, node)
        else:
            raise _bad(f"{_type_name(t)} is not a JSON value", node)
    return root[0]


def _push_tag(
    tag: str,
    payload: object,
    target: Any,
    slot: Any,
    node: _Node,
    push: Callable[[tuple[Any, Any, Any, _Node]], None],
) -> None:
    leaf = _LEAF_DECODERS.get(tag)
    if leaf is not None:
        if type(payload) is not str:
            raise _bad(f"{tag} expects a string, got {_json_kind(payload)}", node)
        try:
            target[slot] = leaf(payload)
        except ValueError as exc:
            raise _bad(str(exc), node) from None
        return
    if tag not in _LIST_TAGS:
        raise _bad(f"unknown type tag {_short_repr(tag)}", node)
    if type(payload) is not list:
        raise _bad(f"{tag} expects a list, got {_json_kind(payload)}", node)
    items: list[Any] = list(payload)
    target[slot] = None  # replaced by the marker once the items are decoded
    push(((tag, items, target, slot), None, None, node))
    if tag == "$dict":
        for index in range(len(items) - 1, -1, -1):
            pair = items[index]
            where = (node, "tag", (tag, index))
            if type(pair) is not list or len(pair) != 2:
                raise _bad("$dict expects [key, value] pairs", where)
            items[index] = pair = list(pair)
            push((pair[1], pair, 1, (where, "index", 1)))
            push((pair[0], pair, 0, (where, "index", 0)))
        return
    for index in range(len(items) - 1, -1, -1):
        push((items[index], items, index, (node, "tag", (tag, index))))


def decode(tree: JSONValue) -> object:
    """Turn a JSON tree made by `encode` back into the value.

    Raises `DecodeError` naming the problem and where it sits for a malformed
    tree, an unknown type tag, or a tagged value not in the form `encode`
    writes.  A tree without tags is returned as is (sharing structure).
    """
    if _is_native(tree):
        return tree
    try:
        return _decode_slow(tree)
    except _Fault as fault:
        raise DecodeError(fault.render()) from None


# --------------------------------------------------------------------------- text


def _parse(text: str) -> JSONValue:
    try:
        return _parse_text(text)  # type: ignore[no-any-return]
    except RecursionError:
        raise DecodeError("invalid JSON: nested too deeply for Python's json module") from None
    except ValueError as exc:
        raise DecodeError(f"invalid JSON: {exc}") from None


def dumps(value: object) -> str:
    """The stored text of `value`: compact JSON of `encode(value)`, key order kept."""
    tree = encode(value)
    try:
        return _dump_text(tree)
    except RecursionError:
        raise EncodeError(
            "cannot encode a value nested this deeply (Python's json module stops near "
            "its recursion limit); flatten it first"
        ) from None
    except ValueError as exc:  # e.g. an int longer than Python will print
        raise EncodeError(f"cannot encode this value as JSON: {exc}") from None


def _scalar_text(value: Any) -> str | None:
    """The stored (and canonical) text of a str, int, finite float, bool or None; else None."""
    t = type(value)
    if t is str:
        return _encode_str(value)
    if t is int:
        try:
            return int.__repr__(value)
        except ValueError:  # longer than Python will print: the slow path says so
            return None
    if t is float:
        return float.__repr__(value) if value - value == 0.0 else None
    if t is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None


def dumps_hashed(value: object) -> tuple[str, str]:
    """`(dumps(value), hash_value(value))`, encoding the value only once."""
    text = _scalar_text(value)
    if text is not None:  # the common case of tiny outputs: no tree, nothing to sort
        return text, sha256_hex(text.encode("utf-8", "surrogatepass"))
    tree = encode(value)
    try:
        text = _dump_text(tree)
    except RecursionError:
        raise EncodeError(
            "cannot encode a value nested this deeply (Python's json module stops near "
            "its recursion limit); flatten it first"
        ) from None
    except ValueError as exc:
        raise EncodeError(f"cannot encode this value as JSON: {exc}") from None
    if "{" not in text:  # no objects: nothing to sort, the stored text is canonical
        return text, sha256_hex(_utf8(text))
    return text, sha256_hex(_utf8(_canonical_text(tree, EncodeError)))


def loads(text: str) -> object:
    """The inverse of `dumps`; invalid JSON or typed JSON raises `DecodeError`."""
    return decode(_parse(text))


# --------------------------------------------------------------------------- canonical


def _canon(tree: object) -> object:
    """A copy of `tree` with set members and tagged-dict pairs in canonical order.

    Iterative like `_encode_slow`; a list to sort is pushed before its items,
    so it is sorted (by each member's own canonical text) after they are done.
    """
    root: list[object] = [None]
    stack: list[tuple[Any, Any, Any]] = [(tree, root, 0)]
    push = stack.append
    pop = stack.pop
    while stack:
        item, target, slot = pop()
        if target is None:
            item.sort(key=_dump_canonical)
            continue
        t = type(item)
        if t is list:
            items = list(item)
        elif t is dict:
            if len(item) == 1:
                ((tag, payload),) = item.items()
                if tag in _UNORDERED_TAGS:
                    if type(payload) is not list:
                        raise DecodeError(f"cannot hash typed JSON: {tag} expects a list")
                    items = list(payload)
                    target[slot] = {tag: items}
                    push((items, None, None))
                    for index, child in enumerate(items):
                        push((child, items, index))
                    continue
            obj = dict(item)
            target[slot] = obj
            for key, child in obj.items():
                if type(child) is list or type(child) is dict:
                    push((child, obj, key))
            continue
        else:
            target[slot] = item
            continue
        target[slot] = items
        for index, child in enumerate(items):
            if type(child) is list or type(child) is dict:
                push((child, items, index))
    return root[0]


def _canonical_text(tree: object, error: type[Exception]) -> str:
    try:
        text = _dump_canonical(tree)
        if any(mark in text for mark in _UNORDERED_MARKS):
            text = _dump_canonical(_canon(tree))
    except DecodeError:
        raise
    except RecursionError:
        raise error(
            "cannot hash a value nested this deeply (Python's json module stops near "
            "its recursion limit)"
        ) from None
    except (TypeError, ValueError) as exc:
        raise error(f"cannot hash this value: {exc}") from None
    return text


def _utf8(text: str) -> bytes:
    # surrogatepass: a str holding a lone surrogate (e.g. a path from a
    # non-UTF-8 file name) still has one well-defined encoding.
    return text.encode("utf-8", "surrogatepass")


def canonical_bytes(value: object) -> bytes:
    """The canonical form of `value`, the bytes hashed for caching.

    UTF-8 JSON of the encoding with sorted keys, no spaces, set members and
    tagged-dict pairs sorted by their own canonical text, floats as Python's
    shortest round-trip repr.
    """
    if _is_native(value):  # no tags, so nothing to sort but keys
        try:
            return _utf8(_dump_canonical(value))
        except (RecursionError, ValueError) as exc:
            raise EncodeError(f"cannot hash this value: {exc}") from None
    return _utf8(_canonical_text(_encode_checked(value), EncodeError))


def canonical_tree_bytes(tree: JSONValue) -> bytes:
    """The canonical form of an encoded tree; equals `canonical_bytes(decode(tree))`.

    The tree is assumed to come from `encode` or `loads`; it is not otherwise
    validated (use `decode` for that).
    """
    return _utf8(_canonical_text(tree, DecodeError))


def _builtin_sha256() -> Callable[[bytes], Any] | None:
    # CPython's own SHA-256 (`_sha2` from 3.12, `_sha256` before): importing hashlib
    # loads OpenSSL, a few ms of every job's start-up, for the same digest
    for module in ("_sha2", "_sha256") if sys.version_info >= (3, 12) else ("_sha256",):
        try:
            return __import__(module).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    return None


_SMALL_SHA256 = _builtin_sha256()
# CPython's own SHA-256 is slower than OpenSSL's (0.6 us more a call, 5 ns more a
# byte, here), and hashlib's import costs about 3 ms: a process hashes with it
# until it would have lost that much (a job storing its output never gets
# there; an engine hashing thousands of values soon switches), or when hashlib
# is loaded anyway.
_builtin_budget = 600_000  # bytes, charging 128 a call


def sha256_hex(data: bytes) -> str:
    """The SHA-256 hex digest of `data` (the same digest whichever implementation makes it)."""
    global _builtin_budget
    if _SMALL_SHA256 is not None and "hashlib" not in sys.modules:
        cost = len(data) + 128
        if cost < _builtin_budget:
            _builtin_budget -= cost
            return str(_SMALL_SHA256(data).hexdigest())
    import hashlib

    return hashlib.sha256(data).hexdigest()


def hash_value(value: object) -> str:
    """Full SHA-256 hex of `canonical_bytes(value)`."""
    return sha256_hex(canonical_bytes(value))


def hash_tree(tree: JSONValue) -> str:
    """Full SHA-256 hex of `canonical_tree_bytes(tree)`; equals `hash_value(decode(tree))`."""
    text = _scalar_text(tree)
    if text is not None:
        return sha256_hex(_utf8(text))
    return sha256_hex(canonical_tree_bytes(tree))


def hash_text(text: str) -> str:
    """Hash of `dumps` text without decoding it; equals `hash_value(loads(text))`."""
    return sha256_hex(canonical_tree_bytes(_parse(text)))


def hash_parts(kind: str, parts: Sequence[str]) -> str:
    """Combine already-computed hashes (or other strings) into one hash.

    SHA-256 of the canonical JSON ``{"$parts": [kind, [part, ...]]}``.  The
    ``$parts`` wrapper is a tag `encode` never writes, so a combined hash can
    never equal the hash of a stored value.  The order of `parts` matters.
    """
    if type(kind) is not str or isinstance(parts, str):
        raise TypeError("hash_parts(kind, parts) takes a str and a sequence of str")
    items: list[JSONValue] = list(parts)
    if not all(type(part) is str for part in items):
        raise TypeError("hash_parts(kind, parts): every part must be a str")
    tree: JSONValue = {"$parts": [kind, items]}
    return sha256_hex(_utf8(_dump_canonical(tree)))
