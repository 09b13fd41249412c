"""Papercuts a new user meets in the `rag` command line (issue 11), through typer's
CliRunner on a real data folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ID = re.compile(r"\b[0-9a-f]{32}\b")


def test_ids_are_whole_at_80_columns(rag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`rag docs list` / `rag jobs list` at 80 columns show every id whole, and the id
    copied from the table deletes the document."""
    monkeypatch.setenv("COLUMNS", "80")
    docs = tmp_path / "in"
    docs.mkdir()
    (docs / "a-rather-long-file-name-for-a-narrow-terminal.txt").write_text(
        "The acme warehouse closes at six on Fridays."
    )
    rag("ingest", str(docs), "-c", "narrow")
    listed = json.loads(rag("docs", "list", "-c", "narrow", "--json").stdout)["data"]
    table = rag("docs", "list", "-c", "narrow").stdout
    assert max(len(line) for line in table.splitlines()) <= 80
    assert ID.findall(table) == [listed[0]["id"]]
    jobs = json.loads(rag("jobs", "list", "--json").stdout)["data"]
    jobs_table = rag("jobs", "list").stdout
    assert max(len(line) for line in jobs_table.splitlines()) <= 80
    assert set(ID.findall(jobs_table)) == {j["id"] for j in jobs}
    rag("ingest", str(docs), "-c", "handbook-engineering-2026-q4")
    collections = rag("collections", "list").stdout
    assert max(len(line) for line in collections.splitlines()) <= 80
    assert "handbook-engineering-2026-q4" in collections
    rag("docs", "delete", ID.findall(table)[0], "-c", "narrow")
    assert json.loads(rag("docs", "list", "-c", "narrow", "--json").stdout)["data"] == []


def test_id_table_keeps_the_id_column_whole() -> None:
    from rich.console import Console

    from api.cli import id_table

    table = id_table("id", "suite", "target", "status", "passed", "rate", "started")
    table.add_row("ab" * 16, "evals/suites/" + "x" * 40, "collection " * 4, "done", "9/10",
                  "90.0%", "2026-12-02 17:00:00")  # fmt: skip
    console = Console(width=80, record=True)
    with console.capture() as cap:
        console.print(table)
    assert "ab" * 16 in cap.get()


def test_a_refused_upload_leaves_no_empty_collection(tmp_path: Path) -> None:
    """Issue 11: `?wait=true` with no ingestible file answers 415 naming the supported
    extensions (.jsonl too) and leaves no new collection; an existing collection stays."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.api.conftest import TenantClient, api_settings

    with TestClient(create_app(api_settings(tmp_path / "data"))) as raw:
        api = TenantClient(raw, None)
        r = api.upload("fresh", {"server.log": "Plain words in a log file."})
        assert r.status_code == 415, r.text
        message = r.json()["error"]["message"]
        assert "'.log' is not a supported format" in message and ".jsonl" in message
        assert "ingest.unknown_as_text" in message
        names = [c["name"] for c in api.get("/v1/collections").json()["data"]]
        assert "fresh" not in names
        assert api.upload("kept", {"a.txt": "The ferry leaves hourly."}).status_code == 200
        assert api.upload("kept", {"b.log": "Refused words."}).status_code == 415
        kept = {c["name"]: c for c in api.get("/v1/collections").json()["data"]}
        assert kept["kept"]["documents"] == 1


def test_cli_ingest_refuses_unknown_extensions_unless_opted_in(
    rag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "server.log"
    log.write_text("The night shift restarts the pumps at three.")
    r = rag("ingest", str(log), "-c", "logs", "--json", ok=False)
    report = json.loads(r.stdout)
    assert report["results"][0]["error_code"] == "unsupported_format"
    assert json.loads(rag("collections", "list", "--json").stdout)["count"] == 0
    monkeypatch.setenv("RAG_INGEST__UNKNOWN_AS_TEXT", "true")
    report = json.loads(rag("ingest", str(log), "-c", "logs", "--json").stdout)
    assert report["ingested"] == 1


def test_help_shows_the_configured_defaults_and_every_option_says_what_it_does(
    tmp_path: Path,
) -> None:
    """Issue 11: every option of every command has help text; -c names the configured
    default collection (through the real entry point: --help is made at import);
    `rag tune --dataset` says it is required."""
    import os
    import subprocess
    import sys

    import typer
    from typer.testing import CliRunner

    from api.cli import app

    missing = []

    def walk(command, path: list[str]) -> None:
        if not (command.help or command.short_help):
            missing.append(" ".join(path))
        for p in command.params:
            if p.param_type_name == "option" and not p.hidden and not p.help:
                missing.append(f"{' '.join(path)} {p.opts[0]}")
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), ["rag"])
    assert missing == []
    tune_help = CliRunner().invoke(app, ["tune", "--help"]).stdout
    assert "labelled queries, required" in " ".join(tune_help.split())
    env = {**os.environ, "RAG_DATA_DIR": str(tmp_path), "HF_HUB_OFFLINE": "1",
           "RAG_DEFAULT_COLLECTION": "handbook", "COLUMNS": "120"}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "api.cli", "docs", "list", "--help"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "default: handbook" in proc.stdout and "default: settings" not in proc.stdout


def test_rag_eval_names_the_datasets_setting_when_the_folder_is_missing(
    rag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.errors import PathNotFound

    monkeypatch.setenv("RAG_DATASETS_DIR", str(tmp_path / "nowhere"))
    r = rag("eval", "retrieval", "--dataset", "scifact", ok=False)
    assert isinstance(r.exception, PathNotFound) and "RAG_DATASETS_DIR" in r.exception.message


def test_rag_eval_retrieval_shows_progress_and_a_whole_table_at_80_columns(
    rag, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: building the eval collection reports each document on stderr (lines when
    stderr is no terminal), and the table fits 80 columns with nothing cut."""
    scifact = tmp_path / "datasets" / "scifact"
    (scifact / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": f"d{i}", "title": f"Doc {i}", "text": f"Harbour fact number {i} about {w}."}
        for i, w in enumerate(["tides", "ferries", "lamps", "boats", "nets"])
    ]
    (scifact / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n")
    queries = [{"_id": "q1", "text": "tides"}, {"_id": "q2", "text": "ferries"}]
    (scifact / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries) + "\n")
    (scifact / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td1\t1\n"
    )
    monkeypatch.setenv("RAG_DATASETS_DIR", str(tmp_path / "datasets"))
    monkeypatch.setenv("COLUMNS", "80")
    r = rag("eval", "retrieval", "--dataset", "scifact")
    assert "ingesting 5 documents of scifact" in r.stderr and "ingested 5/5" in r.stderr
    lines = r.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for cell in ("nDCG@10", "R@100", "MRR@10", "q/s", "hybrid-weighted", "bm25", "dense"):
        assert cell in r.stdout, cell
    assert "…" not in r.stdout
