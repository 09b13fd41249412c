"""Batch evaluation runs over REST, tenant-scoped like collections, and the server's
configuration fingerprint (what a run ``--against`` it compares with its baseline).

    POST /v1/evals {"suite": {...}}        -> 202 {"id": "run-…", "status": "running"}
    GET  /v1/evals/{id}                    -> status, progress, summary (?cases=true: cases)
    GET  /v1/evals/{id}/report             -> the self-contained HTML report
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, model_validator

from api.deps import PlatformDep, TenantDep
from api.schemas import ErrorResponse
from core.types import CollectionKey

router = APIRouter(prefix="/v1", tags=["evals"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such run (of this tenant)"},
    422: {"model": ErrorResponse, "description": "invalid suite"},
}


class EvalRunRequest(BaseModel):
    """A suite as JSON (the YAML file's structure) or as YAML text."""

    suite: dict[str, Any] | None = None
    suite_yaml: str | None = None
    name: str = Field("<request>", max_length=1000)  # shown in reports and lists
    concurrency: int = Field(1, ge=1, le=16)

    @model_validator(mode="after")
    def _one_suite(self) -> EvalRunRequest:
        if (self.suite is None) == (self.suite_yaml is None):
            raise ValueError("give the suite as 'suite' (JSON) or 'suite_yaml' (text), one of them")
        return self


@router.post("/evals", status_code=202, responses=_ERRORS)
def start_eval(req: EvalRunRequest, platform: PlatformDep, tenant: TenantDep) -> dict[str, Any]:
    """Start a run of the suite in the background; returns its id at once."""
    from evals.batch import prepare_run
    from evals.suite import parse_suite

    suite = parse_suite(req.suite if req.suite is not None else req.suite_yaml or "", req.name)
    prepared = prepare_run(platform, suite, req.name, tenant=tenant, concurrency=req.concurrency)
    platform.submit_background(prepared.execute)
    return {"id": prepared.run_id, "status": "running", "n_cases": len(suite.cases)}


@router.get("/evals")
def list_evals(
    platform: PlatformDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    from evals.run_store import list_runs

    rows = list_runs(platform.engine, tenant, limit)
    return {"data": rows, "count": len(rows)}


@router.get("/evals/{run_id}", responses=_ERRORS)
def get_eval(
    run_id: str, platform: PlatformDep, tenant: TenantDep, cases: bool = False
) -> dict[str, Any]:
    """Status, progress (cases done of all) and the summary so far."""
    from evals.run_store import load_run

    run = load_run(platform.engine, tenant, run_id)
    out = run.to_json(with_cases=cases)
    out["progress"] = {"done": len(run.cases), "total": run.n_cases}
    return out


@router.get("/evals/{run_id}/report", response_class=HTMLResponse, responses=_ERRORS)
def eval_report(run_id: str, platform: PlatformDep, tenant: TenantDep) -> HTMLResponse:
    from evals.reports import html_report
    from evals.run_store import load_run

    return HTMLResponse(html_report(load_run(platform.engine, tenant, run_id)))


@router.get("/fingerprint")
def fingerprint(
    platform: PlatformDep,
    tenant: TenantDep,
    collection: Annotated[list[str] | None, Query()] = None,
) -> dict[str, Any]:
    """The configuration answers depend on: model file sha256, settings, and for each named
    collection (default: the default collection) its index content and chunking recipes."""
    from core.types import check_collection_name
    from evals.fingerprint import platform_fingerprint

    names = collection or [platform.settings.default_collection]
    keys = [CollectionKey(tenant, check_collection_name(n)) for n in names]
    return platform_fingerprint(platform, keys)
