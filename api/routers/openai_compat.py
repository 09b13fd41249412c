"""An OpenAI-compatible face: ``POST /v1/chat/completions`` (streamed or not) and
``GET /v1/models``, so OpenAI clients (the ``openai`` SDK, LangChain's ``ChatOpenAI``,
chat UIs) ask the platform questions.

The model name selects one of the caller's tenant's collections (``docs`` or
``rag:docs``); the question is the last user message. The answer's citations, verdicts
and abstention ride in an extra ``rag`` field (the ``/v1/query`` answer JSON). A streamed
answer is the final, checked answer cut into chunks: the concatenated deltas equal the
non-streamed ``content``, never raw model output the checks later replaced.

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="rag_…")
    reply = client.chat.completions.create(
        model="docs", messages=[{"role": "user", "content": "What is RRF?"}]
    )
    reply.choices[0].message.content, reply.model_extra["rag"]["citations"]
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api import observability
from api.answer_records import store_answer
from api.deps import PlatformDep, TenantDep
from api.metrics import QUERIES, QUERY_LATENCY
from api.platform import Platform
from api.schemas import SamplingIn, answer_to_dict
from core import repository
from core.errors import InvalidRequest, LimitExceeded, RagError
from core.types import Answer, CollectionKey

router = APIRouter(prefix="/v1", tags=["openai"])
log = logging.getLogger(__name__)

MODEL_PREFIX = "rag:"


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    # a string, or OpenAI's list of content parts ({"type": "text", "text": …})
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        if not self.content:
            return ""
        return "".join(
            str(p.get("text", "")) for p in self.content if p.get("type") in ("text", None)
        )


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat completion request; fields the platform has no use for (tools,
    logprobs, user…) are accepted and ignored. ``top_k`` (sources retrieved) is ours."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(..., min_length=1)
    messages: list[ChatMessageIn] = Field(..., min_length=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    max_completion_tokens: int | None = Field(None, ge=1, le=4096)
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = Field(None, ge=1)
    top_k: int | None = Field(None, ge=1, le=200)


def openai_error(
    status: int,
    message: str,
    code: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
) -> JSONResponse:
    """OpenAI's error body, so its clients raise their usual exception (NotFoundError…)."""
    return JSONResponse(
        status_code=status,
        content={"error": {"message": message, "type": type_, "param": param, "code": code}},
    )


def _error_of(e: RagError) -> JSONResponse:
    kind = "invalid_request_error" if e.http_status < 500 else "server_error"
    resp = openai_error(e.http_status, e.message, e.code, type_=kind)
    if isinstance(e, LimitExceeded):  # 429 / 503 for load: when to try again
        resp.headers["Retry-After"] = str(e.retry_after)
    return resp


def collection_of_model(platform: Platform, tenant: str, model: str) -> CollectionKey | None:
    """The caller's existing collection a model name names (``docs`` or ``rag:docs``);
    None when there is none (another tenant's collection is none of the caller's)."""
    name = model[len(MODEL_PREFIX) :] if model.startswith(MODEL_PREFIX) else model
    try:
        key = CollectionKey(tenant, name)
    except RagError:
        return None
    with repository.read(platform.engine) as s:
        return key if repository.find_collection(s, key) is not None else None


def _model_card(name: str, tenant: str, created: float) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(created), "owned_by": tenant}


@router.get("/models")
def list_models(platform: PlatformDep, tenant: TenantDep) -> dict[str, Any]:
    """The caller's collections as OpenAI models (``model`` of a chat completion)."""
    with repository.read(platform.engine) as s:
        rows = repository.list_collections(s, tenant)
        data = [_model_card(r.name, tenant, r.created_at.timestamp()) for r in rows]
    return {"object": "list", "data": data}


@router.get("/models/{model:path}", response_model=None)
def get_model(
    model: str, platform: PlatformDep, tenant: TenantDep
) -> dict[str, Any] | JSONResponse:
    key = collection_of_model(platform, tenant, model)
    if key is None:
        return _not_found(model)
    with repository.read(platform.engine) as s:
        row = repository.get_collection(s, key)
        return _model_card(row.name, tenant, row.created_at.timestamp())


def _not_found(model: str) -> JSONResponse:
    log.info("model %r names no collection of the caller's tenant", model)
    return openai_error(
        404,
        f"The model '{model}' does not exist: it names no collection of yours "
        "(GET /v1/models lists them)",
        "model_not_found",
        param="model",
    )


def _question(req: ChatCompletionRequest) -> str:
    for m in reversed(req.messages):
        if m.role == "user":
            text = m.text().strip()
            if text:
                return text
    raise InvalidRequest("messages: no user message with text to answer")


def _sampling(req: ChatCompletionRequest) -> SamplingIn:
    stop = [req.stop] if isinstance(req.stop, str) else req.stop
    return SamplingIn(
        temperature=req.temperature,
        top_p=req.top_p,
        max_tokens=req.max_completion_tokens or req.max_tokens,
        seed=req.seed,
        stop=stop,
    )


def _usage(answer: Answer) -> dict[str, int]:
    p, c = answer.usage.prompt_tokens, answer.usage.completion_tokens
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _rag_field(answer: Answer) -> dict[str, Any]:
    out = answer_to_dict(answer)
    out.pop("answer", None)  # it is the message content
    return out


def _pieces(text: str) -> list[str]:
    """The answer cut at word boundaries into chunks of a few words (whitespace kept, so
    joining the pieces gives the text back exactly)."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + 4]) for i in range(0, len(words), 4)]


@router.post("/chat/completions", response_model=None)
def chat_completions(
    req: ChatCompletionRequest, platform: PlatformDep, tenant: TenantDep
) -> dict[str, Any] | JSONResponse | StreamingResponse:
    """Answer the last user message from the collection ``model`` names, OpenAI-style."""
    settings = platform.settings
    try:
        if req.n is not None and req.n > 1:
            raise InvalidRequest("n: only one choice per request (n=1)")
        key = collection_of_model(platform, tenant, req.model)
        if key is None:
            return _not_found(req.model)
        question = _question(req)
        start = time.perf_counter()
        outcome = "error"
        try:
            answer = platform.query.answer(
                question,
                key,
                top_k=req.top_k or settings.retrieval.top_k,
                sampling=_sampling(req).to_core(settings.llm),
            )
            outcome = "abstained" if answer.abstained else "answered"
        finally:
            QUERIES.labels(outcome=outcome).inc()
            QUERY_LATENCY.observe(time.perf_counter() - start)
    except RagError as e:
        return _error_of(e)
    observability.record_answer(answer)
    # stored like every answer: its id (in the rag field) is what POST /v1/feedback takes
    rag = {**_rag_field(answer), "answer_id": store_answer(platform.engine, key, answer)}
    rid = observability.request_id() or ""
    completion_id = f"chatcmpl-{rid}"
    created = int(time.time())
    fingerprint = f"fp_{answer.model.sha256[:12]}" if answer.model.sha256 else None
    if not req.stream:
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": req.model,
            "system_fingerprint": fingerprint,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": _usage(answer),
            "rag": rag,
        }

    include_usage = bool(req.stream_options and req.stream_options.include_usage)

    def event(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": req.model,
            "system_fingerprint": fingerprint,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return event([choice], **extra)

    def sse() -> Iterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        for piece in _pieces(answer.text):
            yield chunk({"content": piece})
        yield chunk({}, "stop", rag=rag)
        if include_usage:  # OpenAI's last chunk: no choices, the usage
            yield event([], usage=_usage(answer))
        yield "data: [DONE]\n\n"

    return StreamingResponse(sse(), media_type="text/event-stream")
