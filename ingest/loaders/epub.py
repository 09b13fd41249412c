"""E-books (.epub): the spine's documents in reading order, each chapter's title (from
the table of contents, else its first heading) heading its blocks; headings inside a
chapter nest under it. The book's Dublin Core title is the document title."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterable
from typing import Any

from core.errors import CorruptDocument, EncryptedDocument
from ingest.loaders._base import SEP, Builder, Loader, Meta, Sections, normalize_text, one_line
from ingest.loaders.html import html_sections

EPUB = "application/epub+zip"

# Encrypted content files (DRM) are listed in META-INF/encryption.xml; fonts listed there
# are only obfuscated, which is harmless to the text.
_ENCRYPTED_TEXT = re.compile(rb"URI=[\"'][^\"']+\.(x?html?|xml)[\"']", re.I)


def parse_epub(data: bytes, source: str) -> tuple[Builder, Meta]:
    from ebooklib import ITEM_DOCUMENT, epub

    _refuse_drm(data, source)
    try:
        book = epub.read_epub(io.BytesIO(data))
    except Exception as e:  # ebooklib raises its own, zip, XML and key errors on damage
        raise CorruptDocument(f"{source}: the .epub file is corrupt or unreadable ({e})") from e
    meta: Meta = {}
    titles = book.get_metadata("DC", "title")
    if titles and titles[0][0] and titles[0][0].strip():
        meta["title"] = normalize_text(titles[0][0])
    toc_titles = _toc_titles(book.toc)

    builder = Builder()
    chapters = 0
    for idref, _linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.get_type() != ITEM_DOCUMENT or isinstance(item, epub.EpubNav):
            continue  # the navigation page repeats the table of contents
        try:
            sections, page_title = html_sections(item.get_content(), source)
        except RecursionError as e:
            raise CorruptDocument(f"{source}: {item.get_name()} cannot be parsed") from e
        chapter = toc_titles.get(item.get_name()) or _first_heading(sections) or page_title
        chapters += _add_chapter(builder, sections, chapter)
    meta["chapters"] = chapters
    return builder, meta


def _add_chapter(builder: Builder, sections: Sections, chapter: str) -> bool:
    """Add the chapter's sections, the chapter first in every heading path (once);
    False when the chapter has no text."""
    if not any(p.strip() for s in sections.sections for p in s.paragraphs):
        return False
    for section in sections.sections:
        path = section.heading_path
        if chapter and (not path or path[0] != chapter):
            path = (chapter, *path)
        paragraphs = section.paragraphs
        if chapter and not section.heading_path and section is sections.sections[0]:
            paragraphs = [chapter, *paragraphs] if paragraphs else paragraphs
        builder.add(SEP.join(normalize_text(p) for p in paragraphs), None, path)
    return True


def _first_heading(sections: Sections) -> str:
    for section in sections.sections:
        if section.heading_path:
            return section.heading_path[0]
    return ""


def _toc_titles(toc: Iterable[Any]) -> dict[str, str]:
    """Document href (no fragment) → the first table-of-contents title pointing at it."""
    titles: dict[str, str] = {}

    def visit(entries: Iterable[Any]) -> None:
        for entry in entries:
            if isinstance(entry, tuple | list) and len(entry) == 2:
                visit([entry[0]])
                visit(entry[1])
                continue
            href = getattr(entry, "href", None)
            title = one_line(getattr(entry, "title", "") or "")
            if href and title:
                titles.setdefault(href.split("#", 1)[0], title)

    visit(toc)
    return titles


def _refuse_drm(data: bytes, source: str) -> None:
    """Encrypted chapters would parse as noise: refuse the book by name instead."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:  # its size was checked by the guard
            listing = zf.read("META-INF/encryption.xml")
    except KeyError:
        return
    except zipfile.BadZipFile as e:
        raise CorruptDocument(f"{source}: the .epub file is corrupt ({e})") from e
    if _ENCRYPTED_TEXT.search(listing):
        raise EncryptedDocument(f"{source}: the EPUB is DRM-protected (its chapters are encrypted)")


LOADER = Loader(
    EPUB,
    (".epub",),
    "zip",
    parse_epub,
    ".epub file",
    zip_member="META-INF/container.xml",
    not_valid_hint="not a zip archive",
)
