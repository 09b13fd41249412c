"""Request ids, one structured log line per request, and the per-route metrics.

``RequestContext`` is a plain ASGI middleware (so it also sees streamed responses to
their last byte): it takes the client's ``X-Request-ID`` (or makes one), sends it back
on the response, keeps it in a context variable that every log record of the request
carries, and when the response is finished writes one ``rag.access`` log line (request
id, tenant, route template, method, status, duration, stage timings) and counts the
request in /metrics.

    app.add_middleware(RequestContext)
    configure_logging("INFO")          # JSON lines on stderr (``rag serve`` does this)
    record_answer(answer)              # a route that answered: tokens and stage timings
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.metrics import HTTP_LATENCY, HTTP_REQUESTS, STAGE_LATENCY, TOKENS
from core.types import Answer

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# A client's id is echoed only when it is a short printable token (no header injection,
# no unbounded log fields); otherwise the request gets a new one.
_VALID_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

access_log = logging.getLogger("rag.access")


class _RequestState:
    """What one request's log line collects while it runs (mutable, shared with the
    threads that run its sync endpoint and its streamed body: they copy the context)."""

    __slots__ = ("request_id", "tenant", "stages", "tokens")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.tenant: str | None = None
        self.stages: dict[str, float] = {}
        self.tokens: dict[str, int] = {}


_current: ContextVar[_RequestState | None] = ContextVar("rag_request", default=None)


def request_id() -> str | None:
    """The id of the request being served (None outside a request)."""
    state = _current.get()
    return state.request_id if state is not None else None


def set_tenant(tenant: str) -> None:
    """Name the caller's tenant in the request's log line (api.deps.get_caller)."""
    state = _current.get()
    if state is not None:
        state.tenant = tenant


def record_answer(answer: Answer) -> None:
    """Count an answer's tokens and stage latencies (/metrics) and put its stage timings
    in the request's log line. Every route that answers calls it, streamed ones too."""
    t = answer.timings
    stages = {"retrieve": t.retrieve_ms, "generate": t.generate_ms, "total": t.total_ms}
    for stage in ("retrieve", "generate"):
        STAGE_LATENCY.labels(stage=stage).observe(stages[stage] / 1000)
    TOKENS.labels(kind="prompt").inc(answer.usage.prompt_tokens)
    TOKENS.labels(kind="completion").inc(answer.usage.completion_tokens)
    state = _current.get()
    if state is not None:
        state.stages.update({k: round(v, 2) for k, v in stages.items()})
        state.tokens = {
            "prompt": answer.usage.prompt_tokens,
            "completion": answer.usage.completion_tokens,
        }


def record_stage(stage: str, ms: float) -> None:
    """A stage timing of a route that does not answer (retrieval only)."""
    STAGE_LATENCY.labels(stage=stage).observe(ms / 1000)
    state = _current.get()
    if state is not None:
        state.stages[stage] = round(ms, 2)


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # unmatched paths (404s) share one label: a scan of random URLs adds no series
    return path if isinstance(path, str) else "<unmatched>"


class RequestContext:
    """ASGI middleware: request id in and out, one access log line, per-route metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == _HEADER_KEY), b"")
        rid = given.decode("latin-1")
        if not _VALID_ID.fullmatch(rid):
            rid = uuid.uuid4().hex
        state = _RequestState(rid)
        token = _current.set(state)
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
                headers = [(k, v) for k, v in message.get("headers", ()) if k != _HEADER_KEY]
                headers.append((_HEADER_KEY, rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # An unhandled error: answer 500 here, with the id the client can report (the
            # server's error middleware outside only logs it once a response has started).
            if not started:
                await send_with_id(_internal_error(rid))
                await send({"type": "http.response.body", "body": _internal_error_body(rid)})
            raise
        finally:
            elapsed = time.perf_counter() - start
            route = _route_template(scope)
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
            HTTP_LATENCY.labels(method=method, route=route).observe(elapsed)
            extra: dict[str, Any] = {
                "tenant": state.tenant,
                "method": method,
                "route": route,
                "path": scope.get("path", ""),
                "status": status,
                "duration_ms": round(elapsed * 1000, 2),
            }
            if state.stages:
                extra["stages_ms"] = dict(state.stages)
            if state.tokens:
                extra["tokens"] = dict(state.tokens)
            access_log.info("%s %s %s", method, route, status, extra=extra)
            _current.reset(token)


def _internal_error_body(rid: str) -> bytes:
    message = f"internal error; quote request id {rid} when reporting it"
    return json.dumps({"error": {"code": "internal_error", "message": message}}).encode()


def _internal_error(rid: str) -> Message:
    body = _internal_error_body(rid)
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode("latin-1")),
        ],
    }


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id()
        record.__dict__.pop("color_message", None)  # uvicorn's ANSI-coloured copy
        return True


def json_formatter() -> JsonFormatter:
    """One JSON object per line: time, level, logger, message, request id, and whatever
    ``extra`` fields the record has (the access line's route, status, timings…)."""
    return JsonFormatter(
        "{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",  # ISO 8601, UTC
    )


def configure_logging(level: str = "INFO", *, stream: Any = None) -> logging.Handler:
    """JSON log lines for the whole process: the platform's own loggers, uvicorn's, and
    the access line. Replaces the root handlers; returns the handler it installed."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # uvicorn's own access line would duplicate rag.access, without the request id
    logging.getLogger("uvicorn.access").disabled = True
    return handler
