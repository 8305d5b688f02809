"""The scripted greedy pair: it delivers on every layout, and golden transcripts pin it.

Regenerate the golden files on purpose with
``KITCHEN_REGENERATE_GOLDEN=1 pytest tests/test_kitchen_agents.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

import mallm_envs.envs.kitchen  # noqa: F401  (registers the kitchen ids)
from mallm_envs.core import run_episode
from mallm_envs.envs.kitchen.agents import GreedyChef
from mallm_envs.envs.kitchen.planner import play_greedy
from mallm_envs.envs.kitchen.rules import CLASSIC_LAYOUTS, Kitchen, KitchenRules, load_layout
from mallm_envs.registration import make

GOLDEN = Path(__file__).parent / "golden" / "kitchen"

# Soups the greedy pair delivers in 400 steps, lowest over seeds 0-4 (measured; a change in
# the planner that costs soups fails here).
MIN_SOUPS = {
    "cramped_room": 8,
    "asymmetric_advantages": 12,
    "coordination_ring": 9,  # 1 before chefs that dodge each other in step count as stuck
    "forced_coordination": 10,
    "counter_circuit": 6,  # 1 likewise
}


@pytest.mark.parametrize("cook_start", ["auto", "interact"])
@pytest.mark.parametrize("name", CLASSIC_LAYOUTS)
def test_greedy_pair_delivers_on_every_layout(name: str, cook_start: str) -> None:
    kitchen = Kitchen(load_layout(name), KitchenRules(cook_start=cook_start))
    soups = [play_greedy(kitchen, seed=seed)[0] // 20 for seed in range(5)]
    assert min(soups) >= MIN_SOUPS[name], soups


def episode_digest(episode) -> str:
    steps = json.dumps([s.to_dict() for s in episode.steps], sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(steps.encode()).hexdigest()


@pytest.mark.parametrize("name", CLASSIC_LAYOUTS)
def test_golden_transcripts(name: str) -> None:
    env = make("Kitchen-v0", layout=name)
    agents = {a: GreedyChef(env, a) for a in env.possible_agents}
    episode = run_episode(env, agents, seed=0)
    record = {
        "env_id": "Kitchen-v0",
        "layout": name,
        "seed": 0,
        "team_return": episode.team_return,
        "actions": [s.action for s in episode.steps if s.action is not None],
        "steps_sha256": episode_digest(episode),
    }
    path = GOLDEN / f"greedy_{name}.json"
    if os.environ.get("KITCHEN_REGENERATE_GOLDEN"):
        path.write_text(json.dumps(record, indent=0) + "\n")
    golden = json.loads(path.read_text())
    for index, (got, want) in enumerate(zip(record["actions"], golden["actions"])):
        assert got == want, f"first different action at AEC step {index}: {got!r} != {want!r}"
    assert record == golden
    assert episode.team_return >= 20


def test_greedy_chef_plays_the_numeric_env() -> None:
    env = make("KitchenNumeric-v0", observation="features")
    agents = {a: GreedyChef(env, a) for a in env.possible_agents}
    episode = run_episode(env, agents, seed=0)
    assert episode.team_return >= 100
