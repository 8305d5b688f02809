"""Issue 18 item 1: one policy record owned by the library, written by the trainers and read
by ``checkpoint:PATH`` agents; each agent's adapter exported in the standard peft layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

from baselines import magrpo  # noqa: E402
from mallm_envs.agents.checkpoint import (  # noqa: E402
    PolicyConfig,
    PolicyFormatError,
    load_checkpoint,
)
from mallm_envs.agents.llm import ModelLoadError, load_policy, load_trained  # noqa: E402

torch.set_num_threads(1)
AGENTS = ["agent_0", "agent_1"]


def _train(tmp_path: Path, **overrides) -> Path:
    values = dict(
        env_id="CommonWord-v0",
        env_kwargs='{"max_turns": 1}',
        group_size=2,
        max_new_tokens=3,
        temperature=0.5,
        top_p=0.8,
        lora_rank=4,
        learning_rate=5e-2,
        baseline="none",
        num_updates=2,
        checkpoint_every=2,
        system_prompt="Be brief.",
        output_dir=str(tmp_path / "run"),
        progress=False,
        tensorboard=False,
        plot=False,
        threads=1,
    )
    values.update(overrides)
    magrpo.train(magrpo.Args(**values))
    return tmp_path / "run"


def test_checkpoint_agents_read_the_library_policy_record(tmp_path: Path) -> None:
    run = _train(tmp_path)
    saved = load_checkpoint(run / "checkpoint.pt")
    config = PolicyConfig.from_dict(saved["policy"])
    assert json.loads((run / "policy.json").read_text()) == saved["policy"]
    assert (config.max_new_tokens, config.temperature, config.top_p) == (3, 0.5, 0.8)
    assert (config.lora_rank, config.agents, config.system_prompt) == (
        4,
        tuple(AGENTS),
        "Be brief.",
    )
    lm, sampling = load_trained(run, AGENTS)
    assert (sampling.max_new_tokens, sampling.temperature, sampling.top_p) == (3, 0.5, 0.8)
    for policy in lm.policies:
        for name, tensor in lm.policy_state_dict(policy).items():
            assert torch.equal(tensor, saved["policies"][policy][name])
    _, record = load_policy(run, AGENTS)
    assert record == config and record.system_prompt == "Be brief."
    with pytest.raises(ModelLoadError, match="trained for agents"):
        load_trained(run, ["a", "b"])


def test_policy_record_is_strict_and_old_checkpoints_get_the_trainer_defaults() -> None:
    config = PolicyConfig(model="tiny", agents=("a", "b"))
    assert PolicyConfig.from_dict(config.to_dict()) == config
    with pytest.raises(PolicyFormatError, match="unknown policy config fields"):
        PolicyConfig.from_dict({**config.to_dict(), "max_tokens": 5})
    with pytest.raises(PolicyFormatError, match="format 2"):
        PolicyConfig.from_dict({**config.to_dict(), "format": 2})
    from mallm_envs.agents.llm import _policy_config_from_trainer_args

    old = _policy_config_from_trainer_args({"model": "tiny"}, ["a", "b"])
    assert old.max_new_tokens == magrpo.Args.max_new_tokens == 256  # was 64 in the library


def test_exported_adapters_load_with_plain_peft(tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = _train(tmp_path)
    lm, _ = load_trained(run, AGENTS)
    ids = torch.tensor([lm.encode(lm.format_prompt("Your words: apple, pear"))])
    for agent in AGENTS:
        folder = run / "export" / agent
        assert {"adapter_config.json", "adapter_model.safetensors"} <= {
            p.name for p in folder.iterdir()
        }
        base_path = json.loads((folder / "adapter_config.json").read_text())[
            "base_model_name_or_path"
        ]
        base = AutoModelForCausalLM.from_pretrained(base_path)
        plain = PeftModel.from_pretrained(base, str(folder)).eval()
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        assert tokenizer("apple")["input_ids"] == lm.tokenizer("apple")["input_ids"]
        with torch.no_grad():
            expected_logits = plain(input_ids=ids).logits
            lm.peft_model.set_adapter(lm.policy_name(agent))
            ours = lm.peft_model(input_ids=ids).logits
            with plain.disable_adapter():
                base_logits = plain(input_ids=ids).logits
        assert torch.allclose(expected_logits, ours, atol=1e-5)
        assert not torch.allclose(expected_logits, base_logits, atol=1e-4)  # trained adapter


def test_full_copies_export_as_model_folders(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    run = _train(tmp_path, adapter="full", shared_policy=True)
    lm, _ = load_trained(run, AGENTS)
    model = AutoModelForCausalLM.from_pretrained(str(run / "export" / "agent_1")).eval()
    ids = torch.tensor([lm.encode("hello there")])
    with torch.no_grad():
        ours = lm.networks[lm.policy_name("agent_1")].eval()(input_ids=ids).logits
        assert torch.allclose(model(input_ids=ids).logits, ours, atol=1e-5)
