"""FAISS dense index over L2-normalised vectors (inner product = cosine).

Exact ``IndexFlatIP`` below ``DenseSettings.hnsw_threshold`` live vectors, ``IndexHNSWFlat``
at or above it; the index is rebuilt from the vectors kept alongside (a numpy array) when
the size crosses the threshold, when tombstones pile up, or when a saved FAISS file is
missing, so no re-embedding is ever needed. FAISS labels are slot numbers in that array;
string chunk ids map to slots.

    index = FaissIndex(384, DenseSettings())
    index.add(["c1", "c2"], vectors)              # (2, 384) float32
    index.search(query_vectors, k=10, allowed={"c2"})
    index.save(path); FaissIndex.load(path, DenseSettings())

Mutations run one at a time; a slow one (building HNSW when the size crosses the
threshold, compacting tombstones, inserting thousands of vectors into HNSW) builds a new
FAISS index while searches go on using the current one, then swaps it in.

Deletes tombstone a slot (HNSW cannot remove); searches skip tombstones with a FAISS
``IDSelectorBitmap``. ``allowed`` restricts results inside the search; a filtered HNSW
search that comes back short is completed by an exact search over the allowed vectors.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from core.settings import DenseSettings
from retrieval._io import RWLock, atomic_write, atomic_write_json, read_json
from retrieval.errors import IndexCorrupt
from retrieval.ports import Hits

FORMAT = 1
_FAISS = "dense.faiss"
_NPZ = "dense.npz"
_JSON = "dense.json"
_EXACT_ALLOWED_MAX = 20_000  # filtered searches over at most this many vectors run exactly
_HNSW_COPY_ADD = 2_000  # an HNSW insert of this many vectors runs on a copy, off the lock

Kind = Literal["flat", "hnsw"]


def normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as contiguous float32."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim == 1:
        v = v[None, :]
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(v / norms, dtype=np.float32)


class FaissIndex:
    """Dense index implementing ``retrieval.ports.DenseIndex``; thread-safe (searches run
    concurrently, mutations exclusively)."""

    def __init__(self, dim: int, settings: DenseSettings | None = None) -> None:
        self.dim = int(dim)
        self.settings = settings or DenseSettings()  # type: ignore[call-arg]
        self._lock = RWLock()  # searches read; swapping in new state writes
        self._mutex = threading.Lock()  # one mutation at a time
        self._vecs = np.zeros((0, self.dim), dtype=np.float32)  # capacity >= slots
        self._n_slots = 0
        self._slot_ids: list[str | None] = []
        self._slot_of: dict[str, int] = {}
        self._live = np.zeros(0, dtype=bool)
        self._index: faiss.Index = self._new_index("flat")
        self._kind: Kind = "flat"

    # -- reading ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._slot_of)

    def __contains__(self, chunk_id: object) -> bool:
        return chunk_id in self._slot_of

    @property
    def kind(self) -> Kind:
        """``"flat"`` (exact) or ``"hnsw"`` (approximate)."""
        return self._kind

    def ids(self) -> set[str]:
        with self._lock.read():
            return set(self._slot_of)

    def vectors(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray]:
        """The stored (normalised) vectors of the ``ids`` present, in the given order."""
        with self._lock.read():
            found = [cid for cid in ids if cid in self._slot_of]
            slots = np.asarray([self._slot_of[cid] for cid in found], dtype=np.int64)
            return found, self._vecs[slots].copy()

    # -- mutation -----------------------------------------------------------------------

    def _new_index(self, kind: Kind) -> faiss.Index:
        if kind == "flat":
            return faiss.IndexFlatIP(self.dim)
        index = faiss.IndexHNSWFlat(self.dim, self.settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.settings.hnsw_ef_construction
        index.hnsw.efSearch = self.settings.hnsw_ef_search
        return index

    def _kind_for(self, n_live: int) -> Kind:
        return "hnsw" if n_live >= self.settings.hnsw_threshold else "flat"

    def _wanted_kind(self) -> Kind:
        return self._kind_for(len(self._slot_of))

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or vectors.shape[0] != len(ids):
            raise ValueError(
                f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}"
            )
        if not ids:
            return
        last = {cid: i for i, cid in enumerate(ids)}  # repeated id in one batch: last wins
        order = np.asarray(sorted(last.values()), dtype=np.int64)
        with self._mutex:
            self._apply([ids[i] for i in order], normalize(vectors[order]), ())

    def delete(self, ids: Sequence[str]) -> None:
        with self._mutex:
            self._apply([], np.zeros((0, self.dim), dtype=np.float32), ids)

    def _apply(self, new_ids: list[str], new: np.ndarray, drop: Sequence[str]) -> None:
        """Add ``new_ids`` (replacing any present) and delete ``drop``; caller holds the
        mutation mutex, so the state read here cannot change underneath.

        Slow FAISS work (building an index when the size crosses the HNSW threshold or
        when tombstones pile up, a large HNSW insert) runs on a new index outside the
        search lock; searches keep using the current one until the swap."""
        gone = {self._slot_of[cid] for cid in (*drop, *new_ids) if cid in self._slot_of}
        if not new_ids and not gone:
            return
        n_live = len(self._slot_of) - len(gone) + len(new_ids)
        n_slots = self._n_slots + len(new_ids)
        dead = n_slots - n_live
        kind = self._kind_for(n_live)
        if kind != self._kind or (dead >= 64 and dead * 4 >= n_slots):
            live = self._live[: self._n_slots].copy()
            live[list(gone)] = False
            keep = np.flatnonzero(live)
            vecs = np.concatenate([self._vecs[keep], new])
            slot_ids = [self._slot_ids[i] for i in keep] + new_ids
            index = self._build(kind, vecs)
            with self._lock.write():
                self._install(kind, index, vecs, slot_ids)  # type: ignore[arg-type]
            return
        index = self._index
        if self._kind == "hnsw" and len(new_ids) >= _HNSW_COPY_ADD:
            index = faiss.clone_index(self._index)  # keeps its efSearch
            index.add(new)
        with self._lock.write():
            for slot in gone:
                self._slot_of.pop(self._slot_ids[slot], None)  # type: ignore[arg-type]
                self._slot_ids[slot] = None
                self._live[slot] = False
            start = self._n_slots
            self._reserve(start + len(new_ids))
            self._vecs[start : start + len(new_ids)] = new
            self._n_slots += len(new_ids)
            self._slot_ids.extend(new_ids)
            self._slot_of.update((cid, start + j) for j, cid in enumerate(new_ids))
            self._live = np.concatenate([self._live, np.ones(len(new_ids), dtype=bool)])
            if index is self._index:
                if len(new):
                    index.add(new)
            else:
                self._index = index

    def _reserve(self, n: int) -> None:
        if n > len(self._vecs):
            grown = np.zeros((max(n, 2 * len(self._vecs), 1024), self.dim), dtype=np.float32)
            grown[: self._n_slots] = self._vecs[: self._n_slots]
            self._vecs = grown

    def _build(self, kind: Kind, vecs: np.ndarray) -> faiss.Index:
        index = self._new_index(kind)
        if len(vecs):
            index.add(np.ascontiguousarray(vecs, dtype=np.float32))
        return index

    def _install(
        self, kind: Kind, index: faiss.Index, vecs: np.ndarray, slot_ids: list[str]
    ) -> None:
        """Replace the whole state by compacted ``vecs`` (all live) and their index."""
        self._vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        self._n_slots = len(slot_ids)
        self._slot_ids = list(slot_ids)
        self._slot_of = {cid: i for i, cid in enumerate(slot_ids)}
        self._live = np.ones(len(slot_ids), dtype=bool)
        self._kind, self._index = kind, index

    def _rebuild(self) -> None:
        """Compact to the live vectors and build the wanted kind of index (at load)."""
        keep = np.flatnonzero(self._live[: self._n_slots])
        vecs = self._vecs[keep]
        kind = self._wanted_kind()
        self._install(kind, self._build(kind, vecs), vecs, [self._slot_ids[i] for i in keep])  # type: ignore[misc]

    # -- search ---------------------------------------------------------------------------

    def _exact(self, q: np.ndarray, slots: np.ndarray, k: int) -> list[Hits]:
        out: list[Hits] = []
        if len(slots) == 0:
            return [[] for _ in range(len(q))]
        sims = q @ self._vecs[slots].T
        kk = min(k, len(slots))
        for row in sims:
            part = np.argpartition(-row, kk - 1)[:kk] if kk < len(row) else np.arange(len(row))
            part = part[np.lexsort((slots[part], -row[part]))]
            out.append([(self._slot_ids[slots[p]], float(row[p])) for p in part])  # type: ignore[misc]
        return out

    def search(
        self, vectors: np.ndarray, k: int, allowed: set[str] | None = None
    ) -> list[Hits]:
        q = normalize(vectors)
        if q.shape[1] != self.dim:
            raise ValueError(f"query vectors have dim {q.shape[1]}, index has {self.dim}")
        if k <= 0 or not len(q):
            return [[] for _ in range(len(q))]
        with self._lock.read():
            if not self._slot_of:
                return [[] for _ in range(len(q))]
            live = self._live[: self._n_slots]
            allowed_slots: np.ndarray | None = None
            if allowed is not None:
                allowed_slots = np.asarray(
                    sorted(s for s in map(self._slot_of.get, allowed) if s is not None),
                    dtype=np.int64,
                )
                if self._kind == "hnsw" and len(allowed_slots) <= _EXACT_ALLOWED_MAX:
                    return self._exact(q, allowed_slots, k)
                member = np.zeros(self._n_slots, dtype=bool)
                member[allowed_slots] = True
                n_candidates = len(allowed_slots)
            else:
                member = live
                n_candidates = len(self._slot_of)
            kk = min(k, n_candidates)
            if kk == 0:
                return [[] for _ in range(len(q))]
            params: faiss.SearchParameters | None = None
            bits = None
            if allowed is not None or n_candidates < self._n_slots:
                bits = np.packbits(member, bitorder="little")
                sel = faiss.IDSelectorBitmap(self._n_slots, faiss.swig_ptr(bits))
                if self._kind == "hnsw":
                    params = faiss.SearchParametersHNSW(  # type: ignore[attr-defined]
                        sel=sel, efSearch=max(self.settings.hnsw_ef_search, kk)
                    )
                else:
                    params = faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]
            elif self._kind == "hnsw" and kk > self.settings.hnsw_ef_search:
                params = faiss.SearchParametersHNSW(efSearch=kk)  # type: ignore[attr-defined]
            scores, labels = self._index.search(q, kk, params=params)
            del bits  # the selector only borrowed it
            out: list[Hits] = []
            for qi in range(len(q)):
                hits = [
                    (self._slot_ids[lab], float(s))
                    for lab, s in zip(labels[qi], scores[qi], strict=True)
                    if lab >= 0
                ]
                if len(hits) < kk:  # HNSW with a selective filter can come back short
                    slots = allowed_slots if allowed_slots is not None else np.flatnonzero(live)
                    hits = self._exact(q[qi : qi + 1], slots, kk)[0]
                out.append(hits)  # type: ignore[arg-type]
            return out

    # -- persistence ------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write ``dense.faiss``, ``dense.npz`` then ``dense.json``, each atomically."""
        directory = Path(directory)
        with self._lock.read():
            gen = uuid.uuid4().hex
            blob = faiss.serialize_index(self._index)
            atomic_write(directory / _FAISS, lambda f: f.write(blob.tobytes()))
            arrays = {
                "vectors": self._vecs[: self._n_slots],
                "live": self._live[: self._n_slots],
                "gen": np.frombuffer(gen.encode(), dtype=np.uint8),
            }
            atomic_write(directory / _NPZ, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
            atomic_write_json(
                directory / _JSON,
                {
                    "format": FORMAT,
                    "gen": gen,
                    "dim": self.dim,
                    "kind": self._kind,
                    "ntotal": int(self._index.ntotal),
                    "ids": self._slot_ids,
                },
            )

    @classmethod
    def load(cls, directory: Path, settings: DenseSettings | None = None) -> FaissIndex:
        """Load a saved index; a missing or stale FAISS file is rebuilt from the vectors.
        Raises ``IndexCorrupt`` when the vectors or ids cannot be read or disagree."""
        directory = Path(directory)
        try:
            meta = read_json(directory / _JSON)
            with np.load(directory / _NPZ, allow_pickle=False) as z:
                vecs, live, gen = z["vectors"], z["live"], bytes(z["gen"]).decode()
        except (OSError, ValueError, KeyError) as e:
            raise IndexCorrupt(f"dense index in {directory} cannot be read: {e}") from e
        ids: list[str | None] = meta.get("ids", [])
        if meta.get("format") != FORMAT or gen != meta.get("gen") or len(ids) != len(vecs):
            raise IndexCorrupt(f"dense index files in {directory} do not belong together")
        index = cls(int(meta["dim"]), settings)
        index._vecs = np.ascontiguousarray(vecs, dtype=np.float32)
        index._n_slots = len(vecs)
        index._live = live.astype(bool)
        index._slot_ids = [cid if ok else None for cid, ok in zip(ids, index._live, strict=True)]
        index._slot_of = {cid: i for i, cid in enumerate(index._slot_ids) if cid is not None}
        loaded: faiss.Index | None = None
        try:
            loaded = faiss.deserialize_index(
                np.frombuffer((directory / _FAISS).read_bytes(), dtype=np.uint8)
            )
        except (OSError, RuntimeError):
            loaded = None
        if (
            loaded is not None
            and loaded.ntotal == index._n_slots
            and meta.get("kind") == index._wanted_kind()
        ):
            index._index, index._kind = loaded, meta["kind"]
            if index._kind == "hnsw":
                index._index.hnsw.efSearch = index.settings.hnsw_ef_search  # type: ignore[attr-defined]
        else:
            index._rebuild()
        return index
