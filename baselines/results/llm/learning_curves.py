"""Learning curves of MAGRPO and the shared-critic actor-critic on CommonWord-v0, from scratch.

Two agents that are both a randomly initialised tiny Llama model (about 0.25 M parameters,
built offline) learn to name the same word from a shared list of 16 (one-word answers:
``--max-new-tokens 1``; most of the env's words are single tokens of the tiny tokenizer).
At the start nearly every answer is unusable (team return about -0.6 per episode); a team
that agrees scores +1.0.

Reproduce (about an hour on 2 busy CPU cores; writes runs/learning_curves/ and, here,
learning_curves.png and learning_curves.json)::

    python baselines/results/llm/learning_curves.py --updates 1200 --seeds 0 1 2

Runs resume from their checkpoints, so a larger ``--updates`` extends finished runs.

``--algorithms`` can add ``maac-independent`` (IAC) for contrast.

The actor-critic runs centre each agent's advantages over the update's batch
(``--advantage-norm center``): without it, the critic's small errors on the all-invalid
batches of the start become full-size Adam steps in random directions and the actors
never leave the start (seen here over 600 updates).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
sys.path.insert(0, str(ROOT))

ENV_KWARGS = '{"max_turns": 1, "list_size": 16}'
COMMON = dict(
    env_id="CommonWord-v0",
    env_kwargs=ENV_KWARGS,
    adapter="full",
    max_new_tokens=1,
    temperature=0.7,
    top_p=0.9,
    learning_rate=3e-3,
    checkpoint_every=100,
    threads=1,
    tensorboard=False,
    progress=False,
)


@dataclass
class Options:
    updates: int = 600
    """Updates (tasks) per run."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """Training seeds (each also shifts the task sequence)."""
    algorithms: list[str] = field(default_factory=lambda: ["magrpo", "maac-shared"])
    """Any of magrpo, maac-shared, maac-independent."""
    group_size: int = 16
    """MAGRPO group size G, and episodes per update for the actor-critic."""
    window: int = 50
    """Moving-average window of the plotted team return."""
    runs_dir: str = "runs/learning_curves"
    """Where the runs' metrics and checkpoints go."""
    output: str = str(HERE / "learning_curves")
    """Figure and summary path, without suffix."""


def run_one(algorithm: str, seed: int, options: Options) -> Path:
    folder = Path(options.runs_dir) / algorithm / f"seed{seed}"
    settings = dict(
        COMMON,
        seed=seed,
        task_seed_start=100_000 * seed,
        num_updates=options.updates,
        output_dir=str(folder),
    )
    if algorithm == "magrpo":
        from baselines import magrpo

        magrpo.train(magrpo.Args(group_size=options.group_size, **settings))
    else:
        from baselines import maac

        critic = algorithm.split("-", 1)[1]
        maac.train(
            maac.Args(
                critic=critic,
                rollouts=options.group_size,
                critic_learning_rate=1e-3,
                advantage_norm="center",
                **settings,
            )
        )
    return folder


def moving_average(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out


def summarize(folders: dict[str, dict[int, Path]], options: Options) -> dict:
    from baselines import common

    summary: dict = {"env_id": COMMON["env_id"], "env_kwargs": ENV_KWARGS, "runs": {}}
    for algorithm, by_seed in folders.items():
        for seed, folder in by_seed.items():
            rows = common.read_metrics(folder)
            run: dict = {
                "updates": len(rows),
                "training_minutes": sum(row["time/step"] for row in rows) / 60,
            }
            for key in ("team_return", "reward/agreement", "reward/invalid_penalty"):
                values = [row[key] for row in rows]
                name = key.split("/")[-1]
                run[f"{name}_first_100_mean"] = sum(values[:100]) / len(values[:100])
                run[f"{name}_last_100_mean"] = sum(values[-100:]) / len(values[-100:])
            summary["runs"][f"{algorithm}/seed{seed}"] = run
    return summary


def plot(folders: dict[str, dict[int, Path]], options: Options, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from baselines import common

    figure, axes = plt.subplots(1, len(folders), figsize=(5 * len(folders), 3.6), sharey=True)
    axes = [axes] if len(folders) == 1 else list(axes)
    for axis, (algorithm, by_seed) in zip(axes, folders.items()):
        for seed, folder in by_seed.items():
            returns = [row["team_return"] for row in common.read_metrics(folder)]
            axis.plot(moving_average(returns, options.window), label=f"seed {seed}")
        axis.axhline(-0.6, color="grey", linestyle=":", linewidth=1)
        axis.set_title(f"{algorithm} on CommonWord-v0 (list 16)")
        axis.set_xlabel("update (one task each)")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel(f"team return ({options.window}-update mean)")
    axes[0].legend(loc="upper left")
    figure.suptitle("Tiny Llama from random init, 2 agents, full fine-tuning", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def main() -> None:
    import tyro

    options = tyro.cli(Options)
    began = time.time()
    folders: dict[str, dict[int, Path]] = {}
    for algorithm in options.algorithms:
        for seed in options.seeds:
            print(f"{algorithm} seed {seed} ...", flush=True)
            folders.setdefault(algorithm, {})[seed] = run_one(algorithm, seed, options)
    summary = summarize(folders, options)
    summary["command"] = " ".join(
        ["python", "baselines/results/llm/learning_curves.py", *sys.argv[1:]]
    )
    summary["minutes_this_invocation"] = round((time.time() - began) / 60, 1)
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
        ).stdout.strip()
    except OSError:
        revision = ""
    summary["git_revision"] = revision or None
    output = Path(options.output)
    plot(folders, options, output.with_suffix(".png"))
    output.with_suffix(".json").write_text(json.dumps(summary, indent=2) + "\n")
    for name, run in summary["runs"].items():
        print(
            f"{name}: team return, first 100 updates {run['team_return_first_100_mean']:+.3f}"
            f" -> last 100 {run['team_return_last_100_mean']:+.3f}"
        )


if __name__ == "__main__":
    main()
