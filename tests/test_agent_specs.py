"""Agent specs: the strings `mallm play/evaluate --agent` take, including LLM teams."""

from __future__ import annotations

from pathlib import Path

import pytest

import mallm_envs
from mallm_envs.agents.spec import AgentSpecError, build_agents
from mallm_envs.core import first_difference, replay, run_episode


def test_builtin_specs() -> None:
    env = mallm_envs.make("CommonWord-v0")
    agents = build_agents("random,fixed:apple", env, seed=1)
    assert agents["agent_1"].act({}, {}) == "apple"
    with pytest.raises(AgentSpecError, match="unknown agent spec"):
        build_agents("nonsense", env)
    with pytest.raises(AgentSpecError, match="cannot load agent"):
        build_agents("no_such_module:factory", env)


def test_random_agent_samples_numeric_spaces() -> None:
    env = mallm_envs.make("KitchenNumeric-v0")
    episode = run_episode(env, build_agents("random", env, seed=0), seed=0)
    assert all(isinstance(s.action, int) for s in episode.steps if s.action is not None)
    assert first_difference(episode, replay(episode)) is None


torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")


def test_llm_and_prompting_specs_play_and_replay() -> None:
    torch.set_num_threads(1)
    env = mallm_envs.make("CommonWord-v0")
    for spec in ("llm:tiny", "prompting:discussion", "prompting:single:tiny"):
        episode = run_episode(env, build_agents(spec, env, seed=3), seed=3)
        assert all(isinstance(s.action, str) for s in episode.steps if s.action is not None)
        assert first_difference(episode, replay(episode)) is None
    with pytest.raises(AgentSpecError, match="strategy must be one of"):
        build_agents("prompting:shout", env)


def test_checkpoint_spec_loads_the_trained_policies(tmp_path: Path) -> None:
    from baselines.magrpo import Args, train

    torch.set_num_threads(1)
    args = Args(
        env_id="CommonWord-v0",
        group_size=2,
        max_new_tokens=2,
        learning_rate=1e-2,
        num_updates=1,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        threads=1,
    )
    train(args)
    env = mallm_envs.make("CommonWord-v0")
    agents = build_agents(f"checkpoint:{tmp_path / 'run'}", env, seed=0)
    lm = agents["agent_0"].lm
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", map_location="cpu", weights_only=False)
    for policy in lm.policies:
        for name, tensor in lm.policy_state_dict(policy).items():
            assert torch.equal(tensor, saved["policies"][policy][name])
    assert agents["agent_0"].sampling.max_new_tokens == 2
    episode = run_episode(env, agents, seed=0)
    assert episode.turns >= 1
    with pytest.raises(AgentSpecError, match="needs a path"):
        build_agents("checkpoint:", env)


def test_llm_settings_reach_the_agents_and_their_descriptions() -> None:
    from mallm_envs.agents.spec import LLMSettings

    torch.set_num_threads(1)
    env = mallm_envs.make("CommonWord-v0")
    settings = LLMSettings(temperature=0.0, top_p=0.5, max_new_tokens=3)
    for spec in ("llm:tiny", "prompting:parallel:tiny"):
        agents = build_agents(spec, env, seed=0, settings=settings)
        for agent in agents.values():
            sampling = agent.describe()["sampling"]
            assert (sampling["temperature"], sampling["top_p"], sampling["max_new_tokens"]) == (
                0.0,
                0.5,
                3,
            )
            assert agent.describe()["dtype"] == "float32"
        episode = run_episode(env, agents, seed=0)
        assert episode.turns >= 1
    # The defaults: a response budget that fits a small function (64 tokens cut code).
    default = build_agents("llm:tiny", env, seed=0)["agent_0"].describe()["sampling"]
    assert (default["temperature"], default["top_p"], default["max_new_tokens"]) == (0.7, 0.9, 256)


def test_llm_settings_errors_name_the_real_problem() -> None:
    from mallm_envs.agents.spec import LLMSettings

    env = mallm_envs.make("CommonWord-v0")
    with pytest.raises(AgentSpecError, match="unknown dtype 'float8'"):
        build_agents("llm:tiny", env, settings=LLMSettings(dtype="float8"))
    with pytest.raises(AgentSpecError, match="max_new_tokens must be an int >= 1"):
        LLMSettings(max_new_tokens=0)
    with pytest.raises(AgentSpecError, match="temperature must be >= 0"):
        LLMSettings(temperature=-1.0)
    if not torch.cuda.is_available():
        with pytest.raises(AgentSpecError, match="sees no CUDA GPU"):
            build_agents("llm:tiny", env, settings=LLMSettings(device="cuda"))
    # bf16 is a dtype alias, not a download problem.
    agents = build_agents("llm:tiny", env, settings=LLMSettings(dtype="bf16", max_new_tokens=2))
    assert agents["agent_0"].describe()["dtype"] == "bfloat16"


def test_checkpoint_agents_never_unpickle_code(tmp_path: Path) -> None:
    """A planted checkpoint.pt whose pickle would run code is refused, and nothing runs."""
    import pickle

    marker = tmp_path / "ran"

    class Planted:
        def __reduce__(self):
            return (Path.touch, (marker,))

    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / "checkpoint.pt", "wb") as handle:
        pickle.dump({"args": {}, "policies": {}, "x": Planted()}, handle)
    from mallm_envs.agents.llm import ModelLoadError

    env = mallm_envs.make("CommonWord-v0")
    with pytest.raises(ModelLoadError, match="cannot be loaded safely"):
        build_agents(f"checkpoint:{tmp_path / 'run'}", env)
    assert not marker.exists()
