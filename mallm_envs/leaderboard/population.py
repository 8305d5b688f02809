"""Partner populations: the held-out partners a cross-play evaluation pairs an agent with.

Self-play scores a team with itself, and two copies of a policy can agree on private
conventions that fail with anyone else. Cross-play (``mallm evaluate ENV --agent SPEC
--cross-play``) scores the agent in each seat with each partner of a fixed population,
as the Overcooked-AI literature does with held-out partners (FCP, MEP, HSP, ZSC-Eval).

Where the partners come from
----------------------------
Each env family lists its partners in ``mallm_envs/envs/<family>/partners.py``, a module
with a function ``population(env_id, env_kwargs)`` that returns ``None`` (no population for that id)
or ``{"episodes_per_seat": n or None, "partners": [{"name", "factory", "roles",
"description"}, ...]}``. ``factory`` is ``"module:Class"``, built as ``Class(env, role)``
like a scripted agent; ``roles`` are the seats the partner can take. The leaderboard reaches
that module through its name (the env spec's ``family``), never an import, as ``make``
reaches an env class.

Versioned with the suite
------------------------
A :class:`Population` is frozen beside its suite
(``mallm_envs/leaderboard/suites/<board id>.partners.json``). It records the digest of the
suite it goes with and, for each partner, a *fingerprint*: the hash of the actions it takes
on the suite's first episode in each of its seats, with the env's scripted agent in the
other seats. So a partner whose code changes what it does changes the frozen file, a test
fails until the file is frozen again, and the population's :attr:`~Population.digest`
(which every cross-play submission records) changes: the old submissions are refused as
made with another population. That is the cross-play suite's version. Self-play
submissions do not depend on partners: the plain suite and its digest are unchanged.

The cross-play games
--------------------
For each partner, each seat it can take (the evaluated agent fills the other seats) and the
first ``episodes_per_seat`` episodes of the suite (all of them when ``None``): one episode,
in that order (:meth:`Population.games`).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from mallm_envs.leaderboard.suites import (
    SUITES_DIR,
    Suite,
    SuiteError,
    load_suite,
    split_board_id,
)

POPULATION_FORMAT = "mallm-population/1"


@dataclass(frozen=True)
class Partner:
    """One held-out partner: ``factory(env, role)`` builds it for a seat in ``roles``."""

    name: str
    factory: str
    roles: tuple[str, ...]
    description: str
    fingerprint: str = ""

    def build(self, env: Any, role: str) -> Any:
        if role not in self.roles:
            raise SuiteError(
                f"the partner {self.name!r} takes the seats {self.roles}, not {role!r}"
            )
        module_name, _, attribute = self.factory.partition(":")
        return getattr(importlib.import_module(module_name), attribute)(env, role)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "factory": self.factory,
            "roles": list(self.roles),
            "description": self.description,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True)
class Game:
    """One cross-play episode: the partner, the seat it takes, and the suite episode."""

    partner: str
    partner_role: str
    seed: int
    options: str  # canonical JSON

    def to_dict(self) -> dict[str, Any]:
        return {"partner": self.partner, "partner_role": self.partner_role}


@dataclass(frozen=True)
class Population:
    """The partners of one board (an env id or ``ID@variant``), frozen with its suite."""

    board_id: str
    suite_digest: str
    episodes_per_seat: int | None
    partners: tuple[Partner, ...]

    @property
    def digest(self) -> str:
        """The cross-play suite's version: this file's content, which holds the suite's
        digest and every partner's definition and fingerprint."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    def partner(self, name: str) -> Partner:
        for partner in self.partners:
            if partner.name == name:
                return partner
        raise SuiteError(
            f"{self.board_id} has no partner {name!r}; its partners: "
            f"{', '.join(p.name for p in self.partners)}"
        )

    def games(self, suite: Suite) -> list[Game]:
        """Every cross-play episode, in the order a submission must hold them."""
        episodes = suite.episodes[: self.episodes_per_seat]
        return [
            Game(partner.name, role, seed, options)
            for partner in self.partners
            for role in partner.roles
            for seed, options in episodes
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": POPULATION_FORMAT,
            "board_id": self.board_id,
            "suite_digest": self.suite_digest,
            "episodes_per_seat": self.episodes_per_seat,
            "partners": [p.to_dict() for p in self.partners],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Population:
        if data.get("format") != POPULATION_FORMAT:
            raise SuiteError(f"unknown population format {data.get('format')!r}")
        partners = tuple(
            Partner(
                name=str(p["name"]),
                factory=str(p["factory"]),
                roles=tuple(p["roles"]),
                description=str(p.get("description", "")),
                fingerprint=str(p.get("fingerprint", "")),
            )
            for p in data["partners"]
        )
        per_seat = data.get("episodes_per_seat")
        return cls(
            board_id=str(data["board_id"]),
            suite_digest=str(data["suite_digest"]),
            episodes_per_seat=None if per_seat is None else int(per_seat),
            partners=partners,
        )


def declared_population(
    env_id: str, env_kwargs: Mapping[str, Any] | None = None
) -> Mapping[str, Any] | None:
    """What the env's family declares for ``env_id`` played with ``env_kwargs`` over the
    registered arguments (see the module docstring), or ``None``."""
    from mallm_envs.registration import spec

    env_spec = spec(env_id)
    if not env_spec.family:
        return None
    try:
        module = importlib.import_module(f"mallm_envs.envs.{env_spec.family}.partners")
    except ModuleNotFoundError:
        return None
    found: Mapping[str, Any] | None = module.population(
        env_spec.id, {**env_spec.kwargs, **(env_kwargs or {})}
    )
    return found


def _fingerprint(suite: Suite, partner: Partner) -> str:
    """The hash of ``partner``'s actions on the suite's first episode, in each of its seats,
    with the env's scripted agent in the other seats."""
    from mallm_envs.agents.spec import build_agents
    from mallm_envs.core.episode import run_episode
    from mallm_envs.registration import make

    seed, options = suite.items()[0]
    digest = hashlib.sha256()
    for role in partner.roles:
        env = make(suite.env_id, **suite.kwargs())
        try:
            agents = build_agents("scripted", env, seed=0)
            agents[role] = partner.build(env, role)
            episode = run_episode(env, agents, seed=seed, options=options)
        finally:
            env.close()
        actions = [s.action for s in episode.steps if s.agent == role and s.action is not None]
        digest.update(json.dumps([role, actions], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def generate_population(board_id: str) -> Population | None:
    """The population the family's code defines for a board, with fresh fingerprints."""
    env_id, _variant = split_board_id(board_id)
    suite = load_suite(board_id)
    declared = declared_population(env_id, suite.kwargs())
    if declared is None:
        return None
    partners = []
    for item in declared["partners"]:
        partner = Partner(
            name=str(item["name"]),
            factory=str(item["factory"]),
            roles=tuple(item["roles"]),
            description=str(item.get("description", "")),
        )
        partners.append(
            Partner(**{**partner.__dict__, "fingerprint": _fingerprint(suite, partner)})
        )
    per_seat = declared.get("episodes_per_seat")
    return Population(
        board_id=suite.board_id,
        suite_digest=suite.digest,
        episodes_per_seat=None if per_seat is None else int(per_seat),
        partners=tuple(partners),
    )


def population_path(board_id: str) -> Any:
    return SUITES_DIR / f"{board_id}.partners.json"


def load_population(board_id: str) -> Population:
    """The frozen partner population of a board (``SuiteError`` when it has none)."""
    split_board_id(board_id)
    name = f"{board_id}.partners.json"
    try:
        text = (
            resources.files("mallm_envs.leaderboard").joinpath("suites").joinpath(name).read_text()
        )
    except (FileNotFoundError, OSError):
        raise SuiteError(
            f"{board_id} has no partner population, so no cross-play suite (populations "
            "exist for the two-agent code, writing and kitchen envs)"
        ) from None
    population = Population.from_dict(json.loads(text))
    if population.board_id != board_id:
        raise SuiteError(f"{name} holds the population of {population.board_id}")
    return population


def freeze_population(board_id: str) -> Any:
    """Write the generated population of a board into the package (for maintainers)."""
    population = generate_population(board_id)
    if population is None:
        raise SuiteError(f"the family of {board_id} declares no partners for it")
    path = population_path(board_id)
    path.write_text(population.to_json())
    return path


if __name__ == "__main__":  # python -m mallm_envs.leaderboard.population BOARD_ID [...]
    import sys

    for arg in sys.argv[1:]:
        print(freeze_population(arg))
