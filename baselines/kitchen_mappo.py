"""MAPPO on the kitchen: one shared actor for every chef, one centralised critic.

CleanRL style: the whole algorithm in this file, top to bottom. Rollouts come from the
batched numpy core (:class:`mallm_envs.envs.kitchen.batched.BatchedKitchen`), all kitchens
in lock-step, one full 400-step episode per rollout. Each chef observes its own lossless
feature vector (itself first); the critic sees chef_0's vector, which holds the whole state.
The team reward is the delivery points plus the shaped terms, whose weight decays linearly
to zero over ``shaping_horizon`` steps (as in Carroll et al. 2019), so the policy ends up
optimising the real score. The score reported is the delivery points per episode.

Run:  python baselines/kitchen_mappo.py --layout cramped_room --seed 1
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import tyro
from torch import nn

from mallm_envs.envs.kitchen.batched import BatchedKitchen, FeatureEncoder
from mallm_envs.envs.kitchen.rules import Kitchen, KitchenRules, load_layout


@dataclass
class Args:
    layout: str = "cramped_room"
    """kitchen layout to train on"""
    seed: int = 1
    """seed of torch, numpy and the action sampling"""
    num_envs: int = 64
    """kitchens stepped together"""
    total_timesteps: int = 6_000_000
    """joint environment steps to train for (summed over kitchens)"""
    time_limit_minutes: float = 28.0
    """stop after this much wall-clock time, whatever total_timesteps says"""
    learning_rate: float = 1e-3
    """Adam learning rate (annealed linearly to 0)"""
    gamma: float = 0.99
    """discount"""
    gae_lambda: float = 0.95
    """GAE lambda"""
    update_epochs: int = 4
    """epochs over each rollout"""
    num_minibatches: int = 8
    """minibatches per epoch"""
    clip_coef: float = 0.2
    """PPO clipping"""
    ent_coef: float = 0.01
    """entropy bonus weight"""
    vf_coef: float = 0.5
    """value loss weight"""
    max_grad_norm: float = 0.5
    """gradient clipping"""
    hidden: int = 128
    """width of the two hidden layers of actor and critic"""
    shaping_horizon: int = 2_500_000
    """steps over which the shaped-reward weight decays from 1 to 0"""
    csv_path: str = ""
    """where to write the learning curve (empty: do not write)"""


def layer(n_in: int, n_out: int, std: float = np.sqrt(2)) -> nn.Linear:
    linear = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(linear.weight, std)
    nn.init.constant_(linear.bias, 0.0)
    return linear


class Actor(nn.Module):
    def __init__(self, obs_dim: int, hidden: int, num_actions: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            layer(obs_dim, hidden),
            nn.Tanh(),
            layer(hidden, hidden),
            nn.Tanh(),
            layer(hidden, num_actions, std=0.01),
        )

    def forward(self, obs: torch.Tensor) -> torch.distributions.Categorical:
        return torch.distributions.Categorical(logits=self.net(obs))


class Critic(nn.Module):
    def __init__(self, state_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            layer(state_dim, hidden),
            nn.Tanh(),
            layer(hidden, hidden),
            nn.Tanh(),
            layer(hidden, 1, std=1.0),
        )

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state).squeeze(-1)


def gae(
    rewards: torch.Tensor, values: torch.Tensor, last_value: torch.Tensor, gamma: float, lam: float
) -> torch.Tensor:
    """Generalised advantage estimates over a rollout that ends at the horizon (truncation:
    the value of the last state is bootstrapped as zero, since the episode is over)."""
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(last_value)
    for t in reversed(range(steps)):
        next_value = last_value if t == steps - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_value - values[t]
        running = delta + gamma * lam * running
        advantages[t] = running
    return advantages


def policy_loss(
    new_logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip: float
) -> torch.Tensor:
    ratio = (new_logprobs - old_logprobs).exp()
    return torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()


def train(args: Args) -> list[dict[str, float]]:
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    kitchen = Kitchen(load_layout(args.layout), KitchenRules())
    horizon = kitchen.rules.horizon
    weights = np.array(
        [kitchen.rules.shaped_weights[k] for k in ("onion_in_pot", "dish_pickup", "soup_pickup")]
    )
    batch = BatchedKitchen(kitchen, args.num_envs)
    encoder = FeatureEncoder(kitchen)
    chefs = kitchen.layout.num_chefs
    actor = Actor(encoder.size, args.hidden, 6)
    critic = Critic(encoder.size, args.hidden)
    optimizer = torch.optim.Adam(
        [*actor.parameters(), *critic.parameters()], lr=args.learning_rate, eps=1e-5
    )
    b, n, d = args.num_envs, chefs, encoder.size
    rollout_steps = b * horizon
    num_updates = max(1, args.total_timesteps // rollout_steps)
    start = time.time()
    curve: list[dict[str, float]] = []
    global_step = 0
    for update in range(num_updates):
        if time.time() - start > args.time_limit_minutes * 60:
            break
        frac = 1.0 - update / num_updates
        optimizer.param_groups[0]["lr"] = frac * args.learning_rate
        obs_buf = torch.zeros((horizon, b, n, d))
        act_buf = torch.zeros((horizon, b, n), dtype=torch.long)
        logp_buf = torch.zeros((horizon, b, n))
        rew_buf = torch.zeros((horizon, b))
        val_buf = torch.zeros((horizon, b))
        batch.reset()
        points = np.zeros(b)
        shaped_total = np.zeros(b)
        shaping = max(0.0, 1.0 - global_step / args.shaping_horizon)
        with torch.no_grad():
            for t in range(horizon):
                obs = torch.from_numpy(encoder.encode_batch(batch))
                dist = actor(obs)
                actions = dist.sample()
                obs_buf[t], act_buf[t], logp_buf[t] = obs, actions, dist.log_prob(actions)
                val_buf[t] = critic(obs[:, 0])
                step_points, shaped, _ = batch.step(actions.numpy())
                shaped_reward = shaped @ weights
                points += step_points
                shaped_total += shaped_reward
                rew_buf[t] = torch.from_numpy(step_points + shaping * shaped_reward).float()
        global_step += rollout_steps
        advantages = gae(rew_buf, val_buf, torch.zeros(b), args.gamma, args.gae_lambda)
        returns = advantages + val_buf
        flat_obs = obs_buf.reshape(horizon * b, n, d)
        flat_act = act_buf.reshape(horizon * b, n)
        flat_logp = logp_buf.reshape(horizon * b, n)
        flat_adv = advantages.reshape(-1)
        flat_ret = returns.reshape(-1)
        samples = horizon * b
        minibatch = samples // args.num_minibatches
        for _ in range(args.update_epochs):
            order = torch.from_numpy(rng.permutation(samples))
            for begin in range(0, samples, minibatch):
                idx = order[begin : begin + minibatch]
                mb_adv = flat_adv[idx]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                dist = actor(flat_obs[idx])
                new_logp = dist.log_prob(flat_act[idx])
                pg = policy_loss(
                    new_logp, flat_logp[idx], mb_adv[:, None].expand(-1, n), args.clip_coef
                )
                entropy = dist.entropy().mean()
                value = critic(flat_obs[idx, 0])
                v_loss = 0.5 * ((value - flat_ret[idx]) ** 2).mean()
                loss = pg - args.ent_coef * entropy + args.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(
                    [*actor.parameters(), *critic.parameters()], args.max_grad_norm
                )
                optimizer.step()
        row = {
            "global_step": global_step,
            "wall_seconds": round(time.time() - start, 1),
            "episode_points": float(points.mean()),
            "episode_shaped": float(shaped_total.mean()),
            "shaping_weight": round(shaping, 4),
        }
        curve.append(row)
        print(
            f"step {global_step:>9}  {row['wall_seconds']:>7.1f}s  points {row['episode_points']:6.1f}  "
            f"shaped {row['episode_shaped']:6.1f}  shaping {shaping:.2f}",
            flush=True,
        )
        if args.csv_path:
            write_csv(args.csv_path, curve)
    return curve


def write_csv(path: str, rows: list[dict[str, float]]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    train(tyro.cli(Args))
