"""The trainers' checkpoint and policy format, owned by the library.

* :class:`PolicyConfig`: what a trained policy is (base model, adapter kind, LoRA shape,
  dtype, agents) and how it samples (temperature, top-p, new tokens, stop strings, system
  prompt). The trainers (``baselines/magrpo.py``, ``baselines/maac.py``) write it into every
  checkpoint under ``"policy"`` and as ``policy.json`` in the run folder;
  :func:`mallm_envs.agents.llm.load_trained` (the ``checkpoint:PATH`` agents) reads it, so
  no setting is re-guessed from the trainer's arguments.
* :func:`save_checkpoint` / :func:`load_checkpoint`: one file written atomically, loaded
  with ``weights_only=True`` (no code runs) and refused when its SHA-256 does not match.
* :func:`export_policies`: each agent's policy in the standard Hugging Face / peft layout
  (``adapter_config.json`` + ``adapter_model.safetensors``, loadable by
  ``peft.PeftModel.from_pretrained`` on the base model; or a full model folder for
  ``adapter="full"``), usable without this project.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mallm_envs.core import atomic_open, atomic_write_bytes
from mallm_envs.core.errors import MallmError

if TYPE_CHECKING:  # pragma: no cover
    from mallm_envs.agents.llm import MultiAgentLM, SamplingConfig

POLICY_FORMAT = 1
"""Version of :class:`PolicyConfig`'s dict form; a reader refuses versions it does not know."""


