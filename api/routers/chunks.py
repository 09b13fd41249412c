"""One chunk by id, the caller's tenant's only (another tenant's answers as a missing
one: 404): what an answer's citation points at, for the web page's source panel."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import PlatformDep, TenantDep
from api.schemas import ErrorResponse
from core import repository

router = APIRouter(prefix="/v1", tags=["chunks"])


class ChunkPublic(BaseModel):
    chunk_id: str
    document_id: str
    source: str
    page: int | None
    heading_path: list[str]
    text: str  # an answer sentence's char_start:char_end index this text
    collection: str


@router.get("/chunks/{chunk_id}", responses={404: {"model": ErrorResponse}})
def get_chunk(chunk_id: str, platform: PlatformDep, tenant: TenantDep) -> ChunkPublic:
    """The chunk's text and where it comes from."""
    with repository.read(platform.engine) as s:
        chunk, doc, collection = repository.get_tenant_chunk(s, tenant, chunk_id)
        return ChunkPublic(
            chunk_id=chunk.id,
            document_id=doc.id,
            source=doc.source,
            page=chunk.page,
            heading_path=list(chunk.heading_path or ()),
            text=chunk.text,
            collection=collection.name,
        )
