"""API keys, and the tenant a request acts as.

A key is ``rag_`` + 43 url-safe characters (32 random bytes from ``secrets``). SQL keeps
only its sha256 (enough for a 256-bit random secret: there is nothing to brute-force)
and its first 12 characters, for display. The secret is shown once, at creation.

    created = create_api_key(engine, "acme", label="ci")    # created.secret: shown once
    caller = ApiKeyAuth(engine, settings.api).authenticate("Bearer rag_…", None)
    caller.tenant                                            # "acme"
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from api.schemas import ApiKeyCreated, ApiKeyPublic, ApiKeysPublic
from core import repository
from core.errors import InvalidApiKey, InvalidRequest, MissingApiKey, RevokedApiKey
from core.settings import APISettings
from core.types import DEFAULT_TENANT, check_tenant

log = logging.getLogger(__name__)

KEY_PREFIX = "rag_"
DISPLAY_CHARS = 12  # "rag_" and 8 more: tells keys apart in lists, reveals nothing usable
_HOW = "send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"


def new_secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a key: sha256, hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


# -- admin (the CLI) ----------------------------------------------------------------------


def create_api_key(engine: Engine, tenant: str, label: str = "") -> ApiKeyCreated:
    """A new key for ``tenant``; the returned secret is not stored anywhere."""
    check_tenant(tenant)
    if len(label) > 200:
        raise InvalidRequest(f"the key label is {len(label)} characters long (limit 200)")
    secret = new_secret()
    with repository.write(engine) as s:
        row = repository.add_api_key(s, tenant, label, hash_secret(secret), secret[:DISPLAY_CHARS])
        key = ApiKeyPublic.of(row)
    return ApiKeyCreated(key=key, secret=secret)


def list_api_keys(engine: Engine, tenant: str | None = None) -> ApiKeysPublic:
    """Every key (of ``tenant``), revoked ones included; never a secret."""
    if tenant is not None:
        check_tenant(tenant)
    with repository.read(engine) as s:
        data = [ApiKeyPublic.of(r) for r in repository.list_api_keys(s, tenant)]
    return ApiKeysPublic(data=data, count=len(data))


def revoke_api_key(engine: Engine, key_id: str) -> ApiKeyPublic:
    """Revoke a key: every later request with it gets 401. Revoking twice keeps the
    first time."""
    with repository.write(engine) as s:
        row = repository.get_api_key(s, key_id)
        if row.revoked_at is None:
            row.revoked_at = repository.utcnow()
            s.flush()
        return ApiKeyPublic.of(row)


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request acts as: a tenant, and the key that proved it (None: no key sent)."""

    tenant: str
    key_id: str | None = None


def key_from_headers(authorization: str | None, x_api_key: str | None) -> str | None:
    """The API key a request sends, or None. An ``Authorization`` header of another
    scheme (``Basic`` from a proxy) is not a key; two different keys are refused."""
    keys: list[str] = []
    if authorization and authorization.strip():
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() == "bearer":
            if not value.strip():
                raise InvalidApiKey(f"the Authorization header has no key after 'Bearer'; {_HOW}")
            keys.append(value.strip())
    if x_api_key is not None:
        if not x_api_key.strip():
            raise InvalidApiKey(f"the X-API-Key header is empty; {_HOW}")
        keys.append(x_api_key.strip())
    if len(set(keys)) > 1:
        raise InvalidApiKey(
            "the Authorization and X-API-Key headers carry different keys; send one key"
        )
    return keys[0] if keys else None


class ApiKeyAuth:
    """Resolves a request's tenant from its API key headers.

    With ``auth_required`` a request without a key is refused (401); without it, such a
    request acts as tenant "default". A key that is sent is always checked: an unknown
    or revoked key is 401 in both modes. Thread-safe.
    """

    TOUCH_EVERY_S = 60.0  # last_used_at is written at most this often per key

    def __init__(self, engine: Engine, settings: APISettings) -> None:
        self._engine = engine
        self._required = settings.auth_required
        self._touched: dict[str, float] = {}
        self._lock = threading.Lock()

    def authenticate(self, authorization: str | None, x_api_key: str | None) -> Caller:
        secret = key_from_headers(authorization, x_api_key)
        if secret is None:
            if not self._required:
                return Caller(DEFAULT_TENANT)
            hint = ""
            if authorization and authorization.strip():
                scheme = authorization.strip().split()[0]
                hint = f" (the Authorization header uses the '{scheme}' scheme, not 'Bearer')"
            raise MissingApiKey(
                f"this server requires an API key{hint}: {_HOW}; "
                "an admin creates one with `rag keys create --tenant NAME`"
            )
        digest = hash_secret(secret)
        with repository.read(self._engine) as s:
            row = repository.find_api_key(s, digest)
            if row is None or not hmac.compare_digest(row.key_hash, digest):
                raise InvalidApiKey(
                    "the API key sent is not valid (no such key; check it was copied whole)"
                )
            if row.revoked_at is not None:
                raise RevokedApiKey(
                    f"the API key {row.prefix}… was revoked on "
                    f"{row.revoked_at:%Y-%m-%d %H:%M} UTC; ask an admin for a new one"
                )
            return Caller(row.tenant, row.id)

    def touch(self, key_id: str) -> None:
        """Record that a key was used (best effort, throttled; run after the response)."""
        now = time.monotonic()
        with self._lock:
            last = self._touched.get(key_id)
            if last is not None and now - last < self.TOUCH_EVERY_S:
                return
            self._touched[key_id] = now
        try:
            with repository.write(self._engine) as s:
                repository.touch_api_key(s, key_id, repository.utcnow())
        except Exception:  # never fail a request over bookkeeping
            log.warning("could not record the use of API key %s", key_id, exc_info=True)
