"""Sandbox, plain data: the run's encoder and the judge's decoder agree, and nothing else passes.

The encoder lives in the worker program (``mallm_envs/sandbox/zygote/harness.py``, run as its
own interpreter); its parts are importable modules too, so the round trip is tested in-process.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, namedtuple
from enum import IntEnum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mallm_envs.sandbox.values import NotPlainError, decode, loads, plain_copy, short_repr


@pytest.fixture(scope="module")
def codec():
    from mallm_envs.sandbox.zygote.harness import make_harness

    return make_harness()


def roundtrip(codec, value):
    return loads(codec.encode(value, 1 << 22))


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**300), max_value=10**300)
    | st.floats(allow_nan=False)
    | st.text(max_size=40)
    | st.binary(max_size=40)
    | st.complex_numbers(allow_nan=False)
)
hashable = st.recursive(
    scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3), max_leaves=8
)
plain = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(hashable, inner, max_size=3)
        | st.sets(hashable, max_size=3)
        | st.frozensets(hashable, max_size=3)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(plain)
def test_every_plain_value_survives_the_round_trip(codec, value) -> None:
    back = roundtrip(codec, value)
    assert back == value
    assert type(back) is type(value)


def test_special_values(codec) -> None:
    assert math.isnan(roundtrip(codec, math.nan))
    assert roundtrip(codec, [math.inf, -math.inf, -0.0]) == [math.inf, -math.inf, -0.0]
    assert math.copysign(1, roundtrip(codec, -0.0)) == -1
    assert roundtrip(codec, 10**20000) == 10**20000  # beyond int -> str's digit limit
    assert roundtrip(codec, range(1, 10, 3)) == range(1, 10, 3)
    assert roundtrip(codec, bytearray(b"ab")) == bytearray(b"ab")
    assert roundtrip(codec, "lone \udcff surrogate") == "lone \udcff surrogate"
    assert roundtrip(codec, {(1, 2): {3}}) == {(1, 2): {3}}


def test_subclasses_become_their_builtin_base(codec) -> None:
    class Size(IntEnum):
        BIG = 3

    point = namedtuple("point", "x y")
    cases = [
        (Size.BIG, 3, int),
        (point(1, 2), (1, 2), tuple),
        (Counter("aab"), {"a": 2, "b": 1}, dict),
        (OrderedDict(a=1), {"a": 1}, dict),
    ]
    for value, expected, kind in cases:
        back = roundtrip(codec, value)
        assert back == expected and type(back) is kind


def test_lying_objects_are_not_plain(codec) -> None:
    class Anything:
        def __eq__(self, other):
            return True

    class Liar:
        __class__ = int  # type: ignore[assignment]

    class Sneaky(list):
        def __iter__(self):  # the copy reads the real storage, not this
            return iter([1, 2, 3])

    for value in (Anything(), Liar(), iter([1]), map(abs, [1]), lambda: 1, [Anything()]):
        with pytest.raises(codec.not_plain):
            codec.encode(value, 1 << 20)
    assert roundtrip(codec, Sneaky([9])) == [9]


def test_limits_on_size_and_depth(codec) -> None:
    with pytest.raises(codec.not_plain, match="too large"):
        codec.encode("x" * 2000, 1000)
    deep: list = []
    for _ in range(200):
        deep = [deep]
    with pytest.raises(codec.not_plain, match="deeply"):
        codec.encode(deep, 1 << 20)


@pytest.mark.parametrize(
    "text",
    [
        '{"x": 1}',
        '{"t": 1}',
        '{"t": [1], "s": [2]}',
        '{"s": [[1]]}',
        '{"c": [1, 2]}',
        '{"r": [1, 2]}',
        '{"n": "zero"}',
        '{"b": "zz"}',
        '{"d": [[1]]}',
    ],
)
def test_forged_wire_values_are_rejected(text: str) -> None:
    with pytest.raises((ValueError, TypeError)):
        loads(text)


def test_decode_of_plain_json() -> None:
    assert decode([1, "a", None, True, 2.5]) == [1, "a", None, True, 2.5]


def test_plain_copy_for_expected_values() -> None:
    assert plain_copy({"a": [1, (2, 3)]}) == {"a": [1, (2, 3)]}
    with pytest.raises(NotPlainError, match=r"value\['a'\]\[0\] is a object"):
        plain_copy({"a": [object()]})


def test_short_repr_is_bounded() -> None:
    text = short_repr(list(range(10_000)))
    assert len(text) < 100 and text.endswith("...]")
