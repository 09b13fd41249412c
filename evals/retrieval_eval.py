"""Retrieval evaluation on a labelled data set: BM25, dense and hybrid side by side.

The data set's corpus is ingested once, through the real ingestion pipeline, into a
collection named ``eval-<dataset>`` (each corpus entry one document whose ``source``
is the corpus doc id); later runs reuse it. Every query then goes through the
retriever's batch path once per method. Scoring is at document level: a document
ranks where its best chunk ranks.

    platform = Platform(Settings())  # the composition root (api/); evals get its stages
    platform.startup()
    result = evaluate_retrieval(platform, "scifact", "test")
    render_table(result, Console())
    print(json.dumps(result.to_json()))
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy.engine import Engine

from core import repository
from core.errors import InvalidRequest
from core.settings import FusionMode, IngestSettings, RetrievalSettings, Settings
from core.types import CollectionKey, IngestReport
from evals.datasets import RetrievalDataset, dataset_spec, load_dataset, resolve_split
from evals.metrics import evaluate_run

if TYPE_CHECKING:
    from rich.console import Console

    from evals.ports import EvalStages
    from ingest.pipeline import IngestPipeline
    from retrieval.fusion import FusionConfig
    from retrieval.retriever import HybridRetriever, Method

Hits = list[tuple[str, float]]
Progress = Callable[[str], None]
# (documents ingested so far, documents to ingest): called after each one while a data
# set's collection is built
IngestProgress = Callable[[int, int], None]

# Columns of the table and keys of each method in the JSON, in order.
TABLE_METRICS: tuple[str, ...] = ("ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10")
METHODS: tuple[str, ...] = ("bm25", "dense", "hybrid-rrf", "hybrid-weighted", "hybrid")


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One row of the table: a retriever mode and, for hybrid, its fusion parameters."""

    name: str
    method: Method  # "bm25" | "dense" | "hybrid"
    fusion: FusionConfig | None = None

    @property
    def label(self) -> str:
        if self.fusion is None:
            return self.method
        return describe_fusion(self.fusion)


@dataclass(frozen=True, slots=True)
class MethodResult:
    name: str
    label: str  # e.g. "rrf k=60"
    metrics: dict[str, float]
    qps: float
    seconds: float

    def to_json(self) -> dict[str, Any]:
        return {
            **{m: round(v, 4) for m, v in self.metrics.items()},
            "qps": round(self.qps, 1),
            "fusion": self.label,
        }


@dataclass(frozen=True)
class RetrievalEvalResult:
    """All methods' metrics on one split; ``to_json()`` is the CLI's ``--json`` object."""

    dataset: str
    split: str
    collection: str
    n_queries: int
    n_documents: int
    n_chunks: int
    methods: dict[str, MethodResult]
    build_seconds: float = 0.0  # time spent ingesting the collection in this run
    metrics: tuple[str, ...] = TABLE_METRICS
    notes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "split": self.split,
            "collection": self.collection,
            "n_queries": self.n_queries,
            "n_documents": self.n_documents,
            "n_chunks": self.n_chunks,
            "methods": {name: r.to_json() for name, r in self.methods.items()},
            **self.notes,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)


# -- fusion parameters ------------------------------------------------------------------


def describe_fusion(cfg: FusionConfig) -> str:
    mode = FusionMode(cfg.mode)
    return f"rrf k={cfg.rrf_k}" if mode is FusionMode.RRF else f"weighted alpha={cfg.alpha:g}"


def settings_fusion(rs: RetrievalSettings, mode: FusionMode | None = None) -> FusionConfig:
    """Fusion parameters from settings, optionally forcing the mode."""
    from retrieval.fusion import FusionConfig

    return FusionConfig(mode=mode or rs.fusion, rrf_k=rs.rrf_k, alpha=rs.alpha)


def default_methods(rs: RetrievalSettings, default: FusionConfig) -> list[MethodSpec]:
    """bm25, dense, hybrid in each fusion mode (settings' k / alpha), and the default."""
    return [
        MethodSpec("bm25", "bm25"),
        MethodSpec("dense", "dense"),
        MethodSpec("hybrid-rrf", "hybrid", settings_fusion(rs, FusionMode.RRF)),
        MethodSpec("hybrid-weighted", "hybrid", settings_fusion(rs, FusionMode.WEIGHTED)),
        MethodSpec("hybrid", "hybrid", default),
    ]


