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
* :func:`locate_policy` / :func:`import_policies`: ``checkpoint:PATH`` agents read an export
  folder too (``policy.json`` + one folder per agent; safetensors only, nothing unpickled),
  with exactly the weights of the checkpoint it was written from. A *lean* export
  (``export_policies(..., tokenizer=False)``: ``policy.json``, ``adapter_config.json`` and
  ``adapter_model.safetensors``; the tokenizer is the base model's) is what a board entry
  commits so that ``mallm verify --reproduce`` can re-run it on a clean clone.
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


def remove_stale_temps(path: str | os.PathLike[str]) -> list[Path]:
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


def save_checkpoint(path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
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


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any] | None:
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
    payload: dict[str, Any] = _from_safe(safe)
    return payload


# --- export in the standard Hugging Face / peft layout ---------------------------------


CHECKPOINT_FILE = "checkpoint.pt"
"""A run folder's checkpoint (weights, optimizer states, RNG states, the policy record)."""
EXPORT_FOLDER = "export"
"""A run folder's export (:func:`export_policies`), read when ``checkpoint.pt`` is absent."""
POLICY_FILE = "policy.json"
"""The :class:`PolicyConfig` of an export (and of a run folder)."""
ADAPTER_FILE = "adapter_model.safetensors"
ADAPTER_CONFIG_FILE = "adapter_config.json"
FULL_MODEL_FILE = "model.safetensors"
FULL_MODEL_INDEX = "model.safetensors.index.json"
"""A full model too large for one file: its shards, listed by this index."""


def export_policies(
    lm: MultiAgentLM,
    folder: str | os.PathLike[str],
    config: PolicyConfig | None = None,
    *,
    tokenizer: bool = True,
) -> dict[str, Path]:
    """Write each agent's policy to ``folder/<agent>/`` in the standard layout.

    LoRA: ``adapter_config.json`` and ``adapter_model.safetensors`` (peft's names; the
    config's ``base_model_name_or_path`` is the base model's folder), loadable with
    ``PeftModel.from_pretrained(base_model, folder/agent)``. Full copies: a model folder
    for ``AutoModelForCausalLM.from_pretrained``. Each folder also holds the tokenizer
    unless ``tokenizer=False`` (a *lean* export: the tokenizer is the base model's, so
    :func:`import_policies` never needs it), and ``folder/policy.json`` the
    :class:`PolicyConfig` when one is given. Returns agent -> folder. Agents that share a
    policy get identical folders.
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

            peft_model = lm.peft_model
            assert peft_model is not None  # built with adapter="lora"
            state = get_peft_model_state_dict(peft_model, adapter_name=policy)
            state = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
            peft_model.peft_config[policy].save_pretrained(str(target))
            save_file(state, str(target / ADAPTER_FILE), metadata={"format": "pt"})
        elif lm.adapter == "full":
            lm.networks[policy].save_pretrained(str(target))
        else:
            raise PolicyFormatError("a frozen base (adapter='none') has no policy to export")
        if tokenizer:
            lm.tokenizer.save_pretrained(str(target))
        written[agent] = target
    if config is not None:
        atomic_write_bytes(
            folder / POLICY_FILE, (json.dumps(config.to_dict(), indent=2) + "\n").encode()
        )
    return written


# --- reading an export back --------------------------------------------------------------


def locate_policy(location: str | os.PathLike[str]) -> tuple[str, Path]:
    """Where the policies of a ``checkpoint:`` spec are: ``("checkpoint", file)`` or
    ``("export", folder)``.

    ``location`` is a checkpoint file; a run folder (its ``checkpoint.pt``, or its
    ``export/`` when the checkpoint is absent, as on a clone where only the export is
    committed); or an export folder itself (one holding ``policy.json``). Raises
    :class:`CheckpointError` when it is none of these.
    """
    path = Path(location)
    if path.is_file():
        return "checkpoint", path
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint or export at {path}")
    if (path / CHECKPOINT_FILE).is_file():
        return "checkpoint", path / CHECKPOINT_FILE
    if (path / EXPORT_FOLDER).is_dir():
        return "export", path / EXPORT_FOLDER
    if (path / POLICY_FILE).is_file():
        return "export", path
    raise CheckpointError(
        f"{path} holds no {CHECKPOINT_FILE}, no {EXPORT_FOLDER}/ and no {POLICY_FILE}: it is "
        "neither a run folder nor an export"
    )


def read_export_config(folder: str | os.PathLike[str]) -> PolicyConfig:
    """The :class:`PolicyConfig` of an export folder (its ``policy.json``), strictly parsed.

    Raises :class:`CheckpointError` when the file is missing or is not a JSON object, and
    :class:`PolicyFormatError` when its content is not a policy record this version reads.
    """
    path = Path(folder) / POLICY_FILE
    if not path.is_file():
        raise CheckpointError(
            f"{path} is missing: an export needs its policy record (export_policies writes it "
            "when given the PolicyConfig)"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"{path} is not readable JSON: {str(error)[:200]}") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} must hold a JSON object, not {type(data).__name__}")
    for item in fields(PolicyConfig):  # JSON may hold any type where the record wants one
        value = data.get(item.name)
        if item.name in data and not _json_value_fits(value, str(item.type)):
            raise PolicyFormatError(
                f"{path}: {item.name} must be {item.type}, got {str(value)[:80]!r}"
            )
    try:
        return PolicyConfig.from_dict(data)
    except PolicyFormatError:
        raise
    except ValueError as error:  # the sampling settings' own check (LLMConfigError)
        raise PolicyFormatError(f"{path}: {error}") from None


def _json_value_fits(value: Any, annotation: str) -> bool:
    """Whether a JSON value has the type a :class:`PolicyConfig` field is annotated with."""
    kinds = [kind.strip() for kind in annotation.split("|")]
    if value is None:
        return "None" in kinds
    if isinstance(value, bool):
        return "bool" in kinds
    if isinstance(value, int):
        return "int" in kinds or "float" in kinds
    if isinstance(value, float):
        return "float" in kinds
    if isinstance(value, str):
        return "str" in kinds
    if isinstance(value, (list, tuple)):
        return "tuple[str, ...]" in kinds and all(isinstance(v, str) for v in value)
    return False


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of one safetensors file (its format cannot hold code: nothing unpickles)."""
    from safetensors.torch import load_file

    try:
        return dict(load_file(str(path), device="cpu"))
    except Exception as error:  # safetensors raises its own error type and OSError
        raise CheckpointError(
            f"{path} is not a readable safetensors file: {type(error).__name__}: {str(error)[:200]}"
        ) from None


def _weight_files(target: Path, adapter: str) -> list[Path]:
    """The safetensors files that hold one exported policy (a pickle is never read)."""
    if not target.is_dir():
        raise CheckpointError(f"{target} is missing: the export has no policy for this agent")
    if adapter == "lora":
        files = [target / ADAPTER_FILE]
    elif (target / FULL_MODEL_INDEX).is_file():
        try:
            index = json.loads((target / FULL_MODEL_INDEX).read_text(encoding="utf-8"))
            shards = sorted(set(index["weight_map"].values()))
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
            raise CheckpointError(f"{target / FULL_MODEL_INDEX} is not a weight index") from None
        if not all(isinstance(s, str) and Path(s).name == s for s in shards):
            raise CheckpointError(f"{target / FULL_MODEL_INDEX} names files outside {target}")
        files = [target / shard for shard in shards]
    else:
        files = [target / FULL_MODEL_FILE]
    for file in files:
        if not file.is_file():
            pickled = [p.name for p in target.glob("*.bin")]
            hint = f" ({', '.join(pickled)} is a pickle, which is never loaded)" if pickled else ""
            raise CheckpointError(f"{file} is missing: the export holds no weights here{hint}")
    return files


def check_export(folder: str | os.PathLike[str]) -> PolicyConfig:
    """Check, without building a model, that an export can be read safely: its
    ``policy.json`` is a policy record and every agent's weights are safetensors files that
    parse (``safetensors.safe_open`` reads their headers). Returns the record; raises
    :class:`CheckpointError` or :class:`PolicyFormatError`."""
    from safetensors import safe_open

    folder = Path(folder)
    config = read_export_config(folder)
    for agent in config.agents:
        for file in _weight_files(folder / agent, config.adapter):
            try:
                with safe_open(str(file), framework="pt") as handle:
                    list(handle.keys())
            except Exception as error:  # safetensors raises its own error type and OSError
                raise CheckpointError(
                    f"{file} is not a readable safetensors file: {type(error).__name__}: "
                    f"{str(error)[:200]}"
                ) from None
    return config


def _check_adapter_config(target: Path, lm: MultiAgentLM) -> None:
    """peft reads ``adapter_config.json`` (we read the policy record): they must agree."""
    path = target / ADAPTER_CONFIG_FILE
    if not path.is_file():
        return  # optional for this loader; peft needs it
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        saved = (data["r"], data["lora_alpha"], data.get("target_modules"))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"{path} is not a LoRA adapter config") from None
    rank, alpha, targets = saved
    wanted = lm.lora.target_modules
    same_targets = wanted is None or (
        isinstance(targets, (list, str)) and set(targets) == set(wanted)
    )
    if rank != lm.lora.r or alpha != lm.lora.alpha or not same_targets:
        raise CheckpointError(
            f"{path} (r={rank}, alpha={alpha}, targets={targets}) disagrees with the policy "
            f"record (r={lm.lora.r}, alpha={lm.lora.alpha}, targets={wanted})"
        )


