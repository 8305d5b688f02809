"""Plain data: the only values that cross from a run to the judge.

A run reports every checked value as *plain data*: ``None``, ``bool``, ``int``, ``float``,
``complex``, ``str``, ``bytes``, ``bytearray``, ``range`` and ``list``/``tuple``/``dict``/``set``/
``frozenset`` of plain data. Instances of subclasses (a ``namedtuple``, a ``Counter``, an
``IntEnum``) are copied as their builtin base value through the base type's C slots, so an
overridden ``__eq__`` never reaches a comparison; anything else (a user class, a generator, a
function) is *not plain* and fails the test.

Wire format (JSON written by the run, decoded here): JSON ``null``/``true``/``false``/numbers/
strings and arrays stand for ``None``/``bool``/``int``/``float``/``str``/``list``; every other
type is a one-key object: ``{"t": [...]}`` tuple, ``{"s": [...]}`` set, ``{"f": [...]}``
frozenset, ``{"d": [[k, v], ...]}`` dict, ``{"b": hex}`` bytes, ``{"y": hex}`` bytearray,
``{"c": [re, im]}`` complex, ``{"i": hex}`` int too long for decimal, ``{"r": [start, stop,
step]}`` range, ``{"n": "nan" | "inf" | "-inf"}`` non-finite float.
"""

from __future__ import annotations

import json
import math
import reprlib
from typing import Any

PLAIN_TYPES = (
    type(None),
    bool,
    int,
    float,
    complex,
    str,
    bytes,
    bytearray,
    range,
    list,
    tuple,
    dict,
    set,
    frozenset,
)

_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


class NotPlainError(ValueError):
    """A value is not plain data (the message names the offending type and where it is)."""


def plain_copy(value: Any, _path: str = "value", _depth: int = 0) -> Any:
    """Return an exact-typed deep copy of plain data, or raise :class:`NotPlainError`.

    >>> plain_copy({"a": (1, 2.5)})
    {'a': (1, 2.5)}
    """
    if _depth > 100:
        raise NotPlainError(f"{_path} is nested more than 100 levels deep")
    t = type(value)
    if value is None or t in (bool, int, float, complex, str, bytes, range):
        return value
    d = _depth + 1
    base: type[Any]
    for base in (bool, int, float, complex, str, bytes):
        if isinstance(value, base):
            return base(value)
    if isinstance(value, bytearray):
        return bytearray(value)
    if isinstance(value, list):
        return [plain_copy(x, f"{_path}[{i}]", d) for i, x in enumerate(list.__iter__(value))]
    if isinstance(value, tuple):
        return tuple(plain_copy(x, f"{_path}[{i}]", d) for i, x in enumerate(tuple.__iter__(value)))
    if isinstance(value, dict):
        return {
            plain_copy(k, f"{_path} key", d): plain_copy(v, f"{_path}[{k!r}]", d)
            for k, v in dict.items(value)
        }
    if isinstance(value, (set, frozenset)):
        kind = frozenset if isinstance(value, frozenset) else set
        return kind(plain_copy(x, f"{_path} element", d) for x in value)
    raise NotPlainError(f"{_path} is a {t.__name__}, which is not plain data")


def decode(obj: Any) -> Any:
    """Turn the JSON form written by a run back into the plain value (raises ValueError)."""
    if isinstance(obj, list):
        return [decode(x) for x in obj]
    if not isinstance(obj, dict):
        if isinstance(obj, (str, int, float, bool)) or obj is None:
            return obj
        raise ValueError(f"unexpected JSON value of type {type(obj).__name__}")
    if len(obj) != 1:
        raise ValueError("a tagged value must have exactly one key")
    ((tag, body),) = obj.items()
    if tag == "t":
        return tuple(decode(x) for x in _array(body))
    if tag == "s":
        return {decode(x) for x in _array(body)}
    if tag == "f":
        return frozenset(decode(x) for x in _array(body))
    if tag == "d":
        out = {}
        for pair in _array(body):
            pair = _array(pair)
            if len(pair) != 2:
                raise ValueError("a dict item must be a [key, value] pair")
            out[decode(pair[0])] = decode(pair[1])
        return out
    if tag in ("b", "y"):
        raw = bytes.fromhex(_string(body))
        return raw if tag == "b" else bytearray(raw)
    if tag == "c":
        parts = [decode(x) for x in _array(body)]
        if len(parts) != 2 or not all(type(p) is float for p in parts):
            raise ValueError("a complex must be two floats")
        return complex(parts[0], parts[1])
    if tag == "i":
        return int(_string(body), 16)
    if tag == "r":
        parts = _array(body)
        if len(parts) != 3 or not all(type(p) is int for p in parts):
            raise ValueError("a range must be three ints")
        return range(*parts)
    if tag == "n":
        if body not in _FLOATS:
            raise ValueError(f"unknown float {body!r}")
        return _FLOATS[body]
    raise ValueError(f"unknown tag {tag!r}")


def loads(text: str) -> Any:
    """Decode one value from its JSON text."""
    return decode(json.loads(text))


def _array(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise ValueError("expected a JSON array")
    return body


def _string(body: Any) -> str:
    if not isinstance(body, str):
        raise ValueError("expected a JSON string")
    return body


_short = reprlib.Repr()
_short.maxstring = 80
_short.maxother = 80
_short.maxlong = 60
_short.maxlist = _short.maxtuple = _short.maxset = _short.maxfrozenset = 8
_short.maxdict = 6
_short.maxlevel = 4


def short_repr(value: Any) -> str:
    """A bounded ``repr`` of a plain value, for test messages."""
    try:
        return _short.repr(value)
    except Exception:  # pragma: no cover - reprlib on plain data does not raise
        return "<value>"
