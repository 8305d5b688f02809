"""Build agents from short text specs, as the command line and the leaderboard take them.

========================  =============================================================
spec                      agent
========================  =============================================================
``random``                :class:`~mallm_envs.agents.base.RandomAgent` (realistic noise)
``scripted``              the env's scripted reference agent for that role
``fixed:TEXT``            always answers ``TEXT``
``package.module:name``   ``name(env, agent_name)`` from an importable module (your own)
========================  =============================================================
"""

from __future__ import annotations

import importlib
from typing import Any

from mallm_envs.agents.base import BaseAgent, FixedAgent, RandomAgent
from mallm_envs.core.errors import MallmError
from mallm_envs.core.spaces import UnicodeText


class AgentSpecError(MallmError, ValueError):
    """An agent spec that names no buildable agent."""


class SpaceSampleAgent(BaseAgent):
    """Uniform samples from a non-text action space (numeric envs such as the kitchen's)."""

    def __init__(self, space: Any, seed: int | None = None) -> None:
        self.space = space
        self.space.seed(seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.space.seed(seed)

    def act(self, observation: Any, info: Any) -> Any:
        sample = self.space.sample()
        return sample.item() if hasattr(sample, "item") else sample

    def describe(self) -> dict[str, Any]:
        return {"class": "random", "space": repr(self.space)}


BUILTIN = ("random", "scripted", "fixed:TEXT", "package.module:factory")


def build_agent(spec: str, env: Any, agent: str, *, seed: int | None = None) -> Any:
    """The agent that ``spec`` names, for role ``agent`` of ``env``."""
    if spec == "random":
        space = env.action_space(agent)
        if not isinstance(space, UnicodeText):
            return SpaceSampleAgent(space, seed=seed)
        return RandomAgent(max_length=min(space.max_length, 400), seed=seed)
    if spec == "scripted":
        env_spec = getattr(env.unwrapped, "spec", None)
        entry = getattr(env_spec, "scripted_agent", None)
        if entry is None:
            raise AgentSpecError(
                f"{getattr(env_spec, 'id', env)} has no scripted agent; use 'random' or your own"
            )
        return _load(entry)(env, agent)
    if spec.startswith("fixed:"):
        return FixedAgent(spec[len("fixed:") :])
    if ":" in spec:
        return _load(spec)(env, agent)
    raise AgentSpecError(f"unknown agent spec {spec!r}; use one of: {', '.join(BUILTIN)}")


def build_agents(specs: str | list[str], env: Any, *, seed: int | None = None) -> dict[str, Any]:
    """One agent per role: a single spec for all roles, or one per role (comma-separated)."""
    items = specs.split(",") if isinstance(specs, str) else list(specs)
    items = [s.strip() for s in items if s.strip()]
    roles = list(env.possible_agents)
    if len(items) == 1:
        items = items * len(roles)
    if len(items) != len(roles):
        raise AgentSpecError(
            f"got {len(items)} agent specs for {len(roles)} roles {roles}; give one, or one per role"
        )
    return {role: build_agent(s, env, role, seed=seed) for role, s in zip(roles, items)}


def _load(entry: str) -> Any:
    module_name, _, attr = entry.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)
    except (ImportError, AttributeError) as err:
        raise AgentSpecError(f"cannot load agent {entry!r}: {err}") from None
