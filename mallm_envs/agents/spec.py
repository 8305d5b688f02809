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
``checkpoint:PATH``       the policies a trainer in ``baselines/`` saved: a run folder
                          (its ``checkpoint.pt``, else its ``export/``), a
                          ``checkpoint.pt`` or an ``export/`` folder
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
import importlib.util
import json
import os
import re
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
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
    "openai:MODEL@URL",
    "package.module:factory",
    "path/to/file.py:factory",
)
MODEL_KINDS = ("llm", "prompting", "checkpoint", "openai")
"""Spec kinds whose agents decode with a model (their sampling settings are recorded)."""
TEAM_KINDS = ("prompting",)
"""Spec kinds that play as one team: the same spec must be given for every role."""
_ROLE_ITEM = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_-]*)=(.*)$", re.DOTALL)
_FACTORY_ITEM = re.compile(r"^[A-Za-z0-9_./~-][^,:=]*:[A-Za-z_][A-Za-z0-9_]*$")
_SPEC_HEADS = tuple(f"{kind}:" for kind in ("fixed", *MODEL_KINDS))
_MODELS: dict[tuple[Any, ...], Any] = {}
_MODELS_LOCK = threading.Lock()  # episodes built in several threads load each model once


def _cached(key: tuple[Any, ...], build: Any) -> Any:
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = build()
        return _MODELS[key]


def _files_stamp(location: str) -> tuple[tuple[str, int, int], ...]:
    """Size and modification time of the files a ``checkpoint:`` spec loads (its checkpoint
    file, or every file of its export folder), so a process that loaded a policy loads it
    again once those files change on disk."""
    from mallm_envs.agents.checkpoint import CheckpointError, locate_policy

    try:
        path = locate_policy(location)[1]
    except CheckpointError:
        return ()  # loading reports what is wrong
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    stamp = []
    for file in files:
        try:
            stat = file.stat()
        except OSError:
            continue
        stamp.append((str(file), stat.st_size, stat.st_mtime_ns))
    return tuple(stamp)


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
        if _kind(model) == "openai":  # an endpoint model in the place of an in-process one
            from mallm_envs.agents.endpoint import EndpointLM, parse_endpoint_spec

            lm = EndpointLM(roles, parse_endpoint_spec(model))
        else:
            lm = _frozen_lm(model or "tiny", roles, settings)
        return prompting.prompting_team(
            strategy, lm, env, sampling=settings.sampling(), seed=seed or 0
        )
    if kind == "checkpoint":
        llm = _llm_module()
        if not rest:
            raise AgentSpecError("checkpoint: needs a path, e.g. checkpoint:runs/magrpo")
        lm, config = _cached(
            ("checkpoint", rest, _files_stamp(rest), roles, settings.device),
            lambda: llm.load_policy(rest, roles, device=settings.device),
        )
        sampling = settings.sampling(config.sampling())
        # The policy is prompted as it was trained: with the run's system prompt.
        return {
            r: llm.LLMAgent(
                lm,
                agent_id=r,
                sampling=sampling,
                system_prompt=config.system_prompt,
                seed=seed or 0,
            )
            for r in roles
        }
    return None


def _kind(spec: str) -> str:
    return spec.split(":", 1)[0].strip()


def _model_agent(
    spec: str, env: Any, role: str, seed: int | None, settings: LLMSettings | None
) -> Any:
    """The agent of one role for an ``llm:``, ``checkpoint:`` or ``openai:`` spec.

    ``llm:`` and ``checkpoint:`` load the model for all of the env's roles, so roles that
    name the same model share one copy (and a team of one spec plays as before).
    """
    kind = _kind(spec)
    if kind == "openai":
        from mallm_envs.agents.endpoint import endpoint_agent

        return endpoint_agent(spec, role, settings=settings or LLMSettings(), seed=seed or 0)
    team = _llm_agents(spec, env, seed, settings)
    assert team is not None
    return team[role]


