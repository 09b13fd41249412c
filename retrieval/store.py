"""Per-collection BM25 + FAISS indexes on disk, kept in step with SQL.

Layout: ``index_dir/<collection_id>/manifest.json`` names the current version folder
``vNNNNNN/`` holding ``bm25.*`` and ``dense.*`` (a full save) and the delta files written
since (``delta-NNNNN.npz``: the upserts, with texts and vectors, and the deletes of one
write, in order). A small write appends one delta file; once the deltas hold more than
``max(2,000, 2 %)`` of the collection's chunks, or there are 100 of them, the next write
saves everything into a new version folder. Either way the manifest is replaced last
and atomically, so a reader (this process or another) sees the old state or the new
one, never a mix; a load replays the manifest's deltas over its version folder. The
manifest records each index's id count and an id-set digest, so a load detects a
mismatch (and the start-up repair rebuilds from SQL).

    store = IndexStore(settings.index_dir, settings.retrieval, dim=384)
    store.upsert(collection_id, ids, texts, vectors)     # ingest.ports.ChunkIndexer
    store.sparse(collection_id).search(["query"], k=10)
    reports = store.repair(engine)                       # at start-up: SQL is the truth
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core import db, repository
from core.errors import RagError
from core.settings import RetrievalSettings
from retrieval._io import atomic_write, atomic_write_json, read_json
from retrieval.bm25 import BM25Index
from retrieval.dense import FaissIndex
from retrieval.errors import IndexCorrupt
from retrieval.tokenize import Bm25Tokenizer

log = logging.getLogger(__name__)

FORMAT = 1
_MANIFEST = "manifest.json"
_DELTA_MIN_ROWS = 2_000  # deltas may hold this many rows since the last full save...
_DELTA_SHARE = 0.02  # ...or this share of the collection, whichever is more
_DELTA_MAX_FILES = 100
_UPSERT, _DELETE = 1, 2

IndexAction = Literal["ok", "repaired", "rebuilt", "dropped"]


@dataclass(frozen=True, slots=True)
class IndexRepair:
    """What repair did to one index: ``added``/``removed`` ids, ``skipped`` SQL chunks
    that could not be indexed (no stored embedding, or one of another dimension)."""

    action: IndexAction = "ok"
    added: int = 0
    removed: int = 0
    skipped: int = 0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RepairReport:
    collection_id: str
    collection: str | None  # the name; None for an index folder with no SQL collection
    sparse: IndexRepair
    dense: IndexRepair

    @property
    def changed(self) -> bool:
        return self.sparse.action != "ok" or self.dense.action != "ok"


def _digest(ids: Iterable[str]) -> str:
    h = hashlib.sha256()
    for cid in sorted(ids):
        h.update(cid.encode())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(slots=True)
class _Op:
    """One store write, kept until it is persisted as (part of) a delta file."""

    kind: int  # _UPSERT or _DELETE
    ids: list[str]
    texts: list[str] | None = None
    vectors: np.ndarray | None = None


class _Entry:
    def __init__(self, sparse: BM25Index, dense: FaissIndex, version: int, stamp: object) -> None:
        self.sparse = sparse
        self.dense = dense
        self.version = version
        self.stamp = stamp  # manifest file identity when loaded; a change means reload
        self.broken: set[str] = set()  # "sparse" / "dense": files unreadable, rebuild
        self.base: str | None = None  # version folder of the last full save
        self.deltas: list[str] = []  # delta files written over it since, in order
        self.delta_rows = 0
        self.pending: list[_Op] = []  # writes not persisted yet
        self.full = False  # a change not kept as an _Op: the next persist saves all

    def record(self, op: _Op) -> None:
        """Keep ``op`` for the next delta, or mark a full save when a delta won't do."""
        if self.full or self.base is None:
            return  # the next persist saves everything anyway
        rows = self.delta_rows + sum(len(o.ids) for o in self.pending) + len(op.ids)
        budget = max(_DELTA_MIN_ROWS, int(_DELTA_SHARE * len(self.sparse)))
        if rows > budget or len(self.deltas) >= _DELTA_MAX_FILES:
            self.full, self.pending = True, []
        else:
            self.pending.append(op)


