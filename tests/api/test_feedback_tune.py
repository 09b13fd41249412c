"""`rag tune --feedback`: feedback posted through the REST API on answers over examples/
becomes relevance labels; the tuned fusion is stored only when it beats the current one
on the held-out labels (the real app, models and SQLite file, then the real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core import repository
from core.db import make_engine
from core.settings import Settings
from core.types import CollectionKey
from evals.feedback_tune import held_out_split
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
    ids = [f"q{i}" for i in range(10)]
    train, held = held_out_split(ids)
    assert len(held) == 3 and sorted(train + held) == sorted(ids)
    assert held_out_split(list(reversed(ids)))[1] == list(reversed(held))
    assert [len(p) for p in held_out_split(["a", "b"])] == [1, 1]


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


def test_too_few_labels_is_said(rag) -> None:
    with TestClient(create_app(api_settings(rag.data))) as client:
        assert TenantClient(client, None).upload("docs", {"a.txt": "Rye bread."}).status_code == 200
    error = rag.fails("tune", "--feedback", "--collection", "docs")
    assert "needs at least 2" in str(error)
