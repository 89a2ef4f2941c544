"""Tests for reflow.codec: round trips, canonical form, hashes and errors."""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import enum
import json
import math
import pathlib
import uuid
from collections import OrderedDict, namedtuple
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflow import codec
from reflow.codec import (
    canonical_bytes,
    canonical_tree_bytes,
    decode,
    dumps,
    encode,
    hash_parts,
    hash_text,
    hash_tree,
    hash_value,
    loads,
)
from reflow.errors import DecodeError, EncodeError


class Color(enum.IntEnum):
    RED = 1


class Mode(str, enum.Enum):
    FAST = "fast"


class Score(float):
    pass


Point = namedtuple("Point", "x y")


def same(a: Any, b: Any) -> bool:
    """Equal with exact types throughout; nan equals nan, -0.0 differs from 0.0."""
    if type(a) is not type(b):
        return False
    if type(a) is float:
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b)
    if type(a) in (decimal.Decimal, dt.datetime, dt.time):
        return str(a) == str(b)  # exact digits / utc offset
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if type(a) is dict:  # insertion order is kept
        return len(a) == len(b) and all(
            same(ka, kb) and same(a[ka], b[kb]) for ka, kb in zip(a, b, strict=True)
        )
    if type(a) in (set, frozenset):
        return len(a) == len(b) and all(any(same(x, y) for y in b) for x in a)
    return bool(a == b)


def round_trip(value: Any) -> Any:
    text = dumps(value)
    back = loads(text)
    assert same(back, value), (value, text, back)
    assert same(decode(encode(value)), value)
    assert json.loads(text) == json.loads(json.dumps(encode(value)))
    digest = hash_value(value)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert hash_tree(encode(value)) == digest
    assert hash_text(text) == digest
    assert hash_value(back) == digest
    return back


UTC5 = dt.timezone(dt.timedelta(hours=5, minutes=30))
SAMPLES: list[Any] = [
    None,
    True,
    False,
    0,
    -7,
    2**100,
    1.5,
    -0.0,
    0.1,
    1e300,
    float("nan"),
    float("inf"),
    float("-inf"),
    "",
    "héllo ☃ \u2028 \x00",
    "$tuple",
    [],
    [1, [2, [3]]],
    (),
    (1,),
    ((1, 2), [3, (4,)]),
    {},
    {"a": 1, "b": [1.5, None]},
    {"b": 1, "a": 2},
    {1: "one", 2.5: "x", None: 0, False: "f", (1, "a"): "tuple key"},
    {"$tuple": [1, 2]},
    {"$": 1, "plain": 2},
    {"$dict": [["a", 1]]},
    pathlib.Path("/data/run 1/x.txt"),
    pathlib.Path("relative/dir"),
    pathlib.PurePosixPath("pure/posix"),
    pathlib.PureWindowsPath("C:\\Users\\x"),
    dt.datetime(2024, 2, 29, 13, 45, 7, 123456),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 1, 1, 8, tzinfo=UTC5),
    dt.date(1999, 12, 31),
    dt.time(23, 59, 59, 999999),
    dt.time(1, 2, tzinfo=UTC5),
    uuid.UUID("12345678-1234-5678-1234-567812345678"),
    decimal.Decimal("1.10"),
    decimal.Decimal("-0"),
    decimal.Decimal("1E+3"),
    decimal.Decimal("Infinity"),
    decimal.Decimal("NaN"),
    b"",
    b"\x00\xffbinary",
    set(),
    {1, "a", (2, 3)},
    frozenset(),
    frozenset({frozenset({1}), "x"}),
    {frozenset({1, 2}): {"nested": [(pathlib.Path("p"), {b"k"})]}},
    [{"$float": "nan"}, {"$path": "x"}],
]


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip(value: Any) -> None:
    round_trip(value)


def test_round_trip_all_nested() -> None:
    round_trip(SAMPLES)
    round_trip(tuple(SAMPLES))
    round_trip({f"k{i}": v for i, v in enumerate(SAMPLES)})


