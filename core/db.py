"""SQL schema (the source of truth) and the engine; the schema changes by Alembic
revisions in ``core.migrations``, run by ``make_engine`` at start-up.

SQLAlchemy 2.0 typed ORM. Every query is a named function of ``core.repository``:

    engine = make_engine(settings.db_url)       # upgraded to the newest revision
    with repository.write(engine) as s:
        col = repository.get_or_create_collection(s, CollectionKey("acme", "docs"))
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

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
    event,
    false,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core import migrations
from core.types import DEFAULT_TENANT

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
    # A gate: changes go live only when this suite passes on the candidate version:
    # {"suite_name": str, "suite": suite mapping, "min_pass_rate": float}; None: no gate.
    gate: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # The content-check policy (generation.checks.policy), only what differs from the
    # defaults; NULL: the defaults.
    policy: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)

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
    # Chunks each check flagged, by check ({"injection": 2, "pii": 5}); NULL: none
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
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
    # What the document-stage checks found (generation.checks.screen), by check; NULL: nothing
    flags: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    # float32 little-endian vector; lets the dense index be rebuilt without re-embedding.
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)

    document: Mapped[DocumentRow] = relationship(back_populates="chunks")


class IngestionJobRow(Base):
    """An ingestion: a synchronous pipeline call ("sync"), or a job run by a worker over
    its files ("upload": spooled uploads; "paths": files on disk), with one
    ``IngestionJobFileRow`` per file. The tenant is the collection's."""

    __tablename__ = "ingestion_jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(String(32), index=True)
    # pending|running|done|failed|cancelled ("done" may hold failed files: see n_failed)
    status: Mapped[str] = mapped_column(String(20), default="running")
    kind: Mapped[str] = mapped_column(String(20), default="sync", server_default="sync")
    # how to ingest: {"metadata": {...}, "source_prefix": str, "jsonl": {...}}
    options: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    # the worker running it ("host:pid:token") and when it last said so: a restart
    # resumes jobs whose worker is gone
    owner: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    retry_of: Mapped[str | None] = mapped_column(String(32), default=None)
    retried_by: Mapped[str | None] = mapped_column(String(32), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)  # created (queued) at
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    n_inputs: Mapped[int] = mapped_column(Integer, default=0)
    n_ingested: Mapped[int] = mapped_column(Integer, default=0)
    n_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    n_replaced: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)


class IngestionJobFileRow(Base):
    """One file of a job: where its bytes are, what became of it and how long it took."""

    __tablename__ = "ingestion_job_files"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    job_id: Mapped[str] = mapped_column(
        ForeignKey("ingestion_jobs.id", ondelete="CASCADE"), index=True
    )
    ordinal: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(1000))  # the document source (upload: its name)
    # "paths": the file on disk; "upload": the spooled copy, relative to the spool folder
    path: Mapped[str] = mapped_column(String(2000))
    # pending|running|done|failed|cancelled|retried (handed to the job in retried_by)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    outcome: Mapped[str | None] = mapped_column(String(20), default=None)  # ingested|…|mixed
    document_id: Mapped[str | None] = mapped_column(String(32), default=None)
    n_documents: Mapped[int] = mapped_column(Integer, default=0)
    n_chunks: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    # a file of several documents (JSONL): each document's outcome (capped)
    outcomes: Mapped[list[dict[str, Any]] | None] = mapped_column(
        JSON(none_as_null=True), default=None
    )
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    seconds: Mapped[float | None] = mapped_column(Float, default=None)


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


class EvalRunRow(Base):
    """A batch evaluation run: the suite it ran (its content, for replays), where, under
    which configuration fingerprint, and its summary. Tenant-scoped like collections."""

    __tablename__ = "eval_runs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    suite_name: Mapped[str] = mapped_column(String(1000))
    suite_sha256: Mapped[str] = mapped_column(String(64))
    suite: Mapped[dict[str, Any]] = mapped_column(default=dict)
    target: Mapped[str] = mapped_column(String(1000))  # "in-process" or the server's URL
    status: Mapped[str] = mapped_column(String(20), default="running")  # running|done|failed
    platform_version: Mapped[str] = mapped_column(String(50), default="")
    fingerprint: Mapped[dict[str, Any]] = mapped_column(default=dict)
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    n_cases: Mapped[int] = mapped_column(Integer, default=0)
    n_done: Mapped[int] = mapped_column(Integer, default=0)
    n_passed: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # the collection whose gate ran this suite on a candidate version (None: a plain run)
    gate_collection_id: Mapped[str | None] = mapped_column(String(32), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class EvalCaseRow(Base):
    """One case of a run: the answer, citations, retrieved ids and scores, timings and
    every assertion's verdict (``evals.runner.CaseResult`` as JSON)."""

    __tablename__ = "eval_cases"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    passed: Mapped[bool] = mapped_column(default=False)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ConversationRow(Base):
    """A chat over one collection (its tenant is the collection's); its turns are the
    ``AnswerRow``s that name it, oldest first."""

    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class AnswerRow(Base):
    """Every answer given (/v1/query, /v1/chat and their streams): the question as asked,
    the standalone question retrieval used, and what was answered from which chunks. Chunk
    and document ids are plain JSON: deleting a document later leaves them, unresolved."""

    __tablename__ = "answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    collection_id: Mapped[str] = mapped_column(String(32), index=True)
    conversation_id: Mapped[str | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True, default=None
    )
    question: Mapped[str] = mapped_column(Text)
    rewritten_question: Mapped[str | None] = mapped_column(Text, default=None)
    rewrite: Mapped[str] = mapped_column(String(20), default="none")  # none|rules|model
    text: Mapped[str] = mapped_column(Text)
    abstained: Mapped[bool] = mapped_column(default=False)
    # [{"n", "chunk_id", "document_id", "source"}]
    citations: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    retrieved: Mapped[list[str]] = mapped_column(default=list)  # chunk ids, best first
    model: Mapped[str] = mapped_column(String(1000), default="")  # the model file's sha256
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeedbackRow(Base):
    """A user's judgement of one answer: "up" or "down", optionally the document that
    should have been cited and the correct answer (one per answer; the last one wins)."""

    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    answer_id: Mapped[str] = mapped_column(
        ForeignKey("answers.id", ondelete="CASCADE"), unique=True, index=True
    )
    rating: Mapped[str] = mapped_column(String(10))  # up|down
    correct_source: Mapped[str | None] = mapped_column(String(1000), default=None)
    correct_answer: Mapped[str | None] = mapped_column(Text, default=None)
    comment: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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
