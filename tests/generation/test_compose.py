"""Answer composition: displayable sentences, candidate features, the selector, stored
models. The real embedding model and XQuAD paragraphs; no LLM."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import InvalidRequest
from generation.citations import sentence_spans, split_sentences
from generation.compose import (
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    AnswerComposer,
    Candidates,
    compose,
    default_models,
    is_displayable,
    make_answer_postprocess,
)
from generation.linear import LinearModel
from tests.generation.fixtures_answer import (
    chunks,
    completion_prompt,
    embedder,
    paragraph,
    scored,
    xquad_case,
)

QUESTION, GOLD, PARA = xquad_case("University_of_Chicago", "Larry Ellison")


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("The university was founded in 1890 by John D. Rockefeller.", True),
        ("# Somatic cell nuclear transfer", False),  # a markdown heading
        ("United States", False),  # a title
        ("O2.", False),  # a fragment
        ("which was later rebuilt in stone after the flood.", False),  # cut by chunking
        ("What is the default chunk size?", False),  # a question
        ("The furnace was rebuilt after a flood in 1931 and", False),  # no end
        ('"Parens patriae" is Latin for "parent of the nation".', True),
    ],
)
def test_displayable_sentences(text: str, ok: bool) -> None:
    assert is_displayable(text) is ok


def test_sentence_spans_point_into_the_text() -> None:
    text = "  First one here. Second, with Dr. Smith!\n\nA heading\n\nThird [1]. "
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == split_sentences(text)
    assert split_sentences(text) == [
        "First one here.",
        "Second, with Dr. Smith!",
        "A heading",
        "Third [1].",
    ]


def test_candidates_have_features_and_spans() -> None:
    sources = scored(QUESTION, [paragraph("Rhine", 0), PARA])
    cands = Candidates.build(QUESTION, sources, embedder())
    assert cands.features.shape == (len(cands.items), len(SENTENCE_FEATURES))
    assert cands.question_features.shape == (len(QUESTION_FEATURES),)
    for c in cands.items:
        text = sources[c.n - 1].chunk.text
        assert " ".join(text[c.start : c.end].split()) == c.text
        assert is_displayable(c.text)
    best = cands.items[int(np.argmax(cands.cos))]
    assert best.n == 2  # the founder question's best sentence is in its own paragraph


def test_overlapping_chunks_do_not_repeat_a_sentence() -> None:
    dup = chunks([PARA, PARA])
    dup = tuple(
        type(sc)(chunk=type(sc.chunk)(**{**_fields(sc.chunk), "document_id": "same"}), score=1.0)
        for sc in dup
    )
    cands = Candidates.build(QUESTION, dup, embedder())
    assert len({c.text for c in cands.items}) == len(cands.items)
    assert {c.n for c in cands.items} == {1}


def _fields(obj: object) -> dict:
    return {f: getattr(obj, f) for f in obj.__slots__}  # type: ignore[attr-defined]


def test_the_default_selector_picks_the_answer_sentence_in_document_order() -> None:
    comp = AnswerComposer.default()
    sources = scored(QUESTION, [PARA, paragraph("Rhine", 0), paragraph("Oxygen", 0)])
    cands = Candidates.build(QUESTION, sources, embedder())
    sel = comp.select(cands)
    assert 1 <= len(sel.chosen) <= comp.max_sentences
    texts = [cands.items[r].text for r in sel.chosen]
    assert any(GOLD in t for t in texts)
    starts = [cands.items[r].doc_start for r in sel.chosen]
    assert starts == sorted(starts)
    assert len({cands.items[r].document_id for r in sel.chosen}) == 1
    assert comp.select(cands, limit=0).chosen == ()


def test_default_models_are_shipped_and_documented() -> None:
    selector, abstainer = default_models()
    assert selector.features == SENTENCE_FEATURES and abstainer.features == QUESTION_FEATURES
    assert 0.0 < abstainer.threshold < 1.0
    cv = abstainer.meta["cv"]["figures"]  # the cross-validated figures travel with the model
    assert {"abstention_f1", "answerable_answered", "token_f1_answered"} <= set(cv)


def test_linear_model_round_trip_and_errors() -> None:
    m = LinearModel(("a", "b"), (1.0, 0.0), (2.0, 1.0), (0.5, -1.0), 0.1, 0.3, {"data": "x"})
    again = LinearModel.from_json(json.loads(json.dumps(m.to_json())), ("a", "b"))
    x = np.array([[3.0, 1.0], [0.0, 0.0]])
    assert np.allclose(again.proba(x), m.proba(x))
    z = (3.0 - 1.0) / 2.0 * 0.5 + 1.0 * -1.0 + 0.1
    assert m.proba(x)[0] == pytest.approx(1 / (1 + np.exp(-z)))
    with pytest.raises(InvalidRequest, match="fit it again"):
        LinearModel.from_json(m.to_json(), ("a", "c"))
    with pytest.raises(InvalidRequest, match="not a stored linear model"):
        LinearModel.from_json({"features": ["a"]})
    with pytest.raises(InvalidRequest, match="2 features but 1"):
        LinearModel(("a", "b"), (0.0,), (1.0, 1.0), (1.0, 1.0), 0.0)
    with pytest.raises(InvalidRequest, match="selector"):
        AnswerComposer.from_json({"abstention": {}})


def _compose(raw: str, sources: tuple) -> tuple[Candidates, object]:
    comp = AnswerComposer.default()
    cands = Candidates.build(QUESTION, sources, embedder())
    prompt = completion_prompt(QUESTION, sources)
    return cands, compose(QUESTION, raw, prompt, cands, comp.select(cands), comp)


def test_a_copied_sentence_anchors_the_answer_and_a_short_span_is_the_short_answer() -> None:
    sources = scored(QUESTION, [paragraph("Rhine", 0), PARA])
    cands = Candidates.build(QUESTION, sources, embedder())
    proba = AnswerComposer.default().select(cands).proba
    ranked = [cands.items[r] for r in np.argsort(-proba)[:3]]
    copied = next(c for c in ranked if len(c.text.split()) <= 40)  # a plausible sentence
    _, whole = _compose(f"{copied.text} [{copied.n}]", sources)
    assert whole.short_answer is None  # the whole sentence is no short answer
    assert whole.lead == copied.text
    assert any(s.text == whole.lead for s in whole.sentences)
    _, short = _compose(f"{GOLD} [2]", sources)
    assert short.short_answer == GOLD and short.lead is not None and GOLD in short.lead
    _, other = _compose("Rhine water [1]", sources)  # a span of an implausible sentence
    assert other.short_answer is None and other.lead is None


def test_chunk_rank_follows_the_scores_not_the_order_given() -> None:
    sources = scored(QUESTION, [paragraph("Rhine", 0), PARA])
    swapped = tuple(reversed(sources))
    a = Candidates.build(QUESTION, sources, embedder())
    b = Candidates.build(QUESTION, swapped, embedder())
    col = SENTENCE_FEATURES.index("chunk_rrank")
    rank_a = {c.text: a.features[r, col] for r, c in enumerate(a.items)}
    rank_b = {c.text: b.features[r, col] for r, c in enumerate(b.items)}
    assert rank_a == rank_b


def test_the_reader_hook_scores_the_short_answer_else_one_sentence() -> None:
    sources = scored(QUESTION, [paragraph("Rhine", 0), PARA])
    post = make_answer_postprocess(embedder())
    prompt = completion_prompt(QUESTION, sources)
    assert post(f"{GOLD} [2]", prompt) == (GOLD, 2)
    text, n = post("I do not know.", prompt)
    assert n is not None and len(split_sentences(text)) == 1
