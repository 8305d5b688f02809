"""The offline default model: a tiny Llama-style causal LM built locally, never downloaded.

Tests, the demo and CPU training runs need a language model that exists without a network.
:func:`tiny_model_path` builds one on first use and caches it as an ordinary Hugging Face
folder (``config.json``, ``model.safetensors``, tokenizer files with a chat template), so
every loader that takes a local folder (``transformers``, :mod:`mallm_envs.agents.llm`)
loads it unchanged.

* Tokenizer: byte-level BPE (any Unicode string round-trips) trained in about a second on
  text that ships with Python itself (``pydoc_data.topics``) plus a few prompt phrases.
* Model: ``LlamaForCausalLM`` from a small config, randomly initialised from a seed
  (a few hundred thousand parameters). It produces noise until trained: it is meant for
  plumbing tests and for learning-from-scratch runs on tiny tasks.
* Cache: ``$MALLM_ENVS_CACHE`` or ``~/.cache/mallm_envs``; the folder is built in a
  temporary directory and renamed into place, so a crash or a concurrent builder never
  leaves a half-written model behind. The same seed gives the same files, byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from mallm_envs.core.errors import MallmError
from mallm_envs.data.models import cache_root, fsync_dir, fsync_file, sha256_file

TINY_MODEL_VERSION = "tiny-llama-v0"
"""Name of the cached folder; bump it when anything below changes the files."""

MANIFEST_NAME = "mallm_tiny_model.json"

SPECIAL_TOKENS = ("<|pad|>", "<|bos|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>")
"""Padding, beginning of text, end of turn (also the EOS token), and the chat role markers."""

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# Common concrete English nouns: help topics rarely use them, prompts of word games and
# stories do, and a from-scratch model learns faster when a word is one token.
_COMMON_NOUNS = (
    "apple river stone cloud table window garden bridge candle forest mountain ocean pencil "
    "ladder basket mirror violin rocket castle meadow island desert harbor jacket lantern "
    "compass anchor feather blanket kettle carpet saddle tunnel valley glacier orchard pepper "
    "walnut cherry tomato barrel hammer needle button ribbon wagon engine planet comet thunder "
    "rainbow shadow marble silver copper velvet cotton canvas pillow teapot bottle helmet "
    "trumpet whistle house door chair bread water fire tree flower bird horse dog cat fish "
    "book paper letter clock watch phone music song dance story dream light night morning "
    "summer winter spring autumn snow rain wind storm road street city village school market "
    "kitchen onion potato carrot lemon orange banana grape honey sugar salt butter cheese soup "
    "plate spoon knife fork cup glass box bag coat shoe hat ring key lock rope wheel boat ship "
    "train plane bicycle car truck bus star moon sun sky sea lake hill field farm barn sheep "
    "cow goat pig chicken egg milk tea coffee rice bean corn wheat seed leaf root branch"
)

# A few phrases of the kind the environments' prompts use, so that they get compact tokens.
_PROMPT_PHRASES = (
    "You are the helper. You are the main agent. Your partner sees a different list.",
    "Answer with one word. Answer with a single word only. Reply briefly.",
    "Words: apple, river, stone, cloud, tiger, lemon, piano, rocket, garden, silver.",
    "Write a Python function. def main(): return aux(x) def aux(x): return x",
    "Summarize the text in one sentence. Write a detailed summary.",
    "Turn 1 of 2. Feedback: the tests failed. Your partner answered:",
    "Bring an onion to pot 1. Pick up a dish. Deliver the soup. Move up, down, left, right.",
)


class TinyModelError(MallmError, RuntimeError):
    """The tiny model could not be built or its cached folder is unusable."""


@dataclass(frozen=True)
class TinyModelConfig:
    """Sizes of the tiny model; the defaults give about 0.25 M parameters."""

    vocab_size: int = 2048
    hidden_size: int = 64
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    initializer_range: float = 0.02


def _folder_name(seed: int, config: TinyModelConfig) -> str:
    name = TINY_MODEL_VERSION
    if seed != 0:
        name += f"-seed{seed}"
    if config != TinyModelConfig():
        digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()
        name += f"-{digest[:10]}"
    return name


def tiny_model_path(
    seed: int = 0, config: TinyModelConfig | None = None, root: str | Path | None = None
) -> Path:
    """Path of the tiny model folder for ``seed``; builds and caches it on first use.

    Args:
        seed: seeds the random weights (the tokenizer does not depend on it).
        config: model sizes; the default is :class:`TinyModelConfig()`.
        root: cache folder; default :func:`cache_root`.
    """
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise TinyModelError(f"seed must be a non-negative int, got {seed!r}")
    config = config or TinyModelConfig()
    root = Path(root) if root is not None else cache_root()
    target = root / _folder_name(seed, config)
    if (target / MANIFEST_NAME).is_file():
        return target
    if target.exists():
        raise TinyModelError(
            f"{target} exists but has no {MANIFEST_NAME}: it was not built by mallm_envs; "
            "delete it or set MALLM_ENVS_CACHE to another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        build_tiny_model(scratch, seed=seed, config=config)
        try:
            os.rename(scratch, target)
        except OSError:
            # Another process finished first: keep its folder, drop ours.
            if not (target / MANIFEST_NAME).is_file():
                raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)
    fsync_dir(root)
    return target


def training_corpus() -> list[str]:
    """The text the tokenizer learns from: Python's own help topics and prompt phrases."""
    try:
        from pydoc_data.topics import topics
    except ImportError:  # some minimal Python builds drop pydoc_data
        topics = {}
    texts = [topics[key] for key in sorted(topics)]
    words = _COMMON_NOUNS.split()
    nouns = [", ".join(words[i : i + 8]) for i in range(0, len(words), 8)]
    return texts + (list(_PROMPT_PHRASES) + nouns) * 50


def build_tokenizer(vocab_size: int = 2048):
    """Train a byte-level BPE tokenizer (a ``tokenizers.Tokenizer``) on :func:`training_corpus`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(training_corpus(), trainer=trainer)
    return tokenizer


def build_tiny_model(
    folder: str | Path, seed: int = 0, config: TinyModelConfig | None = None
) -> Path:
    """Write the tiny model (weights, tokenizer, chat template, manifest) into ``folder``."""
    try:
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise TinyModelError(
            "building the tiny model needs the 'llm' extra: pip install 'mallm-envs[llm]'"
        ) from error
    config = config or TinyModelConfig()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    raw_tokenizer = build_tokenizer(config.vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw_tokenizer,
        bos_token="<|bos|>",
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.padding_side = "left"
    tokenizer.save_pretrained(folder)

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    devices = []  # fork_rng needs no CUDA devices: the model is built on the CPU
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(model_config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(folder)

    files = sorted(p.name for p in folder.iterdir() if p.is_file())
    manifest = {
        "name": TINY_MODEL_VERSION,
        "seed": seed,
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "sha256": {name: sha256_file(folder / name) for name in files},
    }
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    for path in folder.iterdir():
        fsync_file(path)
    return folder
