"""Split a ``ParsedDocument`` into token-sized chunks that keep their page and heading path.

Sizes are in the embedding model's tokens. Splitting happens inside each block (a page,
a heading section), so every chunk's ``page`` and ``heading_path`` are exact, and
``doc.text[chunk.char_start:chunk.char_end] == chunk.text`` always holds.

    chunker = Chunker(settings.ingest, embedder.count_tokens)
    drafts = chunker.split(doc)
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from core.settings import IngestSettings
from core.types import ParsedDocument

SPLITTER_VERSION = 1  # bump when the splitting rules change: documents then re-index

# Paragraphs, lines, sentence ends, clause marks, words, then characters. Regexes with
# look-behind keep the punctuation on the left piece; "end" keeps whitespace there too.
_SEPARATORS = [r"\n\n+", r"\n", r"(?<=[.!?…。！？])\s+", r"(?<=[;:,])\s+", r"\s+", ""]


@dataclass(frozen=True, slots=True)
class ChunkDraft:
    """A chunk before it has an id: its text and where it sits in the document."""

    text: str
    char_start: int
    char_end: int
    page: int | None
    heading_path: tuple[str, ...]
    token_count: int


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]


class Chunker:
    """Recursive splitting (LangChain) with token lengths and offsets computed here."""

    def __init__(self, settings: IngestSettings, count_tokens: Callable[[str], int]) -> None:
        self.chunk_size = settings.chunk_size_tokens
        # An overlap near the chunk size would make each chunk advance by a word or two.
        self.chunk_overlap = min(settings.chunk_overlap_tokens, self.chunk_size // 2)
        # A section this small is merged into the sub-section that follows it.
        self.min_tokens = max(8, self.chunk_size // 8)
        self._count_tokens = count_tokens
        self._local = threading.local()  # the per-document cache of token counts
        self._splitter = _FlatRecursiveSplitter(
            separators=_SEPARATORS,
            is_separator_regex=True,
            keep_separator="end",
            chunk_size=self.chunk_size,
            chunk_overlap=self.chunk_overlap,
            length_function=self.count,
            strip_whitespace=True,
        )

    def count(self, text: str) -> int:
        """Token count, remembered while one document is split (pieces are asked again)."""
        cache: dict[str, int] | None = getattr(self._local, "cache", None)
        if cache is None:
            return self._count_tokens(text)
        n = cache.get(text)
        if n is None:
            n = cache[text] = self._count_tokens(text)
        return n

    def split(self, doc: ParsedDocument) -> list[ChunkDraft]:
        """The document's chunks in text order. Safe to call from several threads."""
        self._local.cache = {}
        try:
            return self._split(doc)
        finally:
            self._local.cache = None

    def _split(self, doc: ParsedDocument) -> list[ChunkDraft]:
        drafts: list[ChunkDraft] = []
        for span in self._spans(doc):
            text = doc.text[span.start : span.end]
            n = self.count(text)
            if n <= self.chunk_size:  # fast path: the whole section is one chunk
                drafts.append(
                    ChunkDraft(text, span.start, span.end, span.page, span.heading_path, n)
                )
                continue
            drafts.extend(self._split_span(doc, span, text))
        return drafts

    def _split_span(self, doc: ParsedDocument, span: _Span, text: str) -> list[ChunkDraft]:
        out: list[ChunkDraft] = []
        cursor = 0
        for piece in self._splitter.split_text(text):
            if not piece:
                continue
            # Each chunk starts after the previous one's start (overlap never repeats a
            # whole chunk), so the first match from there is the chunk's own position.
            at = text.find(piece, cursor)
            if at < 0:
                at = text.find(piece)
            if at < 0:  # the splitter only ever returns substrings; guard the invariant
                raise RuntimeError(f"{doc.source}: chunk text not found in its section")
            start = span.start + at
            out.append(
                ChunkDraft(
                    piece,
                    start,
                    start + len(piece),
                    span.page,
                    span.heading_path,
                    self.count(piece),
                )
            )
            cursor = at + 1
        return out

    def _spans(self, doc: ParsedDocument) -> list[_Span]:
        """Blocks as spans of ``doc.text``; neighbours with the same page and heading merge.

        A tiny section (a heading with little text) merges into the sub-section right
        after it, which keeps its (deeper) heading path, so no chunk is a bare heading.
        """
        spans: list[_Span] = []
        for block in doc.blocks:
            if not block.text.strip():
                continue
            end = block.start + len(block.text)
            last = spans[-1] if spans else None
            if (
                last is not None
                and last.page == block.page
                and last.heading_path == block.heading_path
            ):
                last.end = end
                continue
            if (
                last is not None
                and last.page == block.page
                and len(block.heading_path) > len(last.heading_path)
                and block.heading_path[: len(last.heading_path)] == last.heading_path
                and self.count(doc.text[last.start : last.end]) < self.min_tokens
            ):
                last.end = end
                last.heading_path = block.heading_path
                continue
            spans.append(_Span(block.start, end, block.page, block.heading_path))
        return spans


class _FlatRecursiveSplitter(RecursiveCharacterTextSplitter):
    """LangChain's recursive splitter, merged once over the finest pieces needed.

    The stock splitter merges each separator level on its own, so a short title before
    a long paragraph ends up as a chunk by itself. Here text is cut recursively only
    where a piece is too long (paragraphs, then lines, sentences, clauses, words,
    characters), and all pieces are then merged greedily up to the chunk size with
    LangChain's own overlap logic. Pieces keep their separators, so every chunk is a
    contiguous slice of the input.
    """

    def _split_text(self, text: str, separators: list[str]) -> list[str]:
        return self._merge_splits(self._pieces(text, separators), "")

    def _pieces(self, text: str, separators: list[str]) -> list[str]:
        for i, separator in enumerate(separators):
            if not separator:
                return list(text)
            if re.search(separator, text):
                rest = separators[i + 1 :]
                break
        else:
            return [text]
        pieces: list[str] = []
        for piece in _split_keep_end(text, separator):
            if not rest or self._length_function(piece) <= self._chunk_size:
                pieces.append(piece)
            else:
                pieces.extend(self._pieces(piece, rest))
        return pieces


def _split_keep_end(text: str, separator: str) -> list[str]:
    """Split at a regex, each separator staying at the end of the piece before it."""
    parts = re.split(f"({separator})", text)
    pieces = [parts[i] + parts[i + 1] for i in range(0, len(parts) - 1, 2)]
    if parts[-1]:
        pieces.append(parts[-1])
    return [p for p in pieces if p]
