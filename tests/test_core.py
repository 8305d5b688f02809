"""The cooperative text-env core, exercised through a small env defined in the tests."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mallm_envs.agents import FixedAgent, RandomAgent
from mallm_envs.core import (
    Episode,
    TextParallelEnv,
    UnicodeText,
    first_difference,
    load_episodes,
    replay,
    run_episode,
    save_episodes,
)
from mallm_envs.core.errors import (
    ActionTypeError,
    ApiUsageError,
    EnvArgumentError,
    EpisodeOverError,
    NotYourTurnError,
    ResetNeededError,
    TranscriptError,
    UnknownAgentError,
)
from mallm_envs.core.text import action_problem, clean

from ._envs_for_tests import TargetSumEnv


def play_turn(env: TargetSumEnv, actions: list[str]) -> None:
    for action in actions:
        env.step(action)


# ----------------------------------------------------------------------------- spaces


def test_unicode_text_contains_real_text() -> None:
    space = UnicodeText(200)
    assert space.contains("def f(x):\n    return {'a': [x, 1.5]}  # ok")
    assert space.contains("naïve café, 数据, Ωμέγα 🙂\ttab\r\n")
    assert not space.contains("x" * 201)
    assert not space.contains("nul\x00")
    assert not space.contains("lone \ud800")
    assert not space.contains("\x1b[31m")
    assert not space.contains(b"bytes")
    assert not space.contains(None)


def test_unicode_text_samples_are_members_and_seeded() -> None:
    a, b = UnicodeText(300, seed=3), UnicodeText(300, seed=3)
    samples = [a.sample() for _ in range(50)]
    assert samples == [b.sample() for _ in range(50)]
    assert all(a.contains(s) for s in samples)
    assert len(set(samples)) > 40
    joined = "".join(samples)
    assert "\n" in joined and any(ord(c) > 127 for c in joined) and "(" in joined


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_action_problem_agrees_with_space(text: str) -> None:
    space = UnicodeText(200)
    assert (action_problem(text, 200) is None) == space.contains(text)
    cleaned = clean(text)
    cleaned.encode("utf-8")  # always encodable
    assert action_problem(cleaned, 10**6) is None


def test_unicode_text_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        UnicodeText(0)
    with pytest.raises(ValueError):
        UnicodeText(10, min_length=11)


# ----------------------------------------------------------------------------- schedules


def test_simultaneous_hides_partner_action_of_this_turn() -> None:
    env = TargetSumEnv(schedule="simultaneous")
    env.reset(seed=0, options={"target": 5})
    env.step("2")
    assert "partner" not in env.observe("agent_1")["text"]
    env.step("1")
    # next turn: both see last turn's numbers as feedback
    text = env.observe("agent_0")["text"]
    assert "'agent_0': '2'" in text and "'agent_1': '1'" in text


def test_sequential_shows_earlier_actions_of_this_turn() -> None:
    env = TargetSumEnv(schedule="sequential", n_agents=3)
    env.reset(seed=0, options={"target": 5})
    env.step("2")
    assert "partner agent_0 said 2" in env.observe("agent_1")["text"]
    assert "partner" not in env.observe("agent_0")["text"]
    env.step("1")
    assert "partner agent_1 said 1" in env.observe("agent_2")["text"]
    env.step("2")  # 2 + 1 + 2 = 5
    assert all(env.terminations.values())


def test_team_reward_is_shared_and_infos_explain_it() -> None:
    env = TargetSumEnv()
    env.reset(seed=0, options={"target": 3})
    play_turn(env, ["1", "oops"])
    assert env.rewards == {"agent_0": 0.0, "agent_1": 0.0}
    info = env.infos["agent_1"]
    assert info["invalid_reason"] == "not an integer"
    assert env.infos["agent_0"]["invalid_reason"] is None
    assert info["reward_components"] == {"hit": 0.0, "valid": 0.5}
    assert info["events"] == ["sum 1"]
    assert info["turn"] == 1
    play_turn(env, ["1", "2"])
    assert env.rewards == {"agent_0": 1.0, "agent_1": 1.0}
    assert env.terminations == {"agent_0": True, "agent_1": True}
    assert env.truncations == {"agent_0": False, "agent_1": False}
    assert env.infos["agent_0"]["success"] is True


def test_horizon_truncates() -> None:
    env = TargetSumEnv(max_turns=2)
    env.reset(seed=0, options={"target": 100})
    play_turn(env, ["1", "1"])
    assert not any(env.truncations.values())
    play_turn(env, ["1", "1"])
    assert all(env.truncations.values()) and not any(env.terminations.values())


def test_core_refuses_unusable_text_with_a_reason() -> None:
    env = TargetSumEnv()
    env.reset(seed=0, options={"target": 3})
    play_turn(env, ["1\x00", "x" * 101])
    assert "NUL" in env.infos["agent_0"]["invalid_reason"]
    assert "limit is 100" in env.infos["agent_1"]["invalid_reason"]
    play_turn(env, ["\ud800", "2"])
    assert "surrogate" in env.infos["agent_0"]["invalid_reason"]


def test_state_is_the_global_view() -> None:
    env = TargetSumEnv()
    env.reset(seed=0, options={"target": 7})
    assert env.state_space.contains(env.state())
    assert "target 7" in env.state()


# ----------------------------------------------------------------------------- misuse


def test_api_misuse_raises_typed_errors() -> None:
    env = TargetSumEnv()
    with pytest.raises(ResetNeededError, match="reset"):
        env.step("1")
    with pytest.raises(ResetNeededError):
        env.observe("agent_0")
    with pytest.raises(ResetNeededError):
        env.state()
    env.reset(seed=0)
    with pytest.raises(ActionTypeError, match="str"):
        env.step(3)
    with pytest.raises(ActionTypeError, match="None is only"):
        env.step(None)
    with pytest.raises(UnknownAgentError, match="agent_0"):
        env.observe("nobody")
    env.reset(seed=0, options={"target": 2})
    play_turn(env, ["1", "1"])
    env.step(None)
    env.step(None)
    assert env.agents == []
    with pytest.raises(EpisodeOverError, match="reset"):
        env.step("1")
    assert issubclass(EpisodeOverError, ApiUsageError)


def test_bad_constructor_arguments() -> None:
    with pytest.raises(EnvArgumentError, match="schedule"):
        TargetSumEnv(schedule="round-robin")
    with pytest.raises(EnvArgumentError, match="max_turns"):
        TargetSumEnv(max_turns=0)
    with pytest.raises(EnvArgumentError, match="render_mode"):
        TargetSumEnv(render_mode="rgb_array")


# ----------------------------------------------------------------------------- parallel


def test_parallel_simultaneous_plays_whole_turns() -> None:
    env = TextParallelEnv(TargetSumEnv())
    observations, infos = env.reset(seed=0, options={"target": 4})
    assert set(observations) == {"agent_0", "agent_1"}
    assert all(i["acting"] for i in infos.values())
    _, rewards, terminations, _, infos = env.step({"agent_0": "2", "agent_1": "2"})
    assert rewards == {"agent_0": 1.0, "agent_1": 1.0}
    assert all(terminations.values())
    assert env.agents == []
    with pytest.raises(EpisodeOverError):
        env.step({"agent_0": "1", "agent_1": "1"})


def test_parallel_sequential_plays_stages() -> None:
    env = TextParallelEnv(TargetSumEnv(schedule="sequential"))
    _, infos = env.reset(seed=0, options={"target": 4})
    assert infos["agent_0"]["acting"] and not infos["agent_1"]["acting"]
    observations, rewards, *_, infos = env.step({"agent_0": "3", "agent_1": "ignored"})
    assert "partner agent_0 said 3" in observations["agent_1"]["text"]
    assert infos["agent_1"]["acting"] and rewards == {"agent_0": 0.0, "agent_1": 0.0}
    _, rewards, terminations, *_ = env.step({"agent_1": "1"})
    assert rewards == {"agent_0": 1.0, "agent_1": 1.0} and all(terminations.values())


def test_parallel_misuse() -> None:
    env = TextParallelEnv(TargetSumEnv())
    with pytest.raises(ResetNeededError):
        env.step({})
    env.reset(seed=0)
    with pytest.raises(NotYourTurnError, match="agent_1"):
        env.step({"agent_0": "1"})
    with pytest.raises(UnknownAgentError):
        env.step({"agent_0": "1", "agent_1": "1", "agent_9": "1"})


# ----------------------------------------------------------------------------- transcripts


def _episode(seed: int = 0, schedule: str = "simultaneous") -> Episode:
    env = TargetSumEnv(schedule=schedule)
    agents = {"agent_0": RandomAgent(max_length=20), "agent_1": FixedAgent("3")}
    return run_episode(env, agents, seed=seed, options={"target": 9})


@pytest.mark.parametrize("schedule", ["simultaneous", "sequential"])
def test_same_seed_same_actions_same_bytes(schedule: str) -> None:
    a, b = _episode(5, schedule), _episode(5, schedule)
    assert a.to_json() == b.to_json()
    assert a.to_json() != _episode(6, schedule).to_json()


def test_episode_records_everything() -> None:
    episode = _episode()
    assert episode.seed == 0 and episode.options == {"target": 9}
    assert episode.turns == 3 and episode.team_return == 0.0
    acted = [s for s in episode.steps if s.action is not None]
    assert len(acted) == 6
    assert all("text" in s.observation for s in acted)
    assert set(episode.final_infos) == {"agent_0", "agent_1"}
    assert episode.agent_descriptions["agent_1"] == {"class": "fixed", "text": "3"}


def test_episode_json_round_trip_and_replay() -> None:
    episode = _episode()
    again = Episode.from_json(episode.to_json())
    assert again.to_json() == episode.to_json()
    replayed = replay(again, make_env=lambda: TargetSumEnv())
    assert first_difference(episode, replayed) is None


def test_replay_finds_a_tampered_reward() -> None:
    episode = _episode()
    data = json.loads(episode.to_json())
    data["steps"][-1]["reward"] = 1.0
    data["team_return"] = 1.0
    forged = Episode.from_dict(data)
    where = first_difference(forged, replay(forged, make_env=lambda: TargetSumEnv()))
    assert where is not None and "reward" in where


def test_save_and_load_atomically(tmp_path) -> None:
    episodes = [_episode(s) for s in range(3)]
    for name in ("run.jsonl", "run.jsonl.gz"):
        path = tmp_path / "deep" / name
        save_episodes(path, episodes)
        loaded = load_episodes(path)
        assert [e.to_json() for e in loaded] == [e.to_json() for e in episodes]
    assert not [p for p in (tmp_path / "deep").iterdir() if p.name.endswith(".tmp")]
    # gzip output is byte-stable (no timestamp)
    first = (tmp_path / "deep" / "run.jsonl.gz").read_bytes()
    save_episodes(tmp_path / "deep" / "run.jsonl.gz", episodes)
    assert (tmp_path / "deep" / "run.jsonl.gz").read_bytes() == first
    assert gzip.decompress(first).decode().count("\n") == 3


def test_failed_write_keeps_the_old_file(tmp_path) -> None:
    path = tmp_path / "run.jsonl"
    save_episodes(path, [_episode(0)])
    before = path.read_bytes()

    class Boom:
        def to_json(self) -> str:
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_episodes(path, [_episode(1), Boom()])  # type: ignore[list-item]
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other/9"}', "unknown transcript format"),
        ('{"format": "mallm-episode/1"}', "malformed episode"),
        ("[1, 2]", "JSON object"),
    ],
)
def test_malformed_transcripts_raise_typed_errors(tmp_path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content + "\n")
    with pytest.raises(TranscriptError, match=message):
        load_episodes(path)


def test_lone_surrogates_survive_transcripts(tmp_path) -> None:
    env = TargetSumEnv()
    agents = {"agent_0": FixedAgent("\ud800"), "agent_1": FixedAgent("1\x00")}
    episode = run_episode(env, agents, seed=0)
    save_episodes(tmp_path / "e.jsonl", [episode])
    (loaded,) = load_episodes(tmp_path / "e.jsonl")
    assert loaded.steps[0].action == "\ud800"
    assert first_difference(loaded, replay(loaded, make_env=lambda: TargetSumEnv())) is None
