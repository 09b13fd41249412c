"""Read-side helpers shared by the REST routers and the CLI (no business logic).

A collection argument is a ``core.types.CollectionKey`` (tenant, name).
"""

from __future__ import annotations

from api.platform import Platform
from api.schemas import CollectionPublic, CollectionsPublic, DocumentPublic, DocumentsPublic
from core import repository
from core.types import CollectionKey


def list_collections(platform: Platform, tenant: str | None) -> CollectionsPublic:
    """The tenant's collections with their counts; ``tenant`` None: every tenant's (CLI)."""
    with repository.read(platform.engine) as s:
        doc_counts, chunk_counts = repository.collection_counts(s, tenant)
        data = [
            CollectionPublic.of(c, doc_counts.get(c.id, 0), chunk_counts.get(c.id, 0))
            for c in repository.list_collections(s, tenant)
        ]
    return CollectionsPublic(data=data, count=len(data))


def list_documents(platform: Platform, collection: CollectionKey) -> DocumentsPublic:
    with repository.read(platform.engine) as s:
        col = repository.get_collection(s, collection)
        data = [DocumentPublic.of(d, col.name) for d in repository.list_documents(s, col.id)]
    return DocumentsPublic(data=data, count=len(data))


def get_document(platform: Platform, collection: CollectionKey, document_id: str) -> DocumentPublic:
    with repository.read(platform.engine) as s:
        col = repository.get_collection(s, collection)
        return DocumentPublic.of(repository.get_document(s, col.id, document_id), col.name)
