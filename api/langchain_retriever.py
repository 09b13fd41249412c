"""LangChain retrievers over the platform: ``PlatformRetriever`` in process (a
``Platform`` you built) and ``RestRetriever`` over the REST API (``POST /v1/retrieve``).

Both are ``langchain_core.retrievers.BaseRetriever``s returning ``Document``s of the
ranked chunks: ``page_content`` is the chunk text, ``id`` the chunk id, and ``metadata``
holds ``source``, ``chunk_id``, ``document_id``, ``score`` (fused), ``page``, ``flags``
(what the content checks found), the BM25/dense ranks and scores, and ``heading_path``.
``k`` (chunks returned) is a field and may be passed per call: ``invoke(q, k=3)``.

    retriever = RestRetriever(base_url="http://127.0.0.1:8000", api_key="rag_…",
                              collection="docs", k=4)
    docs = retriever.invoke("What is reciprocal rank fusion?")

    retriever = PlatformRetriever(platform=platform, collection="docs", tenant="acme")
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, Field

from api.platform import Platform
from api.schemas import retrieved_to_dict
from core.errors import RagError
from core.types import DEFAULT_TENANT, CollectionKey, Query

Method = Literal["hybrid", "bm25", "dense"]


class RetrievalRequestFailed(RagError):
    """The platform's REST API refused a retrieval (its error code and message)."""

    code = "retrieval_request_failed"

    def __init__(self, message: str, *, http_status: int, code: str | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status
        if code:
            self.code = code


def _document(chunk: dict[str, Any], collection: str) -> Document:
    """A LangChain document of one ``retrieved_to_dict(..., with_text=True)`` result."""
    meta = {k: v for k, v in chunk.items() if k != "text"}
    meta["collection"] = collection
    meta.setdefault("flags", {})
    return Document(page_content=chunk["text"], metadata=meta, id=chunk["chunk_id"])


class PlatformRetriever(BaseRetriever):
    """Hybrid (or BM25 / dense) retrieval from one collection of a ``Platform`` in this
    process; the collection belongs to ``tenant`` (the default tenant's when omitted)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    platform: Platform
    collection: str
    tenant: str = DEFAULT_TENANT
    k: int = Field(4, ge=1, le=200)
    method: Method = "hybrid"

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        key = CollectionKey(self.tenant, self.collection)
        chunks = self.platform.retriever.retrieve(
            Query(text=query, collection=key, top_k=k or self.k), method=self.method
        )
        return [_document(retrieved_to_dict(sc, with_text=True), key.name) for sc in chunks]


class RestRetriever(BaseRetriever):
    """The same over HTTP: ``POST {base_url}/v1/retrieve`` with the caller's API key.
    ``collection`` None: the server's default collection."""

    base_url: str
    api_key: str | None = None
    collection: str | None = None
    k: int = Field(4, ge=1, le=200)
    method: Method = "hybrid"
    timeout_s: float = 30.0

    def _request(self, query: str, k: int | None) -> tuple[dict[str, Any], dict[str, str]]:
        body: dict[str, Any] = {"query": query, "top_k": k or self.k, "method": self.method}
        if self.collection is not None:
            body["collection"] = self.collection
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        return body, headers

    @property
    def _url(self) -> str:
        return f"{self.base_url.rstrip('/')}/v1/retrieve"

    def _documents(self, resp: httpx.Response) -> list[Document]:
        if resp.status_code != 200:
            try:
                err = resp.json()["error"]
                code, message = str(err["code"]), str(err["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "http_error", resp.text[:500]
            raise RetrievalRequestFailed(
                f"{self._url} answered {resp.status_code}: {message}",
                http_status=resp.status_code,
                code=code,
            )
        name = self.collection or ""
        return [_document(c, name) for c in resp.json()["chunks"]]

    def _get_relevant_documents(
        self,
        query: str,
        *,
        run_manager: CallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        body, headers = self._request(query, k)
        resp = httpx.post(self._url, json=body, headers=headers, timeout=self.timeout_s)
        return self._documents(resp)

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        k: int | None = None,
    ) -> list[Document]:
        body, headers = self._request(query, k)
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            resp = await client.post(self._url, json=body, headers=headers)
        return self._documents(resp)
