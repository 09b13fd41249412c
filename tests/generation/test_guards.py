"""Input guard, output guards (with real attribution) and abstention rules."""

from __future__ import annotations

import pytest

from core.errors import InvalidRequest
from core.settings import GuardSettings
from core.types import Citation, Verdict
from generation.attribution import Attributor
from generation.citations import AnswerSentence, parse_citations
from generation.guards import (
    CitationsValid,
    Draft,
    InputGuard,
    NoLeak,
    Supported,
    abstention_reason,
    clean_question,
    output_guards,
    retrieval_verdict,
    says_not_found,
)
from generation.prompt import INSTRUCTION, NOT_IN_SOURCES
from ingest.embedding import SentenceTransformerEmbedder
from tests.generation.fixtures_answer import (
    chunk,
    chunks,
    completion_prompt,
    embedder,
    paragraph,
    xquad_case,
)


@pytest.fixture(scope="module")
def emb() -> SentenceTransformerEmbedder:
    return embedder()


@pytest.fixture(scope="module")
def setup():
    question, gold, para = xquad_case("University_of_Chicago", "Larry Ellison")
    prompt = completion_prompt(question, chunks([paragraph("Rhine", 0), para]))
    return question, gold, prompt


def draft(emb, question, prompt, text) -> Draft:
    parsed = parse_citations(text, prompt.sources)
    att = Attributor(emb).attribute(parsed.sentences, prompt.sources, question=question)
    return Draft(question, prompt, att.text, att.citations, att)


# -- input -------------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\x00\x01"])
def test_empty_question_is_refused(question) -> None:
    with pytest.raises(InvalidRequest, match="empty"):
        InputGuard(GuardSettings()).clean(question)


def test_long_question_is_refused_with_the_limit_named() -> None:
    guard = InputGuard(GuardSettings(max_question_chars=20))
    with pytest.raises(InvalidRequest, match=r"21 characters.*limit is 20.*max_question_chars"):
        guard.clean("x" * 21)
    assert guard.clean("x" * 20) == "x" * 20


def test_control_characters_are_stripped() -> None:
    assert clean_question("Who\x00 won\u200b the\r\n cup?\x7f ") == "Who won the cup?"
    verdict = InputGuard(GuardSettings()).check("Who\x07 won?")
    assert verdict == Verdict("input", True, "control characters or extra whitespace removed")


# -- output ------------------------------------------------------------------------------


def test_a_grounded_answer_passes_every_output_guard(emb, setup) -> None:
    question, gold, prompt = setup
    d = draft(emb, question, prompt, f"{gold} [2]")
    verdicts = {v.guard: v for g in output_guards(GuardSettings()) for v in [g.check(d)]}
    assert all(v.passed for v in verdicts.values()), verdicts
    assert verdicts["supported"].score is not None and verdicts["supported"].score >= 0.6
    assert verdicts["no_leak"].score == 1.0


def test_an_ungrounded_answer_is_unsupported(emb, setup) -> None:
    question, _, prompt = setup
    d = draft(emb, question, prompt, "Bill Gates founded it in Seattle [2].")
    verdict = Supported(0.35).check(d)
    assert not verdict.passed
    assert verdict.score is not None and verdict.score < 0.35
    assert "unsupported" in verdict.detail


def test_citation_to_a_source_outside_the_prompt_is_invalid(emb, setup) -> None:
    question, gold, prompt = setup
    d = draft(emb, question, prompt, f"{gold} [2]")
    stranger = Citation(3, chunk("elsewhere", 9), "elsewhere")
    bad = Draft(question, prompt, d.text, (*d.citations, stranger), d.attribution)
    assert CitationsValid().check(d).passed
    verdict = CitationsValid().check(bad)
    assert not verdict.passed and "[3]" in verdict.detail
    swapped = Citation(1, prompt.sources[1], "x")  # right number range, wrong chunk
    assert (
        not CitationsValid()
        .check(Draft(question, prompt, d.text, (swapped,), d.attribution))
        .passed
    )


def test_copying_the_instruction_or_the_examples_is_a_leak(emb, setup) -> None:
    question, _, prompt = setup
    for text in (INSTRUCTION, "the Black Sea [2]"):
        att = Attributor(emb).attribute([AnswerSentence(text)], prompt.sources)
        verdict = NoLeak().check(Draft(question, prompt, text, att.citations, att))
        assert not verdict.passed, text


# -- abstention --------------------------------------------------------------------------


def test_retrieval_verdict() -> None:
    assert not retrieval_verdict((), 0.15).passed
    assert not retrieval_verdict(chunks(["a", "b"], dense=0.05), 0.15).passed
    assert retrieval_verdict((chunk("a", 0, dense=0.05), chunk("b", 1, dense=0.4)), 0.15).passed
    assert retrieval_verdict(chunks(["a"], dense=None), 0.15).passed  # BM25-only: no judge


@pytest.mark.parametrize(
    "text",
    [
        NOT_IN_SOURCES,
        "The passages do not contain the answer.",
        "This is not mentioned in the sources [1].",
        "I cannot find that.",
        "unknown",
        "No information is given.",
    ],
)
def test_model_refusals_are_recognised(text) -> None:
    assert says_not_found(text)


@pytest.mark.parametrize(
    "text", ["Larry Ellison [2]", "The Broncos did not have a good season", "an unknown soldier"]
)
def test_answers_are_not_refusals(text) -> None:
    assert not says_not_found(text)


def test_abstention_reasons() -> None:
    low = Verdict("retrieval_similarity", False, "best dense similarity 0.05")
    ok = Verdict("retrieval_similarity", True)
    unsupported = Verdict("supported", False, "min support 0.10")
    assert abstention_reason([low]).startswith("retrieval")
    assert abstention_reason([ok], NOT_IN_SOURCES) is not None
    assert abstention_reason([ok, unsupported]).startswith("unsupported")
    assert abstention_reason([ok, Verdict("supported", True)], "Larry Ellison") is None
