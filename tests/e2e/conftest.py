"""End-to-end fixtures: the real app over HTTP with the real models, FAISS and SQLite."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings


def make_pdf(pages: list[str]) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def make_docx(heading: str, paragraphs: list[str]) -> bytes:
    import docx

    d = docx.Document()
    d.add_heading(heading, level=1)
    for p in paragraphs:
        d.add_paragraph(p)
    buf = io.BytesIO()
    d.save(buf)
    return buf.getvalue()


@pytest.fixture(scope="session")
def e2e_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    data = tmp_path_factory.mktemp("e2e-data")
    return Settings(data_dir=data).model_copy(
        update={"ingest": Settings().ingest.model_copy(update={"max_file_bytes": 200_000})}
    )


@pytest.fixture(scope="session")
def client(e2e_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(e2e_settings)) as c:
        yield c


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The screenshots the browser tests saved in this run (tests/e2e/test_browser.py)."""
    from tests.e2e.test_browser import SCREENSHOTS, saved

    if saved:
        terminalreporter.section("web page screenshots")
        terminalreporter.write_line(f"in {SCREENSHOTS}:")
        for name in saved:
            terminalreporter.write_line(f"  {name}")
