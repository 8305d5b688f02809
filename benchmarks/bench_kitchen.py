"""Kitchen throughput side by side with overcooked-ai 1.1.0, in one run.

Cramped room, random joint actions, joint steps per second:

(a) our pure ``Kitchen.transition`` vs overcooked-ai's ``get_state_transition``;
(b) our native Parallel API with the lossless grid observation vs overcooked-ai's gym env
    ``Overcooked`` with its lossless encoding;
(c) our batched numpy core (joint steps summed over the batch) vs (a)'s peer figure.

The peer runs in its own virtualenv (default ``peers/overcooked-venv`` in the checkout,
git-ignored; overcooked-ai 1.1.0 needs old dependencies, so it never goes into the project's
environment), launched through ``benchmarks/bench_kitchen_peer.py``. Without the peer our figures print alone.
Peer set-up (1.1.0 imports scipy but does not declare it, and breaks on numpy 2)::

    python3 -m venv peers/overcooked-venv
    peers/overcooked-venv/bin/pip install overcooked-ai==1.1.0 scipy "numpy<2"

The peer's gym wrapper reads two attributes its own mdp lacks in 1.1.0; the peer script
sets them to the layout's values (see there). Measure on a quiet machine: both sides run
one after the other, so load that changes between them skews the ratios.

Run:  python benchmarks/bench_kitchen.py [--seconds 5] [--peer-python PATH] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from mallm_envs.envs.kitchen.batched import BatchedKitchen
from mallm_envs.envs.kitchen.env import KitchenNumericParallelEnv
from mallm_envs.envs.kitchen.rules import Kitchen, load_layout

HERE = Path(__file__).resolve().parent
DEFAULT_PEER = HERE.parent / "peers" / "overcooked-venv" / "bin" / "python"


def bench_transition(seconds: float) -> float:
    kitchen = Kitchen(load_layout("cramped_room"))
    rng = np.random.default_rng(0)
    actions = [tuple(int(v) for v in row) for row in rng.integers(0, 6, size=(4096, 2))]
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        state = kitchen.initial_state()
        transition = kitchen.transition
        for i in range(400):
            state, _, _ = transition(state, actions[(steps + i) % 4096])
        steps += 400
    return steps / (time.perf_counter() - start)


def bench_parallel(seconds: float) -> float:
    env = KitchenNumericParallelEnv(layout="cramped_room", observation="grid")
    rng = np.random.default_rng(0)
    joint = [{"chef_0": int(a), "chef_1": int(b)} for a, b in rng.integers(0, 6, size=(4096, 2))]
    env.reset(seed=0)
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            _, _, _, truncations, _ = env.step(joint[steps % 4096])
            steps += 1
            if truncations["chef_0"]:
                env.reset()
    return steps / (time.perf_counter() - start)


def bench_batched(seconds: float, num_envs: int) -> float:
    batch = BatchedKitchen(Kitchen(load_layout("cramped_room")), num_envs)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 6, size=(32, num_envs, 2))
    steps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(32):
            _, _, done = batch.step(actions[i])
            if done.any():
                batch.reset(done)
        steps += 32 * num_envs
    return steps / (time.perf_counter() - start)


def bench_peer(python: Path, seconds: float) -> dict[str, float] | None:
    if not python.exists():
        return None
    result = subprocess.run(
        [str(python), str(HERE / "bench_kitchen_peer.py"), "bench", str(seconds)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if result.returncode != 0:
        print(result.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="time per measurement")
    parser.add_argument("--num-envs", type=int, default=4096, help="batch size for (c)")
    parser.add_argument("--peer-python", type=Path, default=DEFAULT_PEER)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    ours = {
        "transition_steps_per_s": bench_transition(args.seconds),
        "parallel_grid_steps_per_s": bench_parallel(args.seconds),
        "batched_steps_per_s": bench_batched(args.seconds, args.num_envs),
    }
    peer = bench_peer(args.peer_python, args.seconds)
    report = {
        "git_revision": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "seconds": args.seconds,
        "num_envs": args.num_envs,
        "ours": ours,
        "overcooked_ai_1_1_0": peer,
    }
    print(f"(a) transition       ours {ours['transition_steps_per_s']:>12,.0f} steps/s", end="")
    if peer:
        ratio_a = ours["transition_steps_per_s"] / peer["transition_steps_per_s"]
        ratio_b = ours["parallel_grid_steps_per_s"] / peer["gym_lossless_steps_per_s"]
        ratio_c = ours["batched_steps_per_s"] / peer["transition_steps_per_s"]
        report["ratios"] = {"a": ratio_a, "b": ratio_b, "c": ratio_c}
        print(
            f"   overcooked-ai {peer['transition_steps_per_s']:>10,.0f}   ratio {ratio_a:6.1f}x (target 2x)"
        )
        print(
            f"(b) parallel+grid    ours {ours['parallel_grid_steps_per_s']:>12,.0f} steps/s"
            f"   overcooked-ai {peer['gym_lossless_steps_per_s']:>10,.0f}   ratio {ratio_b:6.1f}x (target 2x)"
        )
        print(
            f"(c) batched (B={args.num_envs}) ours {ours['batched_steps_per_s']:>9,.0f} steps/s"
            f"   overcooked-ai {peer['transition_steps_per_s']:>10,.0f}   ratio {ratio_c:6.1f}x (target 50x)"
        )
    else:
        print("\n(peer not available: only our figures)")
        print(f"(b) parallel+grid    ours {ours['parallel_grid_steps_per_s']:>12,.0f} steps/s")
        print(f"(c) batched          ours {ours['batched_steps_per_s']:>12,.0f} steps/s")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
