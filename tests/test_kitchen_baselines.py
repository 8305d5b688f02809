"""Smoke runs of the kitchen baselines (seconds); the full runs are marked slow."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "baselines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_mappo_smoke(tmp_path: Path) -> None:
    mappo = load("kitchen_mappo")
    csv_path = tmp_path / "curve.csv"
    args = mappo.Args(num_envs=4, total_timesteps=3200, num_minibatches=2, csv_path=str(csv_path))
    curve = mappo.train(args)
    assert len(curve) == 2 and curve[-1]["global_step"] == 3200
    assert all(math.isfinite(row["episode_points"]) for row in curve)
    assert csv_path.read_text().startswith("global_step,")


def test_mappo_math() -> None:
    import torch

    mappo = load("kitchen_mappo")
    rewards = torch.tensor([[0.0], [1.0]])
    values = torch.zeros(2, 1)
    advantages = mappo.gae(rewards, values, torch.zeros(1), gamma=0.5, lam=1.0)
    assert torch.allclose(advantages, torch.tensor([[0.5], [1.0]]))
    logp = torch.zeros(3)
    assert mappo.policy_loss(
        logp, logp, torch.tensor([1.0, -1.0, 2.0]), 0.2
    ).item() == pytest.approx(-2 / 3)


def test_sb3_smoke() -> None:
    pytest.importorskip("stable_baselines3")
    ppo = load("kitchen_ppo_sb3")
    args = ppo.Args(num_envs=2, total_timesteps=3200, batch_size=800, n_epochs=1)
    rows = ppo.train(args)
    assert rows and all(math.isfinite(row["episode_points"]) for row in rows)


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_mappo_reaches_100_points_on_cramped_room() -> None:
    mappo = load("kitchen_mappo")
    curve = mappo.train(
        mappo.Args(total_timesteps=8_000_000, shaping_horizon=5_000_000, time_limit_minutes=30)
    )
    assert max(row["episode_points"] for row in curve[-5:]) >= 100


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_sb3_reaches_100_points_on_cramped_room() -> None:
    ppo = load("kitchen_ppo_sb3")
    rows = ppo.train(ppo.Args(time_limit_minutes=30))
    assert max(row["episode_points"] for row in rows[-5:]) >= 100


# ------------------------------------------------------------------ kept policies


def test_mappo_saves_plays_and_reloads_its_policy(tmp_path: Path) -> None:
    from mallm_envs.core import run_episode
    from mallm_envs.envs.kitchen.partners import FrozenPolicy, PolicyChef
    from mallm_envs.registration import make

    mappo = load("kitchen_mappo")
    args = mappo.Args(num_envs=2, total_timesteps=1600, num_minibatches=2, policy_dir=str(tmp_path))
    result = mappo.main(args)
    path = result["policy"]
    assert path == tmp_path / "mappo_cramped_room_seed1.json" and path.stat().st_size < 300_000
    assert result["board"] == "Kitchen-v0"
    assert set(result["partners"]) >= {"onion-fetcher", "plate-server"}
    assert math.isfinite(result["self_play"]) and math.isfinite(result["cross_play"])
    # The saved actor is the trained one: same probabilities as the torch network.
    policy = FrozenPolicy(path)
    actor = mappo.Actor(len(policy.layers[0][0][0]), args.hidden, 6)
    for linear, (weight, bias) in zip(
        [m for m in actor.net if hasattr(m, "weight")], policy.layers
    ):
        linear.weight.data = torch_tensor(weight)
        linear.bias.data = torch_tensor(bias)
    import numpy as np

    features = np.linspace(0, 1, len(policy.layers[0][0][0]))
    expected = actor(torch_tensor(features)).probs.detach().numpy()
    assert np.allclose(policy.probabilities(features), expected, atol=1e-5)
    # Played through the PettingZoo env it is deterministic given the seed.
    runs = []
    for _ in range(2):
        env = make("Kitchen-v0")  # the text env too: it reads the state, not the text
        agents = {a: PolicyChef(env, a, policy=policy) for a in env.possible_agents}
        runs.append(run_episode(env, agents, seed=4).to_json())
    assert runs[0] == runs[1]


def torch_tensor(array):
    import torch

    return torch.tensor(array, dtype=torch.float32)


def test_sb3_trains_through_supersuit_and_saves(tmp_path: Path) -> None:
    pytest.importorskip("supersuit")
    from mallm_envs.envs.kitchen.partners import FrozenPolicy

    ppo = load("kitchen_ppo_sb3")
    args = ppo.Args(
        vec_env="supersuit",
        num_envs=2,
        total_timesteps=1600,
        batch_size=800,
        n_epochs=1,
        policy_dir=str(tmp_path),
        evaluate=False,
    )
    result = ppo.main(args)
    policy = FrozenPolicy(result["policy"])
    assert policy.record["training"]["vec_env"] == "supersuit"
    assert policy.probabilities([0.5] * len(policy.layers[0][0][0])).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="vec_env"):
        ppo.Args(vec_env="gym")


def test_shipped_policies_load_for_their_layout() -> None:
    from mallm_envs.envs.kitchen.partners import (
        POLICIES_DIR,
        FrozenPolicy,
        PolicyChef,
        load_policy,
    )
    from mallm_envs.registration import make

    for path in sorted(POLICIES_DIR.glob("*.json")):
        policy = FrozenPolicy(path)
        assert path.stem.split("_seed")[0].endswith(policy.layout), path
        other = "counter_circuit" if policy.layout != "counter_circuit" else "cramped_room"
        with pytest.raises(ValueError, match="was trained on"):
            PolicyChef(make("KitchenNumeric-v0", layout=other), "chef_0", policy=policy)
    with pytest.raises(ValueError, match="no kitchen policy"):
        load_policy("mappo_no_such_layout_seed1")
