"""The `rag` command line end to end, as a user runs it (a real subprocess each time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def rag(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        capture_output=True, text=True, env=env, timeout=600,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    d = tmp_path_factory.mktemp("cli-data")
    r = rag(d, "ingest", str(repo_root / "examples"), "--collection", "docs")
    assert r.returncode == 0, r.stderr
    assert "ingested" in r.stdout
    return d


def test_ingest_reports_each_file_and_is_idempotent(data_dir: Path, repo_root: Path) -> None:
    r = rag(data_dir, "ingest", str(repo_root / "examples"), "--collection", "docs", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["unchanged"] == len(report["results"]) >= 4
    assert report["ingested"] == report["failed"] == 0


def test_ask_json_has_the_documented_shape(data_dir: Path) -> None:
    r = rag(
        data_dir, "ask", "How large can an uploaded file be?", "--collection", "docs", "--json",
    )
    assert r.returncode == 0, r.stderr
    a = json.loads(r.stdout)
    assert {"answer", "citations", "retrieved", "model", "timings_ms", "usage"} <= set(a)
    assert a["citations"], a
    c = a["citations"][0]
    assert {"n", "document_id", "source", "page", "chunk_id", "snippet"} <= set(c)
    assert {"chunk_id", "document_id", "source", "score", "bm25_rank", "dense_rank"} <= set(
        a["retrieved"][0]
    )
    assert {"path", "sha256"} == set(a["model"])
    assert {"retrieve", "generate", "total"} == set(a["timings_ms"])
    assert {"prompt_tokens", "completion_tokens"} == set(a["usage"])


def test_ask_prints_answer_then_numbered_sources(data_dir: Path) -> None:
    r = rag(
        data_dir, "ask", "What happens when I ingest a file that has not changed?", "-c", "docs",
        "--top-k", "3",
    )
    assert r.returncode == 0, r.stderr
    assert "Sources" in r.stdout and "[1]" in r.stdout


def test_docs_list_delete_and_collections(data_dir: Path) -> None:
    r = rag(data_dir, "docs", "list", "-c", "docs", "--json")
    docs = json.loads(r.stdout)["data"]
    faq = next(d for d in docs if d["source"] == "faq.html")
    assert rag(data_dir, "docs", "delete", faq["id"], "-c", "docs").returncode == 0
    r = rag(data_dir, "docs", "list", "-c", "docs", "--json")
    assert faq["id"] not in {d["id"] for d in json.loads(r.stdout)["data"]}
    r = rag(data_dir, "collections", "list", "--json")
    assert "docs" in {c["name"] for c in json.loads(r.stdout)["data"]}


def test_cli_errors_name_the_problem(data_dir: Path, tmp_path: Path) -> None:
    good = tmp_path / "ok.txt"
    good.write_text("The museum of clocks opens at nine in the morning.")
    r = rag(data_dir, "ingest", str(tmp_path / "missing.txt"), str(good), "-c", "mixed")
    assert r.returncode == 3
    assert "missing.txt" in r.stdout + r.stderr
    assert "ingested" in r.stdout  # the good file was not lost
    r = rag(data_dir, "ask", "anything?", "-c", "nope")
    assert r.returncode == 4 and "nope" in r.stderr
    r = rag(data_dir, "docs", "delete", "0" * 32, "-c", "docs")
    assert r.returncode == 4
