"""Content checks of a collection: its policy, the chunks its checks flagged, a rescan.

GET  /v1/collections/{name}/policy       every rule in force (and what differs)
PUT  /v1/collections/{name}/policy       {"policy": {...}}, {"set": {"pii.answers": "redact"}}
GET  /v1/collections/{name}/flags        flagged chunks (?check=injection&limit=100)
POST /v1/collections/{name}/rescan       the document checks again, current policy
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from api import service
from api.deps import CollectionDep, PlatformDep
from api.schemas import ErrorResponse, FlaggedChunksPublic, PolicyPublic

router = APIRouter(prefix="/v1", tags=["content checks"])
_404: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


class PolicyIn(BaseModel):
    """``policy``: a whole policy (unnamed settings: the defaults); ``set``: single
    settings as ``CHECK.FIELD``; ``reset``: back to the defaults (then ``set``)."""

    policy: dict[str, Any] | None = None
    set: dict[str, Any] = Field(default_factory=dict)
    reset: bool = False


@router.get("/collections/{name}/policy", responses=_404)
def get_policy(key: CollectionDep, platform: PlatformDep) -> PolicyPublic:
    return service.get_policy(platform, key)


@router.put("/collections/{name}/policy", responses={422: {"model": ErrorResponse}})
def put_policy(key: CollectionDep, body: PolicyIn, platform: PlatformDep) -> PolicyPublic:
    """Creates the collection when it does not exist (a policy applies from the first
    document); 422 naming every bad setting, nothing changed then."""
    return service.set_policy(
        platform, key, document=body.policy, updates=body.set, reset=body.reset
    )


@router.get("/collections/{name}/flags", responses=_404)
def list_flags(
    key: CollectionDep,
    platform: PlatformDep,
    check: Annotated[str | None, Query(description="only this check's findings")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FlaggedChunksPublic:
    return service.flagged_chunks(platform, key, check, limit)


@router.post("/collections/{name}/rescan", responses=_404)
async def rescan(key: CollectionDep, platform: PlatformDep) -> dict[str, Any]:
    """Flags recomputed; chunks the policy now redacts rewritten and re-embedded;
    documents the policy would refuse listed (not deleted)."""
    result: dict[str, Any] = await run_in_threadpool(platform.ingest.rescan, key)
    return result
