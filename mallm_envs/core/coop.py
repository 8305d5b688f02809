"""The cooperative turn machine: the rules of the PettingZoo AEC API, written once.

Every env of the project is a :class:`CoopEnv`: a team of agents plays turns, each agent
submits one action per turn, the family's rules resolve the joint action, and every agent
gets the same team reward. The base class owns what PettingZoo's order-enforcing wrapper
checks for its classic envs, and the rest of the API's bookkeeping:

* call order: ``step``/``observe``/``state`` before ``reset`` raise
  :class:`~mallm_envs.core.errors.ResetNeededError`, a step after the end
  :class:`~mallm_envs.core.errors.EpisodeOverError`, an unknown agent name
  :class:`~mallm_envs.core.errors.UnknownAgentError`;
* the schedule: who acts next, and which partner actions of this turn an agent may see
  (:meth:`CoopEnv.visible_actions`);
* dead steps: once the episode is over every agent is removed by ``step(None)``; any other
  action for a done agent raises :class:`~mallm_envs.core.errors.ActionTypeError`;
* rewards: the team reward of a resolved turn goes to every agent and accumulates in
  ``_cumulative_rewards`` as ``last()`` expects;
* the end: ``terminated`` when the rules say the task is finished, ``truncated`` at the
  horizon (``max_turns`` turns, or the family's own clock);
* the record: ``history`` keeps one :class:`TurnRecord` per played turn (an env whose
  turns need no record, such as the numeric kitchen, sets ``keep_history = False``).

A family implements the hooks (``_reset_task``, ``_take_action``, ``_play_turn``,
``_observe``, ``_state``; optionally ``_blank_info``, ``_turn_info``, ``_render``).
:class:`~mallm_envs.core.env.CoopTextEnv` implements the action and observation hooks
for text; a numeric env (the kitchen's ``KitchenNumericEnv``) implements them for numbers.
:class:`~mallm_envs.core.parallel.CoopParallelEnv` gives any of them the Parallel API.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
        truncated: the family's own clock ran out (the kitchen's horizon); the core also
            truncates by itself after ``max_turns`` turns.
    """

    reward: float
    components: Mapping[str, float] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    invalid: Mapping[str, str] = field(default_factory=dict)
    terminated: bool = False
    agent_infos: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    truncated: bool = False

    def __post_init__(self) -> None:
        reward = float(self.reward)
        if not math.isfinite(reward):
            raise ValueError(f"TurnResult.reward must be finite, got {self.reward!r}")
        set_field = object.__setattr__
        set_field(self, "reward", reward)
        set_field(self, "components", {k: float(v) for k, v in self.components.items()})
        set_field(self, "events", tuple([str(e) for e in self.events]) if self.events else ())


@dataclass(frozen=True)
class TurnRecord:
    """One played turn: what each agent submitted and what the rules made of it."""

    turn: int
    actions: Mapping[str, Any]
    result: TurnResult
    invalid: Mapping[str, str]


