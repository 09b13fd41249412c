"""SQL schema (the source of truth) and repository functions.

SQLAlchemy 2.0 typed ORM. The caller owns the transaction; nothing here commits:

    engine = make_engine(settings.db_url)
    with Session(engine) as s, s.begin():
        col = get_or_create_collection(s, CollectionKey("acme", "docs"))

Collections belong to a tenant and their names are unique per tenant. Every lookup
takes a ``core.types.CollectionKey`` (tenant, name); a plain string is refused.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from core import migrations, types
from core.errors import ApiKeyNotFound, CollectionNotFound, DocumentNotFound
from core.types import DEFAULT_TENANT, CollectionKey, require_key

log = logging.getLogger(__name__)

# The (tenant, name) uniqueness of collections, a table constraint in every database.
COLLECTION_UNIQUE = "uq_collections_tenant_name"
# The PostgreSQL advisory lock key that serialises migrations (any fixed 64-bit number).
_MIGRATION_LOCK = 0x7261675F6D6967  # "rag_mig"


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    # Datetimes are aware UTC (utcnow); PostgreSQL keeps the zone (SQLite: naive UTC text).
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        datetime: DateTime(timezone=True),
    }


class CollectionRow(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("tenant", "name", name=COLLECTION_UNIQUE),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(
        String(64), default=DEFAULT_TENANT, server_default=DEFAULT_TENANT
    )
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Per-collection fusion parameters (None: the settings' defaults); set by `rag tune`.
    fusion_mode: Mapped[str | None] = mapped_column(String(20), default=None)
    rrf_k: Mapped[int | None] = mapped_column(Integer, default=None)
    alpha: Mapped[float | None] = mapped_column(Float, default=None)
    tuned_metric: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # The collection's own answer selector and abstention model (`rag tune --abstention`):
    # {"selector": LinearModel JSON, "abstention": LinearModel JSON}; None: the defaults.
    answer_models: Mapped[dict[str, Any] | None] = mapped_column(default=None)

    documents: Mapped[list[DocumentRow]] = relationship(
        back_populates="collection", cascade="all, delete-orphan", passive_deletes=True
    )


class DocumentRow(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "source"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(1000))
    media_type: Mapped[str] = mapped_column(String(200))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    # "indexing" while its chunks are written to the indexes, then "ready".
    status: Mapped[str] = mapped_column(String(20), default="indexing")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    # How the chunks were made (chunk size/overlap, splitter version, embedding model);
    # a re-ingest with another recipe re-indexes the document even if its bytes are equal.
    recipe: Mapped[str | None] = mapped_column(String(300), default=None)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    collection: Mapped[CollectionRow] = relationship(back_populates="documents")
    chunks: Mapped[list[ChunkRow]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True
    )


class ChunkRow(Base):
    __tablename__ = "chunks"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    document_id: Mapped[str] = mapped_column(
        ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    collection_id: Mapped[str] = mapped_column(String(32), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    page: Mapped[int | None] = mapped_column(Integer, default=None)
    heading_path: Mapped[list[str]] = mapped_column(default=list)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    # float32 little-endian vector; lets the dense index be rebuilt without re-embedding.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)

    document: Mapped[DocumentRow] = relationship(back_populates="chunks")


class IngestionJobRow(Base):
    __tablename__ = "ingestion_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|done|failed
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    n_inputs: Mapped[int] = mapped_column(Integer, default=0)
    n_ingested: Mapped[int] = mapped_column(Integer, default=0)
    n_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    n_replaced: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ApiKeyRow(Base):
    """An API key of a tenant. Only the sha256 of the secret is stored, never the secret."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))  # the secret's first characters, for display
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


# -- engine --------------------------------------------------------------------------


