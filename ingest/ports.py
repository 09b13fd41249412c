"""Ports the ingestion pipeline consumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

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


class CheckedChunk(Protocol):
    """A chunk after the content checks: the text to store (redacted where the policy
    says), what the checks found (JSON by check name), why its document is refused."""

    @property
    def text(self) -> str: ...

    @property
    def flags(self) -> Mapping[str, Any]: ...

    @property
    def refusal(self) -> str | None: ...


class ContentChecks(Protocol):
    """The document-stage content checks (``generation.checks.screen.Screen``), applied
    with a collection's stored policy (None: the defaults)."""

    def documents(
        self, texts: Sequence[str], policy: Mapping[str, Any] | None
    ) -> Sequence[CheckedChunk]: ...
