"""Every SQL statement of the platform, as named query functions over ``core.db``'s schema.

The caller owns the transaction; nothing here commits:

    with repository.write(engine) as s:
        col = repository.get_or_create_collection(s, CollectionKey("acme", "docs"))
    with repository.read(engine) as s:
        chunks = repository.load_chunks(s, ids)

Collections belong to a tenant and their names are unique per tenant: every collection
lookup takes a ``core.types.CollectionKey`` (tenant, name) and refuses a plain string.
Stages outside ``core`` call these functions and never build statements themselves, so
"where is the SQL for X?" has one answer: here (the schema and its migrations are in
``core.db``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.engine import Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import types
from core.db import (
    AnswerRow,
    ApiKeyRow,
    ChunkRow,
    CollectionRow,
    ConversationRow,
    DocumentRow,
    EvalCaseRow,
    EvalRunRow,
    FeedbackRow,
    IngestionJobFileRow,
    IngestionJobRow,
)
from core.db import new_id as new_id  # re-exported: callers make ids with the rows
from core.db import utcnow as utcnow
from core.errors import (
    AnswerNotFound,
    ApiKeyNotFound,
    ChunkNotFound,
    CollectionNotFound,
    ConversationNotFound,
    DocumentNotFound,
    EvalRunNotFound,
    JobNotFound,
)
from core.types import VERSION_MARK, CollectionKey, Filter, MetadataValue, require_key

_IN_BATCH = 500  # ids per IN (...) list

# -- sessions ------------------------------------------------------------------------------


@contextmanager
def read(engine: Engine) -> Iterator[Session]:
    """A session for reads (no transaction is committed)."""
    with Session(engine) as s:
        yield s


@contextmanager
def write(engine: Engine) -> Iterator[Session]:
    """A session inside one transaction: committed on success, rolled back on error."""
    with Session(engine) as s, s.begin():
        yield s


def ping(engine: Engine) -> None:
    """Round-trip to the database (the health check); raises when it cannot be reached."""
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _batches(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for lo in range(0, len(ids), _IN_BATCH):
        yield ids[lo : lo + _IN_BATCH]


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
    """The collection, made when missing. Two requests that both found it missing (the
    first uploads into a new collection, at once) both get the one row: the loser's
    insert fails on the unique (tenant, name) inside a savepoint and it reads the winner's."""
    row = find_collection(s, key)
    if row is not None:
        return row
    try:
        with s.begin_nested():
            row = CollectionRow(id=new_id(), tenant=key.tenant, name=key.name)
            s.add(row)
    except IntegrityError:
        row = find_collection(s, key)
        if row is None:
            raise
    return row


def list_collections(
    s: Session, tenant: str | None = None, *, versions: bool = False
) -> Sequence[CollectionRow]:
    """One tenant's collections by name; ``tenant`` None: every tenant's (for admin
    tools and the index repair, never for a request). ``versions``: also the hidden
    candidate / previous versions of gated collections (the index repair needs them)."""
    stmt = select(CollectionRow).order_by(CollectionRow.tenant, CollectionRow.name)
    if tenant is not None:
        stmt = stmt.where(CollectionRow.tenant == tenant)
    if not versions:
        stmt = stmt.where(CollectionRow.name.not_like(f"%{VERSION_MARK}%"))
    return s.scalars(stmt).all()


def rename_collection(s: Session, collection_id: str, name: str) -> None:
    """Give a collection another name of its tenant (flushed now, so a swap of two names
    in one transaction never holds the same name twice)."""
    s.execute(update(CollectionRow).where(CollectionRow.id == collection_id).values(name=name))
    s.flush()


def set_gate(s: Session, key: CollectionKey, gate: Mapping[str, Any] | None) -> None:
    """Store (None: remove) the collection's gate; ``CollectionNotFound``."""
    get_collection(s, key).gate = dict(gate) if gate is not None else None


def get_policy(s: Session, collection_id: str) -> dict[str, Any] | None:
    """The collection's stored check policy (None: the defaults)."""
    row = s.get(CollectionRow, collection_id)
    return dict(row.policy) if row is not None and row.policy else None


def set_policy(s: Session, key: CollectionKey, policy: Mapping[str, Any] | None) -> None:
    """Store the collection's check policy (None or empty: the defaults);
    ``CollectionNotFound``."""
    get_collection(s, key).policy = dict(policy) if policy else None


