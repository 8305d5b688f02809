"""Trained pairs against the prompting baselines, task by task, from board submissions.

Reads submissions (``.json.gz`` files as ``mallm evaluate`` writes them) of one env's
official suite and prints a Markdown report:

* per entry: mean team return with a 95% t-interval over the suite's tasks, and successes;
  a trainer given several files (one per training seed) gets each seed's row and a row for
  the seed-averaged policy (per task, the mean over seeds);
* per trainer and baseline: the paired difference over tasks (the seed-averaged trained
  return minus the baseline's return on the same task), its 95% t-interval, wins / ties /
  losses, and a two-sided sign-flip permutation p-value (exact up to 20 tasks, else 200,000
  seeded random flips), and the same difference for each seed on its own.

Usage::

    python baselines/results/llm/compare.py --env CoopCode-v1 \\
        --baseline parallel=leaderboards/CoopCode-v1/prompting-parallel-smollm2.json.gz \\
        --trained MAGRPO=runs/a.json.gz,runs/b.json.gz,runs/c.json.gz [--out report.md]

Episodes are matched by their reset options' ``task_id`` (or their seed where there is none);
files must cover the same tasks. Cross-play submissions (``mallm evaluate --cross-play``) are
matched by game: partner, the partner's seat and task.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T95 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


@dataclass
class Run:
    """One submission: per task, the team return and whether the episode succeeded."""

    path: str
    env_id: str
    returns: dict[str, float]
    successes: dict[str, bool | None]


def load(path: str) -> Run:
    with gzip.open(path, "rt", encoding="ascii") as handle:
        data = json.load(handle)
    returns: dict[str, float] = {}
    successes: dict[str, bool | None] = {}
    games = (data.get("cross_play") or {}).get("games")
    for index, episode in enumerate(data["episodes"]):
        options = episode.get("options") or {}
        key = str(options.get("task_id", episode.get("seed")))
        if games is not None:  # a cross-play game: the task with one partner in one seat
            key = f"{games[index]['partner']}@{games[index]['partner_role']}/{key}"
        if key in returns:
            raise SystemExit(f"{path}: task {key} appears twice")
        returns[key] = float(episode["team_return"])
        flags = [i["success"] for i in episode.get("final_infos", {}).values() if "success" in i]
        successes[key] = any(bool(f) for f in flags) if flags else None
    return Run(path, str(data["env_id"]), returns, successes)


def t95(n: int) -> float:
    return _T95[n - 2] if 2 <= n <= 31 else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and its 95% t-interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = t95(len(values)) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def sign_flip_p(differences: Sequence[float], samples: int = 200_000) -> float:
    """Two-sided p-value of the mean paired difference under random sign flips."""
    d = np.asarray(differences, dtype=np.float64)
    observed = abs(d.mean())
    n = len(d)
    if n == 0 or not np.any(d):
        return 1.0
    if n <= 20:
        signs = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    else:
        signs = np.random.default_rng(0).choice([-1, 1], size=(samples, n))
    extreme = int((np.abs((signs * d).mean(axis=1)) >= observed - 1e-12).sum())
    if n <= 20:  # the enumeration holds the observed signs themselves
        return extreme / len(signs)
    return (extreme + 1) / (samples + 1)


def fmt(mean: float, low: float, high: float) -> str:
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def success_cell(runs: Sequence[Run], tasks: Sequence[str]) -> str:
    flags = [[r.successes[t] for t in tasks] for r in runs]
    if all(f is None for row in flags for f in row):
        return "n/a"
    counts = [sum(bool(f) for f in row) for row in flags]
    return " / ".join(str(c) for c in counts) + f" of {len(tasks)}"


def report(env_id: str, baselines: dict[str, Run], trained: dict[str, list[Run]]) -> str:
    everything = [*baselines.values(), *(r for runs in trained.values() for r in runs)]
    for run in everything:
        if run.env_id != env_id:
            raise SystemExit(f"{run.path} is a {run.env_id} submission, not {env_id}")
    tasks = sorted(everything[0].returns)
    for run in everything:
        if sorted(run.returns) != tasks:
            raise SystemExit(f"{run.path} covers other tasks than {everything[0].path}")
    lines = [
        f"### {env_id}: {len(tasks)} tasks of the official suite",
        "",
        "| entry | team return [95% CI over tasks] | successes |",
        "|---|---|---|",
    ]
    for name, run in baselines.items():
        values = [run.returns[t] for t in tasks]
        lines.append(f"| {name} | {fmt(*mean_ci(values))} | {success_cell([run], tasks)} |")
    averaged: dict[str, list[float]] = {}
    for name, runs in trained.items():
        for index, run in enumerate(runs):
            values = [run.returns[t] for t in tasks]
            row = f"| {name}, seed file {index + 1} | {fmt(*mean_ci(values))} "
            lines.append(row + f"| {success_cell([run], tasks)} |")
        averaged[name] = [statistics.fmean(r.returns[t] for r in runs) for t in tasks]
        if len(runs) > 1:
            seeds = [statistics.fmean(r.returns.values()) for r in runs]
            lines.append(
                f"| {name}, mean of {len(runs)} seeds | {fmt(*mean_ci(averaged[name]))} "
                f"(seed means {', '.join(f'{s:.3f}' for s in seeds)}) "
                f"| {success_cell(runs, tasks)} |"
            )
    lines += [
        "",
        "Paired over tasks: trained (mean over seeds per task) minus baseline.",
        "",
        "| trained | baseline | mean difference [95% CI] | wins / ties / losses | p "
        "(sign flip) | per seed |",
        "|---|---|---|---|---|---|",
    ]
    for name, runs in trained.items():
        for base_name, base in baselines.items():
            diffs = [a - base.returns[t] for a, t in zip(averaged[name], tasks)]
            wins = sum(d > 1e-9 for d in diffs)
            losses = sum(d < -1e-9 for d in diffs)
            per_seed = ", ".join(
                f"{statistics.fmean(r.returns[t] - base.returns[t] for t in tasks):+.3f}"
                for r in runs
            )
            lines.append(
                f"| {name} | {base_name} | {fmt(*mean_ci(diffs))} | "
                f"{wins} / {len(diffs) - wins - losses} / {losses} | "
                f"{sign_flip_p(diffs):.3g} | {per_seed} |"
            )
    return "\n".join(lines) + "\n"


def parse_named(values: Sequence[str], flag: str) -> list[tuple[str, list[str]]]:
    named = []
    for value in values:
        name, sep, files = value.partition("=")
        if not sep or not name or not files:
            raise SystemExit(f"{flag} takes NAME=FILE[,FILE...], got {value!r}")
        if name in [n for n, _ in named]:
            raise SystemExit(f"{flag} {name!r} is given twice")
        named.append((name, files.split(",")))
    return named


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", required=True, help="env id of every submission")
    parser.add_argument("--baseline", action="append", default=[], help="NAME=FILE")
    parser.add_argument("--trained", action="append", default=[], help="NAME=FILE[,FILE...]")
    parser.add_argument("--out", help="also write the report to this Markdown file")
    args = parser.parse_args(argv)
    baselines = {}
    for name, files in parse_named(args.baseline, "--baseline"):
        if len(files) != 1:
            raise SystemExit("--baseline takes one file")
        baselines[name] = load(files[0])
    trained = {
        name: [load(f) for f in files] for name, files in parse_named(args.trained, "--trained")
    }
    if not baselines or not trained:
        raise SystemExit("give at least one --baseline and one --trained")
    text = report(args.env, baselines, trained)
    print(text, end="")
    if args.out:
        Path(args.out).write_text(text)
    return text


if __name__ == "__main__":
    main()
