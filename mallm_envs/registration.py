"""The environment registry: one literal ``register(...)`` per id, and ``make``.

Ids look like ``Name-vN``. ``make("Name")`` without a version gives the latest version.
Anything a score could feel (prompts, parsing, reward, data, limits) changes only with a new
version, so a number reported for ``CoopCode-v0`` always means the same task.

>>> import mallm_envs
>>> env = mallm_envs.make("CommonWord-v0")
>>> env.spec.id
'CommonWord-v0'
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from mallm_envs.core.episode import Episode
from mallm_envs.core.episode import replay as _replay_with
from mallm_envs.core.errors import (
    DuplicateEnvError,
    EnvArgumentError,
    EnvIdError,
    UnknownEnvError,
    UnknownVersionError,
)

_ID_PATTERN = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)(?:-v(?P<version>\d+))?$")


def parse_env_id(env_id: str) -> tuple[str, int | None]:
    """Split ``"Name-v3"`` into ``("Name", 3)``; ``"Name"`` gives ``("Name", None)``."""
    if not isinstance(env_id, str):
        raise EnvIdError(f"an env id is a str like 'CoopCode-v0', got {type(env_id).__name__}")
    match = _ID_PATTERN.match(env_id)
    if match is None:
        raise EnvIdError(
            f"malformed env id {env_id!r}: ids look like 'Name-v0' (letters, digits, underscores, then -v and a number)"
        )
    version = match.group("version")
    return match.group("name"), None if version is None else int(version)


def _load(entry_point: str) -> Any:
    module_name, _, attr = entry_point.partition(":")
    if not module_name or not attr:
        raise ValueError(f"entry points look like 'package.module:Name', got {entry_point!r}")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


@dataclass(frozen=True)
class EnvSpec:
    """Everything needed to build an environment again, exactly.

    Attributes:
        id: ``Name-vN``.
        entry_point: ``"module:Class"`` of the AEC env class (or factory).
        kwargs: keyword arguments the env is built with (read-only).
        parallel_entry_point: ``"module:Class"`` of a native Parallel env taking the same
            kwargs, or ``None`` to wrap the AEC env in
            :class:`mallm_envs.core.TextParallelEnv`.
        description: one line for ``mallm list``.
        agents: the agent names, in acting order.
        family: the env family (``code``, ``writing``, ``kitchen``, ``toy``).
        scripted_agent: ``"module:Class"`` of a scripted reference agent built as
            ``Class(env, agent_name)``, or ``None``.
        official_suite_size: for an env without task data, the number of episodes of its
            official leaderboard suite (seeds ``0..n-1``; long episodes, such as the
            kitchen's 400 steps, use fewer); ``None`` for the default, 50. An env with task
            data (:class:`mallm_envs.core.TaskEnv`) plays each official test task once
            instead and leaves this ``None``.
        timing_sensitive: whether an outcome can depend on the machine's speed (a unit test
            near its time limit). The verifier then accepts a replay that differs only
            where timing explains it (see :mod:`mallm_envs.leaderboard.verify`).
        time_limit_scale_kwarg: for a timing-sensitive env, the keyword argument (one of
            ``kwargs``) that multiplies every time limit; the verifier's lenient replay
            sets it to its own factor. ``None`` otherwise.

    The last three fields are the env's contract with the leaderboard. They are facts of the
    registered id, never claims of a record: :meth:`to_dict` (the form written into every
    transcript) leaves them out unless asked, and the verifier reads them from the registry.
    """

    id: str
    entry_point: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    parallel_entry_point: str | None = None
    description: str = ""
    agents: tuple[str, ...] = ()
    family: str = ""
    scripted_agent: str | None = None
    official_suite_size: int | None = None
    timing_sensitive: bool = False
    time_limit_scale_kwarg: str | None = None

    def __post_init__(self) -> None:
        parse_env_id(self.id)
        if parse_env_id(self.id)[1] is None:
            raise EnvIdError(f"registered ids need a version: {self.id!r} -> '{self.id}-v0'")
        # JSON-check the kwargs now: a spec must round-trip.
        try:
            frozen = json.loads(json.dumps(dict(self.kwargs), sort_keys=True))
        except (TypeError, ValueError) as err:
            raise EnvArgumentError(f"{self.id}: kwargs must be JSON-serialisable ({err})") from None
        object.__setattr__(self, "kwargs", MappingProxyType(frozen))
        object.__setattr__(self, "agents", tuple(self.agents))
        self._check_contract()

    def _check_contract(self) -> None:
        size = self.official_suite_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise EnvArgumentError(
                f"{self.id}: official_suite_size must be a positive int or None, got {size!r}"
            )
        if not isinstance(self.timing_sensitive, bool):
            raise EnvArgumentError(
                f"{self.id}: timing_sensitive must be True or False, got {self.timing_sensitive!r}"
            )
        keyword = self.time_limit_scale_kwarg
        if self.timing_sensitive and (not isinstance(keyword, str) or keyword not in self.kwargs):
            raise EnvArgumentError(
                f"{self.id}: a timing-sensitive env names the keyword argument that scales its "
                f"time limits in time_limit_scale_kwarg, and registers it in kwargs "
                f"(got time_limit_scale_kwarg={keyword!r}, kwargs {sorted(self.kwargs)})"
            )
        if not self.timing_sensitive and keyword is not None:
            raise EnvArgumentError(
                f"{self.id}: time_limit_scale_kwarg={keyword!r} is only for timing_sensitive envs"
            )

    @property
    def name(self) -> str:
        return parse_env_id(self.id)[0]

    @property
    def version(self) -> int:
        version = parse_env_id(self.id)[1]
        assert version is not None
        return version

    def to_dict(self, *, contract: bool = False) -> dict[str, Any]:
        """The spec as JSON-ready data.

        By default the recorded form, written into every transcript: what builds the env
        again. With ``contract``, the leaderboard contract fields too (the full spec).
        """
        data: dict[str, Any] = {
            "id": self.id,
            "entry_point": self.entry_point,
            "kwargs": dict(self.kwargs),
            "parallel_entry_point": self.parallel_entry_point,
            "description": self.description,
            "agents": list(self.agents),
            "family": self.family,
            "scripted_agent": self.scripted_agent,
        }
        if contract:
            data["official_suite_size"] = self.official_suite_size
            data["timing_sensitive"] = self.timing_sensitive
            data["time_limit_scale_kwarg"] = self.time_limit_scale_kwarg
        return data

    def to_json(self, *, contract: bool = False) -> str:
        return json.dumps(self.to_dict(contract=contract), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EnvSpec:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise EnvArgumentError(f"unknown EnvSpec fields {sorted(unknown)}")
        fields: dict[str, Any] = {k: (tuple(v) if k == "agents" else v) for k, v in data.items()}
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str) -> EnvSpec:
        return cls.from_dict(json.loads(text))

    def __hash__(self) -> int:
        return hash(self.to_json(contract=True))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EnvSpec) and self.to_dict(contract=True) == other.to_dict(
            contract=True
        )


class Registry(Mapping[str, EnvSpec]):
    """Read-only view of the registered specs, by id."""

    def __init__(self) -> None:
        self._specs: dict[str, EnvSpec] = {}

    def __getitem__(self, env_id: str) -> EnvSpec:
        return self._specs[env_id]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Registry({len(self)} envs: {', '.join(self)})"

    def versions(self, name: str) -> list[int]:
        return sorted(spec.version for spec in self._specs.values() if spec.name == name)


registry = Registry()


def register(
    id: str,
    entry_point: str,
    *,
    kwargs: Mapping[str, Any] | None = None,
    parallel_entry_point: str | None = None,
    description: str = "",
    agents: tuple[str, ...] | list[str] = (),
    family: str = "",
    scripted_agent: str | None = None,
    official_suite_size: int | None = None,
    timing_sensitive: bool = False,
    time_limit_scale_kwarg: str | None = None,
) -> EnvSpec:
    """Add an env id to the registry (see :class:`EnvSpec` for the fields)."""
    spec = EnvSpec(
        id=id,
        entry_point=entry_point,
        kwargs=dict(kwargs or {}),
        parallel_entry_point=parallel_entry_point,
        description=description,
        agents=tuple(agents),
        family=family,
        scripted_agent=scripted_agent,
        official_suite_size=official_suite_size,
        timing_sensitive=timing_sensitive,
        time_limit_scale_kwarg=time_limit_scale_kwarg,
    )
    if id in registry._specs:
        raise DuplicateEnvError(f"{id!r} is already registered")
    registry._specs[id] = spec
    return spec


def spec(env_id: str) -> EnvSpec:
    """The spec of ``env_id`` (latest version when no version is given)."""
    name, version = parse_env_id(env_id)
    versions = registry.versions(name)
    if not versions:
        names = sorted({s.name for s in registry.values()})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        close += [n for n in names if n.lower() == name.lower() and n not in close]
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownEnvError(
            f"no environment named {name!r}{hint} (run `mallm list` to see all {len(registry)} ids)"
        )
    if version is None:
        version = versions[-1]
    if version not in versions:
        existing = ", ".join(f"{name}-v{v}" for v in versions)
        raise UnknownVersionError(f"{name} has no version v{version}; registered: {existing}")
    return registry[f"{name}-v{version}"]


def _accepted_kwargs(factory: Any) -> tuple[set[str], bool]:
    signature = inspect.signature(factory)
    names = set()
    var_kw = False
    for param in signature.parameters.values():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            var_kw = True
        elif param.kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ):
            names.add(param.name)
    names.discard("self")
    return names, var_kw


def _build(env_spec: EnvSpec, entry_point: str, kwargs: Mapping[str, Any]) -> Any:
    factory = _load(entry_point)
    merged = {**env_spec.kwargs, **kwargs}
    accepted, var_kw = _accepted_kwargs(factory)
    unknown = sorted(set(merged) - accepted)
    if unknown and not var_kw:
        raise EnvArgumentError(
            f"{env_spec.id} does not take {', '.join(repr(k) for k in unknown)}; "
            f"it takes: {', '.join(sorted(accepted)) or 'no arguments'}"
        )
    full_spec = replace(env_spec, kwargs=merged)  # validates JSON-serialisability
    try:
        env = factory(**merged)
    except TypeError as err:
        if isinstance(err, EnvArgumentError):
            raise
        raise EnvArgumentError(f"{env_spec.id}: {err}") from err
    env.spec = full_spec
    return env


def make(env_id: str, **kwargs: Any) -> Any:
    """Build the AEC env registered as ``env_id`` (latest version if none is given).

    Keyword arguments override the registered ones; unknown names raise
    :class:`~mallm_envs.core.errors.EnvArgumentError` listing the accepted ones. The built
    env's ``spec`` holds the id and the full kwargs, so it can be built again exactly.
    """
    env_spec = spec(env_id)
    return _build(env_spec, env_spec.entry_point, kwargs)


def make_parallel(env_id: str, **kwargs: Any) -> Any:
    """Build the Parallel-API env registered as ``env_id``."""
    env_spec = spec(env_id)
    if env_spec.parallel_entry_point is not None:
        return _build(env_spec, env_spec.parallel_entry_point, kwargs)
    from mallm_envs.core.parallel import TextParallelEnv

    return TextParallelEnv(_build(env_spec, env_spec.entry_point, kwargs))


def make_scripted_agent(env: Any, agent: str) -> Any:
    """The scripted reference agent of ``env``'s spec for role ``agent``."""
    env_spec = getattr(env.unwrapped, "spec", None)
    if env_spec is None or env_spec.scripted_agent is None:
        raise UnknownEnvError(f"{getattr(env_spec, 'id', env)} has no scripted agent")
    return _load(env_spec.scripted_agent)(env, agent)


def replay(episode: Episode, make_env: Callable[[], Any] | None = None) -> Episode:
    """Replay ``episode``'s recorded actions on the env it was recorded on; return the result.

    The env is built from the registry (the recorded id and kwargs) unless ``make_env``, a
    zero-argument factory, says otherwise. This is :func:`mallm_envs.core.replay` with the
    registry lookup added (the core knows no registry). Compare the result with
    :func:`mallm_envs.core.first_difference`.
    """
    if make_env is None:
        env_id = episode.env_id
        kwargs = dict(episode.env_spec.get("kwargs") or {})

        def make_env() -> Any:
            return make(env_id, **kwargs)

    return _replay_with(episode, make_env)
