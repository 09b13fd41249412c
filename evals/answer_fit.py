"""Fit the answer selector and the abstention model on labelled questions, honestly.

Each labelled question is retrieved through the platform's own retriever; every
displayable sentence of its retrieved chunks becomes a candidate (``generation.compose``)
labelled positive when it is one of the annotators' selected sentences. Two logistic
models are fitted (scikit-learn): the sentence selector, and the abstention model on
question-level features (which include the selector's scores). Every figure reported is
out-of-fold: stratified k-fold over questions, repeated over seeds, with the selector's
scores, its threshold and the abstention operating point all chosen inside the training
folds only.

    rows = collect(retriever, embedder, load_clapnq(), "eval-clapnq")
    report = cross_validate(rows, target_precision=0.8)
    selector, abstainer = fit_final(rows, target_precision=0.8)
    python -m evals.answer_fit --write          # refits generation/data/answer_models.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InvalidRequest
from core.types import CollectionKey, Filter, Query
from evals.answer_metrics import squad_f1, token_recall
from evals.datasets import AnswerCase
from generation.citations import words
from generation.compose import (
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    AnswerComposer,
    Candidates,
    Selection,
)
from generation.linear import LinearModel
from generation.ports import Retriever, SentenceEmbedder

THRESHOLDS = (0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6)  # selector grid
MAX_SENTENCES = (1, 2, 3)
DEFAULT_TARGET_PRECISION = 0.8
Progress = Callable[[str], None]


@dataclass(frozen=True)
class FitRow:
    """One labelled question with its candidates and their labels."""

    case: AnswerCase
    cands: Candidates
    labels: np.ndarray  # per candidate: one of the selected sentences
    own: np.ndarray  # per candidate: from the question's own passage


def _word_set(text: str) -> set[str]:
    return set(words(text))


def match_selected(candidates: Sequence[str], selected: Sequence[str]) -> np.ndarray:
    """Per candidate: True when it is one of ``selected`` (same words up to tokenisation:
    >= 80 % of the selected sentence's words, and >= 60 % of its own, in common)."""
    sel = [_word_set(s) for s in selected if s.strip()]
    out = np.zeros(len(candidates), dtype=bool)
    for i, c in enumerate(candidates):
        cw = _word_set(c)
        if not cw:
            continue
        for sw in sel:
            common = len(cw & sw)
            if sw and common >= 0.8 * len(sw) and common >= 0.6 * len(cw):
                out[i] = True
                break
    return out


def collect(
    retriever: Retriever,
    embedder: SentenceEmbedder,
    cases: Sequence[AnswerCase],
    collection: CollectionKey,
    *,
    top_k: int = 5,
    progress: Progress | None = None,
) -> list[FitRow]:
    """Retrieve every case from ``collection`` and build its labelled candidates."""
    rows = []
    for i, case in enumerate(cases, 1):
        retrieved = retriever.retrieve(Query(case.question, collection, top_k, Filter()))
        cands = Candidates.build(case.question, retrieved, embedder)
        texts = [c.text for c in cands.items]
        labels = match_selected(texts, case.selected_sentences) if case.answerable else None
        own = np.array(
            [cands.sources.sources[c.n - 1].chunk.source == case.passage_id for c in cands.items],
            dtype=bool,
        )
        rows.append(
            FitRow(case, cands, labels if labels is not None else np.zeros(len(texts), bool), own)
        )
        if progress and i % 25 == 0:
            progress(f"retrieved {i}/{len(cases)}")
    return rows


# -- fitting -----------------------------------------------------------------------------


def _fit_logistic(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], c: float = 1.0
) -> LinearModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(set(y.tolist())) < 2:
        raise InvalidRequest(
            "cannot fit: the labelled data has only one class "
            f"({'all positive' if y.all() else 'all negative'})"
        )
    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(scaler.transform(x), y)
    return LinearModel(
        tuple(names),
        tuple(float(v) for v in scaler.mean_),
        tuple(float(v) if v > 0 else 1.0 for v in scaler.scale_),
        tuple(float(v) for v in lr.coef_[0]),
        float(lr.intercept_[0]),
    )