def build_agent(
    spec: str,
    env: Any,
    agent: str,
    *,
    seed: int | None = None,
    settings: LLMSettings | None = None,
) -> Any:
    """The agent that ``spec`` names, for role ``agent`` of ``env``."""
    spec = spec.strip()
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
    kind = _kind(spec)
    if kind in TEAM_KINDS:
        raise AgentSpecError(
            f"{kind}: plays as a whole team: give the same {kind}: spec for every role"
        )
    if kind in MODEL_KINDS:
        return _model_agent(spec, env, agent, seed, settings)
    if ":" in spec:
        return _load(spec)(env, agent)
    raise AgentSpecError(f"unknown agent spec {spec!r}; use one of: {', '.join(BUILTIN)}")


def split_specs(text: str, roles: Sequence[str] | None = None) -> list[str]:
    """The items of a comma-separated spec string, each ``SPEC`` or ``ROLE=SPEC``.

    A comma starts a new item only when what follows it reads as a spec (``random``,
    ``scripted``, ``KIND:...``, ``ROLE=...`` for one of ``roles`` when they are given,
    ``module:factory``, ``file.py:factory``);
    otherwise it belongs to the ``fixed:`` text before it, so ``fixed:a, b`` is one item.
    A ``ROLE=SPEC`` item given alone (or as one ``--agent`` flag) is never split.

    >>> split_specs("scripted,llm:tiny")
    ['scripted', 'llm:tiny']
    >>> split_specs("fixed:Hello, world,random")
    ['fixed:Hello, world', 'random']
    >>> split_specs("helper=fixed:x = 1, y,main=scripted")
    ['helper=fixed:x = 1, y', 'main=scripted']
    """
    items: list[str] = []
    for piece in text.split(","):
        if items and _is_fixed(items[-1]) and not _starts_spec(piece, roles):
            items[-1] += "," + piece
        else:
            items.append(piece)
    return [item.strip() for item in items if item.strip()]


def _is_fixed(item: str) -> bool:
    match = _ROLE_ITEM.match(item)
    return (match.group(2) if match else item).strip().startswith("fixed:")


def _starts_spec(piece: str, roles: Sequence[str] | None = None) -> bool:
    text = piece.strip()
    role = _ROLE_ITEM.match(text)
    return bool(
        text in ("random", "scripted")
        or text.startswith(_SPEC_HEADS)
        or (role and (roles is None or role.group(1) in roles))
        or _FACTORY_ITEM.match(text)
    )


def role_specs(
    specs: str | Sequence[str] | Mapping[str, str], roles: Sequence[str]
) -> dict[str, str]:
    """Which spec each role plays, from any of the accepted forms.

    ``specs`` is one spec for every role; a comma-separated string (:func:`split_specs`);
    a list whose items are taken whole (``"SPEC"`` or ``"ROLE=SPEC"``); or a mapping
    role -> spec. Items may be one ``SPEC`` per role in order, or ``ROLE=SPEC`` items
    naming roles, plus at most one plain ``SPEC`` for the roles not named.
    """
    roles = list(roles)
    if isinstance(specs, Mapping):
        unknown = [role for role in specs if role not in roles]
        missing = [role for role in roles if not str(specs.get(role, "")).strip()]
        if unknown or missing:
            raise AgentSpecError(
                f"the specs name roles {list(specs)}; this env's roles are {roles}"
            )
        return {role: str(specs[role]).strip() for role in roles}
    if isinstance(specs, str):
        items = split_specs(specs, roles)
    else:
        items = [item for item in specs if isinstance(item, str) and item.strip()]
        if len(items) == 1:
            items = split_specs(items[0], roles)
    if not items:
        raise AgentSpecError(f"no agent spec given; use one of: {', '.join(BUILTIN)}")
    named: dict[str, str] = {}
    plain: list[str] = []
    for item in items:
        match = _ROLE_ITEM.match(item)
        if match is None or _kind(item) in ("fixed", *MODEL_KINDS) or _FACTORY_ITEM.match(item):
            plain.append(item.strip())
            continue
        role, spec = match.group(1), match.group(2).strip()
        if role not in roles:
            raise AgentSpecError(f"{item!r} names no role of this env; its roles are {roles}")
        if role in named:
            raise AgentSpecError(f"role {role!r} is given two specs: {named[role]!r}, {spec!r}")
        if not spec:
            raise AgentSpecError(f"{item!r} gives no spec for {role!r}")
        named[role] = spec
    if not named:
        if len(plain) == 1:
            plain = plain * len(roles)
        if len(plain) != len(roles):
            raise AgentSpecError(
                f"got {len(plain)} agent specs for {len(roles)} roles {roles}; give one, "
                "one per role, or ROLE=SPEC for each role (e.g. --agent helper=scripted)"
            )
        return dict(zip(roles, plain))
    if len(plain) > 1:
        raise AgentSpecError(
            f"mixing ROLE=SPEC with {len(plain)} plain specs {plain}; give at most one plain "
            "spec (it plays the roles not named)"
        )
    missing = [role for role in roles if role not in named]
    if missing and not plain:
        raise AgentSpecError(
            f"no spec for role(s) {missing}; add ROLE=SPEC for each, or one plain spec for the rest"
        )
    return {role: named.get(role, plain[0] if plain else "") for role in roles}


