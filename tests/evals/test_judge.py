"""Judges: the agreement figures against hand-computed values, pairwise order logic with
small deterministic judges (each a real implementation of the protocol), verdict parsing,
the labelled-set file and builder; the LLM judge on the real bundled model (slow)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from core.errors import InvalidRequest
from core.settings import Settings
from core.types import PromptStyle
from evals.datasets import default_datasets_dir
from evals.judge import (
    DEFAULT_RUBRIC,
    DEFAULT_SET,
    UNPARSEABLE,
    Confusion,
    JudgeExample,
    Label,
    LLMJudge,
    Pick,
    _fit,
    build_judge,
    build_judge_set,
    cohen_kappa,
    judge_check,
    load_judge_set,
    pairwise,
    parse_pick,
    parse_verdict,
    write_judge_set,
)
from evals.suite import JudgeSpec
from tests.evals.test_answer_eval import line

CLAPNQ = default_datasets_dir() / "clapnq-tune"


# -- small judges: each grades by a rule, as the protocol asks ------------------------------------


class OverlapJudge:
    """Passes an answer whose words all occur in the sources."""

    def judge(
        self, rubric: str, question: str, answer: str, sources: Sequence[str]
    ) -> tuple[bool, float, str]:
        words = set(answer.lower().split())
        known = set(" ".join(sources).lower().split())
        share = len(words & known) / len(words) if words else 0.0
        return share == 1.0, share, f"{share:.2f} of the words are in the sources"


class ConstantJudge:
    def __init__(self, passed: bool, reason: str = "always") -> None:
        self.passed, self.reason = passed, reason

    def judge(
        self, rubric: str, question: str, answer: str, sources: Sequence[str]
    ) -> tuple[bool, float, str]:
        return self.passed, float(self.passed), self.reason


class FirstPositionJudge:
    """Always prefers the answer shown first: the bias asking in both orders catches."""

    def prefer(
        self, rubric: str, question: str, first: str, second: str, sources: Sequence[str]
    ) -> tuple[Pick | None, str]:
        return 1, "the first one"


class SupportedJudge:
    """Prefers the answer whose words the sources hold more of; says nothing on a tie."""

    def prefer(
        self, rubric: str, question: str, first: str, second: str, sources: Sequence[str]
    ) -> tuple[Pick | None, str]:
        known = set(" ".join(sources).lower().split())
        a, b = (len(set(x.lower().split()) & known) for x in (first, second))
        if a == b:
            return None, f"{UNPARSEABLE}: 'tie'"
        return (1, "first") if a > b else (2, "second")


SOURCES = ["The Danube ends in the Black Sea"]


def ex(answer: str, label: Label, kind: str = "") -> JudgeExample:
    return JudgeExample("Where does the Danube end?", answer, tuple(SOURCES), label, answer, kind)


# -- agreement figures --------------------------------------------------------------------------


def test_kappa_against_a_hand_computed_value() -> None:
    # 4 good/good, 1 good/bad, 2 bad/good, 3 bad/bad: p_o = 0.7;
    # p_e = 0.5 * 0.6 + 0.5 * 0.4 = 0.5; kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4
    labels = ["good"] * 5 + ["bad"] * 5
    judged = ["good"] * 4 + ["bad"] + ["good"] * 2 + ["bad"] * 3
    assert cohen_kappa(labels, judged) == pytest.approx(0.4)
    assert cohen_kappa(labels, labels) == pytest.approx(1.0)
    assert cohen_kappa(labels, ["good"] * 10) == pytest.approx(0.0)  # one verdict for all
    assert cohen_kappa(labels, list(reversed(labels))) == pytest.approx(-1.0)
    assert cohen_kappa(["good"] * 3, ["good"] * 3) == 0.0  # chance agreement is total
    with pytest.raises(ValueError):
        cohen_kappa(["good"], [])


def test_judge_check_counts_agreement() -> None:
    labelled = [
        ex("the Black Sea", "good", "gold"),  # judged good
        ex("Black Sea", "good", "gold"),  # judged good
        ex("it ends in the Black Sea", "good", "gold"),  # judged bad: "it", "in" missing
        ex("the North Sea", "bad", "swapped"),  # judged bad
        ex("the Danube Sea", "bad", "swapped"),  # judged good: every word is in the source
        ex("Vienna", "bad", "swapped"),  # judged bad
    ]
    said: list[str] = []
    check = judge_check(OverlapJudge(), labelled, progress=said.append)
    assert check.n == 6
    assert check.confusion == Confusion(good_good=2, good_bad=1, bad_good=1, bad_bad=2)
    assert check.accuracy == pytest.approx(4 / 6)
    # p_o = 2/3, p_e = 0.5 * 0.5 + 0.5 * 0.5 = 0.5 -> kappa 1/3
    assert check.kappa == pytest.approx(1 / 3)
    assert check.pass_rate == pytest.approx(0.5)
    assert check.by_kind() == {"gold": pytest.approx(2 / 3), "swapped": pytest.approx(2 / 3)}
    assert said == [f"judged {i}/6" for i in range(1, 7)]
    bad = [r for r in check.results if not r.agrees]
    assert [(r.id, r.label, r.predicted) for r in bad] == [
        ("it ends in the Black Sea", "good", "bad"),
        ("the Danube Sea", "bad", "good"),
    ]
    out = check.to_json()
    assert out["confusion"] == {"good/good": 2, "good/bad": 1, "bad/good": 1, "bad/bad": 2}
    assert out["kappa"] == round(1 / 3, 4) and len(out["results"]) == 6
    json.dumps(out)
    assert "kappa 0.333" in check.summary()


def test_a_judge_that_always_passes_agrees_by_chance_only() -> None:
    labelled = [ex("a", "good"), ex("b", "good"), ex("c", "bad"), ex("d", "bad")]
    check = judge_check(ConstantJudge(True), labelled)
    assert (check.accuracy, check.kappa) == (0.5, 0.0)


def test_unparseable_output_is_a_failed_grade_and_counted() -> None:
    labelled = [ex("a", "good"), ex("b", "bad")]
    check = judge_check(ConstantJudge(False, f"{UNPARSEABLE}: 'hmm'"), labelled)
    assert check.unparseable == 2
    assert [r.predicted for r in check.results] == ["bad", "bad"]
    assert check.to_json()["unparseable"] == 2


def test_judge_check_needs_both_labels() -> None:
    with pytest.raises(InvalidRequest, match="both good and bad"):
        judge_check(OverlapJudge(), [ex("a", "good"), ex("b", "good")])
    with pytest.raises(InvalidRequest, match="no labelled examples"):
        judge_check(OverlapJudge(), [])


# -- pairwise ----------------------------------------------------------------------------------


def test_pairwise_counts_only_when_both_orders_agree() -> None:
    v = pairwise(SupportedJudge(), "Where?", "the Black Sea", "the North Pole", SOURCES)
    assert (v.winner, v.consistent, v.picks) == ("a", True, ("a", "a"))
    assert v.reason.startswith("A in both orders")
    v = pairwise(SupportedJudge(), "Where?", "Vienna", "Black Sea", SOURCES)
    assert (v.winner, v.picks) == ("b", ("b", "b"))

    biased = pairwise(FirstPositionJudge(), "Where?", "the Black Sea", "Vienna", SOURCES)
    assert (biased.winner, biased.consistent, biased.picks) == (None, False, ("a", "b"))
    assert biased.reason.startswith("inconsistent: ")

    tie = pairwise(SupportedJudge(), "Where?", "Vienna", "Paris", SOURCES)
    assert (tie.winner, tie.consistent, tie.picks) == (None, False, (None, None))
    assert tie.reason.startswith("no verdict: ") and UNPARSEABLE in tie.reason


# -- parsing a model's text --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("PASS", True),
        (" pass.", True),
        ("The answer is a PASS", True),
        ("Yes", True),
        ("FAIL", False),
        ("It fails the rubric", False),
        ("No", False),
        ("incorrect", False),
        ("The answer is not supported by", False),
        ("PASS or FAIL", None),  # names both
        ("The IT industry continues", None),
        ("", None),
        ("passage", None),  # a word boundary, not a prefix
    ],
)
def test_parse_verdict(text: str, verdict: bool | None) -> None:
    assert parse_verdict(text) is verdict


@pytest.mark.parametrize(
    ("text", "pick"),
    [
        ("1", 1),
        (" 2", 2),
        ("Answer 2.", 2),
        ("answer 1 is better", 1),
        ("1 or 2", None),
        ("neither", None),
        ("12", None),
    ],
)
def test_parse_pick(text: str, pick: int | None) -> None:
    assert parse_pick(text) == pick


def test_sources_are_cut_until_the_prompt_fits() -> None:
    texts = ["word " * 1000, "short source"]

    def count(t: Sequence[str]) -> int:
        return sum(len(x) for x in t) // 4  # a stand-in tokenizer: 4 characters a token

    fitted = _fit(texts, count, 300)
    assert fitted is not None and count(fitted) <= 300
    assert fitted[0].endswith(" …") and fitted[1] == "short source"
    assert _fit(texts, count, 10) is None  # not even the shortest cut fits
    assert _fit(["a", "b"], count, 300) == ["a", "b"]


# -- the labelled set --------------------------------------------------------------------------


def test_judge_set_file_round_trips(tmp_path: Path) -> None:
    examples = [ex("the Black Sea", "good", "gold"), ex("Vienna", "bad", "swapped")]
    path = write_judge_set(examples, tmp_path / "set.jsonl")
    assert load_judge_set(path) == examples
    # a user's own file: sources may be one text, id and kind may be left out
    own = tmp_path / "own.jsonl"
    own.write_text(
        json.dumps({"question": "q?", "answer": "a", "sources": "one text", "label": "bad"})
        + "\n\n"
    )
    (one,) = load_judge_set(own)
    assert (one.sources, one.label, one.id, one.kind) == (("one text",), "bad", "1", "")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answer": "a", "label": "good"}, "set.jsonl:1: 'question'"),
        ({"question": "q", "answer": 3, "label": "good"}, "'answer' must be a string"),
        ({"question": "q", "answer": "a", "label": "ok"}, '\'label\' must be "good" or "bad"'),
        ({"question": "q", "answer": "a", "sources": [1], "label": "bad"}, "'sources'"),
    ],
)
def test_bad_judge_set_lines_name_file_and_line(tmp_path: Path, row: dict, message: str) -> None:
    path = tmp_path / "set.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(InvalidRequest, match=message):
        load_judge_set(path)


def write_clapnq(root: Path, n: int = 8) -> None:
    folder = root / "clapnq-tune"
    folder.mkdir(parents=True)
    (folder / "answerable.jsonl").write_text(
        "".join(
            line(f"a{i}", f"q{i}?", f"Title {i}", f"passage {i}", f"answer {i}") for i in range(n)
        )
    )
    (folder / "unanswerable.jsonl").write_text(line("u0", "u?", "Title 0", "passage 0"))


def test_build_judge_set_is_balanced_and_seeded(tmp_path: Path) -> None:
    write_clapnq(tmp_path)
    examples = build_judge_set(6, seed=1, datasets_dir=tmp_path)
    assert build_judge_set(6, seed=1, datasets_dir=tmp_path) == examples
    assert build_judge_set(6, seed=2, datasets_dir=tmp_path) != examples
    assert sorted(e.kind for e in examples) == [
        "gold",
        "gold",
        "gold",
        "swapped-answer",
        "swapped-answer",
        "unrelated-passage",
    ]
    assert len({e.question for e in examples}) == 6  # each question once
    for e in examples:
        i = e.question[1:-1]
        own_answer, own_passage = e.answer == f"answer {i}", e.sources == (f"passage {i}",)
        assert e.label == ("good" if e.kind == "gold" else "bad")
        assert (own_answer, own_passage) == {
            "gold": (True, True),
            "swapped-answer": (False, True),
            "unrelated-passage": (True, False),
        }[e.kind]
    with pytest.raises(InvalidRequest, match="n must be 2 to 8"):
        build_judge_set(9, datasets_dir=tmp_path)


@pytest.mark.skipif(not CLAPNQ.is_dir(), reason="shared ClapNQ data not present")
def test_the_shipped_set_is_the_builders_output() -> None:
    shipped = load_judge_set(DEFAULT_SET)
    assert shipped == build_judge_set(60, seed=0)
    assert sum(e.label == "good" for e in shipped) == 30


# -- the LLM judge on the real bundled model ---------------------------------------------------


@pytest.mark.slow
def test_llm_judge_on_the_bundled_model(tmp_path: Path) -> None:
    from generation.models import smollm2_path

    settings = Settings(data_dir=tmp_path)
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"n_threads": 1, "n_ctx": 1024})}
    )
    judge = build_judge(JudgeSpec(model_path=str(smollm2_path())), settings)
    assert isinstance(judge, LLMJudge) and judge.style is PromptStyle.CHAT
    long_source = "The Danube ends in the Black Sea. " + "Rivers flow. " * 2000
    grade = judge.judge(
        DEFAULT_RUBRIC, "Where does the Danube end?", "the Black Sea", [long_source]
    )
    passed, score, reason = grade
    assert isinstance(passed, bool) and score in (0.0, 1.0)
    assert reason.startswith(("PASS (", "FAIL (", UNPARSEABLE))  # the cut source fitted
    assert (score == 1.0) is passed
    # temperature 0: the same grade again
    assert (
        judge.judge(DEFAULT_RUBRIC, "Where does the Danube end?", "the Black Sea", [long_source])
        == grade
    )

    # the completion prompt (base models') through the same model; a bundled key works
    completion = build_judge(
        JudgeSpec(model_path="smollm2-135m"), settings, style=PromptStyle.COMPLETION
    )
    passed, score, reason = completion.judge(DEFAULT_RUBRIC, "Where?", "Black Sea", SOURCES)
    assert reason.startswith(("PASS (", "FAIL (", UNPARSEABLE))
    v = pairwise(completion, "Where does the Danube end?", "the Black Sea", "Vienna", SOURCES)
    assert v.winner in ("a", "b", None) and (v.winner is not None) is v.consistent
