"""Shared fixtures: the real embedding model (loaded once), real SQLite files, test files."""

from __future__ import annotations

import io
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.engine import Engine

from core.db import make_engine
from core.settings import IngestSettings
from ingest.embedding import SentenceTransformerEmbedder
from ingest.pipeline import IngestPipeline


@pytest.fixture(scope="session")
def embedder() -> SentenceTransformerEmbedder:
    e = SentenceTransformerEmbedder()
    e.warm_up()
    return e


@pytest.fixture
def settings() -> IngestSettings:
    return IngestSettings(chunk_size_tokens=64, chunk_overlap_tokens=8, max_file_bytes=200_000)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")


class RecordingIndexer:
    """An in-memory ChunkIndexer for unit tests of the pipeline's bookkeeping.

    ``fail_upsert`` makes the next upserts raise, to test the failure path.
    """

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, tuple[str, np.ndarray]]] = {}
        self.calls: list[tuple[str, str, int]] = []
        self.fail_upsert = False

    def upsert(
        self,
        collection_id: str,
        chunk_ids: Sequence[str],
        texts: Sequence[str],
        vectors: np.ndarray,
    ) -> None:
        assert len(chunk_ids) == len(texts) == len(vectors)
        if self.fail_upsert:
            raise OSError("disk full")
        self.calls.append(("upsert", collection_id, len(chunk_ids)))
        col = self.entries.setdefault(collection_id, {})
        for cid, text, vec in zip(chunk_ids, texts, vectors, strict=True):
            col[cid] = (text, np.asarray(vec))

    def delete(self, collection_id: str, chunk_ids: Sequence[str]) -> None:
        self.calls.append(("delete", collection_id, len(chunk_ids)))
        col = self.entries.get(collection_id, {})
        for cid in chunk_ids:
            col.pop(cid, None)

    def bulk(self, collection_id: str) -> AbstractContextManager[None]:
        return nullcontext()

    def drop_collection(self, collection_id: str) -> None:
        self.calls.append(("drop", collection_id, len(self.entries.get(collection_id, {}))))
        self.entries.pop(collection_id, None)

    def ids(self, collection_id: str) -> set[str]:
        return set(self.entries.get(collection_id, {}))


@pytest.fixture
def indexer() -> RecordingIndexer:
    return RecordingIndexer()


@pytest.fixture
def pipeline(
    engine: Engine,
    embedder: SentenceTransformerEmbedder,
    indexer: RecordingIndexer,
    settings: IngestSettings,
) -> IngestPipeline:
    return IngestPipeline(engine, embedder, indexer, settings)


# -- building real files -----------------------------------------------------------------------


def make_pdf(pages: Sequence[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_blank_pdf(n_pages: int = 1) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(n_pages):
        writer.add_blank_page(width=200, height=200)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def encrypt_pdf(data: bytes, password: str) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=password, owner_password="owner-secret")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def make_docx() -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = "Handbook"
    document.add_heading("Onboarding", level=1)
    document.add_paragraph("New staff receive a laptop on the first day.")
    document.add_heading("Security", level=2)
    document.add_paragraph("Badges must be worn at all times inside the building.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Room"
    table.cell(0, 1).text = "Floor"
    table.cell(1, 0).text = "Library"
    table.cell(1, 1).text = "Third"
    document.add_heading("Leave", level=1)
    document.add_paragraph("Annual leave is twenty-five days.")
    buf = io.BytesIO()
    document.save(buf)
    return buf.getvalue()
