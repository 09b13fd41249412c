"""Request ids, the JSON access log, /readyz and /metrics on the real app (TestClient;
real SQLite, FAISS, BM25 and embedding model; the bundled LLM loads for /readyz)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.app import create_app
from api.auth import create_api_key
from api.observability import configure_logging
from core.types import CollectionKey
from tests.api.conftest import api_settings, bearer
from tests.api.live import EXAMPLES, free_port

TENANT = "acme"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """A started app (models not warmed up) with the examples in acme's "docs"."""
    app = create_app(api_settings(tmp_path_factory.mktemp("obs-data"), auth_required=True))
    with TestClient(app) as client:
        platform = app.state.platform
        platform.ingest.ingest_paths([EXAMPLES], CollectionKey(TENANT, "docs"))
        yield client, create_api_key(platform.engine, TENANT, "obs").secret


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """The process's logging as configure_logging sets it up, into a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    buf = io.StringIO()
    configure_logging("INFO", stream=buf)
    yield buf
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])


def _records(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_readyz_loads_nothing_itself_and_turns_ready(world: tuple[TestClient, str]) -> None:
    client, _ = world
    r = client.get("/readyz")
    assert r.status_code == 503
    body = r.json()
    assert body["status"] == "not_ready" and "models" in body["failing"]
    assert body["checks"]["models"]["detail"].startswith("loading")
    dialect = client.app.state.platform.engine.dialect.name  # sqlite, or postgresql (--postgres)
    assert body["checks"]["database"] == {"ok": True, "detail": dialect}
    assert body["checks"]["indexes"]["ok"], body
    deadline = time.monotonic() + 180
    while r.status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.25)
        r = client.get("/readyz")
    assert r.status_code == 200, r.json()
    body = r.json()
    assert body["status"] == "ready" and body["failing"] == []
    assert set(body["checks"]) == {
        "serving",
        "database",
        "indexes",
        "models",
        "llm_backend",
        "background_worker",
        "generation_queue",
    }
    assert all(c["ok"] for c in body["checks"].values())
    assert body["checks"]["background_worker"]["detail"] == "alive: ingest_jobs"
    assert client.get("/healthz").status_code == 200


def test_readyz_names_an_unreachable_llm_server(tmp_path: Path) -> None:
    settings = api_settings(tmp_path / "data")
    port = free_port()  # nothing listens there
    settings = settings.model_copy(
        update={
            "llm": settings.llm.model_copy(
                update={"backend": "openai", "openai_base_url": f"http://127.0.0.1:{port}/v1"}
            )
        }
    )
    with TestClient(create_app(settings)) as client:
        r = client.get("/readyz")
        assert r.status_code == 503
        check = r.json()["checks"]["llm_backend"]
        assert not check["ok"] and "unreachable" in check["detail"]
        assert "llm_backend" in r.json()["failing"]


def test_request_id_echoed_or_made(world: tuple[TestClient, str]) -> None:
    client, _ = world
    assert (
        client.get("/healthz", headers={"X-Request-ID": "req-1"}).headers["x-request-id"] == "req-1"
    )
    made = client.get("/healthz").headers["x-request-id"]
    assert len(made) == 32 and int(made, 16) >= 0
    assert made != client.get("/healthz").headers["x-request-id"]
    # not a short printable token: replaced, never echoed into headers or logs
    odd = client.get("/healthz", headers={"X-Request-ID": "x" * 500}).headers["x-request-id"]
    assert len(odd) == 32
    # error responses carry it too
    r = client.get("/v1/collections", headers={"X-Request-ID": "req-401"})
    assert r.status_code == 401 and r.headers["x-request-id"] == "req-401"


def test_one_json_log_line_per_request(
    world: tuple[TestClient, str], log_lines: io.StringIO
) -> None:
    client, secret = world
    r = client.post(
        "/v1/retrieve",
        json={"query": "What is reciprocal rank fusion?", "collection": "docs", "top_k": 2},
        headers={**bearer(secret), "X-Request-ID": "trace-retrieve"},
    )
    assert r.status_code == 200
    r = client.post(
        "/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "hi"}]},
        headers={**bearer(secret), "X-Request-ID": "trace-404"},
    )
    assert r.status_code == 404
    assert client.get("/no/such/page").status_code == 404
    records = _records(log_lines)
    access = [r for r in records if r["logger"] == "rag.access"]
    assert len(access) == 3
    first = access[0]
    assert first["request_id"] == "trace-retrieve" and first["tenant"] == TENANT
    assert first["route"] == "/v1/retrieve" and first["method"] == "POST"
    assert first["status"] == 200 and first["duration_ms"] > 0
    assert first["stages_ms"]["retrieve"] > 0
    assert {"time", "level", "message"} <= set(first)
    assert access[1]["route"] == "/v1/chat/completions" and access[1]["status"] == 404
    assert access[2]["route"] == "<unmatched>" and access[2]["tenant"] is None
    # the platform's own log lines are JSON lines with the request's id too
    own = [r for r in records if r["logger"] == "api.routers.openai_compat"]
    assert own and own[0]["request_id"] == "trace-404" and "nope" in own[0]["message"]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_every_route_by_template(world: tuple[TestClient, str]) -> None:
    client, secret = world
    docs = {"method": "GET", "route": "/v1/collections/{name}/documents", "status": "200"}
    before = _sample("rag_http_requests_total", **docs)
    before_404 = _sample(
        "rag_http_requests_total",
        method="GET",
        route="/v1/collections/{name}/documents",
        status="404",
    )
    before_hist = _sample(
        "rag_http_request_seconds_count", method="GET", route="/v1/collections/{name}/documents"
    )
    before_stage = _sample("rag_stage_seconds_count", stage="retrieve")
    assert client.get("/v1/collections/docs/documents", headers=bearer(secret)).status_code == 200
    assert client.get("/v1/collections/gone/documents", headers=bearer(secret)).status_code == 404
    client.post(
        "/v1/retrieve", json={"query": "fusion", "collection": "docs"}, headers=bearer(secret)
    )
    text = client.get("/metrics").text
    assert _sample("rag_http_requests_total", **docs) == before + 1
    assert (
        _sample(
            "rag_http_requests_total",
            method="GET",
            route="/v1/collections/{name}/documents",
            status="404",
        )
        == before_404 + 1
    )
    assert (
        _sample(
            "rag_http_request_seconds_count",
            method="GET",
            route="/v1/collections/{name}/documents",
        )
        == before_hist + 2
    )
    assert _sample("rag_stage_seconds_count", stage="retrieve") == before_stage + 1
    for family in (
        "rag_http_requests_total{",
        "rag_http_request_seconds_bucket{",
        "rag_stage_seconds_bucket{",
    ):
        assert family in text
    assert "/v1/collections/docs/documents" not in text  # raw paths are no label


def test_an_unhandled_error_is_a_500_with_the_request_id(tmp_path: Path) -> None:
    app = create_app(api_settings(tmp_path / "data"))

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/boom", boom)
    before = _sample("rag_http_requests_total", method="GET", route="/boom", status="500")
    client = TestClient(app, raise_server_exceptions=False)
    r = client.get("/boom", headers={"X-Request-ID": "bug-7"})
    assert r.status_code == 500 and r.headers["x-request-id"] == "bug-7"
    assert r.json()["error"]["code"] == "internal_error" and "bug-7" in r.json()["error"]["message"]
    assert _sample("rag_http_requests_total", method="GET", route="/boom", status="500") == (
        before + 1
    )


@pytest.mark.slow
def test_a_streamed_query_is_counted_with_its_tokens_and_stages(
    world: tuple[TestClient, str], log_lines: io.StringIO
) -> None:
    client, secret = world
    route = {"method": "POST", "route": "/v1/query/stream", "status": "200"}
    before = _sample("rag_http_requests_total", **route)
    tokens = _sample("rag_llm_tokens_total", kind="completion")
    generate = _sample("rag_stage_seconds_count", stage="generate")
    r = client.post(
        "/v1/query/stream",
        json={"question": "What is reciprocal rank fusion?", "collection": "docs"},
        headers={**bearer(secret), "X-Request-ID": "stream-1"},
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "stream-1"
    answer = json.loads(r.text.split("event: answer\ndata: ", 1)[1].split("\n", 1)[0])
    assert _sample("rag_http_requests_total", **route) == before + 1
    completion = answer["usage"]["completion_tokens"]
    assert completion > 0
    assert _sample("rag_llm_tokens_total", kind="completion") == tokens + completion
    assert _sample("rag_stage_seconds_count", stage="generate") == generate + 1
    line = next(x for x in _records(log_lines) if x.get("request_id") == "stream-1")
    assert line["route"] == "/v1/query/stream" and line["tokens"]["completion"] == completion
    assert line["stages_ms"]["generate"] > 0
