"""SQuAD answer metrics against hand-computed values, and the reader-test data."""

from __future__ import annotations

import pytest

from evals.answer_metrics import (
    contains_gold,
    normalize_answer,
    squad_em,
    squad_f1,
    strip_citations,
)
from evals.reader_eval import DEFAULT_DATA, MAX_WORDS, default_postprocess, load_cases


def test_normalize_answer() -> None:
    assert normalize_answer("The  Black Sea! [2]") == "black sea"
    assert normalize_answer("An apple, a pear.") == "apple pear"
    assert strip_citations("x [1] y [2, 3]") == "x   y  "


def test_exact_match_hand_computed() -> None:
    assert squad_em("the Black Sea [2]", ["Black Sea"]) == 1.0
    assert squad_em("in the Black Sea", ["Black Sea"]) == 0.0
    assert squad_em("1889", ["in 1889", "1889"]) == 1.0  # best gold counts


def test_f1_hand_computed() -> None:
    # pred {in, black, sea}, gold {black, sea}: P = 2/3, R = 1 -> F1 = 0.8
    assert squad_f1("in the Black Sea", ["Black Sea"]) == pytest.approx(0.8)
    # pred {tuition, fees}, gold {charging, students, tuition, fees}: P = 1, R = .5 -> 2/3
    assert squad_f1("tuition fees", ["charging students tuition fees"]) == pytest.approx(2 / 3)
    assert squad_f1("nothing shared", ["Black Sea"]) == 0.0
    assert squad_f1("", [""]) == 1.0


def test_contains_gold_is_word_aligned() -> None:
    assert contains_gold("It ends in the Black Sea [2].", ["Black Sea"]) == 1.0
    assert contains_gold("in 18890", ["1889"]) == 0.0


def test_default_postprocess_takes_the_first_marker() -> None:
    from core.types import Prompt, PromptStyle

    p = Prompt(PromptStyle.COMPLETION, "", (), "", (), 0)
    assert default_postprocess(" the Black Sea [2] [1]", p) == ("the Black Sea [2] [1]", 2)
    assert default_postprocess("no marker", p) == ("no marker", None)


@pytest.mark.skipif(not DEFAULT_DATA.exists(), reason="shared XQuAD data not present")
def test_reader_cases_keep_the_gold_answer_in_a_shuffled_position() -> None:
    cases = load_cases(DEFAULT_DATA, 30, seed=0)
    assert len(cases) == 30 and cases == load_cases(DEFAULT_DATA, 30, seed=0)
    assert {c.gold_n for c in cases} == {1, 2, 3}
    for c in cases:
        assert len(c.sources) == 3
        gold = c.sources[c.gold_n - 1].chunk
        assert any(a in gold.text for a in c.answers)
        assert all(len(s.chunk.text.split()) <= MAX_WORDS for s in c.sources)
        others = [s.chunk.document_id for s in c.sources if s is not c.sources[c.gold_n - 1]]
        assert gold.document_id not in others  # distractors come from other articles
