"""Metrics against values computed by hand (log2 discounts written out)."""

from __future__ import annotations

import math

import pytest

from evals.metrics import (
    evaluate_run,
    mrr_at_k,
    ndcg_at_k,
    parse_metric,
    recall_at_k,
    score_query,
)

L3 = math.log2(3)  # discount denominator at rank 2
L5 = math.log2(5)  # rank 4


def test_ndcg_graded_gains() -> None:
    qrels = {"a": 2, "b": 1, "c": 0}
    # ranks: c (gain 0), b (1), a (2), x (0)
    dcg = 0 + 1 / L3 + 2 / 2
    idcg = 2 / 1 + 1 / L3
    assert ndcg_at_k(["c", "b", "a", "x"], qrels, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["c", "b", "a", "x"], qrels, 10) == pytest.approx(0.619906, abs=1e-6)


def test_ndcg_perfect_and_cut_off() -> None:
    qrels = {"a": 2, "b": 1}
    assert ndcg_at_k(["a", "b", "z"], qrels, 10) == pytest.approx(1.0)
    assert ndcg_at_k(["x", "a"], qrels, 1) == 0.0
    # k=2 ranks b then a: (1 + 2/log2 3) / (2 + 1/log2 3)
    assert ndcg_at_k(["b", "a"], qrels, 2) == pytest.approx((1 + 2 / L3) / (2 + 1 / L3))


def test_ndcg_ideal_uses_all_judged_relevant_docs() -> None:
    qrels = {"a": 1, "b": 1, "c": 1}
    # only one of three relevant docs retrieved, at rank 1
    assert ndcg_at_k(["a"], qrels, 10) == pytest.approx(1 / (1 + 1 / L3 + 1 / 2))
    # ideal is truncated at k: two relevant docs at ranks 1-2 with k=2 is perfect
    assert ndcg_at_k(["a", "b"], qrels, 2) == pytest.approx(1.0)
    # relevant doc at rank 4 of k=10
    assert ndcg_at_k(["x", "y", "z", "a"], qrels, 10) == pytest.approx(
        (1 / L5) / (1 + 1 / L3 + 1 / 2)
    )


def test_recall_several_relevant() -> None:
    qrels = {"a": 1, "b": 2, "c": 1, "n": 0}
    ranked = ["a", "x", "c", "n", "b"]
    assert recall_at_k(ranked, qrels, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, qrels, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, qrels, 3) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, qrels, 100) == pytest.approx(1.0)


def test_mrr() -> None:
    qrels = {"a": 1, "b": 1}
    assert mrr_at_k(["x", "y", "a", "b"], qrels, 10) == pytest.approx(1 / 3)
    assert mrr_at_k(["x", "y", "a"], qrels, 2) == 0.0
    assert mrr_at_k(["b"], qrels, 10) == 1.0


def test_duplicates_count_once() -> None:
    qrels = {"b": 1}
    assert mrr_at_k(["a", "a", "b"], qrels, 2) == pytest.approx(0.5)
    assert recall_at_k(["a", "a", "b"], qrels, 2) == 1.0


def test_nothing_retrieved_or_nothing_relevant() -> None:
    assert ndcg_at_k([], {"a": 1}, 10) == 0.0
    assert recall_at_k([], {"a": 1}, 10) == 0.0
    assert mrr_at_k([], {"a": 1}, 10) == 0.0
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0
    assert recall_at_k(["a"], {}, 10) == 0.0


def test_evaluate_run_aggregates_over_judged_queries() -> None:
    qrels = {
        "q1": {"a": 1},  # perfect
        "q2": {"b": 1, "c": 1},  # nothing retrieved
        "q3": {"d": 2},  # absent from the run
        "q4": {"e": 0},  # no relevant doc: excluded
        "q5": {"f": 1, "g": 1},  # g at rank 2
    }
    run = {"q1": ["a"], "q2": [], "q4": ["e"], "q5": ["x", "g"], "extra": ["a"]}
    scores = evaluate_run(run, qrels, ["recall@10", "mrr@10", "ndcg@10"])
    assert scores.n_queries == 4
    assert set(scores.per_query) == {"q1", "q2", "q3", "q5"}
    assert scores.means["recall@10"] == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    assert scores.means["mrr@10"] == pytest.approx((1 + 0 + 0 + 0.5) / 4)
    ndcg_q5 = (1 / L3) / (1 + 1 / L3)
    assert scores.means["ndcg@10"] == pytest.approx((1 + ndcg_q5) / 4)
    assert scores.per_query["q2"] == {"recall@10": 0.0, "mrr@10": 0.0, "ndcg@10": 0.0}


def test_metric_names() -> None:
    assert parse_metric("nDCG@10") == ("ndcg", 10)
    assert score_query(["a"], {"a": 1}, "recall@5") == 1.0
    for bad in ("ndcg", "map@10", "recall@0", "mrr@x"):
        with pytest.raises(ValueError):
            parse_metric(bad)
    with pytest.raises(ValueError):
        evaluate_run({}, {}, ["bogus@3"])
