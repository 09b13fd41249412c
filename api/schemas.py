"""REST/CLI schemas, separate from the ORM tables. One serialiser per domain value.

The answer JSON is the same for `POST /v1/query` and `rag ask --json`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field

from core import types
from core.db import (
    ApiKeyRow,
    ChunkRow,
    CollectionRow,
    DocumentRow,
    IngestionJobFileRow,
    IngestionJobRow,
)
from core.settings import LLMSettings
from generation.prompt import stop_strings

# -- documents and collections ------------------------------------------------------------


class DocumentPublic(BaseModel):
    id: str
    collection: str
    source: str
    media_type: str
    sha256: str
    version: int
    status: str
    error: str | None
    size_bytes: int
    n_chunks: int
    recipe: str | None  # how its chunks were made (chunk size/overlap, embedding model)
    # chunks each content check flagged ({"injection": 1, "pii": 3}); {}: none
    flags: dict[str, int]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, row: DocumentRow, collection: str) -> DocumentPublic:
        return cls(
            id=row.id,
            collection=collection,
            source=row.source,
            media_type=row.media_type,
            sha256=row.sha256,
            version=row.version,
            status=row.status,
            error=row.error,
            size_bytes=row.size_bytes,
            n_chunks=row.n_chunks,
            recipe=row.recipe,
            flags=dict(row.flags or {}),
            metadata=dict(row.meta or {}),
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


class FlaggedChunkPublic(BaseModel):
    """A chunk a content check flagged, with what it found (spans: offsets into ``text``)."""

    chunk_id: str
    document_id: str
    source: str
    ordinal: int
    page: int | None
    flags: dict[str, Any]
    text: str

    @classmethod
    def of(cls, chunk: ChunkRow, doc: DocumentRow) -> FlaggedChunkPublic:
        return cls(
            chunk_id=chunk.id,
            document_id=doc.id,
            source=doc.source,
            ordinal=chunk.ordinal,
            page=chunk.page,
            flags=dict(chunk.flags or {}),
            text=chunk.text,
        )


class FlaggedChunksPublic(BaseModel):
    data: list[FlaggedChunkPublic]
    count: int


class PolicyPublic(BaseModel):
    """A collection's content-check policy: every rule in force, and which settings
    differ from the defaults."""

    collection: str
    policy: dict[str, Any]
    changed: dict[str, Any]


class DocumentsPublic(BaseModel):
    data: list[DocumentPublic]
    count: int


class FusionPublic(BaseModel):
    mode: str | None
    rrf_k: int | None
    alpha: float | None
    tuned_metric: dict[str, Any] | None


class CollectionPublic(BaseModel):
    name: str
    tenant: str
    documents: int
    chunks: int
    created_at: datetime
    fusion: FusionPublic

    @classmethod
    def of(cls, row: CollectionRow, documents: int, chunks: int) -> CollectionPublic:
        return cls(
            name=row.name,
            tenant=row.tenant,
            documents=documents,
            chunks=chunks,
            created_at=row.created_at,
            fusion=FusionPublic(
                mode=row.fusion_mode, rrf_k=row.rrf_k, alpha=row.alpha,
                tuned_metric=row.tuned_metric,
            ),
        )


class CollectionsPublic(BaseModel):
    data: list[CollectionPublic]
    count: int


class IngestOutcomePublic(BaseModel):
    source: str
    status: Literal["ingested", "unchanged", "replaced", "failed"]
    document_id: str | None
    chunks: int
    error: str | None
    error_code: str | None


class IngestReportPublic(BaseModel):
    collection: str
    job_id: str
    results: list[IngestOutcomePublic]
    ingested: int
    unchanged: int
    replaced: int
    failed: int

    @classmethod
    def of(cls, report: types.IngestReport) -> IngestReportPublic:
        results = [
            IngestOutcomePublic(
                source=o.source, status=o.status, document_id=o.document_id, chunks=o.chunks,
                error=o.error, error_code=o.error_code,
            )
            for o in report.outcomes
        ]

        def count(status: str) -> int:
            return sum(1 for o in report.outcomes if o.status == status)

        return cls(
            collection=report.collection, job_id=report.job_id, results=results,
            ingested=count("ingested"), unchanged=count("unchanged"),
            replaced=count("replaced"), failed=count("failed"),
        )


# -- ingestion jobs -----------------------------------------------------------------------------


class JobFilePublic(BaseModel):
    """One file of a job: pending|running|done|failed|cancelled|retried, what became of
    it (ingested|unchanged|replaced|failed|mixed), its chunks and timings."""

    source: str
    status: str
    outcome: str | None
    document_id: str | None
    documents: int
    chunks: int
    size_bytes: int
    error: str | None
    error_code: str | None
    started_at: datetime | None
    finished_at: datetime | None
    seconds: float | None

    @classmethod
    def of(cls, f: IngestionJobFileRow) -> JobFilePublic:
        return cls(
            source=f.source, status=f.status, outcome=f.outcome, document_id=f.document_id,
            documents=f.n_documents, chunks=f.n_chunks, size_bytes=f.size_bytes, error=f.error,
            error_code=f.error_code, started_at=f.started_at, finished_at=f.finished_at,
            seconds=f.seconds,
        )  # fmt: skip


class JobPublic(BaseModel):
    """An ingestion job: pending → running → done|failed|cancelled ("done" may hold failed
    files: see ``failed``). Counts are per file; ``files`` only on a single job's page."""

    id: str
    collection: str
    kind: str  # upload | paths | sync (a synchronous call: no per-file rows)
    status: str
    progress: float  # files ended / files
    files_total: int
    files_by_status: dict[str, int]
    ingested: int
    unchanged: int
    replaced: int
    failed: int
    chunks: int
    error: str | None
    cancel_requested: bool
    retry_of: str | None
    retried_by: str | None
    created_at: datetime
    finished_at: datetime | None
    files: list[JobFilePublic] | None = None

    @classmethod
    def of(
        cls,
        job: IngestionJobRow,
        collection: str,
        by_status: dict[str, int],
        files: Sequence[IngestionJobFileRow] | None = None,
    ) -> JobPublic:
        total = sum(by_status.values()) if job.kind != "sync" else job.n_inputs
        ended = sum(n for st, n in by_status.items() if st not in ("pending", "running"))
        if job.kind == "sync":
            ended = total if job.status != "running" else 0
        return cls(
            id=job.id, collection=collection, kind=job.kind, status=job.status,
            progress=round(ended / total, 4) if total else 1.0, files_total=total,
            files_by_status=by_status, ingested=job.n_ingested, unchanged=job.n_unchanged,
            replaced=job.n_replaced, failed=job.n_failed, chunks=job.n_chunks, error=job.error,
            cancel_requested=job.cancel_requested, retry_of=job.retry_of,
            retried_by=job.retried_by, created_at=job.started_at, finished_at=job.finished_at,
            files=None if files is None else [JobFilePublic.of(f) for f in files],
        )  # fmt: skip


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int


