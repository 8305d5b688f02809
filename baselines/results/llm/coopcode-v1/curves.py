"""Held-out curves of the CoopCode-v1 SmolLM2 training runs against the prompting baselines.

Reads every run folder's ``metrics.csv`` here (``<trainer>[-<tag>]-s<seed>/``) and the
SmolLM2 prompting entries on the CoopCode-v1 board, and writes ``curves.png`` (greedy team
return on the 21 official test tasks against the update; each baseline's suite mean as a
level) and ``curves.json`` (the same numbers)::

    python baselines/results/llm/coopcode-v1/curves.py

The untrained pair is the parallel baseline (the trainers' prompts are its prompts), so each
run's curve starts at that level (update 0 is not re-evaluated: it is that entry).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[3]
BOARD = ROOT / "leaderboards" / "CoopCode-v1"


def read_run(folder: Path) -> dict:
    """A run's held-out points and its sampled training returns."""
    evals, train = [], []
    with (folder / "metrics.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row["step"]))
            if row.get("team_return"):
                train.append((step, float(row["team_return"])))
            if row.get("eval/team_return"):
                success = row.get("eval/success") or "nan"
                evals.append((step, float(row["eval/team_return"]), float(success)))
    args = json.loads((folder / "args.json").read_text()) if (folder / "args.json").exists() else {}
    return {
        "run": folder.name,
        "learning_rate": args.get("learning_rate"),
        "num_updates": args.get("num_updates"),
        "eval": [{"update": s, "team_return": r, "success": k} for s, r, k in evals],
        "train_team_return": [{"update": s, "team_return": r} for s, r in train],
    }


def baseline_levels(board: Path) -> dict[str, float]:
    """Mean team return of each SmolLM2 prompting entry on the board, by strategy."""
    levels = {}
    for path in sorted(board.glob("prompting-*-smollm2*.json.gz")):
        with gzip.open(path, "rt", encoding="ascii") as handle:
            data = json.load(handle)
        name = path.name.removeprefix("prompting-").split(".")[0]
        levels[name] = statistics.fmean(e["team_return"] for e in data["episodes"])
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=HERE / "curves.png")
    args = parser.parse_args()
    runs = [read_run(f) for f in sorted(HERE.iterdir()) if (f / "metrics.csv").exists()]
    levels = baseline_levels(BOARD)
    args.out.with_suffix(".json").write_text(
        json.dumps({"baselines": levels, "runs": runs}, indent=1) + "\n"
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    start = levels.get("parallel-smollm2")
    for run in runs:
        points = [(0, start)] if start is not None else []
        points += [(p["update"], p["team_return"]) for p in run["eval"]]
        if len(points) < 2:
            continue
        label = (
            f"{run['run']} (lr {run['learning_rate']:g})" if run["learning_rate"] else run["run"]
        )
        ax.plot(*zip(*points), marker="o", label=label)
    for i, (name, level) in enumerate(sorted(levels.items())):
        ax.axhline(level, color="grey", linestyle=("--", ":", "-.", (0, (5, 1)))[i % 4], lw=1)
        ax.annotate(name, (0, level), textcoords="offset points", xytext=(2, 3), fontsize=7)
    ax.set_xlabel("update (2 tasks, G = 4 or 4 rollouts each)")
    ax.set_ylabel("greedy team return, 21 test tasks")
    ax.set_title("CoopCode-v1, SmolLM2-135M-Instruct pairs (LoRA), held-out")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out, dpi=120)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