def _lora_names(lm: MultiAgentLM, policy: str) -> dict[str, str]:
    """The names of a LoRA policy's tensors in an export -> their names in ``lm``: peft's
    export drops the adapter's name (``q_proj.lora_A.<policy>.weight`` -> ``q_proj.lora_A.
    weight``)."""
    assert lm.peft_model is not None  # built with adapter="lora"
    marker = f".{policy}."
    return {
        name.replace(marker, ".", 1): name
        for name in lm.peft_model.state_dict()
        if "lora_" in name and marker in name
    }


def _expected_tensors(lm: MultiAgentLM, policy: str) -> dict[str, torch.Tensor]:
    """The policy's tensors in ``lm``, under the names the export files use."""
    if lm.adapter == "lora":
        assert lm.peft_model is not None
        current = lm.peft_model.state_dict()
        return {exported: current[name] for exported, name in _lora_names(lm, policy).items()}
    return dict(lm.networks[policy].state_dict())


def _read_policy(lm: MultiAgentLM, policy: str, target: Path) -> dict[str, torch.Tensor]:
    """One agent's exported tensors, checked name by name, shape and dtype against ``lm``."""
    files = _weight_files(target, lm.adapter)
    if lm.adapter == "lora":
        _check_adapter_config(target, lm)
    state: dict[str, torch.Tensor] = {}
    for file in files:
        state.update(_read_safetensors(file))
    expected = _expected_tensors(lm, policy)
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(set(expected) - set(state))
    if lm.adapter == "full":  # save_pretrained leaves out a weight tied to a saved one
        saved = {expected[name].data_ptr() for name in state if name in expected}
        missing = [name for name in missing if expected[name].data_ptr() not in saved]
    if unexpected or missing:
        raise CheckpointError(
            f"{target} does not hold this policy's tensors: {len(missing)} missing "
            f"{missing[:3]}, {len(unexpected)} unexpected {unexpected[:3]}"
        )
    for name, tensor in state.items():
        want = expected[name]
        if tensor.shape != want.shape or tensor.dtype != want.dtype:
            raise CheckpointError(
                f"{target}: {name} is {tensor.dtype} {tuple(tensor.shape)}, the policy record "
                f"builds {want.dtype} {tuple(want.shape)}"
            )
    return state


