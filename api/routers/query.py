"""Questions (with the LLM) and retrieval (without), over the caller's tenant's collections."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from api.answer_records import store_answer
from api.deps import PlatformDep, TenantDep, collection_key
from api.metrics import QUERIES, QUERY_LATENCY
from api.observability import record_answer, record_stage
from api.schemas import (
    ErrorResponse,
    QueryRequest,
    RetrieveRequest,
    answer_to_dict,
    retrieved_to_dict,
)
from core.errors import RagError
from core.types import Answer, Query
from generation.pipeline import Progress

router = APIRouter(prefix="/v1", tags=["query"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "collection not found"},
    409: {"model": ErrorResponse, "description": "collection is empty"},
    422: {"model": ErrorResponse, "description": "invalid question or parameters"},
}


@router.post("/query", responses=_ERRORS)
def query(req: QueryRequest, platform: PlatformDep, tenant: TenantDep) -> dict[str, Any]:
    """Answer a question from a collection's documents, with numbered sources."""
    settings = platform.settings
    start = time.perf_counter()
    outcome = "error"
    key = collection_key(tenant, req.collection, settings)
    try:
        answer = platform.query.answer(
            req.question,
            key,
            top_k=req.top_k or settings.retrieval.top_k,
            filter=req.filter.to_core(),
            sampling=req.sampling.to_core(settings.llm),
        )
        outcome = "abstained" if answer.abstained else "answered"
        record_answer(answer)
        return {**answer_to_dict(answer), "answer_id": store_answer(platform.engine, key, answer)}
    finally:
        QUERIES.labels(outcome=outcome).inc()
        QUERY_LATENCY.observe(time.perf_counter() - start)


@router.post("/query/stream", responses=_ERRORS)
def query_stream(req: QueryRequest, platform: PlatformDep, tenant: TenantDep) -> StreamingResponse:
    """The same as /v1/query as server-sent events: `stage` events while it retrieves,
    generates and verifies, then `token` events carrying the final answer's text (they
    join to the answer's `answer` field exactly), then one `answer` event."""
    settings = platform.settings
    key = collection_key(tenant, req.collection, settings)
    events = platform.query.stream(
        req.question,
        key,
        top_k=req.top_k or settings.retrieval.top_k,
        filter=req.filter.to_core(),
        sampling=req.sampling.to_core(settings.llm),
    )

    def answer_body(answer: Answer) -> dict[str, Any]:
        return {**answer_to_dict(answer), "answer_id": store_answer(platform.engine, key, answer)}

    return answer_events(events, answer_body)


def answer_events(
    events: Iterator[Progress | str | Answer], answer_body: Callable[[Answer], dict[str, Any]]
) -> StreamingResponse:
    """A streamed answer as server-sent events: `stage`, `token` (a JSON string), one
    `answer` (``answer_body`` of the answer, called once: it stores it) or `error`."""

    def sse() -> Iterator[str]:
        try:
            for item in events:
                if isinstance(item, Answer):
                    record_answer(item)
                    yield f"event: answer\ndata: {json.dumps(answer_body(item))}\n\n"
                elif isinstance(item, Progress):
                    stage = {"stage": item.stage, **item.detail}
                    yield f"event: stage\ndata: {json.dumps(stage)}\n\n"
                else:
                    yield f"event: token\ndata: {json.dumps(item)}\n\n"
        except RagError as e:
            body = {"code": e.code, "message": e.message}
            yield f"event: error\ndata: {json.dumps(body)}\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")


@router.post("/retrieve", responses=_ERRORS)
def retrieve(req: RetrieveRequest, platform: PlatformDep, tenant: TenantDep) -> dict[str, Any]:
    """Ranked chunks with their BM25, dense and fused scores; no LLM."""
    settings = platform.settings
    start = time.perf_counter()
    chunks = platform.retriever.retrieve(
        Query(
            text=req.query,
            collection=collection_key(tenant, req.collection, settings),
            top_k=req.top_k or settings.retrieval.top_k,
            filter=req.filter.to_core(),
        ),
        method=req.method,
    )
    retrieve_ms = (time.perf_counter() - start) * 1000
    record_stage("retrieve", retrieve_ms)
    return {
        "chunks": [retrieved_to_dict(sc, with_text=True) for sc in chunks],
        "timings_ms": {"retrieve": round(retrieve_ms, 2)},
    }
