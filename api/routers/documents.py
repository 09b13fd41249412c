"""Collections and documents: upload, list, delete; always the caller's tenant's.

Another tenant's collection or document answers exactly as a missing one (404).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from api import service
from api.deps import CollectionDep, PlatformDep, TenantDep
from api.schemas import (
    CollectionsPublic,
    DocumentPublic,
    DocumentsPublic,
    ErrorResponse,
    IngestReportPublic,
    JobPublic,
)
from core import repository
from core.errors import InvalidRequest
from core.types import CollectionKey
from ingest.jobs import Upload

router = APIRouter(prefix="/v1", tags=["documents"])


@router.get("/collections")
def list_collections(platform: PlatformDep, tenant: TenantDep) -> CollectionsPublic:
    return service.list_collections(platform, tenant)


@router.delete("/collections/{name}", status_code=204, responses={404: {"model": ErrorResponse}})
def delete_collection(key: CollectionDep, platform: PlatformDep) -> None:
    from evals.gate import delete_collection as delete_with_versions

    service.list_documents(platform, key)  # 404 when it does not exist
    delete_with_versions(platform, key)


@router.post(
    "/collections/{name}/documents",
    status_code=202,
    response_model=JobPublic,
    responses={
        200: {
            "model": IngestReportPublic,
            "description": "?wait=true, or a collection with a gate: the finished report",
        },
        409: {"description": "the collection's gate suite failed: nothing changed"},
        413: {"description": "every file is over the size limit"},
        415: {"description": "no file of the upload has a supported type"},
        422: {"description": "no file of the upload could be ingested"},
    },
)
async def upload_documents(
    key: CollectionDep,
    platform: PlatformDep,
    files: Annotated[list[UploadFile], File(description="one or more documents")],
    metadata: Annotated[
        str | None, Form(description="JSON object stored with every uploaded document")
    ] = None,
    wait: Annotated[
        bool, Query(description="wait for the job to end and answer its report (200)")
    ] = False,
) -> Any:
    """Spool the files to disk, record an ingestion job and answer 202 with it (follow it
    at /v1/jobs/{id}); ``?wait=true`` answers the finished report instead. A collection
    with a gate ingests synchronously (the change goes live only if its suite passes)."""
    settings = platform.settings
    most = settings.api.max_files_per_upload
    if len(files) > most:
        raise InvalidRequest(f"too many files in one upload: {len(files)} (limit {most})")
    meta: dict[str, Any] = {}
    if metadata:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as e:
            raise InvalidRequest(f"metadata is not valid JSON: {e}") from e
        if not isinstance(meta, dict):
            raise InvalidRequest("metadata must be a JSON object")
    # Keep at most one byte past the limit: enough for the loader to refuse an oversize
    # file without holding all of it.
    limit = settings.ingest.max_file_bytes
    if await run_in_threadpool(service.has_gate, platform, key):
        payload = [(f.filename or "upload", await f.read(limit + 1)) for f in files]
        from evals.gate import gated_change

        outcome = await run_in_threadpool(
            gated_change,
            platform,
            key,
            lambda k: platform.ingest.ingest_files(payload, k, metadata=meta),
        )
        if not outcome.accepted:
            return _refused(outcome, IngestReportPublic.of(outcome.result).model_dump(mode="json"))
        return _report(IngestReportPublic.of(outcome.result))
    existed = await run_in_threadpool(service.collection_exists, platform, key)
    # 202: a collection the job made and nothing went into goes ingest.refused_upload_keep_s
    # after the job ended (its report readable meanwhile); ?wait=true removes it below
    drop = not existed and not wait
    job_id = await run_in_threadpool(_spool_job, platform, key, files, limit + 1, meta, drop)
    if not wait:
        platform.jobs.submit(job_id)
        job = await run_in_threadpool(service.get_job, platform, key.tenant, job_id, files=False)
        return JSONResponse(
            status_code=202,
            content=job.model_dump(mode="json"),
            headers={"Location": f"/v1/jobs/{job_id}"},
        )
    # run it in this request's thread unless the worker took it first (the pipeline
    # ingests one job at a time either way)
    if not await run_in_threadpool(platform.jobs.run, job_id):
        await run_in_threadpool(platform.jobs.wait, key.tenant, job_id)
    report = await run_in_threadpool(platform.jobs.report, key.tenant, job_id)
    # a refused upload leaves no empty collection behind
    await run_in_threadpool(service.discard_refused, platform, key, existed, report)
    return _report(IngestReportPublic.of(report))


def _spool_job(
    platform: Any,
    key: CollectionKey,
    files: list[UploadFile],
    limit: int,
    meta: dict[str, Any],
    drop_if_refused: bool,
) -> str:
    """Each upload copied to the spool folder (streamed, at most ``limit`` bytes), then
    the pending job recorded over them."""
    runner = platform.jobs
    job_id = repository.new_id()
    uploads = []
    for n, f in enumerate(files):
        spooled = runner.spool(job_id, n, f.file, limit)
        uploads.append(Upload(f.filename or "upload", spooled.path, spooled.size_bytes))
    return str(
        runner.create_upload_job(
            key, job_id, uploads, metadata=meta, drop_if_refused=drop_if_refused
        )
    )


def _report(body: IngestReportPublic) -> Any:
    """200 with the report; when no file could be ingested, the status of their failure
    (415, 413…; 422 when they differ) with the report."""
    if body.failed and body.failed == len(body.results):
        statuses = {_status_of(o.error_code) for o in body.results}
        status = statuses.pop() if len(statuses) == 1 else 422
        return JSONResponse(
            status_code=status,
            content={
                "error": {
                    "code": body.results[0].error_code if status != 422 else "ingest_failed",
                    "message": "no file of the upload could be ingested: "
                    + "; ".join(o.error or o.source for o in body.results),
                },
                "report": body.model_dump(mode="json"),
            },
        )
    return JSONResponse(status_code=200, content=body.model_dump(mode="json"))


def _status_of(error_code: str | None) -> int:
    from core import errors

    for cls in (
        errors.UnsupportedFormat, errors.DocumentTooLarge, errors.EmptyDocument,
        errors.CorruptDocument, errors.EncryptedDocument, errors.PathNotFound,
    ):
        if cls.code == error_code:
            return cls.http_status
    return 422


@router.get("/collections/{name}/documents", responses={404: {"model": ErrorResponse}})
def list_documents(key: CollectionDep, platform: PlatformDep) -> DocumentsPublic:
    return service.list_documents(platform, key)


@router.get(
    "/collections/{name}/documents/{document_id}", responses={404: {"model": ErrorResponse}}
)
def get_document(key: CollectionDep, document_id: str, platform: PlatformDep) -> DocumentPublic:
    return service.get_document(platform, key, document_id)


@router.delete(
    "/collections/{name}/documents/{document_id}",
    status_code=204,
    responses={404: {"model": ErrorResponse}, 409: {"description": "refused by the gate"}},
)
def delete_document(key: CollectionDep, document_id: str, platform: PlatformDep) -> Response:
    from evals.gate import gated_delete

    outcome = gated_delete(platform, key, document_id)
    if not outcome.accepted:
        return _refused(outcome, None)
    return Response(status_code=204)


def _refused(outcome: Any, report: dict[str, Any] | None) -> JSONResponse:
    """409: the collection's gate suite failed on the changed candidate; nothing changed."""
    run = outcome.run
    return JSONResponse(
        status_code=409,
        content={
            "error": {"code": "gate_refused", "message": "; ".join(outcome.reasons)},
            "run": {
                "id": run.id,
                "pass_rate": round(run.pass_rate, 4),
                "failing": [c.case_id for c in run.cases if not c.passed],
            },
            "report": report,
        },
    )
