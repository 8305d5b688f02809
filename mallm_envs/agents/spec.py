"""Build agents from short text specs, as the command line and the leaderboard take them.

========================  =============================================================
spec                      agent
========================  =============================================================
``random``                :class:`~mallm_envs.agents.base.RandomAgent` (realistic noise)
``scripted``              the env's scripted reference agent for that role
``fixed:TEXT``            always answers ``TEXT``
``llm:MODEL``             a frozen language model per role (``tiny``, a folder, a .gguf
                          file); needs the ``llm`` extra
``prompting:S[:MODEL]``   the paper's prompting baselines with one frozen model; ``S`` is
                          ``single``, ``parallel``, ``sequential`` or ``discussion``
``checkpoint:PATH``       the policies a trainer in ``baselines/`` saved (run folder or
                          ``checkpoint.pt``)
``package.module:name``   ``name(env, agent_name)`` from an importable module (your own)
========================  =============================================================

Models are loaded once per process and shared by every episode that names them.
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


BUILTIN = (
    "random",
    "scripted",
    "fixed:TEXT",
    "llm:MODEL",
    "prompting:STRATEGY[:MODEL]",
    "checkpoint:PATH",
    "package.module:factory",
)
_MODELS: dict[tuple[Any, ...], Any] = {}


def _cached(key: tuple[Any, ...], build: Any) -> Any:
    if key not in _MODELS:
        _MODELS[key] = build()
    return _MODELS[key]


def _llm_module() -> Any:
    try:
        from mallm_envs.agents import llm
    except ImportError as err:
        raise AgentSpecError(f"LLM agents need the 'llm' extra: {err}") from None
    return llm


def _llm_agents(spec: str, env: Any, seed: int | None) -> dict[str, Any] | None:
    """Teams of LLM agents, or ``None`` when ``spec`` is not an LLM spec."""
    roles = tuple(env.possible_agents)
    kind, _, rest = spec.partition(":")
    if kind == "llm":
        llm = _llm_module()
        model = rest or "tiny"
        lm = _cached(("llm", model, roles), lambda: llm.MultiAgentLM(roles, model, adapter="none"))
        return {r: llm.LLMAgent(lm, agent_id=r, seed=seed or 0) for r in roles}
    if kind == "prompting":
        llm = _llm_module()
        from mallm_envs.agents import prompting

        strategy, _, model = rest.partition(":")
        if strategy not in prompting.STRATEGIES:
            raise AgentSpecError(
                f"prompting strategy must be one of {prompting.STRATEGIES}, got {strategy!r}"
            )
        model = model or "tiny"
        lm = _cached(("llm", model, roles), lambda: llm.MultiAgentLM(roles, model, adapter="none"))
        return prompting.prompting_team(strategy, lm, env, seed=seed or 0)
    if kind == "checkpoint":
        llm = _llm_module()
        if not rest:
            raise AgentSpecError("checkpoint: needs a path, e.g. checkpoint:runs/magrpo")
        lm, sampling = _cached(("checkpoint", rest, roles), lambda: llm.load_trained(rest, roles))
        return {r: llm.LLMAgent(lm, agent_id=r, sampling=sampling, seed=seed or 0) for r in roles}
    return None


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
    if isinstance(specs, str) and specs.split(":", 1)[0] in ("llm", "prompting", "checkpoint"):
        team = _llm_agents(specs.strip(), env, seed)
        assert team is not None
        return team
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