def copy_collection(s: Session, source_id: str, key: CollectionKey) -> CollectionRow:
    """A new collection ``key`` holding a copy of ``source_id``'s settings, documents and
    chunks (new ids; texts and stored embeddings copied, so nothing is re-embedded)."""
    src = s.get(CollectionRow, source_id)
    if src is None:
        raise CollectionNotFound(f"collection id '{source_id}' does not exist")
    dst = CollectionRow(
        id=new_id(),
        tenant=key.tenant,
        name=key.name,
        fusion_mode=src.fusion_mode,
        rrf_k=src.rrf_k,
        alpha=src.alpha,
        tuned_metric=src.tuned_metric,
        answer_models=src.answer_models,
        gate=src.gate,
        policy=src.policy,
    )
    s.add(dst)
    s.flush()
    doc_ids: dict[str, str] = {}
    for d in list_documents(s, source_id):
        doc_ids[d.id] = new_id()
        s.add(
            DocumentRow(
                id=doc_ids[d.id],
                collection_id=dst.id,
                source=d.source,
                media_type=d.media_type,
                sha256=d.sha256,
                version=d.version,
                status=d.status,
                error=d.error,
                size_bytes=d.size_bytes,
                n_chunks=d.n_chunks,
                recipe=d.recipe,
                meta=dict(d.meta or {}),
                flags=d.flags,
            )
        )
    s.flush()
    todo = sorted(chunk_ids(s, source_id))
    for lo in range(0, len(todo), _IN_BATCH):  # pages of rows: no open cursor while inserting
        rows = list(chunk_rows(s, source_id, todo[lo : lo + _IN_BATCH]))
        insert_chunks(s, [_copied_chunk(c, doc_ids[c.document_id], dst.id) for c in rows])
    return dst


def _copied_chunk(c: ChunkRow, document_id: str, collection_id: str) -> dict[str, Any]:
    return {
        "id": new_id(),
        "document_id": document_id,
        "collection_id": collection_id,
        "ordinal": c.ordinal,
        "text": c.text,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "page": c.page,
        "heading_path": list(c.heading_path or []),
        "token_count": c.token_count,
        "embedding": c.embedding,
        "flags": c.flags,
    }


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
        flags=dict(row.flags or {}),
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


def get_tenant_chunk(
    s: Session, tenant: str, chunk_id: str
) -> tuple[ChunkRow, DocumentRow, CollectionRow]:
    """The tenant's chunk with its document and collection (through the chunk's
    collection); ``ChunkNotFound`` for an unknown id or another tenant's chunk."""
    found = s.execute(
        select(ChunkRow, DocumentRow, CollectionRow)
        .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
        .join(CollectionRow, ChunkRow.collection_id == CollectionRow.id)
        .where(ChunkRow.id == chunk_id, CollectionRow.tenant == tenant)
    ).first()
    if found is None:
        raise ChunkNotFound(f"chunk '{chunk_id}' does not exist")
    return found[0], found[1], found[2]


def iter_chunk_rows(s: Session, collection_id: str, batch: int = 2000) -> Iterable[ChunkRow]:
    """All chunk rows of a collection (any document status), in id order, streamed."""
    stmt = (
        select(ChunkRow)
        .where(ChunkRow.collection_id == collection_id)
        .order_by(ChunkRow.id)
        .execution_options(yield_per=batch)
    )
    yield from s.scalars(stmt)


def chunk_rows(s: Session, collection_id: str, ids: Iterable[str]) -> Iterator[ChunkRow]:
    """The collection's chunk rows with the given ids (any document status)."""
    for batch in _batches(sorted(ids)):
        yield from s.scalars(
            select(ChunkRow).where(ChunkRow.collection_id == collection_id, ChunkRow.id.in_(batch))
        )


def has_ready_chunk(s: Session, collection_id: str) -> bool:
    """Whether the collection holds at least one chunk of a ready document."""
    return (
        s.scalar(
            select(ChunkRow.id)
            .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
            .where(ChunkRow.collection_id == collection_id, DocumentRow.status == "ready")
            .limit(1)
        )
        is not None
    )


def chunk_sources(s: Session, collection_id: str) -> dict[str, str]:
    """chunk id -> its document's source, for every chunk of a collection."""
    rows = s.execute(
        select(ChunkRow.id, DocumentRow.source)
        .join(DocumentRow, ChunkRow.document_id == DocumentRow.id)
        .where(ChunkRow.collection_id == collection_id)
    ).all()
    return {cid: src for cid, src in rows}