def make_engine(url: str, echo: bool = False, *, upgrade: bool = True) -> Engine:
    """Create the engine and upgrade the database to the newest schema revision
    (``migrate``); ``upgrade=False`` leaves the schema alone (Alembic's command line).

    SQLite gets WAL and enforced foreign keys; PostgreSQL sessions run in UTC, so the
    datetimes read back are aware UTC ones."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA busy_timeout=30000")  # first: switching to WAL may wait
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

    elif engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _postgres_utc(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("SET TIME ZONE 'UTC'")
            cur.close()
            dbapi_conn.commit()  # a SET in a transaction that is rolled back is undone

    if upgrade:
        migrate(engine)
    return engine


def migrate(engine: Engine) -> bool:
    """Upgrade the database to the newest revision of ``core/migrations`` (Alembic), in
    place and in one transaction: an empty database gets the schema, one made by an older
    schema (before Alembic too) is brought up to date. ``make_engine`` runs it at every
    start; safe from several processes at once (the first migrates under a lock, the
    others then find it done). Returns whether anything changed.

        migrate(engine)  # False: the database was already at the newest revision
    """
    head = set(migrations.heads())
    with engine.connect() as conn:
        if set(migrations.current(conn)) == head:  # the usual start: no lock taken
            return False
    with _ddl_transaction(engine) as conn:
        before = migrations.current(conn)  # again under the lock: another process may
        if set(before) != head:  # have migrated meanwhile
            migrations.upgrade(conn)
    if set(before) == head:
        return False
    log.info(
        "database schema upgraded from revision %s to %s",
        ", ".join(before) or "none (empty, or made before migrations)",
        ", ".join(sorted(head)),
    )
    return True


@contextmanager
def _ddl_transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction around schema changes, one process at a time. PostgreSQL takes a
    transaction-level advisory lock (else two processes starting on an empty database
    would both create the tables). Python's sqlite3 driver commits before DDL by itself,
    so for SQLite the transaction is opened by hand: BEGIN IMMEDIATE, which also keeps a
    second process out until it ends. SQLite's foreign keys are off meanwhile (dropping
    a table that a batch migration rebuilds would cascade to the rows referencing it) and
    checked before the commit: a migration that leaves more dangling rows rolls back."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one migrating process at a time
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
            yield conn
        return
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        conn.exec_driver_sql("PRAGMA foreign_keys=OFF")  # (a no-op inside a transaction)
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                dangling = len(conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall())
                yield conn
                after = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if len(after) > dangling:
                    raise RuntimeError(
                        f"the migration left rows of table {after[0][0]} whose foreign key "
                        "points nowhere; nothing was changed"
                    )
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
        finally:
            conn.exec_driver_sql("PRAGMA foreign_keys=ON")


# -- vectors ---------------------------------------------------------------------------


def vector_to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def blob_to_vector(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


# -- collections -------------------------------------------------------------------------


def find_collection(s: Session, key: CollectionKey) -> CollectionRow | None:
    """The collection ``key`` names (its tenant's), or None. Another tenant's collection
    of that name is never returned; a plain string is refused (``TypeError``)."""
    key = require_key(key)
    return s.scalar(
        select(CollectionRow).where(
            CollectionRow.tenant == key.tenant, CollectionRow.name == key.name
        )
    )


def get_collection(s: Session, key: CollectionKey) -> CollectionRow:
    """Like ``find_collection``; ``CollectionNotFound`` when the tenant has none of that
    name (the same message whether or not another tenant has one)."""
    row = find_collection(s, key)
    if row is None:
        raise CollectionNotFound(f"collection '{key.name}' does not exist")
    return row


def collection_answer_models(s: Session, key: CollectionKey) -> dict[str, Any] | None:
    """The collection's own fitted answer models, or None (none stored, or no such
    collection: the defaults apply)."""
    row = find_collection(s, key)
    return row.answer_models if row is not None else None


def set_answer_models(s: Session, key: CollectionKey, models: dict[str, Any] | None) -> None:
    """Store (None: remove) the collection's own answer models; ``CollectionNotFound``."""
    get_collection(s, key).answer_models = models


def get_or_create_collection(s: Session, key: CollectionKey) -> CollectionRow:
    row = find_collection(s, key)
    if row is None:
        row = CollectionRow(id=new_id(), tenant=key.tenant, name=key.name)
        s.add(row)
        s.flush()
    return row


def list_collections(s: Session, tenant: str | None = None) -> Sequence[CollectionRow]:
    """One tenant's collections by name; ``tenant`` None: every tenant's (for admin
    tools and the index repair, never for a request)."""
    stmt = select(CollectionRow).order_by(CollectionRow.tenant, CollectionRow.name)
    if tenant is not None:
        stmt = stmt.where(CollectionRow.tenant == tenant)
    return s.scalars(stmt).all()


# -- API keys ------------------------------------------------------------------------------


