"""Prometheus metrics, exposed at /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

QUERIES = Counter("rag_queries_total", "Questions answered", ["outcome"])
QUERY_LATENCY = Histogram(
    "rag_query_seconds", "Question latency, retrieval and generation",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
