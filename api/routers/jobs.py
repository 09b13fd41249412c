"""Ingestion jobs: list, show, follow (server-sent events), cancel, retry; always the
caller's tenant's (another tenant's job answers exactly as a missing one: 404)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from api import service
from api.deps import PlatformDep, TenantDep
from api.schemas import ErrorResponse, JobPublic, JobsPublic
from core.errors import JobNotFound
from ingest.jobs import TERMINAL

router = APIRouter(prefix="/v1", tags=["jobs"])
_404: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse}}


@router.get("/jobs")
def list_jobs(
    platform: PlatformDep,
    tenant: TenantDep,
    collection: Annotated[str | None, Query(description="only this collection's")] = None,
    status: Annotated[
        str | None, Query(description="pending|running|done|failed|cancelled")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> JobsPublic:
    return service.list_jobs(platform, tenant, collection=collection, status=status, limit=limit)


@router.get("/jobs/{job_id}", responses=_404)
def get_job(job_id: str, platform: PlatformDep, tenant: TenantDep) -> JobPublic:
    """The job with each file's status, outcome, error and timings."""
    return service.get_job(platform, tenant, job_id)


@router.post("/jobs/{job_id}/cancel", responses=_404)
def cancel_job(job_id: str, platform: PlatformDep, tenant: TenantDep) -> JobPublic:
    """Stop a job between files: a pending job ends at once; a running one finishes the
    files it has read, its other files become "cancelled". An ended job is unchanged."""
    platform.jobs.cancel(tenant, job_id)
    return service.get_job(platform, tenant, job_id, files=False)


@router.post(
    "/jobs/{job_id}/retry",
    status_code=202,
    responses={**_404, 409: {"description": "the job still runs, or has nothing to retry"}},
)
def retry_job(job_id: str, platform: PlatformDep, tenant: TenantDep) -> JSONResponse:
    """A new job over the failed and cancelled files of an ended job (the files done are
    not redone); answers 202 with the new job."""
    new = platform.jobs.retry(tenant, job_id)
    body = service.get_job(platform, tenant, new).model_dump(mode="json")
    return JSONResponse(status_code=202, content=body, headers={"Location": f"/v1/jobs/{new}"})


@router.get(
    "/jobs/{job_id}/events",
    responses={**_404, 200: {"content": {"text/event-stream": {}}}},
)
def job_events(job_id: str, platform: PlatformDep, tenant: TenantDep) -> StreamingResponse:
    """Server-sent events until the job ends: ``progress`` (the job's counts) whenever they
    change, ``file`` (a file's row) whenever a file changes status, then ``end`` (the
    job)."""
    first = service.get_job(platform, tenant, job_id)  # 404 before the stream starts

    def events() -> Iterator[str]:
        seen: dict[int, str] = {}
        last: dict[str, Any] | None = None
        job = first
        while True:
            for n, f in enumerate(job.files or []):
                state = f"{f.status}/{f.outcome}"
                if seen.get(n) != state:
                    seen[n] = state
                    yield _event("file", {"n": n, **f.model_dump(mode="json")})
            summary = job.model_dump(mode="json", exclude={"files"})
            if job.status in TERMINAL:
                yield _event("end", summary)
                return
            if summary != last:
                last = summary
                yield _event("progress", summary)
            platform.jobs.wait_changed(0.5)
            try:
                job = service.get_job(platform, tenant, job_id)
            except JobNotFound:  # deleted with its collection
                yield _event("end", {**summary, "status": "deleted"})
                return

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
