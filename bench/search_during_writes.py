"""Search latency while documents are being written into the same collection.

A collection of ``--docs`` synthetic chunks (Zipfian pseudo-words, as in bm25_speed) sits
in an ``IndexStore``. One thread upserts one new chunk at a time (``IndexStore.upsert``:
BM25 + FAISS + persist) as fast as it can for ``--seconds``; another thread runs BM25
and dense searches through the same store meanwhile. Before the search views were built
by the writer off the lock, a search waited for the whole write (index update and
persist) and the first BM25 search after each write rebuilt the score matrix.

    python -m bench.search_during_writes [--docs 100000] [--seconds 20]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.bm25_speed import make_vocab, sample_texts
from core.settings import RetrievalSettings
from retrieval.dense import normalize
from retrieval.store import IndexStore

DIM = 384


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    vocab = make_vocab(60_000, rng)
    p = 1.0 / (np.arange(1, len(vocab) + 1) + 2.7) ** 1.07
    p /= p.sum()
    docs = sample_texts(rng, vocab, p, args.docs + 2_000, 60, 160)
    queries = sample_texts(rng, vocab, p, 500, 3, 8)
    vecs = normalize(rng.standard_normal((len(docs), DIM)).astype(np.float32))
    qvecs = normalize(rng.standard_normal((len(queries), DIM)).astype(np.float32))

    with tempfile.TemporaryDirectory(prefix="rag-bench-") as tmp:
        store = IndexStore(Path(tmp), RetrievalSettings(), DIM)
        n = args.docs
        ids = [f"c{i}" for i in range(len(docs))]
        t0 = time.perf_counter()
        store.upsert("bench", ids[:n], docs[:n], vecs[:n])
        store.sparse("bench").search(queries[:1], 10)
        print(f"{n:,} chunks indexed and saved in {time.perf_counter() - t0:.1f}s")

        stop = threading.Event()
        writes: list[float] = []

        def writer() -> None:
            i = n
            while not stop.is_set() and i < len(docs):
                t = time.perf_counter()
                store.upsert("bench", [ids[i]], [docs[i]], vecs[i : i + 1])
                writes.append(time.perf_counter() - t)
                i += 1

        def searches(during: bool) -> list[float]:
            lat: list[float] = []
            end = time.perf_counter() + args.seconds
            j = 0
            while time.perf_counter() < end:
                q = j % len(queries)
                t = time.perf_counter()
                store.sparse("bench").search([queries[q]], 10)
                store.dense("bench").search(qvecs[q : q + 1], 10)
                lat.append((time.perf_counter() - t) * 1000)
                j += 1
            return lat

        quiet = searches(False)
        w = threading.Thread(target=writer)
        w.start()
        busy = searches(True)
        stop.set()
        w.join()

    def row(name: str, lat: list[float]) -> str:
        a = np.asarray(lat)
        return (f"{name:<28}{len(a):>9,}{np.percentile(a, 50):>9.2f}{np.percentile(a, 99):>9.1f}"
                f"{a.max():>9.1f}")

    print(f"\nBM25 + dense search through IndexStore, {args.seconds:.0f}s each; "
          f"{len(writes)} one-chunk upserts during the second run "
          f"(median {np.median(writes) * 1000:.0f} ms each, persist included)\n")
    print(f"{'':<28}{'searches':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    print(row("no writes", quiet))
    print(row("while writing", busy))


if __name__ == "__main__":
    main()
