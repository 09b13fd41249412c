"""The real app on a real PostgreSQL server (tests/pg.py): the settings' db url names a
fresh database of a throwaway cluster; everything else is as in test_tenants.py (the real
embedding model, real FAISS and BM25 files). Skipped, naming what is missing, without a
PostgreSQL server binary or the psycopg driver.

The tenant isolation checks of test_tenants.py run here unchanged, against this module's
``world`` (imported by name below, so pytest collects them again in this module).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect

from api.app import create_app
from core.settings import DBSettings, Settings
from tests.api.conftest import TenantClient, api_settings
from tests.api.test_tenants import (  # noqa: F401  (collected again, on PostgreSQL)
    World,
    test_a_filter_naming_another_tenants_document_finds_nothing,
    test_another_tenants_collection_looks_missing,
    test_another_tenants_document_id_is_404_and_cannot_be_deleted,
    test_bad_collection_names_are_refused_naming_the_rule,
    test_each_tenant_lists_only_its_own_collections,
    test_each_tenant_sees_only_its_own_documents,
    test_retrieval_returns_only_the_callers_chunks,
    test_unchanged_upload_is_per_tenant,
    test_upload_into_a_name_another_tenant_uses_creates_the_callers_own,
    test_uploaded_file_names_are_cleaned,
)
from tests.pg import PostgresServer


def pg_settings(data_dir: Path, url: str) -> Settings:
    return api_settings(data_dir).model_copy(update={"db": DBSettings(url=url)})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pg_server: PostgresServer) -> Iterator[World]:
    settings = pg_settings(tmp_path_factory.mktemp("pg-tenants"), pg_server.create_database())
    with TestClient(create_app(settings)) as client:
        assert client.app.state.platform.engine.dialect.name == "postgresql"
        yield World(client)


def test_upload_list_retrieve_delete(tmp_path: Path, pg_server: PostgresServer) -> None:
    url = pg_server.create_database()
    with TestClient(create_app(pg_settings(tmp_path / "data", url))) as client:
        assert client.get("/healthz").json() == {"status": "ok", "database": "postgresql"}
        tc = TenantClient(client, None)
        docs = {
            "fjord.txt": "The Geiranger fjord ferry runs every hour between May and September.",
            "bakery.txt": "The bakery sells rye bread and cinnamon buns from seven o'clock.",
            "trains.txt": "The night train to the capital leaves the central station at ten.",
        }
        r = tc.upload("notes", docs)
        assert r.status_code == 200, r.text
        assert r.json()["ingested"] == 3
        ids = {o["source"]: o["document_id"] for o in r.json()["results"]}
        assert (
            tc.upload("notes", {"fjord.txt": docs["fjord.txt"]}).json()["results"][0]["status"]
            == "unchanged"
        )

        listed = tc.get("/v1/collections/notes/documents").json()
        assert listed["count"] == 3 and {d["source"] for d in listed["data"]} == set(docs)
        one = tc.get(f"/v1/collections/notes/documents/{ids['fjord.txt']}").json()
        assert one["status"] == "ready" and one["n_chunks"] >= 1 and one["recipe"]
        assert one["created_at"] and one["updated_at"]
        assert tc.get("/v1/collections").json()["data"][0]["documents"] == 3

        for method in ("hybrid", "bm25", "dense"):
            r = tc.retrieve("When does the fjord ferry run?", "notes", method=method, top_k=2)
            assert r.status_code == 200, r.text
            assert r.json()["chunks"][0]["document_id"] == ids["fjord.txt"], method

        assert tc.delete(f"/v1/collections/notes/documents/{ids['fjord.txt']}").status_code == 204
        r = tc.get(f"/v1/collections/notes/documents/{ids['fjord.txt']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "document_not_found"
        chunks = tc.retrieve("fjord ferry", "notes", method="bm25", top_k=5).json()["chunks"]
        assert ids["fjord.txt"] not in {c["document_id"] for c in chunks}
        assert tc.get("/v1/collections/notes/documents").json()["count"] == 2

        assert tc.delete("/v1/collections/notes").status_code == 204
        assert tc.get("/v1/collections").json()["data"] == []
        engine = client.app.state.platform.engine
        assert {"collections", "documents", "chunks", "api_keys"} <= set(
            inspect(engine).get_table_names()
        )
