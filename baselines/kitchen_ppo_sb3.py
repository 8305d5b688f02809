"""Stable-Baselines3 PPO with parameter sharing on the numeric kitchen.

Every (kitchen, chef) pair is one slot of a stable-baselines3 ``VecEnv`` built directly on
the batched numpy core, so one policy network plays every chef (parameter sharing) and
``num_envs`` kitchens step together. Each slot observes its chef's lossless feature vector
and receives the team reward: delivery points plus the shaped terms, whose weight decays
linearly to zero over ``shaping_horizon`` joint steps. The curve logs the delivery points
per 400-step episode.

``--vec-env supersuit`` trains through the PettingZoo env instead: SuperSuit's
``pettingzoo_env_to_vec_env_v1`` turns ``KitchenNumeric-v0``'s Parallel env (feature
observations, ``shaped_reward=True``) into a vector env with one slot per chef, and
``concat_vec_envs_v1`` stacks ``num_envs`` of them for stable-baselines3. That path is slower
(one Python env per kitchen) and its shaped terms stay on for the whole run (the env's reward
has no decay); the default, ``batched``, steps the numpy core directly.

What it trains is kept: the policy network is saved as a small JSON file
(``mallm_envs/envs/kitchen/policies/sb3ppo_<layout>_seed<seed>.json``), played through the
PettingZoo env on the official suite in self-play and with the held-out partners, and with
``--submit leaderboards`` written as board entries (agent spec
``mallm_envs.envs.kitchen.partners:PpoChef`` for the seed-1 policy).

Run:  python baselines/kitchen_ppo_sb3.py --layout cramped_room --seed 1
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import tyro
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from mallm_envs.envs.kitchen.batched import BatchedKitchen, FeatureEncoder
from mallm_envs.envs.kitchen.rules import Kitchen, KitchenRules, load_layout


@dataclass
class Args:
    layout: str = "cramped_room"
    """kitchen layout to train on"""
    seed: int = 1
    """seed of the policy and its sampling"""
    num_envs: int = 32
    """kitchens stepped together (the VecEnv has num_envs * chefs slots)"""
    total_timesteps: int = 20_000_000
    """slot steps to train for (one joint step of a two-chef kitchen counts 2)"""
    time_limit_minutes: float = 28.0
    """stop after this much wall-clock time"""
    shaping_horizon: int = 2_500_000
    """joint steps over which the shaped-reward weight decays from 1 to 0"""
    n_steps: int = 400
    """PPO rollout length per slot (one episode)"""
    learning_rate: float = 1e-3
    """Adam learning rate"""
    batch_size: int = 6400
    """PPO minibatch size"""
    n_epochs: int = 4
    """PPO epochs per rollout"""
    ent_coef: float = 0.01
    """entropy bonus weight"""
    csv_path: str = ""
    """where to write the learning curve (empty: do not write)"""
    vec_env: str = "batched"
    """'batched' (the numpy core as a VecEnv) or 'supersuit' (the PettingZoo Parallel env
    through SuperSuit's pettingzoo_env_to_vec_env_v1)"""
    policy_dir: str = "mallm_envs/envs/kitchen/policies"
    """where to save the trained policy, as sb3ppo_<layout>_seed<seed>.json (empty: do not save)"""
    evaluate: bool = True
    """after training, play the saved policy on the official suite and with the partners"""
    submit: str = ""
    """a boards folder (leaderboards) to write the self-play and cross-play entries into"""
    eval_env: str = "Kitchen-v0"
    """the PettingZoo env the saved policy is played in: Kitchen-v0 (text; the chefs read the
    state, so the episodes are those of KitchenNumeric-v0 with transcripts a third the size)
    or KitchenNumeric-v0"""

    def __post_init__(self) -> None:
        if self.vec_env not in ("batched", "supersuit"):
            raise ValueError(f"vec_env must be 'batched' or 'supersuit', got {self.vec_env!r}")


class KitchenVecEnv(VecEnv):
    """A VecEnv whose slots are the chefs of ``num_envs`` batched kitchens."""

    def __init__(self, kitchen: Kitchen, num_envs: int, shaping_horizon: int) -> None:
        self.batch = BatchedKitchen(kitchen, num_envs)
        self.encoder = FeatureEncoder(kitchen)
        self.chefs = kitchen.layout.num_chefs
        self.kitchens = num_envs
        self.weights = np.array(
            [
                kitchen.rules.shaped_weights[k]
                for k in ("onion_in_pot", "dish_pickup", "soup_pickup")
            ]
        )
        self.shaping_horizon = shaping_horizon
        self.joint_steps = 0
        self.points = np.zeros(num_envs)
        self.finished_points: list[float] = []
        self._actions = np.zeros((num_envs, self.chefs), dtype=np.int64)
        observation_space = gym.spaces.Box(0.0, 1.0, shape=(self.encoder.size,), dtype=np.float32)
        super().__init__(num_envs * self.chefs, observation_space, gym.spaces.Discrete(6))

    def _obs(self) -> np.ndarray:
        return self.encoder.encode_batch(self.batch).reshape(self.num_envs, -1)

    def reset(self) -> np.ndarray:
        self.batch.reset()
        self.points[:] = 0
        return self._obs()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions, dtype=np.int64).reshape(self.kitchens, self.chefs)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        points, shaped, done = self.batch.step(self._actions)
        shaping = max(0.0, 1.0 - self.joint_steps / self.shaping_horizon)
        self.joint_steps += self.kitchens
        self.points += points
        team = points + shaping * (shaped @ self.weights)
        rewards = np.repeat(team, self.chefs).astype(np.float32)
        dones = np.repeat(done, self.chefs)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if done.any():
            final = self._obs()
            for slot in np.flatnonzero(dones):
                infos[slot]["terminal_observation"] = final[slot]
                infos[slot]["TimeLimit.truncated"] = True
            self.finished_points.extend(self.points[done].tolist())
            self.points[done] = 0
            self.batch.reset(done)
        return self._obs(), rewards, dones, infos

    def close(self) -> None:
        pass

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * self.num_envs

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ) -> list[Any]:
        return [getattr(self, method_name)(*args, **kwargs)]

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False] * self.num_envs

    def seed(self, seed: int | None = None) -> list[int | None]:
        return [seed] * self.num_envs


