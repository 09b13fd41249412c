"""Prometheus metrics, exposed at /metrics."""

from __future__ import annotations

from typing import Protocol

from prometheus_client import Counter, Gauge, Histogram

QUERIES = Counter("rag_queries_total", "Questions answered", ["outcome"])
QUERY_LATENCY = Histogram(
    "rag_query_seconds", "Question latency, retrieval and generation",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)

# Every route, streamed responses counted when their last byte is sent (api.observability).
# ``route`` is the path template (/v1/collections/{name}/documents), never the raw path.
HTTP_REQUESTS = Counter(
    "rag_http_requests_total", "HTTP requests by route template, method and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "rag_http_request_seconds", "HTTP request latency to the response's last byte",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
)
TOKENS = Counter("rag_llm_tokens_total", "LLM tokens of answered questions", ["kind"])
STAGE_LATENCY = Histogram(
    "rag_stage_seconds", "Latency of a query stage (retrieve, generate)", ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)

# Limits (api.limits, generation.queue): requests refused for load, by error code
# (rate_limited, too_many_generations, overloaded), and the generation queue's state.
LIMIT_REJECTIONS = Counter(
    "rag_limit_rejections_total", "Requests refused by a limit, by error code", ["code"]
)
GENERATION_QUEUE = Gauge(
    "rag_generation_queue", "Generations waiting for a worker or running", ["state"]
)


class _QueueState(Protocol):
    @property
    def waiting(self) -> int: ...

    @property
    def running(self) -> int: ...


def watch_generation_queue(queue: _QueueState) -> None:
    """Read ``queue``'s waiting and running counts at every scrape (the latest one built)."""
    GENERATION_QUEUE.labels(state="waiting").set_function(lambda: queue.waiting)
    GENERATION_QUEUE.labels(state="running").set_function(lambda: queue.running)
