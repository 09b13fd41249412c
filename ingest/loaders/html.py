"""HTML (.html, .htm): visible text by heading section; scripts, styles and <head> dropped.

Recognised from the content whatever the extension. ``html_sections`` is shared with
the EPUB loader (its chapters are XHTML).
"""

from __future__ import annotations

import re

from core.errors import CorruptDocument
from ingest.loaders._base import Builder, Loader, Meta, Sections, one_line
from ingest.loaders._encoding import strip_bom

HTML = "text/html"

_SNIFF = re.compile(rb"^\s*(<!--.*?-->\s*)*(<!doctype\s+html|<html[\s>])", re.I | re.S)
_DROP_TAGS = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")
_WHITESPACE = re.compile(r"\s+")
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_BLOCK_TAGS = frozenset(
    {
        "address", "article", "aside", "blockquote", "body", "caption", "center", "dd",
        "details", "dialog", "div", "dl", "dt", "fieldset", "figcaption", "figure", "footer",
        "form", "header", "hgroup", "hr", "html", "li", "main", "menu", "nav", "ol", "p",
        "section", "summary", "table", "tbody", "tfoot", "thead", "ul",
    }
)  # fmt: skip


def looks_like_html(data: bytes) -> bool:
    return _SNIFF.match(strip_bom(data[:4096])) is not None


def parse_html(data: bytes, source: str) -> tuple[Builder, Meta]:
    sections, title = html_sections(data, source)
    builder = Builder()
    sections.into(builder)
    return builder, ({"title": title} if title else {})


def html_sections(data: bytes, source: str) -> tuple[Sections, str]:
    """The page's heading sections and its <title> ("" when none)."""
    from bs4 import BeautifulSoup

    try:
        soup = BeautifulSoup(data, "lxml")
    except Exception as e:
        raise CorruptDocument(f"{source}: the HTML cannot be parsed ({e})") from e
    title = one_line(soup.title.get_text(" ")) if soup.title is not None else ""
    for tag in soup.find_all(_DROP_TAGS):
        tag.decompose()
    sections = Sections()
    try:
        _walk(soup, sections)
    except RecursionError:  # pathologically deep nesting: fall back to flat text
        sections = Sections()
        sections.paragraph(soup.get_text("\n"))
    return sections, title


def _walk(root: object, sections: Sections) -> None:
    from bs4 import NavigableString, Tag
    from bs4.element import PreformattedString

    buffer: list[str] = []

    def flush() -> None:
        text = "".join(buffer)
        buffer.clear()
        # Inline whitespace collapses as a browser would; <br> became "\n".
        lines = (one_line(line) for line in text.split("\n"))
        joined = "\n".join(line for line in lines if line)
        if joined:
            sections.paragraph(joined)

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if not isinstance(child, PreformattedString):  # comments, doctype, CDATA…
                    buffer.append(_WHITESPACE.sub(" ", str(child)))
                continue
            if not isinstance(child, Tag):
                continue
            name = child.name.lower() if child.name else ""
            if name in _HEADINGS:
                flush()
                sections.heading(_HEADINGS[name], child.get_text(" "))
            elif name == "br":
                buffer.append("\n")
            elif name == "pre":
                flush()
                sections.paragraph(child.get_text())
            elif name == "tr":
                flush()
                cells = [one_line(c.get_text(" ")) for c in child.find_all(["td", "th"])]
                sections.paragraph(" | ".join(c for c in cells if c))
            elif name in _BLOCK_TAGS:
                flush()
                walk(child)
                flush()
            else:
                walk(child)

    assert isinstance(root, Tag)
    walk(root)
    flush()


LOADER = Loader(HTML, (".html", ".htm"), "text", parse_html, "HTML page", sniff=looks_like_html)
