"""The LangChain retrievers pass langchain-tests' standard retriever tests: in process
over a real Platform, and over REST against the real app on a local uvicorn server
(real SQLite, FAISS, BM25 and embedding model; a tenant's API key)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from langchain_tests.integration_tests import RetrieversIntegrationTests

from api.auth import create_api_key
from api.langchain_retriever import PlatformRetriever, RestRetriever, RetrievalRequestFailed
from tests.api.live import QUESTION, Served, served_examples

# the standard tests' async test needs pytest-asyncio's marker; on the sync ones it is a
# no-op that pytest-asyncio warns about
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings(
        "ignore:.*is marked with '@pytest.mark.asyncio':pytest.PytestWarning"
    ),
]

TENANT = "acme"
WORLD: list[Served] = []  # the module's served app (the standard tests take no fixture)


@pytest.fixture(scope="module", autouse=True)
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served_examples(tmp_path_factory.mktemp("lc-data"), TENANT) as served:
        WORLD.append(served)
        yield served
        WORLD.clear()


class TestPlatformRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[PlatformRetriever]:
        return PlatformRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"platform": WORLD[0].platform, "collection": "docs", "tenant": TENANT}

    @property
    def retriever_query_example(self) -> str:
        return QUESTION


class TestRestRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[RestRetriever]:
        return RestRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"base_url": WORLD[0].url, "api_key": WORLD[0].secret, "collection": "docs"}

    @property
    def retriever_query_example(self) -> str:
        return QUESTION


def test_documents_carry_chunk_metadata() -> None:
    """Both retrievers give the same ranked chunks, with source, ids, score and flags."""
    local = PlatformRetriever(platform=WORLD[0].platform, collection="docs", tenant=TENANT, k=3)
    remote = RestRetriever(base_url=WORLD[0].url, api_key=WORLD[0].secret, collection="docs", k=3)
    a, b = local.invoke(QUESTION), remote.invoke(QUESTION)
    assert [d.id for d in a] == [d.id for d in b]
    assert [d.page_content for d in a] == [d.page_content for d in b]
    top = a[0]
    assert top.metadata["source"].endswith("retrieval.md")
    assert "reciprocal-rank fusion" in top.page_content
    assert top.metadata["chunk_id"] == top.id
    for d in a:
        assert set(d.metadata) >= {"source", "chunk_id", "document_id", "score", "page", "flags"}
        assert d.metadata["collection"] == "docs"
    scores = [d.metadata["score"] for d in a]
    assert scores == sorted(scores, reverse=True)


def test_bm25_and_dense_methods() -> None:
    for method in ("bm25", "dense"):
        docs = RestRetriever(
            base_url=WORLD[0].url, api_key=WORLD[0].secret, collection="docs", k=2, method=method
        ).invoke(QUESTION)
        assert len(docs) == 2


def test_tenant_isolation_and_errors() -> None:
    """Another tenant's collection is not found, in process and over REST; a bad key is
    refused with the server's error code."""
    with pytest.raises(Exception, match="docs"):
        PlatformRetriever(platform=WORLD[0].platform, collection="docs", tenant="other").invoke("x")
    other = create_api_key(WORLD[0].platform.engine, "other", "t").secret
    with pytest.raises(RetrievalRequestFailed) as e:
        RestRetriever(base_url=WORLD[0].url, api_key=other, collection="docs").invoke(QUESTION)
    assert e.value.http_status == 404 and e.value.code == "collection_not_found"
    with pytest.raises(RetrievalRequestFailed) as e:
        RestRetriever(base_url=WORLD[0].url, api_key="rag_nope", collection="docs").invoke("x")
    assert e.value.http_status == 401


async def test_async_rest_matches_sync() -> None:
    r = RestRetriever(base_url=WORLD[0].url, api_key=WORLD[0].secret, collection="docs", k=3)
    assert [d.id for d in await r.ainvoke(QUESTION)] == [d.id for d in r.invoke(QUESTION)]
