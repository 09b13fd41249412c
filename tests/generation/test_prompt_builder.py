"""GroundedPromptBuilder: numbering, styles, and fitting with the model's own tokenizer."""

from __future__ import annotations

import re

import pytest

from core.errors import ContextOverflow
from core.types import Chunk, PromptStyle, ScoredChunk
from generation.llama_cpp_llm import LlamaCppLLM
from generation.prompt import (
    DEFAULT_STOP,
    FEW_SHOT,
    NOT_IN_SOURCES,
    GroundedPromptBuilder,
    stop_strings,
)


def sc(i: int, text: str, *, page: int | None = None, source: str | None = None) -> ScoredChunk:
    chunk = Chunk(
        id=f"c{i}", document_id=f"d{i}", collection="t", ordinal=0, text=text,
        char_start=0, char_end=len(text), source=source or f"doc{i}.txt",
        media_type="text/plain", page=page,
    )  # fmt: skip
    return ScoredChunk(chunk=chunk, score=1.0 / (i + 1))


def words(s: str) -> int:
    return len(s.split())


SOURCES = [
    sc(0, "The Eiffel Tower was built in 1889.", page=3, source="towers.pdf"),
    sc(1, "The Danube ends in the Black Sea.\nIt flows through ten countries."),
]


def test_completion_prompt_numbers_sources_in_rank_order_and_ends_with_answer() -> None:
    p = GroundedPromptBuilder(PromptStyle.COMPLETION, words, 4096, 64).build("When?", SOURCES)
    assert p.style is PromptStyle.COMPLETION and p.messages == ()
    assert p.text.startswith("Answer the question using only the numbered passages")
    assert NOT_IN_SOURCES in p.text and "[n]" in p.text
    assert FEW_SHOT in p.text  # the worked examples come before the real passages
    real = p.text.split(FEW_SHOT, 1)[1]
    assert "[1] (towers.pdf, p. 3) The Eiffel Tower was built in 1889." in real
    assert "[2] (doc1.txt) The Danube ends in the Black Sea. It flows" in real  # one line
    assert real.index("[1]") < real.index("[2]")
    assert p.text.endswith("Question: When?\nAnswer:")
    assert p.sources == tuple(SOURCES) and p.dropped_sources == 0
    assert p.prompt_tokens == words(p.text)
    # The examples' passages are not the user's.
    assert "Eiffel" not in FEW_SHOT and "Danube ends in the Black Sea.\n" not in FEW_SHOT


def test_chat_prompt_is_system_plus_user() -> None:
    p = GroundedPromptBuilder(PromptStyle.CHAT, words, 4096, 64).build("When?", SOURCES)
    assert p.text == ""
    (r1, system), (r2, user) = p.messages
    assert (r1, r2) == ("system", "user")
    assert NOT_IN_SOURCES in system and "[n]" in system
    assert "[1] (towers.pdf, p. 3)" in user and user.endswith("Question: When?")


@pytest.mark.parametrize("style", [PromptStyle.COMPLETION, PromptStyle.CHAT])
def test_prompt_carries_the_question_it_asks(style: PromptStyle) -> None:
    # Whitespace is collapsed as in the prompt; a "Question:" inside the question stays.
    asked = "  Question: when was\nthe  tower built? "
    p = GroundedPromptBuilder(style, words, 4096, 64).build(asked, SOURCES)
    assert p.question == "Question: when was the tower built?"
    shown = p.text if style is PromptStyle.COMPLETION else p.messages[-1][1]
    assert f"Question: {p.question}" in shown


