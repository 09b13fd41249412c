"""JSON Lines corpora (BEIR-style exports): one document per line.

    fields = JsonlFields(id_field="_id", text_field="text", title_field="title")
    for doc in iter_jsonl_documents(Path("corpus.jsonl"), fields, on_error=print):
        ...

A bad line (invalid JSON, a missing field, no text) is handed to ``on_error`` as a
``JsonlLineError`` naming the file and the line number; the lines after it still load.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from core.errors import (
    CorruptDocument,
    DocumentTooLarge,
    EmptyDocument,
    IngestError,
    PathNotFound,
)
from core.types import MetadataValue, ParsedDocument, TextBlock
from ingest.loaders import normalize_text

log = logging.getLogger(__name__)

JSONL_EXTENSIONS: frozenset[str] = frozenset({".jsonl", ".ndjson"})
MEDIA_TYPE = "text/plain"  # each line becomes a plain-text document


@dataclass(frozen=True, slots=True)
class JsonlFields:
    """Which JSON keys hold a record's id, text and (optional) title."""

    id_field: str = "_id"
    text_field: str = "text"
    title_field: str | None = "title"


@dataclass(frozen=True, slots=True)
class JsonlLineError:
    """A line that could not become a document, with where it is."""

    corpus: str  # the file name
    line: int  # 1-based
    error: IngestError

    @property
    def source(self) -> str:
        return f"{self.corpus}:{self.line}"


def iter_jsonl_documents(
    path: Path,
    fields: JsonlFields = JsonlFields(),
    *,
    on_error: Callable[[JsonlLineError], None] | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[ParsedDocument]:
    """One ``ParsedDocument`` per valid line of ``path``, streamed.

    source = the id value; text = title + blank line + text when a title exists;
    metadata = {"title", "corpus"}; sha256 is of the raw line, so an edited record is
    re-ingested and an unchanged one skipped. Bad lines go to ``on_error`` (logged as
    warnings when it is None). A missing file raises ``PathNotFound``.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError as e:
        raise PathNotFound(f"{path.name}: no such file or directory") from e
    with handle:
        yield from iter_jsonl_lines(
            handle, path.name, fields, on_error=on_error, max_line_bytes=max_line_bytes
        )


def iter_jsonl_bytes(
    data: bytes,
    corpus: str,
    fields: JsonlFields = JsonlFields(),
    *,
    on_error: Callable[[JsonlLineError], None] | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[ParsedDocument]:
    """``iter_jsonl_documents`` for a corpus already in memory (an upload)."""
    yield from iter_jsonl_lines(
        data.splitlines(keepends=True),
        corpus,
        fields,
        on_error=on_error,
        max_line_bytes=max_line_bytes,
    )


def iter_jsonl_lines(
    lines: Iterable[bytes],
    corpus: str,
    fields: JsonlFields = JsonlFields(),
    *,
    on_error: Callable[[JsonlLineError], None] | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[ParsedDocument]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield _parse_line(raw, corpus, number, fields, max_line_bytes)
        except IngestError as e:
            problem = JsonlLineError(corpus, number, e)
            if on_error is None:
                log.warning("%s", e.message)
            else:
                on_error(problem)


def _parse_line(
    raw: bytes, corpus: str, number: int, fields: JsonlFields, max_line_bytes: int | None
) -> ParsedDocument:
    where = f"{corpus} line {number}"
    if max_line_bytes is not None and len(raw) > max_line_bytes:
        raise DocumentTooLarge(
            f"{where}: the record is {len(raw):,} bytes, over the limit of {max_line_bytes:,}"
        )
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptDocument(f"{where}: invalid JSON ({e})") from e
    if not isinstance(record, dict):
        raise CorruptDocument(f"{where}: expected a JSON object, got {type(record).__name__}")
    doc_id = record.get(fields.id_field)
    if doc_id is None or isinstance(doc_id, (dict, list)) or not str(doc_id).strip():
        raise CorruptDocument(f"{where}: missing or invalid id field '{fields.id_field}'")
    source = str(doc_id).strip()
    if fields.text_field not in record:
        raise CorruptDocument(f"{where} (id {source}): missing text field '{fields.text_field}'")
    body = _as_text(record.get(fields.text_field), where, fields.text_field)
    title = ""
    if fields.title_field:
        title = _as_text(record.get(fields.title_field), where, fields.title_field)
    body, title = normalize_text(body), normalize_text(title)
    text = f"{title}\n\n{body}" if title and body else (title or body)
    if not text:
        raise EmptyDocument(f"{where} (id {source}): the record has no text")
    metadata: dict[str, MetadataValue] = {"corpus": corpus}
    if title:
        metadata["title"] = title
    return ParsedDocument(
        source=source,
        media_type=MEDIA_TYPE,
        sha256=hashlib.sha256(raw.rstrip(b"\r\n")).hexdigest(),
        text=text,
        blocks=(TextBlock(text=text, start=0),),
        size_bytes=len(raw),
        metadata=metadata,
    )


def _as_text(value: object, where: str, field: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise CorruptDocument(f"{where}: field '{field}' is a {type(value).__name__}, not text")