def count_chunks(s: Session, collection_id: str) -> int:
    return int(
        s.scalar(select(func.count(ChunkRow.id)).where(ChunkRow.collection_id == collection_id))
        or 0
    )


def chunk_counts_by_document(s: Session, document_ids: Sequence[str]) -> dict[str, int]:
    """document id -> how many chunk rows it has (absent: none)."""
    counts: dict[str, int] = {}
    for batch in _batches(document_ids):
        rows = s.execute(
            select(ChunkRow.document_id, func.count())
            .where(ChunkRow.document_id.in_(batch))
            .group_by(ChunkRow.document_id)
        )
        counts.update((doc_id, int(n)) for doc_id, n in rows)
    return counts


def stored_chunks(s: Session, document_ids: Sequence[str]) -> Sequence[Row[str, str, bytes | None]]:
    """(id, text, embedding) of the documents' chunks, by document then ordinal."""
    return s.execute(
        select(ChunkRow.id, ChunkRow.text, ChunkRow.embedding)
        .where(ChunkRow.document_id.in_(document_ids))
        .order_by(ChunkRow.document_id, ChunkRow.ordinal)
    ).all()


def flagged_chunks(
    s: Session, collection_id: str, check: str | None = None, limit: int = 100
) -> list[tuple[ChunkRow, DocumentRow]]:
    """The collection's chunks a content check flagged (``check`` None: any), by document
    source and position, at most ``limit``."""
    stmt = (
        select(ChunkRow, DocumentRow)
        .join(DocumentRow, DocumentRow.id == ChunkRow.document_id)
        .where(ChunkRow.collection_id == collection_id, ChunkRow.flags.is_not(None))
        .order_by(DocumentRow.source, ChunkRow.ordinal)
    )
    out: list[tuple[ChunkRow, DocumentRow]] = []
    for chunk, doc in s.execute(stmt).tuples():
        if check is None or check in (chunk.flags or {}):
            out.append((chunk, doc))
            if len(out) >= limit:
                break
    return out


def update_chunks(s: Session, changes: Sequence[Mapping[str, Any]]) -> None:
    """Bulk update by primary key: each mapping holds ``id`` and the columns to set."""
    if changes:
        s.execute(update(ChunkRow), list(changes))


def insert_chunks(s: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Bulk insert of chunk rows given as column dicts (embedding as ``vector_to_blob``)."""
    if rows:
        s.execute(insert(ChunkRow), list(rows))


def drop_document_chunks(s: Session, document_id: str) -> list[str]:
    """Delete a document's chunk rows (the document stays); returns their ids."""
    ids = list(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id == document_id)))
    s.execute(delete(ChunkRow).where(ChunkRow.document_id == document_id))
    return ids


# -- documents, continued -------------------------------------------------------------------


def documents_by_source(
    s: Session, collection_id: str, sources: Sequence[str]
) -> dict[str, DocumentRow]:
    """The collection's documents with the given sources, by source."""
    out: dict[str, DocumentRow] = {}
    for batch in _batches(list(sources)):
        for d in s.scalars(
            select(DocumentRow).where(
                DocumentRow.collection_id == collection_id, DocumentRow.source.in_(batch)
            )
        ):
            out[d.source] = d
    return out


def document_versions(s: Session, collection_id: str, sources: Sequence[str]) -> Sequence[Row[Any]]:
    """(id, source, sha256, status, meta, recipe) of the collection's documents with the
    given sources: what the pipeline compares a new upload against."""
    return s.execute(
        select(
            DocumentRow.id,
            DocumentRow.source,
            DocumentRow.sha256,
            DocumentRow.status,
            DocumentRow.meta,
            DocumentRow.recipe,
        ).where(DocumentRow.collection_id == collection_id, DocumentRow.source.in_(sources))
    ).all()


def document_sources(s: Session, collection_id: str) -> Sequence[Row[str, str, str | None]]:
    """(source, status, recipe) of every document of a collection."""
    return s.execute(
        select(DocumentRow.source, DocumentRow.status, DocumentRow.recipe).where(
            DocumentRow.collection_id == collection_id
        )
    ).all()


def add_document(s: Session, **columns: Any) -> DocumentRow:
    row = DocumentRow(**columns)
    s.add(row)
    return row