def test_decoded_types() -> None:
    assert type(loads(dumps(pathlib.Path("a")))) is type(pathlib.Path("a"))
    assert isinstance(loads(dumps(pathlib.Path("a"))), pathlib.Path)
    assert type(loads(dumps(pathlib.PurePosixPath("a")))) is pathlib.PurePosixPath
    assert type(loads(dumps(pathlib.PureWindowsPath("a")))) is pathlib.PureWindowsPath
    assert type(loads(dumps({1}))) is set
    assert type(loads(dumps(frozenset({1})))) is frozenset
    assert type(loads(dumps(dt.datetime(2020, 1, 1)))) is dt.datetime
    assert type(loads(dumps(dt.date(2020, 1, 1)))) is dt.date


def test_stored_text_shape() -> None:
    assert dumps({"b": 1, "a": [1, "é"]}) == '{"b":1,"a":[1,"é"]}'
    assert dumps((1, 2)) == '{"$tuple":[1,2]}'
    assert dumps(pathlib.Path("a/b")) == '{"$path":"a/b"}'
    assert dumps(float("nan")) == '{"$float":"nan"}'
    assert dumps({1: 2}) == '{"$dict":[[1,2]]}'
    assert dumps({"$x": 1}) == '{"$dict":[["$x",1]]}'
    assert dumps(b"hi") == '{"$bytes":"aGk="}'
    assert dumps(dt.date(2020, 1, 2)) == '{"$date":"2020-01-02"}'
    assert list(loads(dumps({"b": 1, "a": 2, "c": 3}))) == ["b", "a", "c"]
    assert list(loads(dumps({3: 0, 1: 0, 2: 0}))) == [3, 1, 2]


def test_encode_native_fast_path_is_plain_json() -> None:
    value = {"a": [1, 2.5, "x", None, True, {"b": []}]}
    assert encode(value) == value
    assert json.loads(json.dumps(encode(value))) == value


def test_user_dollar_keys_round_trip() -> None:
    for value in [
        {"$tuple": [1, 2]},
        {"$path": "x"},
        {"$": None},
        {"$set": [1], "other": 2},
        [{"$float": "nan"}],
        {"a": {"$dict": [[1, 2]]}},
    ]:
        back = round_trip(value)
        assert type(back) is type(value)
    assert hash_value({"$float": "nan"}) != hash_value(float("nan"))
    assert hash_value({"$path": "x"}) != hash_value(pathlib.Path("x"))


# --------------------------------------------------------------------------- canonical


def test_canonical_ignores_insertion_order() -> None:
    assert canonical_bytes({"a": 1, "b": 2}) == canonical_bytes({"b": 2, "a": 1})
    assert canonical_bytes({1: "a", 2: "b"}) == canonical_bytes({2: "b", 1: "a"})
    assert canonical_bytes({"$x": 1, "$y": 2}) == canonical_bytes({"$y": 2, "$x": 1})
    one = {(1, 2): {"z": 1, "a": 2}, "k": {3, 1, 2}}
    two = {"k": {2, 3, 1}, (1, 2): {"a": 2, "z": 1}}
    assert canonical_bytes(one) == canonical_bytes(two)
    assert hash_value(one) == hash_value(two)
    assert canonical_bytes({"b": 1, "a": 2}) == b'{"a":2,"b":1}'


def test_canonical_sets_independent_of_iteration_order() -> None:
    words = [f"w{i}" for i in range(200)]
    forward, backward = set(words), set(reversed(words))
    small = set(words[:3])  # same members, different table history
    small.update(words)
    assert canonical_bytes(forward) == canonical_bytes(backward) == canonical_bytes(small)
    nested_a = frozenset({frozenset({1, 2}), frozenset({"a", "b"})})
    nested_b = frozenset({frozenset({"b", "a"}), frozenset({2, 1})})
    assert canonical_bytes(nested_a) == canonical_bytes(nested_b)
    # canonical_tree_bytes sorts members whatever order the stored text has
    assert canonical_tree_bytes({"$set": [2, 1]}) == canonical_tree_bytes({"$set": [1, 2]})
    assert hash_text('{"$dict":[[2,"b"],[1,"a"]]}') == hash_value({1: "a", 2: "b"})


