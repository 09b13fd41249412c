"""Follow-up rewriting (generation.rewrite): the rules on written follow-ups, and the
model rewriter's fallback to them (a scripted reply: the logic under test is the
fallback, not the model's answer; the real model runs in bench/followup_rewrite.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.types import Completion, SamplingParams, Usage
from generation.rewrite import ModelRewriter, NoRewriter, RuleRewriter, Turn, build_rewriter

FORMATS = [Turn("Which file formats can be ingested?", "Plain text, Markdown, HTML and PDF.")]
RETRIEVERS = [
    Turn("What are the two retrievers?", "The sparse one, BM25, and the dense one with FAISS.")
]


@pytest.mark.parametrize(
    ("question", "history", "expected"),
    [
        ("how does it work?", FORMATS, "how does file formats ingested work?"),
        ("what is its limit?", FORMATS, "what is file formats ingested's limit?"),
        ("and what about PDFs?", FORMATS, "Which file formats can be ingested: what about PDFs?"),
        ("why?", FORMATS, "why (file formats ingested)?"),
        ("and the dense one?", RETRIEVERS, "the dense one (two retrievers)?"),
    ],
)
def test_rules_carry_the_previous_topic(question: str, history: list[Turn], expected: str) -> None:
    got = RuleRewriter().rewrite(question, history)
    assert (got.text, got.kind) == (expected, "rules")


def test_the_second_one_is_looked_for_in_the_previous_answer() -> None:
    got = RuleRewriter().rewrite("what about the second one?", RETRIEVERS)
    assert got.kind == "rules" and "faiss" in got.text and "retrievers" in got.text


@pytest.mark.parametrize(
    ("question", "history"),
    [
        ("What is the maximum upload size?", FORMATS),  # stands alone
        ("how does it work?", []),  # a first turn has nothing to resolve against
    ],
)
def test_a_standalone_question_is_unchanged(question: str, history: list[Turn]) -> None:
    assert RuleRewriter().rewrite(question, history).kind == "none"
    assert RuleRewriter().rewrite(question, history).text == question
    assert NoRewriter().rewrite(question, history).text == question


class ScriptedLLM:
    """Replies with a fixed text to any chat (only ``chat`` is called)."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.calls = 0

    def chat(self, messages: Sequence[tuple[str, str]], params: SamplingParams) -> Completion:
        self.calls += 1
        return Completion(self.reply, Usage())


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("Which file formats accept PDFs?", "model"),
        ("", "rules"),  # empty
        ("What is the weather like in Paris today?", "rules"),  # shares no word
        ("formats " * 60, "rules"),  # long
        ("and what about PDFs?", "rules"),  # unchanged
    ],
)
def test_the_model_falls_back_to_the_rules(reply: str, kind: str) -> None:
    llm = ScriptedLLM(reply)
    got = ModelRewriter(llm).rewrite("and what about PDFs?", FORMATS)  # type: ignore[arg-type]
    assert got.kind == kind and llm.calls == 1
    if kind == "model":
        assert got.text == reply


def test_the_model_is_not_asked_about_a_standalone_question() -> None:
    llm = ScriptedLLM("anything")
    rewriter = build_rewriter("model", llm)  # type: ignore[arg-type]
    assert rewriter.rewrite("What is the maximum upload size?", FORMATS).kind == "none"
    assert llm.calls == 0