def update_documents(s: Session, changes: Sequence[Mapping[str, Any]]) -> None:
    """Bulk update by primary key: each mapping holds ``id`` and the columns to set."""
    if changes:
        s.execute(update(DocumentRow), list(changes))


def documents_indexing(s: Session) -> list[tuple[str, str]]:
    """(document id, collection id) of every document a crash left "indexing"."""
    rows = s.execute(
        select(DocumentRow.id, DocumentRow.collection_id)
        .where(DocumentRow.status == "indexing")
        .order_by(DocumentRow.collection_id, DocumentRow.id)
    ).all()
    return [(doc_id, cid) for doc_id, cid in rows]


def delete_collection_rows(s: Session, collection_id: str) -> None:
    """Delete a collection with its documents, chunks, ingestion jobs, conversations,
    answers and their feedback."""
    _delete_answers(s, collection_id)
    s.execute(delete(ChunkRow).where(ChunkRow.collection_id == collection_id))
    s.execute(delete(DocumentRow).where(DocumentRow.collection_id == collection_id))
    jobs = select(IngestionJobRow.id).where(IngestionJobRow.collection_id == collection_id)
    s.execute(delete(IngestionJobFileRow).where(IngestionJobFileRow.job_id.in_(jobs)))
    s.execute(delete(IngestionJobRow).where(IngestionJobRow.collection_id == collection_id))
    s.execute(delete(CollectionRow).where(CollectionRow.id == collection_id))


def collection_unused(s: Session, collection_id: str) -> bool:
    """Whether a collection holds no document and no pending or running job."""
    docs = s.scalar(
        select(func.count())
        .select_from(DocumentRow)
        .where(DocumentRow.collection_id == collection_id)
    )
    jobs = s.scalar(
        select(func.count())
        .select_from(IngestionJobRow)
        .where(
            IngestionJobRow.collection_id == collection_id,
            IngestionJobRow.status.in_(JOB_ACTIVE),
        )
    )
    return not docs and not jobs


def collection_counts(s: Session, tenant: str | None) -> tuple[dict[str, int], dict[str, int]]:
    """(documents, chunks) per collection id, of one tenant (None: every tenant's)."""

    def counts(column: Any) -> dict[str, int]:
        stmt = select(column, func.count()).group_by(column)
        if tenant is not None:
            stmt = stmt.join(CollectionRow, CollectionRow.id == column).where(
                CollectionRow.tenant == tenant
            )
        return {cid: int(n) for cid, n in s.execute(stmt).all()}

    return counts(DocumentRow.collection_id), counts(ChunkRow.collection_id)


# -- filters --------------------------------------------------------------------------------


def _same(a: object, b: MetadataValue) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def allowed_chunk_ids(s: Session, collection_id: str, flt: Filter | None) -> set[str] | None:
    """Chunk ids of ``collection_id`` matching every field of ``flt``; None if it is empty.

    Only chunks of ready documents are allowed. Metadata values match exactly, with
    booleans matching only booleans (JSON keeps ``true`` and ``1`` apart).
    """
    if flt is None or flt.is_empty():
        return None
    doc_q = select(DocumentRow.id, DocumentRow.meta).where(
        DocumentRow.collection_id == collection_id, DocumentRow.status == "ready"
    )
    if flt.document_ids:
        doc_q = doc_q.where(DocumentRow.id.in_(flt.document_ids))
    if flt.sources:
        doc_q = doc_q.where(DocumentRow.source.in_(flt.sources))
    if flt.media_types:
        doc_q = doc_q.where(DocumentRow.media_type.in_(flt.media_types))
    doc_ids: list[str] = []
    missing = object()
    for doc_id, meta in s.execute(doc_q):
        meta = meta or {}
        if all(_same(meta.get(k, missing), v) for k, v in flt.metadata.items()):
            doc_ids.append(doc_id)
    out: set[str] = set()
    for batch in _batches(doc_ids):
        out.update(s.scalars(select(ChunkRow.id).where(ChunkRow.document_id.in_(batch))))
    return out


# -- ingestion jobs ---------------------------------------------------------------------------


def start_job(s: Session, collection_id: str) -> str:
    """Record a new ingestion job (status "running"); returns its id."""
    row = IngestionJobRow(id=new_id(), collection_id=collection_id)
    s.add(row)
    s.flush()
    return row.id