@pytest.mark.parametrize(
    "values",
    [
        [1, 1.0, True, "1", decimal.Decimal("1"), [1], (1,), {1}, frozenset({1})],
        [0, 0.0, -0.0, False, None, "", [], (), {}, set(), b""],
        ["a", pathlib.Path("a"), pathlib.PurePosixPath("a"), b"a", ["a"]],
        [decimal.Decimal("1.0"), decimal.Decimal("1.00"), 1.0],
        [{"a": 1}, {"a": 1.0}, {"a": True}, [("a", 1)], {"$dict": [["a", 1]]}],
        [dt.date(2020, 1, 1), dt.datetime(2020, 1, 1), "2020-01-01"],
        [
            dt.datetime(2020, 1, 1, 12, tzinfo=dt.timezone.utc),
            dt.datetime(2020, 1, 1, 12),
            dt.datetime(2020, 1, 1, 17, 30, tzinfo=UTC5),
        ],
        [float("nan"), float("inf"), float("-inf"), "nan", {"$float": "nan"}],
        [[1, 2], [2, 1], (1, 2), {1: 2}, {1, 2}],
    ],
)
def test_canonical_distinguishes_types(values: list[Any]) -> None:
    forms = [canonical_bytes(v) for v in values]
    assert len(set(forms)) == len(forms), forms
    assert len({hash_value(v) for v in values}) == len(values)


def test_canonical_float_text() -> None:
    assert canonical_bytes(0.1) == b"0.1"
    assert canonical_bytes(-0.0) == b"-0.0"
    assert canonical_bytes(1e16) == b"1e+16"
    assert canonical_bytes(2**60) == b"1152921504606846976"
    assert canonical_bytes([0.1 + 0.2]) == b"[0.30000000000000004]"


def test_canonical_is_utf8_and_handles_lone_surrogates() -> None:
    assert canonical_bytes("é☃") == '"é☃"'.encode()
    assert hash_value("\ud800") != hash_value("\udc00")
    assert hash_text(dumps(pathlib.Path("bad\udcff"))) == hash_value(pathlib.Path("bad\udcff"))


def test_hash_functions_agree() -> None:
    value = {"p": pathlib.Path("x"), "s": {3, 1}, "d": {2: "b", 1: "a"}, "f": float("nan")}
    text = dumps(value)
    assert hash_value(value) == hash_tree(encode(value)) == hash_text(text)
    assert hash_text(text) == hash_text(json.dumps(json.loads(text), indent=2))


def test_hash_parts() -> None:
    a, b = hash_value(1), hash_value(2)
    assert hash_parts("gather", [a, b]) == hash_parts("gather", (a, b))
    assert hash_parts("gather", [a, b]) != hash_parts("gather", [b, a])
    assert hash_parts("gather", [a]) != hash_parts("identity", [a])
    assert hash_parts("gather", []) != hash_parts("gather", [""])
    assert len(hash_parts("x", [a])) == 64
    assert hash_parts("gather", [a, b]) != hash_value(["gather", [a, b]])
    with pytest.raises(TypeError):
        hash_parts("gather", "abc")
    with pytest.raises(TypeError):
        hash_parts("gather", [1])  # type: ignore[list-item]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("value", "type_name", "where"),
    [
        ([0, 1, 2, {"x": Color.RED}], "test_codec.Color", "at [3]['x']"),
        ({"m": Mode.FAST}, "test_codec.Mode", "at ['m']"),
        ((1, Score(2.0)), "test_codec.Score", "at [1]"),
        (Point(1, 2), "test_codec.Point", "at the top level"),
        (OrderedDict(a=1), "collections.OrderedDict", "at the top level"),
        ({"a": [bytearray(b"x")]}, "bytearray", "at ['a'][0]"),
        ({"a": {Color.RED: 1}}, "test_codec.Color", "at ['a']<key"),
        ({(1, 2): [object()]}, "object", "at [(1, 2)][0]"),
        ({"s": {(1, Color.RED)}}, "test_codec.Color", "at ['s']<member (1, <Color.RED: 1>)>[1]"),
        (dt.timedelta(1), "datetime.timedelta", "at the top level"),
        ([1.5, complex(1, 2)], "complex", "at [1]"),
    ],
)
def test_encode_error_names_type_and_place(value: Any, type_name: str, where: str) -> None:
    for call in (encode, dumps, canonical_bytes, hash_value):
        with pytest.raises(EncodeError) as info:
            call(value)
        message = str(info.value)
        assert message.startswith(f"cannot encode {type_name} at "), message
        assert where in message, message
        assert "convert it first" in message


