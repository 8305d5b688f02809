"""MAPPO on the kitchen: one shared actor for every chef, one centralised critic.

CleanRL style: the whole algorithm in this file, top to bottom. Rollouts come from the
batched numpy core (:class:`mallm_envs.envs.kitchen.batched.BatchedKitchen`), all kitchens
in lock-step, one full 400-step episode per rollout. Each chef observes its own lossless
feature vector (itself first); the critic sees chef_0's vector, which holds the whole state.
The team reward is the delivery points plus the shaped terms, whose weight decays linearly
to zero over ``shaping_horizon`` steps (as in Carroll et al. 2019), so the policy ends up
optimising the real score. The score reported is the delivery points per episode.

What it trains is kept: the actor is saved as a small JSON file
(``mallm_envs/envs/kitchen/policies/mappo_<layout>_seed<seed>.json``, about 100 KB), played
through the PettingZoo env (``KitchenNumeric-v0``, or its ``@layout`` variant) on the
official suite, in self-play and with the held-out partners (cross-play), and with
``--submit leaderboards`` written as board entries. The saved seed-1 policy is the agent
spec ``mallm_envs.envs.kitchen.partners:MappoChef`` (sampled with a seeded generator:
deterministic on CPU, so the verifier reproduces it).

Run:  python baselines/kitchen_mappo.py --layout cramped_room --seed 1
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    policy_dir: str = "mallm_envs/envs/kitchen/policies"
    """where to save the trained actor, as mappo_<layout>_seed<seed>.json (empty: do not save)"""
    evaluate: bool = True
    """after training, play the saved policy on the official suite and with the partners"""
    submit: str = ""
    """a boards folder (leaderboards) to write the self-play and cross-play entries into"""
    eval_env: str = "Kitchen-v0"
    """the PettingZoo env the saved policy is played in: Kitchen-v0 (text; the chefs read the
    state, so the episodes are those of KitchenNumeric-v0 with transcripts a third the size)
    or KitchenNumeric-v0"""


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


def actor_layers(actor: Actor) -> list[tuple[np.ndarray, np.ndarray]]:
    """The actor's linear layers as (weight, bias) arrays, input first (tanh between)."""
    linears = [m for m in actor.net if isinstance(m, nn.Linear)]
    return [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in linears]


def save_actor(args: Args, actor: Actor, curve: list[dict[str, float]]) -> Path | None:
    from mallm_envs.envs.kitchen.partners import save_policy

    if not args.policy_dir:
        return None
    path = Path(args.policy_dir) / f"mappo_{args.layout}_seed{args.seed}.json"
    training = {
        "script": "baselines/kitchen_mappo.py",
        "joint_steps": curve[-1]["global_step"] if curve else 0,
        "last_episode_points": curve[-1]["episode_points"] if curve else 0.0,
        "hidden": args.hidden,
        "shaping_horizon": args.shaping_horizon,
    }
    return save_policy(
        path,
        actor_layers(actor),
        algorithm="mappo",
        layout=args.layout,
        seed=args.seed,
        training=training,
    )


def play_policy(
    path: Path,
    *,
    name: str,
    spec: str | None,
    description: str,
    submit: str = "",
    env_id: str = "Kitchen-v0",
) -> dict[str, Any]:
    """Play a saved policy through the PettingZoo env on the official suite of its layout, in
    self-play and with the held-out partners; with ``submit``, write both board entries."""
    from mallm_envs.envs.kitchen.partners import FrozenPolicy, PolicyChef
    from mallm_envs.leaderboard import evaluate
    from mallm_envs.leaderboard.board import cross_play_stats

    policy = FrozenPolicy(path)
    board = env_id
    if policy.layout != "cramped_room":
        board += f"@{policy.layout}"

    def make_agents(env: Any) -> dict[str, Any]:
        return {a: PolicyChef(env, a, policy=policy) for a in env.possible_agents}

    info = {"name": name, "spec": spec, "description": description}
    self_play = evaluate(board, make_agents, agent_info=info, progress=False)
    cross = evaluate(board, make_agents, agent_info=info, progress=False, cross_play=True)
    stats = cross_play_stats(cross.episodes, cross.cross_play["games"])
    result = {
        "board": board,
        "self_play": self_play.summary["team_return"]["mean"],
        "cross_play": stats["team_return"]["mean"],
        "partners": {k: v["mean"] for k, v in stats["partners"].items()},
    }
    print(
        f"{board}: self-play {result['self_play']:.1f}, cross-play {result['cross_play']:.1f} "
        f"({', '.join(f'{k} {v:.0f}' for k, v in result['partners'].items())})",
        flush=True,
    )
    if submit:
        file = name.lower().replace(" ", "-").replace("(", "").replace(")", "") + ".json.gz"
        self_play.save(Path(submit) / board / file)
        cross.save(Path(submit) / board / "cross-play" / file)
    return result


def main(args: Args) -> dict[str, Any]:
    curve, actor = train(args, return_actor=True)
    path = save_actor(args, actor, curve)
    result: dict[str, Any] = {"curve": curve, "policy": path}
    if path is not None and args.evaluate:
        shipped = (
            args.seed == 1
            and Path(args.policy_dir).resolve()
            == Path("mallm_envs/envs/kitchen/policies").resolve()
        )
        result.update(
            play_policy(
                path,
                name=f"MAPPO (seed {args.seed})",
                spec="mallm_envs.envs.kitchen.partners:MappoChef" if shipped else None,
                description=f"baselines/kitchen_mappo.py, {args.layout}, seed {args.seed}, "
                f"{curve[-1]['global_step'] if curve else 0} joint steps; actions sampled",
                submit=args.submit if shipped else "",
                env_id=args.eval_env,
            )
        )
    return result


def train(args: Args, return_actor: bool = False) -> Any:
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
    return (curve, actor) if return_actor else curve


def write_csv(path: str, rows: list[dict[str, float]]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


if __name__ == "__main__":
    main(tyro.cli(Args))
