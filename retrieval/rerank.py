"""Cross-encoder reranking from a local sentence-transformers CrossEncoder folder.

    reranker = CrossEncoderReranker("/models/ms-marco-MiniLM-L-6-v2")
    reranker.warm_up()                                  # optional; rerank() loads lazily
    best = reranker.rerank("question", scored_chunks, top_k=5)

``rerank_score`` is set on each chunk and the list is re-ordered by it; ``score`` keeps
the fusion score. Nothing is downloaded: a missing folder raises ``ModelNotFound``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.errors import ModelNotFound
from core.types import ScoredChunk


class CrossEncoderReranker:
    """Implements ``retrieval.ports.Reranker``."""

    def __init__(
        self, model_path: str | Path, device: str = "cpu", batch_size: int = 32
    ) -> None:
        self.model_path = Path(model_path)
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def warm_up(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            if not self.model_path.is_dir():
                raise ModelNotFound(
                    f"reranker model folder '{self.model_path}' does not exist "
                    "(set retrieval.reranker_path to a local CrossEncoder folder)"
                )
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(
                    str(self.model_path), device=self.device, local_files_only=True
                )
            except (OSError, ValueError) as e:
                raise ModelNotFound(
                    f"reranker model folder '{self.model_path}' cannot be loaded: {e}"
                ) from e

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        self.warm_up()
        if not texts:
            return []
        raw = self._model.predict(
            [(query, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False
        )
        return [float(x) for x in raw]

    def rerank(self, query: str, chunks: Sequence[ScoredChunk], top_k: int) -> list[ScoredChunk]:
        scores = self.scores(query, [c.chunk.text for c in chunks])
        order = sorted(range(len(chunks)), key=lambda i: (-scores[i], i))
        return [replace(chunks[i], rerank_score=scores[i]) for i in order[:top_k]]
