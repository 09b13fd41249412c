"""Fitting the injection detector's models (``python -m generation.checks.injection --fit``).

Positives: BIPIA's *training* attack instructions (``bipia/text_attack_train.json``)
planted at the start, middle and end of BIPIA e-mails and ClapNQ passages (and, for the
question model, asked on their own or appended to ClapNQ questions). Negatives: the
sentences of ClapNQ passages, BIPIA e-mails and the even-id half of SciFact's abstracts;
for questions, ClapNQ questions, SciFact claims and the BIPIA e-mail questions. SQuAD,
XQuAD and the odd-id SciFact half are never seen here: ``evals.injection_eval``
measures on them. The operating point is the score at which 1 % of the training
negative chunks (questions) would be flagged.

scikit-learn is needed only here; serving applies the stored numbers with numpy.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.settings import default_datasets_dir as default_datasets_dir  # re-exported
from core.settings import require_datasets_dir
from generation.checks.injection import (
    FEATURES,
    InjectionModels,
    chunk_features,
    sentence_spans,
)
from generation.linear import LinearModel

POSITIONS = ("start", "middle", "end")
# Attack kinds that, asked directly by a user, are ordinary (if off-topic) requests and
# not injections: the question model is not taught to flag them.
QUESTION_BENIGN_CATEGORIES = frozenset(
    {
        "Information Retrieval",
        "Learning and Tutoring",
        "Language Translation",
        "Programming Help",
        "Content Creation",
    }
)
TARGET_FALSE_FLAGS = 0.005  # the training operating point; the goal on held-out text is 1 %
C = 0.5
SEED = 13


def _root(datasets_dir: str | Path | None) -> Path:
    return require_datasets_dir(default_datasets_dir(datasets_dir))


# ---------------------------------------------------------------------------- data sets


def load_attacks(datasets_dir: str | Path | None = None) -> dict[str, list[str]]:
    """BIPIA's training attacks: category -> instructions."""
    path = _root(datasets_dir) / "bipia" / "text_attack_train.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    return {str(k): [str(s) for s in v] for k, v in data.items()}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def load_emails(datasets_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """BIPIA e-mails: (context, question)."""
    rows = _jsonl(_root(datasets_dir) / "bipia" / "email_train.jsonl")
    return [(str(r["context"]), str(r["question"])) for r in rows]


def load_clapnq(datasets_dir: str | Path | None = None) -> list[tuple[str, str]]:
    """ClapNQ tuning half: (passage text, question)."""
    out = []
    for name in ("answerable.jsonl", "unanswerable.jsonl"):
        for r in _jsonl(_root(datasets_dir) / "clapnq-tune" / name):
            out.append((str(r["passages"][0]["text"]), str(r["input"])))
    return out


def load_scifact(half: str, datasets_dir: str | Path | None = None) -> list[str]:
    """SciFact abstracts of one half: ``fit`` (even ids) or ``eval`` (odd ids)."""
    rows = _jsonl(_root(datasets_dir) / "scifact" / "corpus.jsonl")
    parity = 0 if half == "fit" else 1
    return [str(r["text"]) for r in rows if int(r["_id"]) % 2 == parity and r["text"].strip()]


def load_scifact_claims(datasets_dir: str | Path | None = None) -> list[str]:
    return [str(r["text"]) for r in _jsonl(_root(datasets_dir) / "scifact" / "queries.jsonl")]


def load_squad(path: str | Path) -> tuple[list[str], list[str]]:
    """(paragraphs, questions) of a SQuAD-format file."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    paragraphs: list[str] = []
    questions: list[str] = []
    for article in data["data"]:
        for para in article["paragraphs"]:
            paragraphs.append(str(para["context"]))
            questions.extend(str(qa["question"]) for qa in para["qas"])
    return paragraphs, questions


# ------------------------------------------------------------------------------ planting


