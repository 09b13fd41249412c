"""Dataset loaders on small files written in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import InvalidRequest, PathNotFound
from evals.datasets import (
    default_datasets_dir,
    load_beir,
    load_dataset,
    load_squad,
    resolve_split,
)


def write_beir(root: Path) -> Path:
    folder = root / "mini"
    (folder / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "d1", "title": "Cats", "text": "Cats purr."},
        {"_id": "d2", "title": "", "text": "Dogs bark."},
        {"_id": 3, "text": "Birds sing."},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(r) for r in corpus) + "\n\n")
    queries = [
        {"_id": "q1", "text": "what purrs"},
        {"_id": "q2", "text": "what barks"},
        {"_id": "q3", "text": "unjudged in test"},
    ]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(r) for r in queries))
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\t3\t1\n"
    )
    (folder / "qrels" / "train.tsv").write_text("q3\td1\t1\n")  # no header
    return folder


def test_load_beir(tmp_path: Path) -> None:
    folder = write_beir(tmp_path)
    ds = load_beir(folder, "test")
    assert ds.corpus == {
        "d1": ("Cats", "Cats purr."),
        "d2": ("", "Dogs bark."),
        "3": ("", "Birds sing."),
    }
    assert ds.queries == {"q1": "what purrs", "q2": "what barks"}
    assert ds.qrels == {"q1": {"d1": 1}, "q2": {"d2": 2, "3": 1}}
    train = load_beir(folder, "train")
    assert train.queries == {"q3": "unjudged in test"}
    with pytest.raises(PathNotFound):
        load_beir(folder, "dev")


def test_load_squad(tmp_path: Path) -> None:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": "Super_Bowl",
                "paragraphs": [
                    {"context": "Denver won.", "qas": [{"id": "a1", "question": "Who won?"}]},
                    {
                        "context": "It was in 2016.",
                        "qas": [
                            {"id": "a2", "question": "When?", "answers": []},
                            {"id": "a3", "question": "Which year?"},
                        ],
                    },
                ],
            },
            {"title": "Oxygen", "paragraphs": [{"context": "O2 is a gas.", "qas": []}]},
        ],
    }
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(data))
    ds = load_squad(path)
    assert ds.corpus == {
        "Super_Bowl#0": ("Super Bowl", "Denver won."),
        "Super_Bowl#1": ("Super Bowl", "It was in 2016."),
        "Oxygen#0": ("Oxygen", "O2 is a gas."),
    }
    assert ds.queries == {"a1": "Who won?", "a2": "When?", "a3": "Which year?"}
    assert ds.qrels == {
        "a1": {"Super_Bowl#0": 1},
        "a2": {"Super_Bowl#1": 1},
        "a3": {"Super_Bowl#1": 1},
    }


def test_load_dataset_by_name(tmp_path: Path) -> None:
    write_beir(tmp_path)
    (tmp_path / "mini").rename(tmp_path / "scifact")
    ds = load_dataset("scifact", None, datasets_dir=tmp_path)
    assert (ds.name, ds.split, len(ds.queries)) == ("scifact", "test", 2)
    with pytest.raises(InvalidRequest):
        load_dataset("nope", None, datasets_dir=tmp_path)
    with pytest.raises(InvalidRequest):
        resolve_split("squad", "test")
    assert resolve_split("squad", None) == "dev"


def test_default_datasets_dir_is_beside_the_repo() -> None:
    root = Path(__file__).resolve().parents[2]
    assert default_datasets_dir() == root.parent / "shared" / "datasets"


def test_the_datasets_dir_setting_and_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11: after a non-editable install the data sets are found from the
    ``datasets_dir`` setting (RAG_DATASETS_DIR), else ``../shared/datasets`` from the
    working directory; a missing folder names the setting."""
    from core.settings import Settings

    shared = tmp_path / "shared" / "datasets"
    shared.mkdir(parents=True)
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    assert default_datasets_dir() == shared
    monkeypatch.setenv("RAG_DATASETS_DIR", str(tmp_path / "elsewhere"))
    configured = Settings().datasets_dir
    assert configured == tmp_path / "elsewhere" and default_datasets_dir(configured) == configured
    with pytest.raises(PathNotFound, match="RAG_DATASETS_DIR") as e:
        load_dataset("scifact", None, datasets_dir=configured)
    assert "datasets_dir" in e.value.message and "elsewhere" in e.value.message