def test_numpy_like_scalar_message() -> None:
    fake = type("float64", (float,), {"__module__": "numpy"})
    with pytest.raises(EncodeError, match=r"cannot encode numpy\.float64 at \[3\]\['x'\]: reflow"):
        encode([1, 2, 3, {"x": fake(1.0)}])


def test_encode_error_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode(object())


def test_self_reference_refused() -> None:
    items: list[Any] = [1]
    items.append(items)
    mapping: dict[str, Any] = {"a": 1}
    mapping["self"] = {"again": mapping}
    via_tuple: list[Any] = []
    via_tuple.append((via_tuple,))
    via_key: dict[Any, Any] = {1: []}
    via_key[1].append(via_key)
    for value, where in [
        (items, "at [1]"),
        (mapping, "at ['self']['again']"),
        (via_tuple, "at [0][0]"),
        (via_key, "at [1][0]"),
        ([[{"deep": items}]], "at [0][0]['deep'][1]"),
    ]:
        for call in (encode, dumps, hash_value):
            with pytest.raises(EncodeError, match="contains itself") as info:
                call(value)
            assert where in str(info.value)


def test_shared_references_are_fine() -> None:
    shared = [1, (2,)]
    assert same(loads(dumps([shared, shared, {"x": shared}])), [shared, shared, {"x": shared}])


