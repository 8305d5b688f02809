"""Issue 14: a trained pair's export (``policy.json`` + one peft folder per agent) is a
first-class policy: ``checkpoint:`` agents load it with the checkpoint's exact weights, a
run folder without ``checkpoint.pt`` falls back to it, and ``mallm verify --reproduce``
re-runs an entry from it (a tampered adapter fails)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

import mallm_envs  # noqa: E402
from baselines import magrpo  # noqa: E402
from mallm_envs.agents import spec as spec_module  # noqa: E402
from mallm_envs.agents.checkpoint import (  # noqa: E402
    ADAPTER_CONFIG_FILE,
    ADAPTER_FILE,
    POLICY_FILE,
    PolicyConfig,
    export_policies,
)
from mallm_envs.agents.llm import (  # noqa: E402
    LLMAgent,
    ModelLoadError,
    MultiAgentLM,
    SamplingConfig,
    load_policy,
)
from mallm_envs.agents.spec import LLMSettings, build_agents  # noqa: E402
from mallm_envs.cli import main  # noqa: E402
from mallm_envs.core.episode import run_episode  # noqa: E402
from mallm_envs.leaderboard import evaluate, generate_suite, verify_file  # noqa: E402
from mallm_envs.leaderboard import verify as verify_module  # noqa: E402
from mallm_envs.leaderboard.verify import VerificationError, reproduce  # noqa: E402

torch.set_num_threads(1)
ENV = "CommonWord-v1"
AGENTS = ["agent_0", "agent_1"]
LEAN_FILES = {ADAPTER_CONFIG_FILE, ADAPTER_FILE}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two updates of MAGRPO with a LoRA adapter per agent on the tiny model: a run folder
    with checkpoint.pt and export/ (the adapters moved away from their initialisation)."""
    run = tmp_path_factory.mktemp("magrpo") / "run"
    magrpo.train(
        magrpo.Args(
            env_id=ENV,
            env_kwargs='{"max_turns": 1}',
            group_size=2,
            max_new_tokens=3,
            lora_rank=4,
            learning_rate=5e-2,
            baseline="none",
            num_updates=2,
            checkpoint_every=2,
            system_prompt="Answer with one word.",
            output_dir=str(run),
            progress=False,
            tensorboard=False,
            plot=False,
            threads=1,
        )
    )
    return run


def _copy_run(run: Path, target: Path, *, checkpoint: bool, lean: bool) -> Path:
    """A copy of the run folder, without checkpoint.pt and/or the export's tokenizer files
    (what a clone gets when only the lean export is committed)."""
    shutil.copytree(run, target)
    if not checkpoint:
        (target / "checkpoint.pt").unlink()
    if lean:
        for agent in AGENTS:
            for file in (target / "export" / agent).iterdir():
                if file.name not in LEAN_FILES:
                    file.unlink()
    return target


def _states(lm: MultiAgentLM) -> dict[str, dict[str, torch.Tensor]]:
    return {policy: lm.policy_state_dict(policy) for policy in lm.policies}


def _assert_same_weights(ours: MultiAgentLM, theirs: MultiAgentLM) -> None:
    mine, other = _states(ours), _states(theirs)
    assert mine.keys() == other.keys()
    for policy, state in mine.items():
        assert state.keys() == other[policy].keys() and state
        for name, tensor in state.items():
            assert tensor.dtype == other[policy][name].dtype
            assert torch.equal(tensor, other[policy][name]), f"{policy}: {name}"


def _greedy_actions(lm: MultiAgentLM, config: PolicyConfig, seed: int = 0) -> list:
    env = mallm_envs.make(ENV)
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=4)
    agents = {
        agent: LLMAgent(lm, agent_id=agent, sampling=sampling, system_prompt=config.system_prompt)
        for agent in lm.agents
    }
    episode = run_episode(env, agents, seed=seed)
    env.close()
    return [(step.agent, step.action) for step in episode.steps if step.action is not None]


# ----------------------------------------------------------------- loading is exact


