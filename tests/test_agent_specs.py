"""Agent specs: the strings `mallm play/evaluate --agent` take, including LLM teams."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import mallm_envs
from mallm_envs import replay
from mallm_envs.agents.spec import (
    AgentSpecError,
    build_agents,
    default_name,
    role_specs,
    split_specs,
    team_spec,
)
from mallm_envs.core import first_difference, run_episode


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


def test_fixed_text_keeps_its_commas() -> None:
    env = mallm_envs.make("CommonWord-v0")
    agents = build_agents("fixed:Hello, world", env)
    assert [a.act({}, {}) for a in agents.values()] == ["Hello, world", "Hello, world"]
    agents = build_agents("scripted,fixed:x = 1, y = 2", env)
    assert agents["agent_1"].act({}, {}) == "x = 1, y = 2"
    assert split_specs("fixed:a,b,random") == ["fixed:a,b", "random"]


def test_role_specs_name_roles_unambiguously() -> None:
    env = mallm_envs.make("CommonWord-v0")
    # Repeated --agent ROLE=SPEC: each item is taken whole, commas and all.
    agents = build_agents(["agent_1=fixed:pear, plum", "agent_0=fixed:apple"], env)
    assert agents["agent_0"].act({}, {}) == "apple"
    assert agents["agent_1"].act({}, {}) == "pear, plum"
    # One plain spec plays the roles not named.
    agents = build_agents(["random", "agent_1=fixed:kiwi"], env, seed=0)
    assert agents["agent_1"].act({}, {}) == "kiwi"
    assert agents["agent_0"].describe()["class"] == "random"
    assert role_specs({"agent_0": "scripted", "agent_1": "random"}, env.possible_agents) == {
        "agent_0": "scripted",
        "agent_1": "random",
    }
    with pytest.raises(AgentSpecError, match="names no role of this env"):
        build_agents(["chef=random", "agent_0=random"], env)
    with pytest.raises(AgentSpecError, match="given two specs"):
        build_agents(["agent_0=random", "agent_0=scripted"], env)
    with pytest.raises(AgentSpecError, match=r"no spec for role\(s\) \['agent_1'\]"):
        build_agents(["agent_0=random"], env)
    with pytest.raises(AgentSpecError, match="at most one plain"):
        build_agents(["random", "scripted", "agent_0=random"], env)
    with pytest.raises(AgentSpecError, match="cannot share a team with a prompting: spec"):
        build_agents(["agent_0=prompting:parallel", "agent_1=random"], env)
    with pytest.raises(AgentSpecError, match="follow one strategy"):
        build_agents(["agent_0=prompting:parallel", "agent_1=prompting:single"], env)
    # A mixed team is recorded as ROLE=SPEC items that build the same team again.
    by_role = role_specs(["agent_1=fixed:a, b", "agent_0=scripted"], env.possible_agents)
    assert team_spec(by_role) == "agent_0=scripted,agent_1=fixed:a, b"
    assert role_specs(team_spec(by_role), env.possible_agents) == by_role


FACTORY = """
from mallm_envs.agents import FixedAgent


def make(env, role):
    return FixedAgent(f"{role} from a file")
