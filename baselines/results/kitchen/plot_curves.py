"""Draws curves.png from the CSV learning curves in this folder.

Run:  python baselines/results/kitchen/plot_curves.py
"""

from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
RUNS = {
    "MAPPO (shared actor, one critic), seed 1": "mappo_cramped_room_seed1.csv",
    "MAPPO, seed 2 (3.5-minute run)": "mappo_cramped_room_seed2.csv",
    "MAPPO, seed 3 (3.5-minute run)": "mappo_cramped_room_seed3.csv",
    "SB3 PPO (parameter sharing), seed 1": "sb3_ppo_cramped_room_seed1.csv",
}


def main() -> None:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    for label, name in RUNS.items():
        rows = list(csv.DictReader((HERE / name).open()))
        steps = [int(r["global_step"]) / 1e6 for r in rows]
        minutes = [float(r["wall_seconds"]) / 60 for r in rows]
        points = [float(r["episode_points"]) for r in rows]
        axes[0].plot(steps, points, label=label)
        axes[1].plot(minutes, points, label=label)
    for axis, xlabel in zip(
        axes, ("joint steps (millions)", "wall-clock minutes (shared 2-core machine)")
    ):
        axis.axhline(100, color="grey", linestyle="--", linewidth=1, label="target: 100 points")
        axis.set_xlabel(xlabel)
        axis.set_ylabel("delivery points per 400-step episode")
        axis.grid(alpha=0.3)
    axes[0].legend(loc="lower right")
    figure.suptitle("Kitchen, cramped room (shaped-reward weight decays to 0)")
    figure.tight_layout()
    figure.savefig(HERE / "curves.png", dpi=100)


if __name__ == "__main__":
    main()
