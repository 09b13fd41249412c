"""Resolves a ``core.types.Filter`` to the chunk ids it allows, through SQL.

    with Session(engine) as s:
        allowed = allowed_chunk_ids(s, collection_id, Filter(sources=("a.md",)))
    # None: no restriction (empty filter); otherwise a set, possibly empty

Only chunks of ready documents are allowed. Metadata values match exactly, with
booleans matching only booleans (JSON keeps ``true`` and ``1`` apart).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import db
from core.types import Filter, MetadataValue


def _same(a: object, b: MetadataValue) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def allowed_chunk_ids(s: Session, collection_id: str, flt: Filter | None) -> set[str] | None:
    """Chunk ids of ``collection_id`` matching every field of ``flt``; None if it is empty."""
    if flt is None or flt.is_empty():
        return None
    doc_q = select(db.DocumentRow.id, db.DocumentRow.meta).where(
        db.DocumentRow.collection_id == collection_id, db.DocumentRow.status == "ready"
    )
    if flt.document_ids:
        doc_q = doc_q.where(db.DocumentRow.id.in_(flt.document_ids))
    if flt.sources:
        doc_q = doc_q.where(db.DocumentRow.source.in_(flt.sources))
    if flt.media_types:
        doc_q = doc_q.where(db.DocumentRow.media_type.in_(flt.media_types))
    doc_ids: list[str] = []
    missing = object()
    for doc_id, meta in s.execute(doc_q):
        meta = meta or {}
        if all(_same(meta.get(k, missing), v) for k, v in flt.metadata.items()):
            doc_ids.append(doc_id)
    out: set[str] = set()
    for lo in range(0, len(doc_ids), 500):
        out.update(
            s.scalars(
                select(db.ChunkRow.id).where(db.ChunkRow.document_id.in_(doc_ids[lo : lo + 500]))
            )
        )
    return out
