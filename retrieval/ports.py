"""Ports the retrieval stage consumes. Search is batch-first: many queries, one call.

Duplicate semantics: ``add`` with an id already present replaces its entry.
``delete`` ignores ids that are absent. ``allowed``, when given, restricts results to
those ids *inside* the search, so ``k`` results are returned whenever ``k`` allowed
entries match (filters never leave top-k short).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from core.types import ScoredChunk

Hits = list[tuple[str, float]]  # (chunk id, score), best first


class QueryEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class SparseIndex(Protocol):
    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def search(
        self, queries: Sequence[str], k: int, allowed: set[str] | None = None
    ) -> list[Hits]: ...
    def ids(self) -> set[str]: ...
    def __len__(self) -> int: ...
    def save(self, directory: Path) -> None: ...


class DenseIndex(Protocol):
    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...
    def delete(self, ids: Sequence[str]) -> None: ...
    def search(
        self, vectors: np.ndarray, k: int, allowed: set[str] | None = None
    ) -> list[Hits]: ...
    def ids(self) -> set[str]: ...
    def __len__(self) -> int: ...
    def save(self, directory: Path) -> None: ...


class Reranker(Protocol):
    def rerank(
        self, query: str, chunks: Sequence[ScoredChunk], top_k: int
    ) -> list[ScoredChunk]: ...
