"""Re-evaluate the kitchen cross-play board entries of some layouts (after their population
changed): the scripted pair and the shipped MAPPO and SB3 PPO policies of seed 1.

Each entry is played as it was first made: the scripted pair as
``mallm evaluate BOARD --agent scripted --cross-play --name scripted``, the policies as
``train_policies.sh submit`` plays them (the cross-play half only; their self-play entries
do not depend on the population and are left as they are).

Run from the repository root:
    python baselines/results/kitchen/cross_play_entries.py [--env Kitchen-v0] LAYOUT [...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mallm_envs.cli import main as mallm
from mallm_envs.envs.kitchen.partners import POLICIES_DIR, FrozenPolicy, PolicyChef
from mallm_envs.leaderboard import evaluate
from mallm_envs.leaderboard.board import cross_play_stats

POLICIES = (("mappo", "MAPPO", "MappoChef"), ("sb3ppo", "SB3 PPO", "PpoChef"))


def board_id(env_id: str, layout: str) -> str:
    return env_id if layout == "cramped_room" else f"{env_id}@{layout}"


def scripted(env_id: str, layout: str, root: Path) -> None:
    board = board_id(env_id, layout)
    out = root / board / "cross-play" / "scripted.json.gz"
    args = ["evaluate", board, "--agent", "scripted", "--cross-play", "--name", "scripted"]
    assert mallm([*args, "--quiet", "--out", str(out)]) == 0, board


def policy(env_id: str, layout: str, root: Path, algo: str, label: str, spec: str) -> None:
    path = POLICIES_DIR / f"{algo}_{layout}_seed1.json"
    frozen = FrozenPolicy(path)
    training = json.loads(path.read_text())["training"]
    name = f"{label} (seed 1)"
    info = {
        "name": name,
        "spec": f"mallm_envs.envs.kitchen.partners:{spec}",
        "description": f"{training['script']}, {layout}, seed 1, "
        f"{training['joint_steps']} joint steps (a short run); actions sampled",
    }

    def make_agents(env: Any) -> dict[str, Any]:
        return {a: PolicyChef(env, a, policy=frozen) for a in env.possible_agents}

    board = board_id(env_id, layout)
    cross = evaluate(board, make_agents, agent_info=info, progress=False, cross_play=True)
    file = name.lower().replace(" ", "-").replace("(", "").replace(")", "") + ".json.gz"
    cross.save(root / board / "cross-play" / file)
    stats = cross_play_stats(cross.episodes, cross.cross_play["games"])
    print(f"{board} {name}: cross-play {stats['team_return']['mean']:.1f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("layouts", nargs="+")
    parser.add_argument("--env", default="Kitchen-v0")
    parser.add_argument("--root", default="leaderboards", type=Path)
    parser.add_argument("--only", choices=("scripted", "mappo", "sb3ppo"), action="append")
    args = parser.parse_args(argv)
    for layout in args.layouts:
        if not args.only or "scripted" in args.only:
            scripted(args.env, layout, args.root)
        for algo, label, spec in POLICIES:
            if not args.only or algo in args.only:
                policy(args.env, layout, args.root, algo, label, spec)


if __name__ == "__main__":
    sys.exit(main())
