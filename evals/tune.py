"""Tune a collection's fusion parameters on labelled queries and store the best in SQL.

BM25 and dense search each run once over the labelled queries (``candidate_k`` hits
each, exactly the lists the hybrid retriever fuses); every grid point then only
re-fuses those lists, so a whole grid costs about one eval run.

    result = tune_fusion(platform, None, "scifact", "train")   # collection eval-scifact
    result.best.mode, result.best.rrf_k, result.best.value

Tune on a training split only (SciFact ``train``; SQuAD / XQuAD ``dev``) so the
figures reported on a test split stay honest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import repository
from core.errors import InvalidRequest
from core.settings import FusionMode
from core.types import CollectionKey
from evals.datasets import RetrievalDataset, dataset_spec, load_dataset
from evals.metrics import evaluate_run, parse_metric
from evals.retrieval_eval import (
    chunk_sources,
    collection_state,
    doc_ranking,
    ensure_collection,
    eval_collection_name,
    eval_ingest_settings,
)

if TYPE_CHECKING:
    from rich.console import Console

    from evals.ports import EvalStages
    from retrieval.fusion import FusionConfig

RRF_KS: tuple[int, ...] = (1, 5, 10, 20, 40, 60, 100)
ALPHAS: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
OBJECTIVE = "ndcg@10"
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TuneRow:
    """One grid point and the figures it reached."""

    mode: FusionMode
    rrf_k: int | None
    alpha: float | None
    value: float  # the objective
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.mode is FusionMode.RRF:
            return f"rrf k={self.rrf_k}"
        return f"weighted alpha={self.alpha:g}"

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "rrf_k": self.rrf_k,
            "alpha": self.alpha,
            "value": round(self.value, 4),
            **{m: round(v, 4) for m, v in self.metrics.items()},
        }


@dataclass(frozen=True)
class TuneResult:
    collection: str
    dataset: str
    split: str
    n_queries: int
    objective: str
    rows: list[TuneRow]  # the whole grid, in search order
    best: TuneRow
    default: TuneRow  # the settings' configuration (what the collection had untuned)
    singles: dict[str, float]  # objective of "bm25" and "dense" alone
    stored: bool
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "dataset": self.dataset,
            "split": self.split,
            "n_queries": self.n_queries,
            "objective": self.objective,
            "best": self.best.to_json(),
            "default": self.default.to_json(),
            "bm25": round(self.singles.get("bm25", 0.0), 4),
            "dense": round(self.singles.get("dense", 0.0), 4),
            "stored": self.stored,
            "seconds": round(self.seconds, 1),
            "grid": [r.to_json() for r in self.rows],
        }


@dataclass(frozen=True)
class GridSearch:
    default: TuneRow  # the settings' fusion configuration
    rows: list[TuneRow]
    singles: dict[str, float]  # the objective of "bm25" and "dense" alone


def grid(rrf_ks: Sequence[int] = RRF_KS, alphas: Sequence[float] = ALPHAS) -> list[FusionConfig]:
    """Every RRF k, then every weighted alpha."""
    from retrieval.fusion import FusionConfig

    return [FusionConfig(FusionMode.RRF, rrf_k=k) for k in rrf_ks] + [
        FusionConfig(FusionMode.WEIGHTED, alpha=a) for a in alphas
    ]


def _as_hits(fused: Sequence[Any], score: str) -> list[tuple[str, float]]:
    return [(h.id, float(getattr(h, score))) for h in fused]


def fuse_and_score(
    bm25: Sequence[list[tuple[str, float]]],
    dense: Sequence[list[tuple[str, float]]],
    qids: Sequence[str],
    qrels: Mapping[str, Mapping[str, int]],
    chunk_to_doc: Mapping[str, str],
    configs: Sequence[FusionConfig],
    objective: str = OBJECTIVE,
    extra: Sequence[str] = ("recall@10", "mrr@10"),
) -> list[TuneRow]:
    """Score each fusion config on fixed candidate lists (one list pair per query)."""
    from retrieval.fusion import Fusion

    metrics = [objective, *[m for m in extra if m != objective]]
    rows: list[TuneRow] = []
    for cfg in configs:
        fused = Fusion(cfg).run_many(bm25, dense)
        run = {q: doc_ranking(h, chunk_to_doc) for q, h in zip(qids, fused, strict=True)}
        means = evaluate_run(run, qrels, metrics).means
        rows.append(
            TuneRow(
                mode=FusionMode(cfg.mode),
                rrf_k=cfg.rrf_k if cfg.mode == FusionMode.RRF else None,
                alpha=cfg.alpha if cfg.mode == FusionMode.WEIGHTED else None,
                value=means[objective],
                metrics={m: v for m, v in means.items() if m != objective},
            )
        )
    return rows


def pick_best(rows: Sequence[TuneRow]) -> TuneRow:
    """Highest objective; ties go to the earlier grid point (RRF, smaller k first)."""
    if not rows:
        raise InvalidRequest("the tuning grid is empty")
    best = rows[0]
    for r in rows[1:]:
        if r.value > best.value + 1e-12:
            best = r
    return best


def store_best(
    engine: Any, collection: CollectionKey, best: TuneRow, evidence: dict[str, Any]
) -> None:
    """Write the best parameters and the figure they reached to the collection row."""
    with repository.write(engine) as s:
        repository.set_fusion(s, collection, best.mode.value, best.rrf_k, best.alpha, evidence)


def tune_fusion(
    stages: EvalStages,
    collection: CollectionKey | None,
    dataset: str,
    split: str | None = None,
    *,
    datasets_dir: str | Path | None = None,
    rrf_ks: Sequence[int] = RRF_KS,
    alphas: Sequence[float] = ALPHAS,
    objective: str = OBJECTIVE,
    store: bool = True,
    progress: Progress | None = None,
) -> TuneResult:
    """Grid-search fusion parameters on ``dataset``'s labelled ``split`` (default: its
    training split) over ``collection`` (default ``eval-<dataset>``, built from the data
    set's corpus when absent) and store the best in the collection row."""
    settings = stages.settings
    parse_metric(objective)
    spec = dataset_spec(dataset)
    split = split or spec.train_split
    ds = load_dataset(spec.name, split, datasets_dir)
    name = collection or CollectionKey.default(eval_collection_name(spec.name))

    t0 = time.perf_counter()
    engine = stages.engine
    state = collection_state(engine, name, list(ds.corpus))
    if state.collection_id is not None and state.ready_sources == 0:
        raise InvalidRequest(
            f"collection '{name}' holds none of the documents of {spec.name} (their sources "
            f"must be the data set's doc ids); tune it on the collection 'eval-{spec.name}' "
            "or ingest the data set's corpus into it first"
        )
    if state.collection_id is None or name.name == eval_collection_name(spec.name):
        ingest_settings = eval_ingest_settings(settings, spec.name)
        pipeline = stages.ingest_with(ingest_settings)
        collection_id, _ = ensure_collection(engine, pipeline, ds, name, progress)
    else:
        collection_id = state.collection_id
    retriever = stages.retriever

    search = tune_on_collection(
        retriever,
        engine,
        collection_id,
        ds,
        settings.retrieval.candidate_k,
        grid(rrf_ks, alphas),
        objective,
        progress,
    )
    grid_rows, default_row = search.rows, search.default
    best = pick_best(grid_rows)
    n_queries = len([q for q in ds.qrels if q in ds.queries])
    if store:
        store_best(
            engine,
            name,
            best,
            {
                "objective": objective,
                "value": round(best.value, 4),
                "dataset": spec.name,
                "split": split,
                "n_queries": n_queries,
                "default_value": round(default_row.value, 4),
                "tuned_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return TuneResult(
        collection=name.name,
        dataset=spec.name,
        split=split,
        n_queries=n_queries,
        objective=objective,
        rows=grid_rows,
        best=best,
        default=default_row,
        singles=search.singles,
        stored=store,
        seconds=time.perf_counter() - t0,
    )


def tune_on_collection(
    retriever: Any,
    engine: Any,
    collection_id: str,
    ds: RetrievalDataset,
    candidate_k: int,
    configs: Sequence[FusionConfig],
    objective: str = OBJECTIVE,
    progress: Progress | None = None,
) -> GridSearch:
    """Search BM25 and dense once, then score every config on a built collection."""
    from retrieval.fusion import FusionConfig

    qids = [q for q in ds.qrels if q in ds.queries]
    texts = [ds.queries[q] for q in qids]
    chunk_to_doc = chunk_sources(engine, collection_id)
    if progress:
        progress(f"searching BM25 and dense once for {len(texts)} queries")
    b = retriever.search_ids(collection_id, texts, method="bm25", k=candidate_k)
    d = retriever.search_ids(collection_id, texts, method="dense", k=candidate_k)
    bm25 = [_as_hits(h, "bm25_score") for h in b]
    dense = [_as_hits(h, "dense_score") for h in d]
    singles = {
        "bm25": evaluate_run(
            {q: doc_ranking(h, chunk_to_doc) for q, h in zip(qids, bm25, strict=True)},
            ds.qrels,
            [objective],
        ).means[objective],
        "dense": evaluate_run(
            {q: doc_ranking(h, chunk_to_doc) for q, h in zip(qids, dense, strict=True)},
            ds.qrels,
            [objective],
        ).means[objective],
    }
    rs = retriever.settings
    default_cfg = FusionConfig(rs.fusion, rrf_k=rs.rrf_k, alpha=rs.alpha)
    default_row = fuse_and_score(
        bm25, dense, qids, ds.qrels, chunk_to_doc, [default_cfg], objective
    )
    if progress:
        progress(f"fusing {len(configs)} grid points")
    rows = fuse_and_score(bm25, dense, qids, ds.qrels, chunk_to_doc, configs, objective)
    return GridSearch(default=default_row[0], rows=rows, singles=singles)


def render_tune(result: TuneResult, console: Console | None = None) -> None:
    """The grid as a table (best row bold), then what was stored."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(
        title=(
            f"fusion tuning on {result.dataset} {result.split} ({result.n_queries} queries), "
            f"collection '{result.collection}'"
        )
    )
    table.add_column("fusion")
    table.add_column(result.objective, justify="right")
    extra = list(result.best.metrics)
    for m in extra:
        table.add_column(m, justify="right")
    for r in result.rows:
        cells = [r.label, f"{r.value:.4f}", *(f"{r.metrics.get(m, 0.0):.4f}" for m in extra)]
        if r == result.best:
            cells = [f"[bold]{c}[/]" for c in cells]
        table.add_row(*cells)
    console.print(table)
    console.print(
        f"bm25 alone {result.singles.get('bm25', 0.0):.4f}, dense alone "
        f"{result.singles.get('dense', 0.0):.4f}, settings default ({result.default.label}) "
        f"{result.default.value:.4f}"
    )
    verb = "stored" if result.stored else "best (not stored)"
    console.print(
        f"{verb}: [bold]{result.best.label}[/] — {result.objective} {result.best.value:.4f}"
    )
