"""FastAPI dependencies: the settings, the platform (both set by create_app), the
caller's tenant (from its API key) and the collection a path names, resolved once here
into a ``CollectionKey`` (tenant, name) that the stages take."""

from __future__ import annotations

from typing import Annotated

from fastapi import BackgroundTasks, Depends, Path, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Caller
from api.observability import set_tenant
from api.platform import Platform
from core.settings import Settings
from core.types import COLLECTION_NAME_RULE, CollectionKey


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.platform.settings
    return settings


PlatformDep = Annotated[Platform, Depends(get_platform)]
SettingsDep = Annotated[Settings, Depends(get_settings)]

# Declared for the OpenAPI page (its "Authorize" button); the headers are read below.
_bearer = HTTPBearer(
    auto_error=False, scheme_name="bearer", description="an API key: `Authorization: Bearer rag_…`"
)
_x_api_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, scheme_name="apiKey", description="an API key: `rag_…`"
)


def get_caller(
    request: Request,
    platform: PlatformDep,
    background: BackgroundTasks,
    _bearer_credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    x_api_key: Annotated[str | None, Security(_x_api_key)],
) -> Caller:
    """Who the request acts as; 401 for a missing (when required), unknown or revoked key."""
    caller = platform.auth.authenticate(request.headers.get("authorization"), x_api_key)
    set_tenant(caller.tenant)  # the request's log line names it
    if caller.key_id is not None:
        background.add_task(platform.auth.touch, caller.key_id)
    return caller


def get_tenant(caller: Annotated[Caller, Depends(get_caller)]) -> str:
    return caller.tenant


TenantDep = Annotated[str, Depends(get_tenant)]


def get_collection_key(
    tenant: TenantDep,
    name: Annotated[str, Path(description=f"the collection: {COLLECTION_NAME_RULE}")],
) -> CollectionKey:
    """The caller's collection named in the path; 422 naming the rule for a bad name."""
    return CollectionKey(tenant, name)


CollectionDep = Annotated[CollectionKey, Depends(get_collection_key)]


def collection_key(tenant: str, name: str | None, settings: Settings) -> CollectionKey:
    """The caller's collection named in a request body (the default one when omitted)."""
    return CollectionKey(tenant, name or settings.default_collection)