def fit_selector(rows: Sequence[FitRow]) -> LinearModel:
    """The sentence selector on the answerable questions' candidates."""
    use = [r for r in rows if r.case.answerable and len(r.cands.items)]
    if not use:
        raise InvalidRequest("cannot fit the selector: no answerable question has candidates")
    x = np.vstack([r.cands.features for r in use])
    y = np.concatenate([r.labels for r in use])
    return _fit_logistic(x, y, SENTENCE_FEATURES)


def compose_text(row: FitRow, sel: Selection) -> str:
    return " ".join(row.cands.items[r].text for r in sel.chosen)


def _selections(
    rows: Sequence[FitRow], selector: LinearModel, threshold: float, max_sentences: int
) -> list[Selection]:
    composer = AnswerComposer(selector.with_threshold(threshold), _NO_ABSTAIN, max_sentences)
    return [composer.select(r.cands) for r in rows]


_NO_ABSTAIN = LinearModel(
    QUESTION_FEATURES,
    (0.0,) * len(QUESTION_FEATURES),
    (1.0,) * len(QUESTION_FEATURES),
    (0.0,) * len(QUESTION_FEATURES),
    -40.0,
)


def answer_f1(rows: Sequence[FitRow], sels: Sequence[Selection]) -> float:
    """Mean token F1 of the composed answers against the gold long answers (answerable)."""
    scores = [
        squad_f1(compose_text(r, s), [r.case.gold_answer])
        for r, s in zip(rows, sels, strict=True)
        if r.case.answerable
    ]
    return float(np.mean(scores)) if scores else 0.0


def choose_composition(rows: Sequence[FitRow], selector: LinearModel) -> tuple[float, int, float]:
    """The (threshold, max_sentences) with the best answer F1 on ``rows``, and that F1."""
    best = (0.5, 1, -1.0)
    ans = [r for r in rows if r.case.answerable]
    for m in MAX_SENTENCES:
        for t in THRESHOLDS:
            f1 = answer_f1(ans, _selections(ans, selector, t, m))
            if f1 > best[2] + 1e-9:
                best = (t, m, f1)
    return best


def question_matrix(rows: Sequence[FitRow], selector: LinearModel) -> np.ndarray:
    composer = AnswerComposer(selector, _NO_ABSTAIN)
    return np.vstack([composer.question_features(r.cands, composer.select(r.cands)) for r in rows])


def operating_point(p: np.ndarray, y: np.ndarray, target_precision: float) -> float:
    """The abstention threshold on P(unanswerable): the lowest one whose abstentions are at
    least ``target_precision`` unanswerable (the most recall at that precision); when none
    reaches it, the one with the best F1."""
    best_t, best_r = None, -1.0
    f1_t, f1_best = 0.5, -1.0
    for t in np.unique(np.round(p, 6)):
        pred = p >= t
        tp = float((pred & y).sum())
        prec = tp / pred.sum() if pred.sum() else 0.0
        rec = tp / y.sum() if y.sum() else 0.0
        f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
        if f1 > f1_best:
            f1_t, f1_best = float(t), f1
        if prec >= target_precision and rec > best_r:
            best_t, best_r = float(t), rec
    return best_t if best_t is not None else f1_t


