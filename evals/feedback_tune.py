"""Users' feedback as relevance labels for fusion tuning (`rag tune --feedback`).

Each answer with feedback becomes a labelled question (its standalone question): thumbs
up makes the documents it cited relevant; thumbs down with a correct source (a document
id or source name) makes that document relevant; thumbs down without one gives no
positive label and is skipped. A data set's labels join them when one is given. The
labels are split deterministically (a hash of each question's id) into train and
held-out; the grid is searched on train, and the tuned fusion is stored only when it
beats the collection's current fusion on the held-out labels.

    result = tune_with_feedback(platform, CollectionKey("default", "docs"))
    result.current.value, result.tuned.value, result.stored
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import repository
from core.errors import InvalidRequest
from core.types import CollectionKey
from evals.datasets import RetrievalDataset
from evals.tune import OBJECTIVE, TuneRow, grid, pick_best, store_best, tune_on_collection

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.engine import Engine

    from evals.ports import EvalStages

HELD_OUT = 0.3


@dataclass(frozen=True)
class FeedbackLabels:
    """Labelled questions from feedback: query id (the answer id) -> text / relevant
    sources, and how many feedback rows gave none."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    n_up: int = 0
    n_corrected: int = 0  # thumbs down naming the right document
    n_skipped: int = 0  # thumbs down without one, or naming no document of the collection


def feedback_labels(engine: Engine, collection_id: str) -> FeedbackLabels:
    """The collection's feedback as labels over its documents' sources (what the
    retrieval metrics rank); documents deleted since are left out."""
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    n_up = n_corrected = n_skipped = 0
    with repository.read(engine) as s:
        docs = repository.list_documents(s, collection_id)
        by_id = {d.id: d.source for d in docs}
        by_name = {d.source: d.source for d in docs} | {Path(d.source).name: d.source for d in docs}
        for answer, fb in repository.answers_with_feedback(s, collection_id):
            if fb.rating == "up":
                relevant = {
                    by_id[c["document_id"]]
                    for c in answer.citations
                    if c.get("document_id") in by_id
                }
            elif fb.correct_source:
                wanted = fb.correct_source.strip()
                found = by_id.get(wanted) or by_name.get(wanted)
                relevant = {found} if found else set()
            else:
                relevant = set()
            if not relevant:
                n_skipped += 1
                continue
            n_up += fb.rating == "up"
            n_corrected += fb.rating == "down"
            queries[answer.id] = answer.rewritten_question or answer.question
            qrels[answer.id] = {src: 1 for src in sorted(relevant)}
    return FeedbackLabels(queries, qrels, n_up, n_corrected, n_skipped)


def held_out_split(
    queries: Mapping[str, str], share: float = HELD_OUT
) -> tuple[list[str], list[str]]:
    """(train, held-out) query ids: the ``share`` whose text has the smallest sha256 are
    held out (at least one, and at least one left to train on), so the same questions
    split the same way whatever their ids."""
    ranked = sorted(queries, key=lambda q: (hashlib.sha256(queries[q].encode()).hexdigest(), q))
    n_held = min(max(1, math.ceil(share * len(ranked))), len(ranked) - 1)
    held = set(ranked[:n_held])
    return [q for q in queries if q not in held], [q for q in queries if q in held]


@dataclass(frozen=True)
class FeedbackTuneResult:
    collection: str
    n_feedback: int  # labelled questions from feedback
    n_dataset: int  # from the data set
    n_skipped: int
    n_train: int
    n_held_out: int
    objective: str
    current: TuneRow  # the collection's fusion now, on the held-out labels
    tuned: TuneRow  # the best on train, on the held-out labels
    stored: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "labels": {"feedback": self.n_feedback, "dataset": self.n_dataset},
            "skipped_feedback": self.n_skipped,
            "train": self.n_train,
            "held_out": self.n_held_out,
            "objective": self.objective,
            "current": self.current.to_json(),
            "tuned": self.tuned.to_json(),
            "stored": self.stored,
        }


