"""Retrieval at scale: index build time, memory per chunk, hybrid query latency.

Synthetic data: Zipfian pseudo-word text (for BM25 speed) and clustered unit vectors
(for dense speed and HNSW recall against exact search). Each size runs in its own
subprocess so memory figures do not bleed between sizes.

    python bench/retrieval_scale.py                 # 10k and 100k chunks
    python bench/retrieval_scale.py --full          # also 1M
    python bench/retrieval_scale.py --sizes 10000   # any sizes

Columns: build_s (BM25 + FAISS index build and save through ``IndexStore.upsert``),
mem/chunk (resident memory the built indexes add, per chunk), disk/chunk, dense kind
and recall@10 against exact search on clustered query vectors, hybrid query latency
p50/p99 in ms *including the query embedding* (one query per call) with 1 worker and
with 2 workers (threads sharing one retriever), and queries/s with 2 workers.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DIM = 384
VOCAB = 50_000
CHUNK_WORDS = 120  # about one 200-token chunk of prose
QUERY_WORDS = 8
N_CLUSTERS = 1_000
N_QUERIES = 200
WARMUP = 10


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def pseudo_words(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` distinct pronounceable pseudo-words (syllable strings)."""
    cons, vows = "bcdfghjklmnprstvwz", "aeiou"
    sylls = [c + v for c in cons for v in vows]  # 90 syllables
    words: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        k = int(rng.integers(1, 5))
        w = "".join(sylls[i] for i in rng.integers(0, len(sylls), size=k))
        if w not in words:
            words.add(w)
            out.append(w)
    return out


def zipf_ids(n: int, vocab: int, rng: np.random.Generator, s: float = 1.1) -> np.ndarray:
    """``n`` word ids drawn from a Zipf(s) distribution over ``vocab`` ranks."""
    ranks = np.arange(1, vocab + 1, dtype=np.float64)
    p = ranks**-s
    p /= p.sum()
    return rng.choice(vocab, size=n, p=p)


