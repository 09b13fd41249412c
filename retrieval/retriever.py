"""Hybrid retrieval: BM25 and dense search (filtered inside), fusion, MMR, rerank.

    retriever = HybridRetriever(engine, store, embedder, settings.retrieval, reranker)
    chunks = retriever.retrieve(Query("what is x?", CollectionKey.default("docs"), top_k=5))
    hits = retriever.search_ids(collection_id, questions, method="hybrid", k=10)  # evals

Fusion parameters: the explicit ``fusion`` argument, else the collection row's tuned
``fusion_mode``/``rrf_k``/``alpha``, else the settings. ``retrieve`` returns only chunks
SQL holds as ready, so stale index entries never surface.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
from sqlalchemy.engine import Engine

from core import db, repository
from core.errors import CollectionEmpty, InvalidRequest
from core.settings import FusionMode, RetrievalSettings
from core.types import Query, ScoredChunk, require_key
from retrieval.dense import normalize
from retrieval.fusion import FusedHit, Fusion, FusionConfig, single
from retrieval.mmr import mmr
from retrieval.ports import Hits, QueryEmbedder, Reranker
from retrieval.store import IndexStore

Method = Literal["hybrid", "bm25", "dense"]
_METHODS = ("hybrid", "bm25", "dense")


class HybridRetriever:
    """The retrieval stage. Thread-safe; heavy state lives in the ``IndexStore``."""

    def __init__(
        self,
        engine: Engine,
        store: IndexStore,
        embedder: QueryEmbedder,
        settings: RetrievalSettings,
        reranker: Reranker | None = None,
    ) -> None:
        self.engine = engine
        self.store = store
        self.embedder = embedder
        self.settings = settings
        self.reranker = reranker

    def fusion_for(self, collection_row: db.CollectionRow | None) -> FusionConfig:
        """The collection's tuned fusion parameters, falling back to the settings."""
        s = self.settings
        mode, rrf_k, alpha = s.fusion, s.rrf_k, s.alpha
        if collection_row is not None:
            if collection_row.fusion_mode:
                with contextlib.suppress(ValueError):  # unknown stored mode: settings
                    mode = FusionMode(collection_row.fusion_mode)
            if collection_row.rrf_k is not None:
                rrf_k = collection_row.rrf_k
            if collection_row.alpha is not None:
                alpha = collection_row.alpha
        return FusionConfig(mode, rrf_k, alpha)

    # -- batch search (no SQL loading) ---------------------------------------------------

    def _embed(self, texts: Sequence[str], vectors: np.ndarray | None) -> np.ndarray:
        if vectors is None:
            vectors = np.asarray(self.embedder.embed(list(texts)), dtype=np.float32)
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        return normalize(vectors)

    def _search(
        self,
        collection_id: str,
        texts: Sequence[str],
        qvecs: np.ndarray | None,
        method: Method,
        k: int,
        cfg: FusionConfig,
        allowed: set[str] | None,
    ) -> list[list[FusedHit]]:
        cand = max(self.settings.candidate_k, k)
        bm25: list[Hits] = []
        dense: list[Hits] = []
        if method in ("hybrid", "bm25"):
            bm25 = self.store.sparse(collection_id).search(
                texts, k if method == "bm25" else cand, allowed
            )
        if method in ("hybrid", "dense"):
            assert qvecs is not None
            dense = self.store.dense(collection_id).search(
                qvecs, k if method == "dense" else cand, allowed
            )
        if method == "bm25":
            return [single(h, "bm25") for h in bm25]
        if method == "dense":
            return [single(h, "dense") for h in dense]
        return Fusion(cfg).run_many(bm25, dense)

    def search_ids(
        self,
        collection_id: str,
        texts: Sequence[str],
        *,
        method: Method = "hybrid",
        k: int = 10,
        fusion: FusionConfig | None = None,
        vectors: np.ndarray | None = None,
        allowed: set[str] | None = None,
    ) -> list[list[FusedHit]]:
        """Top-``k`` fused hits per query text, best first; queries embedded in one batch.

        ``vectors`` (one row per text) skips embedding. No SQL chunk loading: for
        evaluations and benchmarks over many queries.
        """
        if method not in _METHODS:
            raise InvalidRequest(f"unknown retrieval method '{method}' (use {_METHODS})")
        if not texts:
            return []
        if fusion is None:
            with repository.read(self.engine) as s:
                fusion = self.fusion_for(repository.collection_by_id(s, collection_id))
        qvecs = self._embed(texts, vectors) if method != "bm25" else None
        fused = self._search(collection_id, texts, qvecs, method, k, fusion, allowed)
        return [hits[:k] for hits in fused]

    # -- one query, to chunks ------------------------------------------------------------

    def retrieve(
        self,
        query: Query,
        *,
        method: Method = "hybrid",
        fusion: FusionConfig | None = None,
    ) -> list[ScoredChunk]:
        """Top ``query.top_k`` ready chunks for ``query``, best first.

        Raises ``CollectionNotFound`` for an unknown collection and ``CollectionEmpty``
        when it has no ready chunks.
        """
        if method not in _METHODS:
            raise InvalidRequest(f"unknown retrieval method '{method}' (use {_METHODS})")
        require_key(query.collection)
        top_k = query.top_k
        with repository.read(self.engine) as s:
            col = repository.get_collection(s, query.collection)
            if not repository.has_ready_chunk(s, col.id):
                raise CollectionEmpty(
                    f"collection '{query.collection}' has no ready documents; "
                    "ingest some before querying it"
                )
            cfg = fusion or self.fusion_for(col)
            allowed = repository.allowed_chunk_ids(s, col.id, query.filter)
            cid = col.id
        if allowed is not None and not allowed:
            return []
        need_vec = method != "bm25" or self.settings.mmr
        qvec = self._embed([query.text], None) if need_vec else None
        pool = max(self.settings.candidate_k, top_k)
        fused = self._search(cid, [query.text], qvec, method, pool, cfg, allowed)[0]
        if not fused:
            return []
        dense_idx = self.store.dense(cid)
        rerank_pool = min(len(fused), max(4 * top_k, 20)) if self.reranker else top_k
        # Cosine for every candidate (BM25-only hits too): guards judge similarity by it.
        found, vecs = dense_idx.vectors([h.id for h in fused])
        cos: dict[str, float] = {}
        if qvec is not None and len(found):
            cos = dict(zip(found, (vecs @ qvec[0]).tolist(), strict=True))
        if self.settings.mmr and qvec is not None and len(found):
            order = mmr(qvec[0], vecs, len(found), self.settings.mmr_lambda)
            by_id = {h.id: h for h in fused}
            no_vec = [h for h in fused if h.id not in cos]
            fused = [by_id[found[i]] for i in order] + no_vec
        with repository.read(self.engine) as s:
            chunks = repository.load_chunks(s, [h.id for h in fused[: max(rerank_pool, top_k) * 2]])
            if len(chunks) < min(rerank_pool, len(fused)):  # many stale ids: load the rest
                chunks.update(
                    repository.load_chunks(s, [h.id for h in fused if h.id not in chunks])
                )
        results: list[ScoredChunk] = []
        for h in fused:
            chunk = chunks.get(h.id)
            if chunk is None:
                continue  # not in SQL or its document is not ready
            dense_score = h.dense_score if h.dense_score is not None else cos.get(h.id)
            results.append(
                ScoredChunk(
                    chunk=chunk,
                    score=h.score,
                    bm25_rank=h.bm25_rank,
                    dense_rank=h.dense_rank,
                    bm25_score=h.bm25_score,
                    dense_score=dense_score,
                )
            )
            if len(results) >= rerank_pool:
                break
        if self.reranker is not None and results:
            return self.reranker.rerank(query.text, results, top_k)
        return results[:top_k]