# -- the eval collection ----------------------------------------------------------------


def eval_ingest_settings(settings: Settings, dataset: str) -> IngestSettings:
    """Ingest settings for a data set's eval collection (its chunk size, if it has one)."""
    spec = dataset_spec(dataset)
    if spec.chunk_tokens is None:
        return settings.ingest
    return settings.ingest.model_copy(update={"chunk_size_tokens": spec.chunk_tokens})


def eval_collection_name(dataset: str) -> str:
    return f"eval-{dataset}"


def document_text(title: str, text: str) -> str:
    """What is indexed for a corpus entry: the title as the first line, then the text."""
    title, text = title.strip(), text.strip()
    return f"{title}\n\n{text}" if title else text


@dataclass(frozen=True, slots=True)
class CollectionState:
    collection_id: str | None
    ready_sources: int
    other_documents: int  # not ready, or a source that is not a corpus doc id
    n_chunks: int


def collection_state(
    engine: Engine, name: CollectionKey, doc_ids: Sequence[str], recipe: str | None = None
) -> CollectionState:
    """How much of ``doc_ids`` the collection holds ready (made with ``recipe``, if given:
    chunks of other settings or another embedding model count as missing)."""
    wanted = set(doc_ids)
    with repository.read(engine) as s:
        col = repository.find_collection(s, name)
        if col is None:
            return CollectionState(None, 0, 0, 0)
        cid = col.id
        rows = repository.document_sources(s, cid)
        n_chunks = repository.count_chunks(s, cid)
    ready = sum(
        1
        for src, st, made in rows
        if st == "ready" and src in wanted and (recipe is None or made == recipe)
    )
    return CollectionState(cid, ready, len(rows) - ready, n_chunks)


def ensure_collection(
    engine: Engine,
    pipeline: IngestPipeline,
    ds: RetrievalDataset,
    name: CollectionKey,
    progress: Progress | None = None,
    on_ingested: IngestProgress | None = None,
) -> tuple[str, bool]:
    """Ingest the data set's corpus into ``name`` unless it already holds all of it,
    chunked and embedded as ``pipeline`` would (else the stale documents are re-indexed).

    Returns (collection id, whether anything was ingested). Re-ingesting is
    idempotent: unchanged documents are skipped by the pipeline. ``on_ingested`` hears
    of each document ingested (done, total).
    """
    docs = {d: tx for d, tx in ds.corpus.items() if tx[0].strip() or tx[1].strip()}
    recipe = pipeline.recipe  # stale chunk settings or model: re-index
    state = collection_state(engine, name, list(docs), recipe)
    if state.collection_id is not None and state.ready_sources == len(docs):
        return state.collection_id, False
    if progress:
        progress(f"ingesting {len(docs)} documents of {ds.name} into '{name}'")
    report = ingest_corpus(pipeline, docs, name, on_ingested)
    state = collection_state(engine, name, list(docs), recipe)
    if state.collection_id is None or state.ready_sources != len(docs):
        failed = report.failed
        why = f" (e.g. {failed[0].source}: {failed[0].error})" if failed else ""
        raise InvalidRequest(
            f"collection '{name}' holds {state.ready_sources} of the {len(docs)} "
            f"documents of {ds.name} after ingesting{why}"
        )
    return state.collection_id, True


def ingest_corpus(
    pipeline: IngestPipeline,
    corpus: Mapping[str, tuple[str, str]],
    name: CollectionKey,
    on_ingested: IngestProgress | None = None,
) -> IngestReport:
    """Send corpus entries through the pipeline's JSONL path (source = doc id)."""
    from ingest.jsonl import JsonlFields

    done = 0

    def on_progress(_outcome: Any) -> None:
        nonlocal done
        done += 1
        if on_ingested is not None:
            on_ingested(done, len(corpus))

    with tempfile.TemporaryDirectory(prefix="rag-eval-") as tmp:
        path = Path(tmp) / "corpus.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for doc_id, (title, text) in corpus.items():
                f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
        fields = JsonlFields(id_field="_id", text_field="text", title_field="title")
        return pipeline.ingest_paths([path], name, jsonl=fields, on_progress=on_progress)


