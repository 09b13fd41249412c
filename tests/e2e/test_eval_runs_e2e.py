"""Batch evaluation runs and gated changes end to end: the `rag` command line as a user
runs it, the REST API, and the gate on real models, SQLite and FAISS."""

from __future__ import annotations

import json
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from api.app import create_app
from api.platform import Platform
from core import repository
from core.settings import Settings
from core.types import CollectionKey
from evals.gate import gated_change, gated_delete, rollback, set_gate
from tests.e2e.test_cli_e2e import rag

pytestmark = pytest.mark.slow

# Retrieval-only assertions: deterministic for a given index, so the gate decides on the
# documents, not on the small model's wording.
SUITE: dict[str, Any] = {
    "description": "gate over examples/",
    "defaults": {"collection": "docs", "top_k": 5},
    "cases": [
        {
            "id": "source-of-truth",
            "question": "What is the source of truth for the platform's data?",
            "expected_sources": ["data-and-consistency.txt"],
            "tags": ["storage"],
            "assert": [{"type": "recall@5"}],
        },
        {
            "id": "embedding-dimensions",
            "question": "How many dimensions do the embeddings have?",
            "reference": "384",
            "expected_sources": ["retrieval.md"],
            "tags": ["retrieval"],
            "assert": [{"type": "recall@3"}, {"type": "token-f1", "weight": 0}],
        },
    ],
}


