"""Answer composition from source text, and the signals that decide answer or abstain.

A small model's free text is mostly unusable (notes/small-llm-baseline.md), but the
sentences that answer a question are usually in the retrieved passages. So the answer is
composed from them: every sentence of the retrieved chunks is a candidate; headings,
titles, fragments and questions never are; a logistic selector fitted on labelled data
(ClapNQ-tune ``selected_sentences``) scores each; the best one to three sentences of one
document are the answer, in document order. The same pass yields the question-level
features of the abstention model (retrieval scores and margins, BM25 / dense agreement,
sentence similarity, the selector's scores).

    composer = AnswerComposer(selector, abstainer)
    candidates = Candidates.build(question, retrieved, embedder)
    p_unanswerable = composer.p_unanswerable(candidates)
    chosen = composer.select(candidates)            # indices into candidates.items
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
from rank_bm25 import BM25Okapi

from core.errors import InvalidRequest
from core.types import Prompt, ScoredChunk
from generation.attribution import SourceSentences
from generation.citations import (
    AnswerSentence,
    containment,
    content_words,
    parse_citations,
    words,
)
from generation.extract import extract_span, unusable_reason
from generation.linear import LinearModel
from generation.ports import SentenceEmbedder

SENTENCE_FEATURES: tuple[str, ...] = (
    "cos",  # MiniLM cosine of question and sentence
    "cos_gap",  # cos minus the best cos among the candidates
    "cos_rrank",  # 1 / rank of cos among the candidates
    "q_coverage",  # share of the question's content words in the sentence
    "bm25",  # BM25 of the sentence among the candidates, over the best
    "chunk_rrank",  # 1 / retrieval rank of the sentence's chunk (by its fused score)
    "chunk_dense",  # the chunk's dense (cosine) retrieval score
    "chunk_fused",  # the chunk's fused score over the top chunk's
    "position",  # 1 / (1 + index of the sentence in its chunk)
    "log_words",  # log(1 + words)
    "neighbour_cos",  # best cos of the sentence just before / after
)

QUESTION_FEATURES: tuple[str, ...] = (
    "top_dense",  # best dense score among the retrieved chunks
    "dense_margin",  # best minus second-best dense score
    "top_agree",  # the fused top chunk is also BM25's and dense's first
    "best_cos",  # best question-sentence cosine among displayable candidates
    "cos_gap_mean",  # best_cos minus the mean sentence cosine of the top chunk
    "q_cov_chunk",  # share of question content words in the top chunk
    "q_cov_best",  # share of question content words in the best-cos sentence
    "sel_max",  # the selector's best sentence probability
    "sel_top3",  # the mean of the selector's three best probabilities
    "wh_start",  # the question opens with a wh-word
    "aux_start",  # the question opens with an auxiliary (is, does, can…)
    "log_q_words",  # log(1 + the question's content words)
    "q_cov_top3",  # share of question content words anywhere in the top three chunks
    "fused_margin",  # (best - second fused score) / best
)

MIN_WORDS = 4  # a displayable sentence has at least this many words
_END_RE = re.compile(r"[.!;][\"'”’)\]]*$")
_WH = frozenset(["what", "who", "whom", "whose", "where", "when", "why", "which", "how"])
_AUX = frozenset(
    [
        "is",
        "are",
        "was",
        "were",
        "am",
        "do",
        "does",
        "did",
        "can",
        "could",
        "will",
        "would",
        "should",
        "shall",
        "may",
        "might",
        "must",
        "has",
        "have",
        "had",
    ]
)


def is_displayable(text: str) -> bool:
    """A sentence that may be shown as (part of) an answer: a complete sentence of at
    least ``MIN_WORDS`` words; never a markdown heading, a title line, a question or a
    fragment cut off by chunking (lower-case start, no closing punctuation)."""
    t = text.strip()
    if not t or t.startswith("#") or t.endswith("?") or "\n\n" in t:
        return False
    if len(words(t)) < MIN_WORDS or not _END_RE.search(t):
        return False
    first = t.lstrip("\"'“‘([*-• ")[:1]
    return bool(first) and not first.islower()


@dataclass(frozen=True, slots=True)
class Candidate:
    """One displayable sentence of a retrieved chunk."""

    n: int  # 1-based position of its chunk in the retrieved list (= prompt source number)
    index: int  # its index in ``SourceSentences.sentences[n - 1]``
    text: str
    start: int  # character span in the chunk's text
    end: int
    document_id: str
    doc_start: int  # character offset in the document (for document order)


@dataclass(frozen=True)
class Candidates:
    """The displayable sentences of the retrieved chunks with both feature matrices."""

    question: str
    sources: SourceSentences
    items: tuple[Candidate, ...]
    features: np.ndarray  # (len(items), len(SENTENCE_FEATURES))
    cos: np.ndarray  # (len(items),) question cosine
    question_features: np.ndarray  # (len(QUESTION_FEATURES),) without the selector's two

    @classmethod
    def build(
        cls,
        question: str,
        retrieved: Sequence[ScoredChunk] | SourceSentences,
        embedder: SentenceEmbedder,
    ) -> Candidates:
        src = (
            retrieved
            if isinstance(retrieved, SourceSentences)
            else SourceSentences(retrieved, embedder)
        )
        cos_all = src.cosine([question])[0] if src.flat else np.zeros(0, dtype=np.float32)
        flat_pos = {(j, k): i for i, (j, k, _) in enumerate(src.flat)}
        items: list[Candidate] = []
        rows: list[int] = []
        seen: set[tuple[str, str]] = set()
        for i, (j, k, sent) in enumerate(src.flat):
            if not is_displayable(sent):
                continue
            chunk = src.sources[j].chunk
            key = (chunk.document_id, " ".join(words(sent)))
            if key in seen:  # the same sentence in an overlapping chunk ranked higher
                continue
            seen.add(key)
            s, e = src.spans[j][k]
            items.append(
                Candidate(
                    j + 1, k, " ".join(sent.split()), s, e, chunk.document_id, chunk.char_start + s
                )
            )
            rows.append(i)
        cos = cos_all[rows].astype(np.float64) if rows else np.zeros(0)
        qwords = content_words(question)
        feats = np.zeros((len(items), len(SENTENCE_FEATURES)))
        if items:
            # Retrieval lists come best first, so rank by score is the position; passages
            # given in another order (reader tests) are ranked by their scores.
            scores = [float(sc.score) for sc in src.sources]
            fused_top = max(max(scores), 1e-9)
            chunk_rank = [1 + sum(o > x for o in scores) for x in scores]
            order = np.argsort(-cos, kind="stable")
            rank = np.empty(len(items))
            rank[order] = np.arange(1, len(items) + 1)
            bm25 = _bm25(qwords, [src.sentence_words[c.n - 1][c.index] for c in items])
            for r, c in enumerate(items):
                sc = src.sources[c.n - 1]
                neighbours = [
                    float(cos_all[flat_pos[(c.n - 1, k)]])
                    for k in (c.index - 1, c.index + 1)
                    if (c.n - 1, k) in flat_pos
                ]
                feats[r] = (
                    cos[r],
                    cos[r] - cos.max(),
                    1.0 / rank[r],
                    containment(qwords, src.sentence_words[c.n - 1][c.index]),
                    bm25[r],
                    1.0 / chunk_rank[c.n - 1],
                    float(sc.dense_score or 0.0),
                    float(sc.score) / fused_top,
                    1.0 / (1 + c.index),
                    math.log1p(len(c.text.split())),
                    max(neighbours, default=0.0),
                )
        qf = _question_features(question, qwords, src, cos_all, items, cos)
        return cls(question, src, tuple(items), feats, cos, qf)


def _bm25(query: Sequence[str], docs: Sequence[set[str]]) -> np.ndarray:
    """BM25 (rank_bm25) of each candidate sentence for the question, over the best."""
    if not docs or not query:
        return np.zeros(len(docs))
    corpus = [sorted(d) or ["_"] for d in docs]
    scores = np.asarray(BM25Okapi(corpus).get_scores(list(dict.fromkeys(query))), dtype=float)
    top = scores.max()
    return scores / top if top > 0 else np.zeros(len(docs))


def _question_features(
    question: str,
    qwords: Sequence[str],
    src: SourceSentences,
    cos_all: np.ndarray,
    items: Sequence[Candidate],
    cos: np.ndarray,
) -> np.ndarray:
    dense = sorted((float(s.dense_score or 0.0) for s in src.sources), reverse=True)
    top_dense = dense[0] if dense else 0.0
    margin = top_dense - dense[1] if len(dense) > 1 else top_dense
    top = src.sources[0] if len(src) else None
    agree = float(top is not None and top.bm25_rank == 1 and top.dense_rank == 1)
    best_cos = float(cos.max()) if len(cos) else 0.0
    top_cos = [float(cos_all[i]) for i, (j, _, _) in enumerate(src.flat) if j == 0]
    gap = best_cos - (float(np.mean(top_cos)) if top_cos else 0.0)
    cov_chunk = containment(qwords, src.chunk_words[0]) if len(src) else 0.0
    if len(items):
        b = items[int(np.argmax(cos))]
        cov_best = containment(qwords, src.sentence_words[b.n - 1][b.index])
    else:
        cov_best = 0.0
    first = (question.strip().split() or [""])[0].lower().strip("\"'¿(")
    top3 = set().union(*src.chunk_words[:3]) if len(src) else set()
    fused = [float(s.score) for s in src.sources]
    fused_margin = (fused[0] - fused[1]) / fused[0] if len(fused) > 1 and fused[0] > 0 else 1.0
    return np.array(
        [
            top_dense,
            margin,
            agree,
            best_cos,
            gap,
            cov_chunk,
            cov_best,
            0.0,  # sel_max: filled in once the selector has scored the candidates
            0.0,  # sel_top3
            float(first in _WH),
            float(first in _AUX),
            math.log1p(len(qwords)),
            containment(qwords, top3),
            fused_margin,
        ]
    )


@dataclass(frozen=True, slots=True)
class Selection:
    """The chosen candidates (indices into ``Candidates.items``) in document order, and
    every candidate's selector probability."""

    chosen: tuple[int, ...]
    proba: np.ndarray


