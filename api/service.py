"""Read-side helpers shared by the REST routers and the CLI (no business logic)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.platform import Platform
from api.schemas import CollectionPublic, CollectionsPublic, DocumentPublic, DocumentsPublic
from core import db


def list_collections(platform: Platform) -> CollectionsPublic:
    with Session(platform.engine) as s:
        doc_counts = dict(
            s.execute(
                select(db.DocumentRow.collection_id, func.count()).group_by(
                    db.DocumentRow.collection_id
                )
            ).all()
        )
        chunk_counts = dict(
            s.execute(
                select(db.ChunkRow.collection_id, func.count()).group_by(
                    db.ChunkRow.collection_id
                )
            ).all()
        )
        data = [
            CollectionPublic.of(c, doc_counts.get(c.id, 0), chunk_counts.get(c.id, 0))
            for c in db.list_collections(s)
        ]
    return CollectionsPublic(data=data, count=len(data))


def list_documents(platform: Platform, collection: str) -> DocumentsPublic:
    with Session(platform.engine) as s:
        col = db.get_collection(s, collection)
        data = [DocumentPublic.of(d, col.name) for d in db.list_documents(s, col.id)]
    return DocumentsPublic(data=data, count=len(data))


def get_document(platform: Platform, collection: str, document_id: str) -> DocumentPublic:
    with Session(platform.engine) as s:
        col = db.get_collection(s, collection)
        return DocumentPublic.of(db.get_document(s, col.id, document_id), col.name)
