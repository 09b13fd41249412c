"""BM25 index with rank_bm25.BM25Okapi's exact scores, served by sparse matrix products.

Scores equal ``rank_bm25.BM25Okapi`` built on the live documents' tokens: idf is
``log((N - n + 0.5) / (n + 0.5))`` with negative idfs replaced by
``epsilon * mean(idf over all corpus terms)``; ``avgdl`` is the mean token count;
a query token repeated counts once per repeat.

Speed: per-(term, doc) BM25 contributions are precomputed into a terms x docs CSR
matrix (rebuilt after a change, since N, avgdl and idf all move, off the mutation lock
while searches keep reading the previous one), so a batch of
queries is one sparse product ``counts (Q x terms) @ scores (terms x docs)`` followed by
``np.argpartition`` over each row's non-zeros.

    index = BM25Index(Bm25Tokenizer(BM25Settings()))
    index.add(["c1", "c2"], ["cats purr", "dogs bark"])
    index.search(["cat"], k=10)                 # [[("c1", 0.28...)]]
    index.save(path); BM25Index.load(path, tokenizer)

Only documents sharing at least one term with a query are returned.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from core.settings import BM25Settings
from retrieval._io import atomic_write, atomic_write_json, read_json
from retrieval.errors import IndexCorrupt
from retrieval.ports import Hits
from retrieval.tokenize import Bm25Tokenizer

FORMAT = 1
_NPZ = "bm25.npz"
_JSON = "bm25.json"
_QUERY_BATCH = 512  # queries per sparse product (bounds the dense-ish result's memory)


@dataclass(frozen=True, slots=True)
class _View:
    """What a search reads: one state's score matrix and id maps, never changed after it
    is published (a change builds a new one), so searches run without a lock."""

    version: int
    scores: sp.csr_matrix  # terms x slots
    slot_ids: list[str | None]
    vocab: dict[str, int]
    slot_of: dict[str, int]


class BM25Index:
    """Incremental BM25Okapi index implementing ``retrieval.ports.SparseIndex``.

    ``add`` with a present id replaces it; ``delete`` ignores absent ids. Deleted
    documents are tombstoned and compacted away once they are a quarter of the slots.
    Thread-safe: one lock guards mutation; searches read an immutable view (score matrix
    and id maps) built after a change, by ``refresh()`` or by the first search after it,
    outside that lock. While a new view is being built, other searches keep using the
    previous one instead of waiting.
    """

    def __init__(
        self,
        tokenizer: Bm25Tokenizer | None = None,
        k1: float = 1.5,
        b: float = 0.75,
        epsilon: float = 0.25,
    ) -> None:
        self.tokenizer = tokenizer or Bm25Tokenizer()
        self.k1, self.b, self.epsilon = float(k1), float(b), float(epsilon)
        self._lock = threading.RLock()
        self._vocab: dict[str, int] = {}
        self._terms: list[str] = []
        self._slot_ids: list[str | None] = []  # slot -> chunk id (None: tombstone)
        self._slot_of: dict[str, int] = {}  # live chunk id -> slot
        self._doc_len = np.zeros(0, dtype=np.int64)
        self._live = np.zeros(0, dtype=bool)
        # Postings as COO parts (doc slot, term id, count), concatenated lazily.
        self._parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._version = 0  # bumped by every change
        self._view: _View | None = None  # what searches read; rebuilt after changes
        self._build = threading.Lock()  # one view build at a time

    @classmethod
    def from_settings(cls, settings: BM25Settings) -> BM25Index:
        return cls(Bm25Tokenizer(settings), settings.k1, settings.b, settings.epsilon)

    # -- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._slot_of

    def ids(self) -> set[str]:
        with self._lock:
            return set(self._slot_of)

    # -- mutation -----------------------------------------------------------------------

    def add(self, ids: Sequence[str], texts: Sequence[str]) -> None:
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        self.add_tokens(ids, self.tokenizer.tokenize_many(texts))

    def add_tokens(self, ids: Sequence[str], token_lists: Sequence[Sequence[str]]) -> None:
        """Add already-tokenized documents (the oracle tests feed rank_bm25 the same tokens)."""
        if len(ids) != len(token_lists):
            raise ValueError(f"{len(ids)} ids but {len(token_lists)} token lists")
        if not ids:
            return
        # A repeated id inside one batch: the last one wins.
        last: dict[str, int] = {cid: i for i, cid in enumerate(ids)}
        order = sorted(last.values())
        with self._lock:
            self._delete_locked([ids[i] for i in order])
            start = len(self._slot_ids)
            lens = np.zeros(len(order), dtype=np.int64)
            vocab, term_list = self._vocab, self._terms
            docs_toks = [token_lists[i] for i in order]
            for j, toks in enumerate(docs_toks):
                lens[j] = len(toks)
            flat: list[int] = []
            for toks in docs_toks:
                for t in toks:
                    tid = vocab.get(t)
                    if tid is None:
                        tid = vocab[t] = len(term_list)
                        term_list.append(t)
                    flat.append(tid)
            if flat:
                n_terms = np.int64(len(term_list))
                doc = np.repeat(np.arange(start, start + len(order), dtype=np.int64), lens)
                keys, cnt = np.unique(
                    doc * n_terms + np.asarray(flat, dtype=np.int64), return_counts=True
                )
                self._parts.append(
                    (
                        (keys // n_terms).astype(np.int32),
                        (keys % n_terms).astype(np.int32),
                        cnt.astype(np.int32),
                    )
                )
            for j, i in enumerate(order):
                self._slot_ids.append(ids[i])
                self._slot_of[ids[i]] = start + j
            self._doc_len = np.concatenate([self._doc_len, lens])
            self._live = np.concatenate([self._live, np.ones(len(order), dtype=bool)])
            self._version += 1

    def delete(self, ids: Sequence[str]) -> None:
        with self._lock:
            self._delete_locked(ids)
            dead = len(self._slot_ids) - len(self._slot_of)
            if dead >= 64 and dead * 4 >= len(self._slot_ids):
                self._compact()

    def _delete_locked(self, ids: Sequence[str]) -> None:
        for cid in ids:
            slot = self._slot_of.pop(cid, None)
            if slot is not None:
                self._slot_ids[slot] = None
                self._live[slot] = False
                self._version += 1

    def _postings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if len(self._parts) != 1:
            if self._parts:
                d, t, c = (np.concatenate(x) for x in zip(*self._parts, strict=True))
            else:
                d = t = c = np.zeros(0, dtype=np.int32)
            self._parts = [(d, t, c)]
        return self._parts[0]

    def _compact(self) -> None:
        """Drop tombstoned slots and terms no live document uses; renumber both."""
        d, t, c = self._postings()
        keep_slot = self._live.copy()
        new_slot = np.cumsum(keep_slot, dtype=np.int64) - 1
        m = keep_slot[d] if len(d) else np.zeros(0, dtype=bool)
        d, t, c = d[m], t[m], c[m]
        used = np.zeros(len(self._terms), dtype=bool)
        used[t] = True
        new_term = np.cumsum(used, dtype=np.int64) - 1
        self._terms = [term for term, u in zip(self._terms, used, strict=True) if u]
        self._vocab = {term: i for i, term in enumerate(self._terms)}
        self._parts = [
            (new_slot[d].astype(np.int32), new_term[t].astype(np.int32), c.astype(np.int32))
        ]
        self._slot_ids = [cid for cid in self._slot_ids if cid is not None]
        self._slot_of = {cid: i for i, cid in enumerate(self._slot_ids)}  # type: ignore[misc]
        self._doc_len = self._doc_len[keep_slot]
        self._live = np.ones(len(self._slot_ids), dtype=bool)
        self._version += 1

    # -- scoring --------------------------------------------------------------------------

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Make changes inside this block: the view build is held for the whole block and
        the new view built before it ends, so searches meanwhile keep using the previous
        view and none of them builds one itself. Do not search inside the block."""
        with self._build:
            yield
            if self._view is None or self._view.version != self._version:
                self._view = self._make_view()

    def refresh(self) -> None:
        """Build the search view for the latest change now (the store calls this after its
        writes, so the first search after a write does not pay for it)."""
        self._fresh_view(wait=True)

    def _fresh_view(self, wait: bool) -> _View:
        """The view of the current state. When it is stale and another thread is already
        building one, ``wait=False`` returns the previous view (a search racing a write
        may see the index as it was before that write) instead of waiting."""
        view = self._view
        if view is not None and view.version == self._version:
            return view
        if not self._build.acquire(blocking=wait or view is None):
            return view  # type: ignore[return-value]
        try:
            view = self._view
            if view is None or view.version != self._version:
                view = self._make_view()
                self._view = view
            return view
        finally:
            self._build.release()

    def _make_view(self) -> _View:
        """Score matrix (terms x slots, BM25Okapi contributions of the live documents)
        and copies of the id maps; computed outside the mutation lock."""
        with self._lock:  # a consistent copy of the inputs; mutations wait only for this
            version = self._version
            d, t, c = self._postings()
            live, doc_len = self._live.copy(), self._doc_len.copy()
            n_terms, n_slots = len(self._terms), len(self._slot_ids)
            slot_ids, vocab = list(self._slot_ids), dict(self._vocab)
            slot_of = dict(self._slot_of)
        n_docs = int(live.sum())
        if n_docs == 0 or len(d) == 0:
            scores = sp.csr_matrix((n_terms, n_slots), dtype=np.float64)
            return _View(version, scores, slot_ids, vocab, slot_of)
        m = live[d]
        d, t, c = d[m], t[m], c[m].astype(np.float64)
        df = np.bincount(t, minlength=n_terms).astype(np.float64)
        present = df > 0
        idf = np.log(n_docs - df + 0.5) - np.log(df + 0.5)
        average_idf = float(idf[present].mean())  # over every term of the corpus
        idf[present & (idf < 0)] = self.epsilon * average_idf
        avgdl = float(doc_len[live].sum()) / n_docs
        norm = self.k1 * (1 - self.b + self.b * doc_len.astype(np.float64) / avgdl)
        data = idf[t] * (c * (self.k1 + 1) / (c + norm[d]))
        scores = sp.csr_matrix((data, (t, d)), shape=(n_terms, n_slots))
        return _View(version, scores, slot_ids, vocab, slot_of)

    def search(
        self, queries: Sequence[str], k: int, allowed: set[str] | None = None
    ) -> list[Hits]:
        return self.search_tokens(self.tokenizer.tokenize_many(queries), k, allowed)

    def search_tokens(
        self, token_lists: Sequence[Sequence[str]], k: int, allowed: set[str] | None = None
    ) -> list[Hits]:
        """Top-``k`` (id, score) per tokenized query, best first; ``allowed`` filters inside."""
        if k <= 0 or not token_lists:
            return [[] for _ in token_lists]
        view = self._fresh_view(wait=False)  # no lock: views are never changed
        scores, slot_ids, vocab = view.scores, view.slot_ids, view.vocab
        mask: np.ndarray | None = None
        if allowed is not None:
            mask = np.zeros(len(slot_ids), dtype=bool)
            slots = [s for s in map(view.slot_of.get, allowed) if s is not None]
            mask[np.asarray(slots, dtype=np.int64)] = True
        rows: list[int] = []
        cols: list[int] = []
        for qi, toks in enumerate(token_lists):
            for tok in toks:
                tid = vocab.get(tok)
                if tid is not None:
                    rows.append(qi)
                    cols.append(tid)
        out: list[Hits] = []
        qm = sp.csr_matrix(
            (np.ones(len(rows)), (np.asarray(rows, np.int64), np.asarray(cols, np.int64))),
            shape=(len(token_lists), scores.shape[0]),
        )  # duplicates sum: a repeated query token counts twice, as in BM25Okapi
        for lo in range(0, len(token_lists), _QUERY_BATCH):
            res = (qm[lo : lo + _QUERY_BATCH] @ scores).tocsr()
            indptr, indices, data = res.indptr, res.indices, res.data
            for r in range(res.shape[0]):
                idx = indices[indptr[r] : indptr[r + 1]]
                val = data[indptr[r] : indptr[r + 1]]
                if mask is not None:
                    keep = mask[idx]
                    idx, val = idx[keep], val[keep]
                if len(val) > k:
                    # keep every score tied with the k-th, so the cut below takes the
                    # earliest-inserted of them (argpartition alone picks any)
                    kth = val[np.argpartition(-val, k - 1)[k - 1]]
                    keep = val >= kth
                    idx, val = idx[keep], val[keep]
                order = np.lexsort((idx, -val))[:k]  # score desc, then insertion order
                out.append([(slot_ids[idx[o]], float(val[o])) for o in order])  # type: ignore[misc]
        return out

    def scores(self, tokens: Sequence[str]) -> dict[str, float]:
        """Every live document's score for one tokenized query (for oracle tests)."""
        view = self._fresh_view(wait=True)
        vec = np.zeros(view.scores.shape[0])
        for tok in tokens:
            tid = view.vocab.get(tok)
            if tid is not None:
                vec[tid] += 1
        dense = view.scores.T @ vec
        return {cid: float(dense[slot]) for cid, slot in view.slot_of.items()}

    # -- persistence ------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write ``bm25.npz`` then ``bm25.json`` atomically; a shared nonce ties the pair."""
        directory = Path(directory)
        with self._lock:
            if len(self._slot_ids) != len(self._slot_of):
                self._compact()
            d, t, c = self._postings()
            gen = uuid.uuid4().hex
            arrays = {
                "doc": d,
                "term": t,
                "count": c,
                "doc_len": self._doc_len,
                "gen": np.frombuffer(gen.encode(), dtype=np.uint8),
            }
            meta = {
                "format": FORMAT,
                "gen": gen,
                "tokenizer": self.tokenizer.describe(),
                "k1": self.k1,
                "b": self.b,
                "epsilon": self.epsilon,
                "ids": self._slot_ids,
                "terms": self._terms,
            }
            atomic_write(directory / _NPZ, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
            atomic_write_json(directory / _JSON, meta)

    @classmethod
    def load(
        cls,
        directory: Path,
        tokenizer: Bm25Tokenizer | None = None,
        k1: float | None = None,
        b: float | None = None,
        epsilon: float | None = None,
    ) -> BM25Index:
        """Load a saved index. Raises ``IndexCorrupt`` on a missing/mismatched pair of files
        or when ``tokenizer`` differs from the one the index was built with (rebuild then)."""
        directory = Path(directory)
        try:
            meta = read_json(directory / _JSON)
            with np.load(directory / _NPZ, allow_pickle=False) as z:
                arrays = {key: z[key] for key in z.files}
        except (OSError, ValueError, KeyError) as e:
            raise IndexCorrupt(f"BM25 index in {directory} cannot be read: {e}") from e
        if meta.get("format") != FORMAT or bytes(arrays["gen"]).decode() != meta["gen"]:
            raise IndexCorrupt(f"BM25 index files in {directory} do not belong together")
        tokenizer = tokenizer or Bm25Tokenizer()
        if meta["tokenizer"] != tokenizer.describe():
            raise IndexCorrupt(
                f"BM25 index in {directory} was built with tokenizer {meta['tokenizer']}, "
                f"settings now ask for {tokenizer.describe()}"
            )
        index = cls(
            tokenizer,
            meta["k1"] if k1 is None else k1,
            meta["b"] if b is None else b,
            meta["epsilon"] if epsilon is None else epsilon,
        )
        ids: list[str] = meta["ids"]
        if len(ids) != len(arrays["doc_len"]):
            raise IndexCorrupt(f"BM25 index in {directory}: id count does not match lengths")
        index._terms = list(meta["terms"])
        index._vocab = {t: i for i, t in enumerate(index._terms)}
        index._slot_ids = list(ids)
        index._slot_of = {cid: i for i, cid in enumerate(ids)}
        index._doc_len = arrays["doc_len"].astype(np.int64)
        index._live = np.ones(len(ids), dtype=bool)
        index._parts = [
            (
                arrays["doc"].astype(np.int32),
                arrays["term"].astype(np.int32),
                arrays["count"].astype(np.int32),
            )
        ]
        return index