class AnswerComposer:
    """Applies the fitted selector and abstention model to ``Candidates``.

    ``max_sentences``: the most sentences an answer takes; a sentence beyond the best
    joins when its probability reaches the selector's threshold (fitted on labelled data),
    and only from the best sentence's document.
    """

    def __init__(
        self, selector: LinearModel, abstainer: LinearModel, max_sentences: int = 3
    ) -> None:
        self.selector = selector
        self.abstainer = abstainer
        self.max_sentences = max_sentences

    @classmethod
    def default(cls) -> AnswerComposer:
        """The models fitted on ClapNQ-tune that ship with the package."""
        selector, abstainer = default_models()
        return cls(selector, abstainer, int(selector.meta.get("max_sentences", 3)))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AnswerComposer:
        """Models stored as ``{"selector": …, "abstention": …}`` (see ``to_json``)."""
        try:
            sel, abst = data["selector"], data["abstention"]
        except (KeyError, TypeError):
            raise InvalidRequest("stored answer models need 'selector' and 'abstention'") from None
        selector = LinearModel.from_json(sel, SENTENCE_FEATURES)
        abstainer = LinearModel.from_json(abst, QUESTION_FEATURES)
        return cls(selector, abstainer, int(selector.meta.get("max_sentences", 3)))

    def to_json(self) -> dict[str, Any]:
        return {"selector": self.selector.to_json(), "abstention": self.abstainer.to_json()}

    def select(
        self, cands: Candidates, limit: int | None = None, anchor: int | None = None
    ) -> Selection:
        """The best sentence and those of its document reaching the threshold, at most
        ``max_sentences``, in document order; ``limit``: only from sources 1..limit;
        ``anchor``: this candidate instead of the best (it and its document's best)."""
        if not cands.items:
            return Selection((), np.zeros(0))
        p = self.selector.proba(cands.features)
        allowed = np.array([limit is None or c.n <= limit for c in cands.items])
        if not allowed.any():
            return Selection((), p)
        best = anchor if anchor is not None else int(np.argmax(np.where(allowed, p, -1.0)))
        doc = cands.items[best].document_id
        others = [
            int(r)
            for r in np.argsort(-p, kind="stable")
            if r != best
            and allowed[r]
            and p[r] >= self.selector.threshold
            and cands.items[r].document_id == doc
        ]
        return Selection(self.in_order(cands, [best, *others[: self.max_sentences - 1]]), p)

    @staticmethod
    def in_order(cands: Candidates, rows: Sequence[int]) -> tuple[int, ...]:
        return tuple(sorted(set(rows), key=lambda r: (cands.items[r].doc_start, cands.items[r].n)))

    def question_features(self, cands: Candidates, sel: Selection) -> np.ndarray:
        qf = cands.question_features.copy()
        top = np.sort(sel.proba)[::-1]
        qf[QUESTION_FEATURES.index("sel_max")] = float(top[0]) if len(top) else 0.0
        qf[QUESTION_FEATURES.index("sel_top3")] = float(top[:3].mean()) if len(top) else 0.0
        return qf

    def p_unanswerable(self, cands: Candidates, sel: Selection) -> float:
        return float(self.abstainer.proba(self.question_features(cands, sel))[0])


