"""JSONL corpora: one document per line, bad lines reported with their line number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import CorruptDocument, EmptyDocument, PathNotFound
from ingest.jsonl import JsonlFields, JsonlLineError, iter_jsonl_documents


def write_corpus(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_documents_and_bad_lines(tmp_path: Path) -> None:
    corpus = write_corpus(
        tmp_path / "corpus.jsonl",
        [
            json.dumps({"_id": "d1", "title": "Aspirin", "text": "Aspirin thins the blood."}),
            '{"_id": "d2", "text": broken json',
            json.dumps({"_id": "d3", "text": "No title here."}),
            json.dumps({"_id": "d4", "title": "No text field"}),
            "",
            json.dumps({"_id": 5, "title": "", "text": "Numeric id."}),
            json.dumps({"_id": "d6", "title": "", "text": "   "}),
        ],
    )
    errors: list[JsonlLineError] = []
    docs = list(iter_jsonl_documents(corpus, JsonlFields(), on_error=errors.append))
    assert [d.source for d in docs] == ["d1", "d3", "5"]
    first = docs[0]
    assert first.text == "Aspirin\n\nAspirin thins the blood."
    assert first.metadata == {"title": "Aspirin", "corpus": "corpus.jsonl"}
    assert first.blocks[0].start == 0 and first.blocks[0].text == first.text
    assert docs[1].text == "No title here." and "title" not in docs[1].metadata
    assert [(e.line, type(e.error)) for e in errors] == [
        (2, CorruptDocument),
        (4, CorruptDocument),
        (7, EmptyDocument),
    ]
    assert errors[0].error.message.startswith("corpus.jsonl line 2: invalid JSON")
    assert "missing text field 'text'" in errors[1].error.message
    assert errors[0].source == "corpus.jsonl:2"


def test_custom_fields_and_stable_hash(tmp_path: Path) -> None:
    line = json.dumps({"id": "q", "body": "Body text.", "heading": "Head"})
    corpus = write_corpus(tmp_path / "c.ndjson", [line])
    fields = JsonlFields(id_field="id", text_field="body", title_field="heading")
    (a,) = iter_jsonl_documents(corpus, fields)
    (b,) = iter_jsonl_documents(corpus, fields)
    assert a.source == "q" and a.text == "Head\n\nBody text."
    assert a.sha256 == b.sha256


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PathNotFound):
        list(iter_jsonl_documents(tmp_path / "nope.jsonl", JsonlFields()))
