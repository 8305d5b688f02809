"""Checks and clean-up for text that crosses the environment boundary.

An action is any Python ``str``. Some strings cannot be used as they are: they contain NUL
bytes or lone UTF-16 surrogates (which cannot be encoded as UTF-8, so no tokenizer, file or
JSON consumer can take them), terminal control sequences, or are longer than the
environment accepts. :func:`action_problem` names the first such problem; the environment
turns it into an invalid-action outcome instead of raising.
"""

from __future__ import annotations

import re

# C0 control characters other than tab, newline, vertical tab, form feed and carriage
# return, plus DEL. ESC is among them, so ANSI escape sequences are refused.
_BAD_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def action_problem(text: str, max_chars: int) -> str | None:
    """Why ``text`` cannot be used as an action, or ``None`` if it can.

    >>> action_problem("def f():\\n    return 1", 100) is None
    True
    >>> action_problem("a\\x00b", 100)
    'action contains a NUL byte at index 1'
    >>> action_problem("x" * 11, 10)
    'action is 11 characters long; the limit is 10'
    """
    if len(text) > max_chars:
        return f"action is {len(text)} characters long; the limit is {max_chars}"
    match = _SURROGATE.search(text)
    if match is not None:
        return f"action contains a lone surrogate (U+{ord(match.group()):04X}) at index {match.start()}; it is not valid Unicode text"
    match = _BAD_CONTROL.search(text)
    if match is not None:
        if match.group() == "\x00":
            return f"action contains a NUL byte at index {match.start()}"
        return f"action contains the control character U+{ord(match.group()):04X} at index {match.start()}"
    return None


def is_clean(text: str) -> bool:
    """True when ``text`` has no surrogates and no refused control characters."""
    return _SURROGATE.search(text) is None and _BAD_CONTROL.search(text) is None


def clean(text: str) -> str:
    """A printable, UTF-8-encodable version of ``text`` for showing it to another agent.

    Lone surrogates become U+FFFD and refused control characters are dropped.

    >>> clean("ok\\x00\\x1b[31m" + chr(0xD800))
    'ok[31m\\ufffd'
    """
    return _BAD_CONTROL.sub("", _SURROGATE.sub("\ufffd", text))


def shorten(text: str, max_chars: int, marker: str = " …[truncated]") -> str:
    """Cut ``text`` to at most ``max_chars`` characters, saying that it was cut."""
    if len(text) <= max_chars:
        return text
    keep = max(0, max_chars - len(marker))
    return text[:keep] + marker[: max_chars - keep]
