"""What every format module shares: the ``Loader`` record, text normalising, and the
builders that turn parsed pieces into one text with exactly located blocks.

A format module defines ``LOADER = Loader(...)``; the registry finds it by that name.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from core.types import MetadataValue, TextBlock

Meta = dict[str, MetadataValue]
Parse = Callable[[bytes, str], tuple["Builder", Meta]]


@dataclass(frozen=True)
class Loader:
    """One format: its media type, the extensions that name it, and how it is recognised.

    ``kind`` says how detection finds it: ``"binary"`` formats by ``sniff`` on the raw
    bytes, ``"zip"`` formats by a member name (``zip_member``) inside a zip archive, and
    ``"text"`` formats by ``sniff`` on the (BOM-stripped) head when they have one, else
    by extension. ``parse(data, source)`` returns the filled ``Builder`` and metadata;
    it raises a typed ``IngestError`` naming ``source`` on bad input.
    ``label`` names the format in errors ("not a valid {label} ({not_valid_hint})").
    """

    media_type: str
    extensions: tuple[str, ...]
    kind: Literal["binary", "zip", "text"]
    parse: Parse
    label: str
    sniff: Callable[[bytes], bool] | None = None
    zip_member: str | None = None
    not_valid_hint: str = ""


# -- normalising -----------------------------------------------------------------------------

# C0/C1 controls except tab and newline; zero-width and BOM characters.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u200b\u200e\u200f\ufeff]")
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_INNER_SPACES = re.compile(r"(?<=\S)[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}|\u00a0")
_TRAILING_SPACES = re.compile(r"[ \t]+$", re.M)
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def normalize_text(text: str) -> str:
    """NFC, \\n line ends, no control characters, single inner spaces, ≤1 blank line, stripped.

    Leading indentation is kept (code and nested lists read better with it).
    """
    text = unicodedata.normalize("NFC", text)
    text = _LINE_BREAKS.sub("\n", text)
    text = _CONTROL.sub("", text)
    text = _INNER_SPACES.sub(" ", text)
    text = _TRAILING_SPACES.sub("", text)
    text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def document_title(read: Callable[[], str | None]) -> str | None:
    """A document's own title from its properties (``read`` may raise on damaged
    metadata, which then counts as no title), normalised; None when empty."""
    try:
        title = read()
    except Exception:
        return None
    return normalize_text(title) if title and title.strip() else None


def one_line(text: str) -> str:
    """All whitespace runs collapsed to single spaces (headings, table cells)."""
    return " ".join(text.split())


def human_bytes(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit} ({n:,} bytes)"


# -- building a document -----------------------------------------------------------------

SEP = "\n\n"


class Builder:
    """Appends normalised blocks, joined by a blank line, keeping each block's offset exact."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._blocks: list[TextBlock] = []
        self._pos = 0

    def add(self, text: str, page: int | None = None, heading_path: tuple[str, ...] = ()) -> None:
        text = normalize_text(text)
        if not text:
            return
        if self._parts:
            self._parts.append(SEP)
            self._pos += len(SEP)
        self._blocks.append(
            TextBlock(text=text, start=self._pos, page=page, heading_path=heading_path)
        )
        self._parts.append(text)
        self._pos += len(text)

    @property
    def empty(self) -> bool:
        return not self._blocks

    def build(self) -> tuple[str, tuple[TextBlock, ...]]:
        return "".join(self._parts), tuple(self._blocks)


@dataclass
class Section:
    """Paragraphs under one heading path, gathered into one block."""

    heading_path: tuple[str, ...]
    paragraphs: list[str]


class Sections:
    """Turns a stream of headings and paragraphs into one block per heading section."""

    def __init__(self) -> None:
        self.sections: list[Section] = [Section((), [])]
        self._stack: list[tuple[int, str]] = []

    def heading(self, level: int, text: str) -> None:
        text = one_line(text)
        if not text:
            return
        while self._stack and self._stack[-1][0] >= level:
            self._stack.pop()
        self._stack.append((level, text))
        self.sections.append(Section(tuple(t for _, t in self._stack), [text]))

    def paragraph(self, text: str) -> None:
        if text.strip():
            self.sections[-1].paragraphs.append(text)

    def into(self, builder: Builder, page: int | None = None, prefix: tuple[str, ...] = ()) -> None:
        """Add one block per section; ``prefix`` goes before each heading path."""
        for section in self.sections:
            builder.add(
                SEP.join(normalize_text(p) for p in section.paragraphs),
                page,
                prefix + section.heading_path,
            )
