"""Held-out writing partners for cross-play: writers of other styles and lengths.

Cross-play (``mallm evaluate ENV --agent SPEC --cross-play``) pairs an agent with each
partner of its env's population. The writing pair envs' population has two writers; each
can take either seat (``concise`` or ``detailed``; ``background`` or ``method``) and keeps
within the prompt's rules (word limits, prose, no copying), but at another point of them
than the scripted :class:`~mallm_envs.envs.writing.agents.KeyPhraseWriter`:

``terse``
    short, plain sentences near the lower word limits, few transitions, the top key
    phrases only.
``expansive``
    long, connected sentences near the upper limits, many transition phrases, more of the
    source's key phrases.

Both read only their observation (the source block), never the task's hidden key points,
and are deterministic, so ``mallm verify`` re-runs them and compares their actions with the
record. A change to what they write changes the population's fingerprints and so the
cross-play suite's digest (see ``docs/cross-play.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mallm_envs.envs.writing import text as T
from mallm_envs.envs.writing.agents import read_source

PAIR_IDS = ("SummaryPair-v0", "SummaryPair-v1", "ExpandPair-v0", "ExpandPair-v1")
SEATS = {
    "SummaryPair-v0": ("concise", "detailed"),
    "SummaryPair-v1": ("concise", "detailed"),
    "ExpandPair-v0": ("background", "method"),
    "ExpandPair-v1": ("background", "method"),
}

_TERSE = {
    "concise": ("{subject} is about {0} and {1}, and it explains why they matter.",),
    "detailed": (
        "{subject} is about {0} and {1}.",
        "It also covers {2} and {3}.",
        "The text links {0} to {4}, and it ends with {5}.",
    ),
    "background": (
        "{subject} deals with {0}.",
        "This topic matters because {0} affects many people and many decisions.",
        "Earlier work looked at {1} and at {2}.",
        "It did not explain how {1} relates to {3}.",
        "That gap is the starting point here.",
        "Some reports stress {4}, while others stress {1}.",
        "This leaves the field without a shared picture.",
        "We need to know how {0} works before we can plan around it.",
        "We also need clear terms for {2} and {4}.",
        "Without them, results are hard to compare.",
        "Studies use different words for the same thing.",
        "They also measure {3} in different ways.",
        "So the question is simple to state but hard to answer.",
        "How do {0}, {1} and {4} fit together, and what does that mean in practice?",
    ),
    "method": (
        "The work looks at {5} and at {0} together.",
        "It first describes {6} in plain terms.",
        "It then follows {7} across several cases.",
        "Next it compares {8} with {1}.",
        "This keeps each effect apart from the others.",
        "The steps are simple and can be repeated.",
        "Each case is checked in the same way.",
        "The cases differ in size and in setting.",
        "Where results disagree, the work says so.",
        "The main finding is that {5} and {6} go together.",
        "A second finding is that {7} matters more than expected.",
        "These results have clear uses.",
        "People who work on {0} should watch {8}.",
        "They can also plan better around {9}.",
        "The study has limits, since it covers only some cases.",
        "Still, it gives a clear base for the next steps on {0}.",
    ),
}

_EXPANSIVE = {
    "concise": (
        "In short, {subject} explains how {0} shapes {1}, and why {2} matters as a result.",
    ),
    "detailed": (
        "At its core, {subject} explains how {0} shapes {1}, and it returns to this idea throughout.",
        "In particular, it describes {2} in some detail, and it shows how {3} follows from it.",
        "Moreover, it connects {4} with {5}, so that the reader sees why both belong in the same account.",
        "As a result, {6} and {7} appear as consequences rather than as separate topics.",
        "However, the text also notes that {8} complicates this picture in practice.",
        "Finally, it brings these threads together and suggests what {0} means for the wider subject.",
    ),
    "background": (
        "{subject} is concerned with {0}, a subject whose importance reaches well beyond any single field or study.",
        "For many years, discussions of this area have been shaped by two strands of thinking, one centred on {0} and another centred on {1}.",
        "In practice, however, these strands have seldom been brought together, and as a result people who work with {2} often lack a common vocabulary.",
        "Moreover, the relation between {2} and {3} has usually been assumed rather than examined, even though it clearly affects how {4} behaves.",
        "Consequently, earlier accounts tend to describe individual cases well while saying little about the patterns that connect them.",
        "This matters because decisions about {0} are increasingly made on the basis of such partial descriptions, which can mislead as often as they inform.",
        "Furthermore, the absence of shared terms makes it difficult to compare findings, to judge which results generalise, and to build on earlier work in a cumulative way.",
        "For these reasons, a clearer and more connected account of {0}, {1} and {4} is needed, and the following work sets out to provide one while keeping the practical questions in view.",
    ),
    "method": (
        "To address this gap, the work examines {5} directly and relates it step by step to {0}, rather than treating the two as separate questions.",
        "Specifically, it first characterises {6}, then follows how {7} changes across a range of conditions, and finally compares {8} with {1}.",
        "In this way, each effect can be separated from the others, and the analysis can show which factors matter most and under which circumstances.",
        "As a result, the findings indicate that {5} and {6} act together, and they point to {7} as a more central factor than earlier accounts suggested.",
        "In addition, the analysis checks whether {9} holds across all of the cases considered, which strengthens confidence that the pattern is general.",
        "These results carry several implications, both for researchers who study {0} and for practitioners who must make decisions about it.",
        "First, they suggest that {8} deserves attention whenever {0} is discussed; second, they offer a sounder basis for planning around {9}.",
        "Overall, the approach shows how careful attention to {5} can sharpen both understanding and practice, and it opens several clear directions for further work.",
    ),
}


def _phrases(title: str, body: str, count: int) -> list[str]:
    phrases = T.key_phrases(body, count) or T.key_phrases(title, count) or ["the subject"]
    return [phrases[i % len(phrases)] for i in range(count)]


def write(frames: Mapping[str, tuple[str, ...]], seat: str, title: str, body: str) -> str:
    """One part: the seat's frames filled with the source's key phrases."""
    phrases = _phrases(title, body, 10)
    subject = f'"{title.rstrip(". ")}"' if title else "The text"
    return " ".join(frame.format(*phrases, subject=subject) for frame in frames[seat])


class _WritingPartner:
    name = ""
    style = ""
    frames: Mapping[str, tuple[str, ...]] = {}

    def __init__(self, env: Any, agent: str) -> None:
        if agent not in self.frames:
            raise ValueError(f"the {self.name} partner cannot write the {agent!r} part")
        self.agent = agent

    def reset(self, seed: int | None = None) -> None:
        pass

    def act(self, observation: Mapping[str, Any], info: Any) -> str:
        title, body = read_source(str(observation.get("text", "")))
        return write(self.frames, self.agent, title, body)

    def describe(self) -> dict[str, Any]:
        return {"class": "partner", "partner": self.name, "style": self.style}


class TerseWriter(_WritingPartner):
    """See the module docstring."""

    name = "terse"
    style = "short plain sentences near the lower word limits"
    frames = _TERSE


class ExpansiveWriter(_WritingPartner):
    """See the module docstring."""

    name = "expansive"
    style = "long connected sentences near the upper word limits"
    frames = _EXPANSIVE


PARTNER_CLASSES = (TerseWriter, ExpansiveWriter)


def population(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The held-out partners of ``env_id`` (``None`` for an id without a population).

    Each partner plays every episode of the suite in each seat.
    """
    if env_id not in PAIR_IDS:
        return None
    partners = [
        {
            "name": cls.name,
            "factory": f"{__name__}:{cls.__name__}",
            "roles": list(SEATS[env_id]),
            "description": cls.style,
        }
        for cls in PARTNER_CLASSES
    ]
    return {"episodes_per_seat": None, "partners": partners}
