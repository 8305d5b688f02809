"""Batched evaluation: the agents of a simultaneous turn, and several episodes side by side,
share one model call, and every transcript is the one of the one-agent-at-a-time loop."""

from __future__ import annotations

from typing import Any

import pytest

import mallm_envs
from mallm_envs.agents.base import BaseAgent
from mallm_envs.core.episode import run_episode, run_episodes
from tests._envs_for_tests import TargetSumEnv


class CountingAgent(BaseAgent):
    """Says its role's index; batchable. Records how it was asked (alone or in a group)."""

    groups: list[list[str]] = []

    def __init__(self, role: str, key: Any = "k") -> None:
        self.role = role
        self.key = key
        self.seen: list[str] = []

    @property
    def batch_key(self) -> Any:
        return self.key

    def act(self, observation: Any, info: Any) -> str:
        self.seen.append(observation["text"])
        CountingAgent.groups.append([self.role])
        return "1"

    @staticmethod
    def act_group(agents: Any, observations: Any, infos: Any) -> list[str]:
        CountingAgent.groups.append([a.role for a in agents])
        for agent, observation in zip(agents, observations):
            agent.seen.append(observation["text"])
        return ["1" for _ in agents]


class PlainAgent(BaseAgent):
    def act(self, observation: Any, info: Any) -> str:
        return "2"


def _target_sum(schedule: str = "simultaneous", n_agents: int = 3) -> TargetSumEnv:
    return TargetSumEnv(schedule=schedule, max_turns=2, n_agents=n_agents)


def test_the_batchable_agents_of_a_simultaneous_turn_are_asked_together() -> None:
    CountingAgent.groups = []
    env = _target_sum()
    agents = {"agent_0": CountingAgent("agent_0"), "agent_1": PlainAgent()}
    agents["agent_2"] = CountingAgent("agent_2")
    batched = run_episode(env, agents, seed=1)
    assert CountingAgent.groups == [["agent_0", "agent_2"]] * 2  # one group per turn
    CountingAgent.groups = []
    alone = run_episode(_target_sum(), agents, seed=1, batch=False)
    assert CountingAgent.groups == [["agent_0"], ["agent_2"]] * 2
    assert batched.to_json() == alone.to_json()


def test_different_keys_and_the_sequential_schedule_are_not_batched() -> None:
    CountingAgent.groups = []
    agents = {f"agent_{i}": CountingAgent(f"agent_{i}", key=i) for i in range(2)}
    run_episode(_target_sum(n_agents=2), agents, seed=0)
    assert CountingAgent.groups == [["agent_0"], ["agent_1"]] * 2
    CountingAgent.groups = []
    agents = {f"agent_{i}": CountingAgent(f"agent_{i}") for i in range(2)}
    episode = run_episode(_target_sum("sequential", n_agents=2), agents, seed=0)
    assert CountingAgent.groups == [["agent_0"], ["agent_1"]] * 2
    assert "partner agent_0 said 1" in agents["agent_1"].seen[0]  # it saw this turn's answer
    assert episode.turns == 2


class LeakyEnv(TargetSumEnv):
    """A broken simultaneous env: a later agent's prompt shows what was submitted this turn."""

    def _prompt(self, agent: str) -> str:
        return super()._prompt(agent) + f"\nsubmitted so far: {len(self._pending)}"


def test_an_observation_that_changes_within_a_simultaneous_turn_is_an_error() -> None:
    agents = {f"agent_{i}": CountingAgent(f"agent_{i}") for i in range(2)}
    with pytest.raises(RuntimeError, match="cannot be batched"):
        run_episode(LeakyEnv(n_agents=2), agents, seed=0)
    run_episode(LeakyEnv(n_agents=2), agents, seed=0, batch=False)  # the plain loop is fine


def test_episodes_side_by_side_are_batched_together() -> None:
    CountingAgent.groups = []
    jobs = []
    for seed in range(3):
        env = _target_sum(n_agents=2)
        jobs.append((env, {f"agent_{i}": CountingAgent(f"agent_{i}") for i in range(2)}, seed, {}))
    episodes = run_episodes(jobs)
    assert CountingAgent.groups == [["agent_0", "agent_1"] * 3] * 2  # 3 episodes x 2 roles
    for (_env, _agents, seed, _options), episode in zip(jobs, episodes):
        agents = {f"agent_{i}": CountingAgent(f"agent_{i}") for i in range(2)}
        alone = run_episode(_target_sum(n_agents=2), agents, seed=seed, batch=False)
        assert episode.to_json() == alone.to_json()