def _inner_selector_scores(rows: Sequence[FitRow], seed: int, k: int = 3) -> list[LinearModel]:
    """For each row, a selector fitted without the row's inner fold (out-of-fold scores)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.array([not r.case.answerable for r in rows])
    out: list[LinearModel | None] = [None] * len(rows)
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y):
        sel = fit_selector([rows[i] for i in tr])
        for i in te:
            out[i] = sel
    return [m for m in out if m is not None]


def _oof_question_matrix(rows: Sequence[FitRow], seed: int) -> np.ndarray:
    models = _inner_selector_scores(rows, seed)
    return np.vstack([question_matrix([r], m) for r, m in zip(rows, models, strict=True)])


@dataclass(frozen=True)
class FoldOutcome:
    """Out-of-fold decisions and answers for one held-out question."""

    case: AnswerCase
    p_unanswerable: float
    abstained: bool
    text: str
    cites_own: bool


@dataclass(frozen=True)
class CVReport:
    n: int
    answerable: int
    unanswerable: int
    folds: int
    seeds: tuple[int, ...]
    target_precision: float
    figures: dict[str, float]
    spread: dict[str, float]
    outcomes: tuple[FoldOutcome, ...] = field(default=(), repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "answerable": self.answerable,
            "unanswerable": self.unanswerable,
            "folds": self.folds,
            "seeds": list(self.seeds),
            "target_precision": self.target_precision,
            "figures": {k: round(v, 4) for k, v in self.figures.items()},
            "seed_spread": {k: round(v, 4) for k, v in self.spread.items()},
        }


def figures(outcomes: Sequence[FoldOutcome]) -> dict[str, float]:
    """Abstention P/R/F1 (unanswerable positive), answered share, F1 / recall, own passage."""
    y = np.array([not o.case.answerable for o in outcomes])
    a = np.array([o.abstained for o in outcomes])
    tp = float((a & y).sum())
    prec = tp / a.sum() if a.sum() else 0.0
    rec = tp / y.sum() if y.sum() else 0.0
    answered = [o for o in outcomes if o.case.answerable and not o.abstained]
    n_ans = int((~y).sum())
    f1s = [squad_f1(o.text, [o.case.gold_answer]) for o in answered]
    recs = [token_recall(o.text, [o.case.gold_answer]) for o in answered]
    return {
        "abstention_precision": prec,
        "abstention_recall": rec,
        "abstention_f1": 2 * prec * rec / (prec + rec) if prec + rec else 0.0,
        "answerable_answered": len(answered) / n_ans if n_ans else 0.0,
        "cites_own_passage": float(np.mean([o.cites_own for o in answered])) if answered else 0.0,
        "token_f1_answered": float(np.mean(f1s)) if f1s else 0.0,
        "token_f1_all_answerable": float(np.sum(f1s) / n_ans) if n_ans else 0.0,
        "token_recall_answered": float(np.mean(recs)) if recs else 0.0,
        "answer_words": float(np.mean([len(o.text.split()) for o in answered]))
        if answered
        else 0.0,
    }


def cross_validate(
    rows: Sequence[FitRow],
    *,
    folds: int = 5,
    seeds: Sequence[int] = (0, 1, 2),
    target_precision: float = DEFAULT_TARGET_PRECISION,
    fixed_selector: AnswerComposer | None = None,
    progress: Progress | None = None,
) -> CVReport:
    """Out-of-fold figures of the whole recipe (selector, composition, abstention).

    ``fixed_selector``: keep this composer's selector (labelled data without selected
    sentences); only the abstention model is fitted then."""
    from sklearn.model_selection import StratifiedKFold

    y = np.array([not r.case.answerable for r in rows])
    if y.all() or not y.any() or min(y.sum(), (~y).sum()) < folds:
        raise InvalidRequest(
            f"cross-validation needs at least {folds} answerable and {folds} unanswerable "
            f"questions (got {(~y).sum()} and {y.sum()})"
        )
    per_seed: list[dict[str, float]] = []
    outcomes: list[FoldOutcome] = []
    for seed in seeds:
        seed_out: list[FoldOutcome] = []
        skf = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for k, (tr, te) in enumerate(skf.split(np.zeros(len(y)), y), 1):
            train = [rows[i] for i in tr]
            test = [rows[i] for i in te]
            if fixed_selector is not None:
                selector = fixed_selector.selector
                inner = [selector] * len(train)
                t, m = selector.threshold, fixed_selector.max_sentences
            else:
                selector = fit_selector(train)
                inner = _inner_selector_scores(train, seed)
                t, m, _ = _choose_on_oof(train, inner)
            qx_train = np.vstack(
                [question_matrix([r], s) for r, s in zip(train, inner, strict=True)]
            )
            abstainer = _fit_logistic(qx_train, y[tr], QUESTION_FEATURES)
            p_train = _oof_logistic(qx_train, y[tr], seed)
            abstainer = abstainer.with_threshold(operating_point(p_train, y[tr], target_precision))
            composer = AnswerComposer(selector.with_threshold(t), abstainer, m)
            for r in test:
                sel = composer.select(r.cands)
                p = composer.p_unanswerable(r.cands, sel)
                seed_out.append(
                    FoldOutcome(
                        r.case,
                        p,
                        bool(abstainer.decide(p)) or not sel.chosen,
                        compose_text(r, sel),
                        bool(sel.chosen) and bool(r.own[sel.chosen[0]]),
                    )
                )
            if progress:
                progress(f"seed {seed} fold {k}/{folds}")
        per_seed.append(figures(seed_out))
        outcomes.extend(seed_out)
    keys = per_seed[0].keys()
    mean = {k: float(np.mean([f[k] for f in per_seed])) for k in keys}
    spread = {k: float(np.ptp([f[k] for f in per_seed])) for k in keys}
    return CVReport(
        len(rows),
        int((~y).sum()),
        int(y.sum()),
        folds,
        tuple(seeds),
        target_precision,
        mean,
        spread,
        tuple(outcomes),
    )


def _choose_on_oof(
    rows: Sequence[FitRow], selectors: Sequence[LinearModel]
) -> tuple[float, int, float]:
    """``choose_composition`` with each row scored by its out-of-fold selector."""
    best = (0.5, 1, -1.0)
    ans = [(r, s) for r, s in zip(rows, selectors, strict=True) if r.case.answerable]
    for m in MAX_SENTENCES:
        for t in THRESHOLDS:
            sels = [_selections([r], s, t, m)[0] for r, s in ans]
            f1 = answer_f1([r for r, _ in ans], sels)
            if f1 > best[2] + 1e-9:
                best = (t, m, f1)
    return best


def _oof_logistic(x: np.ndarray, y: np.ndarray, seed: int, k: int = 5) -> np.ndarray:
    from sklearn.model_selection import StratifiedKFold

    p = np.zeros(len(y))
    for tr, te in StratifiedKFold(k, shuffle=True, random_state=seed).split(x, y):
        p[te] = _fit_logistic(x[tr], y[tr], QUESTION_FEATURES).proba(x[te])
    return p


def fit_final(
    rows: Sequence[FitRow],
    *,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    fixed_selector: AnswerComposer | None = None,
) -> tuple[LinearModel, LinearModel]:
    """Both models fitted on all ``rows`` (the abstention model only, with
    ``fixed_selector``); thresholds and the operating point from out-of-fold scores of
    the same rows (never from in-sample ones)."""
    y = np.array([not r.case.answerable for r in rows])
    if fixed_selector is not None:
        selector = fixed_selector.selector
        inner = [selector] * len(rows)
    else:
        inner = _inner_selector_scores(rows, seed)
        t, m, f1 = _choose_on_oof(rows, inner)
        selector = fit_selector(rows).with_threshold(
            t, max_sentences=m, oof_answer_f1=round(f1, 4), **(meta or {})
        )
    qx = np.vstack([question_matrix([r], s) for r, s in zip(rows, inner, strict=True)])
    p = _oof_logistic(qx, y, seed)
    abstainer = _fit_logistic(qx, y, QUESTION_FEATURES).with_threshold(
        operating_point(p, y, target_precision),
        target_precision=target_precision,
        n_answerable=int((~y).sum()),
        n_unanswerable=int(y.sum()),
        **(meta or {}),
    )
    return selector, abstainer


# -- rag tune --abstention -----------------------------------------------------------------


@dataclass(frozen=True)
class AnswerTuneResult:
    """What ``rag tune --abstention`` measured and stored for a collection."""

    collection: str
    dataset: str
    report: CVReport
    composer: AnswerComposer
    selector_fitted: bool  # False: no selected sentences in the data, default selector kept
    stored: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "collection": self.collection,
            "dataset": self.dataset,
            "selector_fitted": self.selector_fitted,
            "stored": self.stored,
            "cross_validation": self.report.to_json(),
            "abstention_threshold": round(self.composer.abstainer.threshold, 6),
            "selector_threshold": round(self.composer.selector.threshold, 6),
            "max_sentences": self.composer.max_sentences,
        }


def tune_answer_models(
    retriever: Retriever,
    embedder: SentenceEmbedder,
    engine: Any,
    collection: CollectionKey,
    cases: Sequence[AnswerCase],
    *,
    dataset: str,
    target_precision: float = DEFAULT_TARGET_PRECISION,
    top_k: int = 5,
    store: bool = True,
    progress: Progress | None = None,
) -> AnswerTuneResult:
    """Fit the answer selector and abstention model on labelled questions about
    ``collection``, cross-validate them, and store them in the collection's SQL row.

    Questions whose data has no ``selected_sentences`` keep the default selector and fit
    the abstention model only. ``target_precision``: the share of abstentions that must be
    truly unanswerable (out-of-fold) at the stored operating point.
    """
    from core import repository

    if not 0.0 < target_precision <= 1.0:
        raise InvalidRequest(f"--target-precision must be in (0, 1], not {target_precision}")
    rows = collect(retriever, embedder, cases, collection, top_k=top_k, progress=progress)
    has_labels = any(r.labels.any() for r in rows if r.case.answerable)
    fixed = None if has_labels else AnswerComposer.default()
    if progress:
        progress(f"cross-validating on {len(rows)} questions")
    report = cross_validate(
        rows, target_precision=target_precision, fixed_selector=fixed, progress=progress
    )
    meta = {"data": dataset, "cv": report.to_json()}
    selector, abstainer = fit_final(
        rows, target_precision=target_precision, meta=meta, fixed_selector=fixed
    )
    max_sentences = fixed.max_sentences if fixed else int(selector.meta.get("max_sentences", 3))
    composer = AnswerComposer(selector, abstainer, max_sentences)
    if store:
        with repository.write(engine) as s:
            repository.set_answer_models(s, collection, composer.to_json())
    return AnswerTuneResult(collection.name, dataset, report, composer, has_labels, store)


# -- command line ------------------------------------------------------------------------

MODELS_FILE = Path(__file__).resolve().parents[1] / "generation" / "data" / "answer_models.json"


def render(report: CVReport) -> str:
    f, s = report.figures, report.spread
    lines = [
        f"ClapNQ-style cross-validation: {report.n} questions ({report.answerable} answerable, "
        f"{report.unanswerable} unanswerable), {report.folds}-fold x seeds {list(report.seeds)}, "
        f"target abstention precision {report.target_precision}",
        "",
        "| figure | out-of-fold | seed spread |",
        "|---|---|---|",
    ]
    for k, v in f.items():
        lines.append(f"| {k} | {v:.3f} | {s[k]:.3f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Collect ClapNQ-tune through a platform, cross-validate, optionally write the models."""
    from api.platform import Platform
    from core.settings import Settings
    from evals.answer_eval import load_answer_set
    from evals.retrieval_eval import ensure_collection

    ap = argparse.ArgumentParser(
        prog="python -m evals.answer_fit", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--data", default=None, help="clapnq (default) or a JSONL file in its format")
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--target-precision", type=float, default=DEFAULT_TARGET_PRECISION)
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--distractors", type=int, default=0, help="SQuAD paragraphs added to the pool")
    ap.add_argument("--cache", type=Path, default=None, help="keep the collected candidates here")
    ap.add_argument("--write", action="store_true", help=f"write {MODELS_FILE.name}")
    args = ap.parse_args(argv)

    def say(msg: str) -> None:
        print(msg, file=sys.stderr)

    platform = Platform(Settings(data_dir=args.data_dir))
    platform.startup()
    aset = load_answer_set(args.data or "clapnq", distractors=args.distractors)
    key = CollectionKey.default(aset.collection)
    ensure_collection(platform.engine, platform.ingest, aset.corpus, key, say)
    if args.cache and args.cache.is_file():
        with args.cache.open("rb") as f:
            rows = pickle.load(f)
    else:
        rows = collect(
            platform.retriever,
            platform.embedder,
            aset.cases,
            key,
            top_k=args.top_k,
            progress=say,
        )
        if args.cache:
            for r in rows:  # the candidates keep their vectors, not the model
                r.cands.sources.embedder = None  # type: ignore[assignment]
            with args.cache.open("wb") as f:
                pickle.dump(rows, f)
    report = cross_validate(rows, target_precision=args.target_precision, progress=say)
    print(render(report))
    if args.write:
        meta = {"data": "clapnq-tune", "cv": report.to_json()}
        selector, abstainer = fit_final(rows, target_precision=args.target_precision, meta=meta)
        MODELS_FILE.parent.mkdir(parents=True, exist_ok=True)
        MODELS_FILE.write_text(
            json.dumps(
                {"selector": selector.to_json(), "abstention": abstainer.to_json()}, indent=1
            )
            + "\n",
            encoding="utf-8",
        )
        say(f"wrote {MODELS_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
