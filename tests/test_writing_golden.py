"""Golden transcripts of the writing ids: any change to prompts, parsing or reward fails here.

Each file in tests/golden/writing/ holds episodes of one id, in both schedules, played by
the scripted writers for two turns on the fixture documents (so that additions to the
bundled corpus do not touch them; the data hash in the spec covers the corpus).

A failure means a score-relevant behaviour changed. If the change is intended, bump the
env version (and its Version history), then regenerate on purpose:

    MALLM_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_writing_golden.py

and commit the new files with the change.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import mallm_envs
import mallm_envs.envs.writing  # registers the writing ids (until mallm_envs.envs imports it)
from mallm_envs import replay
from mallm_envs.core import Episode, first_difference, run_episode
from mallm_envs.core.episode import atomic_write_bytes
from mallm_envs.registration import make_scripted_agent

GOLDEN = Path(__file__).parent / "golden" / "writing"
FIXTURES = Path(__file__).parent / "fixtures" / "writing"
PLACEHOLDER = "<FIXTURES>"
CASES = {
    "SummaryPair-v0": "summary_docs.jsonl",
    "ExpandPair-v0": "expansion_briefs.jsonl",
    "SummarySingle-v0": "summary_docs.jsonl",
    "ExpandSingle-v0": "expansion_briefs.jsonl",
    "SummaryPair-v1": "summary_docs.jsonl",
    "ExpandPair-v1": "expansion_briefs.jsonl",
    "SummarySingle-v1": "summary_docs.jsonl",
    "ExpandSingle-v1": "expansion_briefs.jsonl",
}
UPDATE = os.environ.get("MALLM_UPDATE_GOLDEN") == "1"


def record(env_id: str) -> list[Episode]:
    episodes = []
    for schedule in ("simultaneous", "sequential"):
        env = mallm_envs.make(
            env_id, data=f"file:{FIXTURES / CASES[env_id]}", schedule=schedule, max_turns=2
        )
        agents = {a: make_scripted_agent(env, a) for a in env.possible_agents}
        episodes.append(run_episode(env, agents, seed=0))
    return episodes


def to_text(episodes: list[Episode]) -> str:
    lines = []
    for episode in episodes:
        data = episode.to_dict()
        data["mallm_envs_version"] = "golden"  # the package version is not part of the env
        lines.append(Episode.from_dict(data).to_json().replace(str(FIXTURES), PLACEHOLDER))
    return "\n".join(lines) + "\n"


def from_text(content: str) -> list[Episode]:
    return [
        Episode.from_json(line.replace(PLACEHOLDER, str(FIXTURES)))
        for line in content.splitlines()
        if line.strip()
    ]


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_golden_transcript_is_unchanged(env_id: str) -> None:
    path = GOLDEN / f"{env_id}.jsonl"
    current = to_text(record(env_id))
    if UPDATE:
        atomic_write_bytes(path, current.encode("ascii"))
    assert path.is_file(), f"{path} is missing; regenerate with MALLM_UPDATE_GOLDEN=1"
    stored = path.read_text(encoding="ascii")
    if stored != current:
        for old, new in zip(from_text(stored), from_text(current)):
            where = first_difference(old, new)
            assert where is None, (
                f"{env_id} transcript changed at {where} (see this file's docstring)"
            )
        pytest.fail(f"{env_id} transcript changed (see this file's docstring to regenerate)")


@pytest.mark.parametrize("env_id", sorted(CASES))
def test_golden_transcript_replays_and_covers_both_schedules(env_id: str) -> None:
    episodes = from_text((GOLDEN / f"{env_id}.jsonl").read_text(encoding="ascii"))
    assert [e.env_spec["kwargs"]["schedule"] for e in episodes] == ["simultaneous", "sequential"]
    for episode in episodes:
        # v1 pays the scripted key-phrase frames little or nothing (its breadth factor; see
        # test_writing_adversarial.py); every component is still recorded in the infos
        assert episode.turns == 2 and episode.team_return >= (3.0 if env_id.endswith("v0") else 0)
        replayed = replay(episode)
        replayed.mallm_envs_version = episode.mallm_envs_version
        assert first_difference(episode, replayed) is None
        turn_two_prompts = [
            s.observation["text"]
            for s in episode.steps
            if s.action is not None and s.info.get("turn") == 1
        ]
        assert turn_two_prompts and all("=== FEEDBACK ON TURN 1 ===" in p for p in turn_two_prompts)
