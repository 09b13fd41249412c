"""Keep a collection in sync with a folder: `rag ingest --watch FOLDER`.

    sync = FolderSync(engine, runner, lambda: pipeline, CollectionKey("acme", "docs"), folder)
    sync.watch(stop_event, on_sync=print)   # a first sync, then every change, until stopped

A document's source is its file's path relative to the folder (as `rag ingest FOLDER`
names it, so a file already ingested that way is "unchanged"). New and changed files go
through an ingestion job (one per batch of changes, gathered for ``debounce_s``); the
documents of files deleted from the folder are deleted. Only documents this folder put
in the collection are ever deleted: each carries the metadata ``synced_from`` (the
folder's absolute path), and a JSONL file's documents (named by their ids) also
``synced_file`` (the file's source).

Changes are noticed with ``watchfiles`` (inotify, FSEvents…) or, with ``interval``, by
polling; either way each batch compares the folder's files (size and modification time)
with the previous scan, so a duplicated event changes nothing, and with ``watchfiles``
the folder is also scanned every ``RESCAN_S`` seconds, so a missed one is caught up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

from core import repository
from core.errors import PathNotFound
from core.types import CollectionKey, IngestOutcome
from ingest.jobs import JobRunner
from ingest.jsonl import JSONL_EXTENSIONS, JsonlFields
from ingest.pipeline import IngestPipeline, check_source_prefix, walk

log = logging.getLogger(__name__)

SYNCED_FROM = "synced_from"  # metadata: the watched folder a document came from
SYNCED_FILE = "synced_file"  # metadata: a JSONL document's file (its source is its id)

RESCAN_S = 5.0  # with watchfiles: the folder is scanned this often even with no event
Stamp = tuple[int, int]  # (size, mtime_ns)


@dataclass(frozen=True, slots=True)
class SyncReport:
    """One batch: the jobs that ingested the new and changed files, what became of each
    document, and the sources whose documents were deleted."""

    job_ids: tuple[str, ...]
    outcomes: tuple[IngestOutcome, ...]
    deleted: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not self.job_ids and not self.deleted

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)


class FolderSync:
    """Mirrors one folder into one collection (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        runner: JobRunner,
        pipeline_for: Callable[[], IngestPipeline],
        key: CollectionKey,
        folder: Path,
        *,
        source_prefix: str = "",
        jsonl: JsonlFields | None = None,
    ) -> None:
        if not folder.is_dir():
            raise PathNotFound(f"{folder}: not a folder (--watch needs one)")
        self._engine = engine
        self._runner = runner
        self._pipeline_for = pipeline_for
        self.key = key
        self.folder = folder.resolve()
        self._prefix = check_source_prefix(source_prefix)
        self._jsonl = jsonl
        self._seen: dict[str, tuple[Path, Stamp]] | None = None  # None: no sync yet

    def scan(self) -> dict[str, tuple[Path, Stamp]]:
        """Every file of the folder (hidden ones skipped) by source, with its stamp."""
        found: dict[str, tuple[Path, Stamp]] = {}
        for file, relative in walk(self.folder):
            try:
                st = file.stat()
            except FileNotFoundError:  # deleted while listed
                continue
            source = f"{self._prefix}/{relative}" if self._prefix else relative
            found[source] = (file, (st.st_size, st.st_mtime_ns))
        return found

    def sync(self, on_progress: Callable[[IngestOutcome], None] | None = None) -> SyncReport:
        """Bring the collection in line with the folder now: the first call looks at
        every file (the pipeline skips unchanged ones), later calls at those whose size
        or modification time changed since the previous call."""
        current = self.scan()
        seen = self._seen or {}
        changed = [
            (path, source)
            for source, (path, stamp) in current.items()
            if self._seen is None or seen.get(source, (path, None))[1] != stamp
        ]
        job_ids: list[str] = []
        outcomes: list[IngestOutcome] = []
        for files, meta in self._batches(changed):
            job_id = self._runner.create_file_job(self.key, files, jsonl=self._jsonl, metadata=meta)
            if not self._runner.run(job_id, on_progress=on_progress):
                self._runner.wait(self.key.tenant, job_id)  # a worker took it first
            job_ids.append(job_id)
            outcomes.extend(self._runner.report(self.key.tenant, job_id).outcomes)
        deleted = self._delete_missing(set(current))
        self._seen = current
        return SyncReport(tuple(job_ids), tuple(outcomes), tuple(deleted))

    def _batches(
        self, changed: list[tuple[Path, str]]
    ) -> Iterator[tuple[list[tuple[Path, str]], dict[str, str]]]:
        """One job for the plain files; one per JSONL file (its documents need to know
        their file, which their source does not say)."""
        mark = {SYNCED_FROM: str(self.folder)}
        plain = [(p, s) for p, s in changed if p.suffix.lower() not in JSONL_EXTENSIONS]
        if plain:
            yield plain, mark
        for path, source in changed:
            if path.suffix.lower() in JSONL_EXTENSIONS:
                yield [(path, source)], {**mark, SYNCED_FILE: source}

    def _delete_missing(self, present: set[str]) -> list[str]:
        """Delete the documents this folder put in the collection whose file is gone."""
        with repository.read(self._engine) as s:
            col = repository.find_collection(s, self.key)
            docs = [] if col is None else repository.list_documents(s, col.id)
            gone = [
                (d.id, d.source)
                for d in docs
                if (d.meta or {}).get(SYNCED_FROM) == str(self.folder)
                and (d.meta or {}).get(SYNCED_FILE, d.source) not in present
            ]
        pipeline = self._pipeline_for() if gone else None
        for doc_id, source in gone:
            assert pipeline is not None
            pipeline.delete_document(self.key, doc_id)
            log.info("watch %s: %s deleted (its file is gone)", self.folder, source)
        return [source for _id, source in gone]

    def watch(
        self,
        stop: threading.Event,
        on_sync: Callable[[SyncReport], None] | None = None,
        *,
        interval: float | None = None,
        debounce_s: float = 1.0,
        on_progress: Callable[[IngestOutcome], None] | None = None,
    ) -> None:
        """A first sync, then one per batch of changes until ``stop`` is set: noticed by
        ``watchfiles`` (changes gathered for ``debounce_s``), or by polling every
        ``interval`` seconds when given. ``on_sync`` hears of every batch that changed
        something (and of the first sync)."""
        first = self.sync(on_progress)
        if on_sync is not None:
            on_sync(first)
        for _ in self._changes(stop, interval, debounce_s):
            report = self.sync(on_progress)
            if on_sync is not None and not report.empty:
                on_sync(report)

    def _changes(
        self, stop: threading.Event, interval: float | None, debounce_s: float
    ) -> Iterator[None]:
        if interval is not None:
            while not stop.wait(interval):
                yield
            return
        import watchfiles

        # also every RESCAN_S with no event: a change made before the watcher started
        # (during the first sync) or an event the system dropped is still seen
        for _batch in watchfiles.watch(
            self.folder,
            stop_event=stop,
            debounce=int(debounce_s * 1000),
            rust_timeout=int(RESCAN_S * 1000),
            yield_on_timeout=True,
            raise_interrupt=True,
        ):
            yield
