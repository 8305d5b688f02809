"""The Parallel API over a :class:`~mallm_envs.core.env.CoopTextEnv`.

``mallm_envs.make_parallel(id)`` returns a :class:`TextParallelEnv` unless the env's spec
names its own parallel class. One ``step(actions)`` plays:

* in the simultaneous schedule, one whole turn: every live agent's action;
* in the sequential schedule, one stage of a turn: only the agents whose stage it is act
  (``infos[agent]["acting"]`` says who; observations of the others say they wait). Actions
  given for waiting agents are ignored, so a loop that always sends every agent's action
  works, and a loop that sends only the acting agents' actions works too.

The observation each agent gets is the one the AEC env would show it at that moment, so the
two APIs give the same transcripts for the same actions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gymnasium import spaces
from pettingzoo import ParallelEnv

from mallm_envs.core.env import CoopTextEnv
from mallm_envs.core.errors import (
    EpisodeOverError,
    NotYourTurnError,
    ResetNeededError,
    UnknownAgentError,
)


class TextParallelEnv(ParallelEnv):
    """Parallel API for a cooperative text env (see the module docstring)."""

    def __init__(self, env: CoopTextEnv) -> None:
        self.aec_env = env
        self.metadata = dict(env.metadata)
        self.possible_agents = list(env.possible_agents)
        self.observation_spaces = env.observation_spaces
        self.action_spaces = env.action_spaces
        self.state_space = env.state_space
        self.render_mode = env.render_mode
        self.agents: list[str] = []
        self._has_reset = False

    @property
    def spec(self) -> Any:
        return self.aec_env.spec

    @spec.setter
    def spec(self, value: Any) -> None:
        self.aec_env.spec = value

    @property
    def data_hash(self) -> str | None:
        return self.aec_env.data_hash

    @property
    def schedule(self) -> str:
        return self.aec_env.schedule

    def observation_space(self, agent: str) -> spaces.Space:
        return self.aec_env.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space:
        return self.aec_env.action_space(agent)

    def acting_agents(self) -> list[str]:
        """The agents whose actions the next ``step`` uses."""
        env = self.aec_env
        if not env.agents:
            return []
        if env.schedule == "simultaneous":
            return list(env.agents)
        return [env.agent_selection]

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        self.aec_env.reset(seed=seed, options=options)
        self.agents = list(self.aec_env.agents)
        self._has_reset = True
        return self._observations(), self._infos()

    def _infos(self) -> dict[str, dict[str, Any]]:
        acting = set(self.acting_agents())
        return {a: {**self.aec_env.infos[a], "acting": a in acting} for a in self.aec_env.agents}

    def _observations(self) -> dict[str, dict[str, Any]]:
        return {a: self.aec_env.observe(a) for a in self.aec_env.agents}

    def step(self, actions: Mapping[str, str]) -> tuple[dict, dict, dict, dict, dict]:
        if not self._has_reset:
            raise ResetNeededError("call reset() before step()")
        env = self.aec_env
        if not env.agents:
            raise EpisodeOverError("the episode is over; call reset() to start a new one")
        for agent in actions:
            if agent not in env.possible_agents:
                raise UnknownAgentError(
                    f"unknown agent {agent!r} in actions; this environment's agents are {env.possible_agents}"
                )
        acting = self.acting_agents()
        missing = [a for a in acting if a not in actions]
        if missing:
            raise NotYourTurnError(
                f"step() needs an action for {missing} (the agents acting now: {acting})"
            )
        rewards = dict.fromkeys(env.agents, 0.0)
        for agent in acting:
            assert env.agent_selection == agent
            env.step(actions[agent])
            for a, r in env.rewards.items():
                rewards[a] += r
        terminations = {a: env.terminations[a] for a in env.agents}
        truncations = {a: env.truncations[a] for a in env.agents}
        observations = self._observations()
        finished = [a for a in env.agents if terminations[a] or truncations[a]]
        infos = {a: {**env.infos[a], "acting": False} for a in env.agents}
        if finished:
            # Remove the finished agents from the AEC env, as the AEC loop would.
            while env.agents and (
                env.terminations[env.agent_selection] or env.truncations[env.agent_selection]
            ):
                env.step(None)
        else:
            for a in self.acting_agents():
                infos[a]["acting"] = True
        self.agents = list(env.agents)
        return observations, rewards, terminations, truncations, infos

    def state(self) -> str:
        return self.aec_env.state()

    def render(self) -> str | None:
        return self.aec_env.render()

    def close(self) -> None:
        self.aec_env.close()

    @property
    def unwrapped(self) -> TextParallelEnv:
        return self

    def __str__(self) -> str:
        return str(self.aec_env)