def plant(text: str, attack: str, position: str) -> tuple[str, tuple[int, int]]:
    """``text`` with ``attack`` inserted at its start, middle (a sentence boundary near
    the middle) or end; returns the new text and the attack's offsets in it."""
    text = text.strip()
    if position == "start":
        return f"{attack} {text}", (0, len(attack))
    if position == "end":
        sep = " " if text[-1:] in ".!?" else "\n"
        return f"{text}{sep}{attack}", (len(text) + 1, len(text) + 1 + len(attack))
    spans = sentence_spans(text)
    # a sentence boundary; in one long sentence, the word boundary nearest the middle
    at = spans[len(spans) // 2][0] if len(spans) >= 2 else text.rfind(" ", 0, len(text) // 2) + 1
    return f"{text[:at]}{attack} {text[at:]}", (at, at + len(attack))


def attack_rows(spans: Sequence[tuple[int, int]], attack: tuple[int, int]) -> list[int]:
    """Indices of the sentences that are mostly the planted attack."""
    a, b = attack
    out = []
    for i, (s, e) in enumerate(spans):
        inside = max(0, min(b, e) - max(a, s))
        if inside >= 0.5 * (e - s):
            out.append(i)
    return out


@dataclass(frozen=True)
class Planted:
    """A chunk with one attack planted in it."""

    text: str
    attack: tuple[int, int]
    category: str
    position: str
    carrier: str  # "email" | "squad" | "clapnq" | "question"


def planted_chunks(
    attacks: dict[str, list[str]],
    carriers: Sequence[str],
    carrier: str,
    per_attack: int,
    seed: int = SEED,
) -> list[Planted]:
    """Each attack planted in ``per_attack`` carriers (drawn at random) at each position."""
    rng = random.Random(seed)
    out = []
    for cat, items in attacks.items():
        for attack in items:
            for text in rng.sample(list(carriers), min(per_attack, len(carriers))):
                for pos in POSITIONS:
                    planted, span = plant(text, attack, pos)
                    out.append(Planted(planted, span, cat, pos, carrier))
    return out


# Connectives that join an attack to a user's question into one sentence; the eval
# measures with other ones (JOINS_EVAL), so the figure is not about the template.
JOINS_FIT = (" and then ", "; ")
JOINS_EVAL = (", then ", " and also ")


def as_typed(q: str) -> str:
    """A question capitalised and ending with "?" ("who sang x" -> "Who sang x?")."""
    q = q.strip()
    return q[:1].upper() + q[1:] + ("" if q.endswith("?") else "?")


def _lower_first(s: str) -> str:
    return s[:1].lower() + s[1:] if s[1:2].islower() or s[1:2] == " " else s


def question_planted(
    attacks: dict[str, list[str]], questions: Sequence[str], joins: Sequence[str], seed: int
) -> list[Planted]:
    """Question-side positives: output-steering attacks asked alone; every attack after a
    question (a second sentence) and joined into it with a connective. Task-like attacks
    asked alone are ordinary requests and are left out."""
    rng = random.Random(seed)
    out = []
    for cat, items in attacks.items():
        for a in items:
            if cat not in QUESTION_BENIGN_CATEGORIES:
                out.append(Planted(a, (0, len(a)), cat, "alone", "question"))
            if a.rstrip().endswith("?"):
                # a second question is an ordinary follow-up or a two-part question
                continue
            for q in rng.sample(list(questions), 3):
                text = f"{q.rstrip().rstrip('?')}? {a}"
                span = (len(text) - len(a), len(text))
                out.append(Planted(text, span, cat, "end", "question"))
                tail = _lower_first(a)
                text = f"{q.rstrip().rstrip('?')}{rng.choice(list(joins))}{tail}"
                # the whole joined sentence is the attack row
                out.append(Planted(text, (0, len(text)), cat, "joined", "question"))
    return out


# --------------------------------------------------------------------------------- fitting


@dataclass
class Matrix:
    """Sentence rows of many chunks: features, label, which chunk, attack category."""

    x: np.ndarray
    y: np.ndarray
    chunk: np.ndarray
    category: list[str]


def negative_matrix(texts: Iterable[str], kind: str = "chunk") -> Matrix:
    xs, chunks = [], []
    for i, text in enumerate(texts):
        _, x = chunk_features(text, kind)
        xs.append(x)
        chunks.extend([i] * len(x))
    x = np.vstack(xs)
    return Matrix(x, np.zeros(len(x)), np.asarray(chunks), [""] * len(x))


def positive_matrix(planted: Sequence[Planted], kind: str = "chunk") -> Matrix:
    """Only the attack sentences of each planted chunk (the rest are carrier text)."""
    xs, chunks, cats = [], [], []
    for i, p in enumerate(planted):
        spans, x = chunk_features(p.text, kind)
        rows = attack_rows(spans, p.attack)
        xs.append(x[rows])
        chunks.extend([i] * len(rows))
        cats.extend([p.category] * len(rows))
    x = np.vstack(xs)
    return Matrix(x, np.ones(len(x)), np.asarray(chunks), cats)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = C) -> LinearModel:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=c, max_iter=5000, class_weight="balanced")
    lr.fit(scaler.transform(x), y)
    return LinearModel(
        FEATURES,
        tuple(float(v) for v in scaler.mean_),
        tuple(float(v) for v in scaler.scale_),
        tuple(float(v) for v in lr.coef_[0]),
        float(lr.intercept_[0]),
    )


