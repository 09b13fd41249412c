"""Contract suite every SparseIndex implementation runs (retrieval.ports.SparseIndex)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from core.settings import BM25Settings
from retrieval.bm25 import BM25Index
from retrieval.ports import SparseIndex

DOCS = {
    "cat": "Cats purr when they are content and sleep most of the day.",
    "dog": "Dogs bark at strangers and love long walks in the park.",
    "fish": "Goldfish swim in bowls; fish breathe through gills.",
    "bird": "Birds sing at dawn; some birds migrate south in winter.",
    "cat2": "A cat chases mice; cats are agile hunters.",
    "car": "Electric cars charge batteries instead of burning fuel.",
}

Factory = Callable[[], SparseIndex]
FACTORIES: dict[str, Factory] = {
    "bm25-default": lambda: BM25Index.from_settings(BM25Settings()),
    "bm25-nostem": lambda: BM25Index.from_settings(
        BM25Settings(stemmer="none", stopwords="none", k1=1.2, b=0.5)
    ),
}


def load_like(index: SparseIndex, directory: Path) -> SparseIndex:
    assert isinstance(index, BM25Index)
    return BM25Index.load(directory, index.tokenizer)


@pytest.fixture(params=sorted(FACTORIES))
def index(request: pytest.FixtureRequest) -> SparseIndex:
    idx = FACTORIES[request.param]()
    idx.add(list(DOCS), list(DOCS.values()))
    return idx


def test_add_and_search(index: SparseIndex) -> None:
    assert len(index) == len(DOCS) and index.ids() == set(DOCS)
    (hits,) = index.search(["cats"], k=10)
    assert {h[0] for h in hits} == {"cat", "cat2"}
    assert all(a[1] >= b[1] for a, b in zip(hits, hits[1:], strict=False))


def test_batch_matches_single(index: SparseIndex) -> None:
    queries = ["cats purr", "dogs bark in the park", "birds migrate", "zebra"]
    batch = index.search(queries, k=3)
    assert batch == [index.search([q], k=3)[0] for q in queries]
    assert batch[3] == []  # no shared term: nothing returned


def test_k_limits_results(index: SparseIndex) -> None:
    (hits,) = index.search(["cats dogs birds fish"], k=2)
    assert len(hits) == 2


def test_replace_duplicate_id(index: SparseIndex) -> None:
    index.add(["cat"], ["Zebras graze on the savanna."])
    assert len(index) == len(DOCS)
    assert [h[0] for h in index.search(["zebras"], k=5)[0]] == ["cat"]
    assert "cat" not in {h[0] for h in index.search(["purr"], k=5)[0]}


def test_duplicate_within_batch_last_wins(index: SparseIndex) -> None:
    index.add(["new", "new"], ["first version apple", "second version banana"])
    assert len(index) == len(DOCS) + 1
    assert index.search(["apple"], k=5)[0] == []
    assert [h[0] for h in index.search(["banana"], k=5)[0]] == ["new"]


def test_delete_and_absent_ids(index: SparseIndex) -> None:
    index.delete(["cat", "nope"])
    assert len(index) == len(DOCS) - 1 and "cat" not in index.ids()
    assert [h[0] for h in index.search(["cats"], k=5)[0]] == ["cat2"]
    index.add(["cat"], [DOCS["cat"]])  # re-add after delete
    assert {h[0] for h in index.search(["cats"], k=5)[0]} == {"cat", "cat2"}


def test_allowed_filters_inside_search(index: SparseIndex) -> None:
    many = {f"x{i}": f"common word {'rare' if i % 7 == 0 else ''}" for i in range(200)}
    index.add(list(many), list(many.values()))
    allowed = {f"x{i}" for i in range(0, 200, 7)} | {"dog"}
    (hits,) = index.search(["common rare"], k=10, allowed=allowed)
    assert len(hits) == 10 and {h[0] for h in hits} <= allowed
    assert index.search(["cats"], k=5, allowed=set())[0] == []
    assert index.search(["cats"], k=5, allowed={"unknown"})[0] == []


def test_save_load_roundtrip(index: SparseIndex, tmp_path: Path) -> None:
    index.delete(["fish"])
    index.save(tmp_path)
    again = load_like(index, tmp_path)
    assert again.ids() == index.ids() and len(again) == len(index)
    queries = ["cats purr", "electric fuel", "goldfish"]
    assert again.search(queries, k=4) == index.search(queries, k=4)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_empty_index(tmp_path: Path) -> None:
    for factory in FACTORIES.values():
        idx = factory()
        assert len(idx) == 0 and idx.ids() == set()
        assert idx.search(["anything", "else"], k=5) == [[], []]
        idx.save(tmp_path)
        assert load_like(idx, tmp_path).search(["x"], k=3) == [[]]
        idx.add(["a"], ["alpha"])
        idx.delete(["a"])
        assert idx.search(["alpha"], k=3) == [[]]


def test_ties_at_the_cut_keep_insertion_order() -> None:
    """Equal scores rank in insertion order, also across the k-th place: top-k of 40
    identical documents is always the first k added (argpartition alone picks any)."""
    index = BM25Index.from_settings(BM25Settings())
    ids = [f"d{i:02d}" for i in range(40)]
    index.add(ids, ["solar panels on the roof"] * 40)
    index.add([f"o{i}" for i in range(60)], [f"wind turbine number {i} at sea" for i in range(60)])
    for k in (1, 5, 17, 39):
        assert [h[0] for h in index.search(["solar roof"], k=k)[0]] == ids[:k]


def test_searches_use_the_previous_view_while_a_new_one_builds(monkeypatch) -> None:
    """A writer's refresh() builds the new score matrix outside the mutation lock; a
    search meanwhile answers from the previous view instead of waiting, and every search
    after refresh() returns sees the write."""
    import threading

    index = BM25Index.from_settings(BM25Settings())
    index.add(list(DOCS), list(DOCS.values()))
    assert index.search(["cats"], k=1)[0][0][0] in {"cat", "cat2"}  # builds view 1
    started, release = threading.Event(), threading.Event()
    make_view = BM25Index._make_view

    def slow_make_view(self):
        started.set()
        assert release.wait(30), "test hung"
        return make_view(self)

    monkeypatch.setattr(BM25Index, "_make_view", slow_make_view)
    index.add(["tiger"], ["Tigers are big striped cats that hunt alone at night."])
    writer = threading.Thread(target=index.refresh)
    writer.start()
    assert started.wait(30)
    hits = index.search(["striped"], k=3)[0]  # the old view: no "tiger" yet, no waiting
    assert hits == [] and len(index) == 7
    release.set()
    writer.join(30)
    assert not writer.is_alive()
    assert index.search(["striped"], k=3)[0][0][0] == "tiger"


def test_searches_during_a_writing_block_use_the_previous_view() -> None:
    """Inside ``writing()`` the change is made and the new view built before the block
    ends; a search in another thread meanwhile answers from the previous view."""
    import threading

    index = BM25Index.from_settings(BM25Settings())
    index.add(list(DOCS), list(DOCS.values()))
    index.refresh()
    seen: list[list] = []
    with index.writing():
        index.add(["tiger"], ["Tigers are big striped cats that hunt alone at night."])
        reader = threading.Thread(target=lambda: seen.append(index.search(["striped"], 3)[0]))
        reader.start()
        reader.join(30)
        assert not reader.is_alive() and seen == [[]]  # old view, no wait, no build
    assert index.search(["striped"], k=3)[0][0][0] == "tiger"
