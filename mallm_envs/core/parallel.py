"""The Parallel API over any :class:`~mallm_envs.core.coop.CoopEnv`, text or numeric.

``mallm_envs.make_parallel(id)`` returns a :class:`CoopParallelEnv` around the id's AEC env
unless the spec names its own parallel class (the numeric kitchen's is this adapter around
its AEC env). One ``step(actions)`` plays:

* in the simultaneous schedule, one whole turn: every live agent's action;
* in the sequential schedule, one stage of a turn: only the agents whose stage it is act
  (``infos[agent]["acting"]`` says who; observations of the others say they wait). Actions
  given for waiting agents are ignored, so a loop that always sends every agent's action
  works, and a loop that sends only the acting agents' actions works too.

Every action of a step is checked before any is taken: a step that raises changes nothing.
The observation each agent gets is the one the AEC env would show it at that moment, so the
two APIs give the same transcripts for the same actions. Public attributes the adapter does
not have itself (``kitchen``, ``game_state`` ...) are read from the AEC env.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gymnasium import spaces
from pettingzoo import ParallelEnv

from mallm_envs.core.coop import CoopEnv
from mallm_envs.core.errors import (
    EpisodeOverError,
    NotYourTurnError,
    ResetNeededError,
    UnknownAgentError,
)


class CoopParallelEnv(ParallelEnv):
    """Parallel API for a cooperative env (see the module docstring)."""

    def __init__(self, env: CoopEnv) -> None:
        self.aec_env = env
        self.metadata = dict(env.metadata)
        self.possible_agents = list(env.possible_agents)
        self.observation_spaces = env.observation_spaces
        self.action_spaces = env.action_spaces
        self.state_space = env.state_space
        self.render_mode = env.render_mode
        self.agents: list[str] = []
        self._has_reset = False

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes the adapter lacks; never for private ones (so copy
        # and pickle, which probe dunder names before __init__ has run, are not forwarded).
        if name.startswith("_") or "aec_env" not in self.__dict__:
            raise AttributeError(name)
        return getattr(self.aec_env, name)

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

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self.aec_env.observation_space(agent)

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self.aec_env.action_space(agent)

    def acting_agents(self) -> list[str]:
        """The agents whose actions the next ``step`` uses."""
        return self.aec_env.acting_agents()

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        env = self.aec_env
        env.reset(seed=seed, options=options)
        self.agents = list(env.agents)
        self._has_reset = True
        acting = set(env.acting_agents())
        infos = {a: {**env.infos[a], "acting": a in acting} for a in env.agents}
        return self._observations(), infos

    def _observations(self) -> dict[str, Any]:
        env = self.aec_env
        return {a: env._observe(a) for a in env.agents}

    def step(
        self, actions: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, Any]]:
        if not self._has_reset:
            raise ResetNeededError("call reset() before step()")
        env = self.aec_env
        if not env.agents:
            raise EpisodeOverError("the episode is over; call reset() to start a new one")
        possible = env.possible_agents
        for agent in actions:
            if agent not in possible:
                raise UnknownAgentError(
                    f"unknown agent {agent!r} in actions; this environment's agents are {possible}"
                )
        acting = env.acting_agents()
        for agent in acting:
            if agent not in actions:
                missing = [a for a in acting if a not in actions]
                raise NotYourTurnError(
                    f"step() needs an action for {missing} (the agents acting now: {acting})"
                )
        env._submit(acting, actions)
        observe = env._observe
        observations = {a: observe(a) for a in env.agents}
        rewards = dict(env.rewards)
        terminations = dict(env.terminations)
        truncations = dict(env.truncations)
        finished = any(terminations.values()) or any(truncations.values())
        acting_next = [] if finished else env.acting_agents()
        infos = {a: {**info, "acting": a in acting_next} for a, info in env.infos.items()}
        if finished:
            # Remove the finished agents from the AEC env, as the AEC loop would.
            while env.agents and (
                env.terminations[env.agent_selection] or env.truncations[env.agent_selection]
            ):
                env.step(None)
        self.agents = list(env.agents)
        return observations, rewards, terminations, truncations, infos

    def state(self) -> Any:
        return self.aec_env.state()

    def render(self) -> Any:
        return self.aec_env.render()

    def close(self) -> None:
        self.aec_env.close()

    @property
    def unwrapped(self) -> CoopParallelEnv:
        return self

    def __str__(self) -> str:
        return str(self.aec_env)


TextParallelEnv = CoopParallelEnv
"""The adapter's earlier name (text envs were its only users); kept for old imports."""
