"""BM25 speed: BM25Index vs rank_bm25.BM25Okapi at 100,000 chunks, same tokens, same top-10.

Corpus: synthetic Zipf-Mandelbrot text (exponent 1.07) whose most frequent "words" are
the tokenizer's English stop words (as in real text), then ~60k pseudo-words; 60-160
words a chunk; queries of 3-8 words drawn from the same distribution. rank_bm25 is
timed on a subset of queries (it scans every document per query term).

    python -m bench.bm25_speed [--docs 100000] [--queries 2000] [--ref-queries 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from bm25s.stopwords import STOPWORDS_EN
from rank_bm25 import BM25Okapi

from core.settings import BM25Settings
from retrieval.bm25 import BM25Index
from retrieval.tokenize import Bm25Tokenizer


def make_vocab(n: int, rng: np.random.Generator) -> list[str]:
    syll = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["an", "er", "or", "is"]
    words = list(dict.fromkeys(STOPWORDS_EN))
    seen = set(words)
    while len(words) < n:
        w = "".join(rng.choice(syll, size=rng.integers(2, 5)))
        if w not in seen:
            seen.add(w)
            words.append(w)
    return words


def sample_texts(
    rng: np.random.Generator, vocab: list[str], p: np.ndarray, n: int, lo: int, hi: int
) -> list[str]:
    lens = rng.integers(lo, hi + 1, size=n)
    flat = rng.choice(len(vocab), size=int(lens.sum()), p=p)
    out, pos = [], 0
    for ln in lens:
        out.append(" ".join(vocab[i] for i in flat[pos : pos + ln]))
        pos += ln
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--ref-queries", type=int, default=20)
    ap.add_argument("--vocab", type=int, default=60_000)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    vocab = make_vocab(args.vocab, rng)
    ranks = np.arange(1, len(vocab) + 1)
    p = 1.0 / (ranks + 2.7) ** 1.07
    p /= p.sum()
    t0 = time.perf_counter()
    docs = sample_texts(rng, vocab, p, args.docs, 60, 160)
    queries = sample_texts(rng, vocab, p, args.queries, 3, 8)
    print(f"generated {len(docs):,} chunks, {len(queries):,} queries "
          f"in {time.perf_counter() - t0:.1f}s")

    tok = Bm25Tokenizer(BM25Settings())
    t0 = time.perf_counter()
    doc_toks = tok.tokenize_many(docs)
    q_toks = tok.tokenize_many(queries)
    t_tok = time.perf_counter() - t0
    ids = [f"c{i}" for i in range(len(docs))]

    t0 = time.perf_counter()
    ours = BM25Index(tok)
    ours.add_tokens(ids, doc_toks)
    ours.search_tokens([q_toks[0]], 10)  # builds the score matrix
    t_build = time.perf_counter() - t0

    t0 = time.perf_counter()
    ref = BM25Okapi(doc_toks)
    t_ref_build = time.perf_counter() - t0

    # ours, batch (texts in, tokenization included)
    t0 = time.perf_counter()
    batch_hits = ours.search(queries, k=10)
    t_batch = time.perf_counter() - t0
    # ours, one query per call (tokenization included)
    n_single = min(len(queries), 500)
    t0 = time.perf_counter()
    for q in queries[:n_single]:
        ours.search([q], k=10)
    t_single = time.perf_counter() - t0

    # rank_bm25 on a subset, pre-tokenized (its favour)
    n_ref = args.ref_queries
    max_diff = 0.0
    t0 = time.perf_counter()
    ref_scores = [ref.get_scores(q) for q in q_toks[:n_ref]]
    t_ref = time.perf_counter() - t0
    # rank_bm25's ranking: score descending, equal scores (to 1e-9) in corpus order, the
    # order BM25Index documents for ties; only documents sharing a term with the query.
    slot = np.arange(len(docs))
    ref_top = [
        [i for i in np.lexsort((slot, -np.round(s, 9)))[:10] if s[i] != 0] for s in ref_scores
    ]
    score_agree = same_lists = 0
    for qi in range(n_ref):
        mine = batch_hits[qi]
        theirs = [ids[i] for i in ref_top[qi]]
        same_lists += [h[0] for h in mine] == theirs
        ref_sorted = np.sort(ref_scores[qi][ref_scores[qi] != 0])[::-1][:10]
        diff = np.abs(np.array([s for _, s in mine]) - ref_sorted)
        max_diff = max(max_diff, float(diff.max()) if len(diff) else 0.0)
        score_agree += bool(len(diff) == len(ref_sorted) and (diff < 1e-6).all())

    qps_ref = n_ref / t_ref
    qps_batch = len(queries) / t_batch
    qps_single = n_single / t_single
    avg_terms = np.mean([len(q) for q in q_toks])
    print(f"\nBM25 at {len(docs):,} chunks ({sum(map(len, doc_toks)):,} tokens after "
          f"stop words; {len(ours._terms):,} terms); queries average {avg_terms:.1f} terms")
    print(f"tokenize all chunks: {t_tok:.1f}s; build: ours {t_build:.1f}s, "
          f"rank_bm25 {t_ref_build:.1f}s\n")
    print(f"{'engine':<38}{'queries':>8}{'seconds':>10}{'q/s':>12}{'vs rank_bm25':>14}")
    rows = [
        ("rank_bm25.BM25Okapi (pre-tokenized)", n_ref, t_ref, qps_ref),
        ("BM25Index.search, one batch", len(queries), t_batch, qps_batch),
        ("BM25Index.search, one query a call", n_single, t_single, qps_single),
    ]
    for name, n, t, qps in rows:
        print(f"{name:<38}{n:>8}{t:>10.3f}{qps:>12,.0f}{qps / qps_ref:>13,.0f}x")
    print(f"\ntop-10 agreement on the {n_ref} reference queries: identical top-10 id lists "
          f"(same order) {same_lists}/{n_ref}, identical top-10 score lists "
          f"{score_agree}/{n_ref}, max |score diff| {max_diff:.2e}")


if __name__ == "__main__":
    main()
