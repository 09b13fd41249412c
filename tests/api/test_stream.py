"""/v1/query/stream tells the truth: stage events, then the final answer's own text, then
the answer (the real app, embedder and bundled GGUF model)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.api.conftest import TenantClient, api_settings

DOCS = {
    "fusion.txt": "Reciprocal rank fusion adds one over sixty plus the rank of each list.",
    "bakery.txt": "The bakery sells rye bread and cinnamon buns from seven in the morning.",
}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[TenantClient]:
    with TestClient(create_app(api_settings(tmp_path / "data"))) as client:
        yield TenantClient(client, None)


def events(body: str) -> list[tuple[str, object]]:
    out = []
    for block in body.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.mark.slow
def test_the_streamed_text_is_the_final_answer(api: TenantClient) -> None:
    assert api.upload("docs", DOCS).status_code == 200  # ?wait=true: ingested now
    question = {
        "question": "What does reciprocal rank fusion add?",
        "collection": "docs",
        "sampling": {"max_tokens": 16},
    }
    with api.client.stream("POST", "/v1/query/stream", json=question) as s:
        assert s.status_code == 200
        got = events("".join(s.iter_text()))
    kinds = [k for k, _ in got]
    assert kinds[0] == "stage" and kinds[-1] == "answer"
    stages = [d["stage"] for k, d in got if k == "stage"]  # type: ignore[index]
    assert stages[0] == "retrieved"
    streamed = "".join(d for k, d in got if k == "token")  # type: ignore[misc]
    answer = got[-1][1]
    assert streamed == answer["answer"]  # type: ignore[index]
