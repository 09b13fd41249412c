"""The composition root: every stage built from one Settings, heavy parts late and once.

platform = Platform(Settings(data_dir=tmp_path))
platform.startup()                      # repair indexes against SQL, finish crashed ingests
report = platform.ingest.ingest_paths([Path("examples")], "default")
answer = platform.query.answer("What is RRF?", "default")
answer = platform.query.answer("…", CollectionKey("acme", "docs"))  # a tenant's
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sqlalchemy.engine import Engine

from core.db import make_engine
from core.settings import IngestSettings, Settings
from core.types import CollectionKey

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from api.auth import ApiKeyAuth
    from api.limits import RateLimiter
    from generation.checks.policy import CollectionPolicy
    from generation.checks.screen import Screen
    from generation.compose import AnswerComposer
    from generation.pipeline import QueryPipeline
    from generation.prompt import GroundedPromptBuilder
    from generation.queue import QueuedLLM, ThreadBoundEmbedder
    from ingest.embedding import SentenceTransformerEmbedder
    from ingest.jobs import JobRunner
    from ingest.pipeline import IngestPipeline
    from retrieval.retriever import HybridRetriever
    from retrieval.store import IndexStore


T = TypeVar("T")


class built_once(Generic[T]):  # noqa: N801 - used like functools.cached_property
    """A stage built on first use, once, under the platform's one re-entrant lock.

    ``functools.cached_property`` (Python 3.11) builds under a lock of each property's
    own: a thread building ``retriever`` (its lock, then the platform's) and one building
    ``query`` (the platform's lock, then ``retriever``'s) deadlocked every request thread
    on a cold server's first concurrent questions. One lock has no order to get wrong."""

    def __init__(self, build: Callable[[Any], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    def __get__(self, platform: Any, owner: type | None = None) -> T:
        if platform is None:
            return self  # type: ignore[return-value]  # the descriptor itself, on the class
        built: dict[str, Any] = platform.__dict__
        if self.name not in built:
            with platform._lock:
                if self.name not in built:
                    built[self.name] = self.build(platform)
        value: T = built[self.name]
        return value


class Platform:
    """Holds the engine and lazily built stages; safe to share between request threads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = make_engine(settings.db_url, echo=settings.db.echo)
        self._lock = threading.RLock()
        self._started = False
        self._background: ThreadPoolExecutor | None = None
        # set once warm_up has loaded both models (what /readyz reads; it loads nothing)
        self.models_loaded = threading.Event()

    # -- stages (built on first use) ---------------------------------------------------

    @built_once
    def auth(self) -> ApiKeyAuth:
        from api.auth import ApiKeyAuth

        with self._lock:
            return ApiKeyAuth(self.engine, self.settings.api)

    @built_once
    def embedder(self) -> SentenceTransformerEmbedder:
        from ingest.embedding import SentenceTransformerEmbedder

        with self._lock:
            return SentenceTransformerEmbedder(
                self.settings.ingest.embedding_model_path,
                device=self.settings.ingest.embedding_device,
                batch_size=self.settings.ingest.embed_batch_size,
            )

    @built_once
    def store(self) -> IndexStore:
        from retrieval.store import IndexStore

        with self._lock:
            return IndexStore(self.settings.index_dir, self.settings.retrieval, self.embedder.dim)

    @built_once
    def ingest(self) -> IngestPipeline:
        from ingest.pipeline import IngestPipeline

        with self._lock:
            return IngestPipeline(
                self.engine, self.embedder, self.store, self.settings.ingest, screen=self.screen
            )

    @built_once
    def jobs(self) -> JobRunner:
        """Ingestion jobs (uploads, `rag ingest`): made here, run by the worker thread that
        ``startup(run_jobs=True)`` starts (the service) or in process (the CLI)."""
        from ingest.jobs import JobRunner

        with self._lock:
            return JobRunner(
                self.engine,
                lambda: self.ingest,
                self.settings.data_dir / "spool",
                refused_keep_s=self.settings.ingest.refused_upload_keep_s,
            )

    def ingest_with(self, settings: IngestSettings) -> IngestPipeline:
        """A pipeline over the same engine, embedder and indexes with other chunking
        settings (an eval collection's own chunk size); ``settings`` itself: ``ingest``."""
        from ingest.pipeline import IngestPipeline

        if settings == self.settings.ingest:
            return self.ingest
        with self._lock:
            return IngestPipeline(
                self.engine, self.embedder, self.store, settings, screen=self.screen
            )

    @built_once
    def screen(self) -> Screen:
        """The content checks (injection, personal data, banned phrases/topics, length)."""
        from generation.checks.screen import Screen

        with self._lock:
            return Screen(
                self.embedder.embed, max_question_chars=self.settings.guards.max_question_chars
            )

    def policy_for(self, collection: CollectionKey) -> CollectionPolicy:
        """The collection's content-check policy (the defaults when it has none or does
        not exist)."""
        from core import repository
        from generation.checks.policy import CollectionPolicy

        with repository.read(self.engine) as s:
            row = repository.find_collection(s, collection)
            stored = row.policy if row is not None else None
        return CollectionPolicy.from_stored(stored)

    @built_once
    def retriever(self) -> HybridRetriever:
        from retrieval.retriever import HybridRetriever

        with self._lock:
            reranker = None
            if self.settings.retrieval.reranker_path:
                from retrieval.rerank import CrossEncoderReranker

                reranker = CrossEncoderReranker(self.settings.retrieval.reranker_path)
            return HybridRetriever(
                self.engine,
                self.store,
                self.query_embedder,
                self.settings.retrieval,
                reranker=reranker,
            )

    @built_once
    def llm(self) -> QueuedLLM:
        """The configured model behind the bounded generation queue: every generation
        runs on the ``limits.generation_workers`` threads (generation.queue)."""
        from api.metrics import LIMIT_REJECTIONS, watch_generation_queue
        from generation.factory import build_llm
        from generation.queue import GenerationQueue, QueuedLLM

        limits = self.settings.limits
        with self._lock:
            generation_queue = GenerationQueue(
                limits.generation_workers,
                limits.generation_queue,
                limits.queue_wait_s,
                limits.concurrent_generations,
                on_reject=lambda code: LIMIT_REJECTIONS.labels(code=code).inc(),
            )
            watch_generation_queue(generation_queue)
            llm = build_llm(self.settings.llm, self.settings.models_dir)
            return QueuedLLM(llm, generation_queue)

    @built_once
    def query_embedder(self) -> ThreadBoundEmbedder:
        """The embedding model for questions and answers, on a thread of its own
        (ingestion uses ``embedder`` directly)."""
        from generation.queue import ThreadBoundEmbedder

        with self._lock:
            return ThreadBoundEmbedder(self.embedder)

    @built_once
    def rate_limiter(self) -> RateLimiter:
        """Requests per minute per API key (api.limits)."""
        from api.limits import RateLimiter

        return RateLimiter(self.settings.limits.requests_per_minute)

    @built_once
    def prompt_builder(self) -> GroundedPromptBuilder:
        from generation.prompt import GroundedPromptBuilder

        with self._lock:
            llm = self.llm
            return GroundedPromptBuilder(
                self.settings.llm.prompt_style or llm.default_style,
                llm.count_tokens,
                llm.n_ctx,
                self.settings.llm.max_tokens,
                count_chat_tokens=llm.count_chat_tokens,
            )

    @built_once
    def query(self) -> QueryPipeline:
        from generation.pipeline import QueryPipeline, sampling_from_settings

        with self._lock:
            return QueryPipeline(
                self.retriever,
                self.llm,
                self.prompt_builder,
                self.query_embedder,
                self.settings.guards,
                sampling_from_settings(self.settings.llm),
                composer_for=self.composer_for,
                screen=self.screen,
                policy_for=self.policy_for,
            )

    def composer_for(self, collection: CollectionKey) -> AnswerComposer:
        """The collection's own answer models (``rag tune --abstention``), else the
        defaults fitted on ClapNQ-tune."""
        from core import repository
        from generation.compose import AnswerComposer

        with repository.read(self.engine) as s:
            stored = repository.collection_answer_models(s, collection)
        if not stored:
            return AnswerComposer.default()
        return AnswerComposer.from_json(stored)

    # -- background work -------------------------------------------------------------------

    def submit_background(self, fn: Callable[[], object]) -> Future[object]:
        """Run ``fn`` on the platform's background thread (eval runs started over REST),
        one at a time, after the request that started it has been answered."""
        with self._lock:
            if self._background is None:
                self._background = ThreadPoolExecutor(1, thread_name_prefix="rag-background")
            return self._background.submit(fn)

    def shutdown(self) -> None:
        """Stop the ingestion worker between files (its job resumes at the next start),
        wait for background work to finish, then release the database."""
        if "jobs" in self.__dict__:
            self.jobs.stop()
        with self._lock:
            background, self._background = self._background, None
        if background is not None:
            background.shutdown(wait=True)
        if "llm" in self.__dict__:
            self.llm.close()  # its workers finish what they run; a later call restarts them
        if "query_embedder" in self.__dict__:
            self.query_embedder.close()
        self.engine.dispose()  # closes pooled connections; the engine reconnects if used

    # -- lifecycle -----------------------------------------------------------------------

    def startup(self, *, run_jobs: bool = False) -> dict[str, int]:
        """Make the derived indexes agree with SQL, finish documents a crash left half
        written, then resume (or fail, with the reason) the jobs of processes that are
        gone; the log says what was found and repaired. ``run_jobs`` (the service) starts
        the ingestion worker, which runs the resumed jobs first."""
        with self._lock:
            if self._started:
                if run_jobs:
                    self.jobs.start()
                return {"repaired": 0, "recovered": 0, "jobs_resumed": 0, "jobs_failed": 0}
            reports = self.store.repair(self.engine)
            recovered = self.ingest.recover()
            jobs = self.jobs.repair_unfinished()
            self._started = True
            if run_jobs:
                self.jobs.start()
            repaired = sum(1 for r in reports if r.changed)
            resumed = sum(1 for j in jobs if j.action == "resumed")
            log.info(
                "restart: found %d unfinished job(s): %d resumed, %d failed; indexes "
                "repaired: %d of %d collection(s); %d document(s) left indexing completed",
                len(jobs), resumed, len(jobs) - resumed, repaired, len(reports), recovered,
            )  # fmt: skip
            return {
                "repaired": repaired,
                "recovered": recovered,
                "jobs_resumed": resumed,
                "jobs_failed": len(jobs) - resumed,
            }

    def warm_up(self) -> None:
        """Load the embedding model and the LLM now rather than on the first request."""
        self.embedder.warm_up()
        self.llm.warm_up()
        self.models_loaded.set()

    @property
    def started(self) -> bool:
        """Whether ``startup`` has made the indexes agree with SQL."""
        return self._started

    def workers(self) -> dict[str, bool]:
        """The background threads started so far, and whether each still runs: the
        ingestion jobs worker (``startup(run_jobs=True)``) and the eval-run thread."""
        out: dict[str, bool] = {}
        jobs = self.__dict__.get("jobs")
        if jobs is not None and jobs.started:
            out["ingest_jobs"] = jobs.alive
        # ThreadPoolExecutor does not say whether its thread lives
        with self._lock:
            background = self._background
        if background is not None:
            threads: set[threading.Thread] = getattr(background, "_threads", set())
            out["eval_runs"] = not threads or any(t.is_alive() for t in threads)
        return out
