"""Ranked-retrieval metrics, implemented once for every eval and benchmark.

Conventions (those of trec_eval / BEIR, so figures compare with published ones):

- ``qrels`` maps a document id to its graded relevance; a grade > 0 is relevant.
- nDCG uses linear gains (the grade) and the log2 discount ``1 / log2(rank + 1)``;
  the ideal ranking is built from *all* judged relevant documents of the query,
  retrieved or not.
- A ranking may repeat a document id; only its first (best) position counts.

    >>> ndcg_at_k(["d3", "d1"], {"d1": 1}, k=10)
    0.6309...
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Qrels = Mapping[str, Mapping[str, int]]  # query id -> doc id -> grade
Run = Mapping[str, Sequence[str]]  # query id -> doc ids, best first

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10")


def _dedupe(ranked: Iterable[str], k: int) -> list[str]:
    """The first ``k`` distinct ids of ``ranked``, in order."""
    seen: set[str] = set()
    out: list[str] = []
    for doc in ranked:
        if doc in seen:
            continue
        seen.add(doc)
        out.append(doc)
        if len(out) == k:
            break
    return out


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def dcg(gains: Sequence[float]) -> float:
    """Discounted cumulative gain of gains listed by rank (rank 1 first)."""
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def ndcg_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Normalised DCG of the top ``k`` of ``ranked``; 0.0 when nothing is relevant."""
    _check_k(k)
    ideal = sorted((g for g in qrels.values() if g > 0), reverse=True)[:k]
    idcg = dcg(ideal)
    if idcg == 0.0:
        return 0.0
    gains = [max(qrels.get(d, 0), 0) for d in _dedupe(ranked, k)]
    return dcg(gains) / idcg


def recall_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top ``k``; 0.0 when none are relevant."""
    _check_k(k)
    relevant = {d for d, g in qrels.items() if g > 0}
    if not relevant:
        return 0.0
    return sum(1 for d in _dedupe(ranked, k) if d in relevant) / len(relevant)


def mrr_at_k(ranked: Sequence[str], qrels: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document in the top ``k`` (0.0 if none)."""
    _check_k(k)
    for i, d in enumerate(_dedupe(ranked, k)):
        if qrels.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


_FUNCS = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}


def parse_metric(name: str) -> tuple[str, int]:
    """``"ndcg@10"`` -> ``("ndcg", 10)``; raises ValueError on an unknown name."""
    base, sep, k = name.lower().partition("@")
    if base not in _FUNCS or not sep or not k.isdigit() or int(k) < 1:
        raise ValueError(f"unknown metric '{name}'; use <ndcg|recall|mrr>@<k>, e.g. ndcg@10")
    return base, int(k)


def score_query(ranked: Sequence[str], qrels: Mapping[str, int], metric: str) -> float:
    """One named metric (e.g. ``"recall@100"``) for one query."""
    base, k = parse_metric(metric)
    return _FUNCS[base](ranked, qrels, k)


@dataclass(frozen=True, slots=True)
class RunScores:
    """Mean of each metric over the judged queries, plus the per-query values."""

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    n_queries: int


def judged_queries(qrels: Qrels) -> list[str]:
    """Query ids with at least one relevant (grade > 0) document, in qrels order."""
    return [q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]


def evaluate_run(run: Run, qrels: Qrels, metrics: Sequence[str] = DEFAULT_METRICS) -> RunScores:
    """Score a run against qrels, averaging over queries.

    Queries without any relevant judged document are left out (they cannot be
    scored); a judged query absent from ``run`` or with an empty ranking scores 0.
    Run entries for queries not in ``qrels`` are ignored.
    """
    for m in metrics:
        parse_metric(m)
    qids = judged_queries(qrels)
    per_query: dict[str, dict[str, float]] = {}
    for q in qids:
        ranked = run.get(q, ())
        per_query[q] = {m: score_query(ranked, qrels[q], m) for m in metrics}
    n = len(qids)
    means = {m: (sum(per_query[q][m] for q in qids) / n if n else 0.0) for m in metrics}
    return RunScores(means=means, per_query=per_query, n_queries=n)
