"""Answer quality and abstention on ClapNQ, through the platform's one query path.

Every distinct passage of the data set becomes one document (``source`` = its passage
id) of one collection, ``eval-clapnq``, through the real ingestion pipeline; later runs
reuse it. Each question then goes through ``QueryPipeline.answer`` exactly as ``rag ask``
would, and its answer is scored against the question's own passage and gold long answer:
how often unanswerable questions get "not found" and answerable ones an answer, whether
the citations name the question's passage, token F1 / recall against the gold answer.

    platform = Platform(settings)
    platform.startup()
    spec = load_answer_set("clapnq", n=60, seed=0)          # stratified, seeded subset
    result = evaluate_answers(platform.query, platform.ingest, platform.engine,
                              spec.cases, CollectionKey.default(spec.collection),
                              corpus=spec.corpus)
    render_table(result, Console())
    json.dumps(result.to_json())                             # figures and per-case rows
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sqlalchemy.engine import Engine

from core.errors import InvalidRequest
from core.types import Answer, CollectionKey
from evals.answer_metrics import answer_tokens, squad_f1, strip_citations, token_recall
from evals.datasets import AnswerCase, RetrievalDataset, load_clapnq, load_dataset
from evals.retrieval_eval import (
    chunk_sources,
    collection_state,
    ensure_collection,
    eval_collection_name,
)

if TYPE_CHECKING:
    from rich.console import Console

    from generation.pipeline import QueryPipeline
    from ingest.pipeline import IngestPipeline

Progress = Callable[[str], None]

# The SQuAD dev paragraphs added as distractors are always the same sample, so a
# distractor collection (named by its size only) is reused whatever --seed picks.
DISTRACTOR_SEED = 0
Unit = Literal["share", "ratio", "tokens", "ms"]


# -- the data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerSet:
    """What one run asks and where: the questions, and every passage of the data set
    (plus distractors) for the collection."""

    name: str  # "clapnq", or the file's stem
    cases: tuple[AnswerCase, ...]  # the questions asked (a subset with ``n``)
    corpus: RetrievalDataset  # every distinct passage of the whole set, and distractors
    collection: str
    n_total: int  # questions in the whole set
    distractors: int = 0
    seed: int = 0


def stratified_sample(cases: Sequence[AnswerCase], n: int, seed: int = 0) -> list[AnswerCase]:
    """``n`` cases drawn with ``seed``, answerable and unanswerable in the set's ratio
    (at least one of each when both exist and ``n >= 2``), in the set's order."""
    if n < 1:
        raise InvalidRequest(f"--n must be at least 1, not {n}")
    if n >= len(cases):
        return list(cases)
    answerable = [i for i, c in enumerate(cases) if c.answerable]
    unanswerable = [i for i, c in enumerate(cases) if not c.answerable]
    k = round(n * len(answerable) / len(cases))
    if answerable and unanswerable and n >= 2:
        k = min(max(k, 1), n - 1)
    k = min(k, len(answerable))
    k = max(k, n - len(unanswerable))
    rng = random.Random(seed)
    picked = rng.sample(answerable, k) + rng.sample(unanswerable, n - k)
    return [cases[i] for i in sorted(picked)]


def answer_corpus(
    cases: Sequence[AnswerCase],
    *,
    distractors: int = 0,
    datasets_dir: str | Path | None = None,
    name: str = "clapnq",
) -> RetrievalDataset:
    """The cases' distinct passages as a corpus (doc id = passage id; query = question,
    judged relevant: its passage), plus ``distractors`` seeded SQuAD dev paragraphs."""
    corpus: dict[str, tuple[str, str]] = {}
    for c in cases:
        if c.text:  # plain labelled questions about an existing collection have none
            corpus.setdefault(c.passage_id, (c.title, c.text))
    if distractors < 0:
        raise InvalidRequest(f"--distractors must be 0 or more, not {distractors}")
    if distractors:
        squad = load_dataset("squad", None, datasets_dir)
        ids = sorted(squad.corpus)
        if distractors > len(ids):
            raise InvalidRequest(
                f"--distractors {distractors}: SQuAD dev has only {len(ids)} paragraphs"
            )
        for doc_id in random.Random(DISTRACTOR_SEED).sample(ids, distractors):
            corpus.setdefault(f"squad:{doc_id}", squad.corpus[doc_id])
    return RetrievalDataset(
        name=name,
        split="all",
        corpus=corpus,
        queries={c.id: c.question for c in cases},
        qrels={c.id: {c.passage_id: 1} for c in cases},
    )


def answer_collection_name(name: str, distractors: int = 0) -> str:
    """``eval-clapnq``, or ``eval-clapnq+squad500`` with 500 distractor paragraphs."""
    base = eval_collection_name(name)
    return f"{base}+squad{distractors}" if distractors else base


