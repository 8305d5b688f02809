"""Held-out curves of one env's SmolLM2 training runs against its prompting baselines.

Reads every run folder's ``metrics.csv`` under ``baselines/results/llm/<env>/`` (runs named
``TRAINER-sSEED[-lrLR]`` as ``train.sh`` names them) and the four SmolLM2 prompting entries
on the env's board, and writes ``<env>/curves.png`` (greedy team return on the official test
tasks against the update: each seed a thin line, the mean over a setting's seeds a thick one,
each baseline's suite mean a level) and ``<env>/curves.json`` (the same numbers)::

    python baselines/results/llm/curves.py CoopCode-v1

The untrained pair is the parallel baseline (the trainers' prompts are its prompts), so each
run's curve starts at that level (update 0 is not re-evaluated: it is that entry).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import itertools
import json
import re
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
STRATEGIES = ("parallel", "sequential", "discussion", "single")
RUN_NAME = re.compile(r"^(?P<trainer>[a-z]+)-s(?P<seed>\d+)(?:-lr(?P<lr>[0-9.e-]+))?$")


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


def setting_of(run: dict) -> str:
    """The setting a run belongs to, its name without the seed: 'MAGRPO, lr 0.0005'."""
    match = RUN_NAME.match(run["run"])
    if match is None:
        return run["run"]
    lr = run["learning_rate"]
    lr_text = f"{lr:g}" if lr is not None else (match["lr"] or "1e-4")
    return f"{match['trainer'].upper()}, lr {lr_text}"


def group_runs(runs: list[dict]) -> dict[str, dict]:
    """Runs by setting, with the mean held-out return over the seeds at each update all of
    them reached (a setting whose seeds are still running averages only the shared points)."""
    members: dict[str, list[dict]] = {}
    for run in runs:
        members.setdefault(setting_of(run), []).append(run)
    groups = {}
    for name, setting_runs in members.items():
        per_update: dict[int, list[float]] = {}
        for run in setting_runs:
            for point in run["eval"]:
                per_update.setdefault(point["update"], []).append(point["team_return"])
        groups[name] = {
            "runs": [run["run"] for run in setting_runs],
            "mean": [
                {"update": u, "team_return": statistics.fmean(v)}
                for u, v in sorted(per_update.items())
                if len(v) == len(setting_runs)
            ],
        }
    return groups


def baseline_levels(board: Path) -> dict[str, float]:
    """Mean team return of each SmolLM2 prompting baseline on the board, by strategy."""
    levels = {}
    for strategy in STRATEGIES:
        path = board / f"prompting-{strategy}-smollm2.json.gz"
        if not path.exists():
            continue
        with gzip.open(path, "rt", encoding="ascii") as handle:
            data = json.load(handle)
        levels[strategy] = statistics.fmean(e["team_return"] for e in data["episodes"])
    return levels


def spread_labels(levels: list[float], gap: float) -> list[float]:
    """Label heights for sorted levels, pushed up so consecutive labels are ``gap`` apart.

    >>> [round(y, 2) for y in spread_labels([0.0, 0.16, 0.18, 0.36], 0.05)]
    [0.0, 0.16, 0.21, 0.36]
    """
    placed: list[float] = []
    for level in levels:
        placed.append(max(level, placed[-1] + gap) if placed else level)
    return placed


TRAINER_COLOURS = ("magrpo", "maac")  # tab20 pair 0 (blues), pair 1 (oranges); others after


def setting_colours(groups: dict[str, dict]) -> dict[str, int]:
    """A tab20 colour index per setting that stays put when settings are added: each trainer
    its own hue pair (MAGRPO blue, MAAC orange), its settings by falling learning rate dark
    then light (a third setting of one trainer takes the next free hue).

    >>> setting_colours({"MAAC, lr 0.0005": {}, "MAGRPO, lr 0.0001": {}, "MAGRPO, lr 0.0005": {}})
    {'MAGRPO, lr 0.0005': 0, 'MAGRPO, lr 0.0001': 1, 'MAAC, lr 0.0005': 2}
    """

    def key(name: str) -> tuple[int, str, float]:
        trainer, _, lr = name.partition(", lr ")
        known = trainer.lower()
        rank = TRAINER_COLOURS.index(known) if known in TRAINER_COLOURS else len(TRAINER_COLOURS)
        try:
            rate = -float(lr)
        except ValueError:
            rate = 0.0
        return rank, trainer, rate

    colours: dict[str, int] = {}
    spare = itertools.count(2 * len(TRAINER_COLOURS))  # hues no trainer owns
    for name in sorted(groups, key=key):
        rank, trainer, _ = key(name)
        mine = sum(1 for other in colours if key(other)[1] == trainer)
        known = rank < len(TRAINER_COLOURS) and mine < 2
        colours[name] = (2 * rank + mine if known else next(spare)) % 20
    return colours


def plot(env_id: str, groups: dict[str, dict], runs: list[dict], levels: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    start = levels.get("parallel")
    by_name = {r["run"]: r for r in runs}
    last_update = 0
    palette = setting_colours(groups)
    for name, group in groups.items():
        color = plt.cm.tab20.colors[palette[name]]
        for run_name in group["runs"]:
            points = [(0, start)] if start is not None else []
            points += [(p["update"], p["team_return"]) for p in by_name[run_name]["eval"]]
            if len(points) >= 2:
                ax.plot(*zip(*points), color=color, lw=0.8, alpha=0.45)
                last_update = max(last_update, points[-1][0])
        mean = [(0, start)] if start is not None else []
        mean += [(p["update"], p["team_return"]) for p in group["mean"]]
        seeds = len(group["runs"])
        label = f"{name} (mean of {seeds} seeds; thin: each)" if seeds > 1 else f"{name} (1 seed)"
        if len(mean) >= 2:
            ax.plot(*zip(*mean), color=color, lw=2.2, marker="o", label=label)
    if levels:
        ordered = sorted(levels.items(), key=lambda item: item[1])
        values = [v for _, v in ordered]
        span = max(ax.get_ylim()[1] - ax.get_ylim()[0], 1e-6)
        heights = spread_labels(values, 0.045 * span)
        for (name, level), height in zip(ordered, heights):
            ax.axhline(level, color="grey", linestyle="--", lw=0.9)
            ax.annotate(
                f"{name} {level:.3f}",
                xy=(1.0, height),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                fontsize=7,
                va="center",
                color="dimgrey",
            )
    ax.set_xlim(-1, max(last_update, 10) + 1)
    ax.set_xlabel("update (2 tasks, G = 4 samples or 4 rollouts each)")
    ax.set_ylabel("greedy team return, official test tasks")
    ax.set_title(f"{env_id}, SmolLM2-135M-Instruct pairs (LoRA), held-out; dashed: baselines")
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("env_id", help="e.g. CoopCode-v1")
    parser.add_argument("--out", type=Path, default=None, help="default: <env>/curves.png")
    args = parser.parse_args()
    folder = HERE / args.env_id.lower()
    out = args.out or folder / "curves.png"
    runs = [read_run(f) for f in sorted(folder.iterdir()) if (f / "metrics.csv").exists()]
    groups = group_runs(runs)
    levels = baseline_levels(ROOT / "leaderboards" / args.env_id)
    out.with_suffix(".json").write_text(
        json.dumps({"baselines": levels, "settings": groups, "runs": runs}, indent=1) + "\n"
    )
    plot(args.env_id, groups, runs, levels, out)
    print(f"wrote {out} and {out.with_suffix('.json')}")


if __name__ == "__main__":
    main()