# --------------------------------------------------------------------------- the tiny model


def _generate_calls(monkeypatch: Any) -> list[int]:
    """Spy on the real MultiAgentLM.generate: record each call's number of prompts."""
    llm = pytest.importorskip("mallm_envs.agents.llm", reason="needs the llm extra")
    calls: list[int] = []
    original = llm.MultiAgentLM.generate

    def spy(self: Any, prompts: Any, **kwargs: Any) -> Any:
        calls.append(sum(len(p) for p in prompts.values()))
        return original(self, prompts, **kwargs)

    monkeypatch.setattr(llm.MultiAgentLM, "generate", spy)
    return calls


@pytest.mark.parametrize(
    ("env_id", "spec"),
    [
        ("CoopCode-v1", "llm:tiny"),
        ("SummaryPair-v1", "llm:tiny"),
        ("SummaryPair-v1", "prompting:parallel:tiny"),
        ("CommonWord-v0", "prompting:parallel:tiny"),
    ],
)
def test_batched_llm_transcripts_equal_the_sequential_loop(monkeypatch, env_id, spec) -> None:
    from mallm_envs.agents.spec import LLMSettings, build_agents

    calls = _generate_calls(monkeypatch)
    settings = LLMSettings(temperature=0.8, max_new_tokens=6)  # sampled: every draw counts
    transcripts = {}
    for batch in (False, True):
        calls.clear()
        env = mallm_envs.make(env_id)
        agents = build_agents(spec, env, seed=0, settings=settings)
        episode = run_episode(env, agents, seed=5, batch=batch)
        transcripts[batch] = episode.to_json()
        roles = len(env.possible_agents)
        assert calls == ([roles] if batch else [1] * roles) * episode.turns
    assert transcripts[True] == transcripts[False]


def test_episodes_side_by_side_share_the_tiny_model(monkeypatch) -> None:
    from mallm_envs.agents.spec import LLMSettings, build_agents

    calls = _generate_calls(monkeypatch)
    settings = LLMSettings(temperature=0.8, max_new_tokens=4)
    kwargs = {"horizon": 3}
    jobs = []
    for seed in (0, 1, 2):
        env = mallm_envs.make("Kitchen-v0", **kwargs)
        jobs.append((env, build_agents("llm:tiny", env, seed=0, settings=settings), seed, None))
    together = run_episodes(jobs)
    assert calls == [6, 6, 6]  # each turn: 3 episodes x 2 chefs in one batch
    for seed, episode in zip((0, 1, 2), together):
        env = mallm_envs.make("Kitchen-v0", **kwargs)
        agents = build_agents("llm:tiny", env, seed=0, settings=settings)
        assert episode.to_json() == run_episode(env, agents, seed=seed, batch=False).to_json()


def test_token_counts_are_those_of_the_sequential_loop() -> None:
    from mallm_envs.agents.spec import LLMSettings, build_agents

    pytest.importorskip("torch")
    settings = LLMSettings(temperature=0.8, max_new_tokens=5)
    used = {}
    for batch in (False, True):
        env = mallm_envs.make("CommonWord-v0")
        agents = build_agents("llm:tiny", env, seed=0, settings=settings)
        run_episode(env, agents, seed=2, batch=batch)
        used[batch] = [agent.tokens_used for agent in agents.values()]
    assert used[True] == used[False] and sum(used[True]) > 0


def test_long_sampled_answers_batched_equal_alone() -> None:
    """Padded rows once took another attention kernel and differed in the last bits, which
    changed a sampled token after 16 steps here (the tiny model has near-tied tokens)."""
    from mallm_envs.agents.spec import LLMSettings, build_agents
    from mallm_envs.leaderboard.suites import load_suite

    pytest.importorskip("torch")
    seed, options = load_suite("CoopCode-v1").items()[2]
    settings = LLMSettings(temperature=0.7, max_new_tokens=40)
    actions = {}
    for batch in (False, True):
        env = mallm_envs.make("CoopCode-v1")
        agents = build_agents("llm:tiny", env, seed=0, settings=settings)
        episode = run_episode(env, agents, seed=seed, options=options, batch=batch)
        actions[batch] = [step.action for step in episode.steps]
    assert actions[True] == actions[False]


