"""What evaluation runs need from the composition root (``api.platform.Platform``).

Evals and benchmarks never build an engine, an embedder or an index store themselves:
the caller hands them the platform's stages, so an eval measures exactly what the REST
app and the CLI serve (same settings, same repaired indexes, same models).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from core.settings import IngestSettings, Settings
    from generation.pipeline import QueryPipeline
    from generation.ports import LLM
    from ingest.pipeline import IngestPipeline
    from ingest.ports import Embedder
    from retrieval.retriever import HybridRetriever
    from retrieval.store import IndexStore


class EvalStages(Protocol):
    """The platform's stages an evaluation uses; ``startup()`` has already run."""

    @property
    def settings(self) -> Settings: ...

    @property
    def engine(self) -> Engine: ...

    @property
    def embedder(self) -> Embedder: ...

    @property
    def retriever(self) -> HybridRetriever: ...

    @property
    def ingest(self) -> IngestPipeline: ...

    @property
    def llm(self) -> LLM: ...

    @property
    def query(self) -> QueryPipeline: ...

    @property
    def store(self) -> IndexStore: ...

    def ingest_with(self, settings: IngestSettings) -> IngestPipeline:
        """An ingestion pipeline over the same engine, embedder and indexes, chunking
        with ``settings`` (an eval collection's own chunk size)."""
        ...