def chunk_sources(engine: Engine, collection_id: str) -> dict[str, str]:
    """chunk id -> its document's source (the corpus doc id) for a collection."""
    with repository.read(engine) as s:
        return repository.chunk_sources(s, collection_id)


# -- scoring -----------------------------------------------------------------------------


def hit_id(hit: Any) -> str:
    """The chunk id of a hit: a ``FusedHit`` or an ``(id, score)`` pair."""
    return hit.id if hasattr(hit, "id") else hit[0]


def doc_ranking(
    hits: Sequence[Any], chunk_to_doc: Mapping[str, str], limit: int = 1000
) -> list[str]:
    """Chunk hits (best first) -> distinct document ids, each at its best chunk's rank."""
    seen: set[str] = set()
    out: list[str] = []
    for hit in hits:
        doc = chunk_to_doc.get(hit_id(hit))
        if doc is None or doc in seen:
            continue
        seen.add(doc)
        out.append(doc)
        if len(out) >= limit:
            break
    return out


def run_method(
    retriever: HybridRetriever,
    collection_id: str,
    query_texts: Sequence[str],
    spec: MethodSpec,
    chunk_k: int,
    vectors: np.ndarray | None = None,
) -> tuple[list[Any], float]:
    """All queries through one method in one batch call; returns hits and seconds.

    ``vectors`` (the queries' embeddings) skips embedding inside the call.
    """
    t0 = time.perf_counter()
    hits = retriever.search_ids(
        collection_id,
        list(query_texts),
        method=spec.method,
        k=chunk_k,
        fusion=spec.fusion,
        vectors=vectors if spec.method != "bm25" else None,
    )
    return hits, time.perf_counter() - t0


def run_retrieval_eval(
    engine: Engine,
    retriever: HybridRetriever,
    collection_id: str,
    dataset: RetrievalDataset,
    methods: Sequence[MethodSpec],
    *,
    collection: str = "",
    chunk_k: int = 100,
    metrics: Sequence[str] = TABLE_METRICS,
    progress: Progress | None = None,
) -> RetrievalEvalResult:
    """Score each method on the data set's judged queries (collection already built)."""
    qids = [q for q in dataset.qrels if q in dataset.queries]
    texts = [dataset.queries[q] for q in qids]
    chunk_to_doc = chunk_sources(engine, collection_id)
    results: dict[str, MethodResult] = {}
    # Queries are embedded once; each dense / hybrid method is charged that time, so its
    # queries/s still includes the query embedding (as a lone search_ids call would).
    vectors: np.ndarray | None = None
    embed_s = 0.0
    if any(spec.method != "bm25" for spec in methods):
        if progress:
            progress(f"embedding {len(texts)} queries")
        t0 = time.perf_counter()
        vectors = np.asarray(retriever.embedder.embed(texts), dtype=np.float32)
        embed_s = time.perf_counter() - t0
    for spec in methods:
        if progress:
            progress(f"{spec.name}: {len(texts)} queries")
        hits, seconds = run_method(retriever, collection_id, texts, spec, chunk_k, vectors)
        if spec.method != "bm25":
            seconds += embed_s
        run = {q: doc_ranking(h, chunk_to_doc) for q, h in zip(qids, hits, strict=True)}
        scores = evaluate_run(run, dataset.qrels, metrics)
        results[spec.name] = MethodResult(
            name=spec.name,
            label=spec.label,
            metrics=scores.means,
            qps=len(texts) / seconds if seconds > 0 else float("inf"),
            seconds=seconds,
        )
    return RetrievalEvalResult(
        dataset=dataset.name,
        split=dataset.split,
        collection=collection,
        n_queries=len(qids),
        n_documents=len(dataset.corpus),
        n_chunks=len(chunk_to_doc),
        methods=results,
        metrics=tuple(metrics),
    )


# -- the CLI's entry point ---------------------------------------------------------------


