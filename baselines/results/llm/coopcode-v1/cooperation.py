"""Does a CoopCode-v1 pair cooperate? Who writes `aux`, and does the main function call it.

For each SmolLM2 entry on the CoopCode-v1 board (prompting baselines, trained pairs), reads
every episode's two answers with the env's own rules (``mallm_envs.envs.code.rules``: the
code the grader extracts, the helper's ``aux``, the main author's entry point) and prints,
per entry: in how many episodes the helper defines ``aux`` with a return, the main function
calls ``aux``, and the mean team return of the episodes where it does and where it does not::

    python baselines/results/llm/coopcode-v1/cooperation.py
"""

from __future__ import annotations

import gzip
import json
import statistics
from pathlib import Path

import mallm_envs
from mallm_envs.envs.code import rules

ROOT = Path(__file__).resolve().parents[4]
BOARD = ROOT / "leaderboards" / "CoopCode-v1"


def episode_facts(env, episode: dict) -> dict:
    """The helper's and the main author's code as the grader reads it, for one episode."""
    env.reset(seed=episode["seed"], options=episode["options"])
    task = env.unwrapped.task
    answers = {s["agent"]: s["action"] for s in episode["steps"] if s["action"] is not None}
    analysis = rules.analyze(
        task.context,
        task.entry_point,
        rules.extract_code(answers.get("helper") or ""),
        rules.extract_code(answers.get("main") or ""),
    )
    return {
        "aux_defined": analysis.aux_defined,
        "calls_aux": bool(analysis.uses_aux),
        "team_return": episode["team_return"],
    }


def mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.3f}" if values else "-"


def main() -> None:
    env = mallm_envs.make("CoopCode-v1", split="test")
    print(
        "| entry | helper defines `aux` | main function calls `aux` | return, calls | return, does not |"
    )
    print("|---|---|---|---|---|")
    for path in sorted(BOARD.glob("*smollm2.json.gz")):
        with gzip.open(path, "rt", encoding="ascii") as handle:
            episodes = json.load(handle)["episodes"]
        facts = [episode_facts(env, e) for e in episodes]
        calls = [f["team_return"] for f in facts if f["calls_aux"]]
        others = [f["team_return"] for f in facts if not f["calls_aux"]]
        print(
            f"| {path.name.removesuffix('.json.gz')} | {sum(f['aux_defined'] for f in facts)} / "
            f"{len(facts)} | {len(calls)} / {len(facts)} | {mean(calls)} | {mean(others)} |"
        )


if __name__ == "__main__":
    main()
