"""Attribution with the real embedding model on real XQuAD paragraphs."""

from __future__ import annotations

import numpy as np
import pytest

from generation.attribution import Attributor, SourceSentences, render_sentence
from generation.citations import SNIPPET_MAX_CHARS, AnswerSentence, parse_citations
from ingest.embedding import SentenceTransformerEmbedder
from tests.generation.fixtures_answer import chunks, embedder, paragraph, xquad_case


@pytest.fixture(scope="module")
def emb() -> SentenceTransformerEmbedder:
    return embedder()


@pytest.fixture(scope="module")
def case() -> tuple[str, str, tuple]:
    """Question on Oracle's founder; the gold paragraph is source [2] of 3."""
    question, gold, para = xquad_case("University_of_Chicago", "Larry Ellison")
    sources = chunks([paragraph("Black_Death", 0), para, paragraph("Rhine", 0)])
    return question, gold, sources


def test_scores_are_in_range_and_prefer_the_gold_paragraph(emb, case) -> None:
    question, gold, sources = case
    support, best = Attributor(emb).score([gold, "Bananas are a yellow fruit."], sources, question)
    assert support.shape == (2, 3)
    assert np.all((support >= 0) & (support <= 1))
    assert int(np.argmax(support[0])) == 1
    assert support[0, 1] >= 0.6
    assert support[0, 1] - max(support[0, 0], support[0, 2]) >= 0.3
    assert support[1].max() < 0.35  # unrelated text is supported by nothing


def test_a_wrong_model_citation_is_replaced(emb, case) -> None:
    question, gold, sources = case
    # Small models copy the examples' [1]: the text comes from source [2].
    parsed = parse_citations(f"{gold} [1]", sources)
    result = Attributor(emb).attribute(parsed.sentences, sources, question=question)
    assert [c.n for c in result.citations] == [2]
    cit = result.citations[0]
    assert cit.attributed is True
    assert cit.source is sources[1]
    assert gold in cit.snippet
    assert len(cit.snippet) <= SNIPPET_MAX_CHARS
    assert result.replaced == 1
    assert result.text == f"{gold} [2]"
    assert result.sentences[0].model_cited == (1,)


def test_a_right_model_citation_is_kept(emb, case) -> None:
    question, gold, sources = case
    parsed = parse_citations(f"{gold} [2]", sources)
    result = Attributor(emb).attribute(parsed.sentences, sources, question=question)
    assert [(c.n, c.attributed) for c in result.citations] == [(2, False)]
    assert result.replaced == 0
    assert result.min_support >= 0.6


def test_an_uncited_sentence_gets_the_best_source(emb) -> None:
    question, gold, para = xquad_case("Super_Bowl_50", "308")
    sources = chunks([paragraph("Oxygen", 0), paragraph("Kenya", 0), para])
    sentence = "The Panthers defense gave up just 308 points."
    result = Attributor(emb).attribute([AnswerSentence(sentence)], sources, question=question)
    assert [(c.n, c.attributed) for c in result.citations] == [(3, True)]
    assert result.added == 1
    assert result.text == "The Panthers defense gave up just 308 points [3]."
    assert "308" in result.citations[0].snippet


def test_each_sentence_is_attributed_on_its_own(emb) -> None:
    sources = chunks([paragraph("Oxygen", 0), paragraph("Kenya", 0)])
    text = (
        "Oxygen is a chemical element with symbol O and atomic number 8. "
        "Kenya is a country in East Africa [1]."
    )
    parsed = parse_citations(text, sources)
    result = Attributor(emb).attribute(parsed.sentences, sources)
    assert [s.cited for s in result.sentences] == [(1,), (2,)]
    assert [c.n for c in result.citations] == [1, 2]
    assert result.citations[1].attributed is True  # model said [1] for Kenya
    assert result.text.endswith("East Africa [2].")


def test_a_stating_answer_never_leaves_without_a_citation(emb, case) -> None:
    question, _, sources = case
    sentences = [AnswerSentence("The moon is made of green cheese.")]
    result = Attributor(emb).attribute(sentences, sources, question=question)
    assert len(result.citations) == 1
    assert result.min_support < 0.35  # …and the support shows it is not grounded


def test_no_sources_gives_no_citations(emb) -> None:
    result = Attributor(emb).attribute([AnswerSentence("Anything.")], ())
    assert result.citations == ()
    assert result.text == "Anything."


def test_source_sentences_are_embedded_once(emb, case) -> None:
    calls = []

    class Counting:
        def embed(self, texts):
            calls.append(len(texts))
            return emb.embed(texts)

    _, gold, sources = case
    src = SourceSentences(sources, Counting())
    attributor = Attributor(Counting())
    attributor.score([gold], src)
    attributor.score(["another"], src)
    n_sentences = sum(len(s) for s in src.sentences)
    assert calls.count(n_sentences) == 1


@pytest.mark.parametrize(
    ("text", "cited", "expected"),
    [
        ("Paris.", (1,), "Paris [1]."),
        ("Paris", (1, 2), "Paris [1, 2]"),
        ('He said "yes."', (3,), 'He said "yes [3]."'),
        ("Paris.", (), "Paris."),
    ],
)
def test_render_sentence(text, cited, expected) -> None:
    assert render_sentence(text, cited) == expected