def _nest(depth: int, wrap: Any, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = wrap(value)
    return value


@pytest.mark.parametrize(
    ("depth", "wrap"),
    [
        (500, lambda x: [x]),
        (500, lambda x: {"k": x}),
        (300, lambda x: (x,)),
        (300, lambda x: [x, (1,)]),
    ],
)
def test_deep_nesting(depth: int, wrap: Any) -> None:
    for leaf in (1, pathlib.Path("bottom")):
        value = _nest(depth, wrap, leaf)
        text = dumps(value)
        back = loads(text)
        assert back == value  # == recurses in C; `same` would hit the recursion limit
        assert json.dumps(encode(value)) == json.dumps(encode(back))
        for _ in range(depth):
            assert type(back) is type(value)
            back, value = _first(back), _first(value)
        assert type(back) is type(leaf)
        assert hash_value(back) == hash_value(leaf)
        assert hash_text(text) == hash_value(_nest(depth, wrap, leaf))


def _first(container: Any) -> Any:
    return container["k"] if type(container) is dict else container[0]


def test_too_deep_is_an_error_not_a_crash() -> None:
    value = _nest(20_000, lambda x: [x], (1,))
    with pytest.raises(EncodeError, match="nested"):
        dumps(value)
    with pytest.raises(EncodeError, match="nested"):
        hash_value(value)
    with pytest.raises(DecodeError, match="nested"):
        loads("[" * 20_000 + "]" * 20_000)
    with pytest.raises(DecodeError, match="nested"):
        hash_text('{"$tuple":' * 20_000 + "[]" + "}" * 20_000)


def test_huge_int_is_an_error_or_round_trips() -> None:
    big = 10**5000
    try:
        text = dumps(big)
    except EncodeError:
        return
    with contextlib.suppress(DecodeError):  # a reader may refuse what a writer wrote
        assert loads(text) == big


@pytest.mark.parametrize(
    ("tree", "problem"),
    [
        ({"$nope": 1}, "unknown type tag '$nope'"),
        ({"$pickle": "gASVAA=="}, "unknown type tag"),
        ({"$": 1}, "unknown type tag"),
        ({"$tuple": 1}, "$tuple expects a list"),
        ({"$set": "ab"}, "$set expects a list"),
        ({"$path": 3}, "$path expects a string"),
        ({"$float": "1.5"}, "$float is only for"),
        ({"$float": None}, "$float expects a string"),
        ({"$dict": [[1]]}, "pairs"),
        ({"$dict": [1, 2]}, "pairs"),
        ({"$dict": [["a", 1]]}, "only for dicts with a non-str key"),
        ({"$dict": [[1, 2], [1, 3]]}, "equal keys"),
        ({"$dict": [[[1], 2]]}, "cannot be a dict key"),
        ({"$set": [[1]]}, "cannot be in a set"),
        ({"$set": [1, 1.0]}, "equal members"),
        ({"$frozenset": [{"$set": []}]}, "cannot be in a set"),
        ({"$datetime": "yesterday"}, "$datetime value"),
        ({"$datetime": "2020-01-01 10:00"}, "not in the form"),
        ({"$date": "20200101"}, "$date value"),
        ({"$time": "25:00"}, "$time value"),
        ({"$uuid": "not-a-uuid"}, "$uuid value"),
        ({"$uuid": "12345678123456781234567812345678"}, "$uuid value"),
        ({"$decimal": "one"}, "$decimal value"),
        ({"$decimal": "1.0e2"}, "$decimal value"),
        ({"$bytes": "!!!"}, "$bytes value"),
        ({"$bytes": "QR=="}, "not canonical"),
        ({"$path": ""}, "$path value"),
        ({"$path": "a//b"}, "$path value"),
        ({"$tuple": [1], "x": 2}, "not a lone type tag"),
        ({"a": 1, "$b": 2}, "not a lone type tag"),
        ([1, float("inf")], "non-finite"),
        ([1, float("nan")], "non-finite"),
        ((1, 2), "tuple is not a JSON value"),
        ([pathlib.Path("x")], "is not a JSON value"),
        ({1: 2}, "is not a string"),
    ],
)
def test_decode_errors(tree: Any, problem: str) -> None:
    with pytest.raises(DecodeError) as info:
        decode(tree)
    assert problem in str(info.value)


def test_decode_error_location() -> None:
    with pytest.raises(DecodeError, match=r"at \[1\]\['a'\]\['\$tuple'\]\[0\]: unknown type tag"):
        decode([0, {"a": {"$tuple": [{"$bad": 1}]}}])
    with pytest.raises(DecodeError, match=r"at \['\$dict'\]\[0\]\[1\]: unknown"):
        decode({"$dict": [[1, {"$bad": 0}]]})


@pytest.mark.parametrize(
    "text", ["", "{", "[1,]", "NaN", "[Infinity]", "-Infinity", "{'a': 1}", "1 2", "\x00"]
)
def test_loads_invalid_json(text: str) -> None:
    with pytest.raises(DecodeError, match="invalid JSON"):
        loads(text)
    with pytest.raises(DecodeError):
        hash_text(text)


def test_loads_big_exponent_is_not_infinity() -> None:
    with pytest.raises(DecodeError, match="non-finite"):
        loads("[1e400]")


# --------------------------------------------------------------------------- properties

TAGS = [
    "$tuple",
    "$set",
    "$frozenset",
    "$dict",
    "$float",
    "$path",
    "$pureposixpath",
    "$purewindowspath",
    "$datetime",
    "$date",
    "$time",
    "$uuid",
    "$decimal",
    "$bytes",
    "$",
    "$x",
]
tag_texts = st.sampled_from(
    [
        "nan",
        "inf",
        "-inf",
        "1.5",
        "a/b",
        ".",
        "",
        "C:\\x",
        "2020-01-01",
        "2020-01-01T10:00:00",
        "2020-01-01T10:00:00+01:00",
        "10:00:00",
        "12345678-1234-5678-1234-567812345678",
        "1.10",
        "NaN",
        "sNaN",
        "-0",
        "aGk=",
        "QR==",
    ]
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
    | tag_texts
)
json_trees = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=3) | st.sampled_from(TAGS), inner, max_size=3)
        | st.builds(lambda tag, payload: {tag: payload}, st.sampled_from(TAGS), inner)
        | st.builds(
            lambda pairs: {"$dict": pairs}, st.lists(st.lists(inner, min_size=2, max_size=2))
        )
    ),
    max_leaves=20,
)
hostile_texts = (
    st.builds(json.dumps, json_trees)
    | st.text(alphabet='[]{}",:0123456789.eE+-$ntrufalsN\\', max_size=40)
    | st.text(max_size=20)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile_texts)
