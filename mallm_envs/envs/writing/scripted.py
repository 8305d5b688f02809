"""Scripted reference writers for the writing environments.

:class:`KeyPhraseWriter` needs no model. It reads the source from its observation (the
``=== SOURCE ===`` block), extracts the source's key phrases
(:func:`mallm_envs.envs.writing.text.key_phrases`) and sets them in fixed sentence frames
joined by transition phrases. It never sees the hidden key points of the task.

Why phrases and not whole sentences: the reward's copy factor takes away the reward of
text copied from the source in long runs, so a sentence-extracting writer scores almost
nothing by design. The phrase writer is the next-simplest extractive baseline: it is on
topic, covers part of the content and fits the length rules, but it says little, its
frames are generic and its phrases are only as good as a frequency heuristic. It scores
well, clearly below a careful hand-written pair; a trained pair should beat it.

- ``concise``: "<title> is mainly about <p1>, <p2> and <p3>."
- ``detailed``: four to six short sentences, each placing one or two phrases, sized to
  about 2-3 times the concise text.
- ``background`` / ``method``: eight or nine sentence frames each (context and motivation;
  approach, findings and implications), about 150 words.
- ``writer`` (single-writer ids): both parts under their labels.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mallm_envs.envs.writing import text as T
from mallm_envs.envs.writing.base import SOURCE_END, SOURCE_START

_DETAILED_FRAMES = (
    "The piece centres on {0} and {1}.",
    "In particular, it explains {2} and {3}.",
    "Moreover, it describes {4}, while {5} also plays a part.",
    "As a result, {6} and {7} matter as well.",
    "However, {8} complicates the picture.",
    "Overall, {0} remains the key idea.",
)
_BACKGROUND_FRAMES = (
    "{title} deals with {0}, a subject that matters well beyond a single study.",
    "Work in this area has long been shaped by {0} and by {1}.",
    "For instance, practitioners often meet {1} when they try to reason about {2}.",
    "However, the usual accounts treat {2} and {3} separately, which leaves important gaps.",
    "Such gaps make it hard to compare results, to predict outcomes, or to build on earlier findings.",
    "Moreover, the role of {3} is rarely examined directly, even though it shapes how {4} behaves in practice.",
    "Consequently, a clearer picture of {0} is needed before stronger claims can be made.",
    "This motivates the present work, which asks how {0}, {1} and {4} fit together and why the question deserves careful attention now.",
)
_METHOD_FRAMES = (
    "To address this, the work studies {5} directly and relates it to {0}.",
    "Specifically, it examines {6} and tracks how {7} changes under different conditions.",
    "The analysis then compares {8} with {1}, so that each effect can be separated from the others.",
    "In addition, it checks whether {9} holds across all the cases considered rather than in a single example.",
    "As a result, the findings describe how {5} and {6} combine, and they point to {7} as a central factor.",
    "These results carry several implications for researchers and practitioners alike.",
    "First, they suggest that {8} should be considered whenever {0} is discussed.",
    "Second, they offer a sound basis for practical decisions about {9}.",
    "Overall, the approach shows how close attention to {5} can sharpen both theory and practice, and it opens clear directions for future studies.",
)


def read_source(observation_text: str) -> tuple[str, str]:
    """(title, body) of the ``=== SOURCE ===`` block of a writing prompt ('' when absent).

    >>> read_source("Intro\\n=== SOURCE ===\\nTitle: Bees\\n\\nBees dance.\\n=== END SOURCE ===\\nTurn 1")
    ('Bees', 'Bees dance.')
    """
    start = observation_text.find(SOURCE_START)
    end = observation_text.find(SOURCE_END, start + 1)
    if start < 0 or end < 0:
        return "", ""
    block = observation_text[start + len(SOURCE_START) : end].strip("\n")
    title = ""
    if block.startswith("Title: "):
        first_line, _, block = block.partition("\n")
        title = first_line[len("Title: ") :].strip()
        if title == "(untitled)":
            title = ""
    return title, block.strip()


def _phrases(title: str, body: str, count: int) -> list[str]:
    phrases = T.key_phrases(body, count) or T.key_phrases(title, count) or ["the subject"]
    return [phrases[i % len(phrases)] for i in range(count)]


def _subject(title: str) -> str:
    return f'"{title.rstrip(". ")}"' if title else "The text"


def concise_summary(title: str, body: str) -> str:
    """The concise part: the title and the three best key phrases."""
    p = _phrases(title, body, 3)
    return f"{_subject(title)} is mainly about {p[0]}, {p[1]} and {p[2]}."


def detailed_summary(title: str, body: str) -> str:
    """The detailed part: phrase frames until the text is about 2.2 times the concise one."""
    p = _phrases(title, body, 9)
    target = 2.2 * len(concise_summary(title, body))
    chosen: list[str] = []
    for frame in _DETAILED_FRAMES:
        chosen.append(frame.format(*p))
        if len(" ".join(chosen)) >= target and len(chosen) >= 3:
            break
    return " ".join(chosen)


def background_part(title: str, body: str) -> str:
    """The background part: context and motivation frames around the first key phrases."""
    p = _phrases(title, body, 10)
    subject = _subject(title)
    return " ".join(frame.format(*p, title=subject) for frame in _BACKGROUND_FRAMES)


def method_part(title: str, body: str) -> str:
    """The method part: approach, findings and implications frames around later phrases."""
    p = _phrases(title, body, 10)
    return " ".join(frame.format(*p) for frame in _METHOD_FRAMES)


WRITERS: Mapping[str, Callable[[str, str], str]] = {
    "concise": concise_summary,
    "detailed": detailed_summary,
    "background": background_part,
    "method": method_part,
}


class KeyPhraseWriter:
    """A scripted writer for every writing id (see the module docstring)."""

    def __init__(self, env: Any, agent: str) -> None:
        unwrapped = getattr(env, "unwrapped", env)
        self.parts: tuple[str, ...] = tuple(getattr(unwrapped, "parts", ()))
        if agent != "writer" and agent not in WRITERS:
            raise ValueError(f"KeyPhraseWriter cannot play role {agent!r}")
        if agent == "writer" and not all(part in WRITERS for part in self.parts):
            raise ValueError(f"KeyPhraseWriter cannot write the parts {self.parts!r}")
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any]) -> str:
        title, body = read_source(str(observation.get("text", "")))
        if self.agent != "writer":
            return WRITERS[self.agent](title, body)
        return "\n\n".join(f"{part.upper()}:\n{WRITERS[part](title, body)}" for part in self.parts)

    def describe(self) -> dict[str, Any]:
        return {"class": "scripted", "policy": "key-phrase writer", "role": self.agent}