def test_stop_strings_are_defined_once_per_style() -> None:
    assert stop_strings() == DEFAULT_STOP == ("\n\n", "Question:", "Passages:")
    # A COMPLETION answer is one line: its line end is added, also to a user's stops.
    assert stop_strings(PromptStyle.COMPLETION) == (*DEFAULT_STOP, "\n")
    assert stop_strings(PromptStyle.CHAT) == DEFAULT_STOP
    assert stop_strings(PromptStyle.COMPLETION, ["##"]) == ("##", "\n")
    assert stop_strings(PromptStyle.COMPLETION, ["\n", "##"]) == ("\n", "##")
    assert stop_strings(PromptStyle.CHAT, ["##"]) == ("##",)
    assert stop_strings(PromptStyle.CHAT, []) == ()  # an explicit empty list: no stops
    assert stop_strings(stop=["##"]) == ("##",)


def test_drops_lowest_ranked_sources_to_fit() -> None:
    many = [sc(i, f"source {i} " + "filler " * 50) for i in range(20)]
    b = GroundedPromptBuilder(PromptStyle.COMPLETION, words, 1000, 100)
    p = b.build("q?", many)
    assert p.prompt_tokens + 100 <= 1000
    assert 1 <= len(p.sources) < 20
    assert p.sources == tuple(many[: len(p.sources)])  # the top-ranked ones, in order
    assert p.dropped_sources == 20 - len(p.sources)
    numbers = [int(n) for n in re.findall(r"^\[(\d+)\] \(doc", p.text, flags=re.M)]
    assert numbers == list(range(1, len(p.sources) + 1))


def test_truncates_one_overlong_source() -> None:
    p = GroundedPromptBuilder(PromptStyle.COMPLETION, words, 4096, 64, max_source_tokens=20).build(
        "q?", [sc(0, "alpha " * 500)]
    )
    line = next(x for x in p.text.splitlines() if x.startswith("[1] (doc0.txt)"))
    body = line[len("[1] (doc0.txt) ") :]
    assert words(body) <= 20 and body.endswith("…")


def test_question_too_long_raises_context_overflow() -> None:
    b = GroundedPromptBuilder(PromptStyle.COMPLETION, words, 512, 64)
    with pytest.raises(ContextOverflow) as err:
        b.build("why " * 600, SOURCES)
    assert "512" in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("style", [PromptStyle.COMPLETION, PromptStyle.CHAT])
def test_never_overflows_with_the_real_tokenizer(
    smollm_llm: LlamaCppLLM, style: PromptStyle
) -> None:
    text = (
        "Ergänzungsschulen are secondary or post-secondary (non-tertiary) schools, run by "
        "private individuals; 139th of 176 — ‘CPI’ score 27/100. "
    )
    many = [sc(i, text * 12) for i in range(40)]  # ~40 x 300+ tokens, far over 2048
    b = GroundedPromptBuilder(
        style, smollm_llm.count_tokens, smollm_llm.n_ctx, 256,
        count_chat_tokens=smollm_llm.count_chat_tokens,
    )  # fmt: skip
    p = b.build("How are ergänzungsschulen funded?", many)
    exact = (
        smollm_llm.count_tokens(p.text)
        if style is PromptStyle.COMPLETION
        else smollm_llm.count_chat_tokens(p.messages)
    )
    assert p.prompt_tokens == exact
    assert exact + 256 <= smollm_llm.n_ctx
    assert len(p.sources) >= 2 and p.dropped_sources == 40 - len(p.sources)
    # Each source was cut to max_source_tokens (300).
    for line in (p.text or p.messages[1][1]).splitlines():
        if re.match(r"^\[\d+\] \(doc", line):
            assert smollm_llm.count_tokens(line.split(") ", 1)[1]) <= 300


@pytest.mark.slow
def test_gemma_tokenizer_fits_too(gemma_llm: LlamaCppLLM) -> None:
    many = [
        sc(i, "The tower was rebuilt in stone after the flood of 1421. " * 30) for i in range(30)
    ]
    b = GroundedPromptBuilder(PromptStyle.COMPLETION, gemma_llm.count_tokens, gemma_llm.n_ctx, 64)
    p = b.build("When was the tower rebuilt?", many)
    assert gemma_llm.count_tokens(p.text) + 64 <= gemma_llm.n_ctx
