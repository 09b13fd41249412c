"""Every benchmark still runs: each at a tiny size, as a subprocess, as a user would.

The figures they print are not checked (speed targets are measured by the benchmarks
themselves, on a quiet machine); only that they finish and print their table.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def run(*args: str, timeout: int = 300) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_bm25_speed() -> None:
    out = run("-m", "bench.bm25_speed", "--docs", "3000", "--queries", "50", "--ref-queries", "5")
    assert "vs rank_bm25" in out and "identical top-10 id lists (same order) 5/5" in out


def test_dense_recall_real_and_synthetic(tmp_path: Path) -> None:
    out = run(
        "-m", "bench.dense_recall", "--n", "600", "--queries", "20", "--hnsw-threshold", "300",
        "--cache", str(tmp_path),
    )  # fmt: skip
    assert "real all-MiniLM-L6-v2 embeddings" in out and "HNSW efSearch=128 (default)" in out
    assert list(tmp_path.glob("dense_recall_real_600_20_*.npz"))  # cached for the next run
    out = run(
        "-m", "bench.dense_recall", "--data", "synthetic", "--n", "600", "--queries", "20",
        "--hnsw-threshold", "300",
    )  # fmt: skip
    assert "clustered synthetic" in out


def test_retrieval_scale(tmp_path: Path) -> None:
    out = run("bench/retrieval_scale.py", "--sizes", "1500", "--out", str(tmp_path / "t.txt"))
    rows = [ln.split() for ln in (tmp_path / "t.txt").read_text().splitlines()]
    assert "p50 ms 1w" in out and any(r and r[0] == "1500" and r[4] == "flat" for r in rows)


def test_ingest_speed() -> None:
    out = run("bench/ingest_speed.py", "--docs", "15")
    assert "pipeline / raw" in out


def test_search_during_writes() -> None:
    out = run("-m", "bench.search_during_writes", "--docs", "1500", "--seconds", "1")
    assert "while writing" in out


def test_soak_prints_rss_slope_and_health() -> None:
    out = run(
        "-m", "bench.soak", "--requests", "6", "--clients", "2", "--warm-up", "2",
        "--idle", "1", "--mixed",
    )  # fmt: skip
    assert "fitted slope after warm-up" in out and "/healthz during the run" in out
    assert "query 200: 6" in out


def test_job_crash(tmp_path: Path) -> None:
    out = run(
        "-m", "bench.job_crash", "--trials", "1", "--files", "4", "--max-kill", "1",
        "--out", str(tmp_path / "crash.txt"),
    )  # fmt: skip
    assert "1 of 1 trials consistent" in out and "| consistent |" in out
    assert (tmp_path / "crash.txt").read_text().startswith("# python -m bench.job_crash")


def test_load_test(tmp_path: Path) -> None:
    out = run(
        "-m", "bench.load_test", "--clients", "4", "--seconds", "5", "--keys", "2",
        "--big-upload-mb", "0", "--out", str(tmp_path / "load.txt"),
    )  # fmt: skip
    assert ", lost 0" in out and "server RSS: start" in out
    assert ", 0 errors)" in out  # 503 overloaded is a refusal with Retry-After, not an error
    assert (tmp_path / "load.txt").read_text().strip() == out.strip()


def test_fault_trial_restarts_and_checks() -> None:
    out = run("-m", "bench.fault", "--trials", "1", "--max-kill-after", "1")
    assert "trials with a problem: 0 of 1" in out
    assert "0 collection(s) changed" in out
