"""SQL schema (the source of truth) and repository functions.

SQLAlchemy 2.0 typed ORM. The caller owns the transaction; nothing here commits:

    engine = make_engine(settings.db_url)
    with Session(engine) as s, s.begin():
        col = get_or_create_collection(s, "docs")
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
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
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from core import types
from core.errors import CollectionNotFound, DocumentNotFound


def new_id() -> str:
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON}


class CollectionRow(Base):
    __tablename__ = "collections"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Per-collection fusion parameters (None: the settings' defaults); set by `rag tune`.
    fusion_mode: Mapped[str | None] = mapped_column(String(20), default=None)
    rrf_k: Mapped[int | None] = mapped_column(Integer, default=None)
    alpha: Mapped[float | None] = mapped_column(Float, default=None)
    tuned_metric: Mapped[dict[str, Any] | None] = mapped_column(default=None)

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


# -- engine --------------------------------------------------------------------------


def make_engine(url: str, echo: bool = False) -> Engine:
    """Create the engine and the tables. SQLite gets WAL and enforced foreign keys."""
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

    Base.metadata.create_all(engine)
    return engine


# -- vectors ---------------------------------------------------------------------------


def vector_to_blob(v: np.ndarray) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def blob_to_vector(b: bytes) -> np.ndarray:
    return np.frombuffer(b, dtype="<f4")


# -- collections -------------------------------------------------------------------------


def get_collection(s: Session, name: str) -> CollectionRow:
    row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
    if row is None:
        raise CollectionNotFound(f"collection '{name}' does not exist")
    return row


def get_or_create_collection(s: Session, name: str) -> CollectionRow:
    row = s.scalar(select(CollectionRow).where(CollectionRow.name == name))
    if row is None:
        row = CollectionRow(id=new_id(), name=name)
        s.add(row)
        s.flush()
    return row


def list_collections(s: Session) -> Sequence[CollectionRow]:
    return s.scalars(select(CollectionRow).order_by(CollectionRow.name)).all()


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
