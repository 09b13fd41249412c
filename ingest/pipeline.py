"""The ingestion pipeline: load → chunk → embed → SQL + indexes, crash-consistent.

    pipeline = IngestPipeline(engine, embedder, index_store, settings.ingest)
    report = pipeline.ingest_paths([Path("docs/")], "handbook")
    report.failed  # the inputs that could not be ingested, each with its reason

Consistency protocol, per group of documents (a crash at any point leaves SQL and the
indexes agreeing after the start-up repair + ``recover()``):

(a) one SQL transaction writes the document rows with status "indexing" and their chunk
    rows *with* embeddings, and deletes the chunk rows a replaced version had;
(b) the indexer deletes the old chunk ids and upserts the new ones (it persists);
(c) a second transaction sets status "ready".

Chunks from many small documents are embedded together in large batches (one SQL
transaction and one index write per group), which keeps the pipeline close to the raw
speed of the embedding model.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path, PurePath
from typing import Any, Protocol

import numpy as np
from sqlalchemy.engine import Engine

from core import repository
from core.errors import (
    DocumentRefused,
    DocumentTooLarge,
    IngestError,
    InvalidRequest,
    PathNotFound,
    RagError,
)
from core.settings import IngestSettings
from core.types import (
    CollectionKey,
    IngestOutcome,
    IngestReport,
    IngestStatus,
    ParsedDocument,
    require_key,
)
from ingest.chunking import SPLITTER_VERSION, ChunkDraft, Chunker
from ingest.jsonl import (
    JSONL_EXTENSIONS,
    JsonlFields,
    JsonlLineError,
    iter_jsonl_bytes,
    iter_jsonl_documents,
)
from ingest.loaders import load_bytes, load_path
from ingest.ports import ChunkIndexer, ContentChecks, Embedder

log = logging.getLogger(__name__)


def _upload_too_large(source: str, max_bytes: int) -> DocumentTooLarge:
    return DocumentTooLarge(
        f"{source}: the upload is over the limit of {max_bytes:,} bytes "
        "(ingest.max_file_bytes); ingest large corpora from a path"
    )

ProgressCallback = Callable[[IngestOutcome], None]

GROUP_CHUNKS = 1024  # chunks embedded and written together (grows when index writes are slow)
MAX_GROUP_CHUNKS = 4096
_LOOKUP_BATCH = 128  # documents whose stored versions are looked up in one query
_RECOVER_BATCH = 2048  # chunks pushed to the indexer per call in recover()
_RESCAN_BATCH = 512  # chunks checked and updated together by rescan()
_SUMMARY_LIMIT = 10_000  # outcomes kept in an IngestionJobRow's summary


# -- internal values ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Input:
    """One input of a batch: a parsed document, or why it could not be parsed."""

    source: str
    doc: ParsedDocument | None = None
    error: BaseException | None = None


@dataclass(frozen=True, slots=True)
class _Stored:
    id: str
    sha256: str
    status: str
    meta: dict[str, Any]
    recipe: str | None


@dataclass(slots=True)
class _Prepared:
    """A document chunked and waiting for its group to be embedded and written."""

    index: int
    doc: ParsedDocument
    drafts: list[ChunkDraft]
    meta: dict[str, Any]
    document_id: str = ""
    status: IngestStatus = "ingested"
    chunk_ids: list[str] = field(default_factory=list)
    # the document-stage checks' findings per chunk (parallel to drafts; {} = none)
    flags: list[dict[str, Any]] = field(default_factory=list)

    def flag_counts(self) -> dict[str, int] | None:
        counts: dict[str, int] = {}
        for f in self.flags:
            for check in f:
                counts[check] = counts.get(check, 0) + 1
        return counts or None


@dataclass(frozen=True, slots=True)
class JobInput:
    """One file of a job: its bytes on disk and the source it is ingested as (an upload:
    the name it was uploaded with, cleaned as any upload's)."""

    key: str  # the job file's id
    path: Path
    source: str
    upload: bool


class JobTracker(Protocol):
    """Told what happens to each file of ``IngestPipeline.ingest_job``; asked, between
    files, whether to stop (a cancel, a shutdown)."""

    def started(self, key: str) -> None:
        """The file is being read."""

    def read(self, key: str, n_inputs: int) -> None:
        """The file gave ``n_inputs`` documents or failures (outcomes may come first)."""

    def outcome(self, key: str, outcome: IngestOutcome) -> None:
        """One of the file's documents is ingested, unchanged, replaced or failed."""

    def writing(self) -> None:
        """The documents read so far are about to be embedded and written (a long step:
        a good moment to record which files are running)."""

    def stopping(self) -> bool:
        """True: read no further file (those read are finished consistently)."""


class _Job:
    """Outcomes of one call, in input order, reported as they happen."""

    def __init__(
        self,
        on_progress: ProgressCallback | None,
        on_indexed: Callable[[int, IngestOutcome], None] | None = None,
        on_write: Callable[[], None] | None = None,
    ) -> None:
        self._on_progress = on_progress
        self._on_indexed = on_indexed
        self.on_write = on_write  # called before a group is embedded and written
        self.outcomes: dict[int, IngestOutcome] = {}

    def record(self, index: int, outcome: IngestOutcome) -> None:
        self.outcomes[index] = outcome
        if self._on_progress is not None:
            self._on_progress(outcome)
        if self._on_indexed is not None:
            self._on_indexed(index, outcome)

    def fail(self, index: int, source: str, error: BaseException) -> None:
        if isinstance(error, RagError):  # its message names the input already
            message, code = error.message, error.code
        else:  # a bug or an environment failure: still reported, never lost
            log.error("ingesting %s failed unexpectedly", source, exc_info=error)
            message = f"{source}: unexpected error: {type(error).__name__}: {error}"
            code = "internal_error"
        self.record(index, IngestOutcome(source, "failed", error=message, error_code=code))

    def ordered(self) -> tuple[IngestOutcome, ...]:
        return tuple(self.outcomes[i] for i in sorted(self.outcomes))


# -- the pipeline ------------------------------------------------------------------------------


class IngestPipeline:
    """Ingests files, uploads and JSONL corpora into a collection; deletes documents.

    Calls are serialised by a lock (one writer per pipeline); one failing input never
    stops the others: it becomes a "failed" outcome with its reason and error code.
    A ``collection`` argument is a ``core.types.CollectionKey`` (tenant, name); a plain
    string is refused with ``TypeError``.
    """

    def __init__(
        self,
        engine: Engine,
        embedder: Embedder,
        indexer: ChunkIndexer,
        settings: IngestSettings,
        *,
        group_chunks: int = GROUP_CHUNKS,
        screen: ContentChecks | None = None,
    ) -> None:
        self._engine = engine
        # the content checks (injection, personal data…) applied by the collection's policy
        self._screen = screen
        self._policy: dict[str, Any] | None = None
        self._embedder = embedder
        self._indexer = indexer
        self._settings = settings
        self._chunker = Chunker(settings, embedder.count_tokens)
        self._group_chunks = max(1, group_chunks)
        self._group_size = self._group_chunks  # per call; grows when index writes are slow
        self._lock = threading.RLock()
        self._checked_model_length = False

    @property
    def recipe(self) -> str:
        """How this pipeline makes chunks: chunk size/overlap in tokens, the splitter's
        version and the embedding model. Stored on each document; a document whose recipe
        differs is re-indexed on re-ingest even when its bytes are unchanged."""
        model = "/".join(Path(self._embedder.model_path).parts[-2:])
        c = self._chunker
        splitter = f"splitter v{SPLITTER_VERSION}"
        return f"chunks {c.chunk_size}/{c.chunk_overlap} tokens, {splitter}; {model}"

    # -- entry points ----------------------------------------------------------------------

    def ingest_paths(
        self,
        paths: Sequence[Path],
        collection: CollectionKey,
        *,
        jsonl: JsonlFields | None = None,
        metadata: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
        source_prefix: str = "",
    ) -> IngestReport:
        """Ingest files and folders (recursive, sorted, hidden files skipped).

        A document's identity in its collection is its source: ``source_prefix`` joined
        with the file's path relative to the folder given (its name when the file is given
        directly). So ``docs/`` and ``.`` name ``docs/a.txt`` differently ("a.txt" and
        "docs/a.txt") unless ``docs/`` is ingested with ``source_prefix="docs"``.
        ``.jsonl``/``.ndjson`` files are corpora, one document per line, with the ids as
        sources (field names from ``jsonl``, BEIR's by default).
        """
        fields = jsonl or JsonlFields()
        prefix = check_source_prefix(source_prefix)
        inputs = self._path_inputs(paths, fields, prefix)
        return self._run(collection, inputs, metadata, on_progress)

    def ingest_files(
        self,
        files: Sequence[tuple[str, bytes]],
        collection: CollectionKey,
        *,
        metadata: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> IngestReport:
        """Ingest in-memory files (REST uploads): (file name, raw bytes) pairs."""
        return self._run(collection, self._file_inputs(files), metadata, on_progress)

    def ingest_job(
        self,
        collection: CollectionKey,
        job_id: str,
        files: Iterable[JobInput],
        tracker: JobTracker,
        *,
        metadata: Mapping[str, Any] | None = None,
        jsonl: JsonlFields | None = None,
    ) -> IngestReport:
        """Ingest a job's files (``ingest.jobs``), telling ``tracker`` what becomes of each;
        the job's row already exists and is left for the caller to close. Stops between
        files when ``tracker.stopping()``; files already read are finished (documents of
        one group are written, indexed and marked ready together)."""
        fields = jsonl or JsonlFields()
        owner: dict[int, str] = {}  # input index -> the file it came from

        def inputs() -> Iterator[_Input]:
            n = 0
            for f in files:
                if tracker.stopping():
                    return
                tracker.started(f.key)
                count = 0
                for item in self._job_file_inputs(f, fields):
                    owner[n] = f.key
                    n += 1
                    count += 1
                    yield item
                tracker.read(f.key, count)

        def indexed(index: int, outcome: IngestOutcome) -> None:
            tracker.outcome(owner.pop(index), outcome)

        return self._run(
            collection,
            inputs(),
            metadata,
            None,
            job_id=job_id,
            on_indexed=indexed,
            on_write=tracker.writing,
        )

    def delete_document(self, collection: CollectionKey, document_id: str) -> None:
        """Delete a document: its SQL rows first, then its chunks from the indexes."""
        require_key(collection)
        with self._lock:
            with repository.write(self._engine) as s:
                col = repository.get_collection(s, collection)
                doc = repository.get_document(s, col.id, document_id)
                collection_id = col.id
                ids = repository.delete_document_rows(s, doc.id)
            self._indexer.delete(collection_id, ids)

    def delete_collection(self, collection: CollectionKey) -> None:
        """Delete a collection with its documents, chunks, jobs and index entries."""
        require_key(collection)
        with self._lock:
            with repository.write(self._engine) as s:
                collection_id = repository.get_collection(s, collection).id
                repository.delete_collection_rows(s, collection_id)
            self._indexer.drop_collection(collection_id)

    def drop_if_unused(self, collection: CollectionKey) -> bool:
        """Delete the collection (with its job records) when it holds no document and no
        job is pending or running in it: what a refused upload into a collection it
        created leaves behind. Returns whether it went."""
        require_key(collection)
        with self._lock:
            with repository.write(self._engine) as s:
                row = repository.find_collection(s, collection)
                if row is None or not repository.collection_unused(s, row.id):
                    return False
                collection_id = row.id
                repository.delete_collection_rows(s, collection_id)
            self._indexer.drop_collection(collection_id)
        return True

    def rescan(self, collection: CollectionKey) -> dict[str, Any]:
        """Run the document-stage content checks again over a collection's stored chunks
        with its current policy: flags replaced, text redacted where the policy now says
        (those chunks re-embedded and re-indexed). Documents the policy would now refuse
        are reported, not deleted. Returns counts and the refused sources."""
        require_key(collection)
        if self._screen is None:
            raise InvalidRequest("this pipeline has no content checks to run")
        summary: dict[str, Any] = {"chunks": 0, "flagged": 0, "redacted": 0, "refused": []}
        with self._lock:
            with repository.read(self._engine) as s:
                col = repository.get_collection(s, collection)
                collection_id, policy = col.id, repository.get_policy(s, col.id)
                todo = sorted(repository.chunk_ids(s, collection_id))
            counts: dict[str, dict[str, int]] = {}
            refused: dict[str, str] = {}
            for lo in range(0, len(todo), _RESCAN_BATCH):
                with repository.read(self._engine) as s:
                    page = todo[lo : lo + _RESCAN_BATCH]
                    rows = [
                        (c.id, c.document_id, c.text)
                        for c in repository.chunk_rows(s, collection_id, page)
                    ]
                screened = self._screen.documents([t for _, _, t in rows], policy)
                changes: list[dict[str, Any]] = []
                redacted: list[tuple[str, str]] = []
                for (cid, doc_id, text), sc in zip(rows, screened, strict=True):
                    change: dict[str, Any] = {"id": cid, "flags": dict(sc.flags) or None}
                    per_doc = counts.setdefault(doc_id, {})
                    for check in sc.flags:
                        per_doc[check] = per_doc.get(check, 0) + 1
                    if sc.refusal is not None:
                        refused.setdefault(doc_id, sc.refusal)
                    if sc.text != text:
                        change["text"] = sc.text
                        redacted.append((cid, sc.text))
                    changes.append(change)
                summary["chunks"] += len(rows)
                summary["flagged"] += sum(1 for sc in screened if sc.flags)
                if redacted:
                    vectors = self._embed([t for _, t in redacted])
                    row_of = {cid: k for k, (cid, _) in enumerate(redacted)}
                    for change in changes:
                        if "text" in change:
                            vector = vectors[row_of[change["id"]]]
                            change["embedding"] = repository.vector_to_blob(vector)
                    summary["redacted"] += len(redacted)
                with repository.write(self._engine) as s:
                    repository.update_chunks(s, changes)
                if redacted:
                    with self._indexer.bulk(collection_id):
                        self._indexer.upsert(
                            collection_id,
                            [cid for cid, _ in redacted],
                            [t for _, t in redacted],
                            vectors,
                        )
            with repository.write(self._engine) as s:
                docs = repository.list_documents(s, collection_id)
                repository.update_documents(
                    s, [{"id": d.id, "flags": counts.get(d.id) or None} for d in docs]
                )
                sources = {d.id: d.source for d in docs}
            summary["refused"] = [
                {"source": sources.get(doc_id, doc_id), "reason": why}
                for doc_id, why in refused.items()
            ]
        return summary

    def recover(self) -> int:
        """Finish documents a crash left "indexing": index their stored chunks, mark ready.

        Uses the embeddings stored with the chunks (re-embeds only a chunk stored
        without one). Returns how many documents were completed. Run it after the
        index repair at start-up.
        """
        with self._lock:
            with repository.read(self._engine) as s:
                pending = repository.documents_indexing(s)
            by_collection: dict[str, list[str]] = {}
            for doc_id, collection_id in pending:
                by_collection.setdefault(collection_id, []).append(doc_id)
            for collection_id, doc_ids in by_collection.items():
                self._recover_collection(collection_id, doc_ids)
            if pending:
                log.info("recovered %d document(s) left indexing by a crash", len(pending))
            return len(pending)

    # -- inputs ----------------------------------------------------------------------------------

    def _path_inputs(
        self, paths: Sequence[Path], fields: JsonlFields, prefix: str = ""
    ) -> Iterator[_Input]:
        max_bytes = self._settings.max_file_bytes
        for given in paths:
            path = Path(given)
            if not path.exists():
                yield _Input(str(given), error=PathNotFound(f"{given}: no such file or directory"))
                continue
            for file, relative in walk(path):
                source = f"{prefix}/{relative}" if prefix else relative
                yield from self._one_path_inputs(file, source, fields, max_bytes)

    def _one_path_inputs(
        self, file: Path, source: str, fields: JsonlFields, max_bytes: int
    ) -> Iterator[_Input]:
        if file.suffix.lower() in JSONL_EXTENSIONS:
            yield from _jsonl_inputs(
                source,
                partial(iter_jsonl_documents, file, fields, max_line_bytes=max_bytes),
            )
            return
        try:
            yield _Input(source, doc=load_path(file, source, **self._limits()))
        except Exception as e:
            yield _Input(source, error=e)

    def _job_file_inputs(self, f: JobInput, fields: JsonlFields) -> Iterator[_Input]:
        """A job file's inputs: a spooled upload as any upload, a path as ``ingest_paths``
        reads a file of a folder (under the source recorded when the job was made)."""
        if not f.path.is_file():
            what = "the spooled copy of the upload" if f.upload else "the file"
            missing = PathNotFound(f"{f.source}: {what} is gone ({f.path})")
            yield _Input(f.source, error=missing)
            return
        if f.upload:
            # at most one byte past the limit was spooled: refused unread (never in memory)
            max_bytes = self._settings.max_file_bytes
            if f.path.stat().st_size > max_bytes:
                yield _Input(f.source, error=_upload_too_large(f.source, max_bytes))
                return
            yield from self._file_inputs([(f.source, f.path.read_bytes())])
            return
        yield from self._one_path_inputs(f.path, f.source, fields, self._settings.max_file_bytes)

    def _limits(self) -> dict[str, Any]:
        """The loaders' size limits (and ``unknown_as_text``) from the ingest settings."""
        st = self._settings
        return {
            "max_bytes": st.max_file_bytes,
            "max_unzipped_bytes": st.max_unzipped_bytes,
            "max_zip_ratio": st.max_zip_ratio,
            "unknown_as_text": st.unknown_as_text,
        }

    def _file_inputs(self, files: Sequence[tuple[str, bytes]]) -> Iterator[_Input]:
        max_bytes = self._settings.max_file_bytes
        for name, data in files:
            try:
                source = upload_source(name)
            except InvalidRequest as e:
                yield _Input(ascii(name)[1:-1][:60] or "upload", error=e)
                continue
            if PurePath(source).suffix.lower() in JSONL_EXTENSIONS:
                if len(data) > max_bytes:  # an upload over the limit arrives cut short
                    yield _Input(source, error=_upload_too_large(source, max_bytes))
                    continue
                yield from _jsonl_inputs(
                    source,
                    partial(
                        iter_jsonl_bytes, data, source, JsonlFields(), max_line_bytes=max_bytes
                    ),
                )
                continue
            try:
                yield _Input(source, doc=load_bytes(data, source, **self._limits()))
            except Exception as e:
                yield _Input(source, error=e)

    # -- one call -------------------------------------------------------------------------------

    def _run(
        self,
        collection: CollectionKey,
        inputs: Iterable[_Input],
        metadata: Mapping[str, Any] | None,
        on_progress: ProgressCallback | None,
        *,
        job_id: str | None = None,
        on_indexed: Callable[[int, IngestOutcome], None] | None = None,
        on_write: Callable[[], None] | None = None,
    ) -> IngestReport:
        """One call; with ``job_id`` the job row is the caller's (made and closed by it)."""
        require_key(collection)
        caller_meta = dict(metadata or {})
        own_job = job_id is None
        with self._lock:
            self._check_model_length()
            with repository.write(self._engine) as s:
                collection_id = repository.get_or_create_collection(s, collection).id
                if job_id is None:
                    job_id = repository.start_job(s, collection_id)
                    # whose it is: a restart closes it when this process is gone
                    repository.update_job(s, job_id, owner=process_owner("sync"))
                self._policy = repository.get_policy(s, collection_id)
            job = _Job(on_progress, on_indexed, on_write)
            self._group_size = self._group_chunks
            try:
                self._ingest(collection_id, inputs, caller_meta, job)
            except BaseException as e:
                if own_job:
                    self._finish_job(job_id, job, failed=e)
                raise
            if own_job:
                self._finish_job(job_id, job)
            return IngestReport(collection=collection.name, job_id=job_id, outcomes=job.ordered())

    def _ingest(
        self, collection_id: str, inputs: Iterable[_Input], caller_meta: dict[str, Any], job: _Job
    ) -> None:
        seen: set[str] = set()
        waiting: list[tuple[int, ParsedDocument]] = []
        group: list[_Prepared] = []
        for index, item in enumerate(inputs):
            if item.doc is None:
                job.fail(index, item.source, item.error or IngestError("unknown failure"))
                continue
            if item.source in seen:
                job.fail(
                    index,
                    item.source,
                    IngestError(f"{item.source}: the same source appears twice in one batch"),
                )
                continue
            seen.add(item.source)
            waiting.append((index, item.doc))
            if len(waiting) >= _LOOKUP_BATCH:
                self._admit(collection_id, waiting, caller_meta, group, job)
                waiting = []
        if waiting:
            self._admit(collection_id, waiting, caller_meta, group, job)
        if group:
            self._write_group(collection_id, group, job)

    def _admit(
        self,
        collection_id: str,
        waiting: list[tuple[int, ParsedDocument]],
        caller_meta: dict[str, Any],
        group: list[_Prepared],
        job: _Job,
    ) -> None:
        """Skip unchanged documents, chunk the others into ``group``; write full groups."""
        stored = self._stored(collection_id, [doc.source for _, doc in waiting])
        meta_updates: dict[str, dict[str, Any]] = {}
        for index, doc in waiting:
            meta = {**doc.metadata, **caller_meta}
            old = stored.get(doc.source)
            if (
                old is not None
                and old.sha256 == doc.sha256
                and old.status == "ready"
                and old.recipe == self.recipe
            ):
                if old.meta != meta:  # same content, new metadata: no re-indexing needed
                    meta_updates[old.id] = meta
                job.record(index, IngestOutcome(doc.source, "unchanged", old.id, 0))
                continue
            try:
                drafts = self._chunker.split(doc)
                if not drafts:
                    raise IngestError(f"{doc.source}: no text to index after chunking")
                drafts, flags = self._check(doc.source, drafts)
            except Exception as e:
                if _fatal(e):
                    raise
                job.fail(index, doc.source, e)
                continue
            group.append(_Prepared(index, doc, drafts, meta, flags=flags))
            if sum(len(p.drafts) for p in group) >= self._group_size:
                self._write_group(collection_id, group, job)
                group.clear()
        if meta_updates:
            with repository.write(self._engine) as s:
                repository.update_documents(
                    s, [{"id": doc_id, "meta": meta} for doc_id, meta in meta_updates.items()]
                )

    def _check(
        self, source: str, drafts: list[ChunkDraft]
    ) -> tuple[list[ChunkDraft], list[dict[str, Any]]]:
        """The document-stage content checks: chunks redacted where the policy says, the
        findings of each chunk; ``DocumentRefused`` when the policy blocks the document."""
        if self._screen is None:
            return drafts, [{} for _ in drafts]
        screened = self._screen.documents([d.text for d in drafts], self._policy)
        for i, sc in enumerate(screened):
            if sc.refusal is not None:
                raise DocumentRefused(
                    f"{source}: refused by the collection's policy: chunk {i + 1} ({sc.refusal})"
                )
        out = [
            d if sc.text == d.text else replace(d, text=sc.text)
            for d, sc in zip(drafts, screened, strict=True)
        ]
        return out, [dict(sc.flags) for sc in screened]

    def _stored(self, collection_id: str, sources: list[str]) -> dict[str, _Stored]:
        with repository.read(self._engine) as s:
            rows = repository.document_versions(s, collection_id, sources)
        return {
            r.source: _Stored(r.id, r.sha256, r.status, dict(r.meta or {}), r.recipe) for r in rows
        }

    # -- writing a group ---------------------------------------------------------------------------

    def _write_group(
        self,
        collection_id: str,
        group: list[_Prepared],
        job: _Job,
    ) -> None:
        """Embed, write and index a group of documents.

        When the group fails before anything is indexed and holds several documents,
        each is retried alone, so one bad document fails by itself.
        """
        group = list(group)
        texts = [d.text for p in group for d in p.drafts]
        if job.on_write is not None:
            job.on_write()
        t0 = time.perf_counter()
        try:
            vectors = self._embed(texts)
            t1 = time.perf_counter()
            old_ids = self._write_indexing(collection_id, group, vectors)
        except Exception as e:
            if _fatal(e):
                raise
            if len(group) > 1:
                log.warning(
                    "a group of %d documents failed (%r); retrying one by one", len(group), e
                )
                for p in group:
                    self._write_group(collection_id, [p], job)
            else:
                job.fail(group[0].index, group[0].doc.source, e)
            return

        new_ids = [cid for p in group for cid in p.chunk_ids]
        t2 = time.perf_counter()
        try:
            with self._indexer.bulk(collection_id):
                if old_ids:
                    self._indexer.delete(collection_id, old_ids)
                self._indexer.upsert(collection_id, new_ids, texts, vectors)
        except Exception as e:
            self._mark_failed(collection_id, group, new_ids, e)
            for p in group:
                job.fail(
                    p.index,
                    p.doc.source,
                    IngestError(f"{p.doc.source}: the indexes could not be updated ({e})"),
                )
            return
        t3 = time.perf_counter()

        try:
            with repository.write(self._engine) as s:
                repository.update_documents(
                    s,
                    [
                        {"id": p.document_id, "status": "ready", "n_chunks": len(p.drafts)}
                        for p in group
                    ],
                )
        except Exception as e:  # indexed but not marked: recover() completes it at start-up
            for p in group:
                job.fail(
                    p.index,
                    p.doc.source,
                    IngestError(
                        f"{p.doc.source}: indexed but not marked ready ({e}); "
                        "it is completed at the next start-up"
                    ),
                )
            return

        for p in group:
            job.record(p.index, IngestOutcome(p.doc.source, p.status, p.document_id, len(p.drafts)))
        # Index writes that cost much next to embedding get amortised over bigger groups.
        embed_s, index_s = t1 - t0, t3 - t2
        if index_s > 0.15 * embed_s and self._group_size < MAX_GROUP_CHUNKS:
            self._group_size = min(MAX_GROUP_CHUNKS, self._group_size * 2)
            log.debug(
                "index writes took %.2fs (embedding %.2fs): groups of %d chunks now",
                index_s,
                embed_s,
                self._group_size,
            )

    def _embed(self, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(self._embedder.embed(texts), dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise RuntimeError(
                f"the embedder returned shape {vectors.shape} for {len(texts)} texts"
            )
        return vectors

    def _write_indexing(
        self, collection_id: str, group: list[_Prepared], vectors: np.ndarray
    ) -> list[str]:
        """Step (a): documents "indexing" + their chunks with embeddings, in one transaction.

        Returns the chunk ids of replaced versions (to delete from the indexes).
        """
        old_ids: list[str] = []
        rows: list[dict[str, Any]] = []
        row = 0
        with repository.write(self._engine) as s:
            current = repository.documents_by_source(
                s, collection_id, [p.doc.source for p in group]
            )
            for p in group:
                doc = p.doc
                existing = current.get(doc.source)
                if existing is not None:
                    old_ids.extend(repository.drop_document_chunks(s, existing.id))
                    existing.media_type = doc.media_type
                    existing.sha256 = doc.sha256
                    existing.version = existing.version + 1
                    existing.status = "indexing"
                    existing.error = None
                    existing.size_bytes = doc.size_bytes
                    existing.n_chunks = len(p.drafts)
                    existing.meta = p.meta
                    existing.recipe = self.recipe
                    existing.flags = p.flag_counts()
                    p.document_id, p.status = existing.id, "replaced"
                else:
                    p.document_id, p.status = repository.new_id(), "ingested"
                    repository.add_document(
                        s,
                        id=p.document_id,
                        collection_id=collection_id,
                        source=doc.source,
                        media_type=doc.media_type,
                        sha256=doc.sha256,
                        version=1,
                        status="indexing",
                        size_bytes=doc.size_bytes,
                        n_chunks=len(p.drafts),
                        meta=p.meta,
                        recipe=self.recipe,
                        flags=p.flag_counts(),
                    )
                p.chunk_ids = [repository.new_id() for _ in p.drafts]
                for ordinal, (chunk_id, draft, flags) in enumerate(
                    zip(p.chunk_ids, p.drafts, p.flags, strict=True)
                ):
                    rows.append(
                        {
                            "id": chunk_id,
                            "document_id": p.document_id,
                            "collection_id": collection_id,
                            "ordinal": ordinal,
                            "text": draft.text,
                            "char_start": draft.char_start,
                            "char_end": draft.char_end,
                            "page": draft.page,
                            "heading_path": list(draft.heading_path),
                            "token_count": draft.token_count,
                            "embedding": repository.vector_to_blob(vectors[row]),
                            "flags": flags or None,
                        }
                    )
                    row += 1
            s.flush()
            repository.insert_chunks(s, rows)
        return old_ids

    def _mark_failed(
        self, collection_id: str, group: list[_Prepared], new_ids: list[str], error: Exception
    ) -> None:
        """After a failed index write: take the group out of service, best effort."""
        try:
            self._indexer.delete(collection_id, new_ids)
        except Exception:
            log.exception("could not remove the chunks of a failed group from the indexes")
        try:
            with repository.write(self._engine) as s:
                repository.update_documents(
                    s,
                    [
                        {"id": p.document_id, "status": "failed", "error": str(error)[:2000]}
                        for p in group
                    ],
                )
        except Exception:
            log.exception("could not mark a failed group's documents as failed")

    # -- recovery ----------------------------------------------------------------------------------

    def _recover_collection(self, collection_id: str, doc_ids: list[str]) -> None:
        with repository.read(self._engine) as s:
            counts = repository.chunk_counts_by_document(s, doc_ids)
        batch: list[str] = []
        batch_chunks = 0
        for doc_id in doc_ids:
            batch.append(doc_id)
            batch_chunks += counts.get(doc_id, 0)
            if batch_chunks >= _RECOVER_BATCH:
                self._recover_batch(collection_id, batch, counts)
                batch, batch_chunks = [], 0
        if batch:
            self._recover_batch(collection_id, batch, counts)

    def _recover_batch(
        self, collection_id: str, doc_ids: list[str], counts: Mapping[str, int]
    ) -> None:
        with repository.read(self._engine) as s:
            rows = repository.stored_chunks(s, doc_ids)
        if rows:
            ids = [r.id for r in rows]
            texts = [r.text for r in rows]
            stored = [repository.blob_to_vector(r.embedding) if r.embedding else None for r in rows]
            dim = next((len(v) for v in stored if v is not None), None)
            missing = [i for i, v in enumerate(stored) if v is None or len(v) != dim]
            if missing:  # stored without a usable embedding: embed those now
                fresh = self._embed([texts[i] for i in missing])
                if dim is None:
                    dim = fresh.shape[1]
                for i, v in zip(missing, fresh, strict=True):
                    stored[i] = v if len(v) == dim else None
                if any(v is None for v in stored):
                    raise RuntimeError(
                        f"collection {collection_id}: stored embeddings do not match the "
                        "embedding model's dimension; re-ingest the documents"
                    )
            vectors = np.stack([np.asarray(v, dtype=np.float32) for v in stored])
            with self._indexer.bulk(collection_id):
                self._indexer.upsert(collection_id, ids, texts, vectors)
        with repository.write(self._engine) as s:
            repository.update_documents(
                s,
                [
                    {"id": d, "status": "ready", "error": None, "n_chunks": counts.get(d, 0)}
                    for d in doc_ids
                ],
            )

    # -- bookkeeping ----------------------------------------------------------------------------

    def _finish_job(self, job_id: str, job: _Job, failed: BaseException | None = None) -> None:
        outcomes = job.ordered()
        n = {status: 0 for status in ("ingested", "unchanged", "replaced", "failed")}
        for o in outcomes:
            n[o.status] += 1
        summary: dict[str, Any] = {
            "outcomes": [
                {k: v for k, v in outcome_dict(o).items() if v is not None}
                for o in outcomes[:_SUMMARY_LIMIT]
            ]
        }
        if len(outcomes) > _SUMMARY_LIMIT:
            summary["truncated"] = len(outcomes) - _SUMMARY_LIMIT
        if failed is not None:
            summary["error"] = f"{type(failed).__name__}: {failed}"
        try:
            with repository.write(self._engine) as s:
                repository.finish_job(
                    s,
                    job_id,
                    failed=failed is not None,
                    n_inputs=len(outcomes),
                    n_ingested=n["ingested"],
                    n_unchanged=n["unchanged"],
                    n_replaced=n["replaced"],
                    n_failed=n["failed"],
                    n_chunks=sum(o.chunks for o in outcomes),
                    summary=summary,
                )
        except Exception:
            if failed is None:
                raise
            log.exception("could not record the failed ingestion job %s", job_id)

    def _check_model_length(self) -> None:
        """Warn once when chunks may be longer than the embedding model reads."""
        if self._checked_model_length:
            return
        self._checked_model_length = True
        limit = self._embedder.max_seq_length
        if 0 < limit < self._settings.chunk_size_tokens + 2:
            log.warning(
                "ingest.chunk_size_tokens=%d is over the embedding model's %d-token window: "
                "the end of long chunks is not embedded",
                self._settings.chunk_size_tokens,
                limit,
            )


# -- helpers ----------------------------------------------------------------------------------


def _fatal(error: Exception) -> bool:
    """A missing model or backend: no document can succeed, so the call itself fails."""
    return isinstance(error, RagError) and not isinstance(error, IngestError)


def outcome_dict(o: IngestOutcome) -> dict[str, Any]:
    return {
        "source": o.source,
        "status": o.status,
        "document_id": o.document_id,
        "chunks": o.chunks,
        "error": o.error,
        "error_code": o.error_code,
    }


def check_source_prefix(prefix: str) -> str:
    """``prefix`` as a clean relative path ("docs", "team/handbook"), or ``InvalidRequest``
    naming the rule; "" for none."""
    parts = [p for p in prefix.replace("\\", "/").split("/") if p not in ("", ".")]
    bad = [
        p
        for p in parts
        if p == ".." or any(unicodedata.category(ch) in _UNSAFE_CATEGORIES for ch in p)
    ]
    if bad:
        raise InvalidRequest(
            f"--source-prefix {prefix!r}: use a relative path without '..' or control "
            "characters, e.g. 'docs' or 'team/handbook'"
        )
    return "/".join(parts)


def process_owner(token: str) -> str:
    """``host:pid:token``: who runs an ingestion job. A restart resumes (or closes) the
    jobs whose process is gone; ``token`` "sync" marks a synchronous pipeline call."""
    return f"{socket.gethostname()}:{os.getpid()}:{token}"


def walk(path: Path) -> Iterator[tuple[Path, str]]:
    """(file, source) for a file, or every non-hidden file under a folder, sorted."""
    if not path.is_dir():
        yield path, path.name
        return
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            file = Path(root) / name
            if file.is_file():
                yield file, file.relative_to(path).as_posix()


# Control, format (bidi overrides such as U+202E, zero-width), surrogate, private-use and
# unassigned characters never reach a source name.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})
UPLOAD_NAME_RULE = (
    "an uploaded file's name keeps its last path part without control or format "
    "characters (such as U+202E) and must leave at least one visible character"
)


def upload_source(name: str) -> str:
    """An uploaded file's name as its document source: the last path part, control and
    format characters removed, runs of spaces collapsed. ``InvalidRequest`` naming the
    rule when nothing usable is left. ``"../x/rtl\u202etxt.exe"`` -> ``"rtltxt.exe"``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    kept = "".join(ch for ch in base if unicodedata.category(ch) not in _UNSAFE_CATEGORIES)
    clean = " ".join(kept.split())
    if clean in ("", ".", ".."):
        raise InvalidRequest(f"upload file name {name[:60]!r} is unusable: {UPLOAD_NAME_RULE}")
    return clean


def _jsonl_inputs(
    corpus: str,
    open_corpus: Callable[..., Iterator[ParsedDocument]],
) -> Iterator[_Input]:
    """Documents of a JSONL corpus as inputs; each bad line becomes a failed input."""
    bad: list[JsonlLineError] = []
    try:
        for doc in open_corpus(on_error=bad.append):
            while bad:
                line = bad.pop(0)
                yield _Input(line.source, error=line.error)
            yield _Input(doc.source, doc=doc)
    except Exception as e:  # unreadable file: the lines read so far stay ingested
        yield _Input(corpus, error=e)
    for line in bad:
        yield _Input(line.source, error=line.error)
