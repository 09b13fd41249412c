"""IndexStore persistence and repair against SQL; filters resolved through SQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core import db, repository
from core.repository import allowed_chunk_ids
from core.settings import RetrievalSettings
from core.types import Filter
from retrieval.store import IndexStore
from tests.retrieval.conftest import DIM, DocSpec, add_documents, chunk_rows, unit_vectors

DOCS = [
    DocSpec("a.md", ["alpha one", "alpha two"], "text/markdown", meta={"lang": "en", "n": 1}),
    DocSpec("b.txt", ["beta one", "beta two", "beta three"], meta={"lang": "de", "flag": True}),
    DocSpec("c.pdf", ["gamma one"], "application/pdf", meta={"lang": "en", "flag": 1}),
    DocSpec("d.txt", ["delta pending"], status="indexing"),
]


def _store(tmp_path: Path) -> IndexStore:
    return IndexStore(tmp_path / "indexes", RetrievalSettings(), DIM)


def _fill(engine, store: IndexStore) -> tuple[str, dict[str, list[str]]]:
    cid, by_src = add_documents(engine, "docs", DOCS)
    ids, texts, vecs = chunk_rows(engine, cid)
    store.upsert(cid, ids, texts, vecs)
    return cid, by_src


def test_upsert_persists_and_reloads(engine, tmp_path: Path) -> None:
    store = _store(tmp_path)
    cid, _ = _fill(engine, store)
    fresh = _store(tmp_path)  # another process: loads from disk
    assert fresh.ids(cid) == store.ids(cid) == store.ids(cid, "dense")
    assert len(fresh.ids(cid)) == 7
    assert fresh.sparse(cid).search(["gamma"], k=3)[0][0][0] in store.ids(cid)
    # only the current version folder (and the previous one) are kept
    versions = [p for p in (tmp_path / "indexes" / cid).iterdir() if p.is_dir()]
    assert len(versions) <= 2
    # a change by the first store is seen by the second one (manifest replaced)
    some = sorted(store.ids(cid))[:2]
    store.delete(cid, some)
    assert fresh.ids(cid) == store.ids(cid) and len(fresh.ids(cid)) == 5


def test_bulk_defers_persisting(engine, tmp_path: Path) -> None:
    store = _store(tmp_path)
    with store.bulk("c1"):
        store.upsert("c1", ["x", "y"], ["ex", "why"], unit_vectors(2))
        assert not (tmp_path / "indexes" / "c1" / "manifest.json").exists()
        store.upsert("c1", ["z"], ["zed"], unit_vectors(1))
    assert _store(tmp_path).ids("c1") == {"x", "y", "z"}


def test_repair_missing_files_extra_and_missing_ids(engine, tmp_path: Path) -> None:
    store = _store(tmp_path)
    cid, by_src = _fill(engine, store)
    assert all(not r.changed for r in store.repair(engine))

    # 1. index files deleted -> both rebuilt from SQL rows (stored embeddings)
    shutil.rmtree(tmp_path / "indexes" / cid)
    store = _store(tmp_path)
    (rep,) = store.repair(engine)
    assert rep.sparse.action == "rebuilt" and rep.dense.action == "rebuilt"
    assert rep.sparse.added == rep.dense.added == 7
    with Session(engine) as s:
        sql_ids = repository.chunk_ids(s, cid)
    assert store.ids(cid) == store.ids(cid, "dense") == sql_ids
    # the dense vectors came from SQL blobs: each chunk finds itself
    ids, _, vecs = chunk_rows(engine, cid)
    assert [h[0][0] for h in store.dense(cid).search(vecs, k=1)] == ids

    # 2. an extra id (deleted in SQL) and a missing one (in SQL, not indexed)
    store.upsert(cid, ["ghost"], ["ghost text"], unit_vectors(1))
    store.delete(cid, [by_src["b.txt"][0]])
    (rep,) = _store(tmp_path).repair(engine)
    assert rep.sparse.action == rep.dense.action == "repaired"
    assert (rep.sparse.added, rep.sparse.removed) == (1, 1)
    assert (rep.dense.added, rep.dense.removed) == (1, 1)
    again = _store(tmp_path)
    assert again.ids(cid) == again.ids(cid, "dense") == sql_ids

    # 3. a half-written version (manifest names a folder with a broken file)
    vdir = sorted(p for p in (tmp_path / "indexes" / cid).iterdir() if p.is_dir())[-1]
    (vdir / "bm25.npz").write_bytes(b"garbage")
    broken = _store(tmp_path)
    (rep,) = broken.repair(engine)
    assert rep.sparse.action == "rebuilt" and rep.dense.action == "ok"
    assert _store(tmp_path).ids(cid) == sql_ids


def test_repair_drops_orphan_folders_and_skips_missing_embeddings(engine, tmp_path) -> None:
    store = _store(tmp_path)
    cid, by_src = _fill(engine, store)
    store.upsert("orphan", ["o1"], ["lost"], unit_vectors(1))
    with Session(engine) as s, s.begin():
        row = s.get(db.ChunkRow, by_src["a.md"][0])
        row.embedding = None
    store.delete(cid, [by_src["a.md"][0]])
    reports = {r.collection_id: r for r in store.repair(engine)}
    assert reports["orphan"].sparse.action == "dropped"
    assert not (tmp_path / "indexes" / "orphan").exists()
    rep = reports[cid]
    assert rep.sparse.added == 1 and rep.dense.skipped == 1 and "embedding" in rep.dense.reason


def test_filters(engine) -> None:
    cid, by = add_documents(engine, "docs", DOCS)
    with Session(engine) as s:
        doc_a = s.get(db.ChunkRow, by["a.md"][0]).document_id

        def allowed(**kw) -> set[str] | None:
            return allowed_chunk_ids(s, cid, Filter(**kw))

        assert allowed() is None
        assert allowed(sources=("a.md", "c.pdf")) == {*by["a.md"], *by["c.pdf"]}
        assert allowed(media_types=("text/plain",)) == set(by["b.txt"])  # d.txt not ready
        assert allowed(document_ids=(doc_a,)) == set(by["a.md"])
        assert allowed(metadata={"lang": "en"}) == {*by["a.md"], *by["c.pdf"]}
        assert allowed(metadata={"lang": "en", "n": 1}) == set(by["a.md"])
        assert allowed(metadata={"flag": True}) == set(by["b.txt"])  # 1 is not True
        assert allowed(sources=("a.md",), metadata={"lang": "de"}) == set()
        assert allowed(sources=("d.txt",)) == set()


def test_upsert_validates_shapes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    with pytest.raises(ValueError):
        store.upsert("c", ["a", "b"], ["x"], np.zeros((2, DIM)))
    with pytest.raises(ValueError):
        store.upsert("../evil", ["a"], ["x"], unit_vectors(1))


def test_readers_do_not_wait_for_a_write_in_progress(tmp_path: Path) -> None:
    """A search gets the collection's indexes while an upsert or persist holds the
    collection lock (the indexes themselves are thread-safe)."""
    import threading

    store = _store(tmp_path)
    store.upsert("c1", ["x", "y"], ["ex marks", "why not"], unit_vectors(2))
    got: list[set[str]] = []
    with store._lock("c1"):  # as an upsert in another thread would
        reader = threading.Thread(target=lambda: got.append(store.ids("c1")))
        reader.start()
        reader.join(30)
        assert not reader.is_alive()
    assert got == [{"x", "y"}]


def _versions(tmp_path: Path, cid: str) -> list[str]:
    return sorted(p.name for p in (tmp_path / "indexes" / cid).iterdir() if p.is_dir())


def _manifest(tmp_path: Path, cid: str) -> dict:
    import json

    return json.loads((tmp_path / "indexes" / cid / "manifest.json").read_text())


def test_small_writes_append_deltas_that_a_reload_replays(tmp_path: Path) -> None:
    """After the first full save, a small write appends one delta file (the whole index is
    not rewritten); another process replays the deltas and sees the same state."""
    store = _store(tmp_path)
    ids = [f"c{i}" for i in range(50)]
    texts = [f"text number {i} about topic{i % 5}" for i in range(50)]
    store.upsert("c1", ids, texts, unit_vectors(50))
    (base,) = _versions(tmp_path, "c1")
    assert _manifest(tmp_path, "c1")["deltas"] == []

    store.upsert("c1", ["new"], ["a brand new zebra text"], unit_vectors(1, seed=9))
    store.delete("c1", ["c3", "c4"])
    with store.bulk("c1"):  # a replace: delete + upsert, one delta for both
        store.delete("c1", ["c5"])
        store.upsert("c1", ["c5b"], ["the zebra text, replaced"], unit_vectors(1, seed=10))
    m = _manifest(tmp_path, "c1")
    assert _versions(tmp_path, "c1") == [base] and m["dir"] == base
    assert m["deltas"] == ["delta-00001.npz", "delta-00002.npz", "delta-00003.npz"]
    assert m["delta_rows"] == 1 + 2 + 2

    other = _store(tmp_path)  # another process
    assert other.ids("c1") == other.ids("c1", "dense") == store.ids("c1")
    assert {"new", "c5b"} <= other.ids("c1") and not {"c3", "c4", "c5"} & other.ids("c1")
    assert [h[0] for h in other.sparse("c1").search(["zebra"], k=5)[0]] == [
        h[0] for h in store.sparse("c1").search(["zebra"], k=5)[0]
    ]
    assert other.dense("c1").search(unit_vectors(1, seed=9), k=1)[0][0][0] == "new"


def test_deltas_past_their_budget_make_a_full_save(tmp_path: Path, monkeypatch) -> None:
    import retrieval.store as store_mod

    monkeypatch.setattr(store_mod, "_DELTA_MIN_ROWS", 3)
    store = _store(tmp_path)
    store.upsert("c1", ["a", "b"], ["alpha", "beta"], unit_vectors(2))
    store.upsert("c1", ["c"], ["gamma"], unit_vectors(1, seed=3))
    store.upsert("c1", ["d"], ["delta"], unit_vectors(1, seed=4))
    assert len(_manifest(tmp_path, "c1")["deltas"]) == 2
    store.upsert("c1", ["e", "f"], ["epsilon", "phi"], unit_vectors(2, seed=5))  # 4 rows > 3
    m = _manifest(tmp_path, "c1")
    assert m["deltas"] == [] and m["dir"] == _versions(tmp_path, "c1")[-1]
    assert _store(tmp_path).ids("c1") == {"a", "b", "c", "d", "e", "f"}


def test_an_unreadable_delta_is_repaired_from_sql(engine, tmp_path: Path) -> None:
    store = _store(tmp_path)
    cid, by_src = _fill(engine, store)
    store.delete(cid, [by_src["b.txt"][0]])  # a delta (SQL still has the chunk)
    m = _manifest(tmp_path, cid)
    (tmp_path / "indexes" / cid / m["dir"] / m["deltas"][0]).write_bytes(b"garbage")
    broken = _store(tmp_path)
    (rep,) = broken.repair(engine)
    assert rep.sparse.action == rep.dense.action == "rebuilt"
    with Session(engine) as s:
        assert _store(tmp_path).ids(cid) == repository.chunk_ids(s, cid)


def test_a_write_that_fails_half_way_makes_the_next_persist_full(
    tmp_path: Path, monkeypatch
) -> None:
    """BM25 took the chunk, FAISS failed: no delta can describe that state, so the next
    write saves everything, and a reload matches memory."""
    from retrieval.dense import FaissIndex

    store = _store(tmp_path)
    store.upsert("c1", ["a", "b"], ["alpha", "beta"], unit_vectors(2))
    (base,) = _versions(tmp_path, "c1")
    with pytest.raises(ValueError, match=f"dimension {DIM + 1}, the index {DIM}"):
        store.upsert("c1", ["bad"], ["wrong size"], np.zeros((1, DIM + 1), np.float32))
    assert "bad" not in store.ids("c1")  # refused before anything changed
    add = FaissIndex.add

    def failing_add(self, ids, vectors):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(FaissIndex, "add", failing_add)
    with pytest.raises(RuntimeError):
        store.upsert("c1", ["bad"], ["broken chunk"], unit_vectors(1, seed=2))
    monkeypatch.setattr(FaissIndex, "add", add)
    store.upsert("c1", ["c"], ["gamma"], unit_vectors(1, seed=3))
    m = _manifest(tmp_path, "c1")
    assert m["dir"] != base and m["deltas"] == []
    fresh = _store(tmp_path)
    assert fresh.ids("c1") == store.ids("c1") and fresh.ids("c1", "dense") == {"a", "b", "c"}