@pytest.mark.parametrize(
    ("env_id", "kwargs", "spec"),
    [
        ("CoopCode-v1", {}, "llm:tiny"),
        ("SummaryPair-v1", {}, "llm:tiny"),
        ("Kitchen-v0", {"horizon": 12}, "llm:tiny"),
        ("Kitchen-v0", {"horizon": 6}, "prompting:parallel:tiny"),
    ],
)
def test_sampled_episodes_side_by_side_equal_each_played_alone(env_id, kwargs, spec) -> None:
    """Several sampled episodes in one batch give, episode by episode, the transcripts of the
    one-agent-at-a-time loop: a row's numbers and draws do not depend on its batch. (A
    lone row once ran another matrix kernel than a batched one; the last-bit difference
    swapped two nearly tied tokens in the sampler's sorted order, and a Kitchen run drifted.)"""
    from mallm_envs.agents.spec import LLMSettings, build_agents
    from mallm_envs.leaderboard.suites import load_suite

    pytest.importorskip("torch")
    settings = LLMSettings(temperature=1.0, top_p=0.95, max_new_tokens=24)
    items = load_suite(env_id).items()[:4]
    jobs = []
    for seed, options in items:
        env = mallm_envs.make(env_id, **kwargs)
        jobs.append((env, build_agents(spec, env, seed=0, settings=settings), seed, options))
    together = run_episodes(jobs)
    for (seed, options), episode in zip(items, together):
        env = mallm_envs.make(env_id, **kwargs)
        agents = build_agents(spec, env, seed=0, settings=settings)
        alone = run_episode(env, agents, seed=seed, options=options, batch=False)
        assert [s.action for s in episode.steps] == [s.action for s in alone.steps]
        assert episode.to_json() == alone.to_json()


# ------------------------------------------------- every prompting strategy, side by side


@pytest.mark.parametrize("strategy", ["single", "parallel", "sequential", "discussion"])
@pytest.mark.parametrize(
    ("env_id", "kwargs"),
    [
        ("CoopCode-v1", {}),
        ("CommonWord-v0", {"schedule": "sequential", "max_turns": 2, "list_size": 4}),
    ],
)
def test_prompting_strategies_side_by_side_equal_each_played_alone(
    monkeypatch, strategy, env_id, kwargs
) -> None:
    """Every strategy's requests of several episodes go to the model together (the
    discussion's drafts in one batch, then its revisions; a sequential team's roles in
    their order), and each episode's transcript is the one it gets played alone."""
    from mallm_envs.agents.spec import LLMSettings, build_agents
    from mallm_envs.leaderboard.suites import load_suite

    calls = _generate_calls(monkeypatch)
    settings = LLMSettings(temperature=1.0, top_p=0.95, max_new_tokens=6)
    spec = f"prompting:{strategy}:tiny"
    items = load_suite(env_id).items()[:3]
    jobs = []
    for seed, options in items:
        env = mallm_envs.make(env_id, **kwargs)
        jobs.append((env, build_agents(spec, env, seed=0, settings=settings), seed, options))
    together = run_episodes(jobs)
    batched_calls = list(calls)
    calls.clear()
    for (seed, options), episode in zip(items, together):
        env = mallm_envs.make(env_id, **kwargs)
        agents = build_agents(spec, env, seed=0, settings=settings)
        alone = run_episode(env, agents, seed=seed, options=options, batch=False)
        assert episode.to_json() == alone.to_json()
    # Fewer, larger model calls; the same number of responses.
    assert sum(batched_calls) == sum(calls)
    assert len(batched_calls) < len(calls) and max(batched_calls) >= len(items)
    if not kwargs and strategy != "sequential":  # one simultaneous turn: one call per round
        rounds = {"single": 1, "parallel": 1, "discussion": 2}[strategy]
        assert len(batched_calls) == rounds