def finish_job(s: Session, job_id: str, *, failed: bool, **counts: Any) -> None:
    """Close a job: status done/failed, finished now, with its counts and summary."""
    s.execute(
        update(IngestionJobRow)
        .where(IngestionJobRow.id == job_id)
        .values(status="failed" if failed else "done", finished_at=utcnow(), **counts)
    )


# Jobs run by a worker (ingest.jobs): their files, state, owner and cancel requests.

JOB_ACTIVE = ("pending", "running")


def add_job(
    s: Session,
    collection_id: str,
    *,
    kind: str,
    options: Mapping[str, Any],
    files: Sequence[Mapping[str, Any]],
    job_id: str | None = None,
    retry_of: str | None = None,
) -> str:
    """Record a pending job with its files (each: source, path, and optionally status,
    error, error_code, size_bytes); returns its id."""
    row = IngestionJobRow(
        id=job_id or new_id(),
        collection_id=collection_id,
        status="pending",
        kind=kind,
        options=dict(options),
        n_inputs=len(files),
        retry_of=retry_of,
    )
    s.add(row)
    s.flush()
    if files:
        s.execute(
            insert(IngestionJobFileRow),
            [
                {"id": new_id(), "job_id": row.id, "ordinal": i, "status": "pending", **f}
                for i, f in enumerate(files)
            ],
        )
    return row.id


# rows that belong to a collection, looked up for a tenant
_Owned = TypeVar("_Owned", IngestionJobRow, ConversationRow, AnswerRow)


def _owned_by(
    s: Session, row_type: type[_Owned], row_id: str, tenant: str
) -> tuple[_Owned, CollectionRow] | None:
    """The row with ``row_id`` and its collection, only when that collection is the
    tenant's (another tenant's row is as missing as an unknown one)."""
    found = s.execute(
        select(row_type, CollectionRow)
        .join(CollectionRow, CollectionRow.id == row_type.collection_id)
        .where(row_type.id == row_id, CollectionRow.tenant == tenant)
    ).first()
    return None if found is None else (found[0], found[1])


def get_job(s: Session, tenant: str, job_id: str) -> tuple[IngestionJobRow, CollectionRow]:
    """The tenant's job and its collection; ``JobNotFound`` for an unknown id or another
    tenant's job (the same message either way)."""
    found = _owned_by(s, IngestionJobRow, job_id, tenant)
    if found is None:
        raise JobNotFound(f"ingestion job '{job_id}' does not exist (see `rag jobs list`)")
    return found


def job_by_id(s: Session, job_id: str) -> IngestionJobRow | None:
    """A job by its id, any tenant's (the worker, which was handed the id)."""
    return s.get(IngestionJobRow, job_id)


