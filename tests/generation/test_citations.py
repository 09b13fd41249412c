"""Citation markers: parsing, mapping to prompt sources, dropping invalid ones."""

from __future__ import annotations

import pytest

from generation.citations import (
    SNIPPET_MAX_CHARS,
    content_words,
    lexical_snippet,
    marker_numbers,
    parse_citations,
    split_sentences,
    strip_markers,
)
from tests.generation.fixtures_answer import chunks

SOURCES = chunks(
    [
        "Paris is the capital of France. It has about two million inhabitants.",
        "Berlin is the capital of Germany. The Spree flows through it.",
        "Madrid is the capital of Spain.",
    ]
)


def test_single_valid_marker_maps_to_its_source() -> None:
    parsed = parse_citations("Paris is the capital of France [1].", SOURCES)
    assert parsed.text == "Paris is the capital of France [1]."
    assert parsed.dropped == 0
    assert [c.n for c in parsed.citations] == [1]
    cit = parsed.citations[0]
    assert cit.source is SOURCES[0]
    assert cit.snippet == "Paris is the capital of France."
    assert cit.attributed is False


def test_out_of_range_markers_are_removed_and_counted() -> None:
    parsed = parse_citations("Madrid [3]. Rome [7]. Nowhere [0].", SOURCES)
    assert parsed.text == "Madrid [3]. Rome. Nowhere."
    assert parsed.dropped == 2
    assert [c.n for c in parsed.citations] == [3]


def test_lists_ranges_and_source_words() -> None:
    parsed = parse_citations("Capitals [1, 2]. All [1-3]. Spain [Source 3] (source 2).", SOURCES)
    assert parsed.text == "Capitals [1, 2]. All [1, 2, 3]. Spain [3] [2]."
    assert [c.n for c in parsed.citations] == [1, 2, 3]
    assert parsed.dropped == 0
    assert [s.cited for s in parsed.sentences] == [(1, 2), (1, 2, 3), (3, 2)]


def test_partly_valid_list_and_range_keep_the_valid_numbers() -> None:
    parsed = parse_citations("Germany [2, 5]. Everything [2-6].", SOURCES)
    assert parsed.text == "Germany [2]. Everything [2, 3]."
    assert parsed.dropped == 1 + 3  # 5; then 4, 5, 6


def test_marker_numbers() -> None:
    assert marker_numbers("1, 3-5") == [1, 3, 4, 5]
    assert marker_numbers("Source 1 and source 2") == [1, 2]
    assert marker_numbers("2–3") == [2, 3]
    assert marker_numbers("1-100") == [1, 100]  # absurd ranges: only the endpoints
    assert marker_numbers("2, 2, 1") == [2, 1]


def test_no_sources_drops_every_marker() -> None:
    parsed = parse_citations("Paris [1] [2].", ())
    assert parsed.text == "Paris."
    assert parsed.dropped == 2
    assert parsed.citations == ()


def test_marker_after_full_stop_belongs_to_the_sentence_before() -> None:
    parsed = parse_citations("Paris is in France. [1] Berlin is in Germany. [2]", SOURCES)
    assert [(s.text, s.cited) for s in parsed.sentences] == [
        ("Paris is in France.", (1,)),
        ("Berlin is in Germany.", (2,)),
    ]
    assert parsed.citations[1].snippet == "Berlin is the capital of Germany."


def test_text_without_markers() -> None:
    parsed = parse_citations("Paris is the capital of France.", SOURCES)
    assert parsed.citations == ()
    assert parsed.dropped == 0
    assert parsed.sentences[0].cited == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Dr. Smith went to Washington. He met the U.S. president.", 2),
        ("It cost 2.5 million dollars. That was a lot!", 2),
        ("The Sun is a star [1]. Bread is food [2]. Done", 3),
        ("one line without a stop", 1),
        ("e.g. this is lowercase. so it stays", 1),
    ],
)
def test_split_sentences(text: str, expected: int) -> None:
    assert len(split_sentences(text)) == expected


def test_strip_markers_and_content_words() -> None:
    assert strip_markers("Paris [1], France [2, 3] .") == "Paris, France."
    assert content_words("The Broncos' defense [1] won the games") == ["bronco", "defense", "game"]


def test_snippet_is_short_and_centred_on_the_matching_words() -> None:
    long = (
        " ".join(f"filler{i}" for i in range(80))
        + " the treaty was signed in 1763 "
        + (" ".join(f"more{i}" for i in range(80)))
    )
    snippet = lexical_snippet(long, "The treaty was signed in 1763.")
    assert len(snippet) <= SNIPPET_MAX_CHARS
    assert "treaty was signed in 1763" in snippet
