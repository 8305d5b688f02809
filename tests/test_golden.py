"""Golden transcripts of every registered id: a change a score could feel fails here.

For each id, ``tests/golden/registry/<id>.jsonl`` (``.jsonl.gz`` when the text passes
256 KB, as the kitchen's 400-step episodes do) holds, in the one transcript format
(``mallm-episode/1``):

1. the first :data:`SUITE_EPISODES` episodes of the id's official leaderboard suite, played
   by its scripted agent with the registered arguments;
2. a few variants on the suite's first episode that the suite does not reach
   (:func:`variants`): two turns and the sequential schedule for text envs, the other
   classic layouts and the other observation mode for the kitchen.

Each recorded episode must come out again byte for byte (prompts, parsing, rewards, data
hash) and must replay through :func:`mallm_envs.replay`. A failure means a score-relevant
behaviour changed: if that is intended, bump the env version (and its Version history), then
regenerate on purpose, the one update path for every golden transcript of the project:

    MALLM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

and commit the new files with the change. (The code family's hand-written cases in
``tests/test_code_env.py`` use the same variable.)
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pytest

import mallm_envs
from mallm_envs import replay
from mallm_envs.core import Episode, atomic_write_bytes, first_difference, run_episode
from mallm_envs.leaderboard.suites import load_suite
from mallm_envs.registration import make_scripted_agent

GOLDEN = Path(__file__).parent / "golden" / "registry"
SUITE_EPISODES = 2
GZIP_OVER_BYTES = 256 * 1024
UPDATE = os.environ.get("MALLM_UPDATE_GOLDEN") == "1"
IDS = list(mallm_envs.registry)


def variants(env_id: str) -> list[dict[str, Any]]:
    """Keyword overrides played on the suite's first episode, beyond the official ones."""
    spec = mallm_envs.spec(env_id)
    kwargs = dict(spec.kwargs)
    found: list[dict[str, Any]] = []
    if spec.family == "kitchen":
        if kwargs.get("observation") == "grid":  # the numeric env shares the text env's rules
            return [{"observation": "features"}]
        from mallm_envs.envs.kitchen.rules import CLASSIC_LAYOUTS

        found += [{"layout": name} for name in CLASSIC_LAYOUTS if name != kwargs["layout"]]
        if kwargs.get("schedule") == "simultaneous":
            found.append({"schedule": "sequential"})
        return found
    if kwargs.get("max_turns") == 1:
        found.append({"max_turns": 2})
    if kwargs.get("schedule") == "simultaneous" and len(spec.agents) > 1:
        found.append({"schedule": "sequential", "max_turns": max(2, kwargs["max_turns"])})
    return found


def _play(env_id: str, seed: int, options: dict[str, Any], **overrides: Any) -> Episode:
    env = mallm_envs.make(env_id, **overrides)
    agents = {role: make_scripted_agent(env, role) for role in env.possible_agents}
    episode = run_episode(env, agents, seed=seed, options=options)
    env.close()
    episode.mallm_envs_version = "golden"  # the package version is not part of the env
    return episode


def record(env_id: str) -> list[Episode]:
    suite = load_suite(env_id).items()
    episodes = [_play(env_id, seed, options) for seed, options in suite[:SUITE_EPISODES]]
    seed, options = suite[0]
    episodes += [_play(env_id, seed, options, **extra) for extra in variants(env_id)]
    return episodes


def golden_path(env_id: str) -> Path:
    plain = GOLDEN / f"{env_id}.jsonl"
    return (
        plain
        if plain.exists() or not (GOLDEN / f"{env_id}.jsonl.gz").exists()
        else GOLDEN / f"{env_id}.jsonl.gz"
    )


def read_golden(path: Path) -> str:
    raw = path.read_bytes()
    return (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode("ascii")


def write_golden(env_id: str, text: str) -> Path:
    for stale in (GOLDEN / f"{env_id}.jsonl", GOLDEN / f"{env_id}.jsonl.gz"):
        stale.unlink(missing_ok=True)
    data = text.encode("ascii")
    if len(data) > GZIP_OVER_BYTES:
        path, data = GOLDEN / f"{env_id}.jsonl.gz", gzip.compress(data, mtime=0)
    else:
        path = GOLDEN / f"{env_id}.jsonl"
    atomic_write_bytes(path, data)
    return path


def to_text(episodes: list[Episode]) -> str:
    return "".join(episode.to_json() + "\n" for episode in episodes)


def from_text(text: str) -> list[Episode]:
    return [Episode.from_json(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("env_id", IDS)
def test_golden_transcripts_are_unchanged(env_id: str) -> None:
    current = to_text(record(env_id))
    if UPDATE:
        write_golden(env_id, current)
    path = golden_path(env_id)
    assert path.is_file(), f"{path} is missing; regenerate with MALLM_UPDATE_GOLDEN=1"
    stored = read_golden(path)
    if stored == current:
        return
    old, new = from_text(stored), from_text(current)
    assert len(old) == len(new), f"{env_id}: {len(old)} golden episodes, now {len(new)}"
    for index, (a, b) in enumerate(zip(old, new)):
        where = first_difference(a, b)
        assert where is None, f"{env_id} golden episode {index} changed at {where} (see docstring)"
    pytest.fail(f"{env_id} golden transcripts changed (see this file's docstring)")


@pytest.mark.parametrize("env_id", IDS)
def test_golden_transcripts_replay(env_id: str) -> None:
    episodes = from_text(read_golden(golden_path(env_id)))
    assert len(episodes) == SUITE_EPISODES + len(variants(env_id))
    official = mallm_envs.spec(env_id).to_dict()
    assert [e.env_spec for e in episodes[:SUITE_EPISODES]] == [official] * SUITE_EPISODES
    for index, episode in enumerate(episodes):
        replayed = replay(episode)
        replayed.mallm_envs_version = episode.mallm_envs_version
        assert first_difference(episode, replayed) is None, f"{env_id} golden episode {index}"


def test_every_golden_file_belongs_to_a_registered_id() -> None:
    names = {path.name.removesuffix(".gz").removesuffix(".jsonl") for path in GOLDEN.iterdir()}
    assert names == set(IDS)
