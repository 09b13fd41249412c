"""Dense recall: FaissIndex's HNSW config vs exact flat search at 100,000 vectors.

Vectors: CLUSTERED SYNTHETIC 384-d unit vectors (not real embeddings: this machine has
2 shared CPU cores, too slow to embed 100k chunks with all-MiniLM-L6-v2 in the time
given). 2,000 Gaussian clusters (noise norm 1.5x the centre norm) plus a shared
dominant direction (as sentence embeddings have), so neighbourhoods are crowded.
Queries are fresh samples of the same distribution (not in the index).

    python -m bench.dense_recall [--n 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from core.settings import DenseSettings
from retrieval.dense import FaissIndex, normalize


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    common = np.ones(dim, dtype=np.float32) / np.sqrt(dim)
    which = rng.integers(0, len(centres), size=n)
    x = centres[which] + 1.5 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return normalize(x + 0.6 * common)


def recall(got: list[list[tuple[str, float]]], truth: list[list[tuple[str, float]]]) -> float:
    return float(np.mean([len({a for a, _ in g} & {b for b, _ in t}) / len(t)
                          for g, t in zip(got, truth, strict=True)]))


def timed(fn, *a, **kw):
    t0 = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=384)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    centres = normalize(rng.standard_normal((2000, args.dim)).astype(np.float32))
    data = clustered(rng, args.n, args.dim, centres)
    queries = clustered(rng, args.queries, args.dim, centres)
    ids = [f"c{i}" for i in range(args.n)]
    settings = DenseSettings()  # the shipped defaults: HNSW from 50,000 vectors

    flat = FaissIndex(args.dim, DenseSettings(hnsw_threshold=10**9))
    _, t_flat_build = timed(flat.add, ids, data)
    hnsw = FaissIndex(args.dim, settings)
    _, t_hnsw_build = timed(hnsw.add, ids, data)
    assert flat.kind == "flat" and hnsw.kind == "hnsw"
    print(f"{args.n:,} clustered synthetic {args.dim}-d vectors, {args.queries} queries; "
          f"HNSW M={settings.hnsw_m} efConstruction={settings.hnsw_ef_construction}")
    print(f"build: flat {t_flat_build:.1f}s, HNSW {t_hnsw_build:.1f}s\n")

    truth, t_truth = timed(flat.search, queries, 10)
    n_single = 200

    def single_ms(index: FaissIndex) -> float:
        t0 = time.perf_counter()
        for q in queries[:n_single]:
            index.search(q[None, :], 10)
        return (time.perf_counter() - t0) / n_single * 1000

    print(f"{'index':<30}{'recall@10':>10}{'batch q/s':>12}{'1-query ms':>12}")
    print(f"{'flat (exact)':<30}{1.0:>10.3f}{args.queries / t_truth:>12,.0f}"
          f"{single_ms(flat):>12.2f}")
    raw = hnsw._index.hnsw  # bench-only: vary efSearch around the default
    for ef in (32, 64, settings.hnsw_ef_search, 256):
        raw.efSearch = ef
        got, t = timed(hnsw.search, queries, 10)
        tag = " (default)" if ef == settings.hnsw_ef_search else ""
        print(f"{'HNSW efSearch=' + str(ef) + tag:<30}{recall(got, truth):>10.3f}"
              f"{args.queries / t:>12,.0f}{single_ms(hnsw):>12.2f}")
    raw.efSearch = settings.hnsw_ef_search

    # deletes (tombstones) and a 5 % allowed filter, both against exact answers
    dead = [f"c{i}" for i in range(0, args.n, 10)]
    flat.delete(dead)
    hnsw.delete(dead)
    got, _ = timed(hnsw.search, queries, 10)
    print(f"\nafter deleting 10 %: HNSW recall@10 {recall(got, flat.search(queries, 10)):.3f}")
    allowed = {f"c{i}" for i in range(3, args.n, 20)}
    got, t = timed(hnsw.search, queries, 10, allowed)
    exact = flat.search(queries, 10, allowed)
    full = np.mean([len(g) == 10 for g in got])
    print(f"5 % allowed filter: HNSW recall@10 {recall(got, exact):.3f}, "
          f"top-10 filled {full:.0%}, {args.queries / t:,.0f} q/s")


if __name__ == "__main__":
    main()
