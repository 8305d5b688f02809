"""Gymnasium spaces for text.

Gymnasium's :class:`gymnasium.spaces.Text` only admits a fixed character set (62
alphanumerics by default), so Python code, punctuation and non-ASCII prose fall outside
it. :class:`UnicodeText` admits any clean Unicode string up to a maximum length.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.spaces import Space

from mallm_envs.core.text import is_clean

# Material for realistic samples: prose, code, punctuation, numbers and non-ASCII words.
_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "was",
    "be",
    "by",
    "this",
    "are",
    "or",
    "from",
    "at",
    "an",
    "team",
    "plan",
    "agent",
    "helper",
    "main",
    "code",
    "test",
    "result",
    "value",
    "list",
    "return",
    "def",
    "if",
    "else",
    "for",
    "while",
    "print",
    "true",
    "false",
    "none",
    "sum",
    "count",
    "word",
    "text",
    "summary",
    "detail",
    "onion",
    "pot",
    "dish",
    "serve",
    "kitchen",
    "reward",
    "step",
    "turn",
    "partner",
    "answer",
    "first",
    "second",
    "because",
    "therefore",
    "however",
    "résumé",
    "naïve",
    "café",
    "数据",
    "合作",
    "программа",
    "función",
    "über",
    "ñandú",
    "Ωμέγα",
    "🙂",
]
_PUNCT = (
    ".",
    ",",
    ":",
    ";",
    "!",
    "?",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "=",
    "+",
    "-",
    "*",
    "/",
    "'",
    '"',
    "#",
    "_",
    "->",
    "==",
    "```",
)
_SEPARATORS = (" ", " ", " ", " ", " ", "\n", "\n    ", "\t")


class UnicodeText(Space[str]):
    """Any clean Unicode string of ``min_length`` to ``max_length`` characters.

    "Clean" means no lone surrogates and no control characters other than tab, newline,
    vertical tab, form feed and carriage return (see :mod:`mallm_envs.core.text`).

    ``sample()`` produces realistic mixed text (words, code-like punctuation, newlines,
    non-ASCII) rather than uniform random code points, so random agents exercise the
    parsers the way a language model would.
    """

    def __init__(
        self, max_length: int, *, min_length: int = 0, seed: int | np.random.Generator | None = None
    ):
        if not isinstance(max_length, int) or max_length < 1:
            raise ValueError(f"max_length must be a positive int, got {max_length!r}")
        if not isinstance(min_length, int) or not 0 <= min_length <= max_length:
            raise ValueError(f"min_length must be an int in [0, max_length], got {min_length!r}")
        self.max_length = max_length
        self.min_length = min_length
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and self.min_length <= len(x) <= self.max_length and is_clean(x)

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        if mask is not None or probability is not None:
            raise NotImplementedError("UnicodeText.sample takes no mask or probability")
        rng = self.np_random
        target = int(rng.integers(self.min_length, min(self.max_length, 400) + 1))
        pieces: list[str] = []
        length = 0
        while length < target:
            roll = rng.random()
            if roll < 0.7:
                piece = _WORDS[int(rng.integers(len(_WORDS)))]
            elif roll < 0.85:
                piece = _PUNCT[int(rng.integers(len(_PUNCT)))]
            else:
                piece = str(int(rng.integers(-1000, 1000)))
            piece += _SEPARATORS[int(rng.integers(len(_SEPARATORS)))]
            pieces.append(piece)
            length += len(piece)
        text = "".join(pieces)[:target]
        if len(text) < self.min_length:  # only when min_length > 400
            text = text + "x" * (self.min_length - len(text))
        return text

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length}, min_length={self.min_length})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, UnicodeText)
            and other.max_length == self.max_length
            and other.min_length == self.min_length
        )

    def __hash__(self) -> int:
        return hash(("UnicodeText", self.max_length, self.min_length))

    def to_jsonable(self, sample_n: Any) -> list[str]:
        return list(sample_n)

    def from_jsonable(self, sample_n: list[str]) -> list[str]:
        return list(sample_n)