def evaluate_retrieval(
    stages: EvalStages,
    dataset: str,
    split: str | None = None,
    *,
    methods: Sequence[str] | None = None,
    datasets_dir: str | Path | None = None,
    progress: Progress | None = None,
    collection: CollectionKey | None = None,
    chunk_k: int | None = None,
    on_ingested: IngestProgress | None = None,
) -> RetrievalEvalResult:
    """Build (or reuse) the data set's collection and score every method on ``split``.

    ``methods`` picks rows from ``METHODS`` (all by default). "hybrid" is the
    platform's default configuration: the collection's tuned fusion parameters when
    ``rag tune`` stored some, else the settings'. ``chunk_k`` chunks are asked per query
    (default ``retrieval.candidate_k``, so hybrid fuses exactly the platform's candidate
    lists); documents rank by their best chunk, so recall@100 counts the distinct
    documents among those chunks. ``progress`` hears what is being done,
    ``on_ingested`` of each document while the collection is built.
    """
    settings = stages.settings
    split = resolve_split(dataset, split)
    wanted = list(methods) if methods else list(METHODS)
    unknown = [m for m in wanted if m not in METHODS]
    if unknown:
        raise InvalidRequest(f"unknown method '{unknown[0]}'; choose from {', '.join(METHODS)}")
    ds = load_dataset(dataset, split, datasets_dir)
    name = collection or CollectionKey.default(eval_collection_name(ds.name))

    engine, retriever = stages.engine, stages.retriever
    pipeline = stages.ingest_with(eval_ingest_settings(settings, dataset))

    t0 = time.perf_counter()
    collection_id, built = ensure_collection(engine, pipeline, ds, name, progress, on_ingested)
    build_seconds = time.perf_counter() - t0 if built else 0.0
    with repository.read(engine) as s:
        default = retriever.fusion_for(repository.collection_by_id(s, collection_id))
    specs = [m for m in default_methods(settings.retrieval, default) if m.name in wanted]
    result = run_retrieval_eval(
        engine,
        retriever,
        collection_id,
        ds,
        specs,
        collection=name.name,
        chunk_k=chunk_k or settings.retrieval.candidate_k,
        progress=progress,
    )
    return RetrievalEvalResult(
        dataset=result.dataset,
        split=result.split,
        collection=result.collection,
        n_queries=result.n_queries,
        n_documents=result.n_documents,
        n_chunks=result.n_chunks,
        methods=result.methods,
        build_seconds=build_seconds,
        metrics=result.metrics,
        notes={
            "chunk_tokens": eval_ingest_settings(settings, dataset).chunk_size_tokens,
            "candidate_k": settings.retrieval.candidate_k,
        },
    )


# -- rendering ---------------------------------------------------------------------------


def _short(metric: str) -> str:
    """A metric's column header: "recall@100" -> "R@100", "ndcg@10" -> "nDCG@10"."""
    name, _, k = metric.partition("@")
    short = {"recall": "R", "ndcg": "nDCG", "mrr": "MRR", "map": "MAP"}.get(name, name)
    return f"{short}@{k}" if k else short


def render_table(result: RetrievalEvalResult, console: Console | None = None) -> None:
    """One row per method: the metrics and queries/s; the best figure of each column bold."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    title = (
        f"{result.dataset} {result.split}: {result.n_queries} queries, "
        f"{result.n_documents} documents, {result.n_chunks} chunks"
    )
    # Whole at 80 columns: the figures never shrink, the names fold rather than being cut.
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        padding=(0, 0, 0, 1),
        pad_edge=False,
        caption="R = recall, q/s = queries/s",
    )
    table.add_column("method", no_wrap=True)
    table.add_column("fusion", min_width=9, overflow="fold")
    for m in result.metrics:
        table.add_column(_short(m), justify="right", no_wrap=True)
    table.add_column("q/s", justify="right", no_wrap=True)
    best = {
        m: max((r.metrics.get(m, 0.0) for r in result.methods.values()), default=0.0)
        for m in result.metrics
    }
    for r in result.methods.values():
        cells = []
        for m in result.metrics:
            v = r.metrics.get(m, 0.0)
            cell = f"{v:.4f}"
            cells.append(f"[bold]{cell}[/]" if v == best[m] and len(result.methods) > 1 else cell)
        fusion = r.label if r.name.startswith("hybrid") else "-"
        table.add_row(r.name, fusion, *cells, f"{r.qps:.1f}")
    console.print(table)