"""


def test_agents_load_from_a_file_path_and_the_current_folder(tmp_path, monkeypatch) -> None:
    env = mallm_envs.make("CommonWord-v0")
    folder = tmp_path / "my agents"
    folder.mkdir()
    (folder / "mine.py").write_text(FACTORY)
    agents = build_agents(f"{folder / 'mine.py'}:make", env)
    assert agents["agent_0"].act({}, {}) == "agent_0 from a file"
    monkeypatch.chdir(folder)
    assert build_agents("./mine.py:make", env)["agent_1"].act({}, {}) == "agent_1 from a file"
    (folder / "mine_module.py").write_text(FACTORY)
    monkeypatch.setattr("sys.path", [p for p in __import__("sys").path if p not in ("", ".")])
    agents = build_agents("mine_module:make", env)  # a module in the current folder
    assert agents["agent_0"].act({}, {}) == "agent_0 from a file"
    (folder / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(AgentSpecError, match=r"running .*broken\.py raised RuntimeError: boom"):
        build_agents("./broken.py:make", env)
    with pytest.raises(AgentSpecError, match="there is no file"):
        build_agents("./absent.py:make", env)
    with pytest.raises(AgentSpecError, match="has no attribute 'nothing'"):
        build_agents("./mine.py:nothing", env)


@pytest.mark.parametrize(
    "specs",
    [
        ["./agents/mine.py:make"],
        ["/abs/path/../x.py:make"],
        ["checkpoint:runs/magrpo/"],
        ["openai:Qwen/Qwen2.5-7B-Instruct@http://127.0.0.1:8000/v1?mode=completion"],
        ["agent_0=openai:m@https://api.example.org/v1", "agent_1=llm:/models/smol"],
        ["fixed:a\tb", "random"],
        ["agent_0=fixed:..//..", "agent_1=fixed:=="],
        ["agent_0=openai:" + "m" * 200 + "@http://h:1/v1", "agent_1=./" + "d/" * 60 + "f.py:make"],
    ],
)
def test_default_name_is_valid_for_any_spec(specs) -> None:
    from mallm_envs.leaderboard.verify import check_agent_info

    by_role = role_specs(specs, ["agent_0", "agent_1"])
    name = default_name(by_role)
    check_agent_info({"name": name})
    assert "/" not in name and ".." not in name
    if len(set(by_role.values())) > 1:  # a mixed team's name names every role
        assert "agent_0: " in name and "agent_1: " in name


def test_cli_plays_a_mixed_team_and_an_external_env(tmp_path, monkeypatch, capsys) -> None:
    from mallm_envs.cli import main

    (tmp_path / "my_envs.py").write_text(
        "from mallm_envs.registration import register, registry\n"
        "if 'MyWord-v0' not in registry:\n"
        "    register(id='MyWord-v0', entry_point=mallm_envs_spec.entry_point,\n"
        "             agents=('agent_0', 'agent_1'), description='my own env')\n".replace(
            "mallm_envs_spec.entry_point",
            repr(mallm_envs.registration.spec("CommonWord-v0").entry_point),
        )
    )
    monkeypatch.chdir(tmp_path)
    # The external env is registered for this test only: other tests check every id.
    registry = mallm_envs.registration.registry
    monkeypatch.setattr(registry, "_specs", dict(registry._specs))
    monkeypatch.delitem(sys.modules, "my_envs", raising=False)
    argv = [
        "play",
        "my_envs:MyWord-v0",
        "--agent",
        "agent_0=fixed:a, b",
        "--agent",
        "agent_1=fixed:c",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "== MyWord-v0" in out and "   > a, b" in out
    assert main(["play", "no_such_module:MyWord-v0"]) == 2
    assert "cannot import 'no_such_module'" in capsys.readouterr().err
    assert main(["play", "CommonWord-v0", "--agent", "./absent.py:make"]) == 2
    assert "there is no file" in capsys.readouterr().err
    sys.modules.pop("my_envs", None)


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
        system_prompt="Answer with one word.",
    )
    train(args)
    env = mallm_envs.make("CommonWord-v0")
    agents = build_agents(f"checkpoint:{tmp_path / 'run'}", env, seed=0)
    # Evaluated as trained: with the run's system prompt.
    assert all(a.system_prompt == "Answer with one word." for a in agents.values())
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


def test_a_mixed_team_puts_an_llm_beside_another_agent() -> None:
    """`scripted,llm:tiny` is two specs (it was read as one LLM spec, or as a module)."""
    from mallm_envs.agents.llm import LLMAgent
    from mallm_envs.agents.spec import LLMSettings

    torch.set_num_threads(1)
    env = mallm_envs.make("CoopCode-v0")
    settings = LLMSettings(temperature=0.0, max_new_tokens=2)
    for specs in ("scripted,llm:tiny", ["main=llm:tiny", "helper=scripted"]):
        agents = build_agents(specs, env, seed=0, settings=settings)
        assert isinstance(agents["main"], LLMAgent)
        assert not isinstance(agents["helper"], LLMAgent)
    episode = run_episode(env, agents, seed=0)
    assert episode.agent_descriptions["main"]["sampling"]["max_new_tokens"] == 2
    assert first_difference(episode, replay(episode)) is None


@pytest.mark.slow  # loads SmolLM2 in-process (about 20 s on a busy 2-core machine)
def test_a_prompting_team_with_a_model_per_role() -> None:
    """`helper=prompting:S:A` beside `main=prompting:S:B`: one strategy, each role its model
    (an endpoint model works the same way: prompting:S:openai:MODEL@URL)."""
    from mallm_envs.agents.spec import LLMSettings

    torch.set_num_threads(1)
    env = mallm_envs.make("CoopCode-v0")
    specs = ["helper=prompting:discussion:tiny", "main=prompting:discussion:smollm2-135m"]
    settings = LLMSettings(temperature=0.0, max_new_tokens=2)
    try:
        agents = build_agents(specs, env, seed=0, settings=settings)
    except AgentSpecError as error:
        pytest.skip(f"SmolLM2 is not available here: {error}")
    episode = run_episode(env, agents, seed=0)
    models = episode.agent_descriptions["helper"]["models"]
    assert models["helper"]["model"] == "tiny" and models["main"]["model"] == "smollm2-135m"
    assert episode.agent_descriptions["main"]["strategy"] == "discussion"
    assert 0 < agents["helper"].tokens_used <= 2 * 2 * 2 * episode.turns  # 2 rounds, 2 roles
    assert first_difference(episode, replay(episode)) is None
    lms = agents["main"].team.lm.models
    assert (lms["helper"].model_name, lms["main"].model_name) == ("tiny", "smollm2-135m")
