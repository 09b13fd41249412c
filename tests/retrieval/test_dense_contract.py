"""Contract suite every DenseIndex implementation/config runs (retrieval.ports.DenseIndex)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from core.settings import DenseSettings
from retrieval.dense import FaissIndex
from tests.retrieval.conftest import unit_vectors

DIM = 32
CONFIGS = {
    "flat": DenseSettings(hnsw_threshold=10_000),
    "hnsw": DenseSettings(hnsw_threshold=50, hnsw_m=16, hnsw_ef_construction=64),
}


def exact(vecs: np.ndarray, ids: list[str], q: np.ndarray, k: int) -> list[str]:
    sims = vecs @ q
    return [ids[i] for i in np.argsort(-sims)[:k]]


@pytest.fixture(params=sorted(CONFIGS))
def settings(request: pytest.FixtureRequest) -> DenseSettings:
    return CONFIGS[request.param]


@pytest.fixture
def data() -> tuple[list[str], np.ndarray]:
    return [f"c{i}" for i in range(300)], unit_vectors(300, DIM, seed=1)


def test_add_search_matches_exact(settings: DenseSettings, data) -> None:
    ids, vecs = data
    index = FaissIndex(DIM, settings)
    index.add(ids, vecs)
    expected_kind = "hnsw" if len(ids) >= settings.hnsw_threshold else "flat"
    assert index.kind == expected_kind and len(index) == 300 and index.ids() == set(ids)
    hits = index.search(vecs[:5] * 3.0, k=10)  # queries are normalised
    for qi, h in enumerate(hits):
        assert h[0][0] == ids[qi] and h[0][1] == pytest.approx(1.0, abs=1e-5)
        assert [x[0] for x in h] == exact(vecs, ids, vecs[qi], 10)


def test_replace_and_delete(settings: DenseSettings, data) -> None:
    ids, vecs = data
    index = FaissIndex(DIM, settings)
    index.add(ids, vecs)
    index.add(["c0"], vecs[7:8])  # replace: c0 now points where c7 does
    assert len(index) == 300
    top2 = {h[0] for h in index.search(vecs[7:8], k=2)[0]}
    assert top2 == {"c0", "c7"}
    index.delete(["c7", "absent"])
    assert "c7" not in index.ids() and len(index) == 299
    hits = index.search(vecs[7:8], k=20)[0]
    assert hits[0][0] == "c0" and "c7" not in {h[0] for h in hits} and len(hits) == 20


def test_many_deletes_compact_and_cross_threshold(data) -> None:
    ids, vecs = data
    index = FaissIndex(DIM, DenseSettings(hnsw_threshold=200, hnsw_m=16))
    index.add(ids, vecs)
    assert index.kind == "hnsw"
    index.delete(ids[:150])  # below the threshold: rebuilt exact from the kept vectors
    assert index.kind == "flat" and len(index) == 150
    hits = index.search(vecs[150:153], k=5)
    assert [h[0][0] for h in hits] == ids[150:153]
    assert all(h[0] not in ids[:150] for row in hits for h in row)


def test_allowed_fills_k(settings: DenseSettings, data) -> None:
    ids, vecs = data
    index = FaissIndex(DIM, settings)
    index.add(ids, vecs)
    index.delete(["c3"])
    allowed = {f"c{i}" for i in range(0, 300, 13)} | {"c3", "zzz"}  # c3 deleted, zzz unknown
    hits = index.search(vecs[:4], k=10, allowed=allowed)
    live_allowed = sorted(allowed - {"c3", "zzz"})
    sub = np.stack([vecs[int(c[1:])] for c in live_allowed])
    for qi, h in enumerate(hits):
        assert len(h) == 10 and {x[0] for x in h} <= allowed - {"c3"}
        assert [x[0] for x in h] == exact(sub, live_allowed, vecs[qi], 10)
    assert index.search(vecs[:1], k=5, allowed=set()) == [[]]
    small = index.search(vecs[:1], k=5, allowed={"c1", "c2"})[0]
    assert {h[0] for h in small} == {"c1", "c2"}


def test_save_load_roundtrip(settings: DenseSettings, data, tmp_path: Path) -> None:
    ids, vecs = data
    index = FaissIndex(DIM, settings)
    index.add(ids, vecs)
    index.delete(["c1", "c2"])
    index.save(tmp_path)
    again = FaissIndex.load(tmp_path, settings)
    assert again.ids() == index.ids() and again.kind == index.kind
    assert again.search(vecs[:5], k=7) == index.search(vecs[:5], k=7)
    # a missing FAISS file is rebuilt from the stored vectors (no re-embedding)
    (tmp_path / "dense.faiss").unlink()
    rebuilt = FaissIndex.load(tmp_path, settings)
    assert [h[0] for h in rebuilt.search(vecs[:3], k=1)[0]] == ["c0"]
    found, stored = rebuilt.vectors(["c5", "c1", "c6"])
    assert found == ["c5", "c6"]
    np.testing.assert_allclose(stored, vecs[[5, 6]], atol=1e-6)


def test_empty_index(settings: DenseSettings, tmp_path: Path) -> None:
    index = FaissIndex(DIM, settings)
    assert len(index) == 0 and index.ids() == set()
    assert index.search(unit_vectors(2, DIM), k=5) == [[], []]
    index.save(tmp_path)
    assert FaissIndex.load(tmp_path, settings).search(unit_vectors(1, DIM), k=3) == [[]]
    with pytest.raises(ValueError):
        index.add(["a"], unit_vectors(1, DIM + 1))


def test_searches_go_on_while_a_slow_rebuild_runs(data, monkeypatch) -> None:
    """Crossing the HNSW threshold builds the new index off the search lock: a search
    during the build answers from the current (exact) index; the swap then shows all."""
    import threading

    ids, vecs = data
    index = FaissIndex(DIM, DenseSettings(hnsw_threshold=250, hnsw_m=16))
    index.add(ids[:200], vecs[:200])
    started, release = threading.Event(), threading.Event()
    build = FaissIndex._build

    def slow_build(self, kind, v):
        started.set()
        assert release.wait(30), "test hung"
        return build(self, kind, v)

    monkeypatch.setattr(FaissIndex, "_build", slow_build)
    writer = threading.Thread(target=index.add, args=(ids[200:], vecs[200:]))
    writer.start()
    assert started.wait(30)
    hits = index.search(vecs[:1], k=3)[0]  # would deadlock if the build held the lock
    assert hits[0][0] == "c0" and index.kind == "flat" and len(index) == 200
    release.set()
    writer.join(30)
    assert not writer.is_alive() and index.kind == "hnsw" and len(index) == 300
    assert index.search(vecs[250:251], k=1)[0][0][0] == "c250"


def test_large_hnsw_insert_with_replacements(data) -> None:
    """An insert of >= 2,000 vectors into HNSW runs on a copy; replaced ids stay unique."""
    ids, vecs = data
    index = FaissIndex(DIM, DenseSettings(hnsw_threshold=50, hnsw_m=16))
    index.add(ids, vecs)
    more_ids = [f"m{i}" for i in range(2_100)] + ids[:10]  # 10 replacements
    more = unit_vectors(len(more_ids), DIM, seed=2)
    index.add(more_ids, more)
    assert index.kind == "hnsw" and len(index) == 300 + 2_100
    assert index.search(more[-1:], k=1)[0][0][0] == ids[9]
    assert index.search(more[:1], k=1)[0][0][0] == "m0"
    assert index.search(vecs[5:6], k=1)[0][0][0] != ids[5]  # its old vector is gone
