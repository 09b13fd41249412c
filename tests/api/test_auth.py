"""API keys over HTTP: the real app and real keys in a real SQLite file.

These checks never reach an index, so the app is not started (no model loads).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import ApiKeyAuth, create_api_key, key_from_headers, revoke_api_key
from core import db
from core.errors import InvalidApiKey, RevokedApiKey
from core.settings import APISettings
from tests.api.conftest import bearer

AppFactory = Callable[..., TestClient]


def _error(r) -> dict[str, str]:
    assert r.status_code == 401, (r.status_code, r.text)
    assert r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


def _engine(client: TestClient):
    return client.app.state.platform.engine


def test_auth_required_refuses_missing_wrong_and_revoked_keys(unstarted_app: AppFactory) -> None:
    client = unstarted_app(auth_required=True)
    e = _error(client.get("/v1/collections"))
    assert e["code"] == "api_key_missing"
    assert "requires an API key" in e["message"] and "Bearer" in e["message"]

    e = _error(client.get("/v1/collections", headers=bearer("rag_not-a-real-key")))
    assert e["code"] == "api_key_invalid" and "not valid" in e["message"]
    assert "rag_not-a-real-key" not in e["message"]  # a sent secret is never echoed

    created = create_api_key(_engine(client), "acme", "ci")
    assert client.get("/v1/collections", headers=bearer(created.secret)).status_code == 200
    ok = client.get("/v1/collections", headers={"X-API-Key": created.secret})
    assert ok.status_code == 200 and ok.json() == {"data": [], "count": 0}

    revoke_api_key(_engine(client), created.key.id)
    e = _error(client.get("/v1/collections", headers=bearer(created.secret)))
    assert e["code"] == "api_key_revoked" and "revoked" in e["message"]
    assert created.key.prefix in e["message"] and created.secret not in e["message"]


def test_bad_headers_are_named(unstarted_app: AppFactory) -> None:
    client = unstarted_app(auth_required=True)
    key = create_api_key(_engine(client), "acme").secret
    other = create_api_key(_engine(client), "acme").secret
    e = _error(client.get("/v1/collections", headers={"Authorization": "Basic dXNlcjpwdw=="}))
    assert e["code"] == "api_key_missing" and "'Basic' scheme" in e["message"]
    e = _error(client.get("/v1/collections", headers={"Authorization": "Bearer "}))
    assert e["code"] == "api_key_invalid" and "no key after 'Bearer'" in e["message"]
    e = _error(client.get("/v1/collections", headers={**bearer(key), "X-API-Key": other}))
    assert "different keys" in e["message"]
    same = client.get("/v1/collections", headers={**bearer(key), "X-API-Key": key})
    assert same.status_code == 200


def test_every_v1_route_needs_a_key_and_the_open_pages_stay_open(
    unstarted_app: AppFactory,
) -> None:
    client = unstarted_app(auth_required=True)
    paths = client.get("/openapi.json").json()["paths"]
    routes = [
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/v1")
        for method in ops
    ]
    assert len(routes) >= 9
    for method, path in routes:
        url = path.replace("{name}", "docs").replace("{document_id}", "0" * 32)
        # No body at all: the key is checked before the request's own validation.
        r = client.request(method, url)
        assert _error(r)["code"] == "api_key_missing", (method, path)
    for path in ("/healthz", "/", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert 'id="api-key"' in client.get("/").text  # the web page's key field
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["bearer"]["scheme"] == "bearer" and schemes["apiKey"]["name"] == "X-API-Key"


def test_default_mode_needs_no_key_but_checks_one_that_is_sent(
    unstarted_app: AppFactory,
) -> None:
    client = unstarted_app(auth_required=False)
    assert client.get("/v1/collections").json() == {"data": [], "count": 0}
    e = _error(client.get("/v1/collections", headers={"X-API-Key": "rag_wrong"}))
    assert e["code"] == "api_key_invalid"
    created = create_api_key(_engine(client), "acme")
    assert client.get("/v1/collections", headers=bearer(created.secret)).status_code == 200
    revoke_api_key(_engine(client), created.key.id)
    assert _error(client.get("/v1/collections", headers=bearer(created.secret)))["code"] == (
        "api_key_revoked"
    )
    # A proxy's Basic credentials are not a key: the request acts as "default".
    r = client.get("/v1/collections", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 200


def test_keys_are_stored_hashed_never_in_clear(unstarted_app: AppFactory, tmp_path: Path) -> None:
    client = unstarted_app(auth_required=True)
    created = create_api_key(_engine(client), "acme", "web app")
    secret = created.secret
    assert secret.startswith("rag_") and len(secret) >= 40
    assert client.get("/v1/collections", headers=bearer(secret)).status_code == 200
    with Session(_engine(client)) as s:
        row = s.scalars(select(db.ApiKeyRow)).one()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert row.prefix == secret[:12] and row.tenant == "acme" and row.label == "web app"
    assert row.last_used_at is not None  # recorded after the response
    _engine(client).dispose()
    # Nowhere in the database: not in any row (a full SQL dump), not in the files' bytes.
    if not str(_engine(client).url).startswith("sqlite"):
        return  # pytest --postgres: the dump below reads the SQLite file
    db_file = tmp_path / "data" / "rag.sqlite3"
    with sqlite3.connect(db_file) as conn:
        dump = "\n".join(conn.iterdump())
    assert row.key_hash in dump and secret not in dump and secret[12:] not in dump
    for f in tmp_path.joinpath("data").glob("rag.sqlite3*"):
        assert secret.encode() not in f.read_bytes(), f


def test_authenticator_logic(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'k.sqlite3'}")
    auth = ApiKeyAuth(engine, APISettings(auth_required=True))
    one = create_api_key(engine, "one")
    two = create_api_key(engine, "two")
    assert auth.authenticate(f"Bearer {one.secret}", None).tenant == "one"
    assert auth.authenticate(f"bearer   {two.secret}", None).tenant == "two"
    assert auth.authenticate(None, two.secret).key_id == two.key.id
    assert key_from_headers("Basic abc", None) is None
    with pytest.raises(InvalidApiKey):
        auth.authenticate(None, one.secret[:-1])
    revoke_api_key(engine, one.key.id)
    first = revoke_api_key(engine, one.key.id).revoked_at  # twice: keeps the first time
    with pytest.raises(RevokedApiKey):
        auth.authenticate(None, one.secret)
    with Session(engine) as s:
        assert s.get(db.ApiKeyRow, one.key.id).revoked_at == first
    assert auth.authenticate(None, two.secret).tenant == "two"  # others unaffected


def test_auth_required_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from core.settings import Settings

    monkeypatch.delenv("RAG_API__AUTH_REQUIRED", raising=False)
    assert Settings().api.auth_required is False
    monkeypatch.setenv("RAG_API__AUTH_REQUIRED", "true")
    assert Settings().api.auth_required is True


def test_request_validation_errors_use_the_error_shape(unstarted_app: AppFactory) -> None:
    """A body that does not match the schema gets {"error": {code, message}} naming each
    bad field, like every other error (not FastAPI's {"detail": [...]})."""
    client = unstarted_app(auth_required=False)
    r = client.post("/v1/retrieve", json={"text": "chunk size", "top_k": "many"})
    assert r.status_code == 422
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == "invalid_request"
    assert "query: Field required" in body["error"]["message"]
    assert "top_k" in body["error"]["message"]
