"""The one query path: question in, grounded, cited, verified ``Answer`` out.

input guard → retrieve (timed) → candidate sentences, selector, abstention model (abstain
here without running the LLM) → grounded prompt → LLM (timed) → composition (the selected
source sentences; the model's span as the short answer) → attribution and a verdict per
sentence → output guards → Answer (or an honest abstention naming the closest sources).

    pipeline = QueryPipeline(retriever, llm, GroundedPromptBuilder(...), embedder,
                             settings.guards, sampling_from_settings(settings.llm))
    answer = pipeline.answer("Who won Super Bowl 50?", "default", top_k=5)
    for item in pipeline.stream("Who won?", "default"):
        ...  # Progress events, then str pieces of the final answer's text, then the Answer
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import QuestionRefused
from core.settings import GuardSettings, LLMSettings
from core.types import (
    Answer,
    CollectionKey,
    Completion,
    Filter,
    Prompt,
    PromptStyle,
    Query,
    SamplingParams,
    ScoredChunk,
    SentenceVerdict,
    Timings,
    Usage,
    Verdict,
    require_key,
)
from generation.attribution import Attribution, Attributor, SourceSentences
from generation.checks.base import Action
from generation.checks.policy import CollectionPolicy
from generation.checks.screen import AnswerViews, Screen, Screened, answer_views
from generation.citations import AnswerSentence, parse_citations
from generation.compose import AnswerComposer, Candidates, Selection, compose
from generation.guards import (
    Draft,
    InputGuard,
    abstain_text,
    abstention_reason,
    output_guards,
    retrieval_verdict,
    too_long,
)
from generation.ports import LLM, PromptBuilder, Retriever, SentenceEmbedder
from generation.prompt import stop_strings


def sampling_from_settings(llm: LLMSettings) -> SamplingParams:
    """The default sampling parameters of the configured model (``llm.stop`` None: the
    default stop strings, ``generation.prompt.stop_strings``)."""
    return SamplingParams(
        temperature=llm.temperature,
        top_p=llm.top_p,
        top_k=llm.top_k,
        max_tokens=llm.max_tokens,
        seed=llm.seed,
        repeat_penalty=llm.repeat_penalty,
        stop=stop_strings(stop=llm.stop),
    )


@dataclass(frozen=True, slots=True)
class _Context:
    """What the query path has gathered before the model runs."""

    question: str
    retrieved: tuple[ScoredChunk, ...]
    prompt: Prompt | None  # None when the path abstains before generation
    verdicts: tuple[Verdict, ...]
    params: SamplingParams
    t0: float
    retrieve_ms: float
    cands: Candidates | None = None
    selection: Selection | None = None
    composer: AnswerComposer | None = None
    p_unanswerable: float | None = None
    policy: CollectionPolicy = field(default_factory=CollectionPolicy)
    views: AnswerViews | None = None
    reason: str | None = None  # why the path abstains before retrieval (question policy)


@dataclass(frozen=True, slots=True)
class Progress:
    """A stage of a streamed answer: "retrieved" (``detail``: chunks), "generating",
    "verifying"."""

    stage: str
    detail: dict[str, Any] = field(default_factory=dict)


_PIECE_RE = re.compile(r"\S+\s*|\s+")


def text_pieces(text: str) -> list[str]:
    """``text`` as word pieces (each word with the space after it); they join to
    ``text`` exactly."""
    return _PIECE_RE.findall(text)


ComposerFor = Callable[[CollectionKey], AnswerComposer]
PolicyFor = Callable[[CollectionKey], CollectionPolicy]
GROUNDING = frozenset(["supported"])  # the verdicts policy grounding.answers governs


class QueryPipeline:
    """Answers questions from a collection with cited, verified answers.

    The answer is composed from the retrieved passages' own sentences (``compose``), with
    the model's span as ``short_answer`` when it found one; answer-or-abstain is decided
    before the model runs by the abstention model (``composer_for(collection)``: the
    collection's own fitted model, else the default). Never trusts the small model's own
    ``[n]``: every sentence is attributed to the source text that supports it.
    ``CollectionNotFound`` / ``CollectionEmpty`` from the retriever propagate unchanged;
    an empty or over-long question raises ``InvalidRequest``.
    """

    def __init__(
        self,
        retriever: Retriever,
        llm: LLM,
        prompt_builder: PromptBuilder,
        embedder: SentenceEmbedder,
        guard_settings: GuardSettings,
        default_sampling: SamplingParams,
        composer_for: ComposerFor | None = None,
        *,
        screen: Screen | None = None,
        policy_for: PolicyFor | None = None,
    ) -> None:
        self.retriever = retriever
        self.llm = llm
        self.prompt_builder = prompt_builder
        self.embedder = embedder
        self.guard_settings = guard_settings
        self.default_sampling = default_sampling
        self.composer_for = composer_for or (lambda _collection: AnswerComposer.default())
        self.input_guard = InputGuard(guard_settings)
        self.attributor = Attributor(embedder, min_support=guard_settings.min_support)
        self.guards = output_guards(guard_settings)
        self.screen = screen or Screen(
            embedder.embed, max_question_chars=guard_settings.max_question_chars
        )
        self.policy_for = policy_for or (lambda _collection: CollectionPolicy())

    # -- entry points -----------------------------------------------------------------

    def answer(
        self,
        question: str,
        collection: CollectionKey,
        *,
        top_k: int = 5,
        filter: Filter | None = None,
        sampling: SamplingParams | None = None,
    ) -> Answer:
        """The grounded answer to ``question`` from ``collection``."""
        ctx = self._prepare(question, collection, top_k, filter, sampling)
        if ctx.prompt is None:
            return self._abstain(ctx, Usage(), 0.0, "")
        t = time.perf_counter()
        completion = self._generate(ctx.prompt, ctx.params)
        generate_ms = (time.perf_counter() - t) * 1000
        return self._finish(ctx, completion.text, completion.usage, generate_ms)

    def _generate(self, prompt: Prompt, params: SamplingParams) -> Completion:
        if prompt.style is PromptStyle.CHAT:
            return self.llm.chat(prompt.messages, params)
        return self.llm.complete(prompt.text, params)

    def stream(
        self,
        question: str,
        collection: CollectionKey,
        *,
        top_k: int = 5,
        filter: Filter | None = None,
        sampling: SamplingParams | None = None,
    ) -> Iterator[Progress | str | Answer]:
        """Yields ``Progress`` events while it retrieves, generates and verifies, then the
        final answer's text in word pieces, then the ``Answer``.

        Only what the answer says is streamed: the pieces join to ``Answer.text`` exactly
        (the model's raw output, which verification may replace, is never sent). Input
        errors and missing collections raise before the first item.
        """
        ctx = self._prepare(question, collection, top_k, filter, sampling)
        return self._stream(ctx)

    def _stream(self, ctx: _Context) -> Iterator[Progress | str | Answer]:
        yield Progress("retrieved", {"chunks": len(ctx.retrieved)})
        if ctx.prompt is None:
            answer = self._abstain(ctx, Usage(), 0.0, "")
        else:
            yield Progress("generating")
            t = time.perf_counter()
            completion = self._generate(ctx.prompt, ctx.params)
            generate_ms = (time.perf_counter() - t) * 1000
            yield Progress("verifying")
            answer = self._finish(ctx, completion.text, completion.usage, generate_ms)
        yield from text_pieces(answer.text)
        yield answer

    # -- stages -----------------------------------------------------------------------

    def _prepare(
        self,
        question: str,
        collection: CollectionKey,
        top_k: int,
        filter: Filter | None,
        sampling: SamplingParams | None,
    ) -> _Context:
        require_key(collection)
        t0 = time.perf_counter()
        self.input_guard.require_text(question)
        policy = self.policy_for(collection)
        screened = self.screen.question(question, policy)
        if screened.outcome is Action.BLOCK:
            raise self._refusal(question, screened)
        clean = self.input_guard.clean(screened.text, max_chars=None)
        changed = clean != question.strip()
        verdicts = [
            Verdict(
                self.input_guard.name,
                True,
                "control characters or extra whitespace removed" if changed else "",
            ),
            *screened.verdicts,
        ]
        params = sampling or self.default_sampling
        if screened.outcome is Action.ABSTAIN:
            return _Context(
                clean,
                (),
                None,
                tuple(verdicts),
                params,
                t0,
                0.0,
                policy=policy,
                reason=f"the question: {screened.reason}",
            )
        t = time.perf_counter()
        retrieved = tuple(
            self.retriever.retrieve(Query(clean, collection, top_k, filter or Filter()))
        )
        retrieve_ms = (time.perf_counter() - t) * 1000
        ret = retrieval_verdict(retrieved, self.guard_settings.min_retrieval_similarity)
        verdicts.append(ret)
        views = answer_views(retrieved, policy)
        if views.verdict is not None:
            verdicts.append(views.verdict)
        cands = selection = composer = p = None
        prompt = None
        if ret.passed:
            composer = self.composer_for(collection)
            cands = Candidates.build(clean, views.source, self.embedder)
            selection = composer.select(cands)
            p = composer.p_unanswerable(cands, selection)
            verdicts.append(answerability_verdict(p, composer, bool(selection.chosen)))
            if verdicts[-1].passed:
                prompt = self.prompt_builder.build(clean, views.model, params.max_tokens)
        if prompt is not None:  # a COMPLETION answer is one line: its line end stops it
            params = replace(params, stop=stop_strings(prompt.style, params.stop))
        return _Context(
            clean,
            retrieved,
            prompt,
            tuple(verdicts),
            params,
            t0,
            retrieve_ms,
            cands,
            selection,
            composer,
            p,
            policy,
            views,
        )

    @staticmethod
    def _refusal(question: str, screened: Screened) -> Exception:
        """The error for a question the policy blocks (an over-long one: the limit)."""
        for f in screened.findings:
            if f.check == "question_length":
                limit = int(f.reasons[0].rsplit(" ", 1)[-1]) if f.reasons else len(question)
                return too_long(len(question), limit)
        return QuestionRefused(
            f"The question was refused by the collection's policy ({screened.reason}). "
            "Ask about the documents in plain words."
        )

    def _finish(self, ctx: _Context, raw: str, usage: Usage, generate_ms: float) -> Answer:
        assert ctx.prompt is not None and ctx.cands is not None
        assert ctx.selection is not None and ctx.composer is not None
        prompt, question = ctx.prompt, ctx.question
        verdicts = list(ctx.verdicts)
        parsed = parse_citations(raw, prompt.sources)

        if self.guard_settings.model_not_found and abstention_reason(verdicts, raw):
            detail = f"the model says the sources do not hold the answer: {raw.strip()[:200]!r}"
            verdicts.append(Verdict("model_output", False, detail))
            return self._abstain(ctx, usage, generate_ms, raw, verdicts, parsed.dropped)

        comp = compose(
            question,
            raw,
            prompt,
            ctx.cands,
            ctx.selection,
            ctx.composer,
            verbatim=self.guard_settings.verbatim_answers,
        )
        verdicts.append(Verdict("model_output", comp.short_answer is not None, comp.detail))
        if not comp.sentences:
            return self._abstain(ctx, usage, generate_ms, raw, verdicts, parsed.dropped)
        sources = ctx.cands.sources if len(prompt.sources) == len(ctx.retrieved) else None
        attribution = self.attributor.attribute(
            comp.sentences, sources or prompt.sources, question=question
        )
        src = self.attributor.sources(sources or prompt.sources)
        shown = [s for s in attribution.sentences if s.support >= self.guard_settings.min_support]
        if shown and len(shown) < len(attribution.sentences):
            # Unsupported sentences are never shown as if the documents said them.
            dropped = len(attribution.sentences) - len(shown)
            verdicts.append(Verdict("unsupported_removed", True, f"{dropped} sentence(s) removed"))
            attribution = self.attributor.attribute(
                [AnswerSentence(s.text, s.cited) for s in shown], src, question=question
            )
        citations = attribution.citations
        if comp.how == "selected":  # the platform chose these sources, not the model
            citations = tuple(replace(c, attributed=True) for c in citations)
        draft = Draft(question, prompt, attribution.text, citations, attribution)
        verdicts.extend(g.check(draft) for g in self.guards)
        considered = verdicts
        if ctx.policy.grounding.answers is Action.WARN:
            considered = [v for v in verdicts if v.guard not in GROUNDING]
        if abstention_reason(considered) is not None:
            return self._abstain(ctx, usage, generate_ms, raw, verdicts, parsed.dropped)
        flagged = ctx.views.flagged_texts if ctx.views is not None else ()
        checked = self.screen.answer(attribution.text, ctx.policy, flagged)
        verdicts.extend(checked.verdicts)
        if checked.outcome is Action.ABSTAIN:
            return self._abstain(
                ctx,
                usage,
                generate_ms,
                raw,
                verdicts,
                parsed.dropped,
                reason=f"the answer: {checked.reason}",
            )
        sentences = sentence_verdicts(attribution, src, self.guard_settings.min_support)
        short_answer = comp.short_answer
        if checked.outcome is Action.REDACT:
            sentences = tuple(replace(s, text=self._masked(s.text, ctx)) for s in sentences)
            if short_answer is not None:
                short_answer = self._masked(short_answer, ctx)
        return Answer(
            question=question,
            text=checked.text,
            citations=citations,
            retrieved=ctx.retrieved,
            model=self.llm.info,
            sampling=ctx.params,
            timings=self._timings(ctx, generate_ms),
            usage=usage,
            verdicts=tuple(verdicts),
            dropped_citations=parsed.dropped,
            sentences=sentences,
            short_answer=short_answer,
            p_unanswerable=ctx.p_unanswerable,
        )

    def _abstain(
        self,
        ctx: _Context,
        usage: Usage,
        generate_ms: float,
        raw: str,
        verdicts: list[Verdict] | None = None,
        dropped: int = 0,
        reason: str | None = None,
    ) -> Answer:
        """The honest answer: the documents do not answer; the closest sources listed,
        no citations claimed."""
        vs = list(verdicts if verdicts is not None else ctx.verdicts)
        reason = (
            reason
            or ctx.reason
            or abstention_reason(vs, raw)
            or "no answer could be grounded in the sources"
        )
        vs.append(Verdict("abstained", True, reason))
        return Answer(
            question=ctx.question,
            text=abstain_text(ctx.retrieved),
            citations=(),
            retrieved=ctx.retrieved,
            model=self.llm.info,
            sampling=ctx.params,
            timings=self._timings(ctx, generate_ms),
            usage=usage,
            verdicts=tuple(vs),
            dropped_citations=dropped,
            abstained=True,
            p_unanswerable=ctx.p_unanswerable,
        )

    def _masked(self, text: str, ctx: _Context) -> str:
        """``text`` with what the answer-stage policy redacts replaced."""
        return self.screen.answer(text, ctx.policy).text

    def _timings(self, ctx: _Context, generate_ms: float) -> Timings:
        total = (time.perf_counter() - ctx.t0) * 1000
        return Timings(round(ctx.retrieve_ms, 3), round(generate_ms, 3), round(total, 3))


def answerability_verdict(p: float, composer: AnswerComposer, has_candidates: bool) -> Verdict:
    """Passes when the abstention model's P(unanswerable) is under its operating point."""
    threshold = composer.abstainer.threshold
    fitted = composer.abstainer.meta.get("data", "?")
    if not has_candidates:
        return Verdict("answerable", False, "no complete sentence in the retrieved chunks", 0.0)
    detail = f"P(unanswerable) {p:.3f}, abstain from {threshold:.3f} (model fitted on {fitted})"
    return Verdict("answerable", p < threshold, detail, round(1.0 - p, 4))


def sentence_verdicts(
    attribution: Attribution, src: SourceSentences, min_support: float
) -> tuple[SentenceVerdict, ...]:
    """A verdict for each answer sentence: support from its cited source and the span of
    the supporting sentence in that source's chunk."""
    out = []
    for s in attribution.sentences:
        if not s.cited:
            out.append(SentenceVerdict(s.text, False, round(s.support, 4), None))
            continue
        j = s.cited[0] - 1
        start, end = src.spans[j][s.best[j]] if s.best else (None, None)
        out.append(
            SentenceVerdict(
                s.text,
                s.support >= min_support,
                round(s.support, 4),
                s.cited[0],
                src.sources[j].chunk.id,
                start,
                end,
            )
        )
    return tuple(out)