def load_answer_set(
    dataset: str = "clapnq",
    *,
    n: int | None = None,
    seed: int = 0,
    distractors: int = 0,
    datasets_dir: str | Path | None = None,
    require_passages: bool = True,
) -> AnswerSet:
    """ClapNQ (``"clapnq"``) or a JSONL file in its format: the questions to ask (all, or
    a stratified ``n``), and the corpus of every passage the collection must hold.
    ``require_passages`` False also takes plain labelled questions (no passages, so an
    empty corpus) about a collection that exists already."""
    if dataset.lower() == "clapnq":
        name, cases = "clapnq", load_clapnq(datasets_dir)
    else:
        path = Path(dataset)
        if not path.is_file():
            raise InvalidRequest(
                f"--dataset '{dataset}' is neither 'clapnq' nor an existing JSONL file"
            )
        name, cases = path.stem, load_clapnq(path)
    if require_passages and any(not c.text for c in cases):
        raise InvalidRequest(
            f"{dataset}: its questions carry no passages, so no collection can be built "
            "from it; for questions about a collection you already have use `rag tune "
            "--abstention -c NAME --dataset FILE`"
        )
    asked = stratified_sample(cases, n, seed) if n is not None else list(cases)
    return AnswerSet(
        name=name,
        cases=tuple(asked),
        corpus=answer_corpus(cases, distractors=distractors, datasets_dir=datasets_dir, name=name),
        collection=answer_collection_name(name, distractors),
        n_total=len(cases),
        distractors=distractors,
        seed=seed,
    )


# -- one case ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CaseResult:
    """One question's answer, scored. ``f1`` / ``recall`` are None for unanswerable
    questions (no gold answer) and 0 for an answerable one that got "not found"."""

    id: str
    question: str
    answerable: bool
    passage_id: str
    abstained: bool
    answer: str  # citation markers removed
    cited_sources: tuple[str, ...]  # document sources of the citations, first cited first
    cites_own: bool  # some citation is the question's own passage
    first_cites_own: bool  # the first citation is
    own_rank: int | None  # rank of the own passage's best chunk among the retrieved
    f1: float | None
    recall: float | None
    answer_tokens: int  # normalised tokens of the answer; 0 when abstained
    latency_ms: float
    retrieve_ms: float
    generate_ms: float
    gold_answer: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "answerable": self.answerable,
            "passage_id": self.passage_id,
            "abstained": self.abstained,
            "answer": self.answer,
            "cited_sources": list(self.cited_sources),
            "cites_own": self.cites_own,
            "first_cites_own": self.first_cites_own,
            "own_rank": self.own_rank,
            "f1": None if self.f1 is None else round(self.f1, 4),
            "recall": None if self.recall is None else round(self.recall, 4),
            "answer_tokens": self.answer_tokens,
            "latency_ms": round(self.latency_ms, 1),
            "retrieve_ms": round(self.retrieve_ms, 1),
            "generate_ms": round(self.generate_ms, 1),
            "gold_answer": self.gold_answer,
        }


def score_case(case: AnswerCase, answer: Answer) -> CaseResult:
    """Score the platform's answer to ``case`` (the own passage is matched by source)."""
    text = " ".join(strip_citations(answer.text).split())
    cited = tuple(dict.fromkeys(c.source.chunk.source for c in answer.citations))
    own_rank = next(
        (i for i, s in enumerate(answer.retrieved, 1) if s.chunk.source == case.passage_id),
        None,
    )
    f1: float | None = None
    recall: float | None = None
    if case.answerable:
        golds = [case.gold_answer]
        f1 = 0.0 if answer.abstained else squad_f1(text, golds)
        recall = 0.0 if answer.abstained else token_recall(text, golds)
    return CaseResult(
        id=case.id,
        question=case.question,
        answerable=case.answerable,
        passage_id=case.passage_id,
        abstained=answer.abstained,
        answer=text,
        cited_sources=cited,
        cites_own=case.passage_id in cited,
        first_cites_own=bool(cited) and cited[0] == case.passage_id,
        own_rank=own_rank,
        f1=f1,
        recall=recall,
        answer_tokens=0 if answer.abstained else len(answer_tokens(text)),
        latency_ms=answer.timings.total_ms,
        retrieve_ms=answer.timings.retrieve_ms,
        generate_ms=answer.timings.generate_ms,
        gold_answer=case.gold_answer,
    )


