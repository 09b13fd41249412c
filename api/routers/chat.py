"""Conversations: questions that follow earlier ones (rewritten into standalone questions
before retrieval), the conversations' list and turns, and feedback on any answer; always
the caller's tenant's (another tenant's conversation or answer answers as a missing one)."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

from api.chat import Chat, turn_to_dict
from api.deps import PlatformDep, TenantDep
from api.metrics import QUERIES, QUERY_LATENCY
from api.observability import record_answer
from api.platform import Platform
from api.routers.query import answer_events
from api.schemas import ChatRequest, ErrorResponse, FeedbackRequest
from core import repository

router = APIRouter(prefix="/v1", tags=["chat"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "collection or conversation not found"},
    409: {"model": ErrorResponse, "description": "collection is empty"},
    422: {"model": ErrorResponse, "description": "invalid question or parameters"},
}
_404: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


def _options(req: ChatRequest, platform: Platform) -> dict[str, Any]:
    settings = platform.settings
    return {
        "top_k": req.top_k or settings.retrieval.top_k,
        "filter": req.filter.to_core(),
        "sampling": req.sampling.to_core(settings.llm),
    }


@router.post("/chat", responses=_ERRORS)
def chat(req: ChatRequest, platform: PlatformDep, tenant: TenantDep) -> dict[str, Any]:
    """Answer a question of a conversation (a new one when no `conversation_id` is
    given): a follow-up is rewritten into a standalone question before retrieval. The
    answer JSON of /v1/query plus `answer_id`, `conversation_id`, `question`,
    `rewritten_question` and `rewrite` ("none", "rules" or "model")."""
    start = time.perf_counter()
    outcome = "error"
    try:
        conversation = Chat(platform)
        turn = conversation.prepare(tenant, req)
        answer = platform.query.answer(
            turn.rewrite.text, turn.collection, **_options(req, platform)
        )
        outcome = "abstained" if answer.abstained else "answered"
        record_answer(answer)
        return conversation.finish(turn, answer)
    finally:
        QUERIES.labels(outcome=outcome).inc()
        QUERY_LATENCY.observe(time.perf_counter() - start)


@router.post("/chat/stream", responses=_ERRORS)
def chat_stream(req: ChatRequest, platform: PlatformDep, tenant: TenantDep) -> StreamingResponse:
    """/v1/chat as server-sent events, exactly like /v1/query/stream: `stage` events,
    `token` events joining to the final answer's text, one `answer` event (the /v1/chat
    JSON)."""
    conversation = Chat(platform)
    turn = conversation.prepare(tenant, req)
    events = platform.query.stream(turn.rewrite.text, turn.collection, **_options(req, platform))
    return answer_events(events, lambda answer: conversation.finish(turn, answer))


@router.get("/conversations")
def list_conversations(
    platform: PlatformDep,
    tenant: TenantDep,
    collection: Annotated[str | None, Query(description="only this collection's")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The caller's conversations, most recently active first."""
    with repository.read(platform.engine) as s:
        rows = repository.list_conversations(s, tenant, collection=collection, limit=limit)
        return {
            "conversations": [
                {
                    "id": conv.id,
                    "collection": name,
                    "title": conv.title,
                    "turns": turns,
                    "created_at": conv.created_at.isoformat(),
                    "updated_at": conv.updated_at.isoformat(),
                }
                for conv, name, turns in rows
            ]
        }


@router.get("/conversations/{conversation_id}", responses=_404)
def get_conversation(
    conversation_id: str, platform: PlatformDep, tenant: TenantDep
) -> dict[str, Any]:
    """A conversation with its turns, oldest first."""
    with repository.read(platform.engine) as s:
        conv, col = repository.get_conversation(s, tenant, conversation_id)
        return {
            "id": conv.id,
            "collection": col.name,
            "title": conv.title,
            "created_at": conv.created_at.isoformat(),
            "updated_at": conv.updated_at.isoformat(),
            "turns": [turn_to_dict(a) for a in repository.conversation_turns(s, conv.id)],
        }


@router.delete("/conversations/{conversation_id}", status_code=204, responses=_404)
def delete_conversation(conversation_id: str, platform: PlatformDep, tenant: TenantDep) -> Response:
    """Delete a conversation with its answers and their feedback."""
    with repository.write(platform.engine) as s:
        conv, _ = repository.get_conversation(s, tenant, conversation_id)
        repository.delete_conversation(s, conv.id)
    return Response(status_code=204)


@router.post("/feedback", status_code=201, responses=_404)
def feedback(req: FeedbackRequest, platform: PlatformDep, tenant: TenantDep) -> dict[str, str]:
    """Thumbs up or down on an answer, optionally with the document that should have
    been cited (its id or source name) and the correct answer; a second feedback on the
    same answer replaces the first. `rag tune --feedback` learns from it."""
    with repository.write(platform.engine) as s:
        answer, _ = repository.get_answer(s, tenant, req.answer_id)
        row = repository.set_feedback(
            s,
            answer.id,
            rating=req.rating,
            correct_source=req.correct_source,
            correct_answer=req.correct_answer,
            comment=req.comment,
        )
        return {"feedback_id": row.id, "answer_id": answer.id}
