"""Text-env overhead side by side with a PettingZoo classic env, in one run.

Measures AEC steps per second (random legal actions, full episodes, resets included) of

- ``CommonWord-v0`` (this project's smallest text env: the core's overhead dominates), and
- PettingZoo's ``rps_v2`` (rock-paper-scissors, a two-player simultaneous classic env),

and prints the ratio; the target is our per-step cost within 1.5x of the classic env's. It
also reports the core's per-step cost next to a nominal LLM call (the target is < 1%).

PettingZoo's classic envs import pygame: `pip install pygame` first.

Run:  python benchmarks/bench_core.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time

from pettingzoo.classic import rps_v2

import mallm_envs

LLM_CALL_S = 0.2  # a fast small-model call (about 50 tokens); slower models widen the margin


def steps_per_second(make, actions_for, seconds: float) -> float:
    env = make()
    steps = 0
    episode = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        env.reset(seed=episode)
        episode += 1
        for agent in env.agent_iter():
            _, _, terminated, truncated, _ = env.last()
            env.step(None if terminated or truncated else actions_for(env, agent))
            steps += 1
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    words = ["apple", "river"]

    def ours_action(env, agent):
        return words[hash(agent) % 2]

    def rps_action(env, agent):
        return env.action_space(agent).sample()

    ours = steps_per_second(lambda: mallm_envs.make("CommonWord-v0"), ours_action, args.seconds)
    peer = steps_per_second(
        lambda: rps_v2.env(num_actions=3, max_cycles=2), rps_action, args.seconds
    )
    per_step_us = 1e6 / ours
    result = {
        "git_revision": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip(),
        "python": platform.python_version(),
        "commonword_aec_steps_per_s": round(ours),
        "rps_v2_aec_steps_per_s": round(peer),
        "cost_ratio_ours_over_rps": round(peer / ours, 3),
        "core_step_us": round(per_step_us, 2),
        "core_share_of_llm_call": f"{per_step_us / (LLM_CALL_S * 1e6):.5%}",
    }
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