@dataclass(frozen=True)
class PolicyConfig:
    """A trained policy's model and sampling settings (one record for every agent)."""

    model: str
    """'tiny', a named model ('smollm2-135m'), a local folder, a .gguf file or a hub id."""
    agents: tuple[str, ...]
    """The env's agent names, in order; each has a policy (or all share one)."""
    adapter: str = "lora"
    """'lora' (one adapter per policy on a frozen base) or 'full' (a full copy per policy)."""
    shared: bool = False
    """All agents share one policy."""
    lora_rank: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] | None = ("q_proj", "k_proj", "v_proj", "o_proj")
    dtype: str = "float32"
    gguf_file: str | None = None
    tiny_seed: int = 0
    """Weight seed of the tiny model (model='tiny')."""
    init_seed: int = 0
    """Seed of the adapters' initialisation (the checkpoint's weights replace it)."""
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    stop: tuple[str, ...] = ()
    system_prompt: str | None = None
    max_prompt_tokens: int = 0
    """Observations were cut to their last this many tokens in training (0: no cap)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "agents", tuple(self.agents))
        object.__setattr__(self, "stop", tuple(self.stop))
        if self.lora_targets is not None:
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if self.adapter not in ("lora", "full"):
            raise PolicyFormatError(f"adapter must be 'lora' or 'full', got {self.adapter!r}")
        if not self.agents:
            raise PolicyFormatError("a policy config needs its agents")
        self.sampling()  # validates the sampling settings

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["agents"] = list(self.agents)
        data["stop"] = list(self.stop)
        data["lora_targets"] = None if self.lora_targets is None else list(self.lora_targets)
        return {"format": POLICY_FORMAT, **data}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyConfig:
        """Strict: an unknown format version or field is refused, not ignored."""
        data = dict(data)
        version = data.pop("format", None)
        if version != POLICY_FORMAT:
            raise PolicyFormatError(
                f"policy format {version!r} is not known here (this version reads {POLICY_FORMAT})"
            )
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PolicyFormatError(f"unknown policy config fields {unknown}")
        try:
            return cls(**data)
        except TypeError as error:
            raise PolicyFormatError(f"incomplete policy config: {error}") from None

    def sampling(self) -> SamplingConfig:
        from mallm_envs.agents.llm import SamplingConfig

        return SamplingConfig(self.temperature, self.top_p, self.max_new_tokens, self.stop)

    def build(self, device: str | None = "cpu") -> MultiAgentLM:
        """The policies with freshly initialised adapters (load weights into them next)."""
        from mallm_envs.agents.llm import LoraSettings, MultiAgentLM

        return MultiAgentLM(
            self.agents,
            self.model,
            adapter=self.adapter,
            shared=self.shared,
            lora=LoraSettings(
                r=self.lora_rank,
                alpha=self.lora_alpha,
                dropout=self.lora_dropout,
                target_modules=self.lora_targets,
            ),
            seed=self.init_seed,
            gguf_file=self.gguf_file,
            device=device,
            dtype=self.dtype,
            tiny_seed=self.tiny_seed,
        )


class PolicyFormatError(MallmError, ValueError):
    """A policy config this version cannot read."""


class CheckpointError(MallmError, ValueError):
    """A checkpoint that cannot be loaded safely: not ours, corrupted, or tampered with."""


_NUMPY_TAG = "__numpy_array__"
_INTEGRITY_KEY = "__integrity__"


def _to_safe(value: Any) -> Any:
    """``value`` with numpy arrays as tagged tensors, so ``weights_only`` loading takes it."""
    if isinstance(value, np.ndarray):
        return {
            _NUMPY_TAG: torch.from_numpy(value.astype(np.int64, copy=True)),
            "dtype": str(value.dtype),
        }
    if isinstance(value, dict):
        return {k: _to_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_to_safe(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _from_safe(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {_NUMPY_TAG, "dtype"}:
            return value[_NUMPY_TAG].numpy().astype(value["dtype"])
        return {k: _from_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_safe(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_from_safe(v) for v in value)
    return value


def _digest_into(digest: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)
        digest.update(f"T{value.dtype}{tuple(value.shape)}:".encode())
        digest.update(data.numpy().tobytes())
    elif isinstance(value, dict):
        digest.update(b"{")
        for key in sorted(value, key=repr):
            digest.update(repr(key).encode() + b":")
            _digest_into(digest, value[key])
        digest.update(b"}")
    elif isinstance(value, (list, tuple)):
        digest.update(b"[" if isinstance(value, list) else b"(")
        for item in value:
            _digest_into(digest, item)
        digest.update(b"]")
    else:
        digest.update(repr(value).encode() + b";")


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of everything a checkpoint holds (every tensor's bytes, every value)."""
    digest = hashlib.sha256()
    _digest_into(digest, {k: v for k, v in payload.items() if k != _INTEGRITY_KEY})
    return digest.hexdigest()


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files a write of ``path`` killed midway left behind."""
    path = Path(path)
    removed = []
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            stale.unlink()
            removed.append(stale)
        except FileNotFoundError:
            pass
    return removed


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` with torch.save, atomically (temp file, fsync, rename).

    Numpy arrays (the RNG state) are stored as tensors so that :func:`load_checkpoint` can
    load with ``weights_only=True`` (no code runs on load); a SHA-256 of the whole payload
    is stored with it and checked on load. torch.save streams into the temporary file, so a
    large checkpoint is never held in memory as one byte string. Temporary files that an
    earlier, killed write left behind are removed first.
    """
    remove_stale_temps(path)
    safe = _to_safe(dict(payload))
    safe[_INTEGRITY_KEY] = {"format": 1, "sha256": payload_digest(safe)}
    with atomic_open(path) as handle:
        torch.save(safe, handle)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The payload :func:`save_checkpoint` wrote, or ``None`` when there is no file.

    Loads with ``weights_only=True`` (a planted pickle cannot run code), checks the stored
    SHA-256 of the payload (a flipped bit is refused, not trained on), and removes stale
    temporary files of ``path``. Raises :class:`CheckpointError` with what to do otherwise.
    """
    path = Path(path)
    remove_stale_temps(path)
    if not path.is_file():
        return None
    try:
        safe = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the unpickler's errors have no common type
        raise CheckpointError(
            f"{path} cannot be loaded safely (weights only): {type(err).__name__}: "
            f"{str(err)[:300]}; it was not written by this version's save_checkpoint, or it "
            "is damaged. Start over with --overwrite or another --output-dir"
        ) from None
    if not isinstance(safe, dict) or not isinstance(safe.get(_INTEGRITY_KEY), dict):
        raise CheckpointError(f"{path} holds no integrity record; it is not our checkpoint")
    expected = safe[_INTEGRITY_KEY].get("sha256")
    actual = payload_digest(safe)
    if actual != expected:
        raise CheckpointError(
            f"{path} is corrupted: its content hashes to {actual[:16]}..., the checkpoint "
            f"recorded {str(expected)[:16]}...; start over with --overwrite or restore a copy"
        )
    del safe[_INTEGRITY_KEY]
    return _from_safe(safe)


# --- export in the standard Hugging Face / peft layout ---------------------------------


def export_policies(
    lm: MultiAgentLM, folder: str | os.PathLike, config: PolicyConfig | None = None
) -> dict[str, Path]:
    """Write each agent's policy to ``folder/<agent>/`` in the standard layout.

    LoRA: ``adapter_config.json`` and ``adapter_model.safetensors`` (peft's names; the
    config's ``base_model_name_or_path`` is the base model's folder), loadable with
    ``PeftModel.from_pretrained(base_model, folder/agent)``. Full copies: a model folder
    for ``AutoModelForCausalLM.from_pretrained``. Each folder also holds the tokenizer, and
    ``folder/policy.json`` the :class:`PolicyConfig` when one is given. Returns agent ->
    folder. Agents that share a policy get identical folders.
    """
    from safetensors.torch import save_file

    folder = Path(folder)
    written = {}
    for agent in lm.agents:
        policy = lm.policy_name(agent)
        target = folder / agent
        target.mkdir(parents=True, exist_ok=True)
        if lm.adapter == "lora":
            from peft import get_peft_model_state_dict

            state = get_peft_model_state_dict(lm.peft_model, adapter_name=policy)
            state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
            lm.peft_model.peft_config[policy].save_pretrained(str(target))
            save_file(state, str(target / "adapter_model.safetensors"), metadata={"format": "pt"})
        elif lm.adapter == "full":
            lm.networks[policy].save_pretrained(str(target))
        else:
            raise PolicyFormatError("a frozen base (adapter='none') has no policy to export")
        lm.tokenizer.save_pretrained(str(target))
        written[agent] = target
    if config is not None:
        atomic_write_bytes(
            folder / "policy.json", (json.dumps(config.to_dict(), indent=2) + "\n").encode()
        )
    return written


__all__ = [
    "POLICY_FORMAT",
    "CheckpointError",
    "PolicyConfig",
    "PolicyFormatError",
    "export_policies",
    "load_checkpoint",
    "payload_digest",
    "remove_stale_temps",
    "save_checkpoint",
]
