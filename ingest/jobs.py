"""Ingestion jobs: an upload or `rag ingest` recorded in SQL, file by file, and run by a
worker; jobs survive a restart and resume where they stopped.

    runner = JobRunner(engine, lambda: pipeline, data_dir / "spool")
    job_id = runner.create_path_job(CollectionKey("acme", "docs"), [Path("docs/")])
    runner.run(job_id)              # here and now (the CLI) — or:
    runner.start(); runner.submit(job_id)   # on the worker thread (the service)

A job is a row of ``ingestion_jobs`` (pending → running → done | failed | cancelled) with
one ``ingestion_job_files`` row per file (pending → running → done | failed | cancelled,
or "retried" once handed to a retry job). Uploads are spooled to
``<spool>/<job id>/<n>`` before the job is recorded; a file's spooled copy is removed once
it is ingested and kept while it may be retried.

Resume: a job is claimed by a worker with a compare-and-set on its owner
("host:pid:token"). At start-up (and while idle) the worker takes pending jobs and running
jobs whose owner is gone (its process ended, or another host stopped reporting): files
left "running" go back to "pending" and files already done are not redone (a document a
crash left half-written is completed by ``IngestPipeline.recover()`` first, so its file
is then "unchanged"). A shutdown stops between files and hands the job back as pending.
``repair_unfinished`` (``Platform.startup``) does this for every such job at start-up, or
fails the job with its reason when it cannot be resumed, and logs one line per job.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, cast

from sqlalchemy.engine import Engine

from core import repository
from core.db import IngestionJobFileRow, IngestionJobRow
from core.errors import InvalidRequest, JobRunning, NothingToRetry, RagError
from core.types import CollectionKey, IngestOutcome, IngestReport, IngestStatus, require_key
from ingest.jsonl import JsonlFields
from ingest.pipeline import (
    IngestPipeline,
    JobInput,
    check_source_prefix,
    outcome_dict,
    process_owner,
    upload_source,
    walk,
)

log = logging.getLogger(__name__)

TERMINAL = ("done", "failed", "cancelled")
FLUSH_S = 0.5  # file states and the heartbeat are written at most this often
IDLE_POLL_S = 2.0  # the worker looks for jobs made by other processes this often
STALE_S = 300.0  # another host's running job with no heartbeat for this long is resumed
_OUTCOMES_LIMIT = 10_000  # per-document outcomes kept for a file of many documents
_COPY_CHUNK = 1 << 20

# Runners alive in this process: a job owned by another runner of this process that is
# not here was left by a platform that stopped (tests, a reload), so it is resumed.
_LIVE_OWNERS: set[str] = set()


@dataclass(frozen=True, slots=True)
class Upload:
    """An uploaded file spooled to disk: its name as uploaded, where it is, its size."""

    name: str
    path: str  # relative to the spool folder
    size_bytes: int


class JobRunner:
    """Makes, runs, cancels and retries ingestion jobs; one worker thread at most.

    ``pipeline_for`` gives the pipeline (built late: the embedding model loads on first
    use). Thread-safe; jobs of all tenants share the worker, one at a time (ingestion is
    CPU bound).
    """

    def __init__(
        self,
        engine: Engine,
        pipeline_for: Callable[[], IngestPipeline],
        spool_dir: Path,
        *,
        idle_poll_s: float = IDLE_POLL_S,
        refused_keep_s: float = 300.0,
    ) -> None:
        self._engine = engine
        self._refused_keep_s = refused_keep_s
        self._pipeline_for = pipeline_for
        self.spool_dir = spool_dir
        self._idle_poll_s = idle_poll_s
        self.owner = process_owner(uuid.uuid4().hex[:12])
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._changed = threading.Condition()
        _LIVE_OWNERS.add(self.owner)

    # -- making jobs -------------------------------------------------------------------

    def spool(self, job_id: str, n: int, stream: IO[bytes], limit: int) -> Upload:
        """Copy an upload's stream to ``<spool>/<job_id>/<n>``, at most ``limit`` bytes
        (the caller passes one past its size limit, so an oversize file is refused by the
        loader without being held whole)."""
        folder = self.spool_dir / job_id
        folder.mkdir(parents=True, exist_ok=True)
        relative = f"{job_id}/{n}"
        size = 0
        with open(self.spool_dir / relative, "wb") as out:
            while size < limit:
                block = stream.read(min(_COPY_CHUNK, limit - size))
                if not block:
                    break
                out.write(block)
                size += len(block)
            out.flush()
            os.fsync(out.fileno())  # the 202 promises the bytes survive a crash
        return Upload("", relative, size)

    def create_upload_job(
        self,
        key: CollectionKey,
        job_id: str,
        uploads: Sequence[Upload],
        *,
        metadata: dict[str, Any] | None = None,
        drop_if_refused: bool = False,
    ) -> str:
        """Record a pending job over spooled uploads (``spool`` with the same ``job_id``).
        A file whose name is unusable is recorded failed at once. ``drop_if_refused``: when
        the job ends with nothing ingested, the collection goes (with the job's record)
        ``refused_keep_s`` later if the job created it and it is still unused (no document,
        no job pending): ``drop_refused``, which the worker runs while idle."""
        files: list[dict[str, Any]] = []
        for u in uploads:
            row: dict[str, Any] = {"source": u.name, "path": u.path, "size_bytes": u.size_bytes}
            try:
                row["source"] = upload_source(u.name)
            except InvalidRequest as e:
                row.update(
                    source=ascii(u.name)[1:-1][:60] or "upload",
                    status="failed",
                    outcome="failed",
                    error=e.message,
                    error_code=e.code,
                )
            files.append(row)
        options: dict[str, Any] = {"metadata": metadata or {}}
        if drop_if_refused:
            options["drop_if_refused"] = True
        return self._add(key, "upload", options, files, job_id=job_id)

    def create_path_job(
        self,
        key: CollectionKey,
        paths: Sequence[Path],
        *,
        source_prefix: str = "",
        jsonl: JsonlFields | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record a pending job over files and folders (each folder listed now, as
        ``IngestPipeline.ingest_paths`` walks it: sorted, hidden files skipped)."""
        prefix = check_source_prefix(source_prefix)
        found: list[tuple[Path, str]] = []
        for given in paths:
            path = Path(given)
            if not path.exists():
                found.append((path, str(given)))
                continue
            for file, relative in walk(path):
                found.append((file, f"{prefix}/{relative}" if prefix else relative))
        return self.create_file_job(key, found, jsonl=jsonl, metadata=metadata)

    def create_file_job(
        self,
        key: CollectionKey,
        files: Sequence[tuple[Path, str]],
        *,
        jsonl: JsonlFields | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Record a pending job over (file, source) pairs named by the caller (a folder
        watch: each changed file under its path relative to the folder)."""
        rows: list[dict[str, Any]] = []
        for file, source in files:
            row: dict[str, Any] = {"source": source, "path": str(file.absolute())}
            if file.is_file():
                row["size_bytes"] = file.stat().st_size
            rows.append(row)
        fields = jsonl or JsonlFields()
        options = {
            "metadata": metadata or {},
            "jsonl": {
                "id_field": fields.id_field,
                "text_field": fields.text_field,
                "title_field": fields.title_field,
            },
        }
        return self._add(key, "paths", options, rows)

    def _add(
        self,
        key: CollectionKey,
        kind: str,
        options: dict[str, Any],
        files: list[dict[str, Any]],
        *,
        job_id: str | None = None,
    ) -> str:
        require_key(key)
        with repository.write(self._engine) as s:
            collection_id = repository.get_or_create_collection(s, key).id
            job_id = repository.add_job(
                s, collection_id, kind=kind, options=options, files=files, job_id=job_id
            )
            repository.update_job(s, job_id, **_counts(repository.job_file_totals(s, job_id)))
        return job_id

    def retry(self, tenant: str, job_id: str) -> str:
        """A new job over the failed and cancelled files of an ended job (their spooled
        copies are reused); those files of the old job become "retried". Raises
        ``JobRunning`` while the job runs and ``NothingToRetry`` when none is left."""
        with repository.write(self._engine) as s:
            job, _col = repository.get_job(s, tenant, job_id)
            if job.status not in TERMINAL:
                raise JobRunning(
                    f"ingestion job '{job_id}' is {job.status}: retry it once it has ended "
                    "(or cancel it)"
                )
            todo = repository.job_files(s, job.id, ["failed", "cancelled"])
            if not todo:
                raise NothingToRetry(f"ingestion job '{job_id}' has no failed or cancelled file")
            files = [{"source": f.source, "path": f.path, "size_bytes": f.size_bytes} for f in todo]
            new = repository.add_job(
                s,
                job.collection_id,
                kind=job.kind,
                options=dict(job.options or {}),
                files=files,
                retry_of=job.id,
            )
            repository.update_job(s, new, **_counts(repository.job_file_totals(s, new)))
            repository.update_job_files(s, [{"id": f.id, "status": "retried"} for f in todo])
            repository.update_job(s, job.id, retried_by=new)
        self.submit(new)
        return new

    def cancel(self, tenant: str, job_id: str) -> None:
        """Ask a job to stop: a pending one ends at once, a running one after the files it
        has read (its remaining files become "cancelled"). An ended job is left as is."""
        with repository.write(self._engine) as s:
            job, _col = repository.get_job(s, tenant, job_id)
            if job.status in TERMINAL:
                return
            repository.update_job(s, job.id, cancel_requested=True)
            unowned = job.owner is None
        if unowned:  # nobody runs it: close it here
            self.run(job_id)
        self._notify()

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker thread: it resumes unfinished jobs, then runs new ones."""
        if self._thread is not None:
            return
        self._stop.clear()
        _LIVE_OWNERS.add(self.owner)
        self.sweep_spool()
        self._thread = threading.Thread(target=self._work, name="rag-ingest-jobs", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """Whether the worker thread was started and still runs."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    @property
    def started(self) -> bool:
        """Whether ``start`` was called (and ``stop`` not since)."""
        return self._thread is not None

    def repair_unfinished(self) -> list[Repair]:
        """At start-up: every job a process that is gone left pending or running is
        handed back to the worker (pending, no owner: its files not done are redone, those
        done are not) or, when it cannot be resumed, failed with the reason: its
        collection was deleted, its spooled uploads are missing, or it was a synchronous
        pipeline call (no file list to resume from). One log line per job."""
        with repository.read(self._engine) as s:
            found = [
                (j.id, j.owner)
                for j in repository.active_jobs(s, sync=True)
                # a synchronous call never beats: on another host, its start is its age
                if self._gone(j.owner, j.heartbeat_at if j.kind != "sync" else j.started_at)
            ]
        repairs = [r for job_id, owner in found if (r := self._repair(job_id, owner))]
        for r in repairs:
            log.info("restart: %s", r.line())
        return repairs

    def _repair(self, job_id: str, owner: str | None) -> Repair | None:
        with repository.write(self._engine) as s:
            job = repository.job_by_id(s, job_id)
            if job is None or job.status not in repository.JOB_ACTIVE or job.owner != owner:
                return None  # ended or taken meanwhile
            files = repository.job_files(s, job_id)
            left = [f for f in files if f.status in ("pending", "running")]
            was = job.status
            if repository.collection_by_id(s, job.collection_id) is None:
                reason = "its collection was deleted"
            elif job.kind == "sync":
                reason = (
                    "interrupted: a synchronous ingest has no file list to resume from "
                    "(ingest again: unchanged files are skipped)"
                )
            else:
                reason = ""
            missing = [
                f for f in left if job.kind == "upload" and not (self.spool_dir / f.path).is_file()
            ]
            if not reason and missing:
                repository.update_job_files(
                    s,
                    [
                        {"id": f.id, "status": "failed", "outcome": "failed",
                         "error": f"{f.source}: the spooled upload is missing",
                         "error_code": "spool_missing"}
                        for f in missing
                    ],
                )  # fmt: skip
                if len(missing) == len(left):
                    reason = "spool missing"
            counts = _counts(repository.job_file_totals(s, job_id)) if files else {}
            if reason:
                repository.set_job_files_status(s, job_id, ["pending", "running"], "failed")
                repository.update_job(
                    s, job_id, status="failed", owner=None, finished_at=repository.utcnow(),
                    error=reason, **counts,
                )  # fmt: skip
                return Repair(job_id, was, "failed", len(left), len(files), reason)
            repository.set_job_files_status(s, job_id, ["running"], "pending")
            repository.update_job(s, job_id, status="pending", owner=None, **counts)
            n_left = len(left) - len(missing)
            return Repair(job_id, was, "resumed", n_left, len(files), "")

    def sweep_spool(self) -> int:
        """Remove the spooled uploads of jobs that no longer exist (their collection was
        deleted); returns how many folders went."""
        if not self.spool_dir.is_dir():
            return 0
        folders = [p for p in self.spool_dir.iterdir() if p.is_dir()]
        with repository.read(self._engine) as s:
            gone = [p for p in folders if repository.job_by_id(s, p.name) is None]
        for folder in gone:
            shutil.rmtree(folder, ignore_errors=True)
        return len(gone)

    def submit(self, job_id: str) -> None:
        """Tell the worker a job is waiting (it also finds it by itself within a poll)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop the worker between files; its job goes back to pending (resumed later)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        _LIVE_OWNERS.discard(self.owner)

    def _work(self) -> None:
        while not self._stop.is_set():
            try:
                for job_id, previous in self.runnable():
                    if self._stop.is_set():
                        break
                    self.run(job_id, previous_owner=previous)
                self.drop_refused()
            except Exception:  # a database hiccup: try again after the poll
                log.exception("the ingestion worker failed; retrying")
            self._wake.wait(self._idle_poll_s)
            self._wake.clear()

    def runnable(self) -> list[tuple[str, str | None]]:
        """(job id, its current owner) of each job this runner may take, oldest first."""
        with repository.read(self._engine) as s:
            jobs = [(j.id, j.owner, j.heartbeat_at) for j in repository.active_jobs(s)]
        return [(jid, owner) for jid, owner, beat in jobs if self._gone(owner, beat)]

    def _gone(self, owner: str | None, heartbeat: datetime | None) -> bool:
        if owner is None:
            return True
        host, pid, _token = (owner.rsplit(":", 2) + ["", "", ""])[:3]
        if host != socket.gethostname() or not pid.isdigit():
            if heartbeat is None:
                return True
            beat = heartbeat if heartbeat.tzinfo else heartbeat.replace(tzinfo=UTC)
            return (repository.utcnow() - beat).total_seconds() > STALE_S
        if int(pid) == os.getpid():  # a synchronous call of this process is still running
            return owner not in _LIVE_OWNERS and _token != "sync"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def run(
        self,
        job_id: str,
        *,
        previous_owner: str | None = None,
        on_progress: Callable[[IngestOutcome], None] | None = None,
    ) -> bool:
        """Run a job here, now, if it can be claimed (pending and unowned, or owned by
        ``previous_owner``); returns whether it was. The job ends done, failed or
        cancelled — or back to pending when this runner is stopped."""
        with repository.write(self._engine) as s:
            if not repository.claim_job(s, job_id, self.owner, previous_owner=previous_owner):
                return False
            repository.set_job_files_status(s, job_id, ["running"], "pending")
            job = repository.job_by_id(s, job_id)
            assert job is not None
            col = repository.collection_by_id(s, job.collection_id)
            key = None if col is None else CollectionKey(col.tenant, col.name)
            cancel = job.cancel_requested
            options = dict(job.options or {})
            kind = job.kind
            todo = [
                JobInput(
                    f.id,
                    self._file_path(kind, f),
                    f.source,
                    kind == "upload",
                )
                for f in repository.job_files(s, job_id, ["pending"])
            ]
        if key is None:  # the collection was deleted meanwhile (its jobs with it)
            return True
        tracker = _Tracker(self, job_id, {f.key: f.path for f in todo if f.upload}, on_progress)
        if cancel or not todo:
            self._close(job_id, tracker, failed=None)
            return True
        log.info("ingestion job %s: %d file(s) to ingest into %s", job_id, len(todo), key)
        jsonl = options.get("jsonl")
        try:
            self._pipeline_for().ingest_job(
                key,
                job_id,
                todo,
                tracker,
                metadata=options.get("metadata") or None,
                jsonl=JsonlFields(**jsonl) if jsonl else None,
            )
        except KeyboardInterrupt:  # Ctrl-C in the CLI: a cancel (`rag jobs retry` resumes)
            with repository.write(self._engine) as s:
                repository.update_job(s, job_id, cancel_requested=True)
            self._close(job_id, tracker, failed=None)
            raise
        except BaseException as e:
            self._close(job_id, tracker, failed=e)
            if not isinstance(e, Exception):
                raise
            return True
        self._close(job_id, tracker, failed=None)
        return True

    def _file_path(self, kind: str, f: IngestionJobFileRow) -> Path:
        return self.spool_dir / f.path if kind == "upload" else Path(f.path)

    def _close(self, job_id: str, tracker: _Tracker, failed: BaseException | None) -> None:
        """Write what is left, then end the job (or hand it back when stopping)."""
        tracker.flush(force=True)
        with repository.write(self._engine) as s:
            cancel = repository.job_cancel_requested(s, job_id)
            if failed is not None:
                error = failed.message if isinstance(failed, RagError) else repr(failed)
                code = failed.code if isinstance(failed, RagError) else "internal_error"
                changes = [
                    {"id": f.id, "status": "failed", "outcome": "failed", "error": error,
                     "error_code": code}
                    for f in repository.job_files(s, job_id, ["pending", "running"])
                ]  # fmt: skip
                repository.update_job_files(s, changes)
                status, extra = "failed", {"error": error[:2000]}
            elif cancel:
                repository.set_job_files_status(s, job_id, ["pending", "running"], "cancelled")
                status, extra = "cancelled", {}
            elif repository.job_files(s, job_id, ["pending", "running"]):
                # stopped between files (a shutdown): another start resumes it
                repository.set_job_files_status(s, job_id, ["running"], "pending")
                repository.update_job(s, job_id, status="pending", owner=None)
                status, extra = "", {}
            else:
                status, extra = "done", {}
            counts = _counts(repository.job_file_totals(s, job_id))
            if status:
                repository.update_job(
                    s, job_id, status=status, finished_at=repository.utcnow(), **counts, **extra
                )
            else:
                repository.update_job(s, job_id, **counts)
        folder = self.spool_dir / job_id
        if status and folder.is_dir() and not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)  # every spooled copy ingested
        self._notify()

    def drop_refused(self) -> int:
        """Remove the collections that upload jobs asked for (``drop_if_refused``) and that
        are still unused ``refused_keep_s`` after the job ingested nothing into them;
        returns how many went. A collection in use by then is kept (and not asked again)."""
        before = repository.utcnow() - timedelta(seconds=self._refused_keep_s)
        with repository.read(self._engine) as s:
            jobs = repository.ended_empty_jobs(s, "upload", before)
            flagged = [j.id for j in jobs if (j.options or {}).get("drop_if_refused")]
        asked = []
        for job_id in flagged:
            with repository.write(self._engine) as s:
                job = repository.job_by_id(s, job_id)
                options = dict(job.options or {}) if job is not None else {}
                if job is None or not options.pop("drop_if_refused", False):
                    continue  # gone, or asked by another worker meanwhile
                repository.update_job(s, job_id, options=options)  # asked once
                col = repository.collection_by_id(s, job.collection_id)
                if col is not None:
                    asked.append((job_id, CollectionKey(col.tenant, col.name)))
        return sum(1 for job_id, key in asked if self._drop_collection(job_id, key))

    def _drop_collection(self, job_id: str, key: CollectionKey) -> bool:
        if self._pipeline_for().drop_if_unused(key):
            log.info(
                "ingestion job %s ingested nothing: its new collection %s removed", job_id, key
            )
            return True
        return False

    # -- watching ----------------------------------------------------------------------------

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def wait_changed(self, timeout: float) -> None:
        """Sleep until a job of this process changed or ``timeout`` passed."""
        with self._changed:
            self._changed.wait(timeout)

    def wait(self, tenant: str, job_id: str, timeout: float | None = None) -> IngestionJobRow:
        """Block until the job has ended (any process may be running it); returns its row."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with repository.read(self._engine) as s:
                job, _col = repository.get_job(s, tenant, job_id)
                if job.status in TERMINAL:
                    return job
            if deadline is not None and time.monotonic() > deadline:
                return job
            self.wait_changed(0.25)

    def report(self, tenant: str, job_id: str) -> IngestReport:
        """The job's outcomes, one per document, as a synchronous ingest reports them."""
        with repository.read(self._engine) as s:
            _job, col = repository.get_job(s, tenant, job_id)
            files = repository.job_files(s, job_id)
            return IngestReport(col.name, job_id, tuple(_file_outcomes(files)))


@dataclass(frozen=True, slots=True)
class Repair:
    """What the restart did with an unfinished job: resumed (``left`` of ``files`` to
    ingest) or failed (``reason``)."""

    job_id: str
    was: str  # pending | running
    action: str  # resumed | failed
    left: int
    files: int
    reason: str

    def line(self) -> str:
        if self.action == "failed":
            return f"job {self.job_id} ({self.was}) failed: {self.reason}"
        return f"job {self.job_id} ({self.was}) resumed ({self.left} of {self.files} files left)"


# -- one run's bookkeeping ---------------------------------------------------------------------


class _Tracker:
    """``JobTracker`` of one run: file states buffered, written every ``FLUSH_S``."""

    def __init__(
        self,
        runner: JobRunner,
        job_id: str,
        spooled: dict[str, Path],
        on_progress: Callable[[IngestOutcome], None] | None,
    ) -> None:
        self._runner = runner
        self._job_id = job_id
        self._spooled = spooled  # file id -> its spooled copy (uploads)
        self._ingested: list[Path] = []
        self._on_progress = on_progress
        self._changes: dict[str, dict[str, Any]] = {}
        self._counts: dict[str, int] = {}
        self._outcomes: dict[str, list[IngestOutcome]] = {}
        self._t0: dict[str, float] = {}
        self._last_flush = 0.0  # the first file's start is written at once
        self._last_cancel_check = 0.0
        self._cancel = False

    def started(self, key: str) -> None:
        self._t0[key] = time.perf_counter()
        self._changes[key] = {"id": key, "status": "running", "started_at": repository.utcnow()}
        self.flush()

    def read(self, key: str, n_inputs: int) -> None:
        self._counts[key] = n_inputs
        self._finish_if_done(key)

    def outcome(self, key: str, outcome: IngestOutcome) -> None:
        self._outcomes.setdefault(key, []).append(outcome)
        if self._on_progress is not None:
            self._on_progress(outcome)
        self._finish_if_done(key)

    def writing(self) -> None:
        self.flush(force=True)

    def stopping(self) -> bool:
        if self._runner._stop.is_set():
            return True
        now = time.monotonic()
        if not self._cancel and now - self._last_cancel_check >= FLUSH_S:
            self._last_cancel_check = now
            with repository.read(self._runner._engine) as s:
                self._cancel = repository.job_cancel_requested(s, self._job_id)
        return self._cancel

    def _finish_if_done(self, key: str) -> None:
        n = self._counts.get(key)
        outcomes = self._outcomes.get(key, [])
        if n is None or len(outcomes) < n:
            return
        change = self._changes.setdefault(key, {"id": key})
        change.update(_file_result(outcomes))
        if change["status"] == "done" and key in self._spooled:
            self._ingested.append(self._spooled[key])
        change["finished_at"] = repository.utcnow()
        change["seconds"] = round(time.perf_counter() - self._t0.get(key, time.perf_counter()), 4)
        self._outcomes.pop(key, None)
        self.flush()

    def flush(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_flush < FLUSH_S:
            return
        self._last_flush = now
        changes = list(self._changes.values())
        self._changes.clear()
        with repository.write(self._runner._engine) as s:
            repository.update_job_files(s, changes)
            counts = _counts(repository.job_file_totals(s, self._job_id))
            repository.update_job(s, self._job_id, heartbeat_at=repository.utcnow(), **counts)
        ingested, self._ingested = self._ingested, []
        for path in ingested:  # recorded done: the spooled copy is not needed any more
            path.unlink(missing_ok=True)
        self._runner._notify()


# -- helpers ----------------------------------------------------------------------------------


def _file_result(outcomes: list[IngestOutcome]) -> dict[str, Any]:
    """A file's row from its documents' outcomes."""
    failed = [o for o in outcomes if o.status == "failed"]
    result: dict[str, Any] = {
        "n_documents": len(outcomes),
        "n_chunks": sum(o.chunks for o in outcomes),
        "status": "failed" if failed and len(failed) == len(outcomes) else "done",
    }
    if not outcomes:
        result.update(status="failed", outcome="failed", error="the file holds no document",
                      error_code="empty_document")  # fmt: skip
        return result
    if len(outcomes) == 1:
        o = outcomes[0]
        result.update(outcome=o.status, document_id=o.document_id, error=o.error,
                      error_code=o.error_code)  # fmt: skip
        return result
    kinds = {o.status for o in outcomes}
    result["outcome"] = kinds.pop() if len(kinds) == 1 else "mixed"
    if failed:
        result["error"] = f"{len(failed)} of {len(outcomes)} documents failed: {failed[0].error}"
        result["error_code"] = failed[0].error_code
    result["outcomes"] = [
        {k: v for k, v in outcome_dict(o).items() if v is not None}
        for o in outcomes[:_OUTCOMES_LIMIT]
    ]
    return result


def _file_outcomes(files: Sequence[IngestionJobFileRow]) -> Iterator[IngestOutcome]:
    for f in files:
        if f.outcomes:
            for o in f.outcomes:
                yield _outcome(o["source"], o["status"], o.get("document_id"), o.get("chunks", 0),
                               o.get("error"), o.get("error_code"))  # fmt: skip
        elif f.outcome in _OUTCOMES:
            yield _outcome(f.source, f.outcome, f.document_id, f.n_chunks, f.error, f.error_code)
        elif f.status in ("failed", "cancelled"):
            yield _outcome(f.source, "failed", None, 0, f.error or f"{f.source}: {f.status}",
                           f.error_code or f.status)  # fmt: skip


_OUTCOMES = ("ingested", "unchanged", "replaced", "failed")


def _outcome(
    source: str,
    status: str | None,
    document_id: str | None,
    chunks: int,
    error: str | None,
    error_code: str | None,
) -> IngestOutcome:
    kind = cast(IngestStatus, status if status in _OUTCOMES else "failed")
    return IngestOutcome(source, kind, document_id, chunks, error, error_code)


def _counts(totals: dict[str, dict[str, int]]) -> dict[str, int]:
    """The job row's counters, per file, from ``repository.job_file_totals``."""
    by_status, by_outcome = totals["status"], totals["outcome"]
    return {
        "n_inputs": sum(by_status.values()),
        "n_ingested": by_outcome.get("ingested", 0),
        "n_unchanged": by_outcome.get("unchanged", 0),
        "n_replaced": by_outcome.get("replaced", 0),
        "n_failed": by_status.get("failed", 0),
        "n_chunks": totals["chunks"]["chunks"],
    }