def import_policies(lm: MultiAgentLM, folder: str | os.PathLike[str]) -> None:
    """Load the weights :func:`export_policies` wrote to ``folder`` into ``lm``.

    ``lm`` is built from the export's :class:`PolicyConfig` (:func:`read_export_config`,
    :meth:`PolicyConfig.build`); afterwards it holds bit for bit the weights that were
    exported. Only safetensors files are read. Every agent needs its folder; agents that
    share a policy must hold the same tensors. Tokenizer files are not read (the base
    model's tokenizer is the policy's). Raises :class:`CheckpointError`.
    """
    folder = Path(folder)
    if not any((folder / agent).is_dir() for agent in lm.agents):
        raise CheckpointError(
            f"{folder} holds no exported policy: none of the agent folders "
            f"{list(lm.agents)} is there (and no {CHECKPOINT_FILE})"
        )
    loaded: dict[str, tuple[str, dict[str, torch.Tensor]]] = {}
    for agent in lm.agents:
        policy = lm.policy_name(agent)
        state = _read_policy(lm, policy, folder / agent)
        if policy in loaded:
            first, first_state = loaded[policy]
            if any(not torch.equal(state[name], first_state[name]) for name in state):
                raise CheckpointError(
                    f"agents {first!r} and {agent!r} share one policy, but {folder} exports "
                    "different weights for them"
                )
            continue
        loaded[policy] = (agent, state)
        if lm.adapter == "lora":
            names = _lora_names(lm, policy)
            lm.load_policy_state_dict(policy, {names[k]: v for k, v in state.items()})
        else:
            lm.networks[policy].load_state_dict(state, strict=False)


__all__ = [
    "ADAPTER_FILE",
    "CHECKPOINT_FILE",
    "EXPORT_FOLDER",
    "POLICY_FILE",
    "POLICY_FORMAT",
    "CheckpointError",
    "PolicyConfig",
    "PolicyFormatError",
    "check_export",
    "export_policies",
    "import_policies",
    "load_checkpoint",
    "locate_policy",
    "payload_digest",
    "read_export_config",
    "remove_stale_temps",
    "save_checkpoint",
]