def team_spec(by_role: Mapping[str, str]) -> str:
    """One spec string for a team: the spec itself when every role plays it, else
    ``ROLE=SPEC`` items joined by commas (what :func:`build_agents` reads back)."""
    specs = list(by_role.values())
    if specs and all(spec == specs[0] for spec in specs):
        return specs[0]
    return ",".join(f"{role}={spec}" for role, spec in by_role.items())


def spec_model(spec: str) -> str | None:
    """The model a spec names (``None`` for agents without one, and for checkpoints)."""
    kind, _, rest = spec.partition(":")
    kind = kind.strip()
    if kind == "llm":
        return rest or "tiny"
    if kind == "prompting":
        model = rest.partition(":")[2]
        return spec_model(model) if _kind(model) == "openai" else model or "tiny"
    if kind == "openai":
        from mallm_envs.agents.endpoint import parse_endpoint_spec

        return parse_endpoint_spec(spec).model
    return None


def team_model(by_role: Mapping[str, str]) -> str | None:
    """The model(s) of a team: one name, or ``role: name`` items when the roles differ."""
    models = {role: spec_model(spec) for role, spec in by_role.items()}
    named = {role: model for role, model in models.items() if model is not None}
    if not named:
        return None
    values = list(named.values())
    if len(named) == len(models) and all(value == values[0] for value in values):
        return values[0]
    return ", ".join(f"{role}: {model}" for role, model in named.items())


def uses_model(by_role: Mapping[str, str]) -> bool:
    """Whether any role decodes with a model (its decoding is recorded from the agent)."""
    return any(_kind(spec) in MODEL_KINDS for spec in by_role.values())


_NAME_BAD = re.compile(r"[^A-Za-z0-9 ._+()@&,:-]+")


