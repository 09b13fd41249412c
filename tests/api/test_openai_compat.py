"""``/v1/chat/completions`` and ``/v1/models`` through the official ``openai`` client and
LangChain's ``ChatOpenAI``, against the real app on a local uvicorn server (the bundled
GGUF model answers; real SQLite, FAISS, BM25 and embedding model; a tenant's API key)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from prometheus_client import REGISTRY

from api.auth import create_api_key
from api.routers.openai_compat import _pieces
from tests.api.live import QUESTION, Served, served_examples

TENANT = "acme"


class Server:
    def __init__(self, served: Served) -> None:
        self.url, self.secret, self.platform = served.url, served.secret, served.platform

    def client(self, secret: str | None = None) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=f"{self.url}/v1", api_key=secret or self.secret, max_retries=0
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with served_examples(tmp_path_factory.mktemp("oa-data"), TENANT) as served:
        yield Server(served)


def _requests(route: str, status: str) -> float:
    labels = {"method": "POST", "route": route, "status": status}
    return REGISTRY.get_sample_value("rag_http_requests_total", labels) or 0.0


def _counted(route: str, status: str, expected: float) -> float:
    """The request counter once the server finished the response: a streamed one is
    counted after its last byte, which the client may read a moment before."""
    deadline = time.monotonic() + 5
    while _requests(route, status) < expected and time.monotonic() < deadline:
        time.sleep(0.02)
    return _requests(route, status)


def test_models_list_the_tenants_collections(server: Server) -> None:
    client = server.client()
    assert [m.id for m in client.models.list()] == ["docs"]
    model = client.models.retrieve("docs")
    assert model.id == "docs" and model.owned_by == TENANT
    other = create_api_key(server.platform.engine, "other", "t").secret
    assert list(server.client(other).models.list()) == []


def test_unknown_model_is_an_openai_404(server: Server) -> None:
    client = server.client()
    msg = [{"role": "user", "content": QUESTION}]
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=msg)  # type: ignore[arg-type]
    assert e.value.code == "model_not_found"
    assert e.value.body["param"] == "model"  # type: ignore[index]
    # another tenant's collection is no model of the caller's
    other = create_api_key(server.platform.engine, "other", "t").secret
    with pytest.raises(openai.NotFoundError):
        server.client(other).chat.completions.create(model="docs", messages=msg)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("rag:nope")


def test_bad_requests(server: Server) -> None:
    client = server.client()
    with pytest.raises(openai.AuthenticationError):
        server.client("rag_not_a_key").models.list()
    with pytest.raises(openai.UnprocessableEntityError, match="no user message"):
        client.chat.completions.create(
            model="docs",
            messages=[{"role": "system", "content": "be brief"}],
        )
    with pytest.raises(openai.UnprocessableEntityError, match="n=1"):
        client.chat.completions.create(
            model="docs", n=2, messages=[{"role": "user", "content": QUESTION}]
        )


def test_pieces_join_back_to_the_text() -> None:
    text = "RRF sums 1 / (k + rank)  over lists [1].\nThe end. "
    assert "".join(_pieces(text)) == text
    assert _pieces("") == []


@pytest.mark.slow
def test_openai_client_answers_and_streams_the_same_text(server: Server) -> None:
    """Not streamed: the answer with citations and verdicts in ``rag``; streamed: the same
    final text in chunks, a usage chunk, and the request counted in /metrics."""
    client = server.client()
    messages = [
        {"role": "system", "content": "You answer questions."},
        {"role": "user", "content": QUESTION},
    ]
    # a response is counted after its last byte, which the client may read a moment before
    before = _requests("/v1/chat/completions", "200")
    reply = client.chat.completions.create(model="rag:docs", messages=messages, temperature=0)  # type: ignore[arg-type]
    content = reply.choices[0].message.content
    assert content and reply.choices[0].finish_reason == "stop"
    assert reply.model == "rag:docs" and reply.object == "chat.completion"
    rag = reply.model_extra["rag"]  # type: ignore[index]
    assert not rag["abstained"]
    assert rag["citations"] and rag["citations"][0]["source"].endswith(".md")
    assert {v["guard"] for v in rag["verdicts"]}
    # stored like every answer: feedback takes its id
    feedback = httpx.post(
        f"{server.url}/v1/feedback",
        json={"answer_id": rag["answer_id"], "rating": "up"},
        headers={"Authorization": f"Bearer {server.secret}"},
    )
    assert feedback.status_code == 201, feedback.text
    assert reply.usage and reply.usage.completion_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens

    tokens_before = REGISTRY.get_sample_value("rag_llm_tokens_total", {"kind": "completion"})
    stream = client.chat.completions.create(
        model="docs",
        messages=messages,  # type: ignore[arg-type]
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == content
    assert len([d for d in deltas if d]) > 1  # really in pieces
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and finish[0].choices[0].finish_reason == "stop"
    assert finish[0].model_extra["rag"]["citations"] == rag["citations"]  # type: ignore[index]
    assert finish[0].model_extra["rag"]["answer_id"] != rag["answer_id"]  # type: ignore[index]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert _counted("/v1/chat/completions", "200", before + 2) == before + 2
    tokens_after = REGISTRY.get_sample_value("rag_llm_tokens_total", {"kind": "completion"})
    assert tokens_after == (tokens_before or 0) + chunks[-1].usage.completion_tokens


@pytest.mark.slow
def test_langchain_chat_openai(server: Server) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{server.url}/v1",
        api_key=server.secret,  # type: ignore[arg-type]
        model="docs",
        temperature=0,
        max_retries=0,
    )
    message = llm.invoke(QUESTION)
    assert isinstance(message.content, str) and message.content
    assert message.usage_metadata and message.usage_metadata["output_tokens"] > 0
    streamed = "".join(str(c.content) for c in llm.stream(QUESTION))
    assert streamed == message.content


def test_request_id_over_http(server: Server) -> None:
    r = httpx.get(
        f"{server.url}/v1/models",
        headers={"Authorization": f"Bearer {server.secret}", "X-Request-ID": "trace-42"},
    )
    assert r.headers["x-request-id"] == "trace-42"
