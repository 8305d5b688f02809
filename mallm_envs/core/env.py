"""The base class of cooperative, turn-based text environments.

A family subclasses :class:`CoopTextEnv` and implements four hooks; the base class speaks
the PettingZoo AEC API, enforces the call order, checks every submitted string, runs the
schedule, hands out one team reward and fills ``infos``.

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
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import AECEnv

from mallm_envs.core.errors import (
    ActionTypeError,
    EnvArgumentError,
    EpisodeOverError,
    ResetNeededError,
    UnknownAgentError,
)
from mallm_envs.core.spaces import UnicodeText
from mallm_envs.core.text import action_problem, shorten

SCHEDULES = ("simultaneous", "sequential")


@dataclass(frozen=True)
class TurnResult:
    """The outcome of one turn, as computed by a family's rules.

    Attributes:
        reward: the team reward of this turn (the same for every agent).
        components: the reward's named parts (they need not sum to ``reward`` when a gate
            stops the sum; each is logged under its own name).
        events: short, human-readable notes on what happened ("tests: 3/5 passed").
        invalid: agent -> why its action could not be used (empty when all were usable).
        terminated: the task is finished (solved, or cannot continue) before the horizon.
        agent_infos: agent -> extra JSON-serialisable info fields for that agent.
    """

    reward: float
    components: Mapping[str, float] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    invalid: Mapping[str, str] = field(default_factory=dict)
    terminated: bool = False
    agent_infos: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        reward = float(self.reward)
        if not math.isfinite(reward):
            raise ValueError(f"TurnResult.reward must be finite, got {self.reward!r}")
        object.__setattr__(self, "reward", reward)
        object.__setattr__(self, "components", {k: float(v) for k, v in self.components.items()})
        object.__setattr__(self, "events", tuple(str(e) for e in self.events))


@dataclass(frozen=True)
class TurnRecord:
    """One played turn: what each agent submitted and what the rules made of it."""

    turn: int
    actions: Mapping[str, str]
    result: TurnResult
    invalid: Mapping[str, str]


class CoopTextEnv(AECEnv):
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
        agents: tuple[str, ...],
        schedule: str = "simultaneous",
        max_turns: int = 1,
        max_action_chars: int = 16_000,
        max_observation_chars: int = 32_000,
        max_state_chars: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__()
        if schedule not in SCHEDULES:
            raise EnvArgumentError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        if not isinstance(max_turns, int) or isinstance(max_turns, bool) or max_turns < 1:
            raise EnvArgumentError(f"max_turns must be an int >= 1, got {max_turns!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise EnvArgumentError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}"
            )
        if len(set(agents)) != len(agents) or not agents:
            raise EnvArgumentError(f"agents must be distinct names, got {agents!r}")
        self.possible_agents = list(agents)
        self.schedule = schedule
        self.max_turns = max_turns
        self.max_action_chars = max_action_chars
        self.max_observation_chars = max_observation_chars
        self.render_mode = render_mode
        obs_space = spaces.Dict(
            {
                "text": UnicodeText(max_observation_chars),
                "turn": spaces.Discrete(max_turns + 1),
            }
        )
        self.observation_spaces = {a: copy.deepcopy(obs_space) for a in agents}
        self.action_spaces = {a: UnicodeText(max_action_chars) for a in agents}
        self.state_space = UnicodeText(
            max_state_chars or max_observation_chars * max(2, len(agents))
        )
        self.agents = []
        self._np_random, self._np_random_seed = seeding.np_random(None)
        self._has_reset = False
        self.spec = None  # set by mallm_envs.make to the EnvSpec the env was built from

    # ----------------------------------------------------------------- family hooks

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        raise NotImplementedError

    def _prompt(self, agent: str) -> str:
        raise NotImplementedError

    def _play_turn(self, actions: dict[str, str | None]) -> TurnResult:
        raise NotImplementedError

    def _state_text(self) -> str:
        raise NotImplementedError

    @property
    def data_hash(self) -> str | None:
        """A hash of the task data this env draws from, or ``None`` if it has none."""
        return None

    # ----------------------------------------------------------------- spaces

    def observation_space(self, agent: str) -> spaces.Space:
        try:
            return self.observation_spaces[agent]
        except KeyError:
            raise UnknownAgentError(self._unknown_agent(agent)) from None

    def action_space(self, agent: str) -> spaces.Space:
        try:
            return self.action_spaces[agent]
        except KeyError:
            raise UnknownAgentError(self._unknown_agent(agent)) from None

    def _unknown_agent(self, agent: object) -> str:
        return f"unknown agent {agent!r}; this environment's agents are {self.possible_agents}"

    # ----------------------------------------------------------------- API

    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None) -> None:
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self.agents = list(self.possible_agents)
        self.rewards = dict.fromkeys(self.agents, 0.0)
        self._cumulative_rewards = dict.fromkeys(self.agents, 0.0)
        self.terminations = dict.fromkeys(self.agents, False)
        self.truncations = dict.fromkeys(self.agents, False)
        self.infos = {a: self._blank_info() for a in self.agents}
        self.turn = 0
        self.history: list[TurnRecord] = []
        self._pending: dict[str, str] = {}
        self._pending_invalid: dict[str, str] = {}
        self._order = list(self.possible_agents)
        self._order_index = 0
        self.agent_selection = self._order[0]
        self._skip_agent_selection = None
        self._has_reset = True
        self._reset_task(self._np_random, dict(options or {}))

    def _blank_info(self) -> dict[str, Any]:
        return {"turn": 0, "reward_components": {}, "events": [], "invalid_reason": None}

    def observe(self, agent: str) -> dict[str, Any]:
        self._require_reset()
        if agent not in self.possible_agents:
            raise UnknownAgentError(self._unknown_agent(agent))
        text = shorten(self._prompt(agent), self.max_observation_chars)
        return {"text": text, "turn": min(self.turn, self.max_turns)}

    def state(self) -> str:
        self._require_reset()
        return shorten(self._state_text(), self.state_space.max_length)

    def visible_actions(self, agent: str) -> dict[str, str]:
        """Partner actions of the current turn that ``agent`` may see.

        Empty in the simultaneous schedule; in the sequential schedule, the actions of the
        agents ordered before ``agent`` that have already acted this turn.
        """
        if self.schedule == "simultaneous":
            return {}
        position = self.possible_agents.index(agent)
        earlier = self.possible_agents[:position]
        return {a: self._pending[a] for a in earlier if a in self._pending}

    def step(self, action: str | None) -> None:
        self._require_reset()
        if not self.agents:
            raise EpisodeOverError(
                "the episode is over (every agent is done); call reset() to start a new one"
            )
        agent = self.agent_selection
        if self.terminations[agent] or self.truncations[agent]:
            if action is not None:
                raise ActionTypeError(
                    f"agent {agent!r} is done; step(None) removes it (got {type(action).__name__})"
                )
            self._was_dead_step(action)
            return
        if not isinstance(action, str):
            raise ActionTypeError(
                f"actions are text: step() needs a str for agent {agent!r}, got {type(action).__name__}"
                + (" (None is only for agents that are done)" if action is None else "")
            )
        self._cumulative_rewards[agent] = 0.0
        self.rewards = dict.fromkeys(self.agents, 0.0)
        problem = action_problem(action, self.max_action_chars)
        if problem is not None:
            self._pending_invalid[agent] = problem
        self._pending[agent] = action
        self._order_index += 1
        if self._order_index < len(self._order):
            self.agent_selection = self._order[self._order_index]
            return
        self._resolve_turn()

    def _resolve_turn(self) -> None:
        actions = {
            a: (None if a in self._pending_invalid else self._pending[a]) for a in self._order
        }
        result = self._play_turn(actions)
        invalid = dict(self._pending_invalid)
        for a, reason in result.invalid.items():
            invalid.setdefault(a, reason)
        self.history.append(
            TurnRecord(turn=self.turn, actions=dict(self._pending), result=result, invalid=invalid)
        )
        self.turn += 1
        done_task = bool(result.terminated)
        done_horizon = self.turn >= self.max_turns and not done_task
        for a in self.agents:
            info = {
                "turn": self.turn,
                "reward_components": dict(result.components),
                "events": list(result.events),
                "invalid_reason": invalid.get(a),
            }
            info.update(result.agent_infos.get(a, {}))
            self.infos[a] = info
            self.rewards[a] = result.reward
            self.terminations[a] = done_task
            self.truncations[a] = done_horizon
        self._accumulate_rewards()
        self._pending = {}
        self._pending_invalid = {}
        self._order_index = 0
        self.agent_selection = self._order[0]
        if self.render_mode == "human":
            self.render()

    def _require_reset(self) -> None:
        if not self._has_reset:
            raise ResetNeededError("call reset() before using the environment")

    # ----------------------------------------------------------------- rendering

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        self._require_reset()
        text = self._render_text()
        if self.render_mode == "human":
            print(text)
            return None
        return text

    def _render_text(self) -> str:
        lines = [f"turn {self.turn}/{self.max_turns} ({self.schedule})"]
        if self.history:
            last = self.history[-1]
            lines.append(f"last reward {last.result.reward:.3f} {dict(last.result.components)}")
            lines.extend(f"  {event}" for event in last.result.events)
        return "\n".join(lines)

    def close(self) -> None:
        pass

    def __str__(self) -> str:
        return self.metadata.get("name", type(self).__name__)
