"""`rag collections policy|rescan` and `rag docs flagged|list` through typer's CliRunner on
a real SQLite file, the real embedder, injection detector and presidio."""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import InvalidRequest
from tests.api.test_checks_api import ATTACK_DOC, PII_DOC, PLAIN


def test_policy_ingest_flagged_and_rescan_from_the_command_line(rag, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "plain.txt").write_text(PLAIN)
    (docs / "attack.txt").write_text(ATTACK_DOC)
    (docs / "pii.txt").write_text(PII_DOC)
    shown = rag("collections", "policy", "kb", "--set", "injection.documents=drop", "--json")
    assert json.loads(shown.stdout)["changed"] == {"injection": {"documents": "drop"}}
    bad = rag.fails("collections", "policy", "kb", "--set", "pii.answers=fence")
    assert isinstance(bad, InvalidRequest) and bad.exit_code == 2
    assert "pii: 'fence' is not an action for answers" in bad.message
    rag("ingest", str(docs), "-c", "kb")
    listed = json.loads(rag("docs", "list", "-c", "kb", "--json").stdout)
    assert {d["source"]: d["flags"] for d in listed["data"]} == {
        "attack.txt": {"injection": 1},
        "pii.txt": {"pii": 1},
        "plain.txt": {},
    }
    table = rag("docs", "flagged", "-c", "kb", "--check", "injection").stdout
    assert "attack.txt" in table and "drop" in table
    rag("collections", "policy", "kb", "--set", "pii.documents=redact")
    scanned = json.loads(rag("collections", "rescan", "kb", "--json").stdout)
    assert scanned["redacted"] == 1 and scanned["flagged"] == 2
    flagged = json.loads(rag("docs", "flagged", "-c", "kb", "--check", "pii", "--json").stdout)
    assert "ann.lee@example.org" not in flagged["data"][0]["text"]
