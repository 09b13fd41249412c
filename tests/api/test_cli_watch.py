"""`rag ingest --watch FOLDER` as a user runs it: a process of its own, Ctrl-C to stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from queue import Empty, Queue

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_watch_refuses_anything_but_one_folder(tmp_path: Path, rag) -> None:
    (tmp_path / "a.txt").write_text("Annual leave is twenty-five days a year.")
    assert rag.fails("ingest", "--watch", str(tmp_path / "a.txt")).code == "invalid_request"
    assert rag.fails("ingest", "--watch", str(tmp_path), str(tmp_path)).code == "invalid_request"


@pytest.mark.slow
def test_watch_syncs_then_follows_the_folder_until_ctrl_c(tmp_path: Path) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "leave.txt").write_text("Annual leave is twenty-five days a year.")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "--data-dir", str(tmp_path / "data"), "ingest",
         "--watch", str(folder), "-c", "handbook", "--interval", "0.3", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: Queue[dict] = Queue()
    reader = threading.Thread(
        target=lambda: [lines.put(json.loads(ln)) for ln in proc.stdout or []], daemon=True
    )
    reader.start()
    try:
        first = lines.get(timeout=180)
        assert (first["ingested"], first["deleted"], len(first["jobs"])) == (1, [], 1)
        (folder / "travel.txt").write_text("Book trains two weeks ahead.")
        (folder / "leave.txt").unlink()
        seen: list[dict] = []
        while sum(b["ingested"] for b in seen) < 1 or not any(b["deleted"] for b in seen):
            seen.append(lines.get(timeout=60))
        assert [d for b in seen for d in b["deleted"]] == ["leave.txt"]
    except Empty:
        proc.kill()
        pytest.fail(f"no sync line: {proc.stderr.read() if proc.stderr else ''}")
    finally:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "stopped" in err
