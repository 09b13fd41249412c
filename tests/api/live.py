"""A real uvicorn server on a free local port, in a thread, for the clients that speak
HTTP themselves (the ``openai`` SDK, LangChain's ``ChatOpenAI``, ``RestRetriever``)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from api.app import create_app
from api.auth import create_api_key
from api.platform import Platform
from core.types import CollectionKey
from tests.api.conftest import api_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "What is reciprocal rank fusion?"  # examples/retrieval.md answers it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: FastAPI, *, start_timeout_s: float = 120.0) -> Iterator[str]:
    """Run ``app`` (its lifespan included) until the block ends; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="test-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(60)


@dataclass
class Served:
    platform: Platform
    url: str  # the server's base URL
    tenant: str
    secret: str  # an API key of ``tenant``


@contextmanager
def served_examples(data_dir: Path, tenant: str) -> Iterator[Served]:
    """The app (API keys required) served, with the example documents in the tenant's
    "docs" collection and a key of that tenant."""
    app = create_app(api_settings(data_dir, auth_required=True))
    with serve(app) as url:
        platform: Platform = app.state.platform
        platform.ingest.ingest_paths([EXAMPLES], CollectionKey(tenant, "docs"))
        yield Served(platform, url, tenant, create_api_key(platform.engine, tenant, "t").secret)
