"""QueryPipeline branches: the real embedder, prompt builder and XQuAD chunks; the model is
a script here because the real one cannot be made to return an empty answer, a refusal or
a wrong [n] on demand (test_pipeline_slow.py runs the real Gemma model end to end)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from core.errors import CollectionNotFound, InvalidRequest
from core.settings import GuardSettings, LLMSettings
from core.types import (
    Answer,
    CollectionKey,
    Completion,
    ModelInfo,
    Prompt,
    PromptStyle,
    Query,
    SamplingParams,
    ScoredChunk,
    Usage,
)
from generation.citations import split_sentences
from generation.compose import QUESTION_FEATURES, AnswerComposer
from generation.guards import ABSTAIN_TEXT
from generation.linear import LinearModel
from generation.pipeline import Progress, QueryPipeline, sampling_from_settings
from tests.generation.fixtures_answer import (
    builder,
    chunks,
    embedder,
    paragraph,
    scored,
    xquad_case,
)

K = CollectionKey.default  # a collection of the default tenant


QUESTION, GOLD, PARA = xquad_case("University_of_Chicago", "Larry Ellison")


class ScriptedLLM:
    """Returns a fixed text; records what it was asked."""

    def __init__(self, text: str, style: PromptStyle = PromptStyle.COMPLETION) -> None:
        self.text = text
        self.style = style
        self.calls: list[tuple[str, SamplingParams]] = []

    @property
    def info(self) -> ModelInfo:
        return ModelInfo("/models/scripted.gguf", "ab" * 32, "scripted")

    @property
    def n_ctx(self) -> int:
        return 4096

    @property
    def default_style(self) -> PromptStyle:
        return self.style

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def count_chat_tokens(self, messages: Sequence[tuple[str, str]]) -> int:
        return sum(len(content.split()) + 4 for _, content in messages)

    def warm_up(self) -> None:
        pass

    def complete(self, prompt: str, params: SamplingParams) -> Completion:
        self.calls.append(("complete", params))
        return Completion(self.text, Usage(len(prompt.split()), len(self.text.split())))

    def chat(self, messages: Sequence[tuple[str, str]], params: SamplingParams) -> Completion:
        self.calls.append(("chat", params))
        return Completion(self.text, Usage(100, len(self.text.split())))

    def stream(self, prompt: Prompt, params: SamplingParams) -> Iterator[str]:
        self.calls.append(("stream", params))
        for word in self.text.split(" "):
            yield word + " "


class ListRetriever:
    """Returns the given chunks; raises CollectionNotFound for other collections."""

    def __init__(self, items: Sequence[ScoredChunk]) -> None:
        self.items = tuple(items)
        self.queries: list[Query] = []

    def retrieve(self, query: Query) -> list[ScoredChunk]:
        self.queries.append(query)
        if query.collection != K("docs"):
            raise CollectionNotFound(f"collection {query.collection!r} does not exist")
        return list(self.items[: query.top_k])


SOURCES = scored(QUESTION, [paragraph("Rhine", 0), PARA, paragraph("Oxygen", 0)])
SAMPLING = sampling_from_settings(LLMSettings())
# The default selector with an abstention model that never abstains: these tests are about
# the composition branches; the abstention decision has tests of its own below.
_NF = len(QUESTION_FEATURES)
NEVER = LinearModel(QUESTION_FEATURES, (0.0,) * _NF, (1.0,) * _NF, (0.0,) * _NF, -40.0)
ALWAYS = LinearModel(QUESTION_FEATURES, (0.0,) * _NF, (1.0,) * _NF, (0.0,) * _NF, 40.0)


def composer(abstainer: LinearModel = NEVER) -> AnswerComposer:
    default = AnswerComposer.default()
    return AnswerComposer(default.selector, abstainer, default.max_sentences)


def make(text: str, sources=SOURCES, style=PromptStyle.COMPLETION, composer_=None, **guards):
    llm = ScriptedLLM(text, style)
    retriever = ListRetriever(sources)
    comp = composer_ or composer()
    pipe = QueryPipeline(
        retriever,
        llm,
        builder(style),
        embedder(),
        GuardSettings(**guards),
        SAMPLING,
        composer_for=lambda _collection: comp,
    )
    return pipe, llm, retriever


def verdict(answer: Answer, name: str):
    return next(v for v in answer.verdicts if v.guard == name)


def gold_sentence() -> str:
    return next(s for s in split_sentences(PARA) if GOLD in s)


def test_a_span_answer_is_the_short_answer_and_its_sentence_the_answer() -> None:
    pipe, llm, retriever = make(f"the founder is {GOLD} [1] [7]")
    answer = pipe.answer(QUESTION, K("docs"), top_k=3)
    assert answer.short_answer == GOLD
    assert " ".join(gold_sentence().split()).rstrip(".") in answer.text
    assert answer.text.endswith("[2].")
    assert [(c.n, c.attributed) for c in answer.citations] == [(2, True)]
    assert answer.citations[0].source.chunk.id == SOURCES[1].chunk.id
    assert answer.dropped_citations == 1
    assert not answer.abstained and answer.p_unanswerable is not None
    assert answer.retrieved == SOURCES
    assert answer.model.sha256 == "ab" * 32
    assert answer.usage.completion_tokens > 0
    assert answer.timings.total_ms >= answer.timings.generate_ms >= 0
    assert all(v.passed for v in answer.verdicts), answer.verdicts
    assert {v.guard for v in answer.verdicts} >= {
        "input",
        "retrieval_similarity",
        "answerable",
        "model_output",
        "citations_valid",
        "supported",
        "no_leak",
    }
    # Completion prompts answer on one line: a newline stop is added to the sampling.
    assert llm.calls[0][0] == "complete" and "\n" in llm.calls[0][1].stop
    assert llm.calls[0][1].stop == ("\n\n", "Question:", "Passages:", "\n")
    assert answer.sampling == llm.calls[0][1]
    assert retriever.queries[0] == Query(QUESTION, K("docs"), 3)


def test_every_shown_sentence_has_a_verdict_with_its_span_in_the_cited_chunk() -> None:
    pipe, _, _ = make(f"{GOLD} [2]")
    answer = pipe.answer(QUESTION, K("docs"))
    assert answer.sentences and all(s.supported for s in answer.sentences)
    for s in answer.sentences:
        assert s.citation is not None and s.score >= 0.35
        chunk = SOURCES[s.citation - 1].chunk
        assert s.chunk_id == chunk.id
        assert s.char_start is not None and s.char_end is not None
        assert " ".join(chunk.text[s.char_start : s.char_end].split()) == s.text
        assert s.text.rstrip(".") in answer.text


def test_chat_style_prompts_go_to_chat() -> None:
    pipe, llm, _ = make(f"{GOLD} [2]", style=PromptStyle.CHAT)
    answer = pipe.answer(QUESTION, K("docs"))
    assert llm.calls[0][0] == "chat"
    assert [c.n for c in answer.citations] == [2]


def test_low_retrieval_similarity_abstains_without_calling_the_model() -> None:
    pipe, llm, _ = make(f"{GOLD} [2]", sources=chunks([PARA], dense=0.05))
    answer = pipe.answer(QUESTION, K("docs"))
    assert answer.abstained and answer.text.startswith(ABSTAIN_TEXT)
    assert "doc0.txt" in answer.text  # the closest source is named
    assert answer.citations == () and answer.sentences == ()
    assert len(answer.retrieved) == 1  # the sources are still listed
    assert llm.calls == []
    assert not verdict(answer, "retrieval_similarity").passed


def test_the_abstention_model_decides_before_the_model_runs() -> None:
    pipe, llm, _ = make(f"{GOLD} [2]", composer_=composer(ALWAYS))
    answer = pipe.answer(QUESTION, K("docs"))
    assert answer.abstained and answer.text.startswith(ABSTAIN_TEXT)
    assert answer.p_unanswerable == pytest.approx(1.0)
    assert llm.calls == []
    v = verdict(answer, "answerable")
    assert not v.passed and "P(unanswerable)" in v.detail
    assert "do not answer" in verdict(answer, "abstained").detail


def test_the_default_abstention_model_declines_off_topic_sources() -> None:
    """Real dense scores: the founder question against Rhine / oxygen / Kenya paragraphs
    abstains, against its own paragraph it answers (the shipped default model)."""
    far = [paragraph("Rhine", 0), paragraph("Oxygen", 0), paragraph("Kenya", 0)]
    near = [PARA, paragraph("Rhine", 0), paragraph("Oxygen", 0)]
    default = AnswerComposer.default()
    pipe, llm, _ = make(GOLD, sources=scored(QUESTION, far), composer_=default)
    assert pipe.answer(QUESTION, K("docs")).abstained and llm.calls == []
    pipe, _, _ = make(f"{GOLD} [1]", sources=scored(QUESTION, near), composer_=default)
    answer = pipe.answer(QUESTION, K("docs"))
    assert not answer.abstained and answer.short_answer == GOLD


def test_a_model_refusal_abstains() -> None:
    pipe, _, _ = make("The answer is not in the sources.")
    answer = pipe.answer(QUESTION, K("docs"))
    assert answer.abstained and answer.citations == ()
    assert "do not contain" in verdict(answer, "abstained").detail


def test_an_invented_claim_gives_way_to_the_source_sentences() -> None:
    pipe, _, _ = make("Bill Gates founded it in Seattle [2].")
    answer = pipe.answer(QUESTION, K("docs"))
    assert not answer.abstained and GOLD in answer.text and "Seattle" not in answer.text
    assert answer.short_answer is None
    assert not verdict(answer, "model_output").passed


def test_an_unsupported_answer_abstains() -> None:
    # Free wording allowed (a bigger model's setting): the support check decides.
    pipe, _, _ = make(
        "it was started by a group of sailors in a small harbour town [2].",
        verbatim_answers=False,
    )
    answer = pipe.answer(QUESTION, K("docs"))
    assert answer.abstained and answer.text.startswith(ABSTAIN_TEXT)
    assert not verdict(answer, "supported").passed


def test_supported_free_wording_is_kept_when_verbatim_answers_is_off() -> None:
    raw = f"The founder was {GOLD}, according to the university's history [2]."
    pipe, _, _ = make(raw, verbatim_answers=False)
    answer = pipe.answer(QUESTION, K("docs"))
    assert not answer.abstained and "according to the university" in answer.text
    assert answer.sentences and answer.sentences[0].citation == 2


def test_wording_that_is_no_span_of_the_sources_is_replaced_by_source_sentences() -> None:
    """The default (verbatim_answers): an answer is text copied from the sources."""
    raw = "it was started by a group of sailors in a small harbour town [2]."
    pipe, _, _ = make(raw)
    answer = pipe.answer(QUESTION, K("docs"))
    assert not answer.abstained and GOLD in answer.text and "sailors" not in answer.text
    assert [c.n for c in answer.citations] == [2]
    assert "no span" in verdict(answer, "model_output").detail


@pytest.mark.parametrize("raw", ["", "[1]", "about 8 minutes [1]"])
def test_unusable_output_falls_back_to_the_selected_sentences(raw) -> None:
    pipe, _, _ = make(raw)
    answer = pipe.answer(QUESTION, K("docs"))
    assert not answer.abstained
    assert GOLD in answer.text and answer.short_answer is None
    assert [(c.n, c.attributed) for c in answer.citations] == [(2, True)]
    assert not verdict(answer, "model_output").passed


def test_headings_titles_and_fragments_are_never_the_answer() -> None:
    doc = f"# University of Chicago\n\nHistory\n\n{PARA}"
    pipe, _, _ = make("", sources=chunks([doc]))
    answer = pipe.answer(QUESTION, K("docs"))
    assert not answer.abstained
    assert "#" not in answer.text and not answer.text.startswith("History")
    assert all(s.text[0].isupper() and len(s.text.split()) >= 4 for s in answer.sentences)


def test_stream_yields_stages_then_the_final_texts_pieces_then_the_answer() -> None:
    pipe, _, _ = make(f"{GOLD} [2]")
    items = list(pipe.stream(QUESTION, K("docs")))
    stages = [i.stage for i in items if isinstance(i, Progress)]
    assert stages == ["retrieved", "generating", "verifying"]
    pieces = [i for i in items if isinstance(i, str)]
    final = items[-1]
    assert isinstance(final, Answer) and len(pieces) > 2
    assert "".join(pieces) == final.text  # only what the answer says is streamed
    assert final.short_answer == GOLD and GOLD in final.text and "[2]" in final.text
    assert final.usage.completion_tokens == 3  # "Larry Ellison [2]", counted by the LLM
    assert final.text == pipe.answer(QUESTION, K("docs")).text


def test_stream_abstains_with_the_abstention_as_its_text() -> None:
    pipe, llm, _ = make(GOLD, sources=chunks([PARA], dense=0.0))
    items = list(pipe.stream(QUESTION, K("docs")))
    final = items[-1]
    assert isinstance(final, Answer) and final.abstained
    assert "".join(i for i in items if isinstance(i, str)) == final.text
    assert [i.stage for i in items if isinstance(i, Progress)] == ["retrieved"]
    assert llm.calls == []


def test_errors_propagate_before_generation() -> None:
    pipe, llm, _ = make(GOLD)
    with pytest.raises(CollectionNotFound):
        pipe.answer(QUESTION, K("nope"))
    with pytest.raises(InvalidRequest):
        pipe.answer("  ", K("docs"))
    with pytest.raises(InvalidRequest):
        pipe.stream("x" * 3000, K("docs"))  # raised at the call, not on first next()
    with pytest.raises(TypeError, match="bare name"):
        pipe.answer(QUESTION, "docs")  # type: ignore[arg-type]
    assert llm.calls == []


def test_sampling_from_settings() -> None:
    params = sampling_from_settings(LLMSettings(temperature=0.3, max_tokens=12, stop=["##"]))
    assert params == SamplingParams(
        temperature=0.3,
        top_p=1.0,
        top_k=40,
        max_tokens=12,
        seed=0,
        repeat_penalty=1.1,
        stop=("##",),
    )