def add_api_key(s: Session, tenant: str, label: str, key_hash: str, prefix: str) -> ApiKeyRow:
    row = ApiKeyRow(id=new_id(), tenant=tenant, label=label, key_hash=key_hash, prefix=prefix)
    s.add(row)
    s.flush()
    return row


def find_api_key(s: Session, key_hash: str) -> ApiKeyRow | None:
    """The key whose secret hashes to ``key_hash`` (revoked or not), or None."""
    return s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash))


def get_api_key(s: Session, key_id: str) -> ApiKeyRow:
    row = s.get(ApiKeyRow, key_id)
    if row is None:
        raise ApiKeyNotFound(f"API key '{key_id}' does not exist (see `rag keys list`)")
    return row


def list_api_keys(s: Session, tenant: str | None = None) -> Sequence[ApiKeyRow]:
    stmt = select(ApiKeyRow).order_by(ApiKeyRow.tenant, ApiKeyRow.created_at)
    if tenant is not None:
        stmt = stmt.where(ApiKeyRow.tenant == tenant)
    return s.scalars(stmt).all()


def touch_api_key(s: Session, key_id: str, when: datetime) -> None:
    s.execute(update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(last_used_at=when))


# -- documents ---------------------------------------------------------------------------


def find_document(s: Session, collection_id: str, source: str) -> DocumentRow | None:
    return s.scalar(
        select(DocumentRow).where(
            DocumentRow.collection_id == collection_id, DocumentRow.source == source
        )
    )


def get_document(s: Session, collection_id: str, document_id: str) -> DocumentRow:
    row = s.scalar(
        select(DocumentRow).where(
            DocumentRow.collection_id == collection_id, DocumentRow.id == document_id
        )
    )
    if row is None:
        raise DocumentNotFound(f"document '{document_id}' does not exist in this collection")
    return row


def list_documents(s: Session, collection_id: str) -> Sequence[DocumentRow]:
    return s.scalars(
        select(DocumentRow)
        .where(DocumentRow.collection_id == collection_id)
        .order_by(DocumentRow.source)
    ).all()


def delete_document_rows(s: Session, document_id: str) -> list[str]:
    """Delete a document and its chunks; returns the deleted chunk ids."""
    ids = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == document_id)))
    s.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
    s.execute(delete(DocumentRow).where(DocumentRow.id == document_id))
    return ids


# -- chunks --------------------------------------------------------------------------------


def chunk_ids(s: Session, collection_id: str, ready_only: bool = False) -> set[str]:
    stmt = select(ChunkRow.id).where(ChunkRow.collection_id == collection_id)
    if ready_only:
        stmt = stmt.join(DocumentRow).where(DocumentRow.status == "ready")
    return set(s.scalars(stmt))


def chunk_from_row(row: ChunkRow, doc: DocumentRow, collection: str) -> types.Chunk:
    return types.Chunk(
        id=row.id,
        document_id=row.document_id,
        collection=collection,
        ordinal=row.ordinal,
        text=row.text,
        char_start=row.char_start,
        char_end=row.char_end,
        source=doc.source,
        media_type=doc.media_type,
        page=row.page,
        heading_path=tuple(row.heading_path or ()),
        token_count=row.token_count,
        metadata=dict(doc.meta or {}),
    )


def load_chunks(s: Session, ids: Iterable[str]) -> dict[str, types.Chunk]:
    """Chunks by id, for chunks whose document is ready. Unknown ids are absent."""
    ids = list(ids)
    out: dict[str, types.Chunk] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        rows = s.execute(
            select(ChunkRow, DocumentRow, CollectionRow.name)
            .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
            .join(CollectionRow, DocumentRow.collection_id == CollectionRow.id)
            .where(ChunkRow.id.in_(batch), DocumentRow.status == "ready")
        ).all()
        for crow, drow, cname in rows:
            out[crow.id] = chunk_from_row(crow, drow, cname)
    return out


def iter_chunk_rows(s: Session, collection_id: str, batch: int = 2000) -> Iterable[ChunkRow]:
    """All chunk rows of a collection (any document status), in id order, streamed."""
    stmt = (
        select(ChunkRow)
        .where(ChunkRow.collection_id == collection_id)
        .order_by(ChunkRow.id)
        .execution_options(yield_per=batch)
    )
    yield from s.scalars(stmt)