def list_jobs(
    s: Session,
    tenant: str,
    *,
    collection: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> list[tuple[IngestionJobRow, str]]:
    """The tenant's jobs (with their collection's name), newest first; hidden collection
    versions (a gate's candidates) are left out."""
    stmt = (
        select(IngestionJobRow, CollectionRow.name)
        .join(CollectionRow, CollectionRow.id == IngestionJobRow.collection_id)
        .where(CollectionRow.tenant == tenant, ~CollectionRow.name.contains(VERSION_MARK))
        .order_by(IngestionJobRow.started_at.desc(), IngestionJobRow.id.desc())
        .limit(limit)
    )
    if collection is not None:
        stmt = stmt.where(CollectionRow.name == collection)
    if status is not None:
        stmt = stmt.where(IngestionJobRow.status == status)
    return [(job, name) for job, name in s.execute(stmt).all()]


def active_jobs(s: Session, *, sync: bool = False) -> Sequence[IngestionJobRow]:
    """Worker jobs pending or running (any tenant's), oldest first; ``sync``: the
    synchronous pipeline calls' running rows too (the restart repair closes those)."""
    stmt = select(IngestionJobRow).where(IngestionJobRow.status.in_(JOB_ACTIVE))
    if not sync:
        stmt = stmt.where(IngestionJobRow.kind != "sync")
    return s.scalars(stmt.order_by(IngestionJobRow.started_at, IngestionJobRow.id)).all()


def ended_empty_jobs(
    s: Session, kind: str, before: datetime, *, limit: int = 100
) -> Sequence[IngestionJobRow]:
    """The latest ``limit`` jobs of ``kind`` that ended done or failed before ``before``
    with nothing ingested, unchanged or replaced, newest first."""
    return s.scalars(
        select(IngestionJobRow)
        .where(
            IngestionJobRow.kind == kind,
            IngestionJobRow.status.in_(("done", "failed")),
            IngestionJobRow.finished_at < before,
            IngestionJobRow.n_ingested == 0,
            IngestionJobRow.n_unchanged == 0,
            IngestionJobRow.n_replaced == 0,
        )
        .order_by(IngestionJobRow.finished_at.desc())
        .limit(limit)
    ).all()


def claim_job(s: Session, job_id: str, owner: str, *, previous_owner: str | None) -> bool:
    """Take a pending job, or a running one whose worker (``previous_owner``) is gone, for
    ``owner``: a compare-and-set, so two workers never both run it."""
    stmt = (
        update(IngestionJobRow)
        .where(IngestionJobRow.id == job_id, IngestionJobRow.status.in_(JOB_ACTIVE))
        .values(status="running", owner=owner, heartbeat_at=utcnow())
    )
    if previous_owner is None:
        stmt = stmt.where(IngestionJobRow.owner.is_(None))
    else:
        stmt = stmt.where(IngestionJobRow.owner == previous_owner)
    return s.execute(stmt).rowcount == 1  # type: ignore[attr-defined, no-any-return]


def update_job(s: Session, job_id: str, **columns: Any) -> None:
    s.execute(update(IngestionJobRow).where(IngestionJobRow.id == job_id).values(**columns))


def job_cancel_requested(s: Session, job_id: str) -> bool:
    stmt = select(IngestionJobRow.cancel_requested).where(IngestionJobRow.id == job_id)
    return bool(s.scalar(stmt))


def job_files(
    s: Session, job_id: str, statuses: Sequence[str] | None = None
) -> Sequence[IngestionJobFileRow]:
    """A job's files in order (only those in ``statuses`` when given)."""
    stmt = select(IngestionJobFileRow).where(IngestionJobFileRow.job_id == job_id)
    if statuses is not None:
        stmt = stmt.where(IngestionJobFileRow.status.in_(statuses))
    return s.scalars(stmt.order_by(IngestionJobFileRow.ordinal)).all()


def update_job_files(s: Session, changes: Sequence[Mapping[str, Any]]) -> None:
    """Bulk update by primary key: each mapping holds ``id`` and the columns to set."""
    if changes:
        s.execute(update(IngestionJobFileRow), list(changes))


def set_job_files_status(s: Session, job_id: str, old: Sequence[str], new: str) -> int:
    """Every file of the job in one of the ``old`` statuses gets ``new``; returns how many."""
    result = s.execute(
        update(IngestionJobFileRow)
        .where(IngestionJobFileRow.job_id == job_id, IngestionJobFileRow.status.in_(old))
        .values(status=new)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def job_file_totals(s: Session, job_id: str) -> dict[str, dict[str, int]]:
    """A job's files counted by status and by outcome, with the chunks written."""
    by_status: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    chunks = 0
    rows = s.execute(
        select(
            IngestionJobFileRow.status,
            IngestionJobFileRow.outcome,
            func.count(),
            func.coalesce(func.sum(IngestionJobFileRow.n_chunks), 0),
        )
        .where(IngestionJobFileRow.job_id == job_id)
        .group_by(IngestionJobFileRow.status, IngestionJobFileRow.outcome)
    ).all()
    for status, outcome, n, c in rows:
        by_status[status] = by_status.get(status, 0) + int(n)
        if outcome is not None:
            by_outcome[outcome] = by_outcome.get(outcome, 0) + int(n)
        chunks += int(c)
    return {"status": by_status, "outcome": by_outcome, "chunks": {"chunks": chunks}}


def collection_by_id(s: Session, collection_id: str) -> CollectionRow | None:
    """A collection by its id (internal callers that already resolved it), or None."""
    return s.get(CollectionRow, collection_id)


def set_fusion(
    s: Session,
    key: CollectionKey,
    mode: str,
    rrf_k: int | None,
    alpha: float | None,
    evidence: Mapping[str, Any],
) -> None:
    """Store tuned fusion parameters (and the figure they reached) on a collection;
    ``CollectionNotFound``."""
    row = get_collection(s, key)
    row.fusion_mode, row.rrf_k, row.alpha = mode, rrf_k, alpha
    row.tuned_metric = dict(evidence)


def chunk_texts(s: Session, collection_id: str) -> list[str]:
    """Every chunk text of a collection, by document then ordinal."""
    return list(
        s.scalars(
            select(ChunkRow.text)
            .where(ChunkRow.collection_id == collection_id)
            .order_by(ChunkRow.document_id, ChunkRow.ordinal)
        )
    )


def collection_state(s: Session, collection_id: str) -> dict[str, Any]:
    """What a collection's answers depend on in SQL: counts of its documents and ready
    chunks, a digest of its ready chunk ids (any re-index changes it: chunk ids are new
    for every version) and the distinct chunking recipes of its documents."""
    ids = sorted(chunk_ids(s, collection_id, ready_only=True))
    recipes = s.scalars(
        select(DocumentRow.recipe).where(DocumentRow.collection_id == collection_id).distinct()
    )
    n_docs = s.scalar(
        select(func.count(DocumentRow.id)).where(DocumentRow.collection_id == collection_id)
    )
    return {
        "documents": int(n_docs or 0),
        "chunks": len(ids),
        "chunk_digest": hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16],
        "recipes": sorted(r or "unknown" for r in recipes),
    }


# -- eval runs --------------------------------------------------------------------------------


def add_eval_run(s: Session, **columns: Any) -> EvalRunRow:
    row = EvalRunRow(**columns)
    s.add(row)
    s.flush()
    return row


def update_eval_run(s: Session, run_id: str, **columns: Any) -> None:
    s.execute(update(EvalRunRow).where(EvalRunRow.id == run_id).values(**columns))


def add_eval_case(
    s: Session,
    run_id: str,
    case_id: str,
    ordinal: int,
    passed: bool,
    score: float,
    result: Mapping[str, Any],
) -> None:
    """Record (or re-record) one case of a run."""
    row = s.get(EvalCaseRow, (run_id, case_id))
    if row is None:
        s.add(
            EvalCaseRow(
                run_id=run_id,
                case_id=case_id,
                ordinal=ordinal,
                passed=passed,
                score=score,
                result=dict(result),
            )
        )
    else:
        row.ordinal, row.passed, row.score, row.result = ordinal, passed, score, dict(result)


def get_eval_run(s: Session, tenant: str, run_id: str) -> EvalRunRow:
    """The tenant's run; ``EvalRunNotFound`` for an unknown id or another tenant's run
    (the same message either way)."""
    row = s.get(EvalRunRow, run_id)
    if row is None or row.tenant != tenant:
        raise EvalRunNotFound(f"eval run '{run_id}' does not exist (see `rag eval list`)")
    return row


def list_eval_runs(s: Session, tenant: str, limit: int = 50) -> Sequence[EvalRunRow]:
    """The tenant's runs, newest first."""
    return s.scalars(
        select(EvalRunRow)
        .where(EvalRunRow.tenant == tenant)
        .order_by(EvalRunRow.started_at.desc(), EvalRunRow.id.desc())
        .limit(limit)
    ).all()


def eval_cases(s: Session, run_id: str) -> Sequence[EvalCaseRow]:
    return s.scalars(
        select(EvalCaseRow).where(EvalCaseRow.run_id == run_id).order_by(EvalCaseRow.ordinal)
    ).all()


def unfinished_eval_runs(s: Session) -> Sequence[EvalRunRow]:
    """Runs left "running" (by a crash or a stop): the start-up marks them failed."""
    return s.scalars(select(EvalRunRow).where(EvalRunRow.status == "running")).all()


# -- answers, conversations and feedback ---------------------------------------------------


def add_conversation(s: Session, collection_id: str, title: str) -> ConversationRow:
    row = ConversationRow(id=new_id(), collection_id=collection_id, title=title[:200])
    s.add(row)
    s.flush()
    return row


def get_conversation(
    s: Session, tenant: str, conversation_id: str
) -> tuple[ConversationRow, CollectionRow]:
    """The tenant's conversation and its collection; ``ConversationNotFound`` for an
    unknown id or another tenant's conversation (the same message either way)."""
    found = _owned_by(s, ConversationRow, conversation_id, tenant)
    if found is None:
        raise ConversationNotFound(f"conversation '{conversation_id}' does not exist")
    return found


def list_conversations(
    s: Session, tenant: str, *, collection: str | None = None, limit: int = 100
) -> list[tuple[ConversationRow, str, int]]:
    """The tenant's conversations with their collection's name and number of turns,
    most recently updated first; hidden collection versions are left out."""
    turns = (
        select(func.count())
        .select_from(AnswerRow)
        .where(AnswerRow.conversation_id == ConversationRow.id)
        .scalar_subquery()
    )
    stmt = (
        select(ConversationRow, CollectionRow.name, turns)
        .join(CollectionRow, CollectionRow.id == ConversationRow.collection_id)
        .where(CollectionRow.tenant == tenant, ~CollectionRow.name.contains(VERSION_MARK))
        .order_by(ConversationRow.updated_at.desc(), ConversationRow.id.desc())
        .limit(limit)
    )
    if collection is not None:
        stmt = stmt.where(CollectionRow.name == collection)
    return [(row, name, int(n)) for row, name, n in s.execute(stmt).all()]


def conversation_turns(s: Session, conversation_id: str) -> Sequence[AnswerRow]:
    """A conversation's answers, oldest first."""
    return s.scalars(
        select(AnswerRow)
        .where(AnswerRow.conversation_id == conversation_id)
        .order_by(AnswerRow.created_at, AnswerRow.id)
    ).all()


def delete_conversation(s: Session, conversation_id: str) -> None:
    """A conversation with its answers and their feedback."""
    answers = select(AnswerRow.id).where(AnswerRow.conversation_id == conversation_id)
    s.execute(delete(FeedbackRow).where(FeedbackRow.answer_id.in_(answers)))
    s.execute(delete(AnswerRow).where(AnswerRow.conversation_id == conversation_id))
    s.execute(delete(ConversationRow).where(ConversationRow.id == conversation_id))


def add_answer(s: Session, **columns: Any) -> AnswerRow:
    """Store an answer (``AnswerRow``'s columns); a conversation's ``updated_at`` moves."""
    row = AnswerRow(id=new_id(), **columns)
    s.add(row)
    if row.conversation_id is not None:
        s.execute(
            update(ConversationRow)
            .where(ConversationRow.id == row.conversation_id)
            .values(updated_at=utcnow())
        )
    s.flush()
    return row


def get_answer(s: Session, tenant: str, answer_id: str) -> tuple[AnswerRow, CollectionRow]:
    """The tenant's answer and its collection; ``AnswerNotFound`` for an unknown id or
    another tenant's answer."""
    found = _owned_by(s, AnswerRow, answer_id, tenant)
    if found is None:
        raise AnswerNotFound(f"answer '{answer_id}' does not exist")
    return found


def set_feedback(s: Session, answer_id: str, **columns: Any) -> FeedbackRow:
    """The feedback on an answer (rating, correct_source, correct_answer, comment); a
    second call replaces the first."""
    s.execute(delete(FeedbackRow).where(FeedbackRow.answer_id == answer_id))
    row = FeedbackRow(id=new_id(), answer_id=answer_id, **columns)
    s.add(row)
    s.flush()
    return row


def answers_with_feedback(s: Session, collection_id: str) -> list[tuple[AnswerRow, FeedbackRow]]:
    """A collection's answers that got feedback, with it, oldest first."""
    rows = s.execute(
        select(AnswerRow, FeedbackRow)
        .join(FeedbackRow, FeedbackRow.answer_id == AnswerRow.id)
        .where(AnswerRow.collection_id == collection_id)
        .order_by(AnswerRow.created_at, AnswerRow.id)
    ).all()
    return [(a, f) for a, f in rows]


def move_answers(s: Session, from_collection: str, to_collection: str) -> None:
    """Hand a collection's conversations and answers to another (a gate's promoted
    version replaces the live one)."""
    s.execute(
        update(ConversationRow)
        .where(ConversationRow.collection_id == from_collection)
        .values(collection_id=to_collection)
    )
    s.execute(
        update(AnswerRow)
        .where(AnswerRow.collection_id == from_collection)
        .values(collection_id=to_collection)
    )


def _delete_answers(s: Session, collection_id: str) -> None:
    answers = select(AnswerRow.id).where(AnswerRow.collection_id == collection_id)
    s.execute(delete(FeedbackRow).where(FeedbackRow.answer_id.in_(answers)))
    s.execute(delete(AnswerRow).where(AnswerRow.collection_id == collection_id))
    s.execute(delete(ConversationRow).where(ConversationRow.collection_id == collection_id))
