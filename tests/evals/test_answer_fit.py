"""Fitting the answer selector and abstention model: label matching, the operating point,
and `rag tune --abstention` end to end on a slice of ClapNQ-tune (real models, SQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy.orm import Session

from core.db import make_engine
from core.repository import collection_answer_models
from core.types import CollectionKey
from evals.answer_fit import match_selected, operating_point
from generation.compose import AnswerComposer

CLAPNQ = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clapnq-tune"


def test_selected_sentences_match_across_tokenisation() -> None:
    selected = [
        "Seasonality is a characteristic of a time series in which the data experiences "
        "regular and predictable changes which recur every calendar year .",
        "Parens patriae is Latin for `` parent of the nation '' ( lit.",
    ]
    cands = [
        "Seasonality is a characteristic of a time series in which the data experiences "
        "regular and predictable changes which recur every calendar year.",
        'Parens patriae is Latin for "parent of the nation" (lit.',
        "Seasonality is a characteristic of a time series.",  # too little of the sentence
        "Forecasting uses many methods.",
    ]
    assert match_selected(cands, selected).tolist() == [True, True, False, False]
    assert match_selected(cands, []).tolist() == [False] * 4


def test_operating_point_reaches_the_target_precision_with_the_most_recall() -> None:
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    y = np.array([True, True, False, True, True, False, False, False])
    # abstaining from 0.8: precision 1.0, recall .5; from 0.5: 4/5 = .8, recall 1.0
    assert operating_point(p, y, 0.8) == pytest.approx(0.5)
    assert operating_point(p, y, 1.0) == pytest.approx(0.8)
    # unreachable precision: the best-F1 threshold instead
    assert operating_point(np.array([0.9, 0.1]), np.array([False, True]), 0.99) == pytest.approx(
        0.1
    )


def _slice(tmp: Path, per_class: int) -> Path:
    """The first ``per_class`` answerable and unanswerable ClapNQ-tune lines in one file."""
    lines = []
    for name in ("answerable.jsonl", "unanswerable.jsonl"):
        with (CLAPNQ / name).open(encoding="utf-8") as f:
            lines += [next(f) for _ in range(per_class)]
    path = tmp / "mine.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.mark.slow
def test_rag_tune_abstention_fits_cross_validates_and_stores(tmp_path: Path) -> None:
    data = _slice(tmp_path, 12)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "RAG_DATA_DIR": str(tmp_path / "data")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "api.cli",
            "tune",
            "--abstention",
            "--dataset",
            str(data),
            "--target-precision",
            "0.7",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["collection"] == "eval-mine" and out["stored"] and out["selector_fitted"]
    cv = out["cross_validation"]
    assert cv["n"] == 24 and cv["answerable"] == cv["unanswerable"] == 12
    assert 0.0 <= cv["figures"]["abstention_f1"] <= 1.0
    url = os.environ.get("RAG_DB__URL") or f"sqlite:///{tmp_path / 'data' / 'rag.sqlite3'}"
    engine = make_engine(url)  # the CLI's database (PostgreSQL under pytest --postgres)
    with Session(engine) as s:
        stored = collection_answer_models(s, CollectionKey.default("eval-mine"))
    composer = AnswerComposer.from_json(stored)
    assert composer.abstainer.meta["target_precision"] == 0.7
    assert composer.abstainer.threshold == pytest.approx(out["abstention_threshold"], abs=1e-6)
    # bad input: a clear message, exit code 2 or 1, nothing stored elsewhere
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "input": "q"}\n', encoding="utf-8")
    r = subprocess.run(
        [sys.executable, "-m", "api.cli", "tune", "--abstention", "--dataset", str(bad)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode != 0 and "bad.jsonl:1" in r.stderr + r.stdout
