"""LLM agents: load a causal LM, give each agent its own policy, sample, score log-probs.

Needs the ``llm`` extra (``pip install 'mallm-envs[llm]'``: torch, transformers, peft).

Three pieces, from low to high level:

* :func:`load_causal_lm` loads a model and its tokenizer: the offline tiny model (default),
  a local Hugging Face folder, a ``.gguf`` file (transformers de-quantizes it), or a hub id
  (only when ``allow_download=True``; otherwise only the local cache is consulted).
* :class:`MultiAgentLM` keeps **one** base model in memory and one policy per agent on top:
  a LoRA adapter per agent (peft multi-adapter, the default), one adapter shared by all
  agents (``shared=True``), a full copy per agent (``adapter="full"``, as in the paper), or
  the frozen base (``adapter="none"``, for prompting baselines). Its :meth:`~MultiAgentLM.generate`
  samples for many agents, prompts and group samples in one batch (peft's mixed-adapter
  batches route each row through its agent's adapter), with per-agent sampling settings
  and stop strings, and returns text, token ids and per-token log-probs;
  :meth:`~MultiAgentLM.sequence_logprobs` recomputes the summed response log-probs with
  gradients for training.
* :class:`LLMAgent` wraps one agent's policy into the :mod:`mallm_envs.agents` Agent
  protocol (``act``/``act_batch``/``reset``/``describe``) for use with any environment.

Log-probs are those of the model's own distribution (softmax of the raw logits, temperature
1), whatever temperature and top-p the sampler used; this is the quantity policy-gradient
losses use.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import functools
import hashlib
import inspect
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mallm_envs.agents.base import shared_lock
from mallm_envs.core.errors import MallmError
from mallm_envs.data.models import NamedModelError, is_named_model, named_model_path

try:
    import torch
except ImportError as _error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "mallm_envs.agents.llm needs the 'llm' extra (torch, transformers, peft): "
        "pip install 'mallm-envs[llm]'"
    ) from _error

TINY_MODEL_ID = "tiny"
"""Model name that selects the offline tiny model (:mod:`mallm_envs.agents.tiny_model`)."""

ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")
"""Attention implementations :func:`load_causal_lm` takes (see its ``attention`` argument)."""

BASE_POLICY = "__base__"
"""Policy name of the frozen base model (peft's name for 'no adapter')."""

BATCH_INVARIANT_ROWS = 4
"""Fewest rows per policy in a batch-invariant decoding step (see ``generate``'s
``batch_invariant``). The CPU matrix kernels sum a product with 1 to 3 rows in another order
than a product with more rows, so a lone row would get other last bits than the same row in
a batch; from 4 rows on each row's result is the same whatever the batch (checked for the
shapes of the tiny model, SmolLM2 and LoRA ranks, with 1 and 2 threads)."""

ROW_ATTENTION = "mallm_row_eager"
"""Name under which the batch-invariant attention is registered with transformers."""

SHARED_PREFIX_ATTENTION = "mallm_shared_prefix"
"""Name under which the group-sampling attention (:func:`_shared_prefix_attention_forward`)
is registered with transformers."""

SHARED_PREFIX_MODELS = frozenset({"llama", "mistral", "qwen2", "qwen3"})
"""Model types whose attention :func:`_shared_prefix_attention_forward` computes exactly:
scaled dot-product attention over grouped key heads, without soft-capping, sinks or
biases (sliding-window layers are checked on the cache). Other models sample groups from
full copies of the prompt's cache."""


class LLMError(MallmError, RuntimeError):
    """Base class of the errors raised by :mod:`mallm_envs.agents.llm`."""


class ModelLoadError(LLMError):
    """A model or tokenizer could not be found or loaded."""


class LLMConfigError(LLMError, ValueError):
    """An impossible setting (bad sampling value, unknown agent or adapter mode)."""


# --- settings ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SamplingConfig:
    """How one agent samples its responses.

    ``temperature == 0`` or ``do_sample=False`` means greedy decoding. ``stop`` strings end a
    response as soon as the decoded text contains one; the returned text stops before it
    (the token ids keep every sampled token, so training sees what the policy produced).
    """

    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 64
    stop: tuple[str, ...] = ()
    do_sample: bool = True

    def __post_init__(self) -> None:
        if not (self.temperature >= 0.0):
            raise LLMConfigError(f"temperature must be >= 0, got {self.temperature!r}")
        if not (0.0 < self.top_p <= 1.0):
            raise LLMConfigError(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.max_new_tokens, bool) or not isinstance(self.max_new_tokens, int):
            raise LLMConfigError(f"max_new_tokens must be an int, got {self.max_new_tokens!r}")
        if self.max_new_tokens < 1:
            raise LLMConfigError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        if not all(isinstance(s, str) and s for s in self.stop):
            raise LLMConfigError(f"stop must be non-empty strings, got {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return (not self.do_sample) or self.temperature == 0.0


@dataclass(frozen=True)
class LoraSettings:
    """LoRA adapter shape. ``target_modules=None`` lets peft pick the usual projections."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] | None = ("q_proj", "k_proj", "v_proj", "o_proj")

    def peft_config(self, task_type: str | None = None) -> Any:
        """These settings as a ``peft.LoraConfig`` (no bias trained; empty targets let peft
        pick the usual projections, as ``None`` does)."""
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=list(self.target_modules) if self.target_modules else None,
            bias="none",
            task_type=task_type,
        )


def parse_lora_targets(text: str | None) -> tuple[str, ...] | None:
    """The comma-separated ``--lora-targets`` value as module names; empty means ``None``
    (peft picks the usual projections)."""
    names = (t.strip() for t in str(text or "").split(","))
    return tuple(n for n in names if n) or None


@dataclass
class Generation:
    """One sampled response."""

    agent: str
    text: str
    """Decoded response, special tokens removed, cut before the first stop string."""
    prompt_ids: list[int]
    response_ids: list[int]
    """Every sampled token, including a final EOS token when the model produced one."""
    logprobs: list[float]
    """Log-prob of each response token under the policy (temperature 1)."""
    finish_reason: str
    """``"eos"``, ``"stop"`` (a stop string) or ``"length"`` (max_new_tokens reached)."""

    @property
    def logprob_sum(self) -> float:
        return float(sum(self.logprobs))

    @property
    def num_tokens(self) -> int:
        return len(self.response_ids)


# --- loading ----------------------------------------------------------------------------


def resolve_device(device: str | None) -> torch.device:
    """``None``/``"auto"`` picks CUDA when present, else the CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise LLMConfigError(
            f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)"
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise LLMConfigError(
            f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees no CUDA "
            "GPU; install a CUDA build of torch (see docs/scaling.md) or use --device cpu"
        )
    return resolved


_DTYPE_ALIASES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def _resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPE_ALIASES.get(str(dtype).lower(), str(dtype).lower())
    value = getattr(torch, name, None) if name in ("float32", "bfloat16", "float16") else None
    if not isinstance(value, torch.dtype):
        raise LLMConfigError(
            f"unknown dtype {dtype!r} (use float32, bfloat16 or float16; or fp32, bf16, fp16)"
        )
    return value


def load_causal_lm(
    model: str | os.PathLike | None = None,
    *,
    gguf_file: str | None = None,
    allow_download: bool = False,
    device: str | None = "cpu",
    dtype: str | torch.dtype | None = None,
    tiny_seed: int = 0,
    attention: str = "eager",
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` for a causal LM.

    Args:
        model: ``None`` or ``"tiny"`` for the offline tiny model; a named model such as
            ``"smollm2-135m"`` (:mod:`mallm_envs.data.models`: weights from an installed
            package, de-quantized once and cached); a local folder; a path to a ``.gguf``
            file; or a Hugging Face hub id.
        gguf_file: name of a GGUF file inside ``model`` (a folder or hub repository).
        allow_download: let transformers fetch from the hub. Off by default: then only
            local folders and the local hub cache are used, and nothing touches the network.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, or ``"auto"``.
        dtype: ``float32`` (default), ``bfloat16`` or ``float16``.
        tiny_seed: weight seed of the tiny model.
        attention: transformers' attention implementation. ``"eager"`` (default): a row's
            numbers do not depend on the other rows of its batch (the fused SDPA kernel takes
            another path for padded rows and differs in the last bits), so batched
            generation gives each agent what it would get alone; evaluation uses it.
            ``"sdpa"``: no attention matrices are kept, which training needs for long
            prompts (eager keeps heads x length^2 values per layer for the backward pass).
    """
    if attention not in ATTENTION_IMPLEMENTATIONS:
        raise LLMConfigError(
            f"attention must be one of {ATTENTION_IMPLEMENTATIONS}, got {attention!r}"
        )
    try:
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "loading models needs the 'llm' extra: pip install 'mallm-envs[llm]'"
        ) from error
    transformers.utils.logging.disable_progress_bar()
    if model is None or str(model) == TINY_MODEL_ID:
        from mallm_envs.agents.tiny_model import tiny_model_path

        location: str = str(tiny_model_path(seed=tiny_seed))
    elif is_named_model(str(model)):
        try:
            location = str(named_model_path(str(model)))
        except NamedModelError as error:
            raise ModelLoadError(str(error)) from None
    else:
        location = str(model)
    path = Path(location).expanduser()
    if gguf_file is None and path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist")
        gguf_file, location = path.name, str(path.parent)
    elif path.exists():
        location = str(path)
        if not path.is_dir():
            raise ModelLoadError(f"{path} is a file but not a .gguf file; give a model folder")
    elif location.startswith((".", "/", "~")):
        raise ModelLoadError(f"model folder {location} does not exist")
    options: dict[str, Any] = {"local_files_only": not allow_download}
    if gguf_file is not None:
        options["gguf_file"] = gguf_file
    # transformers renamed from_pretrained's torch_dtype to dtype in 4.56.
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    dtype_argument = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    # Settings are checked before loading, so their errors are not taken for load failures.
    torch_dtype, torch_device = _resolve_dtype(dtype), resolve_device(device)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **options)
        network = AutoModelForCausalLM.from_pretrained(
            location, **{dtype_argument: torch_dtype}, attn_implementation=attention, **options
        )
    except (OSError, ValueError) as error:
        local = Path(location).expanduser().exists()
        hint = "" if allow_download or local else " (downloads are off: pass allow_download=True)"
        raise ModelLoadError(f"cannot load model {location!r}{hint}: {error}") from error
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    network.to(torch_device)
    network.eval()
    return network, tokenizer


def count_parameters(module: Any, trainable_only: bool = False) -> tuple[int, int]:
    """``(number, bytes)`` of the distinct parameters of a module (shared ones counted once)."""
    seen: set[int] = set()
    number = size = 0
    for parameter in module.parameters():
        if id(parameter) in seen or (trainable_only and not parameter.requires_grad):
            continue
        seen.add(id(parameter))
        number += parameter.numel()
        size += parameter.numel() * parameter.element_size()
    return number, size


# --- the multi-agent model ---------------------------------------------------------------


ADAPTER_MODES = ("lora", "full", "none")


class MultiAgentLM:
    """One base model, one policy per agent (or one shared policy), batched generation.

    Args:
        agents: agent names, e.g. ``("helper", "main")``.
        model: passed to :func:`load_causal_lm` (default: the tiny model).
        adapter: ``"lora"`` (one LoRA adapter per policy on a frozen base), ``"full"``
            (a full trainable copy of the model per policy: the paper's set-up, N models of
            memory) or ``"none"`` (the frozen base for every agent; nothing trains).
        shared: all agents use one policy (one adapter or one full copy).
        lora: adapter shape for ``adapter="lora"``.
        seed: seeds adapter initialisation (LoRA's A matrices are random).
        Other keyword arguments go to :func:`load_causal_lm`.
    """

    def __init__(
        self,
        agents: Sequence[str],
        model: str | os.PathLike | None = None,
        *,
        adapter: str = "lora",
        shared: bool = False,
        lora: LoraSettings | None = None,
        seed: int = 0,
        gguf_file: str | None = None,
        allow_download: bool = False,
        device: str | None = "cpu",
        dtype: str | torch.dtype | None = None,
        tiny_seed: int = 0,
        attention: str = "eager",
    ) -> None:
        agents = tuple(agents)
        if not agents or len(set(agents)) != len(agents):
            raise LLMConfigError(f"agents must be distinct names, got {agents!r}")
        if not all(isinstance(a, str) and a and a != BASE_POLICY for a in agents):
            raise LLMConfigError(f"agent names must be non-empty strings, got {agents!r}")
        if adapter not in ADAPTER_MODES:
            raise LLMConfigError(f"adapter must be one of {ADAPTER_MODES}, got {adapter!r}")
        self.agents = agents
        self.adapter = adapter
        self.shared = shared
        self.lora = lora or LoraSettings()
        self.model_name = "tiny" if model is None else str(model)
        base, self.tokenizer = load_causal_lm(
            model,
            gguf_file=gguf_file,
            allow_download=allow_download,
            device=device,
            dtype=dtype,
            tiny_seed=tiny_seed,
            attention=attention,
        )
        self.attention = attention
        self.checkpoint_prompts = True
        """Recompute a prompt's forward pass in the backward pass of
        :meth:`accumulate_policy_gradient` instead of keeping its activations (less memory,
        one more prompt forward per group; the same gradient)."""
        self.prompt_chunk = 256
        """With :attr:`checkpoint_prompts`: prompt positions encoded (and recomputed) at once."""
        self.response_rows = 1
        """With :attr:`checkpoint_prompts`: responses scored (forward and backward) at once
        in :meth:`accumulate_policy_gradient`; fewer rows, less memory."""
        self.reuse_prefills = False
        """With :attr:`checkpoint_prompts`: group sampling keeps each prompt's prefill (its
        keys and values and last logits, under the weights of that moment), and
        :meth:`accumulate_policy_gradient` takes it as the forward result of the prompt
        pass while the weights have not changed since (the backward pass recomputes it, as
        a checkpoint's does): one prompt forward less per group and update. Kept prefills
        hold memory until an update takes them or the weights change, so this is for
        trainers, which sample then update (the baselines turn it on). Models with active
        dropout never reuse (training mode would draw other masks)."""
        self._prefills: dict[tuple[str, tuple[int, ...]], _Prefill] = {}
        self.device = next(base.parameters()).device
        self._dtype = next(base.parameters()).dtype
        # transformers 5 renamed the cache argument of forward() from past_key_values to cache.
        forward_arguments = inspect.signature(base.forward).parameters
        self._cache_argument = "cache" if "cache" in forward_arguments else "past_key_values"
        # Policy (adapter) names are derived from agent names but kept clear of peft's own
        # prefixes ("lora_") and of characters a module name cannot hold.
        if adapter == "none":
            self.policy_of = dict.fromkeys(agents, BASE_POLICY)
        elif shared:
            self.policy_of = dict.fromkeys(agents, "policy_shared")
        else:
            self.policy_of = {
                agent: f"policy{index}_{re.sub(r'[^0-9A-Za-z]', '_', agent)}"
                for index, agent in enumerate(agents)
            }
        self.policies: tuple[str, ...] = tuple(dict.fromkeys(self.policy_of.values()))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._build(base)
        self._eos_ids = _eos_token_ids(self.tokenizer, base)
        self._pad_id = int(self.tokenizer.pad_token_id)

    def _build(self, base: Any) -> None:
        for parameter in base.parameters():
            parameter.requires_grad_(False)
        self.networks: dict[str, Any] = {}
        if self.adapter == "none":
            self.peft_model = None
            self.networks[BASE_POLICY] = base
        elif self.adapter == "full":
            self.peft_model = None
            first, *rest = self.policies
            self.networks = {policy: copy.deepcopy(base) for policy in rest}
            self.networks[first] = base  # the loaded model is the first copy
            self.networks = {policy: self.networks[policy] for policy in self.policies}
            for network in self.networks.values():
                for parameter in network.parameters():
                    parameter.requires_grad_(True)
        else:
            from peft import get_peft_model

            config = self.lora.peft_config(task_type="CAUSAL_LM")
            first, *rest = self.policies
            self.peft_model = get_peft_model(base, config, adapter_name=first)
            for policy in rest:
                self.peft_model.add_adapter(policy, config)
            self.peft_model.eval()
            self._adapter_rows = _AdapterRows(self.peft_model)
            for policy in self.policies:
                self.networks[policy] = self.peft_model
            # Every adapter stays trainable; the forward pass picks which one is active.
            for policy in self.policies:
                for parameter in self._adapter_parameters(policy):
                    parameter.requires_grad_(True)

    # -- parameters and state ---------------------------------------------------------

    def _adapter_parameters(self, policy: str) -> list[torch.nn.Parameter]:
        marker = f".{policy}."
        return [
            parameter
            for name, parameter in self.peft_model.named_parameters()
            if "lora_" in name and marker in name
        ]

    def trainable_parameters(self, agent: str) -> list[torch.nn.Parameter]:
        """The parameters that ``agent``'s optimizer updates (shared policies share them)."""
        policy = self.policy_name(agent)
        if policy == BASE_POLICY:
            return []
        if self.adapter == "full":
            return list(self.networks[policy].parameters())
        return self._adapter_parameters(policy)

    def policy_state_dict(self, policy: str) -> dict[str, torch.Tensor]:
        """Trainable tensors of one policy (for checkpoints), cloned to the CPU."""
        if self.adapter == "full":
            items = self.networks[policy].state_dict().items()
        elif self.adapter == "lora":
            marker = f".{policy}."
            items = (
                (name, value)
                for name, value in self.peft_model.state_dict().items()
                if "lora_" in name and marker in name
            )
        else:
            return {}
        return {name: value.detach().to("cpu", copy=True) for name, value in items}

    def load_policy_state_dict(self, policy: str, state: Mapping[str, torch.Tensor]) -> None:
        if self.adapter == "full":
            self.networks[policy].load_state_dict(state)
        elif self.adapter == "lora":
            result = self.peft_model.load_state_dict(dict(state), strict=False)
            if result.unexpected_keys:
                raise LLMConfigError(f"unexpected keys for {policy}: {result.unexpected_keys}")

    def memory_report(self) -> dict[str, int]:
        """Parameter counts and bytes: all distinct parameters, and the trainable part."""
        total = trainable = total_bytes = trainable_bytes = 0
        seen: set[int] = set()
        for network in self.networks.values():
            for parameter in network.parameters():
                if id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                size = parameter.numel() * parameter.element_size()
                total += parameter.numel()
                total_bytes += size
                if parameter.requires_grad:
                    trainable += parameter.numel()
                    trainable_bytes += size
        return {
            "parameters": total,
            "parameter_bytes": total_bytes,
            "trainable_parameters": trainable,
            "trainable_bytes": trainable_bytes,
        }

    def describe(self) -> dict[str, Any]:
        return {
            "model": self.model_name,
            "agents": list(self.agents),
            "adapter": self.adapter,
            "shared": self.shared,
            "lora": asdict(self.lora) if self.adapter == "lora" else None,
            "device": str(self.device),
            "dtype": str(self._dtype).replace("torch.", ""),
            "attention": self.attention,
        }

    def policy_name(self, agent: str) -> str:
        try:
            return self.policy_of[agent]
        except KeyError:
            raise LLMConfigError(f"unknown agent {agent!r}; agents are {self.agents}") from None

    # -- prompts ----------------------------------------------------------------------

    def format_prompt(self, text: str, system: str | None = None) -> str:
        """The model's input for a user message: its chat template, else a plain layout."""
        messages = [{"role": "user", "content": text}]
        if system:
            messages.insert(0, {"role": "system", "content": system})
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        header = f"{system}\n\n" if system else ""
        return f"{header}{text}\n"

    def encode(self, prompt: str) -> list[int]:
        """Token ids of an already formatted prompt (a BOS is added only without a template)."""
        add_special = not getattr(self.tokenizer, "chat_template", None)
        # Lone surrogates cannot be encoded: they become "?".
        prompt = prompt.encode("utf-8", "replace").decode("utf-8")
        return list(self.tokenizer(prompt, add_special_tokens=add_special)["input_ids"])

    # -- generation -------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        prompts: Mapping[str, Sequence[str]],
        *,
        num_samples: int = 1,
        sampling: SamplingConfig | Mapping[str, SamplingConfig] | None = None,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        formatted: bool = False,
        batch_invariant: bool = False,
    ) -> dict[str, list[list[Generation]]]:
        """Sample ``num_samples`` responses per prompt for each agent, in as few batches as possible.

        Args:
            prompts: agent -> its prompts (user messages, or model input if ``formatted``).
            num_samples: group size: responses per prompt.
            sampling: one setting for all agents or a mapping agent -> setting.
            generator: torch RNG for the sampler (give one for reproducible runs); or one
                generator per prompt, in the order of ``prompts`` (agent by agent, prompt by
                prompt): each prompt's responses then draw from their own generator exactly as
                if that prompt had been sampled alone, so batching several agents' prompts
                gives each the draws it would get one at a time.
            formatted: the prompts are already in the model's input format.
            batch_invariant: make every row's numbers and draws independent of the other rows
                of its batch (the evaluation agents ask for it; the trainers do not). Needs one
                generator per prompt. Attention runs row by row on the row's own tokens (no
                padding enters its sums), every policy's decoding step has at least
                :data:`BATCH_INVARIANT_ROWS` rows (copies of a real row fill it up, so the
                matrix kernels sum each row in one order), and a row samples in vocabulary
                order (a last-bit difference cannot swap two nearly tied tokens' places). A
                prompt then gives the same tokens, bit for bit, alone or in any batch, on
                the CPU (LoRA adapters with several torch threads excepted: the matrix
                library may split an adapter's rows between threads); GPU kernels make no
                such promise.

        Returns:
            agent -> per prompt -> ``num_samples`` :class:`Generation` objects.
        """
        if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
            raise LLMConfigError(f"num_samples must be a positive int, got {num_samples!r}")
        rows: list[tuple[str, int, list[int], SamplingConfig]] = []
        per_prompt = (
            None if generator is None or isinstance(generator, torch.Generator) else list(generator)
        )
        row_generators: list[torch.Generator] = []
        for agent, agent_prompts in prompts.items():
            self.policy_name(agent)
            if isinstance(agent_prompts, str):
                raise LLMConfigError(f"prompts[{agent!r}] must be a list of strings")
            settings = _sampling_for(sampling, agent)
            for index, prompt in enumerate(agent_prompts):
                text = prompt if formatted else self.format_prompt(prompt)
                ids = self.encode(text)
                rows.extend((agent, index, ids, settings) for _ in range(num_samples))
                if per_prompt is not None and len(row_generators) < len(rows):
                    if not per_prompt:
                        raise LLMConfigError("give one generator per prompt")
                    row_generators.extend([per_prompt.pop(0)] * num_samples)
        if per_prompt:
            raise LLMConfigError("give one generator per prompt")
        if batch_invariant and per_prompt is None and generator is not None:
            raise LLMConfigError("batch_invariant needs one generator per prompt")
        results: dict[str, list[list[Generation]]] = {
            agent: [[] for _ in agent_prompts] for agent, agent_prompts in prompts.items()
        }
        # Rows of policies that live in one network (the frozen base, or peft adapters) are
        # batched together; full copies get one batch each.
        groups: dict[int, list[int]] = {}
        for position, (agent, *_rest) in enumerate(rows):
            network = self.networks[self.policy_name(agent)]
            groups.setdefault(id(network), []).append(position)
        for positions in groups.values():
            batch = [rows[p] for p in positions]
            generations = self._sample_batch(
                batch,
                generator if per_prompt is None else [row_generators[p] for p in positions],
                batch_invariant=batch_invariant,
            )
            for (agent, index, _ids, _settings), generation in zip(batch, generations):
                results[agent][index].append(generation)
        return results

    def _sample_batch(
        self,
        rows: list[tuple[str, int, list[int], SamplingConfig]],
        generator: torch.Generator | list[torch.Generator] | None,
        batch_invariant: bool = False,
    ) -> list[Generation]:
        routing = (
            self._adapter_rows.installed() if self.adapter == "lora" else contextlib.nullcontext()
        )
        if not batch_invariant:
            with routing:
                return self._sample_rows(rows, generator, batch_invariant=False)
        network = self.networks[self.policy_name(rows[0][0])]
        with _row_attention(network), routing:
            return self._sample_rows(rows, generator, batch_invariant=True)

    def _sample_rows(
        self,
        rows: list[tuple[str, int, list[int], SamplingConfig]],
        generator: torch.Generator | list[torch.Generator] | None,
        batch_invariant: bool,
    ) -> list[Generation]:
        device = self.device
        agents = [row[0] for row in rows]
        policies = [self.policy_name(agent) for agent in agents]
        network = self.networks[policies[0]]
        network.eval()  # peft's per-row adapters need eval mode; no dropout while sampling
        settings = [row[3] for row in rows]
        prompt_ids = [row[2] for row in rows]
        real = len(rows)
        # Group samples share their prompt: each distinct (policy, prompt) is encoded once and
        # its cache copied to the rows that sample from it.
        distinct: dict[tuple[str, tuple[int, ...]], int] = {}
        index = [
            distinct.setdefault((policy, tuple(ids)), len(distinct))
            for policy, ids in zip(policies, prompt_ids)
        ]
        unique_policies = [policy for policy, _ in distinct]
        if batch_invariant:
            # Filler rows (copies of a real row of the same policy, finished from the start)
            # give every policy's decoding step enough rows for the kernels to sum each row
            # the same way whatever the batch (peft runs each adapter's rows as a sub-batch).
            fill = [
                policies.index(policy)
                for policy in dict.fromkeys(policies)
                for _ in range(BATCH_INVARIANT_ROWS - policies.count(policy))
            ]
            index = index + [index[row] for row in fill]
            policies = policies + [policies[row] for row in fill]
            settings = settings + [settings[row] for row in fill]
            if isinstance(generator, list):
                generator = list(generator) + [None] * len(fill)
        size = len(index)
        input_ids, attention = _left_pad([list(ids) for _, ids in distinct], self._pad_id, device)
        positions = (attention.cumsum(-1) - 1).clamp(min=0)
        from transformers import DynamicCache

        cache = DynamicCache()
        extra: dict[str, Any] = {self._cache_argument: cache, "use_cache": True}
        if self.adapter == "lora":
            extra.update(self._route(unique_policies))
        temperature = torch.tensor(
            [max(s.temperature, 1e-6) for s in settings], device=device
        ).unsqueeze(1)
        top_p = torch.tensor([s.top_p for s in settings], device=device).unsqueeze(1)
        greedy = torch.tensor([s.greedy for s in settings], device=device)
        limits = [s.max_new_tokens for s in settings]
        longest = max(limits[:real])
        responses: list[list[int]] = [[] for _ in range(size)]
        logprobs: list[list[float]] = [[] for _ in range(size)]
        finish = ["length"] * size
        done = [row >= real for row in range(size)]  # filler rows never sample
        if batch_invariant:
            # Each prompt alone: a threaded matrix kernel may sum a row of a long batch (its
            # last rows, in another thread's share) in another order than the same row alone.
            first_logits, cache = self._prefill_each(network, list(distinct), unique_policies)
            extra[self._cache_argument] = cache
        else:
            output = network(
                input_ids=input_ids,
                attention_mask=attention,
                position_ids=positions,
                logits_to_keep=1,
                **extra,
            )
            first_logits = output.logits[:, -1, :]
        group = _group_size(index, len(distinct))
        if not batch_invariant and group > 1:
            self._keep_prefills(list(distinct), first_logits, cache, attention)
        rows_of = torch.tensor(index, device=device)
        last_logits = first_logits.index_select(0, rows_of)
        prompt_attention = attention
        attention, positions = (
            attention.index_select(0, rows_of),
            positions.index_select(0, rows_of),
        )
        decoding: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        if not batch_invariant and group > 1 and _can_share_prefix(network, cache):
            # A prompt's G rows read one copy of its keys and values at every step.
            _share_prefix(cache, prompt_attention, group, longest)
            decoding = _shared_prefix_attention(network, cache)
        else:
            if len(distinct) != size:
                cache.batch_select_indices(rows_of)
            _reserve_cache(cache, longest)
        if self.adapter == "lora":
            extra.update(self._route(policies))
        with decoding:
            for step in range(longest):
                logits = (output.logits[:, -1, :] if step else last_logits).float()
                log_probs = torch.log_softmax(logits, dim=-1)
                if isinstance(generator, list):  # a finished row draws no more from its generator
                    row_generators = [None if done[r] else generator[r] for r in range(size)]
                    draw = _sample_tokens_in_vocab_order if batch_invariant else _sample_tokens
                    tokens = draw(logits, temperature, top_p, greedy, row_generators)
                else:
                    tokens = _sample_tokens(logits, temperature, top_p, greedy, generator)
                chosen = log_probs.gather(1, tokens.unsqueeze(1)).squeeze(1)
                token_list = tokens.tolist()
                chosen_list = chosen.tolist()
                for row in range(size):
                    if done[row]:
                        continue
                    token = token_list[row]
                    responses[row].append(token)
                    logprobs[row].append(chosen_list[row])
                    if token in self._eos_ids:
                        done[row], finish[row] = True, "eos"
                    elif settings[row].stop and _contains_stop(
                        self._decode(responses[row]), settings[row].stop
                    ):
                        done[row], finish[row] = True, "stop"
                    elif step + 1 >= limits[row]:
                        done[row] = True
                if all(done):
                    break
                next_ids = torch.tensor(
                    [self._pad_id if done[r] else token_list[r] for r in range(size)], device=device
                ).unsqueeze(1)
                attention = torch.cat([attention, torch.ones_like(next_ids)], dim=1)
                positions = positions[:, -1:] + 1
                output = network(  # the cache object in `extra` was filled in place
                    input_ids=next_ids, attention_mask=attention, position_ids=positions, **extra
                )
        generations = []
        for row in range(real):
            ids = responses[row]
            text_ids = ids[:-1] if finish[row] == "eos" else ids
            text = self._decode(text_ids)
            if finish[row] == "stop":
                text = _cut_at_stop(text, settings[row].stop)
            generations.append(
                Generation(
                    agent=agents[row],
                    text=text,
                    prompt_ids=list(prompt_ids[row]),
                    response_ids=list(ids),
                    logprobs=logprobs[row],
                    finish_reason=finish[row],
                )
            )
        return generations

    def _keep_prefills(
        self,
        prompts: list[tuple[str, tuple[int, ...]]],
        logits: torch.Tensor,
        cache: Any,
        attention: torch.Tensor,
    ) -> None:
        """Keep each distinct (policy, prompt)'s prefill for :meth:`accumulate_policy_gradient`
        (see :attr:`reuse_prefills`); drop kept prefills whose weights have changed since."""
        if not (self.reuse_prefills and self.checkpoint_prompts) or not hasattr(cache, "layers"):
            return
        versions = {policy: self._weights_version(policy) for policy, _ in prompts}
        self._prefills = {
            key: kept
            for key, kept in self._prefills.items()
            if kept.version == self._weights_version(key[0])
        }
        if any(not _dropout_free(self.networks[policy]) for policy in versions):
            return
        layers = [t for pair in _cache_tensors(cache) for t in pair]
        for row, (policy, ids) in enumerate(prompts):
            start = attention.shape[1] - len(ids)  # left padding
            self._prefills[(policy, ids)] = _Prefill(
                version=versions[policy],
                logits=logits[row : row + 1].detach(),
                layers=tuple(t[row : row + 1, :, start:, :].detach().contiguous() for t in layers),
            )
        while len(self._prefills) > MAX_KEPT_PREFILLS:
            self._prefills.pop(next(iter(self._prefills)))

    def _weights_version(self, policy: str) -> tuple[int, ...]:
        """Changes whenever a weight ``policy``'s outputs depend on is written in place (an
        optimizer step, a state load): torch counts each tensor's in-place writes."""
        if policy == BASE_POLICY:
            return ()
        if self.adapter == "full":
            return tuple(p._version for p in self.networks[policy].parameters())
        return tuple(p._version for p in self._adapter_parameters(policy))

    def _take_prefill(self, policy: str, ids: Sequence[int]) -> _Prefill | None:
        """The kept prefill of ``ids`` under ``policy``'s current weights, if any (removed)."""
        kept = self._prefills.pop((policy, tuple(ids)), None)
        if kept is None or kept.version != self._weights_version(policy):
            return None
        return kept

    def _prefill_each(
        self, network: Any, prompts: list[tuple[str, tuple[int, ...]]], policies: list[str]
    ) -> tuple[torch.Tensor, Any]:
        """Encode each prompt alone; return the last positions' logits and one left-padded
        cache for all of them (padding keys are zeros, masked by the attention mask)."""
        from transformers import DynamicCache

        device = self.device
        longest = max(len(ids) for _, ids in prompts)
        layers: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = []
        logits = []
        for (_, ids), policy in zip(prompts, policies):
            own = DynamicCache()
            tokens = torch.tensor([list(ids)], dtype=torch.long, device=device)
            options: dict[str, Any] = {self._cache_argument: own, "use_cache": True}
            if self.adapter == "lora":
                options.update(self._route([policy]))
            output = network(
                input_ids=tokens,
                attention_mask=torch.ones_like(tokens),
                position_ids=torch.arange(len(ids), device=device).unsqueeze(0),
                logits_to_keep=1,
                **options,
            )
            logits.append(output.logits[:, -1, :])
            for layer, (keys, values) in enumerate(_cache_tensors(own)):
                if layer == len(layers):
                    layers.append(([], []))
                pad = (0, 0, longest - keys.shape[2], 0)
                layers[layer][0].append(torch.nn.functional.pad(keys, pad))
                layers[layer][1].append(torch.nn.functional.pad(values, pad))
        cache = DynamicCache()
        for layer, (keys, values) in enumerate(layers):
            cache.update(torch.cat(keys), torch.cat(values), layer)
        return torch.cat(logits), cache

    def _route(self, names: Sequence[str]) -> dict[str, Any]:
        """The forward call's arguments that run batch row i with adapter ``names[i]``."""
        return self._adapter_rows.route(names, self.device)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)

    # -- training ---------------------------------------------------------------------

    def sequence_logprobs(
        self,
        agent: str,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Sum of each response's token log-probs under ``agent``'s policy, with gradients.

        Rows that share a prompt (a group's samples) share its forward pass: the prompt is
        encoded once and the responses continue from its cache, which is exact (a causal
        model's prompt states do not depend on what follows). Logits are computed only at
        the positions that score a response token.

        Returns a float32 tensor of shape ``[len(prompt_ids)]`` on the model's device.
        """
        if len(prompt_ids) != len(response_ids):
            raise LLMConfigError("prompt_ids and response_ids must have the same length")
        if not prompt_ids:
            return torch.zeros(0, device=self.device)
        network = self._train_network(agent)
        return self._response_logprobs(network, prompt_ids, response_ids)

    def accumulate_policy_gradient(
        self,
        agent: str,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
        coefficients: Sequence[float] | torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Add the gradient of ``sum_i coefficients[i] * logprob_i`` to the parameters' grads.

        The same gradient as ``(coefficients * sequence_logprobs(...)).sum().backward()``,
        computed one prompt group at a time (its prompt encoded once, then its responses),
        so only one group's activations are alive at any moment.

        Returns ``(loss, logprobs)``: the loss value and each row's summed log-prob, detached.
        """
        if len(prompt_ids) != len(response_ids) or len(prompt_ids) != len(coefficients):
            raise LLMConfigError("prompt_ids, response_ids and coefficients must match in length")
        coefficients = torch.as_tensor(coefficients, dtype=torch.float32, device=self.device)
        logprobs = torch.zeros(len(prompt_ids), device=self.device)
        if not prompt_ids:
            return torch.zeros((), device=self.device), logprobs
        network = self._train_network(agent)
        groups: dict[tuple[int, ...], list[int]] = {}
        for row, prompt in enumerate(prompt_ids):
            groups.setdefault(tuple(prompt), []).append(row)
        loss = torch.zeros((), device=self.device)
        for rows in groups.values():
            index = torch.tensor(rows, device=self.device)
            responses = [response_ids[r] for r in rows]
            if not self.checkpoint_prompts:
                values = self._response_logprobs(network, [prompt_ids[r] for r in rows], responses)
                group_loss = (coefficients.index_select(0, index) * values).sum()
                if group_loss.requires_grad:
                    group_loss.backward()
            else:
                # The prompt once (checkpointed), then the responses a few rows at a time,
                # each part's backward pass run before the next part's forward pass: only
                # one part's activations are alive at once. The parts' gradients on the
                # prompt's keys and values are summed and sent through the prompt last.
                prompt = prompt_ids[rows[0]]
                encoded = self._encode_prompts(
                    network,
                    [prompt],
                    leaves=True,
                    prefill=self._take_prefill(self.policy_name(agent), prompt),
                )
                parts = []
                step = max(1, self.response_rows)
                for first in range(0, len(rows), step):
                    part = responses[first : first + step]
                    part_values = self._score_responses(network, encoded, [0] * len(part), part)
                    part_loss = (
                        coefficients.index_select(0, index[first : first + step]) * part_values
                    ).sum()
                    if part_loss.requires_grad:
                        part_loss.backward()
                    parts.append(part_values.detach())
                self._backward_prompts(encoded)
                values = torch.cat(parts)
            loss = loss + (coefficients.index_select(0, index) * values).sum().detach()
            logprobs[index] = values.detach()
        return loss, logprobs

    def _train_network(self, agent: str) -> Any:
        policy = self.policy_name(agent)
        network = self.networks[policy]
        if self.adapter == "lora":
            self.peft_model.set_adapter(policy)
            for name in self.policies:  # keep every adapter trainable (set_adapter freezes)
                for parameter in self._adapter_parameters(name):
                    parameter.requires_grad_(True)
        network.train()  # dropout (LoRA's or the model's), when configured, acts in training
        return network

    def _response_logprobs(
        self,
        network: Any,
        prompt_ids: Sequence[Sequence[int]],
        response_ids: Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Summed response log-probs; each distinct prompt is encoded once."""
        encoded = self._encode_prompts(network, prompt_ids)
        return self._score_responses(network, encoded, list(encoded.rows), response_ids)

    def _encode_prompts(
        self,
        network: Any,
        prompt_ids: Sequence[Sequence[int]],
        *,
        leaves: bool = False,
        prefill: _Prefill | None = None,
    ) -> _EncodedPrompts:
        """Encode each distinct prompt once: the last position's logits and every layer's
        keys and values, for :meth:`_score_responses` to continue from.

        With gradients on and :attr:`checkpoint_prompts`, the pass keeps none of its
        activations: the backward pass runs it again once the responses' part is done, so
        the prompt's and the responses' activations are never alive together (exact: the
        same kernels recompute the same numbers). With ``leaves`` the returned tensors are
        detached copies that collect the responses' gradients; :meth:`_backward_prompts`
        then sends those through the prompt pass in one go. ``prefill`` (one prompt, from
        group sampling under the same weights) stands for the checkpointed pass's forward.
        """

        device = self.device
        distinct: dict[tuple[int, ...], int] = {}
        index = [distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids]
        if any(not prompt for prompt in distinct):
            raise LLMConfigError("every prompt needs at least one token")
        prompt_batch, prompt_mask = _left_pad([list(p) for p in distinct], self._pad_id, device)
        prompt_positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)

        if self.checkpoint_prompts and torch.is_grad_enabled():
            if prefill is not None and len(distinct) != 1:
                raise LLMConfigError("a kept prefill stands for one prompt")
            outputs = self._encode_in_chunks(
                network, prompt_batch, prompt_mask, prompt_positions, prefill
            )
        else:
            length = prompt_batch.shape[1]
            outputs = self._prompt_pass(
                network, prompt_batch, prompt_mask, prompt_positions, 0, length
            )
        tensors = tuple(outputs)
        if leaves:
            tensors = tuple(t.detach().requires_grad_(t.requires_grad) for t in outputs)
        return _EncodedPrompts(
            outputs=tuple(outputs),
            tensors=tensors,
            rows=tuple(index),
            mask=prompt_mask,
            positions=prompt_positions,
        )

    def _encode_in_chunks(
        self,
        network: Any,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        prefill: _Prefill | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """The prompt pass of :meth:`_encode_prompts`, checkpointed :attr:`prompt_chunk`
        positions at a time: each chunk attends to the keys and values of the chunks before
        it, and its backward pass recomputes that chunk alone, so at most one chunk's
        activations are alive (causal attention makes this the same computation; the
        kernels' shapes differ, so the numbers may differ in the last bits). With a
        ``prefill`` (one prompt) the forward results are its slices and only the backward
        pass runs the chunks."""
        from torch.utils.checkpoint import checkpoint

        length = tokens.shape[1]
        size = max(1, self.prompt_chunk)
        anchor = torch.zeros((), device=tokens.device, requires_grad=True)

        def run(start: int, end: int, *before: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return self._prompt_pass(network, tokens, mask, positions, start, end, before)

        chunks: list[tuple[torch.Tensor, ...]] = []
        before: tuple[torch.Tensor, ...] = ()
        for start in range(0, length, size):
            end = min(length, start + size)
            if prefill is None:
                result = checkpoint(run, start, end, *before, use_reentrant=False)
            else:
                known = (
                    prefill.logits if end == length else torch.zeros_like(prefill.logits),
                    *(t[:, :, start:end, :] for t in prefill.layers),
                )
                result = _KnownPass.apply(
                    functools.partial(run, start, end), known, anchor, *before
                )
            chunks.append(tuple(result))
            layers = [chunk[1:] for chunk in chunks]
            before = tuple(
                layers[0][i] if len(layers) == 1 else torch.cat([c[i] for c in layers], dim=2)
                for i in range(len(layers[0]))
            )
        return (chunks[-1][0], *before)

    def _prompt_pass(
        self,
        network: Any,
        tokens: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        start: int,
        end: int,
        before: Sequence[torch.Tensor] = (),
    ) -> tuple[torch.Tensor, ...]:
        """Prompt positions ``start:end`` after the keys and values ``before`` (of positions
        ``:start``): the last position's logits, then those positions' keys and values."""
        own = _cache_of(before)
        output = network(
            input_ids=tokens[:, start:end],
            attention_mask=mask[:, :end],
            position_ids=positions[:, start:end],
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_argument: own},
        )
        layers = [t[:, :, start:end, :] for pair in _cache_tensors(own) for t in pair]
        return (output.logits[:, -1, :], *layers)

    @staticmethod
    def _backward_prompts(encoded: _EncodedPrompts) -> None:
        """Send the gradients that the responses left on ``encoded``'s leaf tensors through
        the prompt pass (recomputed there when checkpointed)."""
        _backward_through(encoded.outputs, [leaf.grad for leaf in encoded.tensors])

    def _score_responses(
        self,
        network: Any,
        encoded: _EncodedPrompts,
        rows: Sequence[int],
        response_ids: Sequence[Sequence[int]],
    ) -> torch.Tensor:
        """Summed log-probs of ``response_ids``, the i-th continuing encoded prompt
        ``rows[i]``, from the prompts' cache."""
        device = self.device
        cache = _cache_of(encoded.tensors[1:])
        rows_of = torch.tensor(list(rows), device=device)
        # The prompt's last position scores each response's first token.
        first_logits = encoded.tensors[0].index_select(0, rows_of).float()
        longest = max((len(r) for r in response_ids), default=0)
        total = torch.zeros(len(response_ids), device=device)
        if longest == 0:
            return total
        responses = torch.full((len(response_ids), longest), self._pad_id, device=device)
        response_mask = torch.zeros((len(response_ids), longest), dtype=torch.long, device=device)
        for row, response in enumerate(response_ids):
            if response:
                responses[row, : len(response)] = torch.tensor(list(response), device=device)
                response_mask[row, : len(response)] = 1
        first = _token_logprobs(first_logits.unsqueeze(1), responses[:, :1]).squeeze(1)
        total = total + first * response_mask[:, 0]
        if longest == 1:
            return total
        if len(encoded.mask) != len(rows) or list(rows) != list(range(len(rows))):
            cache.batch_select_indices(rows_of)
        attention = torch.cat([encoded.mask.index_select(0, rows_of), response_mask], dim=1)
        start = encoded.positions.index_select(0, rows_of)[:, -1:] + 1
        positions = start + torch.arange(longest - 1, device=device).unsqueeze(0)
        # Response tokens 0..n-2 are the inputs that score tokens 1..n-1.
        output = network(
            input_ids=responses[:, :-1],
            attention_mask=attention[:, :-1],
            position_ids=positions,
            use_cache=True,
            **{self._cache_argument: cache},
        )
        rest = _token_logprobs(output.logits.float(), responses[:, 1:])
        return total + (rest * response_mask[:, 1:]).sum(dim=1)


@dataclass(frozen=True)
class _EncodedPrompts:
    """Distinct prompts encoded once (see :meth:`MultiAgentLM._encode_prompts`)."""

    outputs: tuple[torch.Tensor, ...]
    """What the prompt pass returned: last-position logits, then keys and values per layer."""
    tensors: tuple[torch.Tensor, ...]
    """The same, or detached leaves of them that collect the responses' gradients."""
    rows: tuple[int, ...]
    """For each row asked for, the index of its distinct prompt."""
    mask: torch.Tensor
    positions: torch.Tensor


@dataclass(frozen=True)
class _Prefill:
    """A prompt's prefill kept from group sampling (see ``MultiAgentLM.reuse_prefills``)."""

    version: tuple[int, ...]
    """The policy's weights' in-place write counts when it was computed."""
    logits: torch.Tensor
    """The last position's logits, ``[1, vocabulary]``."""
    layers: tuple[torch.Tensor, ...]
    """Keys and values per layer, ``[1, key heads, prompt length, head size]`` each."""


class _KnownPass(torch.autograd.Function):
    """A prompt chunk's pass whose forward result is already known (``known``, computed
    under the same weights): the forward returns it, the backward recomputes the chunk
    with gradients from its inputs and sends the incoming gradients through it, as a
    checkpoint's backward does. ``anchor`` (a scalar that requires grad) keeps the first
    chunk, which has no tensor inputs, in the graph."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, run: Any, known: tuple[torch.Tensor, ...], anchor: torch.Tensor, *before: Any
    ) -> tuple[torch.Tensor, ...]:
        ctx.run = run
        ctx.save_for_backward(*before)
        return tuple(t.detach() for t in known)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        before = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.enable_grad():
            outputs = ctx.run(*before)
        _backward_through(outputs, grads)
        return (None, None, None, *(t.grad if t.requires_grad else None for t in before))


def _backward_through(
    outputs: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]
) -> None:
    """Backpropagate ``grads`` from ``outputs``, skipping outputs without a gradient."""
    pairs = [(o, g) for o, g in zip(outputs, grads) if g is not None and o.requires_grad]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], grad_tensors=[g for _, g in pairs])


MAX_KEPT_PREFILLS = 64
"""Most prefills a model keeps for reuse (the oldest go first)."""


def _dropout_free(network: Any) -> bool:
    """No dropout acts in ``network`` in training mode (so its training-mode pass computes
    what its evaluation-mode pass did)."""
    config = getattr(network, "config", None)
    if float(getattr(config, "attention_dropout", 0.0) or 0.0) != 0.0:
        return False
    return all(
        module.p == 0
        for module in network.modules()
        if isinstance(module, torch.nn.modules.dropout._DropoutNd)
    )


def _cache_of(layers: Sequence[torch.Tensor]) -> Any:
    """A transformers cache holding ``layers``: keys and values, layer after layer."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer in range(0, len(layers), 2):
        cache.update(layers[layer], layers[layer + 1], layer // 2)
    return cache


_RESERVED_LAYER: Any = None


def _reserved_layer_class() -> Any:
    """A transformers cache layer with room reserved for the tokens still to come (``None``
    where this transformers has no cache layers): decoding writes each step's keys and
    values into that room in place, where transformers' dynamic layer concatenates the
    whole cache anew at every step (most of the sampling time on a CPU: every layer's
    cache copied once per generated token). The layer's keys and values are views of the
    filled part, the same numbers as the concatenated tensors."""
    global _RESERVED_LAYER
    if _RESERVED_LAYER is not None:
        return _RESERVED_LAYER or None
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:  # pragma: no cover - transformers without cache layers
        _RESERVED_LAYER = False
        return None

    class ReservedLayer(DynamicLayer):  # type: ignore[misc, valid-type]
        _room_keys: torch.Tensor | None = None
        _room_values: torch.Tensor | None = None
        _length = 0

        @classmethod
        def holding(cls, keys: torch.Tensor, values: torch.Tensor, room: int) -> Any:
            layer = cls()
            layer.lazy_initialization(keys, values)
            length = keys.shape[-2]
            layer._room_keys = keys.new_empty((*keys.shape[:-2], length + room, keys.shape[-1]))
            layer._room_values = values.new_empty(
                (*values.shape[:-2], length + room, values.shape[-1])
            )
            layer._room_keys[..., :length, :].copy_(keys)
            layer._room_values[..., :length, :].copy_(values)
            layer._set_length(length)
            return layer

        def _set_length(self, length: int) -> None:
            assert self._room_keys is not None and self._room_values is not None
            self._length = length
            self.keys = self._room_keys[..., :length, :]
            self.values = self._room_values[..., :length, :]

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            room = self._room_keys
            end = self._length + key_states.shape[-2]
            if (
                room is None
                or self._room_values is None
                or end > room.shape[-2]
                or key_states.shape[:-2] != room.shape[:-2]
            ):
                self._room_keys = self._room_values = None  # out of room: concatenate
                return super().update(key_states, value_states, *args, **kwargs)
            room[..., self._length : end, :].copy_(key_states)
            self._room_values[..., self._length : end, :].copy_(value_states)
            self._set_length(end)
            return self.keys, self.values

        def _detach_room(self) -> None:
            self._room_keys = self._room_values = None

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._detach_room()
            super().batch_select_indices(indices)

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._detach_room()
            super().batch_repeat_interleave(repeats)

        def crop(self, tokens_to_remove: int) -> None:
            self._detach_room()
            super().crop(tokens_to_remove)

        def reset(self) -> None:
            self._detach_room()
            super().reset()

    _RESERVED_LAYER = ReservedLayer
    return ReservedLayer


def _reserve_cache(cache: Any, tokens: int) -> None:
    """Give every filled layer of a transformers cache room for ``tokens`` more positions
    (see :func:`_reserved_layer_class`); a cache without layers is left as it is."""
    layers = getattr(cache, "layers", None)
    reserved = _reserved_layer_class() if layers and tokens > 0 else None
    if reserved is None:
        return
    from transformers.cache_utils import DynamicLayer

    for index, layer in enumerate(layers):
        if type(layer) is DynamicLayer and layer.is_initialized and layer.keys.dim() == 4:
            layers[index] = reserved.holding(layer.keys, layer.values, tokens)


def _cache_tensors(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each layer's (keys, values) of a transformers DynamicCache (old and new layouts)."""
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Log-softmax of ``logits`` at ``targets`` without keeping a normalised copy of the logits."""
    chosen = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return chosen - torch.logsumexp(logits, dim=-1)


def _sampling_for(
    sampling: SamplingConfig | Mapping[str, SamplingConfig] | None, agent: str
) -> SamplingConfig:
    if sampling is None:
        return SamplingConfig()
    if isinstance(sampling, SamplingConfig):
        return sampling
    value = sampling.get(agent, SamplingConfig())
    if not isinstance(value, SamplingConfig):
        raise LLMConfigError(f"sampling[{agent!r}] must be a SamplingConfig, got {value!r}")
    return value


def _eos_token_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(int(i) for i in configured)
    return frozenset(ids)


def _left_pad(
    sequences: Sequence[Sequence[int]], pad_id: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    if any(len(s) == 0 for s in sequences):
        raise LLMConfigError("cannot run the model on an empty token sequence")
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        ids[row, length - len(sequence) :] = torch.tensor(list(sequence), dtype=torch.long)
        mask[row, length - len(sequence) :] = 1
    return ids.to(device), mask.to(device)


NUCLEUS_CANDIDATES = 512
"""Tokens :func:`_sample_tokens` looks at first for a row's top-p nucleus (all of them when
the nucleus is wider)."""


def _sample_tokens(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    greedy: torch.Tensor,
    generator: torch.Generator | Sequence[torch.Generator | None] | None,
) -> torch.Tensor:
    """Temperature + nucleus sampling with per-row settings; greedy rows take the argmax.

    ``generator`` may be a list with one generator per row: each row then draws from its own
    (a ``None`` entry, a finished row, draws nothing and its token is ignored).
    """
    probs = torch.softmax(logits / temperature, dim=-1)
    # The nucleus nearly always lies among the most likely few hundred tokens: take those
    # (sorted) instead of sorting the whole vocabulary, and sort it all only when a row's
    # nucleus reaches past them. The draw is from the same distribution either way.
    sorted_probs, order = probs.topk(min(NUCLEUS_CANDIDATES, probs.shape[-1]), dim=-1)
    if bool((sorted_probs.sum(-1, keepdim=True) < top_p).any()):
        sorted_probs, order = probs.sort(dim=-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly above each token
    sorted_probs = sorted_probs.masked_fill(before >= top_p, 0.0)
    if isinstance(generator, list):
        sampled_rank = torch.cat(
            [
                torch.multinomial(sorted_probs[row : row + 1], 1, generator=own)
                if own is not None
                else torch.zeros((1, 1), dtype=torch.long, device=logits.device)
                for row, own in enumerate(generator)
            ]
        )
    else:
        sampled_rank = torch.multinomial(sorted_probs, 1, generator=generator)
    sampled = order.gather(1, sampled_rank).squeeze(1)
    return torch.where(greedy, logits.argmax(dim=-1), sampled)


def _sample_tokens_in_vocab_order(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_p: torch.Tensor,
    greedy: torch.Tensor,
    generators: Sequence[torch.Generator | None],
) -> torch.Tensor:
    """Like :func:`_sample_tokens` with one generator per row, but each row draws over the
    vocabulary in token order: the nucleus is found by sorting, the draw is not. A token's
    chance of being drawn then moves with its probability, and a change in the last bit
    moves the draw only where the random number falls on that change; sorted order would
    let it swap two nearly tied tokens' places and with them their draws.
    """
    probs = torch.softmax(logits / temperature, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True, stable=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass strictly above each token
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(1, order, before < top_p)
    nucleus = probs.masked_fill(~keep, 0.0)
    sampled = torch.cat(
        [
            torch.multinomial(nucleus[row : row + 1], 1, generator=own)
            if own is not None
            else torch.zeros((1, 1), dtype=torch.long, device=logits.device)
            for row, own in enumerate(generators)
        ]
    ).squeeze(1)
    return torch.where(greedy, logits.argmax(dim=-1), sampled)


def request_generator(seed: int, agent: str, request: int, device: Any = "cpu") -> torch.Generator:
    """The generator of an agent's ``request``-th request since its episode began.

    Seeded from (the agent's seed, its name, the request's number) alone, so what a request
    samples does not depend on the other requests of its batch, nor on how many draws the
    agent's earlier answers took. (Episodes reset each agent's seed from the episode seed.)
    """
    digest = hashlib.sha256(f"{int(seed)}:{agent}:{int(request)}".encode()).digest()
    generator = torch.Generator(device=device)
    generator.manual_seed(int.from_bytes(digest[:8], "big") & (2**63 - 1))
    return generator


_ROW_ATTENTION_READY: bool | None = None
_ROW_ATTENTION_GUARD = threading.Lock()


def _register_row_attention() -> bool:
    """Register :func:`_row_attention_forward` with transformers once; False where this
    transformers cannot take a custom attention (then only the filler rows apply)."""
    global _ROW_ATTENTION_READY
    with _ROW_ATTENTION_GUARD:
        if _ROW_ATTENTION_READY is None:
            try:
                from transformers import AttentionInterface
                from transformers.masking_utils import (
                    ALL_MASK_ATTENTION_FUNCTIONS,
                    AttentionMaskInterface,
                )

                AttentionInterface.register(ROW_ATTENTION, _row_attention_forward)
                AttentionMaskInterface.register(
                    ROW_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["eager"]
                )
                _ROW_ATTENTION_READY = True
            except (ImportError, AttributeError, KeyError):  # pragma: no cover - old transformers
                _ROW_ATTENTION_READY = False
        return _ROW_ATTENTION_READY


@contextlib.contextmanager
def _row_attention(network: Any) -> Iterator[None]:
    """Run ``network``'s attention with :func:`_row_attention_forward` inside the block."""
    if not _register_row_attention():
        yield
        return
    with _attention_implementation(network, ROW_ATTENTION):
        yield


@contextlib.contextmanager
def _attention_implementation(network: Any, name: str) -> Iterator[None]:
    """Run ``network``'s attention with the implementation registered as ``name`` inside the
    block. The model's configs are switched and switched back; callers hold the model's lock.
    """
    configs = {
        id(config): config
        for module in network.modules()
        if (config := getattr(module, "config", None)) is not None
        and hasattr(config, "_attn_implementation")
    }
    before = {key: config._attn_implementation for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation = name
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation = before[key]


def _row_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Eager attention, one batch row at a time, over that row's own keys only.

    Rows are left-padded: the keys a row's last query cannot see are its padding, and are
    cut off, as are the queries at padding positions (their output is zero; no real token
    attends to them). Each row then runs the same products and sums, of the same shapes,
    as it would alone, whatever the padding its batch needs.
    """
    import sys

    eager = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if eager is None:
        from transformers.models.llama.modeling_llama import eager_attention_forward as eager
    batch, heads, queries, _head_dim = query.shape
    keys = key.shape[2]
    output = query.new_zeros((batch, queries, heads, value.shape[-1]))
    for row in range(batch):
        start = 0
        mask = None
        if attention_mask is not None:
            mask = attention_mask[row : row + 1, :, :, :keys]
            if mask.dtype == torch.bool:
                visible = mask[0, 0, -1]
                mask = torch.zeros(mask.shape, dtype=query.dtype, device=query.device).masked_fill(
                    ~mask, torch.finfo(query.dtype).min
                )
            else:
                visible = mask[0, 0, -1] > torch.finfo(mask.dtype).min / 2
            start = int(visible.to(torch.int8).argmax()) if bool(visible.any()) else 0
        first_query = max(0, start - (keys - queries))
        if mask is not None:
            mask = mask[:, :, first_query:, start:]
        attended, _ = eager(
            module,
            query[row : row + 1, :, first_query:],
            key[row : row + 1, :, start:],
            value[row : row + 1, :, start:],
            mask,
            scaling=scaling,
            dropout=dropout,
        )
        output[row, first_query:] = attended[0]
    return output, None


_SHARED_PREFIX_CACHE: contextvars.ContextVar[Any] = contextvars.ContextVar(
    "mallm_shared_prefix_cache", default=None
)
_SHARED_PREFIX_LAYER: Any = None


def _group_size(index: Sequence[int], distinct: int) -> int:
    """G when the rows are G consecutive rows per distinct prompt, in the prompts' order
    (``index[row]`` is a row's prompt), else 0."""
    if distinct < 1 or len(index) % distinct:
        return 0
    group = len(index) // distinct
    return group if all(prompt == row // group for row, prompt in enumerate(index)) else 0


def _can_share_prefix(network: Any, cache: Any) -> bool:
    """Whether ``network``'s group sampling can decode over shared prefixes: a model type of
    :data:`SHARED_PREFIX_MODELS` and a cache of plain full-attention layers."""
    config = getattr(network, "config", None)
    if getattr(config, "model_type", None) not in SHARED_PREFIX_MODELS:
        return False
    if _shared_prefix_layer_class() is None:
        return False
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(
        type(layer) is DynamicLayer and layer.is_initialized and layer.keys.dim() == 4
        for layer in layers
    )


def _shared_prefix_layer_class() -> Any:
    """A cache layer for group sampling (``None`` where transformers has no cache layers or
    cannot take a custom attention): it holds each distinct prompt's keys and values once
    (``prefix_keys``, ``prefix_values``: distinct prompts x key heads x prompt length x head
    size, with ``prefix_bias``, minus infinity at a prompt's left padding) and, as its own
    keys and values, each row's generated tokens only, in reserved room. The attention
    registered as :data:`SHARED_PREFIX_ATTENTION` reads both. Every row of a group would
    otherwise carry (and read, at every step) a copy of its prompt's cache, and the grouped
    query heads a further copy per query head."""
    global _SHARED_PREFIX_LAYER
    if _SHARED_PREFIX_LAYER is not None:
        return _SHARED_PREFIX_LAYER or None
    reserved = _reserved_layer_class()
    if reserved is None or not _register_shared_prefix_attention():
        _SHARED_PREFIX_LAYER = False
        return None

    class SharedPrefixLayer(reserved):  # type: ignore[misc, valid-type]
        prefix_keys: torch.Tensor
        prefix_values: torch.Tensor
        prefix_bias: torch.Tensor
        group = 1

        def get_seq_length(self) -> int:
            return int(self.prefix_keys.shape[-2]) + self._length

        def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
            return self.get_seq_length() + query_length, 0

        def update(
            self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
        ) -> tuple[torch.Tensor, torch.Tensor]:
            room = self._room_keys
            if room is None or self._length + key_states.shape[-2] > room.shape[-2]:
                raise LLMError("the shared-prefix cache ran out of its reserved room")
            return super().update(key_states, value_states, *args, **kwargs)

        def _detach_room(self) -> None:
            raise LLMError("a shared-prefix cache cannot be reordered or cropped")

    _SHARED_PREFIX_LAYER = SharedPrefixLayer
    return SharedPrefixLayer


def _share_prefix(cache: Any, prompt_attention: torch.Tensor, group: int, room: int) -> None:
    """Turn every layer of ``cache`` (the distinct prompts' keys and values, left-padded as
    ``prompt_attention`` says) into a :func:`_shared_prefix_layer_class` layer for ``group``
    rows per prompt with ``room`` positions for the generated tokens."""
    layer_class = _shared_prefix_layer_class()
    dtype = cache.layers[0].keys.dtype
    bias = (  # one for every layer: the padding is the prompts'
        torch.zeros(prompt_attention.shape, dtype=dtype, device=prompt_attention.device)
        .masked_fill(prompt_attention == 0, torch.finfo(dtype).min)
        .view(prompt_attention.shape[0], 1, 1, -1)
    )
    for index, layer in enumerate(cache.layers):
        keys, values = layer.keys, layer.values
        distinct, heads, _length, size = keys.shape
        empty = keys.new_empty((distinct * group, heads, 0, size))
        shared = layer_class.holding(empty, values.new_empty(empty.shape), room)
        shared.prefix_keys, shared.prefix_values, shared.group = keys, values, group
        shared.prefix_bias = bias
        cache.layers[index] = shared


def _register_shared_prefix_attention() -> bool:
    """Register :func:`_shared_prefix_attention_forward` with transformers once (no mask
    function: transformers then builds no mask, which this attention does not read)."""
    try:
        from transformers import AttentionInterface
    except ImportError:  # pragma: no cover - old transformers
        return False
    AttentionInterface.register(SHARED_PREFIX_ATTENTION, _shared_prefix_attention_forward)
    return True


@contextlib.contextmanager
def _shared_prefix_attention(network: Any, cache: Any) -> Iterator[None]:
    """Decode ``network`` from ``cache`` (made by :func:`_share_prefix`) inside the block."""
    token = _SHARED_PREFIX_CACHE.set(cache)
    try:
        with _attention_implementation(network, SHARED_PREFIX_ATTENTION):
            yield
    finally:
        _SHARED_PREFIX_CACHE.reset(token)


def _shared_prefix_attention_forward(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """Attention of G rows per prompt over their prompt's keys (held once) and their own.

    ``key`` and ``value`` are the rows' generated tokens (the layer's own part); the prompts'
    part is in the layer of the active cache. The softmax runs over both parts together,
    in float32 as transformers' eager attention does; causal within the new tokens.
    """
    cache = _SHARED_PREFIX_CACHE.get()
    if cache is None:
        raise LLMError("shared-prefix attention outside a shared-prefix decoding")
    layer = cache.layers[module.layer_idx]
    prefix_keys, prefix_values, group = layer.prefix_keys, layer.prefix_values, layer.group
    rows, heads, queries, size = query.shape
    distinct, key_heads, prefix_length, _ = prefix_keys.shape
    own_length = key.shape[-2]
    per_key_head = heads // key_heads * queries  # query vectors per row and key head

    def by_prompt(tensor: torch.Tensor) -> torch.Tensor:
        # rows x key heads x n x m -> prompts x key heads x (G n) x m
        n, m = tensor.shape[-2:]
        return (
            tensor.reshape(distinct, group, key_heads, n, m)
            .transpose(1, 2)
            .reshape(distinct, key_heads, group * n, m)
        )

    def by_row(tensor: torch.Tensor) -> torch.Tensor:
        # prompts x key heads x (G n) x m -> rows x key heads x n x m
        m = tensor.shape[-1]
        return (
            tensor.reshape(distinct, key_heads, group, -1, m)
            .transpose(1, 2)
            .reshape(rows, key_heads, -1, m)
        )

    grouped = query.reshape(rows, key_heads, per_key_head, size)
    prefix_scores = torch.matmul(by_prompt(grouped), prefix_keys.transpose(2, 3)) * scaling
    prefix_scores = by_row(prefix_scores + layer.prefix_bias)
    own_scores = torch.matmul(grouped, key.transpose(2, 3)) * scaling
    if queries > 1:  # a new token sees the new tokens up to itself
        seen = torch.arange(own_length - queries, own_length, device=query.device)
        hidden = torch.arange(own_length, device=query.device)[None, :] > seen[:, None]
        hidden = hidden.repeat(heads // key_heads, 1)
        own_scores = own_scores.masked_fill(hidden, torch.finfo(own_scores.dtype).min)
    weights = torch.softmax(
        torch.cat([prefix_scores, own_scores], dim=-1), dim=-1, dtype=torch.float32
    ).to(query.dtype)
    prefix_weights, own_weights = weights.split([prefix_length, own_length], dim=-1)
    attended = torch.matmul(own_weights, value) + by_row(
        torch.matmul(by_prompt(prefix_weights), prefix_values)
    )
    return attended.reshape(rows, heads, queries, size).transpose(1, 2).contiguous(), None


class _AdapterRows:
    """Runs each LoRA adapter on its own rows of a mixed batch, as peft's ``adapter_names``
    does, without peft's per-call costs.

    peft registers a hook on every LoRA layer at every forward call that names adapters, and
    each layer then rebuilds its rows' index lists in Python: per decoding step that is a
    walk over all of the model's modules plus hundreds of small list and tensor
    conversions. Here the rows of each adapter are worked out once per batch (a slice when
    they are contiguous) and the model's LoRA layers run a lean forward while
    :meth:`installed` is open. It is the same computation as peft's: the base layer on all
    rows, then for each adapter ``lora_B(lora_A(dropout(x[rows]))) * scaling`` added to its
    rows, with the same kernels on the same shapes. Where a LoRA layer is anything but plain
    LoRA on a linear layer (another layer type, merged weights, a variant such as DoRA),
    :meth:`route` returns peft's ``adapter_names`` instead and nothing is patched.
    """

    def __init__(self, model: Any) -> None:
        from peft.tuners.lora.layer import Linear as LoraLinear
        from peft.tuners.lora.layer import LoraLayer

        layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
        self.layers = [m for m in layers if type(m) is LoraLinear]
        self._linear_only = bool(layers) and len(self.layers) == len(layers)
        self.fast = False
        self.rows: list[tuple[str, slice | torch.Tensor]] = []

    def route(self, names: Sequence[str], device: Any) -> dict[str, Any]:
        """Route the next forward's batch rows to adapters ``names`` (one per row); returns
        the keyword arguments the forward call needs (none on the lean path)."""
        if not self.fast:
            return {"adapter_names": list(names)}
        groups: dict[str, list[int]] = {}
        for row, name in enumerate(names):
            groups.setdefault(name, []).append(row)
        self.rows = []
        for name, rows in groups.items():
            if name == BASE_POLICY:
                continue
            if rows == list(range(rows[0], rows[-1] + 1)):
                self.rows.append((name, slice(rows[0], rows[-1] + 1)))
            else:
                self.rows.append((name, torch.tensor(rows, device=device)))
        return {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[_AdapterRows]:
        """The lean forward in every LoRA layer inside the block (nothing where not fast)."""
        self.fast = self._linear_only and not any(
            m.merged or m.disable_adapters or m.lora_variant for m in self.layers
        )
        if not self.fast:
            yield self
            return
        try:
            for layer in self.layers:
                layer.forward = functools.partial(self._forward, layer)
            yield self
        finally:
            for layer in self.layers:
                layer.__dict__.pop("forward", None)
            self.rows = []
            self.fast = False  # outside the block, route() hands peft the adapter names

    def _forward(self, layer: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        result = layer.base_layer(x, *args, **kwargs)
        for name, rows in self.rows:
            if name not in layer.lora_A:
                continue
            lora_A, lora_B = layer.lora_A[name], layer.lora_B[name]
            part = x[rows].to(lora_A.weight.dtype)
            output = lora_B(lora_A(layer.lora_dropout[name](part))) * layer.scaling[name]
            if isinstance(rows, slice):
                result[rows] += output.to(result.dtype)
            else:
                result.index_add_(0, rows, output.to(result.dtype))
        return result


def _contains_stop(text: str, stops: Sequence[str]) -> bool:
    return any(stop in text for stop in stops)


def _cut_at_stop(text: str, stops: Sequence[str]) -> str:
    cut = min((text.find(s) for s in stops if s in text), default=len(text))
    return text[:cut]


# --- the Agent ---------------------------------------------------------------------------


@dataclass
class LLMAgent:
    """An LLM policy as an environment agent (the Agent protocol of :mod:`mallm_envs.agents`).

    Args:
        model: a :class:`MultiAgentLM` (the agent uses its policy for ``agent_id``), or a
            model name/path for :func:`load_causal_lm` (a frozen model is loaded).
        agent_id: the agent's name in the environment.
        sampling: how it samples.
        system_prompt: optional system message before every observation.
        seed: seeds the sampler; :meth:`reset` re-seeds it. Each request (each observation
            answered) samples from its own generator, seeded from this seed, the agent's
            name and the request's number since the last reset (:func:`request_generator`),
            and the model runs batch-invariant (``generate``'s ``batch_invariant``): an answer
            is the same whether it is generated alone or in a batch with any other requests.
    """

    model: MultiAgentLM | str | None = None
    agent_id: str = "agent"
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    system_prompt: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.model, MultiAgentLM):
            self.model = MultiAgentLM([self.agent_id], self.model, adapter="none")
        self.lm: MultiAgentLM = self.model
        self.lm.policy_name(self.agent_id)
        self.tokens_used = 0  # generated tokens, for usage reports
        self.reset(self.seed)

    def reset(self, seed: int | None = None) -> None:
        if seed is not None:
            self.seed = int(seed)
        self._requests = 0  # since the last reset: part of each request's seed

    def _next_generator(self) -> torch.Generator:
        generator = request_generator(self.seed, self.agent_id, self._requests, self.lm.device)
        self._requests += 1
        return generator

    def _prompt(self, observation: Mapping[str, Any]) -> str:
        if isinstance(observation, Mapping):
            text = observation.get("text", "")
        else:
            text = observation
        if not isinstance(text, str):
            raise LLMConfigError(f"observation text must be a str, got {type(text).__name__}")
        return self.lm.format_prompt(text, self.system_prompt)

    def act(self, observation: Mapping[str, Any], info: Mapping[str, Any] | None = None) -> str:
        return self.act_batch([observation], [info or {}])[0]

    def act_batch(
        self,
        observations: Sequence[Mapping[str, Any]],
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """Answers to several observations in one batch: the answers of one :meth:`act` call
        after another (each observation is a request with its own generator)."""
        if not observations:
            return []
        with shared_lock(self.lm):  # one model, one thread at a time
            prompts = [self._prompt(observation) for observation in observations]
            result = self.lm.generate(
                {self.agent_id: prompts},
                sampling=self.sampling,
                generator=[self._next_generator() for _ in prompts],
                formatted=True,
                batch_invariant=True,
            )
        generations = [group[0] for group in result[self.agent_id]]
        self.tokens_used += sum(g.num_tokens for g in generations)
        return [g.text for g in generations]

    @property
    def batch_key(self) -> tuple[Any, ...]:
        """Agents on one model with the same sampling settings can be answered in one batch."""
        return ("llm", id(self.lm), self.sampling, self.system_prompt)

    @staticmethod
    def act_group(
        agents: Sequence[LLMAgent],
        observations: Sequence[Mapping[str, Any]],
        infos: Sequence[Mapping[str, Any]] | None = None,
    ) -> list[str]:
        """One observation per agent, answered in one batch: the same texts, draws and token
        counts as each agent's own :meth:`act` (each row samples from its request's own
        generator, and the model runs batch-invariant).
        """
        if not agents:
            return []
        if len({agent.batch_key for agent in agents}) != 1 or len(observations) != len(agents):
            raise LLMConfigError("act_group needs one observation per agent, all of one batch key")
        lm = agents[0].lm
        with shared_lock(lm):
            prompts: dict[str, list[str]] = {}
            slots: list[tuple[str, int]] = []
            for agent, observation in zip(agents, observations):
                column = prompts.setdefault(agent.agent_id, [])
                slots.append((agent.agent_id, len(column)))
                column.append(agent._prompt(observation))
            # generate() takes the generators in prompt order: agent id by agent id.
            by_slot = {slot: agent._next_generator() for slot, agent in zip(slots, agents)}
            generators = [
                by_slot[(name, i)] for name, column in prompts.items() for i in range(len(column))
            ]
            result = lm.generate(
                prompts,
                sampling=agents[0].sampling,
                generator=generators,
                formatted=True,
                batch_invariant=True,
            )
        texts = []
        for agent, (name, index) in zip(agents, slots):
            generation = result[name][index][0]
            agent.tokens_used += generation.num_tokens
            texts.append(generation.text)
        return texts

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "llm",
            "agent_id": self.agent_id,
            "sampling": asdict(self.sampling),
            "system_prompt": self.system_prompt,
            "seed": self.seed,
            **self.lm.describe(),
        }


def load_trained(
    checkpoint: str | os.PathLike[str], agents: Sequence[str], device: str | None = "cpu"
) -> tuple[MultiAgentLM, SamplingConfig]:
    """The policies and sampling settings saved by the trainers (see :func:`load_policy`)."""
    lm, config = load_policy(checkpoint, agents, device)
    return lm, config.sampling()


def load_policy(
    checkpoint: str | os.PathLike[str], agents: Sequence[str], device: str | None = "cpu"
) -> tuple[MultiAgentLM, Any]:
    """The policies and their :class:`~mallm_envs.agents.checkpoint.PolicyConfig` (model,
    sampling, system prompt) saved by ``baselines/magrpo.py`` or ``maac.py``.

    ``checkpoint`` is the ``checkpoint.pt`` file; the run folder holding it (its
    ``export/`` when ``checkpoint.pt`` is absent); or an export folder (``policy.json`` and
    one folder per agent with ``adapter_model.safetensors``, or a full model folder, as
    :func:`~mallm_envs.agents.checkpoint.export_policies` writes them). ``agents`` are the
    env's agent names (the ones the run trained). Both give the same weights, bit for bit.
    A checkpoint is read by :func:`mallm_envs.agents.checkpoint.load_checkpoint`
    (``weights_only=True``: a planted pickle runs no code; its SHA-256 checked); an export
    by :func:`~mallm_envs.agents.checkpoint.import_policies` (safetensors only; the
    tokenizer is the base model's, so an export without tokenizer files loads the same).
    The model and sampling settings come from the :class:`PolicyConfig`; checkpoints written
    before it existed are read from the trainer's arguments with the trainers' defaults.
    Raises :class:`ModelLoadError` with what is wrong.
    """
    from mallm_envs.agents.checkpoint import CheckpointError, locate_policy

    try:
        kind, path = locate_policy(checkpoint)
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from None
    if kind == "export":
        return _load_export(path, agents, device)
    return _load_checkpoint_file(path, agents, device)


def _check_agents(path: Path, config: Any, agents: Sequence[str]) -> None:
    if tuple(config.agents) != tuple(agents):
        raise ModelLoadError(
            f"{path} was trained for agents {list(config.agents)}, not {list(agents)}"
        )


def _load_export(
    folder: Path, agents: Sequence[str], device: str | None
) -> tuple[MultiAgentLM, Any]:
    """An export folder's policies (see :func:`load_policy`)."""
    from mallm_envs.agents.checkpoint import (
        CheckpointError,
        PolicyFormatError,
        import_policies,
        read_export_config,
    )

    try:
        config = read_export_config(folder)
    except (CheckpointError, PolicyFormatError, LLMConfigError) as error:
        raise ModelLoadError(f"{folder}: {error}") from None
    _check_agents(folder, config, agents)
    lm = config.build(device)
    try:
        import_policies(lm, folder)
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from None
    return lm, config


def _load_checkpoint_file(
    path: Path, agents: Sequence[str], device: str | None
) -> tuple[MultiAgentLM, Any]:
    """A trainer checkpoint's policies (see :func:`load_policy`)."""
    from mallm_envs.agents.checkpoint import (
        CheckpointError,
        PolicyConfig,
        PolicyFormatError,
        load_checkpoint,
    )

    try:
        saved = load_checkpoint(path)
    except CheckpointError as error:
        raise ModelLoadError(str(error)) from None
    if saved is None:  # removed after it was located
        raise ModelLoadError(f"no checkpoint at {path}")
    try:
        policies = saved["policies"]
        if "policy" in saved:
            config = PolicyConfig.from_dict(saved["policy"])
        else:
            config = _policy_config_from_trainer_args(saved["args"], agents)
    except (KeyError, TypeError) as error:
        raise ModelLoadError(f"{path} is not a trainer checkpoint: {error}") from None
    except (PolicyFormatError, LLMConfigError) as error:
        raise ModelLoadError(f"{path}: {error}") from None
    _check_agents(path, config, agents)
    lm = config.build(device)
    missing = [p for p in lm.policies if p not in policies]
    if missing:
        raise ModelLoadError(
            f"{path} has no weights for {missing}: it was trained with other agents "
            f"(it holds {sorted(policies)})"
        )
    for policy in lm.policies:
        lm.load_policy_state_dict(policy, policies[policy])
    return lm, config


def _policy_config_from_trainer_args(args: Mapping[str, Any], agents: Sequence[str]) -> Any:
    """A checkpoint older than the policy record: its trainer arguments, the trainers'
    defaults where one is missing (the same defaults as ``baselines/common.PolicyArgs``)."""
    from mallm_envs.agents.checkpoint import PolicyConfig

    return PolicyConfig(
        model=str(args["model"]),
        agents=tuple(agents),
        adapter=str(args.get("adapter", "lora")),
        shared=bool(args.get("shared_policy", False)),
        lora_rank=int(args.get("lora_rank", 8)),
        lora_alpha=int(args.get("lora_alpha", 16)),
        lora_targets=parse_lora_targets(args.get("lora_targets")),
        dtype=str(args.get("dtype") or "float32"),
        gguf_file=args.get("gguf_file"),
        tiny_seed=int(args.get("tiny_seed", 0)),
        init_seed=int(args.get("seed", 0)),
        temperature=float(args.get("temperature", 0.7)),
        top_p=float(args.get("top_p", 0.9)),
        max_new_tokens=int(args.get("max_new_tokens", 256)),
        stop=tuple(args.get("stop", ()) or ()),
        system_prompt=args.get("system_prompt"),
    )