# -- the figures -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """One aggregate: ``value`` is None when its denominator is empty (e.g. no question
    was answered); shares and ratios are fractions in 0..1."""

    key: str
    label: str
    value: float | None
    unit: Unit
    n: int | None = None  # numerator of a share
    of: int | None = None  # its denominator / the questions a mean is over

    def to_json(self) -> dict[str, Any]:
        value = None if self.value is None else round(self.value, 4)
        out: dict[str, Any] = {"label": self.label, "value": value}
        if self.n is not None:
            out["n"] = self.n
        if self.of is not None:
            out["of"] = self.of
        return out


def _share(key: str, label: str, n: int, of: int) -> Figure:
    return Figure(key, label, n / of if of else None, "share", n, of)


def _mean(key: str, label: str, values: Sequence[float], unit: Unit = "ratio") -> Figure:
    return Figure(key, label, float(np.mean(values)) if values else None, unit, None, len(values))


def _ratio(key: str, label: str, num: int, den: int) -> Figure:
    return Figure(key, label, num / den if den else None, "ratio")


def answer_figures(rows: Sequence[CaseResult]) -> tuple[Figure, ...]:
    """The aggregate figures, in table order. Abstention is scored as a detector of
    unanswerable questions (positive class): precision = unanswerable among the
    abstentions, recall = unanswerable that get "not found"."""
    ans = [r for r in rows if r.answerable]
    una = [r for r in rows if not r.answerable]
    answered = [r for r in ans if not r.abstained]
    tp = sum(r.abstained for r in una)
    fp = sum(r.abstained for r in ans)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / len(una) if una else None
    f1: float | None = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    latencies = [r.latency_ms for r in rows]
    return (
        _share("unanswerable_not_found", "unanswerable that get not-found", tp, len(una)),
        _share("answerable_not_found", "answerable that get not-found", fp, len(ans)),
        Figure("abstention_precision", "abstention precision", precision, "ratio", tp, tp + fp),
        Figure("abstention_recall", "abstention recall", recall, "ratio", tp, len(una)),
        Figure("abstention_f1", "abstention F1", f1, "ratio"),
        _share("answerable_answered", "answerable answered", len(answered), len(ans)),
        _share(
            "answered_citing_own",
            "answered citing own passage",
            sum(r.cites_own for r in answered),
            len(answered),
        ),
        _share(
            "answered_first_citing_own",
            "answered citing own passage first",
            sum(r.first_cites_own for r in answered),
            len(answered),
        ),
        _share(
            "answerable_own_retrieved",
            "answerable with own passage retrieved",
            sum(r.own_rank is not None for r in ans),
            len(ans),
        ),
        _mean("token_f1_answered", "token F1 (answered)", [r.f1 or 0.0 for r in answered]),
        _mean(
            "token_f1_all",
            "token F1 (all answerable, not-found = 0)",
            [r.f1 or 0.0 for r in ans],
        ),
        _mean(
            "token_recall_answered",
            "token recall (answered)",
            [r.recall or 0.0 for r in answered],
        ),
        _mean(
            "token_recall_all",
            "token recall (all answerable, not-found = 0)",
            [r.recall or 0.0 for r in ans],
        ),
        _mean(
            "answer_tokens_mean",
            "mean answer length (tokens)",
            [float(r.answer_tokens) for r in rows if not r.abstained],
            "tokens",
        ),
        _mean(
            "gold_tokens_mean",
            "mean gold answer length (tokens)",
            [float(len(answer_tokens(r.gold_answer))) for r in ans],
            "tokens",
        ),
        Figure(
            "latency_median_ms",
            "latency median (ms)",
            float(np.percentile(latencies, 50)) if latencies else None,
            "ms",
            None,
            len(latencies),
        ),
        Figure(
            "latency_p90_ms",
            "latency p90 (ms)",
            float(np.percentile(latencies, 90)) if latencies else None,
            "ms",
            None,
            len(latencies),
        ),
    )


# -- the run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerEvalResult:
    """Figures and per-case rows of one run; ``to_json()`` is what ``--out`` writes."""

    dataset: str
    collection: str
    top_k: int
    rows: tuple[CaseResult, ...]
    figures: tuple[Figure, ...]
    n_documents: int  # in the collection's corpus (passages + distractors)
    n_chunks: int
    seconds: float  # asking and scoring every question
    build_seconds: float = 0.0  # ingesting the collection in this run
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def n_answerable(self) -> int:
        return sum(r.answerable for r in self.rows)

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

    def to_json(self, *, cases: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dataset": self.dataset,
            "collection": self.collection,
            "top_k": self.top_k,
            "n_questions": len(self.rows),
            "n_answerable": self.n_answerable,
            "n_unanswerable": len(self.rows) - self.n_answerable,
            "n_documents": self.n_documents,
            "n_chunks": self.n_chunks,
            "seconds": round(self.seconds, 1),
            "build_seconds": round(self.build_seconds, 1),
            **self.notes,
            "figures": {f.key: f.to_json() for f in self.figures},
        }
        if cases:
            out["cases"] = [r.to_json() for r in self.rows]
        return out

    def dumps(self, *, cases: bool = True) -> str:
        return json.dumps(self.to_json(cases=cases), indent=2, ensure_ascii=False)


def evaluate_answers(
    query: QueryPipeline,
    ingest: IngestPipeline,
    engine: Engine,
    cases: Sequence[AnswerCase],
    collection: CollectionKey,
    *,
    top_k: int = 5,
    corpus: RetrievalDataset | None = None,
    progress: Progress | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
) -> AnswerEvalResult:
    """Ask every case through ``query`` and score the answers.

    The collection is first made to hold ``corpus`` (default: the cases' own passages)
    through ``ingest``, unless it already does; pass the whole set's corpus when
    ``cases`` is a subset, so retrieval is as hard as in a full run. The stages come
    from the caller (the platform), so this measures exactly what ``rag ask`` answers.
    """
    if not cases:
        raise InvalidRequest("no questions to evaluate")
    ds = corpus or answer_corpus(cases)
    missing = [c for c in cases if c.passage_id not in ds.corpus]
    if missing:
        raise InvalidRequest(
            f"{len(missing)} questions' passages are not in the corpus, "
            f"e.g. '{missing[0].passage_id}' of question '{missing[0].id}'"
        )
    t0 = time.perf_counter()
    collection_id, built = ensure_collection(engine, ingest, ds, collection, progress)
    build_seconds = time.perf_counter() - t0 if built else 0.0
    state = collection_state(engine, collection, list(ds.corpus))
    chunks_per_doc: dict[str, int] = {}
    for source in chunk_sources(engine, collection_id).values():
        chunks_per_doc[source] = chunks_per_doc.get(source, 0) + 1
    if progress:
        progress(f"asking {len(cases)} questions of '{collection}' (top_k {top_k})")
    rows: list[CaseResult] = []
    model: dict[str, str] = {}
    t0 = time.perf_counter()
    for case in cases:
        answer = query.answer(case.question, collection, top_k=top_k)
        if not model:
            model = {"model": answer.model.name or Path(answer.model.path).name}
            model["model_sha256"] = answer.model.sha256
        row = score_case(case, answer)
        rows.append(row)
        if on_case:
            on_case(row)
    seconds = time.perf_counter() - t0
    passages = {c.passage_id for c in cases}
    notes: dict[str, Any] = {
        **model,
        "passages_asked": len(passages),
        "passages_split": sum(1 for p in passages if chunks_per_doc.get(p, 0) > 1),
        "max_chunks_per_passage": max((chunks_per_doc.get(p, 0) for p in passages), default=0),
        "other_documents": state.other_documents,
    }
    return AnswerEvalResult(
        dataset=ds.name,
        collection=collection.name,
        top_k=top_k,
        rows=tuple(rows),
        figures=answer_figures(rows),
        n_documents=len(ds.corpus),
        n_chunks=state.n_chunks,
        seconds=seconds,
        build_seconds=build_seconds,
        notes=notes,
    )


# -- rendering ---------------------------------------------------------------------------


def format_figure(f: Figure) -> str:
    """A figure's value as shown: shares as %, ratios to 3 places, tokens and ms rounded."""
    if f.value is None:
        return "-"
    if f.unit == "share":
        return f"{100 * f.value:.1f}%"
    if f.unit == "ratio":
        return f"{f.value:.3f}"
    if f.unit == "tokens":
        return f"{f.value:.1f}"
    return f"{f.value:,.0f}"


def render_table(result: AnswerEvalResult, console: Console | None = None) -> None:
    """One row per figure: its value and the counts behind it."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    n_una = len(result.rows) - result.n_answerable
    title = (
        f"{result.dataset}: {len(result.rows)} questions ({result.n_answerable} answerable, "
        f"{n_una} unanswerable), top_k {result.top_k}, collection '{result.collection}' "
        f"({result.n_documents} documents, {result.n_chunks} chunks)"
    )
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_column("of", justify="right")
    for f in result.figures:
        if f.n is not None and f.of is not None:
            count = f"{f.n} / {f.of}"
        elif f.of is not None:
            count = f"n={f.of}"
        else:
            count = ""
        table.add_row(f.label, format_figure(f), count)
    console.print(table)
    per_q = result.seconds / len(result.rows) if result.rows else 0.0
    console.print(
        f"[dim]{result.seconds:.0f} s asking ({per_q:.1f} s/question); "
        f"model {result.notes.get('model', '?')}[/]",
        highlight=False,
    )
