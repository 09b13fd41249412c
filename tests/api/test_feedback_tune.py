"""`rag tune --feedback`: feedback posted through the REST API on answers over examples/
becomes relevance labels; the tuned fusion is stored only when it beats the current one
on the held-out labels (the real app, models and SQLite file, then the real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import Platform
from core import repository
from core.db import make_engine
from core.settings import Settings
from core.types import CollectionKey
from evals.feedback_tune import held_out_split, tune_with_feedback
from tests.api.conftest import TenantClient, api_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FAST = {"max_tokens": 8}
# (question, feedback): "up", a correct source for thumbs down, or None (down, no source)
ASKED: list[tuple[str, str | None]] = [
    ("What is reciprocal-rank fusion?", "up"),
    ("How large can an uploaded file be?", "up"),
    ("Which database holds the data by default?", "up"),
    ("How do I delete a document?", "getting-started.md"),
    ("How are index files written so readers never see half of one?", "data-and-consistency.txt"),
    ("What does the dense retriever embed with?", "retrieval.md"),
    ("Is the answer the same every time?", None),
]


def test_the_held_out_split_is_deterministic() -> None:
    queries = {f"q{i}": f"question {i}" for i in range(10)}
    train, held = held_out_split(queries)
    assert len(held) == 3 and sorted(train + held) == sorted(queries)
    renamed = {f"other-{q}": text for q, text in queries.items()}  # new ids, same questions
    assert held_out_split(renamed)[1] == [f"other-{q}" for q in held]
    assert [len(p) for p in held_out_split({"a": "x", "b": "y"})] == [1, 1]


@pytest.mark.slow
def test_feedback_through_the_api_tunes_fusion_only_when_it_wins(rag) -> None:
    files = {p.name: p.read_text() for p in sorted(EXAMPLES.iterdir())}
    with TestClient(create_app(api_settings(rag.data))) as client:
        api = TenantClient(client, None)
        assert api.upload("docs", files).status_code == 200
        for question, verdict in ASKED:
            r = api.post(
                "/v1/query", json={"question": question, "collection": "docs", "sampling": FAST}
            )
            assert r.status_code == 200, r.text
            body = {
                "answer_id": r.json()["answer_id"],
                "rating": "up" if verdict == "up" else "down",
            }
            if verdict not in ("up", None):
                body["correct_source"] = verdict
            assert api.post("/v1/feedback", json=body).status_code == 201

    first = json.loads(rag("tune", "--feedback", "--collection", "docs", "--json").stdout)
    assert first["labels"]["dataset"] == 0 and first["skipped_feedback"] >= 1
    assert first["labels"]["feedback"] + first["skipped_feedback"] == len(ASKED)
    assert first["train"] + first["held_out"] == first["labels"]["feedback"]
    assert first["stored"] == (first["tuned"]["value"] > first["current"]["value"])
    engine = make_engine(Settings(data_dir=rag.data).db_url)
    with repository.read(engine) as s:
        row = repository.get_collection(s, CollectionKey("default", "docs"))
        assert (row.tuned_metric is not None) == first["stored"]
        if first["stored"]:
            assert row.tuned_metric is not None and row.tuned_metric["dataset"] == "feedback"
    engine.dispose()

    # the same labels again: the tuned fusion is the current one now, never stored twice
    again = rag("tune", "--feedback", "--collection", "docs").output
    assert "held-out ndcg@10: current" in again and "kept the current fusion" in again


# Questions that share no word with their document: BM25 alone misses what dense finds.
PARAPHRASED = {
    "bakery.txt": (
        "The bakery sells rye bread and cinnamon buns from seven in the morning.",
        "Where can I buy pastries early?",
    ),
    "trains.txt": (
        "The night train to the capital leaves the central station at ten.",
        "When does the overnight railway service depart?",
    ),
    "lighthouse.txt": (
        "The lighthouse on the island is painted green with white stripes.",
        "What colour is the coastal beacon tower?",
    ),
    "dentist.txt": (
        "The dentist repairs cavities and whitens teeth on Tuesdays.",
        "Who fixes holes in molars?",
    ),
    "garden.txt": (
        "Tomatoes and cucumbers grow in the greenhouse behind the school.",
        "Where are vegetables cultivated under glass?",
    ),
    "museum.txt": (
        "The museum shows ancient Egyptian mummies and pharaoh statues.",
        "Which exhibition hall displays old relics from the Nile?",
    ),
    "bike.txt": (
        "Bicycles can be rented at the harbour for ten euros a day.",
        "How much does hiring a cycle cost?",
    ),
    "library.txt": (
        "The library lends novels and comics for three weeks.",
        "How long may I borrow books?",
    ),
}


def test_a_fusion_that_wins_on_held_out_feedback_is_stored_once(tmp_path: Path) -> None:
    platform = Platform(Settings(data_dir=tmp_path / "data"))
    platform.startup()
    key = CollectionKey("default", "para")
    src = tmp_path / "src"
    src.mkdir()
    for name, (text, _) in PARAPHRASED.items():
        (src / name).write_text(text)
    platform.ingest.ingest_paths([src], key)
    with repository.write(platform.engine) as s:  # answers stored as the API stores them
        cid = repository.get_collection(s, key).id
        for name, (_, question) in PARAPHRASED.items():
            answer = repository.add_answer(
                s, collection_id=cid, question=question, text="", abstained=True
            )
            repository.set_feedback(s, answer.id, rating="down", correct_source=name)
        repository.set_fusion(s, key, "weighted", None, 0.0, {"objective": "by hand"})  # BM25

    first = tune_with_feedback(platform, key)
    assert (first.n_feedback, first.n_train, first.n_held_out) == (8, 5, 3)
    assert first.tuned.value > first.current.value and first.current.alpha == 0.0
    assert first.stored
    with repository.read(platform.engine) as s:
        row = repository.get_collection(s, key)
        assert (row.fusion_mode, row.rrf_k, row.alpha) == (
            first.tuned.mode.value,
            first.tuned.rrf_k,
            first.tuned.alpha,
        )
        assert row.tuned_metric is not None and row.tuned_metric["dataset"] == "feedback"
    again = tune_with_feedback(platform, key)
    assert again.current == again.tuned and not again.stored
    platform.shutdown()


def test_too_few_labels_is_said(rag) -> None:
    with TestClient(create_app(api_settings(rag.data))) as client:
        assert TenantClient(client, None).upload("docs", {"a.txt": "Rye bread."}).status_code == 200
    error = rag.fails("tune", "--feedback", "--collection", "docs")
    assert "needs at least 2" in str(error)
