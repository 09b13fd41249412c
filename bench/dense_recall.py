"""Dense recall: FaissIndex's HNSW config vs exact flat search at 100,000 vectors.

Two kinds of vectors (``--data``):

- ``real`` (default): all-MiniLM-L6-v2 embeddings of real text from ``../shared/datasets``
  (SciFact abstracts, then SQuAD dev paragraphs; XQuAD is a subset of those), cut by the
  platform's own ``Chunker`` into 28-token windows with 14 tokens of overlap, so 100,000
  distinct chunks come out of the text there is (at the default 200-token chunks the data
  sets give only ~14k). Queries are real: SciFact claims and SQuAD dev questions,
  embedded by the same model, none of them in the index. The embeddings are cached
  (``--cache``), so only the first run pays for embedding.
- ``synthetic``: clustered 384-d unit vectors: 2,000 Gaussian clusters (noise norm 1.5x
  the centre norm) plus a shared dominant direction (as sentence embeddings have), so
  neighbourhoods are crowded. Queries are fresh samples of the same distribution.

    python -m bench.dense_recall [--data real|synthetic] [--n 100000] [--queries 1000]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from core.settings import DenseSettings, IngestSettings
from retrieval.dense import FaissIndex, normalize

WINDOW_TOKENS, OVERLAP_TOKENS = 28, 14


def clustered(rng: np.random.Generator, n: int, dim: int, centres: np.ndarray) -> np.ndarray:
    common = np.ones(dim, dtype=np.float32) / np.sqrt(dim)
    which = rng.integers(0, len(centres), size=n)
    x = centres[which] + 1.5 * rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return normalize(x + 0.6 * common)


def real_texts(n: int, n_queries: int) -> tuple[list[str], list[str], object]:
    """``n`` distinct chunk texts and ``n_queries`` questions from the shared data sets,
    and the embedder that will embed them."""
    from evals.datasets import load_dataset
    from ingest.chunking import Chunker
    from ingest.embedding import SentenceTransformerEmbedder
    from ingest.loaders import load_bytes

    embedder = SentenceTransformerEmbedder()
    chunker = Chunker(
        IngestSettings(chunk_size_tokens=WINDOW_TOKENS, chunk_overlap_tokens=OVERLAP_TOKENS),
        embedder.count_tokens,
    )
    scifact, squad = load_dataset("scifact", "train"), load_dataset("squad", "dev")
    texts: dict[str, None] = {}  # insertion-ordered set: distinct chunk texts
    for ds in (scifact, squad):
        for doc_id, (title, body) in ds.corpus.items():
            raw = f"{title}\n\n{body}".strip().encode()
            for draft in chunker.split(load_bytes(raw, f"{doc_id}.txt", max_bytes=1 << 24)):
                texts.setdefault(draft.text)
            if len(texts) >= n:
                break
        if len(texts) >= n:
            break
    if len(texts) < n:
        raise SystemExit(f"the data sets give only {len(texts):,} chunks; ask for fewer (--n)")
    half = n_queries // 2
    queries = list(scifact.queries.values())[:half] + list(squad.queries.values())
    return list(texts)[:n], queries[:n_queries], embedder


def real_vectors(n: int, n_queries: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """Embedded chunks and queries (see ``real_texts``), cached in ``cache``."""
    path = cache / f"dense_recall_real_{n}_{n_queries}_{WINDOW_TOKENS}_{OVERLAP_TOKENS}.npz"
    if path.is_file():
        saved = np.load(path)
        return saved["data"], saved["queries"]
    texts, questions, embedder = real_texts(n, n_queries)
    t0 = time.perf_counter()
    data = embedder.embed(texts)  # type: ignore[attr-defined]
    queries = embedder.embed(questions)  # type: ignore[attr-defined]
    print(f"embedded {n:,} chunks and {len(questions)} queries in "
          f"{time.perf_counter() - t0:.0f}s (cached in {path})")
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, data=data, queries=queries)
    return data, queries


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
    ap.add_argument("--dim", type=int, default=384, help="synthetic vectors only")
    ap.add_argument("--data", choices=("real", "synthetic"), default="real")
    ap.add_argument("--hnsw-threshold", type=int, default=None, help="default: settings'")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "rag-platform",
                    help="where real embeddings are cached between runs")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    if args.data == "real":
        data, queries = real_vectors(args.n, args.queries, args.cache)
        args.dim, args.queries = data.shape[1], len(queries)
        what = (f"{args.n:,} real all-MiniLM-L6-v2 embeddings ({WINDOW_TOKENS}-token windows "
                f"of SciFact + SQuAD dev), {len(queries)} real queries")
    else:
        centres = normalize(rng.standard_normal((2000, args.dim)).astype(np.float32))
        data = clustered(rng, args.n, args.dim, centres)
        queries = clustered(rng, args.queries, args.dim, centres)
        what = f"{args.n:,} clustered synthetic {args.dim}-d vectors, {args.queries} queries"
    ids = [f"c{i}" for i in range(args.n)]
    settings = DenseSettings()  # the shipped defaults: HNSW from 50,000 vectors
    if args.hnsw_threshold is not None:  # smaller runs (the smoke test) still get HNSW
        settings = settings.model_copy(update={"hnsw_threshold": args.hnsw_threshold})

    flat = FaissIndex(args.dim, DenseSettings(hnsw_threshold=10**9))
    _, t_flat_build = timed(flat.add, ids, data)
    hnsw = FaissIndex(args.dim, settings)
    _, t_hnsw_build = timed(hnsw.add, ids, data)
    assert flat.kind == "flat" and hnsw.kind == "hnsw"
    print(f"{what}; HNSW M={settings.hnsw_m} efConstruction={settings.hnsw_ef_construction}")
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
