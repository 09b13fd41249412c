"""Every public stage entry point the composition root hands out refuses a bare
collection name: a tenant can only be lost loudly (TypeError), never by defaulting."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.platform import Platform
from core.settings import Settings
from core.types import CollectionKey, Query

BARE = "docs"


def test_stages_refuse_a_bare_collection_name(tmp_path: Path) -> None:
    platform = Platform(Settings(data_dir=tmp_path / "data"))
    (tmp_path / "a.txt").write_text("Tide tables for the northern harbour.")
    calls = {
        "ingest_paths": lambda: platform.ingest.ingest_paths([tmp_path / "a.txt"], BARE),
        "ingest_files": lambda: platform.ingest.ingest_files([("a.txt", b"x")], BARE),
        "delete_document": lambda: platform.ingest.delete_document(BARE, "0" * 32),
        "delete_collection": lambda: platform.ingest.delete_collection(BARE),
        "retrieve": lambda: platform.retriever.retrieve(Query("tides", BARE)),
        "answer": lambda: platform.query.answer("tides?", BARE),
        "stream": lambda: platform.query.stream("tides?", BARE),
        "composer_for": lambda: platform.composer_for(BARE),
    }
    for call in calls.values():
        with pytest.raises(TypeError, match="bare name has no tenant"):
            call()  # type: ignore[arg-type]
    # The same calls with a key reach the data (nothing was created by the refusals).
    key = CollectionKey("acme", "docs")
    report = platform.ingest.ingest_paths([tmp_path / "a.txt"], key)
    assert report.collection == "docs" and report.outcomes[0].status == "ingested"
    assert platform.retriever.retrieve(Query("tides", key))[0].chunk.source == "a.txt"