# -- API keys ---------------------------------------------------------------------------------


class ApiKeyPublic(BaseModel):
    """An API key as shown to its admin: never the secret, only its first characters."""

    id: str
    tenant: str
    label: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, row: ApiKeyRow) -> ApiKeyPublic:
        return cls(
            id=row.id, tenant=row.tenant, label=row.label, prefix=row.prefix,
            created_at=row.created_at, last_used_at=row.last_used_at, revoked_at=row.revoked_at,
        )


class ApiKeysPublic(BaseModel):
    data: list[ApiKeyPublic]
    count: int


class ApiKeyCreated(BaseModel):
    """A new key: ``secret`` is shown this once and stored only as its sha256."""

    key: ApiKeyPublic
    secret: str


# -- queries ----------------------------------------------------------------------------------


class FilterIn(BaseModel):
    document_ids: list[str] = Field(default_factory=list)
    sources: list[str] = Field(default_factory=list)
    media_types: list[str] = Field(default_factory=list)
    metadata: dict[str, str | int | float | bool | None] = Field(default_factory=dict)

    def to_core(self) -> types.Filter:
        return types.Filter(
            document_ids=tuple(self.document_ids), sources=tuple(self.sources),
            media_types=tuple(self.media_types), metadata=dict(self.metadata),
        )


class SamplingIn(BaseModel):
    """Per-request sampling; omitted fields take the server's settings."""

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, ge=1, le=4096)
    seed: int | None = None
    repeat_penalty: float | None = Field(None, ge=0.0)
    stop: list[str] | None = None

    def to_core(self, llm: LLMSettings) -> types.SamplingParams:
        return types.SamplingParams(
            temperature=llm.temperature if self.temperature is None else self.temperature,
            top_p=llm.top_p if self.top_p is None else self.top_p,
            top_k=llm.top_k if self.top_k is None else self.top_k,
            max_tokens=llm.max_tokens if self.max_tokens is None else self.max_tokens,
            seed=llm.seed if self.seed is None else self.seed,
            repeat_penalty=(
                llm.repeat_penalty if self.repeat_penalty is None else self.repeat_penalty
            ),
            stop=stop_strings(stop=llm.stop if self.stop is None else self.stop),
        )


