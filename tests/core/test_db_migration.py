"""The in-place migration of a SQLite database made by the schema before tenants."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import db, repository
from core.types import CollectionKey

K = CollectionKey.default  # a collection of the default tenant

# DDL the tenantless schema created (SQLAlchemy's output for it, verbatim).
OLD_SCHEMA = """
CREATE TABLE collections (
    id VARCHAR(32) NOT NULL,
    name VARCHAR(200) NOT NULL,
    created_at DATETIME NOT NULL,
    fusion_mode VARCHAR(20),
    rrf_k INTEGER,
    alpha FLOAT,
    tuned_metric JSON,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_collections_name ON collections (name);
CREATE TABLE ingestion_jobs (
    id VARCHAR(32) NOT NULL,
    collection_id VARCHAR(32) NOT NULL,
    status VARCHAR(20) NOT NULL,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    n_inputs INTEGER NOT NULL,
    n_ingested INTEGER NOT NULL,
    n_unchanged INTEGER NOT NULL,
    n_replaced INTEGER NOT NULL,
    n_failed INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL,
    summary JSON NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_ingestion_jobs_collection_id ON ingestion_jobs (collection_id);
CREATE TABLE documents (
    id VARCHAR(32) NOT NULL,
    collection_id VARCHAR(32) NOT NULL,
    source VARCHAR(1000) NOT NULL,
    media_type VARCHAR(200) NOT NULL,
    sha256 VARCHAR(64) NOT NULL,
    version INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    error TEXT,
    size_bytes INTEGER NOT NULL,
    n_chunks INTEGER NOT NULL,
    metadata JSON NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (collection_id, source),
    FOREIGN KEY(collection_id) REFERENCES collections (id) ON DELETE CASCADE
);
CREATE INDEX ix_documents_sha256 ON documents (sha256);
CREATE INDEX ix_documents_collection_id ON documents (collection_id);
CREATE TABLE chunks (
    id VARCHAR(32) NOT NULL,
    document_id VARCHAR(32) NOT NULL,
    collection_id VARCHAR(32) NOT NULL,
    ordinal INTEGER NOT NULL,
    text TEXT NOT NULL,
    char_start INTEGER NOT NULL,
    char_end INTEGER NOT NULL,
    page INTEGER,
    heading_path JSON NOT NULL,
    token_count INTEGER NOT NULL,
    embedding BLOB,
    PRIMARY KEY (id),
    FOREIGN KEY(document_id) REFERENCES documents (id) ON DELETE CASCADE
);
CREATE INDEX ix_chunks_collection_id ON chunks (collection_id);
CREATE INDEX ix_chunks_document_id ON chunks (document_id);
INSERT INTO collections VALUES
    ('c1', 'docs', '2026-01-01 00:00:00.000000', 'rrf', 30, NULL, NULL),
    ('c2', 'handbook', '2026-01-02 00:00:00.000000', NULL, NULL, NULL, NULL);
INSERT INTO documents VALUES
    ('d1', 'c1', 'a.txt', 'text/plain', 'ab', 1, 'ready', NULL, 5, 1, '{}',
     '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000');
INSERT INTO chunks VALUES ('k1', 'd1', 'c1', 0, 'hello', 0, 5, NULL, '[]', 1, NULL);
"""


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    path = tmp_path / "rag.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    return path


def _indexes(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'collections'"
        ).fetchall()
    return {name: sql or "" for name, sql in rows}


def test_old_database_is_migrated_in_place(old_db: Path) -> None:
    engine = db.make_engine(f"sqlite:///{old_db}")
    cols = {c["name"]: c for c in inspect(engine).get_columns("collections")}
    assert cols["tenant"]["nullable"] is False
    indexes = _indexes(old_db)
    assert "ix_collections_name" not in indexes
    uniques = inspect(engine).get_unique_constraints("collections")  # the table was rebuilt
    assert [(u["name"], u["column_names"]) for u in uniques] == [
        (db.COLLECTION_UNIQUE, ["tenant", "name"])
    ]
    assert inspect(engine).has_table("api_keys")
    assert "recipe" in {c["name"] for c in inspect(engine).get_columns("documents")}

    with Session(engine) as s, s.begin():
        docs = repository.get_collection(s, K("docs"))  # the old rows are the default tenant's
        assert (docs.id, docs.tenant, docs.fusion_mode, docs.rrf_k) == ("c1", "default", "rrf", 30)
        assert [d.source for d in repository.list_documents(s, "c1")] == ["a.txt"]
        assert repository.chunk_ids(s, "c1") == {"k1"}
        # a name is now per tenant
        other = repository.get_or_create_collection(s, CollectionKey("acme", "docs"))
        assert other.id != "c1"
        assert [c.name for c in repository.list_collections(s, "default")] == ["docs", "handbook"]
        assert [c.name for c in repository.list_collections(s, "acme")] == ["docs"]
    with pytest.raises(IntegrityError), Session(engine) as s, s.begin():
        s.add(db.CollectionRow(id=db.new_id(), tenant="acme", name="docs"))
    engine.dispose()

    # Idempotent: a second start changes nothing and keeps the data.
    engine = db.make_engine(f"sqlite:///{old_db}")
    assert db.migrate(engine) is False
    with Session(engine) as s:
        assert len(s.scalars(select(db.CollectionRow)).all()) == 3
    engine.dispose()


def test_a_failed_migration_changes_nothing(old_db: Path) -> None:
    # A table named like the one the collections table is rebuilt into makes the last step
    # fail: the columns added before it are rolled back, the unique name index stays.
    with sqlite3.connect(old_db) as conn:
        conn.execute("CREATE TABLE _alembic_tmp_collections (x INTEGER)")
    with pytest.raises(Exception, match="already exists"):
        db.make_engine(f"sqlite:///{old_db}")
    with sqlite3.connect(old_db) as conn:
        cols = [r[1] for r in conn.execute("PRAGMA table_info(collections)")]
        assert conn.execute("SELECT count(*) FROM collections").fetchone() == (2,)
        doc_cols = [r[1] for r in conn.execute("PRAGMA table_info(documents)")]
    assert "tenant" not in cols and "recipe" not in doc_cols
    assert "ix_collections_name" in _indexes(old_db)


def test_new_database_has_the_per_tenant_constraint(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'new.sqlite3'}")
    uniques = inspect(engine).get_unique_constraints("collections")
    assert [u["column_names"] for u in uniques] == [["tenant", "name"]]
    assert db.migrate(engine) is False
    with Session(engine) as s, s.begin():
        a = repository.get_or_create_collection(s, CollectionKey("a", "docs"))
        b = repository.get_or_create_collection(s, CollectionKey("b", "docs"))
        assert a.id != b.id
        assert repository.find_collection(s, K("docs")) is None  # the default tenant has none
        assert repository.get_or_create_collection(s, CollectionKey("a", "docs")).id == a.id
