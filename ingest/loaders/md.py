"""Markdown (.md): one block per heading section, ATX (#) and setext (===, ---) headings.

Block text is the markdown itself (headings included), so offsets map to the source.
YAML front matter is metadata (its ``title``), not text.
"""

from __future__ import annotations

import re

from ingest.loaders._base import Builder, Loader, Meta, normalize_text
from ingest.loaders._encoding import decode_text

MARKDOWN = "text/markdown"

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_LIST_OR_QUOTE = re.compile(r"^ {0,3}([-*+>]|\d+[.)])(\s|$)")


def parse_markdown(data: bytes, source: str) -> tuple[Builder, Meta]:
    text = normalize_text(decode_text(data, source))
    lines = text.split("\n")
    meta: Meta = {}
    front_matter_end = _front_matter_end(lines)
    if front_matter_end:
        for line in lines[1 : front_matter_end - 1]:
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() == "title" and value.strip():
                meta["title"] = value.strip().strip("\"'")
        lines = lines[front_matter_end:]
        text = "\n".join(lines)
    # (line index where the section starts, heading level, heading text)
    starts: list[tuple[int, int, str]] = []
    fence: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        fence_match = _FENCE.match(line)
        if fence is not None:
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
            ):
                fence = None
        elif fence_match:
            fence = fence_match.group(1)
        elif (m := _ATX.match(line)) is not None:
            starts.append((i, len(m.group(1)), (m.group(2) or "").strip()))
        elif (
            i + 1 < len(lines)
            and line.strip()
            and (i == 0 or not lines[i - 1].strip())  # a one-line paragraph
            and not _LIST_OR_QUOTE.match(line)
            and (underline := _SETEXT.match(lines[i + 1])) is not None
        ):
            starts.append((i, 1 if underline.group(1)[0] == "=" else 2, line.strip()))
            i += 1
        i += 1

    builder = Builder()
    line_offsets = [0]
    for line in lines:
        line_offsets.append(line_offsets[-1] + len(line) + 1)
    stack: list[tuple[int, str]] = []
    bounds = [(0, 0, "")] + starts
    for n, (line_no, level, heading) in enumerate(bounds):
        if n > 0:
            while stack and stack[-1][0] >= level:
                stack.pop()
            if heading:
                stack.append((level, heading))
                if level == 1 and "title" not in meta:
                    meta["title"] = heading
        end_line = bounds[n + 1][0] if n + 1 < len(bounds) else len(lines)
        chunk = text[line_offsets[line_no] : line_offsets[end_line]]
        builder.add(chunk, None, tuple(h for _, h in stack))
    return builder, meta


def _front_matter_end(lines: list[str]) -> int:
    """Index of the first line after a leading YAML front-matter block (0 when none)."""
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


LOADER = Loader(MARKDOWN, (".md", ".markdown"), "text", parse_markdown, "Markdown file")
