"""Oracle: BM25Index scores equal rank_bm25.BM25Okapi's on the same tokens."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from core.settings import BM25Settings
from retrieval.bm25 import BM25Index
from retrieval.errors import IndexCorrupt
from retrieval.tokenize import Bm25Tokenizer

SCIFACT = Path("/work/shared/datasets/scifact")


def _corpus(n: int) -> tuple[list[str], list[str], list[str]]:
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip("scifact dataset not present in /work/shared/datasets")
    docs, queries = [], []
    with open(SCIFACT / "corpus.jsonl") as f:
        for line in f:
            docs.append(json.loads(line))
            if len(docs) == n:
                break
    with open(SCIFACT / "queries.jsonl") as f:
        for line in f:
            queries.append(json.loads(line)["text"])
            if len(queries) == 40:
                break
    return [d["_id"] for d in docs], [d["title"] + " " + d["text"] for d in docs], queries


def _assert_equal(index: BM25Index, ids: list[str], toks: list[list[str]], queries) -> None:
    ref = BM25Okapi(toks, k1=index.k1, b=index.b, epsilon=index.epsilon)
    for q in queries:
        expected = ref.get_scores(q)
        got = index.scores(q)
        assert set(got) == set(ids)
        np.testing.assert_allclose([got[i] for i in ids], expected, rtol=0, atol=1e-6)
        # top-10 from search agrees with the reference ranking's scores
        hits = index.search_tokens([q], 10)[0]
        top = np.sort(expected[expected != 0])[::-1][:10]
        np.testing.assert_allclose([s for _, s in hits], top, atol=1e-6)


@pytest.mark.parametrize(
    "settings",
    [BM25Settings(), BM25Settings(k1=0.9, b=0.4, epsilon=0.5, stemmer="none")],
    ids=["default", "k1-0.9-b-0.4-nostem"],
)
def test_scores_equal_rank_bm25(settings: BM25Settings) -> None:
    ids, texts, queries = _corpus(300)
    tok = Bm25Tokenizer(settings)
    toks = tok.tokenize_many(texts)
    qtoks = tok.tokenize_many(queries)
    qtoks.append(qtoks[0] + qtoks[0][:2])  # repeated query tokens count twice
    qtoks.append(["the", "of"] + toks[0][:3])  # frequent terms: negative idf -> epsilon floor
    index = BM25Index(tok, settings.k1, settings.b, settings.epsilon)
    index.add_tokens(ids, toks)
    _assert_equal(index, ids, toks, qtoks)


def test_equal_after_deletes_readds_and_reload(tmp_path: Path) -> None:
    ids, texts, queries = _corpus(300)
    tok = Bm25Tokenizer(BM25Settings())
    toks = tok.tokenize_many(texts)
    qtoks = tok.tokenize_many(queries)
    index = BM25Index(tok)
    index.add_tokens(ids[:200], toks[:200])
    index.add_tokens(ids[200:], toks[200:])
    index.delete(ids[:100])  # >= 25 % tombstones: compaction runs
    index.add_tokens(ids[:30], toks[:30])  # re-add some
    index.add_tokens(ids[250:260], [t[:5] for t in toks[250:260]])  # replace with new text
    live = [*ids[100:], *ids[:30]]
    live_toks = {i: t for i, t in zip(ids, toks, strict=True)}
    for i, t in zip(ids[250:260], toks[250:260], strict=True):
        live_toks[i] = t[:5]
    index.delete(ids[40:45])  # absent ids: no-op
    live_ids = sorted(set(live))
    _assert_equal(index, live_ids, [live_toks[i] for i in live_ids], qtoks)
    index.save(tmp_path)
    again = BM25Index.load(tmp_path, tok)
    _assert_equal(again, live_ids, [live_toks[i] for i in live_ids], qtoks)


def test_load_with_other_tokenizer_is_corrupt(tmp_path: Path) -> None:
    index = BM25Index(Bm25Tokenizer(BM25Settings()))
    index.add(["a"], ["running dogs"])
    index.save(tmp_path)
    with pytest.raises(IndexCorrupt, match="tokenizer"):
        BM25Index.load(tmp_path, Bm25Tokenizer(BM25Settings(stemmer="none")))
    (tmp_path / "bm25.npz").unlink()
    with pytest.raises(IndexCorrupt):
        BM25Index.load(tmp_path, Bm25Tokenizer(BM25Settings()))


def test_tokenizer() -> None:
    tok = Bm25Tokenizer(BM25Settings())
    assert tok.tokenize("The Running DOGS, and cats!") == ["run", "dog", "cat"]
    assert tok.tokenize_many(["running", "", "x y"]) == [["run"], [], ["x", "y"]]
    raw = Bm25Tokenizer(BM25Settings(lowercase=False, stopwords="none", stemmer="none"))
    assert raw.tokenize("The Running DOGS") == ["The", "Running", "DOGS"]