class CoopEnv(AECEnv):
    """A cooperative, turn-based env with the PettingZoo AEC API (see the module docstring).

    A subclass sets ``observation_spaces``, ``action_spaces`` and ``state_space`` in its
    ``__init__`` and implements the hooks below.
    """

    metadata: ClassVar[dict[str, Any]] = {
        "name": "coop_env",
        "render_modes": ["ansi", "human"],
        "is_parallelizable": True,
    }

    keep_history: ClassVar[bool] = True
    """Whether ``history`` records every turn (text envs show it in prompts)."""

    observation_spaces: dict[str, spaces.Space[Any]]
    action_spaces: dict[str, spaces.Space[Any]]
    state_space: spaces.Space[Any]

    def __init__(
        self,
        *,
        agents: Sequence[str],
        schedule: str = "simultaneous",
        max_turns: int = 1,
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
        self.render_mode = render_mode
        self.agents: list[str] = []
        self._np_random, self._np_random_seed = seeding.np_random(None)
        self._has_reset = False
        self.spec = None  # set by mallm_envs.make to the EnvSpec the env was built from

    # ----------------------------------------------------------------- family hooks

    def _reset_task(self, rng: np.random.Generator, options: dict[str, Any]) -> None:
        """Set up a new episode; ``rng`` is seeded by ``reset(seed=...)``."""
        raise NotImplementedError

    def _take_action(self, agent: str, action: Any) -> tuple[Any, str | None]:
        """``(value to play, why it cannot be used or None)``; raise ActionTypeError for
        an action of the wrong type. Called for every agent of a step before any is taken."""
        raise NotImplementedError

    def _play_turn(self, actions: dict[str, Any]) -> TurnResult:
        """Apply one turn's joint action; ``actions[agent]`` is ``None`` where the action
        could not be used (the reason is recorded for that agent)."""
        raise NotImplementedError

    def _observe(self, agent: str) -> Any:
        """What ``agent`` observes now (``agent`` is known and the env was reset)."""
        raise NotImplementedError

    def _state(self) -> Any:
        """The global view for a centralized critic."""
        raise NotImplementedError

    def _blank_info(self) -> dict[str, Any]:
        """Each agent's info before the first turn is played."""
        return {"reward_components": {}, "events": []}

    def _turn_info(self, agent: str, result: TurnResult, invalid: str | None) -> dict[str, Any]:
        """``agent``'s info after a turn (``invalid``: why its action could not be used)."""
        info: dict[str, Any] = {
            "reward_components": dict(result.components),
            "events": list(result.events),
        }
        extra = result.agent_infos.get(agent)
        if extra:
            info.update(extra)
        return info

    @property
    def data_hash(self) -> str | None:
        """A hash of the task data this env draws from, or ``None`` if it has none."""
        return None

    # ----------------------------------------------------------------- spaces

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        try:
            return self.observation_spaces[agent]
        except KeyError:
            raise UnknownAgentError(self._unknown_agent(agent)) from None

    def action_space(self, agent: str) -> spaces.Space[Any]:
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
        self._pending: dict[str, Any] = {}
        self._pending_invalid: dict[str, str] = {}
        self._order = list(self.possible_agents)
        self._order_index = 0
        self.agent_selection = self._order[0]
        self._skip_agent_selection = None
        self._has_reset = True
        self._reset_task(self._np_random, dict(options or {}))

    def observe(self, agent: str) -> Any:
        if not self._has_reset:
            self._require_reset()
        if agent not in self.possible_agents:
            raise UnknownAgentError(self._unknown_agent(agent))
        return self._observe(agent)

    def state(self) -> Any:
        self._require_reset()
        return self._state()

    def visible_actions(self, agent: str) -> dict[str, Any]:
        """Partner actions of the current turn that ``agent`` may see.

        Empty in the simultaneous schedule; in the sequential schedule, the actions of the
        agents ordered before ``agent`` that have already acted this turn.
        """
        if self.schedule == "simultaneous":
            return {}
        position = self.possible_agents.index(agent)
        earlier = self.possible_agents[:position]
        return {a: self._pending[a] for a in earlier if a in self._pending}

    def step(self, action: Any) -> None:
        if not self._has_reset:
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
        self._submit((agent,), {agent: action})

    def acting_agents(self) -> list[str]:
        """The agents a step of the Parallel API takes actions from now, in order: every
        agent yet to act this turn (simultaneous), or the selected agent (sequential)."""
        if not self.agents:
            return []
        if self.schedule == "simultaneous":
            return self._order[self._order_index :]
        return [self.agent_selection]

    def _submit(self, acting: Sequence[str], actions: Mapping[str, Any]) -> None:
        """Take the actions of ``acting``, the next agents in order, all live (one agent for
        an AEC step, a stage of a turn for a Parallel step). Every action is checked before
        any is taken, so an action of the wrong type changes nothing."""
        take = self._take_action
        taken = [take(agent, actions[agent]) for agent in acting]
        cumulative, pending = self._cumulative_rewards, self._pending
        for agent, (value, problem) in zip(acting, taken):
            cumulative[agent] = 0.0
            if problem is not None:
                self._pending_invalid[agent] = problem
            pending[agent] = value
        self._next_agent(len(acting))

    def _next_agent(self, acted: int) -> None:
        """Select the next agent after ``acted`` more have acted; resolve a complete turn."""
        self._order_index += acted
        if self._order_index < len(self._order):
            self.rewards = dict.fromkeys(self.agents, 0.0)
            self.agent_selection = self._order[self._order_index]
            return
        self._resolve_turn()

    def _resolve_turn(self) -> None:
        # _submit filled _pending in turn order, so it is the joint action as it stands.
        pending, invalid = self._pending, self._pending_invalid
        actions = (
            {a: (None if a in invalid else pending[a]) for a in pending} if invalid else pending
        )
        result = self._play_turn(actions)
        self._pending, self._pending_invalid = {}, {}
        if result.invalid:
            for a, reason in result.invalid.items():
                invalid.setdefault(a, reason)
        if self.keep_history:
            self.history.append(
                TurnRecord(turn=self.turn, actions=pending, result=result, invalid=invalid)
            )
        self.turn += 1
        done_task = bool(result.terminated)
        done_horizon = (self.turn >= self.max_turns or result.truncated) and not done_task
        agents, reward = self.agents, result.reward
        self.rewards = dict.fromkeys(agents, reward)
        self.terminations = dict.fromkeys(agents, done_task)
        self.truncations = dict.fromkeys(agents, done_horizon)
        infos, cumulative, turn_info = self.infos, self._cumulative_rewards, self._turn_info
        for a in agents:
            infos[a] = turn_info(a, result, invalid.get(a))
            cumulative[a] += reward
        self._order_index = 0
        self.agent_selection = self._order[0]
        if self.render_mode == "human":
            self.render()

    def _require_reset(self) -> None:
        if not self._has_reset:
            raise ResetNeededError("call reset() before using the environment")

    # ----------------------------------------------------------------- rendering

    def render(self) -> Any:
        if self.render_mode is None:
            return None
        self._require_reset()
        frame = self._render()
        if self.render_mode == "human":
            print(frame)
            return None
        return frame

    def _render(self) -> Any:
        """The frame for ``render_mode`` (text for ``ansi`` and ``human``)."""
        return self._render_text()

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
        return str(self.metadata.get("name", type(self).__name__))
