"""Read-side helpers shared by the REST routers and the CLI (no business logic).

A collection argument is a ``core.types.CollectionKey`` (tenant, name).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.platform import Platform
from api.schemas import CollectionPublic, CollectionsPublic, DocumentPublic, DocumentsPublic
from core import db
from core.types import CollectionKey


def list_collections(platform: Platform, tenant: str | None) -> CollectionsPublic:
    """The tenant's collections with their counts; ``tenant`` None: every tenant's (CLI)."""

    def counts(s: Session, column: Any) -> dict[str, int]:
        stmt = select(column, func.count()).group_by(column)
        if tenant is not None:
            stmt = stmt.join(db.CollectionRow, db.CollectionRow.id == column).where(
                db.CollectionRow.tenant == tenant
            )
        return {cid: int(n) for cid, n in s.execute(stmt).all()}

    with Session(platform.engine) as s:
        doc_counts = counts(s, db.DocumentRow.collection_id)
        chunk_counts = counts(s, db.ChunkRow.collection_id)
        data = [
            CollectionPublic.of(c, doc_counts.get(c.id, 0), chunk_counts.get(c.id, 0))
            for c in db.list_collections(s, tenant)
        ]
    return CollectionsPublic(data=data, count=len(data))


def list_documents(platform: Platform, collection: CollectionKey) -> DocumentsPublic:
    with Session(platform.engine) as s:
        col = db.get_collection(s, collection)
        data = [DocumentPublic.of(d, col.name) for d in db.list_documents(s, col.id)]
    return DocumentsPublic(data=data, count=len(data))


def get_document(
    platform: Platform, collection: CollectionKey, document_id: str
) -> DocumentPublic:
    with Session(platform.engine) as s:
        col = db.get_collection(s, collection)
        return DocumentPublic.of(db.get_document(s, col.id, document_id), col.name)