def _subset(
    name: str, queries: Mapping[str, str], qrels: Mapping[str, Any], ids: Sequence[str]
) -> RetrievalDataset:
    return RetrievalDataset(
        name, "feedback", {}, {q: queries[q] for q in ids}, {q: qrels[q] for q in ids}
    )


def tune_with_feedback(
    stages: EvalStages,
    collection: CollectionKey,
    dataset: RetrievalDataset | None = None,
    *,
    held_out: float = HELD_OUT,
    objective: str = OBJECTIVE,
    store: bool = True,
) -> FeedbackTuneResult:
    """Tune ``collection``'s fusion on its feedback (and ``dataset``'s labels, whose doc
    ids must be the collection's sources); store it only when it beats the current one
    on held-out labels. ``InvalidRequest`` with fewer than two labelled questions."""
    engine = stages.engine
    with repository.read(engine) as s:
        row = repository.get_collection(s, collection)
        collection_id = row.id
        current_cfg = stages.retriever.fusion_for(row)
    labels = feedback_labels(engine, collection_id)
    queries, qrels = dict(labels.queries), dict(labels.qrels)
    n_dataset = 0
    if dataset is not None:
        for q, rel in dataset.qrels.items():
            queries[f"{dataset.name}:{q}"] = dataset.queries[q]
            qrels[f"{dataset.name}:{q}"] = dict(rel)
            n_dataset += 1
    if len(qrels) < 2:
        raise InvalidRequest(
            f"collection '{collection.name}' has {len(qrels)} labelled question(s) from "
            f"feedback ({labels.n_skipped} feedback without a usable label); tuning needs at "
            "least 2 (thumbs up on cited answers, or thumbs down naming the right document)"
        )
    train, held = held_out_split({q: queries[q] for q in qrels}, held_out)
    k = stages.settings.retrieval.candidate_k
    on_train = tune_on_collection(
        stages.retriever,
        engine,
        collection_id,
        _subset("train", queries, qrels, train),
        k,
        grid(),
        objective,
    )
    best = pick_best(on_train.rows)
    best_cfg = next(cfg for cfg, r in zip(grid(), on_train.rows, strict=True) if r is best)
    current, tuned = tune_on_collection(
        stages.retriever,
        engine,
        collection_id,
        _subset("held-out", queries, qrels, held),
        k,
        [current_cfg, best_cfg],
        objective,
    ).rows
    stored = store and tuned.value > current.value + 1e-9
    if stored:
        store_best(
            engine,
            collection,
            tuned,
            {
                "objective": objective,
                "value": round(tuned.value, 4),
                "dataset": "feedback" + (f"+{dataset.name}" if dataset is not None else ""),
                "split": "held-out",
                "n_queries": len(held),
                "default_value": round(current.value, 4),
                "train_value": round(best.value, 4),
                "tuned_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return FeedbackTuneResult(
        collection=collection.name,
        n_feedback=len(labels.qrels),
        n_dataset=n_dataset,
        n_skipped=labels.n_skipped,
        n_train=len(train),
        n_held_out=len(held),
        objective=objective,
        current=current,
        tuned=tuned,
        stored=stored,
    )


def render_feedback_tune(result: FeedbackTuneResult, console: Console) -> None:
    """What the labels were, both held-out figures and what was decided."""
    r = result
    console.print(
        f"labels: {r.n_feedback} from feedback ({r.n_skipped} feedback gave none), "
        f"{r.n_dataset} from the data set; train {r.n_train}, held-out {r.n_held_out}",
        highlight=False,
    )
    console.print(
        f"held-out {r.objective}: current ({r.current.label}) {r.current.value:.4f}, "
        f"tuned ({r.tuned.label}) {r.tuned.value:.4f}",
        highlight=False,
    )
    if r.stored:
        console.print(
            f"stored the tuned fusion ({r.tuned.label}) for '{r.collection}'", highlight=False
        )
    else:
        console.print(
            f"kept the current fusion ({r.current.label}): the tuned one does not beat it on "
            "the held-out labels",
            highlight=False,
        )
