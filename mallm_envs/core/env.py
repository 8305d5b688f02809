"""The base class of cooperative, turn-based text environments.

A family subclasses :class:`CoopTextEnv` and implements four hooks. The turn machine it
inherits (:class:`~mallm_envs.core.coop.CoopEnv`) speaks the PettingZoo AEC API, enforces
the call order, runs the schedule and hands out one team reward; this class adds text: it
checks every submitted string, shows prompts and fills ``infos``.

Episode structure
-----------------
An episode is up to ``max_turns`` turns. In every turn each agent submits one text action.

* ``schedule="simultaneous"`` (the paper's Dec-POMDP): all agents answer the same state;
  nobody sees a partner's action of this turn. The turn is resolved when the last agent has
  acted.
* ``schedule="sequential"`` (a pipeline): agents act in ``possible_agents`` order and a later
  agent sees the actions that earlier agents submitted in the same turn
  (:meth:`CoopTextEnv.visible_actions`).

When a turn is resolved the family's :meth:`~CoopTextEnv._play_turn` returns a
:class:`TurnResult`; every agent receives ``result.reward`` and ``infos[agent]`` carries
``reward_components``, ``events`` and ``invalid_reason`` (``None`` when the action was
usable) plus the family's own per-agent fields. The episode ends when the result says
``terminated`` (task finished) or when ``max_turns`` turns have been played (truncation:
the horizon, not the task, ended it).

Hooks a family implements
-------------------------
``_reset_task(rng, options)``
    pick and set up the task; ``rng`` is the env's own ``numpy.random.Generator`` seeded by
    ``reset(seed=...)``. Never use global random state.
``_prompt(agent) -> str``
    the text this agent observes now (task, its history, feedback, partner actions that it
    may see).
``_play_turn(actions) -> TurnResult``
    apply the joint action of one turn. ``actions[agent]`` is ``None`` where the core already
    refused the text (the reason is recorded for that agent).
``_state_text() -> str``
    the global view for a centralized critic.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, ClassVar

from gymnasium import spaces

from mallm_envs.core.coop import SCHEDULES, CoopEnv, TurnRecord, TurnResult
from mallm_envs.core.errors import ActionTypeError
from mallm_envs.core.spaces import UnicodeText
from mallm_envs.core.text import action_problem, shorten

__all__ = ["SCHEDULES", "CoopTextEnv", "TurnRecord", "TurnResult"]


class CoopTextEnv(CoopEnv):
    """A cooperative, multi-turn text environment with the PettingZoo AEC API.

    Observations are dicts ``{"text": str, "turn": int}``: ``text`` is the prompt for the
    agent (ready to give to a language model), ``turn`` the 0-based turn index. Actions are
    any ``str``; see :mod:`mallm_envs.core.text` for the strings that give an invalid-action
    outcome instead of being used.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "coop_text_env",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    def __init__(
        self,
        *,
        agents: Sequence[str],
        schedule: str = "simultaneous",
        max_turns: int = 1,
        max_action_chars: int = 16_000,
        max_observation_chars: int = 32_000,
        max_state_chars: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(
            agents=agents, schedule=schedule, max_turns=max_turns, render_mode=render_mode
        )
        self.max_action_chars = max_action_chars
        self.max_observation_chars = max_observation_chars
        obs_space = spaces.Dict(
            {
                "text": UnicodeText(max_observation_chars),
                "turn": spaces.Discrete(max_turns + 1),
            }
        )
        self.observation_spaces = {a: copy.deepcopy(obs_space) for a in agents}
        self.action_spaces = {a: UnicodeText(max_action_chars) for a in agents}
        self._max_state_chars = max_state_chars or max_observation_chars * max(2, len(agents))
        self.state_space = UnicodeText(self._max_state_chars)

    # ----------------------------------------------------------------- family hooks

    def _prompt(self, agent: str) -> str:
        raise NotImplementedError

    def _state_text(self) -> str:
        raise NotImplementedError

    # ----------------------------------------------------------------- text on the turn machine

    def _take_action(self, agent: str, action: Any) -> tuple[str, str | None]:
        if not isinstance(action, str):
            raise ActionTypeError(
                f"actions are text: step() needs a str for agent {agent!r}, got {type(action).__name__}"
                + (" (None is only for agents that are done)" if action is None else "")
            )
        return action, action_problem(action, self.max_action_chars)

    def _observe(self, agent: str) -> dict[str, Any]:
        text = shorten(self._prompt(agent), self.max_observation_chars)
        return {"text": text, "turn": min(self.turn, self.max_turns)}

    def _state(self) -> str:
        return shorten(self._state_text(), self._max_state_chars)

    def _blank_info(self) -> dict[str, Any]:
        return {"turn": 0, "reward_components": {}, "events": [], "invalid_reason": None}

    def _turn_info(self, agent: str, result: TurnResult, invalid: str | None) -> dict[str, Any]:
        info: dict[str, Any] = {
            "turn": self.turn,
            "reward_components": dict(result.components),
            "events": list(result.events),
            "invalid_reason": invalid,
        }
        extra = result.agent_infos.get(agent)
        if extra:
            info.update(extra)
        return info
