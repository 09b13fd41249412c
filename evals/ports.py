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
    from ingest.pipeline import IngestPipeline
    from ingest.ports import Embedder
    from retrieval.retriever import HybridRetriever


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

    def ingest_with(self, settings: IngestSettings) -> IngestPipeline:
        """An ingestion pipeline over the same engine, embedder and indexes, chunking
        with ``settings`` (an eval collection's own chunk size)."""
        ...
