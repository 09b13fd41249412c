"""Grid scoring on fixed candidate lists (pure logic, values by hand)."""

from __future__ import annotations

import math

import pytest

from core.settings import FusionMode
from evals.tune import fuse_and_score, grid, pick_best


def test_fuse_and_score_grid() -> None:
    # one query; BM25 prefers chunk a1 (doc A), dense prefers b1 (doc B, the relevant one)
    bm25 = [[("a1", 3.0), ("b1", 2.0)]]
    dense = [[("b1", 0.9), ("a1", 0.1)]]
    c2d = {"a1": "A", "b1": "B"}
    qrels = {"q": {"B": 1}}
    rows = fuse_and_score(bm25, dense, ["q"], qrels, c2d, grid((1,), (0.1, 0.5, 0.6, 0.9)))
    by_label = {r.label: r for r in rows}
    second = 1 / math.log2(3)  # B at rank 2
    # RRF k=1: equal fused scores, tie broken by best rank then id -> A first
    assert by_label["rrf k=1"].value == pytest.approx(second)
    assert by_label["weighted alpha=0.1"].value == pytest.approx(second)
    assert by_label["weighted alpha=0.5"].value == pytest.approx(second)  # tie -> id order
    assert by_label["weighted alpha=0.6"].value == pytest.approx(1.0)
    assert by_label["weighted alpha=0.9"].metrics["mrr@10"] == pytest.approx(1.0)
    best = pick_best(rows)
    assert (best.mode, best.alpha, best.rrf_k) == (FusionMode.WEIGHTED, 0.6, None)


def test_grid_is_rrf_then_weighted() -> None:
    configs = grid()
    assert [c.rrf_k for c in configs[:7]] == [1, 5, 10, 20, 40, 60, 100]
    assert [c.alpha for c in configs[7:]] == pytest.approx([0.1 * i for i in range(1, 10)])
    assert {c.mode for c in configs[7:]} == {FusionMode.WEIGHTED}
