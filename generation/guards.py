"""Guards around the answer: the question going in, the answer coming out, and abstention.

Input: ``InputGuard(settings).clean(question)`` strips control characters and raises
``InvalidRequest`` for an empty or over-long question. Output guards implement ``Guard``
and judge a ``Draft`` (the answer before it is returned): ``CitationsValid``,
``Supported``, ``NoLeak``. ``abstention_reason`` says when the platform must answer
``ABSTAIN_TEXT`` instead.

    draft = Draft(question, prompt, attribution.text, attribution.citations, attribution)
    verdicts = [g.check(draft) for g in output_guards(settings.guards)]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.errors import InvalidRequest, QuestionRefused
from core.settings import GuardSettings
from core.types import Citation, Prompt, ScoredChunk, Verdict
from generation.attribution import Attribution
from generation.extract import LEAK_SHARE, leak_share

ABSTAIN_TEXT = "I could not find an answer to that in the documents."

_NOT_FOUND_RE = re.compile(
    r"\b(?:"
    r"not (?:\w+ ){0,2}in (?:the |these |any )?(?:\w+ )?"
    r"(?:sources?|passages?|documents?|context|texts?|information)"
    r"|(?:sources?|passages?|documents?|context|texts?) (?:do|does|did) not "
    r"(?:contain|include|mention|say|state|provide|give|answer)"
    r"|not (?:\w+ ){0,2}(?:mentioned|found|provided|stated|given|specified|available|"
    r"included|present|contained|answered|covered|discussed)"
    r"|(?:no|not enough|insufficient) (?:\w+ ){0,2}(?:information|mention|answer|data|details)"
    r"|(?:can ?not|can't|cannot|unable to|could not|couldn't) "
    r"(?:\w+ ){0,2}(?:find|answer|determine|tell|say|know)"
    r"|(?:don't|do not) know|no answer"
    r")\b"
    r"|^\W*(?:unknown|n/?a|none|not applicable)\W*$",
    re.IGNORECASE,
)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")


def says_not_found(text: str) -> bool:
    """True when the model says the answer is not in the sources ("not mentioned", "no
    information", "cannot find", "I don't know", or just "unknown"/"n/a")."""
    return bool(_NOT_FOUND_RE.search(text))


def clean_question(question: str) -> str:
    """Control and zero-width characters removed, whitespace runs collapsed."""
    text = unicodedata.normalize("NFC", question)
    text = _CONTROL_RE.sub(" ", text.replace("\t", " ").replace("\n", " ").replace("\r", " "))
    return " ".join(text.split())


# -- input -------------------------------------------------------------------------------


class InputGuard:
    """Checks the question before anything runs."""

    name = "input"

    def __init__(self, settings: GuardSettings) -> None:
        self.max_chars = settings.max_question_chars

    def clean(self, question: str, *, max_chars: int | None = 0) -> str:
        """The question with control characters stripped; raises ``InvalidRequest`` when
        it is empty or longer than ``max_chars`` (0: ``max_question_chars``; None: no
        limit, the caller's policy decides)."""
        self.require_text(question)
        text = clean_question(question)
        if not text:
            raise InvalidRequest("The question is empty; send the text of a question.")
        limit = self.max_chars if max_chars == 0 else max_chars
        if limit is not None and len(text) > limit:
            raise too_long(len(text), limit)
        return text

    @staticmethod
    def require_text(question: object) -> None:
        if not isinstance(question, str):
            raise InvalidRequest("The question must be text.")

    def check(self, question: str) -> Verdict:
        text = self.clean(question)
        changed = text != question.strip()
        detail = "control characters or extra whitespace removed" if changed else ""
        return Verdict(self.name, True, detail)


def too_long(n: int, limit: int) -> QuestionRefused:
    """The refusal of an over-long question (an ``InvalidRequest``)."""
    return QuestionRefused(
        f"The question is {n} characters long; the limit is {limit} (settings "
        "guards.max_question_chars, or the collection's policy question_length.max_chars). "
        "Shorten it."
    )


# -- output ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Draft:
    """The answer about to be returned, with what the output guards need to judge it."""

    question: str
    prompt: Prompt
    text: str
    citations: tuple[Citation, ...]
    attribution: Attribution


class Guard(Protocol):
    """An output check. ``check`` never raises for a bad answer: it returns a failed
    ``Verdict`` with a detail a user can read, and a score in 0..1 where it has one."""

    name: str

    def check(self, draft: Draft) -> Verdict: ...


class CitationsValid:
    """Every citation names a source of the prompt (by number and by chunk)."""

    name = "citations_valid"

    def check(self, draft: Draft) -> Verdict:
        sources = draft.prompt.sources
        bad = [
            c.n
            for c in draft.citations
            if not (1 <= c.n <= len(sources)) or sources[c.n - 1].chunk.id != c.source.chunk.id
        ]
        if bad:
            return Verdict(self.name, False, f"citations to missing sources: {bad}")
        if not draft.citations and draft.attribution.claims:
            return Verdict(self.name, False, "the answer cites no source")
        return Verdict(self.name, True, f"{len(draft.citations)} citation(s), all valid")


class Supported:
    """Each answer sentence is supported by its cited source (support >= ``min_support``).

    The score is the weakest sentence's support; the detail also gives the mean.
    """

    name = "supported"

    def __init__(self, min_support: float) -> None:
        self.min_support = min_support

    def check(self, draft: Draft) -> Verdict:
        claims = draft.attribution.claims
        if not claims:
            return Verdict(self.name, False, "the answer states nothing checkable", 0.0)
        weak = [s for s in claims if s.support < self.min_support]
        lo, mean = draft.attribution.min_support, draft.attribution.mean_support
        detail = f"min support {lo:.2f}, mean {mean:.2f}, threshold {self.min_support:.2f}"
        if weak:
            detail += f"; {len(weak)} of {len(claims)} sentence(s) unsupported"
        return Verdict(self.name, not weak, detail, round(lo, 4))


class NoLeak:
    """The answer does not reproduce the instruction or the few-shot examples."""

    name = "no_leak"

    def __init__(self, max_share: float = LEAK_SHARE) -> None:
        self.max_share = max_share

    def check(self, draft: Draft) -> Verdict:
        share = leak_share(draft.text, draft.prompt, draft.question)
        ok = share < self.max_share
        detail = (
            "no instruction or example text in the answer"
            if share == 0
            else f"{share:.0%} of the answer's word 4-grams come from the instruction/examples"
        )
        return Verdict(self.name, ok, detail, round(1.0 - share, 4))


def output_guards(settings: GuardSettings) -> tuple[Guard, ...]:
    return (CitationsValid(), Supported(settings.min_support), NoLeak())


# -- abstention --------------------------------------------------------------------------


def retrieval_verdict(retrieved: Sequence[ScoredChunk], min_similarity: float) -> Verdict:
    """Passes when the best retrieved chunk's dense (cosine) similarity reaches
    ``min_similarity``; chunks without a dense score cannot fail it."""
    name = "retrieval_similarity"
    if not retrieved:
        return Verdict(name, False, "nothing was retrieved", 0.0)
    dense = [c.dense_score for c in retrieved if c.dense_score is not None]
    if not dense:
        return Verdict(name, True, "no dense scores to judge (sparse-only retrieval)")
    best = max(dense)
    ok = best >= min_similarity
    detail = f"best dense similarity {best:.3f} (threshold {min_similarity:.3f})"
    return Verdict(name, ok, detail, round(float(best), 4))


def abstain_text(retrieved: Sequence[ScoredChunk], max_sources: int = 3) -> str:
    """``ABSTAIN_TEXT`` followed by the documents that came closest."""
    names = list(dict.fromkeys(sc.chunk.source for sc in retrieved))[:max_sources]
    if not names:
        return ABSTAIN_TEXT
    return f"{ABSTAIN_TEXT} The closest sources: {', '.join(names)}."


def abstention_reason(verdicts: Sequence[Verdict], model_text: str | None = None) -> str | None:
    """Why the platform must abstain, or None: retrieval found nothing similar enough, the
    abstention model judges the question unanswerable from the sources, the model says
    the sources do not hold the answer, or the answer is unsupported."""
    by_name = {v.guard: v for v in verdicts}
    ret = by_name.get("retrieval_similarity")
    if ret is not None and not ret.passed:
        return f"retrieval: {ret.detail}"
    ans = by_name.get("answerable")
    if ans is not None and not ans.passed:
        return f"the documents do not answer the question: {ans.detail}"
    if model_text is not None and says_not_found(model_text):
        return "the model says the sources do not contain the answer"
    sup = by_name.get("supported")
    if sup is not None and not sup.passed:
        return f"unsupported answer: {sup.detail}"
    return None