class IndexStore:
    """One ``BM25Index`` + one ``FaissIndex`` per collection; implements ``ChunkIndexer``.

    Indexes load lazily on first use and reload when another process replaced them.
    Each ``upsert``/``delete`` persists before returning; ``bulk(cid)`` defers that to
    the end of a block for large ingestions.
    """

    def __init__(self, index_dir: Path, settings: RetrievalSettings, dim: int) -> None:
        self.index_dir = Path(index_dir)
        self.settings = settings
        self.dim = int(dim)
        self._tokenizer = Bm25Tokenizer(settings.bm25)
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._deferred: dict[str, int] = {}
        self._guard = threading.Lock()

    # -- loading ------------------------------------------------------------------------

    def _dir(self, cid: str) -> Path:
        if not cid or "/" in cid or "\\" in cid or cid.startswith("."):
            raise ValueError(f"invalid collection id {cid!r}")
        return self.index_dir / cid

    def _lock(self, cid: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(cid, threading.RLock())

    def _stamp(self, cid: str) -> object:
        try:
            st = (self._dir(cid) / _MANIFEST).stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _new_sparse(self) -> BM25Index:
        b = self.settings.bm25
        return BM25Index(self._tokenizer, b.k1, b.b, b.epsilon)

    def _new_dense(self) -> FaissIndex:
        return FaissIndex(self.dim, self.settings.dense)

    def _load(self, cid: str) -> _Entry:
        folder = self._dir(cid)
        stamp = self._stamp(cid)
        if stamp is None:
            entry = _Entry(self._new_sparse(), self._new_dense(), 0, None)
            if folder.exists() and any(folder.iterdir()):
                entry.broken = {"sparse", "dense"}  # files but no manifest: a crash mid-way
            return entry
        try:
            manifest = read_json(folder / _MANIFEST)
            vdir = folder / manifest["dir"]
        except (OSError, ValueError, KeyError) as e:
            log.warning("index manifest of collection %s unreadable: %s", cid, e)
            entry = _Entry(self._new_sparse(), self._new_dense(), 0, stamp)
            entry.broken = {"sparse", "dense"}
            return entry
        entry = _Entry(self._new_sparse(), self._new_dense(), int(manifest["version"]), stamp)
        b = self.settings.bm25
        sparse: BM25Index | None = None
        dense: FaissIndex | None = None
        try:
            sparse = BM25Index.load(vdir, self._tokenizer, b.k1, b.b, b.epsilon)
        except RagError as e:
            log.warning("BM25 index of collection %s needs a rebuild: %s", cid, e.message)
        try:
            dense = FaissIndex.load(vdir, self.settings.dense)
            if dense.dim != self.dim:
                raise RagError(f"dense index has dim {dense.dim}, the embedder {self.dim}")
        except RagError as e:
            log.warning("dense index of collection %s needs a rebuild: %s", cid, e.message)
            dense = None
        deltas = list(manifest.get("deltas", []))
        if deltas and sparse is not None and dense is not None:
            try:
                self._replay(vdir, deltas, sparse, dense)
            except RagError as e:
                log.warning("indexes of collection %s need a rebuild: %s", cid, e.message)
                sparse = dense = None
        elif deltas:
            sparse = dense = None  # the deltas need both: repair rebuilds both from SQL
        if sparse is not None and (
            len(sparse) != manifest["sparse_count"]
            or _digest(sparse.ids()) != manifest["sparse_digest"]
        ):
            log.warning("BM25 index of collection %s does not match its manifest", cid)
            sparse = None
        if dense is not None and (
            len(dense) != manifest["dense_count"]
            or _digest(dense.ids()) != manifest["dense_digest"]
        ):
            log.warning("dense index of collection %s does not match its manifest", cid)
            dense = None
        if sparse is None:
            entry.broken.add("sparse")
        else:
            entry.sparse = sparse
        if dense is None:
            entry.broken.add("dense")
        else:
            entry.dense = dense
        if not entry.broken:
            entry.base, entry.deltas = manifest["dir"], deltas
            entry.delta_rows = int(manifest.get("delta_rows", 0))
        return entry

    def _entry(self, cid: str) -> _Entry:
        # Fast path without the collection lock, so searches never wait for an upsert
        # or a persist in progress (the indexes have their own locks).
        entry = self._entries.get(cid)
        if entry is not None and (
            self._deferred.get(cid, 0) > 0 or entry.stamp == self._stamp(cid)
        ):
            return entry
        with self._lock(cid):
            entry = self._entries.get(cid)
            if entry is None or (
                self._deferred.get(cid, 0) == 0 and entry.stamp != self._stamp(cid)
            ):
                entry = self._load(cid)
                self._entries[cid] = entry
            return entry

    def sparse(self, collection_id: str) -> BM25Index:
        return self._entry(collection_id).sparse

    def dense(self, collection_id: str) -> FaissIndex:
        return self._entry(collection_id).dense

    def ids(self, collection_id: str, index: Literal["sparse", "dense"] = "sparse") -> set[str]:
        """The chunk ids one of the collection's indexes holds."""
        entry = self._entry(collection_id)
        return entry.sparse.ids() if index == "sparse" else entry.dense.ids()

    def loaded_state(self) -> dict[str, dict[str, Any]]:
        """The indexes in memory now, per collection id (loads nothing, reads no file):
        chunks in each, parts that need a rebuild, and whether a write is in progress
        (counts may then differ for a moment). For health checks."""
        with self._guard:
            entries = dict(self._entries)
            busy = {cid for cid, n in self._deferred.items() if n > 0}
        return {
            cid: {
                "sparse": len(e.sparse),
                "dense": len(e.dense),
                "broken": sorted(e.broken),
                "busy": cid in busy or bool(e.pending),
            }
            for cid, e in entries.items()
        }

    def collections_on_disk(self) -> list[str]:
        if not self.index_dir.exists():
            return []
        return sorted(
            p.name for p in self.index_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
        )

    # -- writing ------------------------------------------------------------------------

    def _persist(self, cid: str, entry: _Entry) -> None:
        if self._deferred.get(cid, 0) > 0:
            return
        # The BM25 search view for this write is built here, by the writer, while
        # searches keep using the previous one: the first search after does not pay.
        entry.sparse.refresh()
        folder = self._dir(cid)
        folder.mkdir(parents=True, exist_ok=True)
        version = entry.version + 1
        if entry.full or entry.base is None or not (folder / entry.base).is_dir():
            self._save_full(folder, entry, version)
        elif entry.pending:
            self._save_delta(folder, entry)
        else:
            return  # nothing changed since the last persist
        atomic_write_json(
            folder / _MANIFEST,
            {
                "format": FORMAT,
                "version": version,
                "dir": entry.base,
                "deltas": entry.deltas,
                "delta_rows": entry.delta_rows,
                "dim": self.dim,
                "sparse_count": len(entry.sparse),
                "sparse_digest": _digest(entry.sparse.ids()),
                "dense_count": len(entry.dense),
                "dense_digest": _digest(entry.dense.ids()),
            },
        )
        entry.version = version
        entry.stamp = self._stamp(cid)
        entry.pending, entry.full = [], False

    def _save_full(self, folder: Path, entry: _Entry, version: int) -> None:
        """Both indexes into a new version folder (renamed into place when complete)."""
        name = f"v{version:07d}"
        tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.mkdir()
        try:
            entry.sparse.save(tmp)
            entry.dense.save(tmp)
            final = folder / name
            if final.exists():  # left by a crash after the rename, before the manifest
                shutil.rmtree(final)
            tmp.rename(final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        previous = entry.base
        entry.base, entry.deltas, entry.delta_rows = name, [], 0
        # Keep the previous version for readers that are loading it right now.
        for p in folder.iterdir():
            if p.is_dir() and p.name not in (name, previous):
                shutil.rmtree(p, ignore_errors=True)

    def _save_delta(self, folder: Path, entry: _Entry) -> None:
        """The pending writes as one delta file in the current version folder."""
        ops = entry.pending
        upserts = [o for o in ops if o.kind == _UPSERT]
        vectors = [o.vectors for o in upserts if o.vectors is not None]
        arrays = {
            "kinds": np.asarray([o.kind for o in ops], dtype=np.int8),
            "sizes": np.asarray([len(o.ids) for o in ops], dtype=np.int64),
            "ids": np.asarray([cid for o in ops for cid in o.ids], dtype=str),
            "texts": np.asarray([t for o in upserts for t in (o.texts or ())], dtype=str),
            "vectors": (
                np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
            ),
        }
        name = f"delta-{len(entry.deltas) + 1:05d}.npz"
        atomic_write(folder / str(entry.base) / name, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]
        entry.deltas = [*entry.deltas, name]
        entry.delta_rows += sum(len(o.ids) for o in ops)

    @staticmethod
    def _replay(vdir: Path, names: Sequence[str], sparse: BM25Index, dense: FaissIndex) -> int:
        """Apply delta files to freshly loaded indexes; returns the rows replayed.
        Raises ``IndexCorrupt`` when one is missing or unreadable."""
        rows = 0
        for name in names:
            try:
                with np.load(vdir / name, allow_pickle=False) as z:
                    kinds, sizes, ids = z["kinds"], z["sizes"], z["ids"].tolist()
                    texts, vectors = z["texts"].tolist(), z["vectors"]
            except (OSError, ValueError, KeyError) as e:
                raise IndexCorrupt(f"delta file {vdir / name} cannot be read: {e}") from e
            try:
                rows += IndexStore._apply_delta(kinds, sizes, ids, texts, vectors, sparse, dense)
            except (ValueError, IndexError) as e:
                raise IndexCorrupt(f"delta file {vdir / name} does not apply: {e}") from e
        return rows

    @staticmethod
    def _apply_delta(
        kinds: np.ndarray,
        sizes: np.ndarray,
        ids: list[str],
        texts: list[str],
        vectors: np.ndarray,
        sparse: BM25Index,
        dense: FaissIndex,
    ) -> int:
        at = up = 0
        for kind, size in zip(kinds.tolist(), sizes.tolist(), strict=True):
            op_ids = ids[at : at + size]
            if kind == _UPSERT:
                sparse.add(op_ids, texts[up : up + size])
                dense.add(op_ids, vectors[up : up + size])
                up += size
            else:
                sparse.delete(op_ids)
                dense.delete(op_ids)
            at += size
        return int(sizes.sum())

    @contextmanager
    def bulk(self, collection_id: str) -> Iterator[None]:
        """Defer persisting to the end of the block (one write for many upserts)."""
        lock = self._lock(collection_id)
        with lock:
            self._deferred[collection_id] = self._deferred.get(collection_id, 0) + 1
            try:
                yield
            finally:
                self._deferred[collection_id] -= 1
                if self._deferred[collection_id] == 0:
                    entry = self._entries.get(collection_id)
                    if entry is not None:
                        self._persist(collection_id, entry)

    def upsert(
        self,
        collection_id: str,
        chunk_ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
    ) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if not (len(chunk_ids) == len(texts) == len(vectors)):
            raise ValueError(f"{len(chunk_ids)} ids, {len(texts)} texts and {len(vectors)} vectors")
        if not chunk_ids:
            return
        vectors = vectors.reshape(len(chunk_ids), -1)
        if vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have dimension {vectors.shape[1]}, the index {self.dim}")
        with self._lock(collection_id):
            entry = self._entry(collection_id)
            with self._changing(entry):
                with entry.sparse.writing():
                    entry.sparse.add(chunk_ids, texts)
                entry.dense.add(chunk_ids, vectors)
            entry.record(_Op(_UPSERT, list(chunk_ids), list(texts), vectors.copy()))
            self._persist(collection_id, entry)

    def delete(self, collection_id: str, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        with self._lock(collection_id):
            entry = self._entry(collection_id)
            with self._changing(entry):
                with entry.sparse.writing():
                    entry.sparse.delete(chunk_ids)
                entry.dense.delete(chunk_ids)
            entry.record(_Op(_DELETE, list(chunk_ids)))
            self._persist(collection_id, entry)

    @staticmethod
    @contextmanager
    def _changing(entry: _Entry) -> Iterator[None]:
        """A change that fails half-way leaves the indexes in a state no delta describes:
        the next persist then saves them whole (and start-up repair checks them vs SQL)."""
        try:
            yield
        except BaseException:
            entry.full, entry.pending = True, []
            raise

    def drop_collection(self, collection_id: str) -> None:
        """Forget a collection's indexes and delete its folder."""
        with self._lock(collection_id):
            self._entries.pop(collection_id, None)
            shutil.rmtree(self._dir(collection_id), ignore_errors=True)

    # -- repair ---------------------------------------------------------------------------

    def repair(self, engine: Engine) -> list[RepairReport]:
        """Make every collection's indexes hold exactly SQL's chunk ids (any status).

        Missing or unreadable index files are rebuilt from SQL rows (texts, and stored
        embeddings for the dense index: nothing is re-embedded); extra ids are deleted,
        missing ids added, or the index rebuilt when that is cheaper. Index folders of
        collections no longer in SQL are dropped. Returns one report per collection.
        """
        reports: list[RepairReport] = []
        with repository.read(engine) as s:
            collections = {c.id: c.name for c in repository.list_collections(s, versions=True)}
            for cid, name in collections.items():
                reports.append(self._repair_collection(s, cid, name))
        for cid in self.collections_on_disk():
            if cid not in collections:
                self.drop_collection(cid)
                dropped = IndexRepair("dropped", reason="collection not in SQL")
                reports.append(RepairReport(cid, None, dropped, dropped))
        return reports

    def repair_collection(self, engine: Engine, collection_id: str) -> RepairReport:
        """``repair`` for one collection: its indexes built or fixed from its SQL rows
        (a copied collection gets its indexes this way, from the stored embeddings)."""
        with repository.read(engine) as s:
            row = repository.collection_by_id(s, collection_id)
            return self._repair_collection(s, collection_id, row.name if row else None)

    def _repair_collection(self, s: Session, cid: str, name: str | None) -> RepairReport:
        sql_ids = repository.chunk_ids(s, cid)
        with self._lock(cid):
            entry = self._entry(cid)
            sparse_rep = self._repair_sparse(s, cid, entry, sql_ids)
            dense_rep = self._repair_dense(s, cid, entry, sql_ids)
            if (
                sparse_rep.action != "ok"
                or dense_rep.action != "ok"
                or (sql_ids and self._stamp(cid) is None)
            ):
                entry.full = True  # repair changed the indexes directly
                self._persist(cid, entry)
            entry.broken.clear()
        return RepairReport(cid, name, sparse_rep, dense_rep)

    @staticmethod
    def _rows(s: Session, cid: str, ids: set[str] | None) -> Iterator[db.ChunkRow]:
        """SQL chunk rows of a collection: all of them, or those with the given ids."""
        if ids is None:
            yield from repository.iter_chunk_rows(s, cid)
        else:
            yield from repository.chunk_rows(s, cid, ids)

    def _plan(
        self, kind: str, entry: _Entry, have: set[str], sql_ids: set[str]
    ) -> tuple[str, set[str], set[str]]:
        missing, extra = sql_ids - have, have - sql_ids
        if kind in entry.broken:
            return "rebuilt", missing, extra
        if not missing and not extra:
            return "ok", missing, extra
        if len(missing) > len(have & sql_ids):  # most of SQL must be added anyway
            return "rebuilt", missing, extra
        return "repaired", missing, extra

    def _repair_sparse(self, s: Session, cid: str, entry: _Entry, sql_ids: set[str]) -> IndexRepair:
        have = entry.sparse.ids()
        action, missing, extra = self._plan("sparse", entry, have, sql_ids)
        if action == "ok":
            return IndexRepair()
        reason = "index files unreadable" if "sparse" in entry.broken else "ids differ from SQL"
        if action == "rebuilt":
            entry.sparse = self._new_sparse()
            rows = self._rows(s, cid, None)
        else:
            entry.sparse.delete(sorted(extra))
            rows = self._rows(s, cid, missing)
        added = 0
        for batch in _batches(rows, 2000):
            entry.sparse.add([r.id for r in batch], [r.text for r in batch])
            added += len(batch)
        removed = len(extra)
        return IndexRepair(action, added, removed, 0, reason)  # type: ignore[arg-type]

    def _repair_dense(self, s: Session, cid: str, entry: _Entry, sql_ids: set[str]) -> IndexRepair:
        have = entry.dense.ids()
        action, missing, extra = self._plan("dense", entry, have, sql_ids)
        if action == "ok":
            return IndexRepair()
        reason = "index files unreadable" if "dense" in entry.broken else "ids differ from SQL"
        if action == "rebuilt":
            entry.dense = self._new_dense()
            rows = self._rows(s, cid, None)
        else:
            entry.dense.delete(sorted(extra))
            rows = self._rows(s, cid, missing)
        added = skipped = 0
        for batch in _batches(rows, 4096):
            ids: list[str] = []
            vecs: list[np.ndarray] = []
            for row in batch:
                vec = repository.blob_to_vector(row.embedding) if row.embedding else None
                if vec is None or vec.shape[0] != self.dim:
                    skipped += 1
                    continue
                ids.append(row.id)
                vecs.append(vec)
            if ids:
                entry.dense.add(ids, np.stack(vecs))
                added += len(ids)
        if skipped:
            reason += f"; {skipped} chunk(s) have no stored {self.dim}-d embedding"
            if action == "repaired" and not added and not extra:
                return IndexRepair("ok", 0, 0, skipped, reason)
        return IndexRepair(action, added, len(extra), skipped, reason)  # type: ignore[arg-type]


def _batches(rows: Iterable[db.ChunkRow], size: int) -> Iterator[list[db.ChunkRow]]:
    """Rows in lists of at most ``size``, so a rebuild never holds a whole collection."""
    batch: list[db.ChunkRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
