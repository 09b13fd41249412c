"""Fusion math and MMR, hand-computed."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InvalidRequest
from core.settings import FusionMode
from retrieval.fusion import Fusion, FusionConfig, single
from retrieval.mmr import mmr

BM25 = [("a", 10.0), ("b", 6.0), ("c", 2.0)]
DENSE = [("c", 0.9), ("d", 0.5), ("a", 0.1)]


def test_rrf() -> None:
    fused = Fusion(FusionConfig(FusionMode.RRF, rrf_k=60)).run(BM25, DENSE)
    scores = {h.id: h.score for h in fused}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["d"] == pytest.approx(1 / 62)
    # ties broken by best single rank, then id: a (rank 1) before c (rank 1) by id
    assert [h.id for h in fused] == ["a", "c", "b", "d"]
    a = fused[0]
    assert (a.bm25_rank, a.bm25_score, a.dense_rank, a.dense_score) == (1, 10.0, 3, 0.1)
    d = fused[3]
    assert d.bm25_rank is None and d.bm25_score is None and d.dense_rank == 2


def test_weighted() -> None:
    fused = Fusion(FusionConfig(FusionMode.WEIGHTED, alpha=0.25)).run(BM25, DENSE)
    scores = {h.id: h.score for h in fused}
    # bm25 norm: a 1, b 0.5, c 0; dense norm: c 1, d 0.5, a 0
    assert scores["a"] == pytest.approx(0.75 * 1.0 + 0.25 * 0.0)
    assert scores["b"] == pytest.approx(0.75 * 0.5)
    assert scores["c"] == pytest.approx(0.75 * 0.0 + 0.25 * 1.0)
    assert scores["d"] == pytest.approx(0.25 * 0.5)
    assert [h.id for h in fused] == ["a", "b", "c", "d"]
    # a single candidate (or all-equal scores) normalises to 1
    one = Fusion(FusionConfig(FusionMode.WEIGHTED, alpha=0.5)).run([("x", 3.0)], [])
    assert one[0].score == pytest.approx(0.5)


def test_top_k_empty_and_validation() -> None:
    f = Fusion(FusionConfig("rrf"))  # type: ignore[arg-type]
    assert f.config.mode is FusionMode.RRF
    assert len(f.run(BM25, DENSE, top_k=2)) == 2
    assert f.run([], []) == []
    assert [h.id for h in single(BM25, "bm25")] == ["a", "b", "c"]
    with pytest.raises(InvalidRequest):
        FusionConfig(FusionMode.WEIGHTED, alpha=1.5)
    with pytest.raises(InvalidRequest):
        FusionConfig(FusionMode.RRF, rrf_k=0)


def test_mmr_prefers_diverse() -> None:
    q = np.array([1.0, 0.0, 0.0])
    cands = np.array([[0.9, 0.1, 0.0], [0.9, 0.11, 0.0], [0.6, 0.0, 0.8]])
    assert mmr(q, cands, k=3, lambda_=1.0) == [0, 1, 2]  # pure relevance
    # lambda 0.5: after the best, the near-duplicate loses to the different one
    order = mmr(q, cands, k=2, lambda_=0.5)
    assert order[1] == 2
    assert mmr(q, cands[:0], k=3, lambda_=0.5) == []
