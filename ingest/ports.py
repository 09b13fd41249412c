"""Ports the ingestion pipeline consumes."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (len(texts), dim)."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, text: str) -> int:
        """Length of ``text`` in the embedding model's tokens (no special tokens)."""
        ...

    @property
    def model_path(self) -> str:
        """Where the model comes from: part of a document's chunking recipe."""
        ...

    @property
    def max_seq_length(self) -> int:
        """The most tokens (special ones included) the model reads of one text."""
        ...


class ChunkIndexer(Protocol):
    """Writes chunks to the derived indexes (dense + sparse) of one collection.

    ``upsert`` with an id already present replaces it. ``delete`` ignores unknown ids.
    Both persist before returning (atomic file replace), so a later crash keeps them.
    """

    def upsert(
        self,
        collection_id: str,
        chunk_ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
    ) -> None: ...

    def delete(self, collection_id: str, chunk_ids: Sequence[str]) -> None: ...

    def bulk(self, collection_id: str) -> AbstractContextManager[None]:
        """Upserts and deletes of one collection inside the block may be persisted once,
        when it ends (the pipeline writes a group of documents this way)."""
        ...

    def drop_collection(self, collection_id: str) -> None:
        """Remove everything a collection holds in the indexes (its files too)."""
        ...
