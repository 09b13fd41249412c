"""Fusion stage: combines the BM25 and dense result lists of one query.

RRF: ``score = sum over lists of 1 / (rrf_k + rank)`` (rank 1-based).
Weighted: each list's scores are min-max normalised over its own returned candidates
(all-equal scores normalise to 1.0), then ``alpha * dense + (1 - alpha) * bm25``; an id
missing from a list gets 0 there.

    fused = Fusion(FusionConfig(FusionMode.RRF)).run(bm25_hits, dense_hits)
    fused[0].id, fused[0].score, fused[0].bm25_rank, fused[0].dense_score
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from core.errors import InvalidRequest
from core.settings import FusionMode
from retrieval.ports import Hits


@dataclass(frozen=True, slots=True)
class FusionConfig:
    mode: FusionMode
    rrf_k: int = 60
    alpha: float = 0.5  # weight of dense in weighted fusion

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", FusionMode(self.mode))
        if self.rrf_k < 1:
            raise InvalidRequest(f"rrf_k must be >= 1, got {self.rrf_k}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidRequest(f"alpha must be within [0, 1], got {self.alpha}")


@dataclass(frozen=True, slots=True)
class FusedHit:
    """One id after fusion, with what each retriever said about it (ranks are 1-based)."""

    id: str
    score: float
    bm25_rank: int | None = None
    bm25_score: float | None = None
    dense_rank: int | None = None
    dense_score: float | None = None


def _minmax(hits: Hits) -> dict[str, float]:
    if not hits:
        return {}
    scores = [s for _, s in hits]
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return {cid: 1.0 for cid, _ in hits}
    return {cid: (s - lo) / (hi - lo) for cid, s in hits}


def single(hits: Hits, source: Literal["bm25", "dense"]) -> list[FusedHit]:
    """One retriever's hits as fused hits (score = that retriever's score)."""
    if source == "bm25":
        return [FusedHit(cid, s, bm25_rank=r, bm25_score=s) for r, (cid, s) in enumerate(hits, 1)]
    return [FusedHit(cid, s, dense_rank=r, dense_score=s) for r, (cid, s) in enumerate(hits, 1)]


class Fusion:
    """Fuses BM25 and dense hit lists; deterministic (ties: best rank, then id)."""

    def __init__(self, config: FusionConfig) -> None:
        self.config = config

    def run(self, bm25: Hits, dense: Hits, top_k: int | None = None) -> list[FusedHit]:
        b_rank = {cid: r for r, (cid, _) in enumerate(bm25, 1)}
        d_rank = {cid: r for r, (cid, _) in enumerate(dense, 1)}
        b_score = dict(bm25)
        d_score = dict(dense)
        ids = list(dict.fromkeys([cid for cid, _ in bm25] + [cid for cid, _ in dense]))
        cfg = self.config
        fused: dict[str, float] = {}
        if cfg.mode == FusionMode.RRF:
            for cid in ids:
                s = 0.0
                if cid in b_rank:
                    s += 1.0 / (cfg.rrf_k + b_rank[cid])
                if cid in d_rank:
                    s += 1.0 / (cfg.rrf_k + d_rank[cid])
                fused[cid] = s
        else:
            bn, dn = _minmax(bm25), _minmax(dense)
            for cid in ids:
                fused[cid] = cfg.alpha * dn.get(cid, 0.0) + (1 - cfg.alpha) * bn.get(cid, 0.0)
        big = len(ids) + 1

        def key(cid: str) -> tuple[float, int, str]:
            return (-fused[cid], min(b_rank.get(cid, big), d_rank.get(cid, big)), cid)

        out = [
            FusedHit(
                cid,
                fused[cid],
                b_rank.get(cid),
                b_score.get(cid),
                d_rank.get(cid),
                d_score.get(cid),
            )
            for cid in sorted(ids, key=key)
        ]
        return out if top_k is None else out[:top_k]

    def run_many(
        self, bm25: Sequence[Hits], dense: Sequence[Hits], top_k: int | None = None
    ) -> list[list[FusedHit]]:
        if len(bm25) != len(dense):
            raise ValueError(f"{len(bm25)} BM25 lists but {len(dense)} dense lists")
        return [self.run(b, d, top_k) for b, d in zip(bm25, dense, strict=True)]