@cache
def default_models() -> tuple[LinearModel, LinearModel]:
    """The selector and abstention model fitted on ClapNQ-tune, shipped with the package
    (``generation/data/answer_models.json``, written by ``python -m evals.answer_fit``)."""
    text = resources.files("generation").joinpath("data/answer_models.json").read_text("utf-8")
    data = json.loads(text)
    return (
        LinearModel.from_json(data["selector"], SENTENCE_FEATURES),
        LinearModel.from_json(data["abstention"], QUESTION_FEATURES),
    )


# -- composing the answer ----------------------------------------------------------------

SPAN_MAX_WORDS = 40  # a model answer this short (one or two sentences) may hold a span answer
SPAN_HOLDER_RANK = 3  # the span's sentence is among the selector's best this many
SHORT_SHARE = 0.6  # a short answer is at most this share of its sentence's words


@dataclass(frozen=True, slots=True)
class Composition:
    """The answer's sentences (to attribute: text and the source each cites), the short
    span answer when the model found one in them, and how the answer was made."""

    sentences: tuple[AnswerSentence, ...]
    short_answer: str | None
    how: str  # "selected" (source sentences), "model" (the model's own supported wording)
    detail: str
    lead: str | None = None  # the answer sentence the model's output was copied from


def compose(
    question: str,
    raw: str,
    prompt: Prompt,
    cands: Candidates,
    selection: Selection,
    composer: AnswerComposer,
    *,
    verbatim: bool = True,
) -> Composition:
    """Make the answer from the selected source sentences and the model's output.

    A model answer that is a short span of a displayable sentence of the selected
    document becomes ``short_answer`` and its sentence joins the answer. With
    ``verbatim`` False a usable model answer that is no such span keeps its own wording
    (checked for support afterwards); otherwise the answer is source text only.
    """
    k = len(prompt.sources)
    parsed = parse_citations(raw, prompt.sources)
    reason = unusable_reason(raw, prompt, question)
    span = None
    if reason is None:
        body = " ".join(s.text for s in parsed.sentences)
        if len(parsed.sentences) <= 2 and len(body.split()) <= SPAN_MAX_WORDS:
            span = extract_span(body, cands.sources, question)
    chosen = [r for r in selection.chosen if cands.items[r].n <= k]
    holder = None
    if span is not None and span.n <= k:
        # The sentence the model's answer was copied from answers when the selector finds
        # it a plausible answer sentence too: chosen, or among its best three. (Accepting
        # any span moved ClapNQ answers to the wrong passage: citing the own passage fell
        # from 100 % to 89 %, n=60; requiring a chosen sentence lost XQuAD spans.)
        ranked = np.argsort(-selection.proba, kind="stable")[:SPAN_HOLDER_RANK]
        plausible = set(chosen) | {int(r) for r in ranked}
        plausible |= {
            int(r) for r in np.flatnonzero(selection.proba >= composer.selector.threshold)
        }
        sentence = " ".join(span.sentence.split())
        holder = next(
            (
                r
                for r, c in enumerate(cands.items)
                if c.n == span.n and c.text == sentence and r in plausible
            ),
            None,
        )
    # A short span (all the model's words, at most SHORT_SHARE of its sentence) is the
    # short answer; a copied sentence, or one holding most of the model's words, anchors.
    short = None
    if holder is not None and span is not None:
        text = " ".join(span.text.split())
        sentence_words = len(cands.items[holder].text.split())
        if span.coverage >= 1.0 and len(text.split()) <= SHORT_SHARE * sentence_words:
            short = text
    if reason is None and not verbatim and short is None and parsed.sentences:
        return Composition(
            parsed.sentences, None, "model", f"{raw.strip()[:200]!r} kept as written"
        )
    if holder is not None and holder not in chosen:
        chosen = list(composer.select(cands, limit=k, anchor=holder).chosen)
    sentences = tuple(AnswerSentence(cands.items[r].text, (cands.items[r].n,)) for r in chosen)
    lead = cands.items[holder].text if holder is not None else None
    if short is not None:
        detail = f"{raw.strip()[:200]!r} is a span of source [{span.n}]"  # type: ignore[union-attr]
    elif reason is not None:
        detail = f"model output not used ({reason}): {raw.strip()[:200]!r}"
    elif lead is not None:
        detail = f"model output {raw.strip()[:200]!r} copies source [{span.n}]"  # type: ignore[union-attr]
    else:
        detail = f"model output {raw.strip()[:200]!r} is no span of the selected sentences"
    return Composition(sentences, short, "selected", detail, lead)