def test_hostile_json_decodes_or_raises_decode_error(text: str) -> None:
    try:
        value = loads(text)
    except DecodeError:
        with pytest.raises(DecodeError):
            decode(_try_parse(text))
        return
    # Whatever decodes is exactly what encode writes, so hashes agree.
    assert hash_text(text) == hash_value(value)
    assert hash_text(dumps(value)) == hash_value(value)


def _try_parse(text: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise DecodeError("invalid JSON") from None


def _no_constant(name: str) -> None:
    raise ValueError(name)


hashable_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.builds(pathlib.Path, st.text(alphabet="ab/ .-", max_size=8))
    | st.builds(pathlib.PurePosixPath, st.text(alphabet="ab/", max_size=5))
    | st.dates()
    | st.datetimes(
        timezones=st.none()
        | st.builds(
            dt.timezone,
            st.timedeltas(min_value=dt.timedelta(hours=-23), max_value=dt.timedelta(hours=23)),
        )
    )
    | st.times()
    | st.uuids()
    | st.decimals(allow_nan=False)
)
hashables = st.recursive(
    hashable_leaves,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=4,
)
values = st.recursive(
    hashables,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner)
        | st.dictionaries(st.text(max_size=4) | st.sampled_from(TAGS), inner, max_size=3)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.sets(hashables, max_size=3)
    ),
    max_leaves=15,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_round_trip_property(value: Any) -> None:
    round_trip(value)
    assert canonical_bytes(loads(dumps(value))) == canonical_bytes(value)


@pytest.mark.parametrize(
    "value",
    [0, -7, 10**40, True, False, None, "", "plain", 'q"uo\\te\n\t\u00e9\U0001f600', "\ud800",
     1.5, -0.0, 1e300, 5e-324, 2.0**53 + 1],
)  # fmt: skip
def test_scalar_outputs_take_a_shortcut_that_stores_and_hashes_exactly_as_the_general_path(
    value: Any,
) -> None:
    # the general path: encode, dump, canonical text; the shortcut must give the same bytes
    tree = codec.encode(value)
    assert codec.dumps_hashed(value) == (codec.dumps(value), codec.hash_value(value))
    assert codec.dumps(value) == json.dumps(tree, ensure_ascii=False, separators=(",", ":"))
    assert codec.hash_tree(tree) == codec.hash_value(value)
    assert codec.loads(codec.dumps_hashed(value)[0]) == value or value != value


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "huge int"])
def test_scalars_json_cannot_hold_still_take_the_general_path(value: Any) -> None:
    if value == "huge int":
        value = 10**5000
        with pytest.raises(EncodeError, match="cannot encode"):
            codec.dumps_hashed(value)
        return
    text, digest = codec.dumps_hashed(value)
    assert text.startswith('{"$float":') and digest == codec.hash_value(value)
