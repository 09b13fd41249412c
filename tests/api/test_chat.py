"""Conversations and feedback through the REST API: the real app, embedding model, GGUF
model, FAISS/BM25 files and SQLite file. Tenants "alpha" and "beta" hold real keys; one
app for the module (each answer runs the real model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.auth import create_api_key
from core import repository
from core.db import AnswerRow, FeedbackRow
from tests.api.conftest import TenantClient, api_settings
from tests.api.test_stream import events

DOCS = {
    "fusion.txt": "Reciprocal rank fusion scores each chunk by the sum of one over sixty "
    "plus its rank in each list. It needs no score normalisation.",
    "bakery.txt": "The bakery sells rye bread and cinnamon buns from seven in the morning.",
    "trains.txt": "The night train to the capital leaves the central station at ten.",
}
FAST = {"max_tokens": 16}


class World:
    def __init__(self, client: TestClient) -> None:
        engine = client.app.state.platform.engine
        self.engine = engine
        self.alpha = TenantClient(client, create_api_key(engine, "alpha").secret)
        self.beta = TenantClient(client, create_api_key(engine, "beta").secret)
        for tc in (self.alpha, self.beta):
            assert tc.upload("docs", DOCS).status_code == 200

    def chat(self, tc: TenantClient, question: str, conversation_id: str | None = None) -> dict:
        body = {"question": question, "collection": "docs", "sampling": FAST}
        if conversation_id is not None:
            body["conversation_id"] = conversation_id
        r = tc.post("/v1/chat", json=body)
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data: Path = tmp_path_factory.mktemp("chat") / "data"
    with TestClient(create_app(api_settings(data, auth_required=True))) as client:
        yield World(client)


@pytest.mark.slow
def test_a_follow_up_is_rewritten_and_every_turn_stored(world: World) -> None:
    first = world.chat(world.alpha, "What is reciprocal rank fusion?")
    assert first["rewrite"] == "none" and first["rewritten_question"] == first["question"]
    assert first["answer"] and first["answer_id"] and first["conversation_id"]
    cid = first["conversation_id"]
    follow = world.chat(world.alpha, "what does it need?", cid)
    assert follow["conversation_id"] == cid and follow["question"] == "what does it need?"
    assert follow["rewrite"] == "rules"
    assert "reciprocal rank fusion" in follow["rewritten_question"].lower()
    assert follow["retrieved"][0]["source"] == "fusion.txt"

    r = world.alpha.get(f"/v1/conversations/{cid}")
    assert r.status_code == 200, r.text
    conv = r.json()
    assert conv["collection"] == "docs" and conv["title"] == "What is reciprocal rank fusion?"
    assert [t["answer_id"] for t in conv["turns"]] == [first["answer_id"], follow["answer_id"]]
    assert conv["turns"][1]["rewritten_question"] == follow["rewritten_question"]
    assert conv["turns"][1]["answer"] == follow["answer"]
    listed = world.alpha.get("/v1/conversations", params={"collection": "docs"}).json()
    mine = [c for c in listed["conversations"] if c["id"] == cid]
    assert mine and mine[0]["turns"] == 2 and mine[0]["collection"] == "docs"

    # feedback: stored beside the answer; a second one replaces the first
    up = world.alpha.post("/v1/feedback", json={"answer_id": follow["answer_id"], "rating": "up"})
    assert up.status_code == 201, up.text
    assert up.json()["answer_id"] == follow["answer_id"] and up.json()["feedback_id"]
    down = {"answer_id": follow["answer_id"], "rating": "down", "correct_source": "fusion.txt"}
    assert world.alpha.post("/v1/feedback", json=down).status_code == 201
    with repository.read(world.engine) as s:
        rows = s.scalars(select(FeedbackRow).where(FeedbackRow.answer_id == follow["answer_id"]))
        assert [(f.rating, f.correct_source) for f in rows] == [("down", "fusion.txt")]

    # deleting the conversation takes its answers and their feedback along
    assert world.alpha.delete(f"/v1/conversations/{cid}").status_code == 204
    assert world.alpha.get(f"/v1/conversations/{cid}").status_code == 404
    gone = world.alpha.post("/v1/feedback", json={"answer_id": first["answer_id"], "rating": "up"})
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "answer_not_found"


@pytest.mark.slow
def test_another_tenants_conversation_and_answer_are_not_found(world: World) -> None:
    alpha = world.chat(world.alpha, "When does the night train leave?")
    cid, aid = alpha["conversation_id"], alpha["answer_id"]
    for r in (
        world.beta.get(f"/v1/conversations/{cid}"),
        world.beta.delete(f"/v1/conversations/{cid}"),
        world.beta.post(
            "/v1/chat", json={"question": "and then?", "collection": "docs", "conversation_id": cid}
        ),
        world.beta.post("/v1/chat", json={"question": "and then?", "conversation_id": "nope"}),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
    r = world.beta.post("/v1/feedback", json={"answer_id": aid, "rating": "down"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "answer_not_found"
    listed = world.beta.get("/v1/conversations").json()["conversations"]
    assert cid not in [c["id"] for c in listed]
    assert world.alpha.get(f"/v1/conversations/{cid}").status_code == 200  # still there


@pytest.mark.slow
def test_the_chat_stream_and_query_carry_answer_ids(world: World) -> None:
    first = world.chat(world.beta, "What does the bakery sell?")
    body = {
        "question": "and when does it open?",
        "collection": "docs",
        "conversation_id": first["conversation_id"],
        "sampling": FAST,
    }
    with world.beta.client.stream(
        "POST", "/v1/chat/stream", json=body, headers=world.beta.headers
    ) as s:
        assert s.status_code == 200
        got = events("".join(s.iter_text()))
    assert got[0][0] == "stage" and got[-1][0] == "answer"
    final = got[-1][1]
    assert isinstance(final, dict)
    assert "".join(d for k, d in got if k == "token") == final["answer"]  # type: ignore[misc]
    assert final["conversation_id"] == first["conversation_id"] and final["rewrite"] == "rules"
    assert final["retrieved"][0]["source"] == "bakery.txt"
    r = world.beta.post(
        "/v1/query",
        json={"question": "When does the train leave?", "collection": "docs", "sampling": FAST},
    )
    assert r.status_code == 200 and r.json()["answer_id"]
    with repository.read(world.engine) as s:
        row = s.get_one(AnswerRow, r.json()["answer_id"])
        assert row.conversation_id is None and row.rewrite == "none"
        assert row.retrieved == [c["chunk_id"] for c in r.json()["retrieved"]]


@pytest.mark.slow
def test_deleting_the_collection_deletes_its_conversations(world: World) -> None:
    assert world.beta.upload("scratch", DOCS).status_code == 200
    chat = {"question": "What does the bakery sell?", "collection": "scratch", "sampling": FAST}
    done = world.beta.post("/v1/chat", json=chat).json()
    assert world.beta.delete("/v1/collections/scratch").status_code == 204
    assert world.beta.get(f"/v1/conversations/{done['conversation_id']}").status_code == 404
    with repository.read(world.engine) as s:
        n = s.scalar(
            select(func.count()).select_from(AnswerRow).where(AnswerRow.id == done["answer_id"])
        )
        assert n == 0