class QueryRequest(BaseModel):
    question: str = Field(..., min_length=1)
    collection: str | None = None  # None: the default collection
    top_k: int | None = Field(None, ge=1, le=200)  # sources retrieved; None: settings
    filter: FilterIn = Field(default_factory=FilterIn)
    sampling: SamplingIn = Field(default_factory=SamplingIn)


class RetrieveRequest(BaseModel):
    # "question" accepted too, the name /v1/query uses for the same thing
    query: str = Field(..., min_length=1, validation_alias=AliasChoices("query", "question"))
    collection: str | None = None
    top_k: int | None = Field(None, ge=1, le=200)
    method: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filter: FilterIn = Field(default_factory=FilterIn)


def _snippet(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def retrieved_to_dict(sc: types.ScoredChunk, with_text: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "chunk_id": sc.chunk.id,
        "document_id": sc.chunk.document_id,
        "source": sc.chunk.source,
        "page": sc.chunk.page,
        "score": sc.score,
        "bm25_rank": sc.bm25_rank,
        "dense_rank": sc.dense_rank,
        "bm25_score": sc.bm25_score,
        "dense_score": sc.dense_score,
    }
    if sc.rerank_score is not None:
        out["rerank_score"] = sc.rerank_score
    if sc.chunk.flags:
        out["flags"] = {
            check: {k: v for k, v in found.items() if k in ("score", "reasons", "labels", "action")}
            for check, found in sc.chunk.flags.items()
        }
    if with_text:
        out["heading_path"] = list(sc.chunk.heading_path)
        out["text"] = sc.chunk.text
    return out


def answer_to_dict(answer: types.Answer) -> dict[str, Any]:
    """The answer JSON shared by `POST /v1/query` and `rag ask --json`."""
    return {
        "answer": answer.text,
        "short_answer": answer.short_answer,
        "abstained": answer.abstained,
        "p_unanswerable": (
            None if answer.p_unanswerable is None else round(answer.p_unanswerable, 4)
        ),
        # one verdict per displayed sentence; chunk.text[char_start:char_end] supports it
        "sentences": [
            {
                "text": v.text,
                "supported": v.supported,
                "score": v.score,
                "citation": v.citation,
                "chunk_id": v.chunk_id,
                "char_start": v.char_start,
                "char_end": v.char_end,
            }
            for v in answer.sentences
        ],
        "citations": [
            {
                "n": c.n,
                "document_id": c.source.chunk.document_id,
                "source": c.source.chunk.source,
                "page": c.source.chunk.page,
                "chunk_id": c.source.chunk.id,
                "snippet": _snippet(c.snippet or c.source.chunk.text),
                "attributed": c.attributed,
            }
            for c in answer.citations
        ],
        "dropped_citations": answer.dropped_citations,
        "retrieved": [retrieved_to_dict(sc) for sc in answer.retrieved],
        "verdicts": [
            {"guard": v.guard, "passed": v.passed, "detail": v.detail, "score": v.score}
            for v in answer.verdicts
        ],
        "model": {"path": answer.model.path, "sha256": answer.model.sha256},
        "sampling": {
            "temperature": answer.sampling.temperature,
            "top_p": answer.sampling.top_p,
            "top_k": answer.sampling.top_k,
            "max_tokens": answer.sampling.max_tokens,
            "seed": answer.sampling.seed,
            "repeat_penalty": answer.sampling.repeat_penalty,
            "stop": list(answer.sampling.stop),
        },
        "timings_ms": {
            "retrieve": round(answer.timings.retrieve_ms, 2),
            "generate": round(answer.timings.generate_ms, 2),
            "total": round(answer.timings.total_ms, 2),
        },
        "usage": {
            "prompt_tokens": answer.usage.prompt_tokens,
            "completion_tokens": answer.usage.completion_tokens,
        },
    }


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ChatRequest(QueryRequest):
    # None: a new conversation; else a turn of that one (collection: the conversation's)
    conversation_id: str | None = Field(None, min_length=1, max_length=32)


class FeedbackRequest(BaseModel):
    answer_id: str = Field(..., min_length=1, max_length=32)
    rating: Literal["up", "down"]
    # the document that should have been cited: its id or its source name
    correct_source: str | None = Field(None, min_length=1, max_length=1000)
    correct_answer: str | None = Field(None, max_length=10_000)
    comment: str | None = Field(None, max_length=10_000)
