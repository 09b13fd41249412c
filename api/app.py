"""The FastAPI app factory: the composition root of the REST API.

    app = create_app(Settings(data_dir=tmp_path))
    with TestClient(app) as client:
        client.post("/v1/query", json={"question": "…"})

Every /v1 route acts for the caller's tenant (api.deps.get_caller): with
``api.auth_required`` a request needs an API key; ``/healthz``, ``/readyz``, ``/metrics``,
``/`` and ``/docs`` stay open and show no tenant's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import get_caller
from api.lifecycle import DrainGate, HealthExecutor, Lifecycle
from api.limits import enforce_limits
from api.observability import RequestContext
from api.platform import Platform
from api.readiness import Readiness
from api.routers import chat, checks, chunks, documents, evals, jobs, openai_compat, query
from api.schemas import ErrorResponse
from core import repository
from core.errors import LimitExceeded, RagError, Unauthorized
from core.settings import Settings
from evals.run_store import mark_interrupted


def create_app(settings: Settings | None = None, *, warm_up: bool = False) -> FastAPI:
    """Build the app. Start-up repairs the indexes against SQL; ``warm_up`` also loads
    the models so the first question is not slow."""
    platform = Platform(settings or Settings())
    # draining on SIGTERM (rag serve's GracefulServer flips it) and the health routes'
    # own threads: they answer however full the request thread pool is
    lifecycle = Lifecycle()
    health = HealthExecutor()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(lambda: platform.startup(run_jobs=True))
        # eval runs a stopped server left "running" never finish: say so
        await run_in_threadpool(mark_interrupted, platform.engine)
        if warm_up:
            await run_in_threadpool(platform.warm_up)
        yield
        await run_in_threadpool(platform.shutdown)
        health.close()

    app = FastAPI(
        title="rag-platform",
        version="0.1.0",
        description="Grounded answers with cited sources from your own documents, "
        "on a local quantized LLM.",
        lifespan=lifespan,
    )
    app.state.platform = platform
    app.state.lifecycle = lifecycle

    @app.exception_handler(RagError)
    async def rag_error(_request: Request, exc: RagError) -> JSONResponse:
        return JSONResponse(
            status_code=exc.http_status,
            content={"error": {"code": exc.code, "message": exc.message}},
            headers=_error_headers(exc),
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        # The platform's error shape, naming each bad field, instead of FastAPI's "detail".
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err.get("loc", ()) if part != "body")
            problems.append(f"{where or 'request body'}: {err.get('msg', 'invalid')}")
        return JSONResponse(
            status_code=422,
            content={"error": {"code": "invalid_request", "message": "; ".join(problems)}},
        )

    # The caller dependency on the routers themselves: no /v1 route can skip it (routes
    # that take TenantDep share the same, per-request cached, result).
    v1: dict[str, Any] = {
        "dependencies": [Depends(get_caller), Depends(enforce_limits)],
        "responses": {401: {"model": ErrorResponse, "description": "missing or bad API key"}},
    }
    app.include_router(documents.router, **v1)
    app.include_router(query.router, **v1)
    app.include_router(chat.router, **v1)
    app.include_router(evals.router, **v1)
    app.include_router(checks.router, **v1)
    app.include_router(jobs.router, **v1)
    app.include_router(chunks.router, **v1)
    app.include_router(openai_compat.router, **v1)
    # request ids, one JSON log line and the metrics of every request (api.observability)
    app.add_middleware(DrainGate, lifecycle=lifecycle)
    app.add_middleware(RequestContext)

    @app.get("/healthz", tags=["ops"], responses={503: {"description": "database down"}})
    async def healthz() -> JSONResponse:
        """The process is up and its database answers (on the health threads, never
        behind queued work)."""
        body: dict[str, Any] = {"status": "ok", "database": platform.engine.dialect.name}
        if lifecycle.draining:
            body["draining"] = True
        try:
            await health.run(lambda: repository.ping(platform.engine))
        except Exception as e:  # noqa: BLE001 - any failure is "unhealthy", named
            body.update(status="error", detail=f"database: {type(e).__name__}: {e}")
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    readiness = Readiness(platform, lifecycle)

    @app.get("/readyz", tags=["ops"], responses={503: {"description": "not ready"}})
    async def readyz() -> JSONResponse:
        """Ready for queries: database, indexes, models loaded, LLM backend, background
        threads, not draining; 503 naming each check that fails (it never waits for a
        model to load, nor behind queued work)."""
        try:
            ok, checks_ = await health.run(readiness.check)
        except TimeoutError:
            ok, checks_ = False, {"checks": {"ok": False, "detail": "timed out"}}
        failing = [name for name, c in checks_.items() if not c["ok"]]
        body = {"status": "ready" if ok else "not_ready", "failing": failing, "checks": checks_}
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    page = resources.files("api").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    return app


def _error_headers(exc: RagError) -> dict[str, str] | None:
    """``WWW-Authenticate`` on a 401, ``Retry-After`` (seconds) on a refusal for load."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, LimitExceeded):
        return {"Retry-After": str(exc.retry_after)}
    return None
