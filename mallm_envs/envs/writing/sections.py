"""Reading a single writer's answer as two labelled sections.

The single-writer variants ask one model for both parts of the pair, each under a label:

    CONCISE:
    <the concise summary>

    DETAILED:
    <the detailed summary>

The parsing rule (case does not matter anywhere):

1. A *label line* is a line whose first word is a label (``CONCISE``/``DETAILED``, or
   ``BACKGROUND``/``METHOD``), optionally preceded by Markdown heading marks (``#``), a
   bullet (``-``, ``*``, ``•``, ``>``) or emphasis marks (``**``, ``__``, ``*``, ``_``),
   optionally followed by one of the words ``summary``, ``section``, ``part``,
   ``paragraph``, ``version`` and closing emphasis marks, and then by a colon (``:``),
   a dash (``-``, ``–``, ``—``) or the end of the line. So ``CONCISE:``, ``## Concise``,
   ``**Detailed summary:**`` and ``- Method - ...`` are label lines, while a sentence such
   as "Detailed records show ..." is not.
2. A section is the text after its label marker (the rest of that line included) up to
   the next label line or the end; surrounding whitespace is stripped.
3. Each label must appear exactly once, and each section must contain text. Anything
   else is an unusable answer whose reason names the problem.
4. Text before the first label line is ignored (its length is reported).

>>> parse_sections("Here you go.\\nCONCISE: Bees dance.\\n**Detailed summary:**\\nBees dance to share where food is.", ("concise", "detailed"))
Sections(parts={'concise': 'Bees dance.', 'detailed': 'Bees dance to share where food is.'}, problem=None, ignored_chars=12)
>>> parse_sections("Detailed records show bees dance.", ("concise", "detailed")).problem
"no section labelled 'CONCISE:' (start it with a line 'CONCISE:')"
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

_EMPHASIS = r"(?:\*\*|__|\*|_)?"
_SUFFIXES = r"(?:summary|section|part|paragraph|version)"


def _label_pattern(labels: Sequence[str]) -> re.Pattern[str]:
    names = "|".join(re.escape(label) for label in labels)
    return re.compile(
        r"^[ \t]*(?:#{1,6}[ \t]*)?(?:[-*•>][ \t]+)?"
        + _EMPHASIS
        + r"[ \t]*(?P<label>"
        + names
        + r")(?:[ \t]+"
        + _SUFFIXES
        + r")?[ \t]*"
        + _EMPHASIS
        + r"[ \t]*(?:[:：\-–—][ \t]*"
        + _EMPHASIS
        + r"|(?=\r?\n|\Z))",
        re.IGNORECASE | re.MULTILINE,
    )


@dataclass(frozen=True)
class Sections:
    """The outcome of :func:`parse_sections`.

    Attributes:
        parts: label (lower case) -> its text, for every label found once.
        problem: why the answer cannot be used, or ``None``.
        ignored_chars: characters before the first label line (ignored).
    """

    parts: dict[str, str] = field(default_factory=dict)
    problem: str | None = None
    ignored_chars: int = 0


def parse_sections(answer: str, labels: Sequence[str]) -> Sections:
    """Split ``answer`` into the sections named by ``labels`` (see the module docstring)."""
    pattern = _label_pattern(labels)
    matches = list(pattern.finditer(answer))
    found: dict[str, list[str]] = {label: [] for label in labels}
    for number, match in enumerate(matches):
        end = matches[number + 1].start() if number + 1 < len(matches) else len(answer)
        found[match.group("label").lower()].append(answer[match.end() : end].strip())
    ignored = len(answer[: matches[0].start()].strip()) if matches else len(answer.strip())
    parts = {label: texts[0] for label, texts in found.items() if len(texts) == 1}
    for label in labels:
        marker = f"{label.upper()}:"
        if not found[label]:
            problem = f"no section labelled {marker!r} (start it with a line {marker!r})"
            return Sections(parts, problem, ignored)
        if len(found[label]) > 1:
            problem = (
                f"the label {marker!r} appears {len(found[label])} times; write each section once"
            )
            return Sections(parts, problem, ignored)
        if not parts[label]:
            return Sections(parts, f"the {label} section is empty", ignored)
    return Sections(parts, None, ignored)


# ----------------------------------------------------------------------------- linear (v1)

_LINE_LABEL_HEAD = 200
"""Characters of a line (after collapsing its blanks) in which a v1 label must be found."""


def parse_sections_linear(answer: str, labels: Sequence[str]) -> Sections:
    """The same rule as :func:`parse_sections`, in time linear in ``len(answer)`` (v1 ids).

    :func:`parse_sections` runs one multi-line regular expression whose leading blanks
    pattern restarts at every position of a blank line: a line of 8,000 spaces costs about
    a second. Here each line's runs of spaces and tabs are collapsed first (one pass), and
    the label pattern is matched only at the start of the line's first
    ``_LINE_LABEL_HEAD`` characters, so each line costs at most a bounded match plus its
    length. One difference from v0: blanks inside the rest of a label line collapse to one
    space (the reward collapses them anyway).

    >>> parse_sections_linear(" " * 8000 + "\\nCONCISE: Bees dance.\\n## Detailed\\nBees dance to share food.", ("concise", "detailed")).parts
    {'concise': 'Bees dance.', 'detailed': 'Bees dance to share food.'}
    """
    pattern = _line_pattern(tuple(labels))
    found: dict[str, list[list[str]]] = {label: [] for label in labels}
    current: list[str] | None = None
    ignored: list[str] = []
    for line in answer.split("\n"):
        canonical = _BLANKS.sub(" ", line.replace("\t", " ")).strip(" \r")
        match = pattern.match(canonical[:_LINE_LABEL_HEAD])
        if match is None:
            (current if current is not None else ignored).append(line)
            continue
        current = [canonical[match.end() :]]
        found[match.group("label").lower()].append(current)
    texts = {label: ["\n".join(lines).strip() for lines in found[label]] for label in labels}
    ignored_chars = len("\n".join(ignored).strip())
    parts = {label: items[0] for label, items in texts.items() if len(items) == 1}
    for label in labels:
        marker = f"{label.upper()}:"
        if not texts[label]:
            problem = f"no section labelled {marker!r} (start it with a line {marker!r})"
            return Sections(parts, problem, ignored_chars)
        if len(texts[label]) > 1:
            problem = (
                f"the label {marker!r} appears {len(texts[label])} times; write each section once"
            )
            return Sections(parts, problem, ignored_chars)
        if not parts[label]:
            return Sections(parts, f"the {label} section is empty", ignored_chars)
    return Sections(parts, None, ignored_chars)


_BLANKS = re.compile(r" {2,}")


@lru_cache(maxsize=8)
def _line_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    names = "|".join(re.escape(label) for label in labels)
    return re.compile(
        r"(?:#{1,6} ?)?(?:[-*•>] )?"
        + _EMPHASIS
        + r" ?(?P<label>"
        + names
        + r")(?: "
        + _SUFFIXES
        + r")? ?"
        + _EMPHASIS
        + r" ?(?:[:：\-–—] ?"
        + _EMPHASIS
        + r"|$)",
        re.IGNORECASE,
    )
