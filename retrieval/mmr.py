"""Maximal marginal relevance: re-orders candidates to trade relevance for diversity.

Picks, one at a time, ``argmax lambda * cos(q, d) - (1 - lambda) * max cos(d, picked)``.

    order = mmr(query_vec, cand_vecs, k=5, lambda_=0.7)   # indices into cand_vecs
"""

from __future__ import annotations

import numpy as np

from retrieval.dense import normalize


def mmr(
    query: np.ndarray,
    candidates: np.ndarray,
    k: int,
    lambda_: float,
    relevance: np.ndarray | None = None,
) -> list[int]:
    """Indices of up to ``k`` candidates in MMR order. ``relevance`` defaults to cosine."""
    n = len(candidates)
    if n == 0 or k <= 0:
        return []
    c = normalize(candidates)
    rel = (
        np.asarray(relevance, dtype=np.float64)
        if relevance is not None
        else (c @ normalize(query)[0]).astype(np.float64)
    )
    sim = (c @ c.T).astype(np.float64)
    picked: list[int] = []
    max_sim = np.full(n, -np.inf)
    free = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        div = np.where(np.isfinite(max_sim), max_sim, 0.0)
        score = np.where(free, lambda_ * rel - (1 - lambda_) * div, -np.inf)
        i = int(np.argmax(score))
        picked.append(i)
        free[i] = False
        max_sim = np.maximum(max_sim, sim[i])
    return picked
