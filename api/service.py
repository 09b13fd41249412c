"""Helpers shared by the REST routers and the CLI: listings, and a collection's
content-check policy (no business logic: the rules live in generation.checks.policy).

A collection argument is a ``core.types.CollectionKey`` (tenant, name).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from api.platform import Platform
from api.schemas import (
    CollectionPublic,
    CollectionsPublic,
    DocumentPublic,
    DocumentsPublic,
    FlaggedChunkPublic,
    FlaggedChunksPublic,
    JobPublic,
    JobsPublic,
    PolicyPublic,
)
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


# -- content checks: the policy, flagged chunks, rescans -----------------------------------


def get_policy(platform: Platform, collection: CollectionKey) -> PolicyPublic:
    """The collection's content-check policy; ``CollectionNotFound``."""
    from generation.checks.policy import CollectionPolicy

    with repository.read(platform.engine) as s:
        col = repository.get_collection(s, collection)
        policy = CollectionPolicy.from_stored(col.policy)
    return PolicyPublic(
        collection=collection.name,
        policy=policy.model_dump(mode="json"),
        changed=policy.to_stored(),
    )


def set_policy(
    platform: Platform,
    collection: CollectionKey,
    *,
    document: Mapping[str, Any] | None = None,
    updates: Mapping[str, Any] | None = None,
    reset: bool = False,
) -> PolicyPublic:
    """Set the collection's policy: ``document`` replaces it (unnamed settings: the
    defaults), ``updates`` change single settings (``{"pii.answers": "redact"}``),
    ``reset`` returns to the defaults. Creates the collection when it does not exist yet
    (so a policy such as redacting personal data applies from the first document).
    ``InvalidRequest`` naming every bad setting; nothing is stored then."""
    from generation.checks.policy import CollectionPolicy

    with repository.write(platform.engine) as s:
        col = repository.get_or_create_collection(s, collection)
        if reset:
            policy = CollectionPolicy()
        elif document is not None:
            policy = CollectionPolicy.parse(document)
        else:
            policy = CollectionPolicy.from_stored(col.policy)
        if updates:
            policy = policy.with_updates(updates)
        repository.set_policy(s, collection, policy.to_stored())
    return get_policy(platform, collection)


def flagged_chunks(
    platform: Platform, collection: CollectionKey, check: str | None = None, limit: int = 100
) -> FlaggedChunksPublic:
    """The collection's chunks a content check flagged (``check``: only that one)."""
    with repository.read(platform.engine) as s:
        col = repository.get_collection(s, collection)
        rows = repository.flagged_chunks(s, col.id, check, limit)
        data = [FlaggedChunkPublic.of(c, d) for c, d in rows]
    return FlaggedChunksPublic(data=data, count=len(data))


# -- ingestion jobs ---------------------------------------------------------------------------


def get_job(platform: Platform, tenant: str, job_id: str, *, files: bool = True) -> JobPublic:
    """The tenant's job (with its files); ``JobNotFound`` for another tenant's."""
    with repository.read(platform.engine) as s:
        job, col = repository.get_job(s, tenant, job_id)
        by_status = repository.job_file_totals(s, job.id)["status"]
        rows = repository.job_files(s, job.id) if files else None
        return JobPublic.of(job, col.name, by_status, rows)


def list_jobs(
    platform: Platform,
    tenant: str,
    *,
    collection: str | None = None,
    status: str | None = None,
    limit: int = 50,
) -> JobsPublic:
    """The tenant's jobs, newest first (without their files)."""
    with repository.read(platform.engine) as s:
        data = [
            JobPublic.of(job, name, repository.job_file_totals(s, job.id)["status"])
            for job, name in repository.list_jobs(
                s, tenant, collection=collection, status=status, limit=limit
            )
        ]
    return JobsPublic(data=data, count=len(data))


def collection_exists(platform: Platform, key: CollectionKey) -> bool:
    with repository.read(platform.engine) as s:
        return repository.find_collection(s, key) is not None


def discard_refused(platform: Platform, key: CollectionKey, existed: bool, report: Any) -> None:
    """A refused upload (no file ingested, ``report`` an ``IngestReport``) into a collection
    that did not exist before it leaves no empty collection behind (nor its job record)."""
    if existed or any(o.status != "failed" for o in report.outcomes):
        return
    platform.ingest.drop_if_unused(key)


def has_gate(platform: Platform, key: CollectionKey) -> bool:
    """Whether changes to the collection go through its gate suite (evals.gate)."""
    with repository.read(platform.engine) as s:
        row = repository.find_collection(s, key)
        return row is not None and bool(row.gate)
