"""core.db on a real PostgreSQL server (tests/pg.py): schema creation, the in-place
migration of the schema before tenants, collections per tenant, documents, chunks and API
keys. Each test gets an empty database. Skipped, naming what is missing, without a server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import create_engine, insert, inspect, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import db, repository
from core.errors import ApiKeyNotFound, CollectionNotFound, DocumentNotFound
from core.types import CollectionKey
from tests.core.test_db_migration import OLD_SCHEMA
from tests.pg import PostgresServer

K = CollectionKey.default

# The tenantless schema as SQLAlchemy created it on PostgreSQL: its types for SQLite's.
OLD_PG_SCHEMA = OLD_SCHEMA.replace("DATETIME", "TIMESTAMP WITHOUT TIME ZONE").replace(
    "BLOB", "BYTEA"
)


@pytest.fixture
def url(pg_server: PostgresServer) -> str:
    return pg_server.create_database()


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    e = db.make_engine(url)
    yield e
    e.dispose()


def _run_script(url: str, script: str) -> None:
    raw = create_engine(url)
    with raw.begin() as conn:
        for stmt in script.split(";"):
            if stmt.strip():
                conn.exec_driver_sql(stmt)
    raw.dispose()


def test_new_database_gets_the_schema(engine: Engine) -> None:
    insp = inspect(engine)
    assert engine.dialect.name == "postgresql"
    assert {"collections", "documents", "chunks", "ingestion_jobs", "api_keys"} <= set(
        insp.get_table_names()
    )
    uniques = insp.get_unique_constraints("collections")
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        (db.COLLECTION_UNIQUE, ["tenant", "name"])
    ]
    assert db.migrate(engine) is False


def test_collections_are_per_tenant(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        a = repository.get_or_create_collection(s, CollectionKey("a", "docs"))
        b = repository.get_or_create_collection(s, CollectionKey("b", "docs"))
        assert a.id != b.id
        assert repository.get_or_create_collection(s, CollectionKey("a", "docs")).id == a.id
        assert repository.find_collection(s, K("docs")) is None
        with pytest.raises(TypeError):
            repository.find_collection(s, "docs")  # type: ignore[arg-type]
        repository.set_answer_models(
            s, CollectionKey("a", "docs"), {"selector": {"w": [1.5, -2.0]}}
        )
    with Session(engine) as s, s.begin():
        assert [c.name for c in repository.list_collections(s, "a")] == ["docs"]
        assert [(c.tenant, c.name) for c in repository.list_collections(s)] == [
            ("a", "docs"), ("b", "docs")
        ]  # fmt: skip
        assert repository.collection_answer_models(s, CollectionKey("a", "docs")) == {
            "selector": {"w": [1.5, -2.0]}
        }
        assert repository.collection_answer_models(s, CollectionKey("b", "docs")) is None
        with pytest.raises(CollectionNotFound, match="'docs' does not exist"):
            repository.get_collection(s, CollectionKey("c", "docs"))
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.add(db.CollectionRow(id=db.new_id(), tenant="a", name="docs"))


def test_documents_and_chunks(engine: Engine) -> None:
    vec = np.arange(4, dtype=np.float32) / 3
    with Session(engine) as s, s.begin():
        col = repository.get_or_create_collection(s, K("docs"))
        doc = db.DocumentRow(
            id=db.new_id(), collection_id=col.id, source="a/é.txt", media_type="text/plain",
            sha256="ab" * 32, status="ready", meta={"lang": "fr", "tags": ["x"]},
        )  # fmt: skip
        s.add(doc)
        s.flush()
        s.execute(
            insert(db.ChunkRow),
            [
                {"id": f"k{i}", "document_id": doc.id, "collection_id": col.id, "ordinal": i,
                 "text": f"chunk {i} – ünïcode", "char_start": i * 10, "char_end": i * 10 + 9,
                 "heading_path": ["Intro", "Part"], "token_count": 3,
                 "embedding": repository.vector_to_blob(vec)}
                for i in range(3)
            ],
        )  # fmt: skip
        doc_id, col_id = doc.id, col.id
    with Session(engine) as s, s.begin():
        assert [d.source for d in repository.list_documents(s, col_id)] == ["a/é.txt"]
        found = repository.find_document(s, col_id, "a/é.txt")
        assert found is not None and found.meta == {"lang": "fr", "tags": ["x"]}
        assert found.created_at is not None and found.version == 1
        assert repository.chunk_ids(s, col_id) == repository.chunk_ids(s, col_id, ready_only=True)
        chunks = repository.load_chunks(s, ["k0", "k2", "missing"])
        assert set(chunks) == {"k0", "k2"}
        assert chunks["k2"].heading_path == ("Intro", "Part")
        assert chunks["k2"].text == "chunk 2 – ünïcode" and chunks["k2"].collection == "docs"
        assert chunks["k2"].metadata == {"lang": "fr", "tags": ["x"]}
        rows = list(repository.iter_chunk_rows(s, col_id, batch=2))
        assert [r.id for r in rows] == ["k0", "k1", "k2"]
        assert rows[0].embedding is not None
        np.testing.assert_array_equal(repository.blob_to_vector(rows[0].embedding), vec)
        # A document still indexing hides its chunks.
        found.status = "indexing"
        s.flush()
        assert (
            repository.load_chunks(s, ["k0"]) == {}
            and repository.chunk_ids(s, col_id, ready_only=True) == set()
        )
    with Session(engine) as s, s.begin():
        with pytest.raises(DocumentNotFound):
            repository.get_document(s, "other", doc_id)
        assert sorted(repository.delete_document_rows(s, doc_id)) == ["k0", "k1", "k2"]
    with Session(engine) as s, s.begin():
        assert (
            repository.list_documents(s, col_id) == [] and repository.chunk_ids(s, col_id) == set()
        )


def test_deleting_a_collection_cascades(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        col = repository.get_or_create_collection(s, K("docs"))
        doc = db.DocumentRow(collection_id=col.id, source="a", media_type="t", sha256="0")
        s.add(doc)
        s.flush()
        s.add(db.ChunkRow(document_id=doc.id, collection_id=col.id, ordinal=0, text="t",
                          char_start=0, char_end=1))  # fmt: skip
    with Session(engine) as s, s.begin():
        s.delete(repository.get_collection(s, K("docs")))
    with Session(engine) as s:
        assert s.scalars(select(db.DocumentRow)).all() == []
        assert s.scalars(select(db.ChunkRow)).all() == []


def test_api_keys(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        a = repository.add_api_key(s, "acme", "ci", "h1", "rag_ab")
        repository.add_api_key(s, "beta", "", "h2", "rag_cd")
        key_id = a.id
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with Session(engine) as s, s.begin():
        assert repository.find_api_key(s, "h1").id == key_id  # type: ignore[union-attr]
        assert repository.find_api_key(s, "nope") is None
        assert [k.tenant for k in repository.list_api_keys(s)] == ["acme", "beta"]
        assert [k.key_hash for k in repository.list_api_keys(s, "beta")] == ["h2"]
        repository.touch_api_key(s, key_id, when)
        with pytest.raises(ApiKeyNotFound):
            repository.get_api_key(s, "missing")
    with Session(engine) as s:
        used = repository.get_api_key(s, key_id).last_used_at
        assert used is not None and used.replace(tzinfo=UTC) == when
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        repository.add_api_key(s, "other", "", "h1", "rag_ef")  # hashes are unique


def _assert_migrated(engine: Engine) -> None:
    insp = inspect(engine)
    cols = {c["name"]: c for c in insp.get_columns("collections")}
    assert cols["tenant"]["nullable"] is False and "answer_models" in cols
    assert "recipe" in {c["name"] for c in insp.get_columns("documents")}
    assert "ix_collections_name" not in {i["name"] for i in insp.get_indexes("collections")}
    assert [u["column_names"] for u in insp.get_unique_constraints("collections")] == [
        ["tenant", "name"]
    ]
    with Session(engine) as s, s.begin():
        docs = repository.get_collection(s, K("docs"))
        assert (docs.id, docs.tenant, docs.fusion_mode, docs.rrf_k) == ("c1", "default", "rrf", 30)
        assert [d.source for d in repository.list_documents(s, "c1")] == ["a.txt"]
        assert repository.list_documents(s, "c1")[0].recipe is None
        assert repository.chunk_ids(s, "c1") == {"k1"}
        assert repository.get_or_create_collection(s, CollectionKey("acme", "docs")).id != "c1"
        repository.set_answer_models(s, K("docs"), {"abstention": {"b": 0.5}})
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.add(db.CollectionRow(id=db.new_id(), tenant="acme", name="docs"))


@pytest.mark.parametrize(
    "unique_by",
    ["index", "constraint"],
    ids=["unique-index", "named-unique-constraint"],
)
def test_old_database_is_migrated_in_place(url: str, unique_by: str) -> None:
    schema = OLD_PG_SCHEMA
    if unique_by == "constraint":  # a database whose names are unique by a table constraint
        schema = schema.replace(
            "CREATE UNIQUE INDEX ix_collections_name ON collections (name);",
            "ALTER TABLE collections ADD CONSTRAINT collections_name_key UNIQUE (name);",
        )
    _run_script(url, schema)
    engine = db.make_engine(url)
    _assert_migrated(engine)
    assert db.migrate(engine) is False  # idempotent
    engine.dispose()
    engine = db.make_engine(url)
    with Session(engine) as s:
        assert len(s.scalars(select(db.CollectionRow)).all()) == 3
    engine.dispose()


def test_a_failed_migration_changes_nothing(url: str) -> None:
    _run_script(url, OLD_PG_SCHEMA)
    _run_script(
        url, f"CREATE TABLE other (x INTEGER); CREATE INDEX {db.COLLECTION_UNIQUE} ON other (x)"
    )
    with pytest.raises(Exception, match="already exists"):
        db.make_engine(url)
    raw = create_engine(url)
    insp = inspect(raw)
    assert "tenant" not in {c["name"] for c in insp.get_columns("collections")}
    assert "recipe" not in {c["name"] for c in insp.get_columns("documents")}
    assert "ix_collections_name" in {i["name"] for i in insp.get_indexes("collections")}
    with raw.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM collections")).scalar() == 2
    raw.dispose()


def test_concurrent_starts_migrate_once(url: str) -> None:
    _run_script(url, OLD_PG_SCHEMA)
    errors: list[BaseException] = []
    engines: list[Engine] = []

    def start() -> None:
        try:
            engines.append(db.make_engine(url))
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_migrated(engines[0])
    for e in engines:
        e.dispose()
