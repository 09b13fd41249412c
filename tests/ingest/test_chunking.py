"""Chunker: token sizes from the real tokenizer, exact offsets, pages and heading paths."""

from __future__ import annotations

import random

import pytest

from core.settings import IngestSettings
from core.types import ParsedDocument, TextBlock
from ingest.chunking import ChunkDraft, Chunker
from ingest.embedding import SentenceTransformerEmbedder
from ingest.loaders import load_bytes
from tests.ingest.conftest import make_pdf

_VOCABULARY = (
    "retrieval augmented generation grounds answers in documents with citations while "
    "a small model writes the text and the index finds passages quickly offline"
)
WORDS = _VOCABULARY.split()


def sentences(rng: random.Random, n: int) -> str:
    return " ".join(
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18))).capitalize() + "."
        for _ in range(n)
    )


def check(doc: ParsedDocument, drafts: list[ChunkDraft]) -> None:
    assert drafts
    for d in drafts:
        assert doc.text[d.char_start : d.char_end] == d.text
        assert d.text == d.text.strip() and d.text
        # The chunk lies inside a block with the same page and (a prefix of) its heading path.
        owners = [
            b
            for b in doc.blocks
            if b.start <= d.char_start < b.start + len(b.text) and b.page == d.page
        ]
        assert owners, d
    starts = [d.char_start for d in drafts]
    assert starts == sorted(starts)


@pytest.fixture
def chunker(embedder: SentenceTransformerEmbedder) -> Chunker:
    return Chunker(
        IngestSettings(chunk_size_tokens=48, chunk_overlap_tokens=8), embedder.count_tokens
    )


def test_small_document_is_one_chunk(
    chunker: Chunker, embedder: SentenceTransformerEmbedder
) -> None:
    doc = load_bytes(b"One short paragraph.", "s.txt", max_bytes=10_000)
    (draft,) = chunker.split(doc)
    assert (draft.char_start, draft.char_end) == (0, len(doc.text))
    assert draft.token_count == embedder.count_tokens(doc.text)


def test_long_text_is_split_within_size_with_overlap(
    chunker: Chunker, embedder: SentenceTransformerEmbedder
) -> None:
    rng = random.Random(1)
    text = "\n\n".join(sentences(rng, rng.randint(1, 8)) for _ in range(12))
    doc = load_bytes(text.encode(), "long.txt", max_bytes=1_000_000)
    drafts = chunker.split(doc)
    check(doc, drafts)
    assert len(drafts) > 5
    for d in drafts:
        assert d.token_count == embedder.count_tokens(d.text)
        assert d.token_count <= chunker.chunk_size
    overlapping = sum(
        1 for a, b in zip(drafts, drafts[1:], strict=False) if b.char_start < a.char_end
    )
    assert overlapping > 0


@pytest.mark.parametrize("seed", range(6))
def test_offsets_hold_for_awkward_texts(chunker: Chunker, seed: int) -> None:
    rng = random.Random(seed)
    pieces = [
        sentences(rng, 3),
        "x" * rng.randint(300, 900),  # one huge "word": split by characters
        "same paragraph again.\n\nsame paragraph again.\n\nsame paragraph again.",
        "日本語のテキストは空白なしで続きます。" * rng.randint(5, 20),
        "line\n" * rng.randint(5, 50),
        sentences(rng, 10),
    ]
    rng.shuffle(pieces)
    doc = load_bytes("\n\n".join(pieces).encode(), "odd.txt", max_bytes=1_000_000)
    check(doc, chunker.split(doc))


def test_pages_are_exact_for_pdf(chunker: Chunker) -> None:
    rng = random.Random(3)
    pages = [sentences(rng, 12), sentences(rng, 2), sentences(rng, 9)]
    doc = load_bytes(make_pdf(pages), "p.pdf", max_bytes=1_000_000)
    drafts = chunker.split(doc)
    check(doc, drafts)
    assert {d.page for d in drafts} == {1, 2, 3}
    for d in drafts:
        block = next(b for b in doc.blocks if b.page == d.page)
        assert block.start <= d.char_start and d.char_end <= block.start + len(block.text)


def test_heading_paths_are_exact_and_a_bare_heading_joins_its_subsection(chunker: Chunker) -> None:
    rng = random.Random(4)
    md = f"# Guide\n\n## Install\n\n{sentences(rng, 10)}\n\n## Use\n\n{sentences(rng, 2)}\n"
    doc = load_bytes(md.encode(), "g.md", max_bytes=1_000_000)
    drafts = chunker.split(doc)
    check(doc, drafts)
    assert drafts[0].text.startswith("# Guide\n\n## Install")
    assert drafts[0].heading_path == ("Guide", "Install")
    assert {d.heading_path for d in drafts} == {("Guide", "Install"), ("Guide", "Use")}
    for d in drafts:
        assert "## Use" not in d.text or d.heading_path == ("Guide", "Use")


def test_adjacent_blocks_with_the_same_place_merge() -> None:
    text = "alpha one\n\nbeta two\n\ngamma three"
    blocks = (
        TextBlock("alpha one", 0, 1, ("A",)),
        TextBlock("beta two", 11, 1, ("A",)),
        TextBlock("gamma three", 21, 2, ("A",)),
    )
    doc = ParsedDocument("m", "text/plain", "0" * 64, text, blocks, len(text))
    drafts = Chunker(IngestSettings(), len).split(doc)
    assert [(d.text, d.page) for d in drafts] == [("alpha one\n\nbeta two", 1), ("gamma three", 2)]


def test_overlap_is_capped_below_the_chunk_size() -> None:
    chunker = Chunker(IngestSettings(chunk_size_tokens=16, chunk_overlap_tokens=4000), len)
    assert chunker.chunk_overlap == 8
