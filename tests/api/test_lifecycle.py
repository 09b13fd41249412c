"""Shutdown that drains and health routes that answer while draining (issue 14).

The in-process tests flip the drain switch on the real app; the slow ones run the real
``rag serve`` in a subprocess, keep an upload in flight (its body sent slowly) and send
it SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.lifecycle import Lifecycle
from tests.api.conftest import api_settings
from tests.api.live import free_port

BOUNDARY = "rag-test-boundary"


def test_a_draining_app_refuses_new_requests_with_retry_after(tmp_path: Path) -> None:
    app = create_app(api_settings(tmp_path))
    with TestClient(app) as client:
        assert client.get("/v1/collections").status_code == 200
        app.state.lifecycle.begin_drain()
        refused = client.get("/v1/collections")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.json()["error"]["code"] == "draining"
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json()["draining"] is True
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "serving" in ready.json()["failing"]
        assert "draining" in ready.json()["checks"]["serving"]["detail"]


def test_wait_idle_waits_for_running_requests_up_to_the_grace() -> None:
    lifecycle = Lifecycle()
    lifecycle.enter()
    assert lifecycle.wait_idle(0.05) is False
    threading.Timer(0.1, lifecycle.leave).start()
    assert lifecycle.wait_idle(5.0) is True
    assert lifecycle.in_flight == 0


# -- the real server, SIGTERM with a request in flight ---------------------------------------


def _slow_upload_body(seconds: float) -> Iterator[bytes]:
    """A multipart upload of one small text file whose bytes arrive over ``seconds``."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="files"; '
        f'filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\n'
    ).encode()
    yield head
    steps = 10
    for i in range(steps):
        time.sleep(seconds / steps)
        yield f"Line {i} of a document uploaded slowly while the server drains.\n".encode()
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


class _Server:
    def __init__(self, data_dir: Path, grace_s: float) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "RAG_DATA_DIR": str(data_dir),
            "RAG_API__PORT": str(self.port),
            "RAG_API__SHUTDOWN_GRACE_S": str(grace_s),
            "HF_HUB_OFFLINE": "1",
        }
        self.log = data_dir / "serve.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--log-format", "text"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rag serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("rag serve did not start")
            time.sleep(0.3)

    def upload_in_background(self, seconds: float) -> tuple[threading.Thread, dict[str, object]]:
        result: dict[str, object] = {}

        def run() -> None:
            try:
                resp = httpx.post(
                    f"{self.url}/v1/collections/slow/documents",
                    content=_slow_upload_body(seconds),
                    headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
                    timeout=60,
                )
                result["status"] = resp.status_code
            except httpx.HTTPError as e:
                result["error"] = repr(e)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread, result

    def close(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log_file.close()
        return self.log.read_text(errors="replace")


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[type]:
    servers: list[_Server] = []

    def start(grace_s: float) -> _Server:
        server = _Server(tmp_path, grace_s)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for s in servers:
        s.close()


@pytest.mark.slow
def test_sigterm_drains_a_running_upload_then_exits(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(30.0)
    upload, result = server.upload_in_background(3.0)
    time.sleep(1.0)  # the upload's body is arriving
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    refused = httpx.get(f"{server.url}/v1/collections", timeout=5)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "5"
    assert httpx.get(f"{server.url}/healthz", timeout=5).json()["draining"] is True
    assert httpx.get(f"{server.url}/readyz", timeout=5).status_code == 503
    upload.join(30)
    assert result.get("status") == 202, result  # the request in flight was finished
    assert server.proc.wait(timeout=30) == 0
    log = server.close()
    assert "SIGTERM: draining" in log and "drained in" in log


@pytest.mark.slow
def test_a_second_sigterm_exits_at_once(make_server) -> None:  # type: ignore[no-untyped-def]
    server = make_server(30.0)
    server.upload_in_background(20.0)
    time.sleep(1.0)
    server.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    start = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(timeout=10) == 1
    assert time.monotonic() - start < 5
    assert "second SIGTERM: exiting now" in server.close()


def test_readyz_reports_the_generation_queue_and_is_not_ready_when_it_is_full(
    tmp_path: Path,
) -> None:
    settings = api_settings(tmp_path)
    settings.limits.generation_queue = 1
    app = create_app(settings)
    with TestClient(app) as client:
        queue = app.state.platform.llm.queue  # built, the model not loaded
        detail = client.get("/readyz").json()["checks"]["generation_queue"]
        assert detail["ok"] and detail["detail"] == "0 running, 0 waiting of 1 on 1 worker(s)"
        queue._waiting = 1  # as when one question waits for the worker
        body = client.get("/readyz").json()
        assert "generation_queue" in body["failing"]
        assert body["checks"]["generation_queue"]["detail"].startswith("full: ")
        queue._waiting = 0
