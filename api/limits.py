"""Per API key limits on every /v1 request: requests per minute (429 ``rate_limited``
with Retry-After, X-RateLimit-Limit and X-RateLimit-Remaining on every answer), and the
caller the generation queue counts concurrent generations against (429
``too_many_generations``, generation.queue). /healthz, /readyz, /metrics and / are not
/v1 routes and are never limited.

    limiter = RateLimiter(per_minute=600)
    limit, remaining = limiter.take("key:abc")    # RateLimited when the minute is spent
"""

from __future__ import annotations

import threading
import time
from typing import Annotated

from fastapi import Depends, Request, Response

from api.auth import Caller
from api.deps import PlatformDep, get_caller
from api.metrics import LIMIT_REJECTIONS
from core.errors import RateLimited
from generation.queue import set_caller


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests at once, refilled evenly over a
    minute (0: no limit). Safe to share between threads."""

    _PRUNE_AT = 10_000  # buckets kept before full (idle) ones are dropped

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0  # tokens per second
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, now: float | None = None) -> tuple[int, int]:
        """Spend one request of ``key``'s; (limit, remaining), or ``RateLimited`` naming
        the seconds until the next one is allowed."""
        if not self.per_minute:
            return 0, 0
        at = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.per_minute), at))
            tokens = min(float(self.per_minute), tokens + (at - last) * self._rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, at)
                raise RateLimited(
                    f"more than {self.per_minute} requests in a minute with this API key "
                    "(limits.requests_per_minute); slow down",
                    (1.0 - tokens) / self._rate,
                )
            self._buckets[key] = (tokens - 1.0, at)
            if len(self._buckets) > self._PRUNE_AT:
                self._prune(at)
            return self.per_minute, int(tokens - 1.0)

    def _prune(self, now: float) -> None:
        full = [
            k
            for k, (tokens, last) in self._buckets.items()
            if tokens + (now - last) * self._rate >= self.per_minute
        ]
        for k in full:
            del self._buckets[k]


def caller_key(caller: Caller) -> str:
    """What the limits count against: the API key, else the tenant (no key sent)."""
    return f"key:{caller.key_id}" if caller.key_id is not None else f"tenant:{caller.tenant}"


# Routes whose answers the LLM generates: refused before their retrieval when the
# generation queue would refuse them (the queue itself still decides when they get there).
GENERATING_ROUTES = frozenset(
    {"/v1/query", "/v1/query/stream", "/v1/chat", "/v1/chat/stream", "/v1/chat/completions"}
)


async def enforce_limits(
    request: Request,
    response: Response,
    platform: PlatformDep,
    caller: Annotated[Caller, Depends(get_caller)],
) -> None:
    """The /v1 routers' dependency: spend one request of the caller's minute, name the
    caller of the request's generations, and refuse a generating route at once when the
    queue is over its limits. Async, so that it runs in the request's own context and
    the route (run in a worker thread with a copy of it) sees the caller."""
    key = caller_key(caller)
    set_caller(key)
    try:
        limit, remaining = platform.rate_limiter.take(key)
    except RateLimited:
        LIMIT_REJECTIONS.labels(code=RateLimited.code).inc()
        raise
    if limit:
        response.headers["X-RateLimit-Limit"] = str(limit)
        response.headers["X-RateLimit-Remaining"] = str(remaining)
    llm = platform.__dict__.get("llm")  # never built here: the event loop must not wait
    if llm is not None and request.method == "POST" and request.url.path in GENERATING_ROUTES:
        llm.queue.check()
