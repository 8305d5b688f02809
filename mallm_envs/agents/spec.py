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

``MODEL`` is ``tiny`` (the offline random test model), a named model such as
``smollm2-135m`` (SmolLM2-135M-Instruct from its installed package: see
:mod:`mallm_envs.data.models`), a local folder, a ``.gguf`` file or a hub id.

How the LLM agents load and decode (device, dtype, temperature, top-p, max new tokens,
downloads) is an :class:`LLMSettings`, given to :func:`build_agents` (the command line's
``--device``, ``--dtype``, ``--temperature``, ``--top-p``, ``--max-new-tokens`` and
``--allow-download``). What ran is what the agents' ``describe()`` records, so a submission
cannot claim other settings than those it used. Models are loaded once per process and
shared by every episode that names them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, replace
from typing import Any

from mallm_envs.agents.base import BaseAgent, FixedAgent, RandomAgent
from mallm_envs.core.errors import MallmError
from mallm_envs.core.spaces import UnicodeText


class AgentSpecError(MallmError, ValueError):
    """An agent spec that names no buildable agent."""


DEFAULT_TEMPERATURE = 0.7
DEFAULT_TOP_P = 0.9
DEFAULT_MAX_NEW_TOKENS = 256
"""Default response budget of ``llm:`` and ``prompting:`` agents (the trainers' default too):
a whole small function or a paragraph fits; 64 tokens cut code mid-function."""


@dataclass(frozen=True)
class LLMSettings:
    """How ``llm:``, ``prompting:`` and ``checkpoint:`` agents load and decode.

    A field left at ``None`` takes the agent's default: for ``llm:`` and ``prompting:``
    temperature 0.7, top-p 0.9 and 256 new tokens; for ``checkpoint:`` the settings the run
    trained with. ``temperature=0`` is greedy decoding (the only reproducible kind).

    Attributes:
        temperature: sampling temperature, >= 0.
        top_p: nucleus sampling mass, in (0, 1].
        max_new_tokens: the most tokens a response may have, >= 1.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        dtype: ``float32`` (default), ``bfloat16`` or ``float16`` (``fp32``, ``bf16``, ``fp16``).
        allow_download: let a hub id be fetched (off: only local files and the local cache).
    """

    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    device: str = "cpu"
    dtype: str | None = None
    allow_download: bool = False

    def __post_init__(self) -> None:
        if self.temperature is not None and not (
            isinstance(self.temperature, (int, float)) and self.temperature >= 0
        ):
            raise AgentSpecError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.top_p is not None and not (
            isinstance(self.top_p, (int, float)) and 0 < self.top_p <= 1
        ):
            raise AgentSpecError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if self.max_new_tokens is not None and (
            isinstance(self.max_new_tokens, bool)
            or not isinstance(self.max_new_tokens, int)
            or self.max_new_tokens < 1
        ):
            raise AgentSpecError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")

    def sampling(self, base: Any = None) -> Any:
        """The :class:`~mallm_envs.agents.llm.SamplingConfig` these settings give.

        ``base`` is the agent's own default (a trained run's settings for checkpoints).
        """
        llm = _llm_module()
        if base is None:
            base = llm.SamplingConfig(
                temperature=DEFAULT_TEMPERATURE,
                top_p=DEFAULT_TOP_P,
                max_new_tokens=DEFAULT_MAX_NEW_TOKENS,
            )
        changes = {
            name: value
            for name in ("temperature", "top_p", "max_new_tokens")
            if (value := getattr(self, name)) is not None
        }
        return replace(base, **changes)

    def model_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~mallm_envs.agents.llm.MultiAgentLM`."""
        return {"device": self.device, "dtype": self.dtype, "allow_download": self.allow_download}


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


def _frozen_lm(model: str, roles: tuple[str, ...], settings: LLMSettings) -> Any:
    llm = _llm_module()
    options = settings.model_options()
    key = ("llm", model, roles, tuple(sorted(options.items())))
    try:
        return _cached(key, lambda: llm.MultiAgentLM(roles, model, adapter="none", **options))
    except llm.LLMConfigError as error:
        raise AgentSpecError(str(error)) from None


def _llm_agents(
    spec: str, env: Any, seed: int | None, settings: LLMSettings | None = None
) -> dict[str, Any] | None:
    """Teams of LLM agents, or ``None`` when ``spec`` is not an LLM spec."""
    roles = tuple(env.possible_agents)
    settings = settings or LLMSettings()
    kind, _, rest = spec.partition(":")
    if kind == "llm":
        llm = _llm_module()
        lm = _frozen_lm(rest or "tiny", roles, settings)
        sampling = settings.sampling()
        return {r: llm.LLMAgent(lm, agent_id=r, sampling=sampling, seed=seed or 0) for r in roles}
    if kind == "prompting":
        llm = _llm_module()
        from mallm_envs.agents import prompting

        strategy, _, model = rest.partition(":")
        if strategy not in prompting.STRATEGIES:
            raise AgentSpecError(
                f"prompting strategy must be one of {prompting.STRATEGIES}, got {strategy!r}"
            )
        lm = _frozen_lm(model or "tiny", roles, settings)
        return prompting.prompting_team(
            strategy, lm, env, sampling=settings.sampling(), seed=seed or 0
        )
    if kind == "checkpoint":
        llm = _llm_module()
        if not rest:
            raise AgentSpecError("checkpoint: needs a path, e.g. checkpoint:runs/magrpo")
        lm, trained = _cached(
            ("checkpoint", rest, roles, settings.device),
            lambda: llm.load_trained(rest, roles, device=settings.device),
        )
        sampling = settings.sampling(trained)
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


def build_agents(
    specs: str | list[str],
    env: Any,
    *,
    seed: int | None = None,
    settings: LLMSettings | None = None,
) -> dict[str, Any]:
    """One agent per role: a single spec for all roles, or one per role (comma-separated).

    ``settings`` sets how ``llm:``, ``prompting:`` and ``checkpoint:`` agents load and decode.
    """
    if isinstance(specs, str) and specs.split(":", 1)[0] in ("llm", "prompting", "checkpoint"):
        team = _llm_agents(specs.strip(), env, seed, settings)
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
