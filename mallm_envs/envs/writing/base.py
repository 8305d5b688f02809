"""The shared machinery of the writing environments (the ids' pages are in their modules).

:class:`WritingEnv` holds what the four ids share: the task data, the prompt layout, the
feedback between turns, the reward call and the global state. A subclass fixes the task
preset (:mod:`.presets`), the reward and how actions become the two texts: one text per agent
(:class:`PairWritingEnv`) or two labelled sections of one agent's answer
(:class:`SingleWritingEnv`).

Prompt layout (every agent, every turn)::

    <role instructions>
    === SOURCE ===
    Title: <title>

    <document or brief>
    === END SOURCE ===
    Turn t of T.
    [=== FEEDBACK ON TURN t-1 === ... === END FEEDBACK ===]   (from the second turn on)
    [=== PARTNER'S TEXT THIS TURN (<role>) === ... === END ===]  (sequential schedule)
    <what to write now>

Scripted agents and parsers may rely on the ``=== SOURCE ===`` block; its layout is part
of the env's version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from mallm_envs.core import CoopTextEnv, TurnResult
from mallm_envs.core.errors import EnvArgumentError
from mallm_envs.core.text import clean, shorten
from mallm_envs.envs.writing import tasks as task_data
from mallm_envs.envs.writing.presets import TaskPreset
from mallm_envs.envs.writing.rewards import RewardBreakdown, score_pair
from mallm_envs.envs.writing.sections import parse_sections
from mallm_envs.envs.writing.semantic import SIMILARITY_MODES, similarity_function

SOURCE_START = "=== SOURCE ==="
SOURCE_END = "=== END SOURCE ==="
#: Longest partner or own text quoted back in a prompt (characters).
QUOTE_CHARS = 3_000
MAX_ACTION_CHARS = 8_000
MAX_OBSERVATION_CHARS = 24_000


def _quote(text: str) -> str:
    return shorten(clean(text).strip(), QUOTE_CHARS) or "(empty)"


def writing_metadata(name: str) -> dict[str, Any]:
    """PettingZoo ``metadata`` of the writing env named ``name`` (all render alike)."""
    return {"name": name, "render_modes": ["ansi", "human"], "is_parallelizable": True}


class WritingEnv(CoopTextEnv):
    """Base of the writing environments; see :mod:`mallm_envs.envs.writing.summary_pair`."""

    metadata: ClassVar[dict[str, Any]] = writing_metadata("writing_v0")
    #: The task: kind, parts, prompt wording (frozen data, :mod:`.presets`).
    preset: TaskPreset
    #: The reward thresholds (v0: a ``PairRewardConfig``; v1: the preset's ``RewardRules``).
    reward_config: Any

    @property
    def kind(self) -> str:
        """``"summary"`` or ``"expansion"``."""
        return self.preset.kind

    @property
    def parts(self) -> tuple[str, str]:
        """The two parts of the pair, in order (first, second)."""
        return self.preset.parts

    @property
    def part_instructions(self) -> Mapping[str, str]:
        """One paragraph per part: what it must contain."""
        return self.preset.part_instructions

    @property
    def task_instruction(self) -> str:
        """What the team as a whole is asked to do."""
        return self.preset.task_instruction

    @property
    def partner_roles(self) -> Mapping[str, str]:
        """Part -> how the partner's part is described to the other writer."""
        return self.preset.partner_roles

    def __init__(
        self,
        *,
        data: str = "bundled",
        split: str = "train",
        data_limit: int | None = None,
        similarity: str = "lexical",
        schedule: str = "simultaneous",
        max_turns: int = 1,
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(split, str) or not split:
            raise EnvArgumentError(
                f"split must be a non-empty string such as 'train', got {split!r}"
            )
        if data_limit is not None and (
            not isinstance(data_limit, int) or isinstance(data_limit, bool) or data_limit < 1
        ):
            raise EnvArgumentError(f"data_limit must be None or an int >= 1, got {data_limit!r}")
        if similarity not in SIMILARITY_MODES:
            raise EnvArgumentError(
                f"similarity must be one of {SIMILARITY_MODES}, got {similarity!r}"
            )
        super().__init__(
            agents=self._agent_ids(),
            schedule=schedule,
            max_turns=max_turns,
            max_action_chars=MAX_ACTION_CHARS,
            max_observation_chars=MAX_OBSERVATION_CHARS,
            render_mode=render_mode,
        )
        try:
            self.all_tasks, self.tasks = task_data.load_source(data, self.kind, split, data_limit)
        except task_data.WritingDataError as err:
            raise EnvArgumentError(str(err)) from err
        self._task_index = {task.id: task for task in self.all_tasks}
        self._data_hash = task_data.data_hash(self.all_tasks)
        self.data = data
        self.split = split
        self.similarity = similarity
        self._similarity = similarity_function(similarity)
        self.task = self.tasks[0]
        self.texts: list[dict[str, str]] = []
        self.breakdowns: list[RewardBreakdown] = []

    def _quote_text(self, text: str) -> str:
        """A text quoted back in a prompt (v0: refused controls dropped, then shortened)."""
        return _quote(text)

    def _agent_ids(self) -> tuple[str, ...]:
        """The env's agents, in order (read before the core is set up: class data only)."""
        raise NotImplementedError

    @property
    def data_hash(self) -> str:
        """SHA-256 (16 hex digits) of every task this env can serve (all splits of the source)."""
        return self._data_hash

    def official_test_tasks(self) -> list[str]:
        """Ids of the source's ``test`` tasks, in data order (the leaderboard's suite)."""
        return [task.id for task in self.all_tasks if task.split == "test"]

    # ----------------------------------------------------------------- task

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        # Other option keys are ignored (generic tools such as PettingZoo's tests pass their own).
        task_id = options.get("task_id")
        if task_id is None:
            self.task = self.tasks[int(rng.integers(len(self.tasks)))]
        elif isinstance(task_id, str) and task_id in self._task_index:
            self.task = self._task_index[task_id]
        else:
            examples = ", ".join(t.id for t in self.tasks[:3])
            raise EnvArgumentError(
                f"no task {task_id!r} in data {self.data!r} ({len(self.all_tasks)} tasks, "
                f"e.g. {examples})"
            )
        self.texts = []
        self.breakdowns = []

    # ----------------------------------------------------------------- texts

    def _texts_of(self, actions: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
        """The pair's texts (part -> text) and agent -> why its action is unusable."""
        raise NotImplementedError

    def _score(self, texts: Mapping[str, str]) -> RewardBreakdown:
        first, second = self.parts
        return score_pair(
            texts.get(first, ""),
            texts.get(second, ""),
            self.task.source,
            self.task.key_points,
            self.reward_config,
            similarity=self._similarity,
        )

    def _play_turn(self, actions: dict[str, str | None]) -> TurnResult:
        texts, invalid = self._texts_of(actions)
        for agent, action in actions.items():
            if action is None:
                invalid.setdefault(agent, "the action was refused (see invalid_reason)")
        breakdown = self._score(texts)
        total = 0.0 if invalid else breakdown.total
        components = dict(breakdown.components)
        explanations = dict(breakdown.explanations)
        if invalid:
            components["total"] = 0.0
            explanations["total"] = "0 because a part is missing: " + "; ".join(
                f"{agent}: {why}" for agent, why in sorted(invalid.items())
            )
        self.texts.append(dict(texts))
        self.breakdowns.append(breakdown)
        events = (
            f"turn {self.turn + 1}: reward {total:.3f} of {self.reward_config.max_total:g} "
            f"({breakdown.passed_levels}/4 levels, gated {breakdown.components['gated']:.2f}, "
            f"coverage {breakdown.components['coverage']:.2f}, integrity {breakdown.components['integrity']:.2f})",
        )
        info = {
            "task_id": self.task.id,
            "passed_levels": breakdown.passed_levels,
            "reward_explanation": explanations,
            "reward_measurements": dict(breakdown.measurements),
        }
        return TurnResult(
            reward=total,
            components=components,
            events=events,
            invalid=invalid,
            terminated=False,
            agent_infos={agent: dict(info) for agent in self.possible_agents},
        )

    # ----------------------------------------------------------------- prompts

    def _source_block(self) -> str:
        title = self.task.title or "(untitled)"
        return f"{SOURCE_START}\nTitle: {title}\n\n{self.task.text}\n{SOURCE_END}"

    def _feedback_block(self, viewer_parts: Sequence[str]) -> str:
        """Reward breakdown of the last turn, the viewer's own text(s) and the partner's."""
        if not self.history:
            return ""
        record = self.history[-1]
        texts = self.texts[-1]
        breakdown = self.breakdowns[-1]
        lines = [
            f"=== FEEDBACK ON TURN {record.turn + 1} ===",
            f"Team reward: {record.result.reward:.3f} of {self.reward_config.max_total:g}",
        ]
        for agent in self.possible_agents:
            reason = record.invalid.get(agent)
            if reason:
                lines.append(f"Unusable answer from {agent}: {reason}")
        lines.extend(f"- {line}" for line in breakdown.summary_lines())
        for part in self.parts:
            owner = "Your" if part in viewer_parts else "Your partner's"
            lines.append(
                f"{owner} {part} text last turn:\n<<<\n{self._quote_text(texts.get(part, ''))}\n>>>"
            )
        lines.append("=== END FEEDBACK ===")
        return "\n".join(lines)

    def _state_text(self) -> str:
        lines = [
            f"task {self.task.id} ({self.kind}, split {self.split}, data {self.data})",
            f"turn {self.turn}/{self.max_turns}, schedule {self.schedule}",
            self._source_block(),
        ]
        for record, texts in zip(self.history, self.texts):
            lines.append(f"turn {record.turn + 1}: reward {record.result.reward:.3f}")
            for part in self.parts:
                lines.append(f"[{part}]\n{self._quote_text(texts.get(part, ''))}")
        for agent, action in self._pending.items():
            lines.append(f"[{agent}, submitted this turn]\n{self._quote_text(action)}")
        return "\n".join(lines)

    def _render_text(self) -> str:
        lines = [f"task {self.task.id}: {self.task.title}", f"turn {self.turn}/{self.max_turns}"]
        if self.breakdowns:
            lines.append(f"last reward {self.history[-1].result.reward:.3f}")
            lines.extend(f"  {line}" for line in self.breakdowns[-1].summary_lines())
        return "\n".join(lines)


class PairWritingEnv(WritingEnv):
    """Two writers; agent ``parts[i]`` writes part ``i`` of the pair."""

    def _agent_ids(self) -> tuple[str, ...]:
        return tuple(self.parts)

    def _texts_of(self, actions: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
        texts: dict[str, str] = {}
        invalid: dict[str, str] = {}
        for agent, action in actions.items():
            if action is None:
                texts[agent] = ""
            elif not action.strip():
                texts[agent] = ""
                invalid[agent] = f"the {agent} text is empty"
            else:
                texts[agent] = action.strip()
        return texts, invalid

    def _prompt(self, agent: str) -> str:
        partner = next(a for a in self.parts if a != agent)
        limits = self.reward_config
        lines = [
            f"You are the {agent} writer in a team of two. {self.task_instruction}",
            self.part_instructions[agent],
            f"Your partner writes the {partner} part: {self.partner_roles[partner]}",
            f"Each part must be {limits.min_tokens}-{limits.max_tokens} words. The team is "
            "scored on how the two parts fit together and on covering the source in your own "
            "words; repeating yourself, copying long passages, or drifting off the subject "
            "lowers the score.",
            self._source_block(),
            f"Turn {min(self.turn + 1, self.max_turns)} of {self.max_turns}.",
        ]
        feedback = self._feedback_block((agent,))
        if feedback:
            lines.append(feedback)
        for role, action in self.visible_actions(agent).items():
            lines.append(
                f"=== PARTNER'S TEXT THIS TURN ({role}) ===\n{self._quote_text(action)}\n=== END PARTNER'S TEXT ==="
            )
        lines.append(f"Write your {agent} text now: plain prose, no heading, no preamble.")
        return "\n".join(lines)


class SingleWritingEnv(WritingEnv):
    """One writer produces both parts as labelled sections (see :mod:`.sections`)."""

    def _agent_ids(self) -> tuple[str, ...]:
        return ("writer",)

    def _texts_of(self, actions: dict[str, str | None]) -> tuple[dict[str, str], dict[str, str]]:
        action = actions["writer"]
        if action is None:
            return {}, {}
        sections = parse_sections(action, self.parts)
        if sections.problem is not None:
            return dict(sections.parts), {"writer": sections.problem}
        return dict(sections.parts), {}

    def _prompt(self, agent: str) -> str:
        first, second = self.parts
        limits = self.reward_config
        lines = [
            f"You write both parts of a pair. {self.task_instruction}",
            f"{first.upper()} part: {self.part_instructions[first]}",
            f"{second.upper()} part: {self.part_instructions[second]}",
            f"Each part must be {limits.min_tokens}-{limits.max_tokens} words. You are scored "
            "on how the two parts fit together and on covering the source in your own words; "
            "repeating yourself, copying long passages, or drifting off the subject lowers the "
            "score.",
            self._source_block(),
            f"Turn {min(self.turn + 1, self.max_turns)} of {self.max_turns}.",
        ]
        feedback = self._feedback_block(self.parts)
        if feedback:
            lines.append(feedback)
        lines.append(
            f"Answer in exactly this format, each label once, on its own line:\n"
            f"{first.upper()}:\n<the {first} part>\n\n{second.upper()}:\n<the {second} part>"
        )
        return "\n".join(lines)