def make_answer_postprocess(
    embedder: SentenceEmbedder, composer: AnswerComposer | None = None
) -> Callable[[str, Prompt], tuple[str, int | None]]:
    """A reader-eval hook running the query path's composition on a model output: the
    short answer, else the answer sentence the model copied, else the answer's sentence
    most similar to the question; and the source it cites. Reader tests (XQuAD) score a
    short answer, so one sentence stands for a composition without one, as the earlier
    answer path gave one. Reader passages carry no retrieval scores beyond their cosine,
    so the abstention model is not applied here."""
    comp_model = composer or AnswerComposer.default()

    def postprocess(raw: str, prompt: Prompt) -> tuple[str, int | None]:
        question = prompt.question
        cands = Candidates.build(question, prompt.sources, embedder)
        comp = compose(question, raw, prompt, cands, comp_model.select(cands), comp_model)
        if not comp.sentences:
            return "", None
        if comp.short_answer is not None:
            holder = next(s for s in comp.sentences if comp.short_answer in s.text)
            return comp.short_answer, holder.cited[0]
        cos = {c.text: float(x) for c, x in zip(cands.items, cands.cos, strict=True)}
        lead = max(
            comp.sentences,
            key=lambda s: (s.text == comp.lead, cos.get(s.text, -1.0)),
        )
        return lead.text, lead.cited[0]

    return postprocess
