"""Shutdown that drains, and health checks that never wait behind work.

On the first SIGTERM (or ctrl-C) ``rag serve`` starts draining: every new request except
the health routes gets 503 with ``Retry-After`` (``/readyz`` says "draining"), requests
already running are given ``api.shutdown_grace_s`` seconds to finish, and then the server
stops (uvicorn cancels what is still running; ingestion jobs stay resumable: their state
is in SQL and the next start picks them up). A second signal exits at once.

    lifecycle = Lifecycle()
    app.add_middleware(DrainGate, lifecycle=lifecycle)
    GracefulServer(uvicorn.Config(app, ...), lifecycle, grace_s=30).run()

The health routes run their few fast checks on a small executor of their own
(``HealthExecutor``), never on the request thread pool that generations and uploads can
fill, so a load balancer hears from the process however busy it is.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import FrameType
from typing import TypeVar

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("rag.lifecycle")

# routes a draining server still answers: the ones a load balancer and an operator ask
OPEN_WHILE_DRAINING = frozenset({"/healthz", "/readyz", "/metrics"})
T = TypeVar("T")


class Lifecycle:
    """Whether the server is draining, and how many requests are still running."""

    def __init__(self, retry_after_s: int = 5) -> None:
        self.retry_after_s = retry_after_s
        self._draining = threading.Event()
        self._cond = threading.Condition()
        self._in_flight = 0

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def begin_drain(self) -> None:
        self._draining.set()

    def enter(self) -> None:
        with self._cond:
            self._in_flight += 1

    def leave(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is running (True) or ``timeout_s`` passed (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._in_flight > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True


class DrainGate:
    """ASGI middleware: counts running requests (to their last streamed byte) and turns
    new ones away with 503 + ``Retry-After`` once the server is draining."""

    def __init__(self, app: ASGIApp, lifecycle: Lifecycle) -> None:
        self.app = app
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_WHILE_DRAINING:
            await self.app(scope, receive, send)
            return
        if self.lifecycle.draining:
            await _refuse(send, self.lifecycle.retry_after_s)
            return
        self.lifecycle.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.lifecycle.leave()


async def _refuse(send: Send, retry_after_s: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "draining",
                "message": "the server is shutting down and takes no new requests; "
                f"retry in {retry_after_s} s (another instance, or this one once restarted)",
            }
        }
    ).encode()
    start: Message = {
        "type": "http.response.start",
        "status": 503,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
            (b"connection", b"close"),
        ],
    }
    await send(start)
    await send({"type": "http.response.body", "body": body})


class HealthExecutor:
    """Two threads of their own for the health routes' checks, with a deadline: a check
    that cannot finish in time is reported as failing instead of making the caller wait."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rag-health")

    async def run(self, fn: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self._pool, fn), timeout=self.timeout_s)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class GracefulServer(uvicorn.Server):
    """uvicorn's server with a drain before it stops: the first SIGTERM/SIGINT drains (up
    to ``grace_s`` for running requests), a second one exits the process at once."""

    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle, grace_s: float) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.grace_s = grace_s
        self._drainer: threading.Thread | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drainer is not None:
            log.warning(
                "second %s: exiting now with %d request(s) running",
                signal.Signals(sig).name,
                self.lifecycle.in_flight,
            )
            os._exit(1)
        self.lifecycle.begin_drain()
        log.info(
            "%s: draining: no new requests, %d running, up to %.0f s for them to finish",
            signal.Signals(sig).name,
            self.lifecycle.in_flight,
            self.grace_s,
        )
        self._drainer = threading.Thread(target=self._drain, name="rag-drain", daemon=True)
        self._drainer.start()

    def _drain(self) -> None:
        start = time.monotonic()
        if self.lifecycle.wait_idle(self.grace_s):
            log.info("drained in %.1f s; stopping", time.monotonic() - start)
        else:
            log.warning(
                "grace period of %.0f s over: cancelling %d running request(s); stopping",
                self.grace_s,
                self.lifecycle.in_flight,
            )
        # uvicorn then closes the sockets, cancels what still runs after its own short
        # timeout and runs the app's shutdown (the jobs worker stops between files)
        self.should_exit = True
