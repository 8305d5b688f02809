"""The paper's prompting baselines drive real episodes with the tiny model."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

import mallm_envs  # noqa: E402
from mallm_envs import replay  # noqa: E402
from mallm_envs.agents import Agent  # noqa: E402
from mallm_envs.agents.llm import LLMConfigError, MultiAgentLM, SamplingConfig  # noqa: E402
from mallm_envs.agents.prompting import (  # noqa: E402
    STRATEGIES,
    prompting_team,
    run_prompting_episode,
    split_sections,
)
from mallm_envs.core import first_difference  # noqa: E402

torch.set_num_threads(1)
SAMPLING = SamplingConfig(max_new_tokens=4)


class RecordingLM(MultiAgentLM):
    """The real model, remembering the prompts it was given (one list per generate call)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict[str, list[str]]] = []

    def generate(self, prompts, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append({agent: list(p) for agent, p in prompts.items()})
        return super().generate(prompts, **kwargs)


@pytest.fixture(scope="module")
def lm() -> RecordingLM:
    return RecordingLM(["agent_0", "agent_1"], adapter="none")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_strategy_plays_a_replayable_episode(lm: RecordingLM, strategy: str) -> None:
    env = mallm_envs.make("CommonWord-v0")
    episode = run_prompting_episode(env, strategy, lm, seed=5, sampling=SAMPLING)
    assert episode.turns == 2 and episode.env_id == "CommonWord-v0"
    assert episode.agent_descriptions["agent_0"]["strategy"] == strategy
    assert first_difference(episode, replay(episode)) is None
    again = run_prompting_episode(
        mallm_envs.make("CommonWord-v0"), strategy, lm, seed=5, sampling=SAMPLING
    )
    assert again.to_dict() == episode.to_dict()


def test_sequential_pipeline_shows_the_earlier_answer(lm: RecordingLM) -> None:
    env = mallm_envs.make("CommonWord-v0")
    lm.calls.clear()
    episode = run_prompting_episode(env, "sequential", lm, seed=2, sampling=SAMPLING)
    first_answer = next(s.action for s in episode.steps if s.agent == "agent_0")
    second_prompt = lm.calls[1]["agent_1"][0]
    assert "Earlier in this turn, agent_0 answered:" in second_prompt
    assert first_answer.strip() in second_prompt
    # With the env's own sequential schedule the team adds nothing: the env shows it.
    env = mallm_envs.make("CommonWord-v0", schedule="sequential")
    lm.calls.clear()
    run_prompting_episode(env, "sequential", lm, seed=2, sampling=SAMPLING)
    assert "Earlier in this turn" not in lm.calls[1]["agent_1"][0]
    assert "has already answered" in lm.calls[1]["agent_1"][0]


def test_discussion_drafts_then_revises_with_partner_drafts(lm: RecordingLM) -> None:
    env = mallm_envs.make("CommonWord-v0", max_turns=1)
    lm.calls.clear()
    run_prompting_episode(env, "discussion", lm, seed=4, sampling=SAMPLING)
    assert len(lm.calls) == 2  # one batch of drafts, one batch of revisions
    assert set(lm.calls[0]) == {"agent_0", "agent_1"}
    revision = lm.calls[1]["agent_0"][0]
    assert "Draft of your partner agent_1" in revision and "Your draft answer" in revision


def test_single_model_answers_every_role_in_one_call(lm: RecordingLM) -> None:
    env = mallm_envs.make("CommonWord-v0", max_turns=1)
    lm.calls.clear()
    run_prompting_episode(env, "single", lm, seed=4, sampling=SAMPLING)
    assert len(lm.calls) == 1 and list(lm.calls[0]) == ["agent_0"]
    prompt = lm.calls[0]["agent_0"][0]
    assert "### agent_0" in prompt and "### agent_1" in prompt
    assert split_sections("### agent_1\nriver\n### agent_0\n apple \n", ["agent_0", "agent_1"]) == {
        "agent_1": "river",
        "agent_0": "apple",
    }
    assert split_sections("no sections at all", ["a"]) == {}


def test_team_is_made_of_agents_and_rejects_bad_settings(lm: RecordingLM) -> None:
    env = mallm_envs.make("CommonWord-v0")
    team = prompting_team("parallel", lm, env, sampling=SAMPLING)
    assert set(team) == {"agent_0", "agent_1"} and all(isinstance(a, Agent) for a in team.values())
    with pytest.raises(LLMConfigError):
        prompting_team("debate", lm, env)
    with pytest.raises(LLMConfigError):
        prompting_team("parallel", lm, env, roles={"agent_0": "agent_0"})
    with pytest.raises(LLMConfigError):
        prompting_team("parallel", lm, env, roles={"agent_0": "x", "agent_1": "agent_1"})