def test_export_loads_the_checkpoints_weights_bit_for_bit(trained: Path, tmp_path: Path) -> None:
    from_checkpoint, config = load_policy(trained, AGENTS)
    assert (trained / "checkpoint.pt").is_file()
    from_export, export_config = load_policy(trained / "export", AGENTS)
    assert export_config == config and config.system_prompt == "Answer with one word."
    _assert_same_weights(from_checkpoint, from_export)
    # The training moved the adapters: equal weights are the trained ones, not the initial.
    fresh = config.build()
    assert any(
        not torch.equal(tensor, from_export.policy_state_dict(policy)[name])
        for policy in fresh.policies
        for name, tensor in fresh.policy_state_dict(policy).items()
    )
    actions = _greedy_actions(from_checkpoint, config)
    assert actions and _greedy_actions(from_export, export_config) == actions

    # A clone with only the lean export committed: the run folder falls back to export/,
    # and the tokenizer is the base model's.
    clone = _copy_run(trained, tmp_path / "clone", checkpoint=False, lean=True)
    assert {p.name for p in (clone / "export" / "agent_0").iterdir()} == LEAN_FILES
    from_clone, clone_config = load_policy(clone, AGENTS)
    assert clone_config == config
    _assert_same_weights(from_checkpoint, from_clone)
    assert (
        from_clone.tokenizer("apple pear")["input_ids"]
        == (from_checkpoint.tokenizer("apple pear")["input_ids"])
    )
    assert _greedy_actions(from_clone, clone_config) == actions


