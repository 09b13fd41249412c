"""A small real end-to-end eval: a tiny BEIR data set through the real ingestion
pipeline, indexes and retriever (real embedding model, real SQLite file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.orm import Session

from api.platform import Platform
from core import db, repository
from core.settings import FusionMode, Settings
from core.types import CollectionKey
from evals.retrieval_eval import METHODS, doc_ranking, evaluate_retrieval, render_table
from evals.tune import render_tune, tune_fusion

K = CollectionKey.default  # a collection of the default tenant


pytestmark = pytest.mark.slow

DOCS = {
    "d1": ("Photosynthesis", "Plants turn sunlight, water and carbon dioxide into sugar."),
    "d2": ("Volcanoes", "Magma rises through the crust and erupts as lava and ash."),
    "d3": ("Honey bees", "Bees collect nectar from flowers and store it as honey in hives."),
    "d4": ("Tides", "The gravity of the moon pulls the oceans, raising high and low tides."),
    "d5": ("Vaccines", "A vaccine trains the immune system to recognise a pathogen."),
    "d6": ("Glaciers", "Compacted snow forms ice that slowly flows downhill as a glacier."),
}
QUERIES = {
    "q1": "how do plants make sugar from sunlight",
    "q2": "what causes ocean tides",
    "q3": "where do bees keep honey",
    "q4": "immune system training against pathogens",
    "q5": "lava eruptions",
}
QRELS = [("q1", "d1", 1), ("q2", "d4", 2), ("q3", "d3", 1), ("q4", "d5", 1), ("q5", "d2", 1)]


def write_dataset(root: Path) -> None:
    folder = root / "scifact"
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, (t, x) in DOCS.items())
    )
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    )
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{g}" for q, d, g in QRELS]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines[:4]) + "\n")
    (folder / "qrels" / "train.tsv").write_text("\n".join([lines[0], *lines[4:]]) + "\n")


def test_doc_ranking_keeps_best_chunk_rank() -> None:
    c2d = {"a1": "A", "a2": "A", "b1": "B", "c1": "C"}
    assert doc_ranking([("a2", 3.0), ("b1", 2.0), ("a1", 1.0), ("zz", 0.5), ("c1", 0.1)], c2d) == [
        "A",
        "B",
        "C",
    ]


def started(settings: Settings) -> Platform:
    """The composition root evals receive their stages from, started like `rag` does."""
    platform = Platform(settings)
    platform.startup()
    return platform


def test_eval_and_tune_end_to_end(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    settings = Settings(data_dir=tmp_path / "data")
    platform = started(settings)
    result = evaluate_retrieval(platform, "scifact", "test", datasets_dir=tmp_path)
    out = result.to_json()
    assert (out["dataset"], out["split"], out["n_queries"]) == ("scifact", "test", 3)
    assert set(out["methods"]) == set(METHODS)
    for name, row in out["methods"].items():
        for key in ("ndcg@10", "recall@5", "recall@10", "recall@100", "mrr@10"):
            assert 0.0 <= row[key] <= 1.0, (name, key)
        assert row["qps"] > 0
        # six clearly distinct documents: every method finds each answer in its top 5
        assert row["recall@5"] == 1.0, name
    assert out["methods"]["bm25"]["mrr@10"] == 1.0
    assert result.build_seconds > 0
    json.dumps(out)  # serialisable as is

    console = Console(record=True, width=160)
    render_table(result, console)
    text = console.export_text()
    assert "hybrid-weighted" in text and "nDCG@10" in text and "R@100" in text

    # tune on the train split, store in SQL; the eval's "hybrid" then uses it
    tuned = tune_fusion(platform, None, "scifact", "train", datasets_dir=tmp_path)
    assert tuned.split == "train" and tuned.n_queries == 2
    assert len(tuned.rows) == 7 + 9
    assert tuned.best.value == max(r.value for r in tuned.rows)
    with Session(db.make_engine(settings.db_url)) as s:
        row = repository.get_collection(s, K("eval-scifact"))
        assert row.fusion_mode == tuned.best.mode.value
        assert row.tuned_metric is not None
        assert row.tuned_metric["value"] == round(tuned.best.value, 4)
        assert row.tuned_metric["split"] == "train"
        if tuned.best.mode is FusionMode.RRF:
            assert row.rrf_k == tuned.best.rrf_k
        else:
            assert row.alpha == tuned.best.alpha
    console = Console(record=True, width=160)
    render_tune(tuned, console)
    assert "stored" in console.export_text()
    assert json.dumps(tuned.to_json())

    again = evaluate_retrieval(
        platform, "scifact", "test", datasets_dir=tmp_path, methods=["bm25", "hybrid"]
    )
    assert again.build_seconds == 0.0  # the collection was reused
    assert list(again.methods) == ["bm25", "hybrid"]
    assert again.methods["hybrid"].label == tuned.best.label

    # Other chunk settings: the eval collection is not reused as it is; its documents
    # are re-indexed with the new recipe (before, the stale chunks were silently kept).
    other = Settings(data_dir=tmp_path / "data", ingest={"chunk_overlap_tokens": 5})
    rebuilt = evaluate_retrieval(
        started(other), "scifact", "test", datasets_dir=tmp_path, methods=["bm25"]
    )
    assert rebuilt.build_seconds > 0
    with Session(db.make_engine(settings.db_url)) as s:
        col = repository.get_collection(s, K("eval-scifact"))
        recipes = {d.recipe for d in repository.list_documents(s, col.id)}
    assert len(recipes) == 1 and recipes.pop().startswith("chunks 254/5 tokens")