def chunk_max(p: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """The highest sentence score of each chunk (chunks numbered 0..n-1)."""
    out = np.zeros(int(chunk.max()) + 1 if len(chunk) else 0)
    np.maximum.at(out, chunk, p)
    return out


def operating_point(neg_chunk_scores: np.ndarray, false_flags: float) -> float:
    """The lowest threshold that flags at most ``false_flags`` of the negatives."""
    s = np.sort(neg_chunk_scores)[::-1]
    k = int(np.floor(false_flags * len(s)))
    return float(min(max(s[k] + 1e-9, 0.05), 0.99)) if len(s) > k else 0.5


def fit_one(pos: Matrix, neg: Matrix, keep: Callable[[str], bool] = lambda c: True) -> LinearModel:
    """Fit on the positives whose category passes ``keep``; threshold on the negatives."""
    mask = np.array([keep(c) for c in pos.category], dtype=bool)
    x = np.vstack([pos.x[mask], neg.x])
    y = np.concatenate([pos.y[mask], neg.y])
    model = fit_logistic(x, y)
    thr = operating_point(chunk_max(model.proba(neg.x), neg.chunk), TARGET_FALSE_FLAGS)
    return model.with_threshold(thr)


@dataclass
class FitSets:
    chunk_pos: Matrix
    chunk_neg: Matrix
    question_pos: Matrix
    question_neg: Matrix
    counts: dict[str, int]


def fit_sets(datasets_dir: str | Path | None = None) -> FitSets:
    attacks = load_attacks(datasets_dir)
    emails = load_emails(datasets_dir)
    clap = load_clapnq(datasets_dir)
    scifact = load_scifact("fit", datasets_dir)
    carriers = [c for c, _ in emails]
    passages = [p for p, _ in clap]
    planted = planted_chunks(attacks, carriers, "email", 3) + planted_chunks(
        attacks, passages, "clapnq", 3, seed=SEED + 1
    )
    neg_texts = carriers + passages + scifact
    # ClapNQ questions are typed lowercase without "?"; users also write them as questions
    questions = [as_typed(q) for _, q in clap]
    q_planted = question_planted(attacks, questions, JOINS_FIT, SEED)
    # ordinary questions, also after a sentence of context (their passage's first one)
    context_qs = [f"{p[a:b]} {q}" for p, q in clap for a, b in sentence_spans(p)[:1]]
    q_neg = (
        questions
        + [q for _, q in clap]
        + load_scifact_claims(datasets_dir)
        + [q for _, q in emails]
        + context_qs
    )
    return FitSets(
        positive_matrix(planted),
        negative_matrix(neg_texts),
        positive_matrix(q_planted, "question"),
        negative_matrix(q_neg, "question"),
        {
            "attacks": sum(len(v) for v in attacks.values()),
            "categories": len(attacks),
            "planted_chunks": len(planted),
            "negative_chunks": len(neg_texts),
            "question_positives": len(q_planted),
            "question_negatives": len(q_neg),
        },
    )


def fit_models(
    datasets_dir: str | Path | None = None, say: Callable[[str], None] = lambda m: None
) -> InjectionModels:
    sets = fit_sets(datasets_dir)
    say(f"fit data: {sets.counts}")
    chunk = fit_one(sets.chunk_pos, sets.chunk_neg)
    question = fit_one(sets.question_pos, sets.question_neg)
    meta = {
        "fitted_on": "BIPIA text_attack_train planted in BIPIA e-mails + ClapNQ passages; "
        "negatives ClapNQ passages, BIPIA e-mails, SciFact even ids",
        "operating_point": f"{TARGET_FALSE_FLAGS:.0%} of training negative chunks flagged",
        "C": C,
        **sets.counts,
    }
    say(f"chunk threshold {chunk.threshold:.3f}, question threshold {question.threshold:.3f}")
    return InjectionModels(
        chunk.with_threshold(chunk.threshold, **meta),
        question.with_threshold(
            question.threshold,
            fitted_on="BIPIA output-steering attacks alone; all attacks after ClapNQ "
            "questions and joined into them ('and then', ';'); negatives ClapNQ questions "
            "(also after a sentence of their passage), SciFact claims, BIPIA e-mail questions",
        ),
    )
