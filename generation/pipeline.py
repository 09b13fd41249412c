"""The one query path: question in, grounded, cited, verified ``Answer`` out.

input guard → retrieve (timed) → grounded prompt → LLM (timed) → citations → span copying
or fallback → attribution → output guards → Answer (or an honest abstention).

    pipeline = QueryPipeline(retriever, llm, GroundedPromptBuilder(...), embedder,
                             settings.guards, sampling_from_settings(settings.llm))
    answer = pipeline.answer("Who won Super Bowl 50?", "default", top_k=5)
    for piece in pipeline.stream("Who won?", "default"):
        ...  # str pieces of the raw model text, then the final Answer
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace

from core.settings import GuardSettings, LLMSettings
from core.types import (
    Answer,
    Filter,
    Prompt,
    PromptStyle,
    Query,
    SamplingParams,
    ScoredChunk,
    Timings,
    Usage,
    Verdict,
)
from generation.attribution import Attributor, SourceSentences
from generation.citations import AnswerSentence, parse_citations
from generation.extract import extract_span, fallback_sentence, unusable_reason
from generation.guards import (
    ABSTAIN_TEXT,
    Draft,
    InputGuard,
    abstention_reason,
    output_guards,
    retrieval_verdict,
)
from generation.ports import LLM, PromptBuilder, Retriever, SentenceEmbedder

SPAN_MAX_WORDS = 24  # span copying applies to short, one-sentence answers only
# A passage sentence answers in the model's place only when this close to the question
# (MiniLM cosine; on-topic sentences of the sample corpus scored 0.5-0.8, off-topic < 0.3).
FALLBACK_MIN_SIMILARITY = 0.4
# ...or this, for a sentence naming every name/identifier/number the question asks about
FALLBACK_ANCHORED_MIN_SIMILARITY = 0.25


def sampling_from_settings(llm: LLMSettings) -> SamplingParams:
    """The default sampling parameters of the configured model."""
    return SamplingParams(
        temperature=llm.temperature,
        top_p=llm.top_p,
        top_k=llm.top_k,
        max_tokens=llm.max_tokens,
        seed=llm.seed,
        repeat_penalty=llm.repeat_penalty,
        stop=tuple(llm.stop),
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


class QueryPipeline:
    """Answers questions from a collection with cited, verified answers.

    Never trusts the small model's own ``[n]``: every answer sentence is attributed to
    the source text that supports it, and an unsupported answer becomes an abstention.
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
    ) -> None:
        self.retriever = retriever
        self.llm = llm
        self.prompt_builder = prompt_builder
        self.embedder = embedder
        self.guard_settings = guard_settings
        self.default_sampling = default_sampling
        self.input_guard = InputGuard(guard_settings)
        self.attributor = Attributor(embedder, min_support=guard_settings.min_support)
        self.guards = output_guards(guard_settings)

    # -- entry points -----------------------------------------------------------------

    def answer(
        self,
        question: str,
        collection: str,
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
        if ctx.prompt.style is PromptStyle.CHAT:
            completion = self.llm.chat(ctx.prompt.messages, ctx.params)
        else:
            completion = self.llm.complete(ctx.prompt.text, ctx.params)
        generate_ms = (time.perf_counter() - t) * 1000
        return self._finish(ctx, completion.text, completion.usage, generate_ms)

    def stream(
        self,
        question: str,
        collection: str,
        *,
        top_k: int = 5,
        filter: Filter | None = None,
        sampling: SamplingParams | None = None,
    ) -> Iterator[str | Answer]:
        """Yields the model's raw text pieces as they come, then the final ``Answer``.

        The final answer's text can differ from the streamed pieces (copied to a passage
        span, attributed, or replaced by an abstention): show ``Answer.text`` at the end.
        Input errors and missing collections raise before the first piece.
        """
        ctx = self._prepare(question, collection, top_k, filter, sampling)
        return self._stream(ctx)

    def _stream(self, ctx: _Context) -> Iterator[str | Answer]:
        if ctx.prompt is None:
            yield self._abstain(ctx, Usage(), 0.0, "")
            return
        t = time.perf_counter()
        pieces: list[str] = []
        for piece in self.llm.stream(ctx.prompt, ctx.params):
            pieces.append(piece)
            yield piece
        generate_ms = (time.perf_counter() - t) * 1000
        text = "".join(pieces)
        usage = Usage(ctx.prompt.prompt_tokens, self.llm.count_tokens(text) if text else 0)
        yield self._finish(ctx, text, usage, generate_ms)

    # -- stages -----------------------------------------------------------------------

    def _prepare(
        self,
        question: str,
        collection: str,
        top_k: int,
        filter: Filter | None,
        sampling: SamplingParams | None,
    ) -> _Context:
        t0 = time.perf_counter()
        verdicts = [self.input_guard.check(question)]
        clean = self.input_guard.clean(question)
        t = time.perf_counter()
        retrieved = tuple(
            self.retriever.retrieve(Query(clean, collection, top_k, filter or Filter()))
        )
        retrieve_ms = (time.perf_counter() - t) * 1000
        ret = retrieval_verdict(retrieved, self.guard_settings.min_retrieval_similarity)
        verdicts.append(ret)
        params = sampling or self.default_sampling
        prompt = (
            self.prompt_builder.build(clean, retrieved, params.max_tokens) if ret.passed else None
        )
        if (
            prompt is not None
            and prompt.style is PromptStyle.COMPLETION
            and "\n" not in params.stop
        ):
            params = replace(params, stop=(*params.stop, "\n"))  # the answer is one line
        return _Context(clean, retrieved, prompt, tuple(verdicts), params, t0, retrieve_ms)

    def _finish(self, ctx: _Context, raw: str, usage: Usage, generate_ms: float) -> Answer:
        assert ctx.prompt is not None
        prompt, question = ctx.prompt, ctx.question
        verdicts = list(ctx.verdicts)
        parsed = parse_citations(raw, prompt.sources)
        sources = SourceSentences(prompt.sources, self.embedder)

        if abstention_reason(verdicts, raw):
            detail = f"the model says the sources do not hold the answer: {raw.strip()[:200]!r}"
            verdicts.append(Verdict("model_output", False, detail))
            return self._abstain(ctx, usage, generate_ms, raw, verdicts, parsed.dropped)

        reason = unusable_reason(raw, prompt, question)
        span = None
        if reason is None:
            sentences = list(parsed.sentences)
            body = " ".join(s.text for s in sentences)
            if len(sentences) == 1 and len(body.split()) <= SPAN_MAX_WORDS:
                span = extract_span(body, sources, question)
            if span is not None:
                sentences = [AnswerSentence(span.text, sentences[0].cited)]
                detail = f"{raw.strip()[:200]!r} copied to a span of source [{span.n}]"
                verdicts.append(Verdict("model_output", True, detail))
            elif not self.guard_settings.verbatim_answers:
                detail = f"{raw.strip()[:200]!r} kept as written"
                verdicts.append(Verdict("model_output", True, detail))
            else:
                reason = "not a span of the sources (verbatim_answers)"
        if reason is not None:  # the passage sentence closest to the question, or abstain
            fb = fallback_sentence(
                question, sources, FALLBACK_MIN_SIMILARITY, FALLBACK_ANCHORED_MIN_SIMILARITY
            )
            detail = (
                f"{reason}: {raw.strip()[:200]!r}; answered with the passage sentence most "
                "similar to the question"
            )
            verdicts.append(Verdict("model_output", False, detail))
            if fb is None:
                return self._abstain(ctx, usage, generate_ms, raw, verdicts, parsed.dropped)
            sentences = [AnswerSentence(fb.text, ())]

        attribution = self.attributor.attribute(sentences, sources, question=question)
        draft = Draft(question, prompt, attribution.text, attribution.citations, attribution)
        verdicts.extend(g.check(draft) for g in self.guards)
        if abstention_reason(verdicts) is not None:
            return self._abstain(ctx, usage, generate_ms, raw, verdicts, parsed.dropped)
        return Answer(
            question=question,
            text=attribution.text,
            citations=attribution.citations,
            retrieved=ctx.retrieved,
            model=self.llm.info,
            sampling=ctx.params,
            timings=self._timings(ctx, generate_ms),
            usage=usage,
            verdicts=tuple(verdicts),
            dropped_citations=parsed.dropped,
        )

    def _abstain(
        self,
        ctx: _Context,
        usage: Usage,
        generate_ms: float,
        raw: str,
        verdicts: list[Verdict] | None = None,
        dropped: int = 0,
    ) -> Answer:
        """The honest answer: sources listed, no citations claimed."""
        vs = list(verdicts if verdicts is not None else ctx.verdicts)
        reason = abstention_reason(vs, raw) or "no answer could be grounded in the sources"
        vs.append(Verdict("abstained", True, reason))
        return Answer(
            question=ctx.question,
            text=ABSTAIN_TEXT,
            citations=(),
            retrieved=ctx.retrieved,
            model=self.llm.info,
            sampling=ctx.params,
            timings=self._timings(ctx, generate_ms),
            usage=usage,
            verdicts=tuple(vs),
            dropped_citations=dropped,
            abstained=True,
        )

    def _timings(self, ctx: _Context, generate_ms: float) -> Timings:
        total = (time.perf_counter() - ctx.t0) * 1000
        return Timings(round(ctx.retrieve_ms, 3), round(generate_ms, 3), round(total, 3))
