"""`rag keys` and `--tenant` through typer's CliRunner, on a real SQLite file (and the real
embedding model for the ingest round trip)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from api.auth import ApiKeyAuth
from core import db
from core.errors import ApiKeyNotFound, CollectionNotFound, RevokedApiKey
from core.settings import APISettings


def _auth(data: Path) -> ApiKeyAuth:
    return ApiKeyAuth(db.make_engine(f"sqlite:///{(data / 'rag.sqlite3').resolve()}"),
                      APISettings(auth_required=True))


def test_keys_create_list_revoke_round_trip(rag) -> None:
    created = json.loads(
        rag("keys", "create", "--tenant", "acme", "--label", "ci", "--json").stdout
    )
    secret, key_id = created["secret"], created["key"]["id"]
    assert secret.startswith("rag_") and created["key"]["tenant"] == "acme"
    assert created["key"]["prefix"] == secret[:12]
    plain = rag("keys", "create", "--tenant", "other")
    other_secret = plain.stdout.strip()  # the secret alone on stdout: scriptable
    assert other_secret.startswith("rag_") and "not shown again" in plain.stderr

    auth = _auth(rag.data)
    assert auth.authenticate(f"Bearer {secret}", None).tenant == "acme"

    listed = rag("keys", "list", "--json")
    keys = json.loads(listed.stdout)["data"]
    assert {k["tenant"] for k in keys} == {"acme", "other"}
    table = rag("keys", "list").stdout
    for out in (listed.stdout, table):
        assert secret not in out and other_secret not in out and secret[12:] not in out
    assert key_id in table and "acme" in table
    only = json.loads(rag("keys", "list", "--tenant", "acme", "--json").stdout)["data"]
    assert [k["id"] for k in only] == [key_id] and only[0]["revoked_at"] is None

    revoked = rag("keys", "revoke", key_id)
    assert key_id in revoked.stdout and "revoked" in revoked.stdout
    only = json.loads(rag("keys", "list", "--tenant", "acme", "--json").stdout)["data"]
    assert only[0]["revoked_at"] is not None
    with pytest.raises(RevokedApiKey):
        auth.authenticate(None, secret)
    assert auth.authenticate(None, other_secret).tenant == "other"


def test_keys_bad_input_is_named(rag) -> None:
    r = rag("keys", "revoke", "0" * 32, ok=False)
    assert isinstance(r.exception, ApiKeyNotFound) and "0" * 32 in r.exception.message
    r = rag("keys", "create", "--tenant", "a/b", ok=False)
    assert r.exit_code == 2 and "invalid tenant name" in r.output
    r = rag("keys", "create", ok=False)
    assert r.exit_code == 2 and "--tenant" in r.output


def test_tenant_option_scopes_the_admin_commands(rag, tmp_path: Path) -> None:
    docs = tmp_path / "in"
    docs.mkdir()
    (docs / "a.txt").write_text("The acme warehouse closes at six on Fridays.")
    (docs / "b.txt").write_text("Opening hours of the acme canteen: eleven to two.")
    out = rag("ingest", str(docs), "-c", "docs", "--tenant", "acme", "--json").stdout
    assert json.loads(out)["ingested"] == 2
    listed = json.loads(rag("docs", "list", "-c", "docs", "--tenant", "acme", "--json").stdout)
    assert {d["source"] for d in listed["data"]} == {"a.txt", "b.txt"}
    r = rag("docs", "list", "-c", "docs", "--json", ok=False)  # the default tenant has none
    assert isinstance(r.exception, CollectionNotFound)
    r = rag("retrieve", "warehouse", "-c", "docs", "--tenant", "acme", "--json")
    assert json.loads(r.stdout)["chunks"][0]["source"] == "a.txt"
    assert json.loads(rag("collections", "list", "--json").stdout)["count"] == 0
    mine = json.loads(rag("collections", "list", "--tenant", "acme", "--json").stdout)["data"]
    assert [(c["tenant"], c["name"], c["documents"]) for c in mine] == [("acme", "docs", 2)]
    every = json.loads(rag("collections", "list", "--all-tenants", "--json").stdout)
    assert every["count"] == 1
    doc_id = next(d["id"] for d in listed["data"] if d["source"] == "a.txt")
    r = rag("docs", "delete", doc_id, "-c", "docs", ok=False)  # not the default tenant's
    assert isinstance(r.exception, CollectionNotFound)
    rag("docs", "delete", doc_id, "-c", "docs", "--tenant", "acme")
    listed = json.loads(rag("docs", "list", "-c", "docs", "--tenant", "acme", "--json").stdout)
    assert [d["source"] for d in listed["data"]] == ["b.txt"]


def test_usage_errors_print_a_message_not_a_traceback(tmp_path) -> None:
    """Through the real entry point (`rag`): a bad --tenant or an unknown option is a
    usage error, exit 2, naming the problem."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    for args, needle in (
        (["ingest", "examples/faq.html", "--tenant", "x y"], "invalid tenant name 'x y'"),
        (["keys", "create", "--tenant", "bad name!"], "invalid tenant name 'bad name!'"),
        (["ingest", "--bogus"], "No such option: --bogus"),
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "api.cli", *args], env=env, capture_output=True, text=True
        )
        assert proc.returncode == 2, proc.stderr
        assert needle in proc.stderr and "Traceback" not in proc.stderr
