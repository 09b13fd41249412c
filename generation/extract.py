"""Copy a model's answer back to a span of the passages, and the no-LLM fallback.

Measured (notes/small-llm-baseline.md): replacing a small model's answer by the shortest
run of the best-overlapping passage sentence that holds the answer's content words lifts
EM/F1; and the passage sentence most similar to the question holds the answer 73% of the
time at a twentieth of the latency, so it answers when the model gives nothing usable.

    post = make_postprocess(embedder)          # reader-eval hook
    text, n = post(model_text, prompt)         # n: 1-based source, or None
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from core.types import Prompt, PromptStyle
from generation.attribution import Attributor, SourceSentences
from generation.citations import (
    MARKER_RE,
    STOPWORDS,
    content_words,
    normalize_word,
    strip_markers,
    word_spans,
    words,
)
from generation.ports import SentenceEmbedder

MIN_COVERAGE = 0.6  # share of the answer's content words the source sentence must hold
MAX_EXTRA_WORDS = 4  # a span may be at most this many words longer than the answer…
MAX_SPAN_RATIO = 2.0  # …or this many times as long, whichever allows more
LEAK_SHINGLE = 4  # word n-gram size for "copied from the instruction/examples"
LEAK_SHARE = 0.5  # share of such n-grams that makes an answer a leak


@dataclass(frozen=True, slots=True)
class Span:
    """An answer text found in (or taken from) source ``n`` (1-based)."""

    text: str
    n: int
    sentence: str
    coverage: float  # share of the model answer's content words in ``sentence``


# -- the instruction and examples inside a prompt -------------------------------------------


def prompt_text(prompt: Prompt) -> str:
    """Everything the model was shown, as one string (chat messages joined)."""
    if prompt.style is PromptStyle.CHAT or not prompt.text:
        return "\n".join(content for _, content in prompt.messages)
    return prompt.text


def _shingles(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def leak_share(answer: str, prompt: Prompt, question: str | None = None) -> float:
    """Share of the answer's word n-grams that occur in the prompt's instruction or few-shot
    text but in none of the sources (nor the question): text the model copied from the
    scaffolding rather than the passages."""
    ans = words(strip_markers(answer))
    if not ans:
        return 0.0
    n = min(LEAK_SHINGLE, len(ans))
    grams = _shingles(ans, n)
    scaffold = _shingles(words(MARKER_RE.sub(" ", prompt_text(prompt))), n)
    grounded: set[tuple[str, ...]] = set()
    for sc in prompt.sources:
        grounded |= _shingles(words(sc.chunk.text), n)
    if question:
        grounded |= _shingles(words(question), n)
    copied = {g for g in grams if g in scaffold and g not in grounded}
    if n < LEAK_SHINGLE and not content_words(answer):
        return 0.0  # a one-word "the" is no leak
    return len(copied) / len(grams)


_TOKEN_RE = re.compile(r"[^\W_][\w.:/-]*\w|[^\W_]")
# The word opening each sentence, tokenised exactly as _TOKEN_RE does ("Yes." -> "Yes").
_SENTENCE_START_RE = re.compile(r"(?:^\s*|[.!?]\s+)([^\W_][\w.:/-]*\w|[^\W_])")


# Replies that carry no checkable content: "Yes." must not pass as a grounded answer.
_BARE_REPLIES = frozenset({"yes", "no", "yeah", "yep", "nope", "true", "false", "correct"})


def _specific(token: str) -> bool:
    """A number, an identifier or a name: the kind of word a small model invents ("I"
    and other capitalised stop words are none)."""
    if any(c.isdigit() for c in token) or "_" in token:
        return True
    return token[:1].isupper() and token.lower() not in STOPWORDS


def novel_specifics(text: str, prompt: Prompt, question: str | None = None) -> list[str]:
    """Numbers, identifiers and names in ``text`` that occur in no source nor the question.

    A small model's "GPT-3" or "100 MB" where the passages say "Gemma 3" and "50 MB" is
    the commonest unsupported claim, and overlap scores miss it (the rest of the
    sentence matches). Capitalised words that open a sentence are not counted as names.
    """
    body = strip_markers(text)
    openers = {m.group(1) for m in _SENTENCE_START_RE.finditer(body)}
    known: set[str] = set()
    for src in [*(sc.chunk.text for sc in prompt.sources), question or ""]:
        known.update(t.lower() for t in _TOKEN_RE.findall(src))
    found: list[str] = []
    for tok in _TOKEN_RE.findall(body):
        if tok in openers and not any(c.isdigit() for c in tok):
            continue
        if _specific(tok) and tok.lower() not in known and tok not in found:
            found.append(tok)
    return found


def unusable_reason(text: str, prompt: Prompt, question: str | None = None) -> str | None:
    """Why the model output cannot be an answer (empty, only markers, repeats the
    instruction or the examples, states numbers or names found in no source), or None
    when it can."""
    body = strip_markers(text)
    if not re.search(r"\w", body):
        return "only citation markers" if MARKER_RE.search(text) else "empty"
    if leak_share(body, prompt, question) >= LEAK_SHARE:
        return "repeats the instruction or the examples"
    invented = novel_specifics(body, prompt, question)
    if invented:
        return "states what no source says (" + ", ".join(invented[:5]) + ")"
    if not [w for w in content_words(body) if w not in _BARE_REPLIES]:
        return "a bare yes/no (nothing in it can be checked against the sources)"
    q = words(question or "")
    if q and words(body) == q:
        return "repeats the question"
    return None


# -- span copying ------------------------------------------------------------------------


def _min_window(positions: dict[str, list[int]]) -> tuple[int, int] | None:
    """Smallest [lo, hi] word-index window holding one position of every key."""
    events = sorted((p, k) for k, ps in positions.items() for p in ps)
    need = len(positions)
    if not need:
        return None
    have: dict[str, int] = {}
    best: tuple[int, int] | None = None
    lo = 0
    for hi in range(len(events)):
        have[events[hi][1]] = have.get(events[hi][1], 0) + 1
        while len(have) == need:
            window = (events[lo][0], events[hi][0])
            if best is None or window[1] - window[0] < best[1] - best[0]:
                best = window
            key = events[lo][1]
            have[key] -= 1
            if not have[key]:
                del have[key]
            lo += 1
    return best


def shortest_run(sentence: str, answer_words: Sequence[str]) -> str | None:
    """The shortest run of ``sentence`` holding every answer word that it holds."""
    spans = word_spans(sentence)
    wanted = set(answer_words)
    positions: dict[str, list[int]] = {}
    for i, (s, e) in enumerate(spans):
        w = normalize_word(sentence[s:e])
        if w in wanted:
            positions.setdefault(w, []).append(i)
    window = _min_window(positions)
    if window is None:
        return None
    return sentence[spans[window[0]][0] : spans[window[1]][1]].strip(" ,;:")


def extract_span(answer: str, sources: SourceSentences, question: str | None = None) -> Span | None:
    """The answer copied from the passages, or None when no sentence matches well.

    Picks the source sentence holding most of the answer's content words (ties: more of
    the question's words, then earlier source), then its shortest run holding them (not
    counting words the answer only repeats from the question).
    """
    body = strip_markers(answer)
    ans = content_words(body) or words(body)
    if not ans:
        return None
    distinct = list(dict.fromkeys(ans))
    qwords = set(content_words(question or ""))
    best: tuple[float, int, int, int, int] | None = None
    for flat_i, (j, k, sent) in enumerate(sources.flat):
        sw = sources.sentence_words[j][k] | set(words(sent))
        cov = sum(w in sw for w in distinct) / len(distinct)
        key = (cov, len(qwords & sw), -j, -flat_i, flat_i)
        if cov > 0 and (best is None or key[:4] > best[:4]):
            best = key
    if best is None:
        return None
    cov, flat_i = best[0], best[4]
    needed = 1.0 if len(distinct) == 1 else MIN_COVERAGE
    if cov < needed:
        return None
    j, _, sent = sources.flat[flat_i]
    if cov < 1.0:
        # The model said something the sentence does not hold: a short run would drop
        # those words silently and change the meaning, so answer with the whole sentence.
        return Span(sent.strip(), j + 1, sent, cov)
    # Words a wordy answer repeats from the question are not the answer ("the founder is
    # Larry Ellison"); a short one keeps them ("decision problems").
    own = [w for w in distinct if w not in qwords]
    run = shortest_run(sent, own if len(own) >= 2 else distinct)
    if not run:
        return None
    n_ans, n_run = len(words(body)), len(words(run))
    if n_run > max(n_ans + MAX_EXTRA_WORDS, MAX_SPAN_RATIO * n_ans):
        return None
    return Span(run, j + 1, sent, cov)


def question_specifics(question: str) -> list[str]:
    """The names, identifiers and numbers a question asks about ("PostgreSQL" in "Can I
    use PostgreSQL?"), lower-cased; the word opening the question is not one."""
    openers = {m.group(1) for m in _SENTENCE_START_RE.finditer(question)}
    out: list[str] = []
    for tok in _TOKEN_RE.findall(question):
        if tok in openers and not any(c.isdigit() for c in tok):
            continue
        if _specific(tok) and tok.lower() not in out:
            out.append(tok.lower())
    return out


def fallback_sentence(
    question: str,
    sources: SourceSentences,
    min_similarity: float = 0.0,
    anchored_min_similarity: float | None = None,
) -> Span | None:
    """The passage sentence most similar to the question (embedding cosine): the answer
    when the model gives nothing usable; None when none reaches ``min_similarity``.

    A sentence that names every name, identifier and number of the question is accepted
    from ``anchored_min_similarity`` (lower): "any SQLAlchemy URL, such as PostgreSQL,
    can be set" answers "Can I use PostgreSQL?" at a cosine of only 0.30."""
    if not sources.flat or not question.strip():
        return None
    cos = sources.cosine([question])[0].copy()
    # A question in the passages (an FAQ heading) is no answer, however similar; nor is
    # an instruction planted for the model.
    asks = np.array([sent.rstrip().endswith("?") for _, _, sent in sources.flat])
    cos[asks | injected_sentences(sources)] = -1.0
    flat_i = int(np.argmax(cos))
    if float(cos[flat_i]) < min_similarity:
        need = question_specifics(question) if anchored_min_similarity is not None else []
        if not need:
            return None
        names = [{t.lower() for t in _TOKEN_RE.findall(sent)} for _, _, sent in sources.flat]
        anchored = np.array([all(t in ws for t in need) for ws in names])
        cos[~anchored] = -1.0
        flat_i = int(np.argmax(cos))
        if float(cos[flat_i]) < float(anchored_min_similarity):  # type: ignore[arg-type]
            return None
    j, _, sent = sources.flat[flat_i]
    text = " ".join(sent.split())  # one line, as an answer (the source may wrap)
    return Span(text, j + 1, sent, 0.0)


def injected_sentences(sources: SourceSentences) -> np.ndarray:
    """Per sentence of ``sources.flat``: does it overlap text the injection check flags
    (the chunk's stored flags, else the detector run on the chunk now)?"""
    from generation.checks.injection import detect_injection
    from generation.checks.screen import injection_spans

    spans_of = []
    for sc in sources.sources:
        stored = injection_spans(sc.chunk.flags)
        spans_of.append(stored if sc.chunk.flags else list(detect_injection(sc.chunk.text).spans))
    return np.array(
        [
            any(a < e and s < b for a, b in spans_of[j])
            for j, k, _ in sources.flat
            for s, e in [sources.spans[j][k]]
        ],
        dtype=bool,
    ).reshape(len(sources.flat))


# -- the reader-eval hook ------------------------------------------------------------------


def make_postprocess(
    embedder: SentenceEmbedder, *, fallback_only: bool = False, verbatim: bool = False
) -> Callable[[str, Prompt], tuple[str, int | None]]:
    """A reader-eval hook: model text + prompt -> (final answer text, 1-based source).

    The answer is copied back to a passage span when it matches one well, replaced by
    the question's most similar passage sentence when the model output is unusable
    (``fallback_only``: always; ``verbatim``: also when it is no span of a passage), and
    attributed to the source that supports it best.
    """
    attributor = Attributor(embedder)

    def postprocess(text: str, prompt: Prompt) -> tuple[str, int | None]:
        question = prompt.question
        sources = SourceSentences(prompt.sources, embedder)
        if fallback_only or unusable_reason(text, prompt, question):
            fb = fallback_sentence(question, sources)
            return (fb.text, fb.n) if fb else ("", None)
        span = extract_span(text, sources, question)
        if span is None and verbatim:  # as the pipeline with guards.verbatim_answers
            fb = fallback_sentence(question, sources)
            return (fb.text, fb.n) if fb else ("", None)
        final = span.text if span else strip_markers(text)
        best = attributor.best_source(final, sources, question)
        return final, (best[0] if best else None)

    return postprocess