def default_name(by_role: Mapping[str, str], limit: int = 80) -> str:
    """A board name derived from the specs that the verifier accepts.

    File paths keep their last part, endpoint URLs their host and port, and characters a
    name may not hold become ``-``.

    >>> default_name({"a": "./agents/mine.py:make", "b": "./agents/mine.py:make"})
    'mine.py:make'
    >>> default_name({"helper": "openai:Qwen/Qwen2.5-7B@http://127.0.0.1:8000/v1", "main": "scripted"})
    'helper: openai:Qwen2.5-7B@127.0.0.1:8000 + main: scripted'
    """

    def short(spec: str) -> str:
        kind, _, rest = spec.partition(":")
        if kind.strip() == "openai":
            model, _, url = rest.rpartition("@")
            host = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
            model = (model or rest).rstrip("/").rsplit("/", 1)[-1]  # the name, not the path
            text = f"openai:{model}" + (f"@{host}" if host and "@" in rest else "")
        elif kind.strip() in ("checkpoint", "llm") or _FACTORY_ITEM.match(spec):
            head, _, tail = spec.rpartition(":") if _FACTORY_ITEM.match(spec) else ("", "", "")
            if head:
                text = f"{head.rstrip('/').rsplit('/', 1)[-1]}:{tail}"
            else:
                text = f"{kind}:{rest.rstrip('/').rsplit('/', 1)[-1]}" if rest else spec
        else:
            text = spec
        text = _NAME_BAD.sub("-", text.replace("/", "-"))
        while ".." in text:
            text = text.replace("..", ".")
        return text.strip(" -") or "agent"

    specs = list(by_role.values())
    if specs and all(spec == specs[0] for spec in specs):
        parts = [short(specs[0])]
    else:
        parts = [f"{role}: {short(spec)}" for role, spec in by_role.items()]
    share = max(8, (limit - 3 * (len(parts) - 1)) // len(parts))
    if sum(len(part) for part in parts) + 3 * (len(parts) - 1) > limit:
        parts = [part[:share].rstrip(" .-") for part in parts]  # every role stays named
    name = " + ".join(parts).lstrip(" ._+()@&,:-") or "agent"
    return name[:limit].rstrip()


def build_agents(
    specs: str | Sequence[str] | Mapping[str, str],
    env: Any,
    *,
    seed: int | None = None,
    settings: LLMSettings | None = None,
) -> dict[str, Any]:
    """One agent per role of ``env``.

    ``specs`` takes the forms of :func:`role_specs`: one spec for every role, one per role,
    or ``ROLE=SPEC`` items (a mixed team: ``["helper=openai:M@URL", "main=llm:smollm2-135m"]``).
    ``settings`` sets how ``llm:``, ``prompting:``, ``checkpoint:`` and ``openai:`` agents
    load and decode.
    """
    roles = list(env.possible_agents)
    by_role = role_specs(specs, roles)
    team_specs = {spec for spec in by_role.values() if _kind(spec) in TEAM_KINDS}
    if team_specs:
        if len(set(by_role.values())) == 1:
            team = _llm_agents(next(iter(team_specs)), env, seed, settings)
            assert team is not None
            return team
        return _mixed_prompting_team(by_role, env, seed, settings)
    return {
        role: build_agent(spec, env, role, seed=seed, settings=settings)
        for role, spec in by_role.items()
    }


def _mixed_prompting_team(
    by_role: Mapping[str, str], env: Any, seed: int | None, settings: LLMSettings | None
) -> dict[str, Any]:
    """A prompting team whose roles name one strategy and different models, e.g.
    ``helper=prompting:discussion:openai:M@URL`` beside ``main=prompting:discussion:smollm2-135m``."""
    strategies = {}
    for role, spec in by_role.items():
        kind, _, rest = spec.partition(":")
        if kind.strip() != "prompting":
            raise AgentSpecError(
                f"{spec!r} cannot share a team with a prompting: spec; a prompting team has a "
                "prompting: spec for every role (one strategy, a model per role)"
            )
        strategies[role] = rest.partition(":")[0]
    if len(set(strategies.values())) != 1:
        raise AgentSpecError(f"the roles of a prompting team follow one strategy; got {strategies}")
    _llm_module()  # a clear error when the llm extra is missing
    from mallm_envs.agents import prompting

    strategy = next(iter(strategies.values()))
    if strategy not in prompting.STRATEGIES:
        raise AgentSpecError(
            f"prompting strategy must be one of {prompting.STRATEGIES}, got {strategy!r}"
        )
    roles = tuple(env.possible_agents)
    settings = settings or LLMSettings()
    models: dict[str, Any] = {}
    built: dict[str, Any] = {}
    for role, spec in by_role.items():
        model = spec.partition(":")[2].partition(":")[2] or "tiny"
        if model not in built:
            if _kind(model) == "openai":
                from mallm_envs.agents.endpoint import EndpointLM, parse_endpoint_spec

                built[model] = EndpointLM(roles, parse_endpoint_spec(model))
            else:
                built[model] = _frozen_lm(model, roles, settings)
        models[role] = built[model]
    return prompting.prompting_team(
        strategy, _RoleModels(models), env, sampling=settings.sampling(), seed=seed or 0
    )


class _RoleModels:
    """Models per role in the place of one model, for a mixed prompting team.

    A prompting team formats each prompt and then generates from it; here the formatted
    prompt is the message (text and system) as JSON, and each role's model formats it its
    own way (its chat template, or the endpoint's messages) when it generates.
    """

    def __init__(self, models: Mapping[str, Any]) -> None:
        self.models = dict(models)
        self.agents = tuple(self.models)
        in_process = [m for m in self.models.values() if not isinstance(m.device, str)]
        self.device = in_process[0].device if in_process else "cpu"  # the team's generators

    def policy_name(self, agent: str) -> str:
        if agent not in self.models:
            raise AgentSpecError(f"unknown role {agent!r}; roles are {self.agents}")
        return agent

    def format_prompt(self, text: str, system: str | None = None) -> str:
        return json.dumps({"text": text, "system": system})

    def generate(
        self,
        prompts: Mapping[str, Sequence[str]],
        *,
        num_samples: int = 1,
        sampling: Any = None,
        generator: Any = None,
        formatted: bool = False,
        batch_invariant: bool = False,
    ) -> dict[str, Any]:
        from mallm_envs.agents.base import shared_lock

        per_prompt = list(generator) if isinstance(generator, (list, tuple)) else None
        groups: dict[int, tuple[Any, dict[str, list[str]], list[Any]]] = {}
        position = 0
        for agent, agent_prompts in prompts.items():
            model = self.models[self.policy_name(agent)]
            _, requests, generators = groups.setdefault(id(model), (model, {}, []))
            for prompt in agent_prompts:
                message = json.loads(prompt) if formatted else {"text": prompt, "system": None}
                requests.setdefault(agent, []).append(
                    model.format_prompt(message["text"], message["system"])
                )
                if per_prompt is not None:
                    generators.append(per_prompt[position])
                position += 1
        results: dict[str, Any] = {}
        for model, requests, generators in groups.values():
            with shared_lock(model):  # an in-process model may serve other episodes' threads
                results.update(
                    model.generate(
                        requests,
                        num_samples=num_samples,
                        sampling=sampling,
                        generator=generators if per_prompt is not None else generator,
                        formatted=True,
                        batch_invariant=batch_invariant,
                    )
                )
        return {agent: results[agent] for agent in prompts}

    def describe(self) -> dict[str, Any]:
        described = {role: model.describe() for role, model in self.models.items()}
        return {
            "model": ", ".join(f"{role}: {d.get('model')}" for role, d in described.items()),
            "models": described,
        }


def _load(entry: str) -> Any:
    """``module:attribute`` or ``path/to/file.py:attribute``; the current folder is searched."""
    location, _, attr = entry.strip().rpartition(":")
    if not location or not attr:
        raise AgentSpecError(f"cannot load agent {entry!r}: use module:factory or file.py:factory")
    if location.endswith(".py") or "/" in location or location.startswith(("~", ".")):
        module = _load_file(entry, Path(location).expanduser())
    else:
        cwd = os.getcwd()
        if cwd not in sys.path and "" not in sys.path:
            sys.path.append(cwd)  # after the installed packages: a local file shadows nothing
        try:
            module = importlib.import_module(location)
        except ImportError as err:
            raise AgentSpecError(
                f"cannot load agent {entry!r}: {err} (searched the installed packages and the "
                f"current folder {cwd}; give a file path such as ./mine.py:factory)"
            ) from None
        except Exception as err:  # the module's own code failed while importing
            raise AgentSpecError(
                f"cannot load agent {entry!r}: importing {location} raised "
                f"{type(err).__name__}: {err}"
            ) from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise AgentSpecError(
            f"cannot load agent {entry!r}: {module.__name__} has no attribute {attr!r}"
        ) from None


_FILE_MODULES: dict[Path, Any] = {}


_FILE_MODULES_LOCK = threading.Lock()


def _load_file(entry: str, path: Path) -> Any:
    """The module of a Python file, run once per process (episodes built in threads too)."""
    with _FILE_MODULES_LOCK:
        return _load_file_locked(entry, path.resolve())


def _load_file_locked(entry: str, path: Path) -> Any:
    if path in _FILE_MODULES:
        return _FILE_MODULES[path]
    if not path.is_file():
        raise AgentSpecError(f"cannot load agent {entry!r}: there is no file {path}")
    name = "mallm_user_agent_" + re.sub(r"\W", "_", str(path))
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise AgentSpecError(f"cannot load agent {entry!r}: {path} is not a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:  # the file's own code failed
        del sys.modules[name]
        raise AgentSpecError(
            f"cannot load agent {entry!r}: running {path} raised {type(err).__name__}: {err}"
        ) from None
    _FILE_MODULES[path] = module
    return module
