"""The two writing tasks as frozen data: what each part must contain and how it is scored.

A :class:`TaskPreset` is everything that tells the summary task from the expansion task:
the task kind (which corpus), the two parts in order, the prompt wording and the v1
reward rules. :class:`mallm_envs.envs.writing.env.WritingPairEnv` and
:class:`~mallm_envs.envs.writing.env.WritingSingleEnv` take one by name (``task=``).
The v0 envs read the same prompt wording from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from mallm_envs.envs.writing.rules import EXPANSION_RULES, SUMMARY_RULES, RewardRules

SUMMARY_TASK = (
    "Together you write two summaries of the document below: a concise one and a detailed one."
)
SUMMARY_PARTS: Mapping[str, str] = MappingProxyType(
    {
        "concise": (
            "The concise summary gives the document's main point in one to three sentences "
            "(roughly 20-60 words)."
        ),
        "detailed": (
            "The detailed summary is two to three times as long as the concise one: it covers "
            "the main points and how they connect, with a richer vocabulary and transition "
            "phrases (for example, however, as a result)."
        ),
    }
)
SUMMARY_PARTNER_ROLES: Mapping[str, str] = MappingProxyType(
    {
        "concise": "a short summary of the main point.",
        "detailed": "a longer summary of the main points and how they connect.",
    }
)
EXPANSION_TASK = (
    "Together you expand the brief below into the opening of an article: background and "
    "motivation first, then method and implications."
)
EXPANSION_PARTS: Mapping[str, str] = MappingProxyType(
    {
        "background": (
            "The background part explains the problem, why it matters, and what was known or "
            "missing before, leading up to the work the brief describes (roughly 140-200 words)."
        ),
        "method": (
            "The method part explains what the work does and how, what it finds, and what "
            "follows from it (about as long as the background part, without repeating it)."
        ),
    }
)
EXPANSION_PARTNER_ROLES: Mapping[str, str] = MappingProxyType(
    {
        "background": "the background and motivation.",
        "method": "the method, findings and implications.",
    }
)


@dataclass(frozen=True)
class TaskPreset:
    """One writing task.

    Attributes:
        name: ``"summary"`` or ``"expansion"`` (the ``task`` argument of the v1 envs).
        kind: the corpus kind (:mod:`mallm_envs.envs.writing.tasks`).
        parts: the two parts, in order (first, second); the pair env's agents.
        task_instruction: what the team as a whole is asked to do.
        part_instructions: part -> what it must contain.
        partner_roles: part -> how the partner's part is described to the other writer.
        rules: the v1 reward rules.
    """

    name: str
    kind: str
    parts: tuple[str, str]
    task_instruction: str
    part_instructions: Mapping[str, str]
    partner_roles: Mapping[str, str]
    rules: RewardRules


SUMMARY = TaskPreset(
    name="summary",
    kind="summary",
    parts=("concise", "detailed"),
    task_instruction=SUMMARY_TASK,
    part_instructions=SUMMARY_PARTS,
    partner_roles=SUMMARY_PARTNER_ROLES,
    rules=SUMMARY_RULES,
)
EXPANSION = TaskPreset(
    name="expansion",
    kind="expansion",
    parts=("background", "method"),
    task_instruction=EXPANSION_TASK,
    part_instructions=EXPANSION_PARTS,
    partner_roles=EXPANSION_PARTNER_ROLES,
    rules=EXPANSION_RULES,
)
PRESETS: Mapping[str, TaskPreset] = MappingProxyType({"summary": SUMMARY, "expansion": EXPANSION})