@pytest.fixture(scope="module")
def cli_data(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    d = tmp_path_factory.mktemp("eval-cli")
    r = rag(d, "ingest", str(repo_root / "examples"), "--collection", "docs")
    assert r.returncode == 0, r.stderr
    return d


def test_cli_run_store_report_gate_diff_replay(cli_data: Path, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump(SUITE), encoding="utf-8")
    junit, html = tmp_path / "out" / "junit.xml", tmp_path / "out" / "report.html"
    r = rag(
        cli_data,
        "eval",
        "run",
        str(suite),
        "--junit",
        str(junit),
        "--html",
        str(html),
        "--fail-under",
        "1.0",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    run = json.loads(r.stdout)
    assert run["status"] == "done" and run["pass_rate"] == 1.0 and run["gate"] == []
    assert [c["case_id"] for c in run["cases"]] == ["source-of-truth", "embedding-dimensions"]
    assert run["fingerprint"]["llm"]["model_sha256"]
    assert run["fingerprint"]["collections"]["docs"]["chunks"] > 0
    suite_el = ET.parse(junit).getroot().find("testsuite")
    assert suite_el is not None and suite_el.get("tests") == "2"
    assert suite_el.get("failures") == "0"
    page = html.read_text(encoding="utf-8")
    assert "<svg" in page and run["id"] in page
    assert not re.search(r"(src|href)=[\"']https?:", page)  # self-contained

    # the same suite with top_k 1: the second case's source drops out -> diff, gate
    narrow = {**SUITE, "defaults": {**SUITE["defaults"], "top_k": 1}}
    narrow["cases"] = [
        {**c, "assert": [{"type": "recall@1"}]} if c["id"] == "embedding-dimensions" else c
        for c in SUITE["cases"]
    ]
    suite.write_text(yaml.safe_dump(narrow), encoding="utf-8")
    r2 = rag(cli_data, "eval", "run", str(suite), "--baseline", run["id"], "--json")
    second = json.loads(r2.stdout)
    broken = [c["case_id"] for c in second["cases"] if not c["passed"]]
    if broken:  # a case that passed in the baseline fails now: exit 1
        assert r2.returncode == 1 and "passed in baseline" in second["gate"][0]
    else:
        assert r2.returncode == 0

    listed = json.loads(rag(cli_data, "eval", "list", "--json").stdout)
    assert [x["id"] for x in listed["data"]][:2] == [second["id"], run["id"]]
    shown = rag(cli_data, "eval", "show", run["id"])
    assert shown.returncode == 0 and "source-of-truth" not in shown.stdout.split("fail")[-1]
    d = json.loads(rag(cli_data, "eval", "diff", run["id"], second["id"], "--json").stdout)
    assert d["broken"] == broken and "overall" in d["deltas"]

    rp = rag(cli_data, "eval", "replay", run["id"], "embedding-dimensions", "--json")
    assert rp.returncode == 0, rp.stderr
    replay = json.loads(rp.stdout)
    assert replay["identical"] is True, replay  # temperature 0, seed 0, same index
    assert replay["config"] == []

    missing = rag(cli_data, "eval", "show", "run-000000000000")
    assert missing.returncode != 0 and "does not exist" in missing.stderr


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Platform:
    p = Platform(Settings(data_dir=tmp_path_factory.mktemp("gate-data")))
    p.startup()
    report = p.ingest.ingest_paths([repo_root / "examples"], CollectionKey.default("docs"))
    assert not report.failed
    return p


def _sources(platform: Platform, key: CollectionKey) -> list[str]:
    with repository.read(platform.engine) as s:
        col = repository.get_collection(s, key)
        return sorted(d.source for d in repository.list_documents(s, col.id))


def test_gated_changes_go_live_only_when_the_suite_passes(
    platform: Platform, tmp_path: Path
) -> None:
    key = CollectionKey.default("docs")
    set_gate(platform, key, SUITE, "gate.yaml", min_pass_rate=1.0)
    before = _sources(platform, key)
    answer_before = platform.query.answer("How many dimensions do the embeddings have?", key)

    # a harmless upload passes the suite and goes live; the live version serves queries
    # the whole time the candidate is built and checked
    seen_live: list[list[str]] = []

    def add_note(k: CollectionKey) -> Any:
        assert k != key and k.name.startswith("docs~")
        report = platform.ingest.ingest_files([("cooking.txt", b"Boil pasta for ten minutes.")], k)
        seen_live.append(_sources(platform, key))
        return report

    ok = gated_change(platform, key, add_note)
    assert ok.gated and ok.accepted and ok.run is not None and ok.run.pass_rate == 1.0
    assert seen_live == [before]
    assert _sources(platform, key) == sorted([*before, "cooking.txt"])

    # deleting the document the suite needs is refused: the live version is unchanged
    with repository.read(platform.engine) as s:
        col = repository.get_collection(s, key)
        doc_id = repository.find_document(s, col.id, "retrieval.md").id  # type: ignore[union-attr]
    refused = gated_delete(platform, key, doc_id)
    assert refused.gated and not refused.accepted
    assert refused.run is not None and "embedding-dimensions" in refused.reasons[0]
    assert "retrieval.md" in _sources(platform, key)
    answer_after = platform.query.answer("How many dimensions do the embeddings have?", key)
    assert answer_after.text == answer_before.text
    # no candidate is left, and versions never show in listings
    with repository.read(platform.engine) as s:
        names = [c.name for c in repository.list_collections(s, versions=True)]
        assert [c.name for c in repository.list_collections(s)] == ["docs"]
    assert sorted(names) == ["docs", "docs~previous"]

    # a change that crashes mid-way discards its candidate and changes nothing
    def crash(k: CollectionKey) -> None:
        platform.ingest.ingest_files([("x.txt", b"half done")], k)
        raise RuntimeError("power cut")

    with pytest.raises(RuntimeError):
        gated_change(platform, key, crash)
    assert "x.txt" not in _sources(platform, key)

    # rollback returns to the version before the upload, and back again
    rollback(platform, key)
    assert _sources(platform, key) == before
    rollback(platform, key)
    assert "cooking.txt" in _sources(platform, key)


def test_rest_eval_runs_are_tenant_scoped_and_report(platform: Platform) -> None:
    settings = platform.settings.model_copy(
        update={"api": platform.settings.api.model_copy(update={"auth_required": True})}
    )
    from api.auth import create_api_key

    with TestClient(create_app(settings)) as client:
        engine = client.app.state.platform.engine  # type: ignore[attr-defined]
        mine = create_api_key(engine, "default", "mine").secret
        theirs = create_api_key(engine, "acme", "theirs").secret
        h = {"Authorization": f"Bearer {mine}"}
        r = client.post("/v1/evals", json={"suite": SUITE, "name": "rest"}, headers=h)
        assert r.status_code == 202, r.text
        run_id = r.json()["id"]
        for _ in range(600):
            status = client.get(f"/v1/evals/{run_id}", headers=h).json()
            if status["status"] != "running":
                break
            time.sleep(0.5)
        assert status["status"] == "done" and status["progress"] == {"done": 2, "total": 2}
        assert status["pass_rate"] == 1.0
        page = client.get(f"/v1/evals/{run_id}/report", headers=h)
        assert page.status_code == 200 and "<svg" in page.text
        other = client.get(f"/v1/evals/{run_id}", headers={"Authorization": f"Bearer {theirs}"})
        assert other.status_code == 404
        bad = client.post("/v1/evals", json={"suite": {"cases": []}}, headers=h)
        assert bad.status_code == 422 and "cases" in bad.json()["error"]["message"]
        fp = client.get("/v1/fingerprint", params={"collection": "docs"}, headers=h).json()
        assert fp["collections"]["docs"]["chunks"] > 0 and fp["llm"]["model_sha256"]


def test_cli_gate_refuses_a_change_that_breaks_the_suite(
    cli_data: Path, repo_root: Path, tmp_path: Path
) -> None:
    assert rag(cli_data, "ingest", str(repo_root / "examples"), "-c", "gated").returncode == 0
    suite = tmp_path / "gate.yaml"
    suite.write_text(yaml.safe_dump({**SUITE, "defaults": {"collection": "gated"}}))
    g = rag(cli_data, "collections", "gate", "gated", "--suite", str(suite), "--min-pass-rate", "1")
    assert g.returncode == 0 and "changes go live when" in g.stdout, g.stderr
    note = tmp_path / "note.txt"
    note.write_text("The cafeteria opens at eight.", encoding="utf-8")
    ok = rag(cli_data, "ingest", str(note), "-c", "gated")
    assert ok.returncode == 0 and "gate passed" in ok.stderr, ok.stderr

    def docs() -> dict[str, str]:
        listed = json.loads(rag(cli_data, "docs", "list", "-c", "gated", "--json").stdout)
        return {d["source"]: d["id"] for d in listed["data"]}

    assert "note.txt" in docs()
    refused = rag(cli_data, "docs", "delete", docs()["retrieval.md"], "-c", "gated")
    assert refused.returncode == 4 and "gate refused the change" in refused.stderr
    assert "retrieval.md" in docs()
    assert rag(cli_data, "collections", "rollback", "gated").returncode == 0
    assert "note.txt" not in docs() and "retrieval.md" in docs()
    listed = json.loads(rag(cli_data, "collections", "list", "--json").stdout)
    assert all("~" not in c["name"] for c in listed["data"])
