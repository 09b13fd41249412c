"""Attribute answer sentences to the prompt sources whose text supports them.

Small models copy the ``[n]`` of their few-shot examples rather than the passage they
used (notes/small-llm-baseline.md), so a model's citation is only a hint: every answer
sentence is scored against every source, model citations are verified (and replaced when
another source clearly supports the sentence better), uncited sentences get the best
source, and an answer that states something always leaves with at least one citation.

    attributor = Attributor(embedder)
    result = attributor.attribute(parse_citations(text, prompt.sources).sentences,
                                  prompt.sources, question=question)
    result.text, result.citations, result.min_support
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.types import Citation, ScoredChunk
from generation.citations import (
    SNIPPET_MAX_CHARS,
    AnswerSentence,
    containment,
    content_words,
    format_marker,
    sentence_spans,
    window_around,
)
from generation.ports import SentenceEmbedder

LEXICAL_WEIGHT = 0.5  # support = w * lexical containment + (1 - w) * best-sentence cosine
SHORT_ANSWER_WORDS = 4  # below this many content words, the question joins the embedding query


class SourceSentences:
    """The prompt sources split into sentences, with content words and lazily computed,
    cached sentence embeddings (shared by extraction, fallback and attribution)."""

    def __init__(self, sources: Sequence[ScoredChunk], embedder: SentenceEmbedder) -> None:
        self.sources = tuple(sources)
        self.embedder = embedder
        self.sentences: list[list[str]] = []
        # (start, end) of each sentence in its chunk's text, parallel to ``sentences``
        self.spans: list[list[tuple[int, int]]] = []
        for sc in self.sources:
            text = sc.chunk.text
            spans = sentence_spans(text) or [(0, len(text))]
            self.spans.append(spans)
            self.sentences.append([text[s:e] or " " for s, e in spans])
        self.flat: list[tuple[int, int, str]] = [
            (i, j, s) for i, sents in enumerate(self.sentences) for j, s in enumerate(sents)
        ]
        self.sentence_words: list[list[set[str]]] = [
            [set(content_words(s)) for s in sents] for sents in self.sentences
        ]
        self.chunk_words: list[set[str]] = [
            set().union(*ws) if ws else set() for ws in self.sentence_words
        ]
        self._vectors: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def vectors(self) -> np.ndarray:
        """Embeddings of ``flat`` sentences, shape (len(flat), dim), L2-normalised."""
        if self._vectors is None:
            texts = [s for _, _, s in self.flat]
            self._vectors = (
                np.asarray(self.embedder.embed(texts), dtype=np.float32)
                if texts
                else np.zeros((0, 1), dtype=np.float32)
            )
        return self._vectors

    def cosine(self, queries: Sequence[str]) -> np.ndarray:
        """Cosine of each query against each flat sentence, shape (len(queries), len(flat))."""
        if not queries or not self.flat:
            return np.zeros((len(queries), len(self.flat)), dtype=np.float32)
        q = np.asarray(self.embedder.embed(list(queries)), dtype=np.float32)
        return q @ self.vectors.T


@dataclass(frozen=True, slots=True)
class SentenceAttribution:
    """One answer sentence: the sources it finally cites (1-based), what the model cited,
    its support (best among its cited sources, 0..1) and its support from every source."""

    text: str
    cited: tuple[int, ...]
    model_cited: tuple[int, ...]
    support: float
    scores: tuple[float, ...]
    snippets: tuple[str, ...] = field(default=(), repr=False)
    # per source: the index (into ``SourceSentences.sentences[j]``) of its best-matching
    # sentence, so the supporting text's character span can be shown
    best: tuple[int, ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class Attribution:
    """The answer with verified citations: ``text`` carries ``[n]`` markers matching them."""

    text: str
    citations: tuple[Citation, ...]
    sentences: tuple[SentenceAttribution, ...]
    replaced: int = 0  # model citations swapped for a better-supporting source
    added: int = 0  # citations the platform attributed to uncited sentences

    @property
    def claims(self) -> tuple[SentenceAttribution, ...]:
        """Sentences that state something (have content words)."""
        return tuple(s for s in self.sentences if content_words(s.text))

    @property
    def min_support(self) -> float:
        claims = self.claims
        return min((s.support for s in claims), default=0.0)

    @property
    def mean_support(self) -> float:
        claims = self.claims
        return float(np.mean([s.support for s in claims])) if claims else 0.0


def render_sentence(text: str, cited: Sequence[int]) -> str:
    """``text`` with a ``[n, m]`` marker placed before its final punctuation."""
    if not cited:
        return text
    marker = format_marker(cited)
    m = re.search(r"[.!?]+[\"'”’)]*$", text)
    if m:
        return f"{text[: m.start()].rstrip()} {marker}{text[m.start() :]}"
    return f"{text.rstrip()} {marker}"


class Attributor:
    """Scores answer sentences against sources (lexical containment + embedding cosine)
    and turns the model's claimed citations into verified ones.

    ``min_support``: a cited source must give at least this support to be kept as is.
    ``margin``: another source replaces a cited one when it supports the sentence by at
    least this much more. ``floor``: the least support for attributing an uncited sentence.
    """

    def __init__(
        self,
        embedder: SentenceEmbedder,
        *,
        min_support: float = 0.35,
        margin: float = 0.15,
        floor: float = 0.25,
    ) -> None:
        self.embedder = embedder
        self.min_support = min_support
        self.margin = margin
        self.floor = floor

    def sources(self, sources: Sequence[ScoredChunk] | SourceSentences) -> SourceSentences:
        if isinstance(sources, SourceSentences):
            return sources
        return SourceSentences(sources, self.embedder)

    def score(
        self,
        sentences: Sequence[str],
        sources: Sequence[ScoredChunk] | SourceSentences,
        question: str | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Support of each sentence by each source, shape (n_sentences, n_sources), in 0..1,
        and the index (into ``src.sentences[j]``) of the source sentence that matches best."""
        src = self.sources(sources)
        n_sent, n_src = len(sentences), len(src)
        support = np.zeros((n_sent, n_src), dtype=np.float32)
        best_idx = np.zeros((n_sent, n_src), dtype=np.int64)
        if not n_sent or not n_src:
            return support, best_idx
        words = [content_words(s) for s in sentences]
        queries = [
            f"{question} {s}" if question and len(w) < SHORT_ANSWER_WORDS else s
            for s, w in zip(sentences, words, strict=True)
        ]
        cos = np.clip(src.cosine(queries), 0.0, 1.0)
        owner = np.array([i for i, _, _ in src.flat])
        for a in range(n_sent):
            for j in range(n_src):
                cols = np.flatnonzero(owner == j)
                lex_chunk = containment(words[a], src.chunk_words[j])
                sent_lex = np.array([containment(words[a], w) for w in src.sentence_words[j]])
                local = LEXICAL_WEIGHT * sent_lex + (1 - LEXICAL_WEIGHT) * cos[a, cols]
                best_idx[a, j] = int(np.argmax(local))
                support[a, j] = LEXICAL_WEIGHT * lex_chunk + (1 - LEXICAL_WEIGHT) * float(
                    cos[a, cols].max()
                )
        return support, best_idx

    def best_source(
        self,
        text: str,
        sources: Sequence[ScoredChunk] | SourceSentences,
        question: str | None = None,
    ) -> tuple[int, float] | None:
        """The 1-based source that best supports ``text`` as a whole, with its support."""
        src = self.sources(sources)
        if not len(src) or not text.strip():
            return None
        support, _ = self.score([text], src, question)
        j = int(np.argmax(support[0]))
        return j + 1, float(support[0, j])

    def attribute(
        self,
        sentences: Sequence[AnswerSentence],
        sources: Sequence[ScoredChunk] | SourceSentences,
        *,
        question: str | None = None,
    ) -> Attribution:
        """Verify and complete the citations of ``sentences`` (markers already removed,
        model citations in ``cited``, each 1..len(sources))."""
        src = self.sources(sources)
        texts = [s.text for s in sentences]
        support, best_idx = self.score(texts, src, question)
        out: list[SentenceAttribution] = []
        replaced = added = 0
        for a, sent in enumerate(sentences):
            row = support[a] if len(src) else np.zeros(0)
            model = tuple(n for n in sent.cited if 1 <= n <= len(src))
            final: list[int] = []
            if content_words(sent.text) and len(src):
                best = int(np.argmax(row)) + 1
                s_best = float(row[best - 1])
                for n in model:
                    s_n = float(row[n - 1])
                    keep = s_n >= self.min_support and s_best < s_n + self.margin
                    if keep or s_best <= s_n or s_best < self.floor:
                        choice = n
                    else:
                        choice = best
                        replaced += 1
                    if choice not in final:
                        final.append(choice)
                if not final and s_best >= self.floor:
                    final.append(best)
                    added += 1
            snippets = tuple(
                window_around(
                    src.sentences[j][int(best_idx[a, j])],
                    content_words(sent.text),
                    SNIPPET_MAX_CHARS,
                )
                for j in range(len(src))
            )
            sup = max((float(row[n - 1]) for n in final), default=0.0)
            out.append(
                SentenceAttribution(
                    sent.text,
                    tuple(final),
                    model,
                    sup,
                    tuple(float(x) for x in row),
                    snippets,
                    tuple(int(x) for x in best_idx[a]),
                )
            )
        # Never return a stating answer without a source: cite the best overall source.
        if len(src) and not any(s.cited for s in out):
            claim_rows = [a for a, s in enumerate(out) if content_words(s.text)]
            if claim_rows:
                sub = support[claim_rows]
                j = int(np.argmax(sub.max(axis=0)))
                a = claim_rows[int(np.argmax(sub[:, j]))]  # its best-supported sentence
                s = out[a]
                out[a] = SentenceAttribution(
                    s.text,
                    (j + 1,),
                    s.model_cited,
                    float(support[a, j]),
                    s.scores,
                    s.snippets,
                    s.best,
                )
                added += 1
        return Attribution(
            text=" ".join(render_sentence(s.text, s.cited) for s in out),
            citations=_citations(out, src),
            sentences=tuple(out),
            replaced=replaced,
            added=added,
        )


def _citations(
    sentences: Sequence[SentenceAttribution], src: SourceSentences
) -> tuple[Citation, ...]:
    """One citation per cited source, first-cited order; snippet from the sentence it
    supports best; ``attributed`` unless the model itself cited that source somewhere."""
    order: list[int] = []
    for s in sentences:
        order.extend(n for n in s.cited if n not in order)
    out = []
    for n in order:
        citing = [s for s in sentences if n in s.cited]
        top = max(citing, key=lambda s: s.scores[n - 1])
        model_cited = any(n in s.model_cited for s in citing)
        out.append(Citation(n, src.sources[n - 1], top.snippets[n - 1], not model_cited))
    return tuple(out)