def synthetic_texts(
    n: int, words: list[str], length: int, rng: np.random.Generator, chunk: int = 50_000
) -> list[str]:
    out: list[str] = []
    w = np.asarray(words, dtype=object)
    for lo in range(0, n, chunk):
        m = min(chunk, n - lo)
        lens = rng.integers(length // 2, length * 3 // 2, size=m)
        ids = zipf_ids(int(lens.sum()), len(words), rng)
        pos = 0
        for ln in lens:
            out.append(" ".join(w[ids[pos : pos + ln]]))
            pos += ln
    return out


def clustered_vectors(
    n: int, centers: np.ndarray, rng: np.random.Generator, noise: float = 0.6
) -> np.ndarray:
    """Unit vectors scattered around random cluster centres (float32, (n, dim))."""
    out = np.empty((n, centers.shape[1]), dtype=np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        c = centers[rng.integers(0, len(centers), size=m)]
        v = c + rng.standard_normal((m, centers.shape[1]), dtype=np.float32) * (
            noise / np.sqrt(centers.shape[1])
        )
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        out[lo : lo + m] = v
    return out


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_one(n: int, seed: int = 0) -> dict[str, object]:
    """Build the indexes for ``n`` chunks and time hybrid queries; returns one table row."""
    import torch

    from api.platform import Platform
    from core import repository
    from core.settings import Settings
    from core.types import CollectionKey

    rng = np.random.default_rng(seed)
    words = pseudo_words(VOCAB, rng)
    t0 = time.perf_counter()
    texts = synthetic_texts(n, words, CHUNK_WORDS, rng)
    centers = rng.standard_normal((N_CLUSTERS, DIM), dtype=np.float32)
    centers /= np.linalg.norm(centers, axis=1, keepdims=True)
    vectors = clustered_vectors(n, centers, rng)
    ids = [f"c{i:08d}" for i in range(n)]
    gen_s = time.perf_counter() - t0

    tmp = Path(tempfile.mkdtemp(prefix="rag-bench-"))
    settings = Settings(data_dir=tmp)
    rag = Platform(settings)  # the composition root: the stages the REST app uses
    engine = rag.engine
    with repository.write(engine) as s:
        cid = repository.get_or_create_collection(s, CollectionKey.default("bench")).id

    embedder = rag.embedder
    embedder.embed(["warm up the model"])
    store = rag.store
    gc.collect()
    rss0 = rss_bytes()
    t0 = time.perf_counter()
    store.upsert(cid, ids, texts, vectors)
    build_s = time.perf_counter() - t0
    del texts
    gc.collect()
    rss1 = rss_bytes()
    disk = dir_bytes(settings.index_dir / cid)
    # The store keeps its own copy of the vectors; the caller's array is not index memory.
    mem_per_chunk = (rss1 - rss0) / n

    # Dense recall@10: the index (flat or HNSW) against exact search, clustered queries.
    dense = store.dense(cid)
    qv = clustered_vectors(N_QUERIES, centers, rng)
    got = dense.search(qv, 10)
    exact = np.argsort(-(qv @ vectors.T), axis=1)[:, :10] if n <= 200_000 else None
    if exact is None:
        exact_rows = []
        for lo in range(0, N_QUERIES, 20):
            sims = qv[lo : lo + 20] @ vectors.T
            exact_rows.append(np.argpartition(-sims, 10, axis=1)[:, :10])
        exact = np.vstack(exact_rows)
    recall = float(
        np.mean(
            [
                len({h[0] for h in got[i]} & {ids[j] for j in exact[i]}) / 10
                for i in range(N_QUERIES)
            ]
        )
    )
    del vectors
    gc.collect()

    # Queries: one thread each (torch and FAISS share OpenMP); the build above used all.
    torch.set_num_threads(1)
    retriever = rag.retriever
    queries = synthetic_texts(N_QUERIES + WARMUP, words, QUERY_WORDS, rng)
    k = settings.retrieval.top_k

    def one(q: str) -> float:
        t = time.perf_counter()
        retriever.search_ids(cid, [q], method="hybrid", k=k)
        return (time.perf_counter() - t) * 1000

    for q in queries[:WARMUP]:
        one(q)
    lat1 = [one(q) for q in queries[WARMUP:]]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        lat2 = list(pool.map(one, queries[WARMUP:]))
    qps2 = len(lat2) / (time.perf_counter() - t0)
    engine.dispose()
    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "chunks": n,
        "gen_s": round(gen_s, 1),
        "build_s": round(build_s, 1),
        "mem_per_chunk_b": round(mem_per_chunk),
        "disk_per_chunk_b": round(disk / n),
        "dense_kind": dense.kind,
        "dense_recall@10": round(recall, 4),
        "p50_ms_1w": round(percentile(lat1, 50), 2),
        "p99_ms_1w": round(percentile(lat1, 99), 2),
        "qps_1w": round(1000 / statistics.mean(lat1), 1),
        "p50_ms_2w": round(percentile(lat2, 50), 2),
        "p99_ms_2w": round(percentile(lat2, 99), 2),
        "qps_2w": round(qps2, 1),
        "peak_rss_mb": round(rss_bytes() / 2**20),
    }


COLUMNS = [
    ("chunks", "chunks"),
    ("build_s", "build s"),
    ("mem_per_chunk_b", "mem/chunk B"),
    ("disk_per_chunk_b", "disk/chunk B"),
    ("dense_kind", "dense"),
    ("dense_recall@10", "dense R@10"),
    ("p50_ms_1w", "p50 ms 1w"),
    ("p99_ms_1w", "p99 ms 1w"),
    ("qps_1w", "q/s 1w"),
    ("p50_ms_2w", "p50 ms 2w"),
    ("p99_ms_2w", "p99 ms 2w"),
    ("qps_2w", "q/s 2w"),
]


def render(rows: list[dict[str, object]]) -> str:
    header = [h for _, h in COLUMNS]
    cells = [[str(r.get(key, "-")) for key, _ in COLUMNS] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = [
        "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", help="chunk counts (default 10k 100k)")
    ap.add_argument("--full", action="store_true", help="also run 1M chunks")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child process: one size
    ap.add_argument("--out", type=Path, help="also write the table to this file")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one)))
        return 0
    sizes = args.sizes or [10_000, 100_000]
    if args.full and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    rows = []
    for n in sizes:
        print(f"running {n} chunks ...", file=sys.stderr, flush=True)
        proc = subprocess.run(
            [sys.executable, __file__, "--one", str(n)],
            capture_output=True,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
        )
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append({"chunks": n, "build_s": f"failed rc={proc.returncode}"})
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    table = render(rows)
    info = (
        f"retrieval_scale: {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPU cores, python {platform.python_version()}; synthetic Zipfian "
        f"text ({CHUNK_WORDS}±50% words/chunk, vocab {VOCAB}), {N_CLUSTERS}-cluster {DIM}-d "
        f"vectors; {N_QUERIES} queries of {QUERY_WORDS} words; latency includes the "
        "all-MiniLM-L6-v2 query embedding (torch 1 thread per call)"
    )
    text = f"{info}\n\n{table}\n"
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
