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