class CurveLogger(BaseCallback):
    """Logs mean delivery points of the episodes finished in each rollout; stops at the
    time limit."""

    def __init__(self, env: KitchenVecEnv, args: Args) -> None:
        super().__init__()
        self.kitchen_env = env
        self.args = args
        self.start = time.time()
        self.rows: list[dict[str, float]] = []

    def _on_step(self) -> bool:
        return time.time() - self.start < self.args.time_limit_minutes * 60

    def _on_rollout_end(self) -> None:
        env = self.kitchen_env
        if not env.finished_points:
            return
        row = {
            "global_step": env.joint_steps,
            "wall_seconds": round(time.time() - self.start, 1),
            "episode_points": float(np.mean(env.finished_points)),
            "shaping_weight": round(max(0.0, 1.0 - env.joint_steps / env.shaping_horizon), 4),
        }
        env.finished_points.clear()
        self.rows.append(row)
        print(
            f"step {row['global_step']:>9}  {row['wall_seconds']:>7.1f}s  "
            f"points {row['episode_points']:6.1f}  shaping {row['shaping_weight']:.2f}",
            flush=True,
        )
        if self.args.csv_path:
            write_csv(self.args.csv_path, self.rows)


def write_csv(path: str, rows: list[dict[str, float]]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(path).with_suffix(".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


class SuperSuitCurve(BaseCallback):
    """Logs mean delivery points per finished episode from the PettingZoo env's reward
    components (the ``supersuit`` path); stops at the time limit."""

    def __init__(self, args: Args, chefs: int) -> None:
        super().__init__()
        self.args = args
        self.chefs = chefs
        self.start = time.time()
        self.rows: list[dict[str, float]] = []
        self.points: np.ndarray | None = None
        self.finished: list[float] = []

    def _on_step(self) -> bool:
        infos = self.locals["infos"]
        dones = self.locals["dones"]
        if self.points is None:
            self.points = np.zeros(len(infos))
        for slot, info in enumerate(infos):
            self.points[slot] += info.get("reward_components", {}).get("delivery", 0.0)
            if dones[slot]:
                if slot % self.chefs == 0:  # one slot per kitchen counts its points
                    self.finished.append(float(self.points[slot]))
                self.points[slot] = 0.0
        return time.time() - self.start < self.args.time_limit_minutes * 60

    def _on_rollout_end(self) -> None:
        if not self.finished:
            return
        row = {
            "global_step": self.num_timesteps // self.chefs,
            "wall_seconds": round(time.time() - self.start, 1),
            "episode_points": float(np.mean(self.finished)),
            "shaping_weight": 1.0,
        }
        self.finished.clear()
        self.rows.append(row)
        print(
            f"step {row['global_step']:>9}  {row['wall_seconds']:>7.1f}s  "
            f"points {row['episode_points']:6.1f}  (supersuit, shaping on)",
            flush=True,
        )
        if self.args.csv_path:
            write_csv(self.args.csv_path, self.rows)


def supersuit_env(args: Args) -> Any:
    """The PettingZoo Parallel env as a stable-baselines3 VecEnv, through SuperSuit."""
    import supersuit

    import mallm_envs

    parallel = mallm_envs.make_parallel(
        "KitchenNumeric-v0", layout=args.layout, observation="features", shaped_reward=True
    )
    vec = supersuit.pettingzoo_env_to_vec_env_v1(parallel)
    env = supersuit.concat_vec_envs_v1(
        vec, args.num_envs, num_cpus=0, base_class="stable_baselines3"
    )
    # SuperSuit 3.x's ConcatVecEnv predates stable-baselines3 2.x's VecEnv.seed(), which
    # PPO calls when given a seed: seeding means resetting it with that seed.
    concat = env.venv
    concat.seed = lambda seed=None: (concat.reset(seed=seed), [seed] * concat.num_envs)[1]
    return env


def policy_layers(model: PPO) -> list[tuple[np.ndarray, np.ndarray]]:
    """The policy network's linear layers (the MLP extractor's policy branch, then the
    action head) as (weight, bias) arrays, tanh between them."""
    linears = [m for m in model.policy.mlp_extractor.policy_net if isinstance(m, torch.nn.Linear)]
    linears.append(model.policy.action_net)
    return [(m.weight.detach().numpy(), m.bias.detach().numpy()) for m in linears]


def main(args: Args) -> dict[str, Any]:
    if str(Path(__file__).parent) not in sys.path:
        sys.path.insert(0, str(Path(__file__).parent))
    from kitchen_mappo import play_policy  # the same evaluation and submission as MAPPO

    from mallm_envs.envs.kitchen.partners import save_policy

    rows, model = train(args, return_model=True)
    result: dict[str, Any] = {"curve": rows, "policy": None}
    if not args.policy_dir:
        return result
    path = save_policy(
        Path(args.policy_dir) / f"sb3ppo_{args.layout}_seed{args.seed}.json",
        policy_layers(model),
        algorithm="sb3ppo",
        layout=args.layout,
        seed=args.seed,
        training={
            "script": "baselines/kitchen_ppo_sb3.py",
            "vec_env": args.vec_env,
            "joint_steps": rows[-1]["global_step"] if rows else 0,
            "last_episode_points": rows[-1]["episode_points"] if rows else 0.0,
        },
    )
    result["policy"] = path
    if args.evaluate:
        shipped = (
            args.seed == 1
            and Path(args.policy_dir).resolve()
            == Path("mallm_envs/envs/kitchen/policies").resolve()
        )
        result.update(
            play_policy(
                path,
                name=f"SB3 PPO (seed {args.seed})",
                spec="mallm_envs.envs.kitchen.partners:PpoChef" if shipped else None,
                description=f"baselines/kitchen_ppo_sb3.py ({args.vec_env}), {args.layout}, "
                f"seed {args.seed}; actions sampled",
                submit=args.submit if shipped else "",
                env_id=args.eval_env,
            )
        )
    return result


def train(args: Args, return_model: bool = False) -> Any:
    torch.set_num_threads(1)
    kitchen = Kitchen(load_layout(args.layout), KitchenRules())
    if args.vec_env == "supersuit":
        env = supersuit_env(args)
        logger: BaseCallback = SuperSuitCurve(args, kitchen.layout.num_chefs)
    else:
        env = KitchenVecEnv(kitchen, args.num_envs, args.shaping_horizon)
        logger = CurveLogger(env, args)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=args.n_steps,
        batch_size=args.batch_size,
        n_epochs=args.n_epochs,
        learning_rate=args.learning_rate,
        ent_coef=args.ent_coef,
        gamma=0.99,
        gae_lambda=0.95,
        policy_kwargs={"net_arch": [128, 128]},
        seed=args.seed,
        device="cpu",
        verbose=0,
    )
    model.learn(total_timesteps=args.total_timesteps, callback=logger)
    return (logger.rows, model) if return_model else logger.rows


if __name__ == "__main__":
    main(tyro.cli(Args))
