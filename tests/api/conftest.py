"""API fixtures: the real app (real SQLite file, real FAISS/BM25 files, the real embedding
model when started) through FastAPI's TestClient, and real API keys."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from api.app import create_app
from api.auth import create_api_key
from core.settings import APISettings, Settings


def api_settings(data_dir: Path, *, auth_required: bool = False) -> Settings:
    base = Settings(data_dir=data_dir)
    return base.model_copy(
        update={
            "api": APISettings(auth_required=auth_required),
            "ingest": base.ingest.model_copy(update={"max_file_bytes": 200_000}),
        }
    )


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


class TenantClient:
    """A TestClient that sends one tenant's key (or none) with every request."""

    def __init__(self, client: TestClient, secret: str | None) -> None:
        self.client = client
        self.headers = bearer(secret) if secret else {}

    def get(self, url: str, **kw) -> Response:
        return self.client.get(url, headers=self.headers, **kw)

    def post(self, url: str, **kw) -> Response:
        return self.client.post(url, headers=self.headers, **kw)

    def delete(self, url: str, **kw) -> Response:
        return self.client.delete(url, headers=self.headers, **kw)

    def upload(self, collection: str, files: dict[str, str]) -> Response:
        return self.post(
            f"/v1/collections/{collection}/documents?wait=true",
            files=[("files", (n, t.encode(), "text/plain")) for n, t in files.items()],
        )

    def retrieve(self, query: str, collection: str, **kw) -> Response:
        return self.post("/v1/retrieve", json={"query": query, "collection": collection, **kw})


@pytest.fixture
def rag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The `rag` command line through typer's CliRunner on a data folder of its own:
    ``rag("keys", "list")`` (asserts exit 0; ``ok=False`` does not), ``rag.fails(...)``
    (the exception a failing command raised), ``rag.data`` (the folder)."""
    from typer.testing import CliRunner

    from api.cli import app

    data = tmp_path / "data"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for var in ("RAG_DATA_DIR", "RAG_DB__URL"):
        monkeypatch.delenv(var, raising=False)
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(app, ["--data-dir", str(data), *args])
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    run.data = data  # type: ignore[attr-defined]
    run.fails = lambda *args: run(*args, ok=False).exception  # type: ignore[attr-defined]
    return run


@pytest.fixture
def make_key() -> Callable[[TestClient, str], str]:
    """Create a real key for a tenant in the app's database; returns the secret."""

    def make(client: TestClient, tenant: str) -> str:
        return create_api_key(client.app.state.platform.engine, tenant, "test").secret

    return make


@pytest.fixture
def unstarted_app(tmp_path: Path) -> Callable[..., TestClient]:
    """The app without its start-up (no index repair, so no model loads): for the checks
    that never reach an index."""

    def make(*, auth_required: bool) -> TestClient:
        return TestClient(create_app(api_settings(tmp_path / "data", auth_required=auth_required)))

    return make