def test_the_checkpoint_spec_takes_a_run_folder_without_its_checkpoint(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(spec_module, "_MODELS", {})
    clone = _copy_run(trained, tmp_path / "clone", checkpoint=False, lean=True)
    env = mallm_envs.make(ENV)
    agents = build_agents(f"checkpoint:{clone}", env, seed=0)
    assert all(a.system_prompt == "Answer with one word." for a in agents.values())
    reference, _ = load_policy(trained, AGENTS)
    _assert_same_weights(agents["agent_0"].lm, reference)
    env.close()


def test_a_checkpoint_spec_reloads_once_its_files_change(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The in-process model cache is keyed by the policy files' sizes and times too: a run
    folder whose export was replaced (a longer run, a new export) is not served stale."""
    monkeypatch.setattr(spec_module, "_MODELS", {})
    clone = _copy_run(trained, tmp_path / "clone", checkpoint=False, lean=True)
    env = mallm_envs.make(ENV)
    first = build_agents(f"checkpoint:{clone}", env, seed=0)["agent_0"].lm
    assert build_agents(f"checkpoint:{clone}", env, seed=0)["agent_0"].lm is first
    adapter = clone / "export" / "agent_0" / ADAPTER_FILE
    stat = adapter.stat()
    os.utime(adapter, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert build_agents(f"checkpoint:{clone}", env, seed=0)["agent_0"].lm is not first
    env.close()


def test_lean_export_option_writes_no_tokenizer(trained: Path, tmp_path: Path) -> None:
    lm, config = load_policy(trained, AGENTS)
    written = export_policies(lm, tmp_path / "lean", config, tokenizer=False)
    assert set(written) == set(AGENTS)
    for folder in written.values():
        assert {p.name for p in folder.iterdir()} == LEAN_FILES
    assert (tmp_path / "lean" / POLICY_FILE).is_file()
    again, _ = load_policy(tmp_path / "lean", AGENTS)
    _assert_same_weights(lm, again)
    # The same bytes as the trainer's own export.
    for agent in AGENTS:
        ours = (tmp_path / "lean" / agent / ADAPTER_FILE).read_bytes()
        assert ours == (trained / "export" / agent / ADAPTER_FILE).read_bytes()


@pytest.mark.parametrize(
    "adapter, shared", [("lora", True), ("full", True), ("full", False)], ids=str
)
def test_shared_and_full_policies_round_trip(tmp_path: Path, adapter: str, shared: bool) -> None:
    config = PolicyConfig(model="tiny", agents=tuple(AGENTS), adapter=adapter, shared=shared)
    lm = config.build()
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():  # stand-in for training: every trainable weight moves
        for agent in AGENTS:
            for parameter in lm.trainable_parameters(agent):
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    export_policies(lm, tmp_path / "export", config, tokenizer=False)
    loaded, loaded_config = load_policy(tmp_path / "export", AGENTS)
    assert loaded_config == config and loaded.policies == lm.policies
    assert len(lm.policies) == (1 if shared else 2)
    _assert_same_weights(lm, loaded)
    assert _greedy_actions(loaded, config) == _greedy_actions(lm, config)


# ------------------------------------------------------------------ typed errors


def _lean_export(trained: Path, target: Path) -> Path:
    shutil.copytree(trained / "export", target)
    return target


def test_bad_exports_are_typed_errors(trained: Path, tmp_path: Path) -> None:
    def refused(folder: Path, message: str, agents: list[str] = AGENTS) -> None:
        with pytest.raises(ModelLoadError, match=message):
            load_policy(folder, agents)

    refused(tmp_path / "nowhere", "no checkpoint or export")
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", "neither a run folder nor an export")

    no_record = _lean_export(trained, tmp_path / "no_record")
    (no_record / POLICY_FILE).unlink()
    refused(no_record / "agent_0", "neither a run folder nor an export")
    run_without_record = tmp_path / "run_without_record"
    run_without_record.mkdir()
    shutil.copytree(no_record, run_without_record / "export")
    refused(run_without_record, "policy.json is missing")

    record = json.loads((trained / "export" / POLICY_FILE).read_text())
    for name, text, message in [
        ("not_json", "{'format': 1", "not readable JSON"),
        ("a_list", "[1, 2]", "must hold a JSON object"),
        ("unknown_field", json.dumps({**record, "max_tokens": 3}), "unknown policy config"),
        ("format_2", json.dumps({**record, "format": 2}), "policy format 2"),
        ("no_model", json.dumps({k: v for k, v in record.items() if k != "model"}), "incomplete"),
        ("bad_temperature", json.dumps({**record, "temperature": -1}), "temperature"),
        ("bad_adapter", json.dumps({**record, "adapter": "qlora"}), "adapter must be"),
        ("rank_as_text", json.dumps({**record, "lora_rank": "4"}), "lora_rank must be int"),
        ("agents_as_text", json.dumps({**record, "agents": "agent_0"}), "agents must be"),
    ]:
        folder = _lean_export(trained, tmp_path / name)
        (folder / POLICY_FILE).write_text(text)
        refused(folder, message)

    refused(trained / "export", "trained for agents", ["helper", "main"])

    missing_agent = _lean_export(trained, tmp_path / "missing_agent")
    shutil.rmtree(missing_agent / "agent_1")
    refused(missing_agent, r"agent_1 is missing: the export has no policy")
    no_agents = _lean_export(trained, tmp_path / "no_agents")
    shutil.rmtree(no_agents / "agent_0")
    shutil.rmtree(no_agents / "agent_1")
    refused(no_agents, "holds no exported policy")

    missing_adapter = _lean_export(trained, tmp_path / "missing_adapter")
    (missing_adapter / "agent_0" / ADAPTER_FILE).unlink()
    refused(missing_adapter, "adapter_model.safetensors is missing")
    pickled = _lean_export(trained, tmp_path / "pickled")
    (pickled / "agent_0" / ADAPTER_FILE).rename(pickled / "agent_0" / "adapter_model.bin")
    refused(pickled, "is a pickle, which is never loaded")

    garbage = _lean_export(trained, tmp_path / "garbage")
    (garbage / "agent_0" / ADAPTER_FILE).write_bytes(b"\x80\x04 not a safetensors file")
    refused(garbage, "not a readable safetensors file")

    from safetensors.torch import load_file, save_file

    state = load_file(str(trained / "export" / "agent_0" / ADAPTER_FILE))
    one = sorted(state)[0]
    for name, changed, message in [
        ("dropped_tensor", {k: v for k, v in state.items() if k != one}, "1 missing"),
        ("extra_tensor", {**state, "base_model.extra.weight": state[one].clone()}, "1 unexpected"),
        ("wrong_shape", {**state, one: state[one][:1].contiguous()}, "the policy record"),
        ("wrong_dtype", {**state, one: state[one].to(torch.float16)}, "float16"),
    ]:
        folder = _lean_export(trained, tmp_path / name)
        save_file(changed, str(folder / "agent_0" / ADAPTER_FILE))
        refused(folder, message)

    other_rank = _lean_export(trained, tmp_path / "other_rank")
    config_path = other_rank / "agent_1" / ADAPTER_CONFIG_FILE
    config_path.write_text(json.dumps({**json.loads(config_path.read_text()), "r": 16}))
    refused(other_rank, "disagrees with the policy record")


def test_agents_sharing_a_policy_must_export_the_same_weights(tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    config = PolicyConfig(model="tiny", agents=tuple(AGENTS), shared=True)
    export_policies(config.build(), tmp_path / "export", config, tokenizer=False)
    file = tmp_path / "export" / "agent_1" / ADAPTER_FILE
    state = load_file(str(file))
    name = sorted(state)[0]
    state[name] = state[name] + 1.0
    save_file(state, str(file))
    with pytest.raises(ModelLoadError, match="share one policy"):
        load_policy(tmp_path / "export", AGENTS)


# ------------------------------------------------------- verification from an export


def _tamper(adapter: Path) -> None:
    """Change one number of one adapter matrix (a LoRA B of the last attention output)."""
    from safetensors.torch import load_file, save_file

    state = load_file(str(adapter))
    name = sorted(k for k in state if "o_proj.lora_B" in k)[-1]
    state[name][0, 0] += 100.0
    save_file(state, str(adapter), metadata={"format": "pt"})


def test_verify_reproduces_an_entry_from_the_committed_export(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The board scenario: the entry was evaluated from checkpoint.pt on the trainer's
    machine; a clone holds only the lean export, and reproduces every action from it."""
    suite = generate_suite(ENV, n_seeds=3)
    monkeypatch.setattr(verify_module, "load_suite", lambda _: suite)
    monkeypatch.setattr(spec_module, "_MODELS", {})
    run = shutil.copytree(trained, tmp_path / "run")
    spec = f"checkpoint:{run}"
    settings = LLMSettings(temperature=0.0, max_new_tokens=3)
    submission = evaluate(
        ENV,
        lambda env: build_agents(spec, env, seed=0, settings=settings),
        agent_info={"name": "magrpo tiny", "spec": spec, "model": "tiny"},
        suite=suite,
        progress=False,
    )
    submission.agent["decoding"] = next(iter(submission.agent["per_role"].values()))["sampling"]
    path = submission.save(tmp_path / "entry.json.gz")

    # What a clean clone has: no checkpoint.pt, the export without tokenizer files.
    (run / "checkpoint.pt").unlink()
    for agent in AGENTS:
        for file in (run / "export" / agent).iterdir():
            if file.name not in LEAN_FILES:
                file.unlink()
    assert verify_module._unsafe_checkpoint(str(run)) == ""
    monkeypatch.setattr(spec_module, "_MODELS", {})
    assert verify_file(path, reproduce_agent=True).check == "reproduced"
    monkeypatch.setattr(spec_module, "_MODELS", {})
    assert main(["verify", "--reproduce", str(path)]) == 0
    assert "3 episodes reproduced" in capsys.readouterr().out

    # One weight of one adapter changed: the export still loads, the actions differ.
    _tamper(run / "export" / "agent_0" / ADAPTER_FILE)
    monkeypatch.setattr(spec_module, "_MODELS", {})
    report = verify_file(path)
    with pytest.raises(VerificationError, match=r"\[reproduce\] episode \d+ .*acts"):
        reproduce(report)
    monkeypatch.setattr(spec_module, "_MODELS", {})
    assert main(["verify", "--reproduce", str(path)]) == 1


def test_verify_checks_an_export_parses_before_loading_it(trained: Path, tmp_path: Path) -> None:
    export = shutil.copytree(trained / "export", tmp_path / "export")
    assert verify_module._unsafe_checkpoint(str(export)) == ""
    (export / "agent_1" / ADAPTER_FILE).write_bytes(b"\x80\x04 a pickle, not safetensors")
    note = verify_module._unsafe_checkpoint(str(export))
    assert "cannot be read safely" in note and "not a readable safetensors file" in note
    (export / POLICY_FILE).write_text("{")
    assert "not readable JSON" in verify_module._unsafe_checkpoint(str(export))
    (export / POLICY_FILE).unlink()
    assert "not available here" in verify_module._unsafe_checkpoint(str(export))
    assert "not available here" in verify_module._unsafe_checkpoint(str(tmp_path / "nowhere"))


def test_the_board_names_the_model_of_a_checkpoint_entry() -> None:
    """A checkpoint: spec names no model, so the board reads the one its agents recorded
    (the magrpo-s0 rows showed "-" in the model column before)."""
    from mallm_envs.leaderboard.board import agent_model, model_cell
    from mallm_envs.leaderboard.verify import read_submission_bytes

    root = Path(__file__).resolve().parents[1]
    path = root / "leaderboards" / "CoopCode-v1" / "magrpo-s0-smollm2.json.gz"
    agent = read_submission_bytes(path.read_bytes(), path.name)["agent"]
    assert agent.get("model") is None
    assert agent_model(agent) == "smollm2-135m"
    assert model_cell(agent) == "smollm2-135m"
    mixed = {"per_role": {"helper": {"model": "tiny"}, "main": {"model": "smollm2-135m"}}}
    assert agent_model(mixed) == "helper: tiny, main: smollm2-135m"
    assert agent_model({"per_role": {"a": {"kind": "scripted"}}}) == "-"
    assert agent_model({"model": "gpt-x", "per_role": {"a": {"model": "tiny"}}}) == "gpt-x"
