"""Dataset adapters: each data set (small files in tmp_path) becomes a suite parse_suite
accepts, with n questions, the same ones for a seed; ClapNQ's unanswerable questions
assert an abstention. The real shared files once each, and the eval collection built
through a real Platform (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core import repository
from core.errors import InvalidRequest
from core.settings import Settings
from core.types import CollectionKey
from evals.datasets import default_datasets_dir, passage_id
from evals.make_suite import (
    SUITE_DATASETS,
    ensure_suite_collection,
    make_suite,
    suite_collection_name,
    write_suite,
)
from evals.suite import Suite, load_suite, parse_suite
from tests.evals.test_answer_eval import line
from tests.evals.test_datasets import write_beir

SHARED = default_datasets_dir()

ARTICLES = {
    "Rivers": [
        ("The Danube ends in the Black Sea after flowing through ten countries.",
         [("r1", "Where does the Danube end?", ["the Black Sea", "Black Sea"]),
          ("r2", "How many countries does the Danube flow through?", ["ten"])]),
        ("The Rhine rises in the Swiss Alps.",
         [("r3", "Where does the Rhine rise?", ["the Swiss Alps"])]),
    ],
    "Bread": [
        ("Bread is made from flour, water, salt and yeast.",
         [("b1", "What is bread made from?", ["flour, water, salt and yeast"]),
          ("b2", "What makes bread rise?", ["yeast"]),
          ("b3", "Which mineral seasons bread?", ["salt"])]),
    ],
}  # fmt: skip


def write_squad(path: Path) -> None:
    data = {
        "version": "1.1",
        "data": [
            {
                "title": title,
                "paragraphs": [
                    {
                        "context": context,
                        "qas": [
                            {
                                "id": qid,
                                "question": q,
                                "answers": [{"text": a, "answer_start": 0} for a in answers],
                            }
                            for qid, q, answers in qas
                        ],
                    }
                    for context, qas in paragraphs
                ],
            }
            for title, paragraphs in ARTICLES.items()
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_clapnq(root: Path) -> None:
    folder = root / "clapnq-tune"
    folder.mkdir(parents=True)
    answerable = "".join(
        line(f"a{i}", f"what is fact {i}", f"Topic {i}", f"Fact {i} is true.", f"fact {i}")
        for i in range(6)
    )
    unanswerable = "".join(
        line(f"u{i}", f"who wrote topic {i}", f"Topic {i}", f"Topic {i} is old.") for i in range(4)
    )
    (folder / "answerable.jsonl").write_text(answerable, encoding="utf-8")
    (folder / "unanswerable.jsonl").write_text(unanswerable, encoding="utf-8")


@pytest.fixture
def datasets(tmp_path: Path) -> Path:
    """Small files of every data set, laid out as ../shared/datasets is."""
    root = tmp_path / "datasets"
    write_squad(root / "xquad-en" / "xquad.en.json")
    write_squad(root / "squad-v1.1-dev" / "dev-v1.1.json")
    write_beir(root)
    (root / "mini").rename(root / "scifact")
    write_clapnq(root)
    return root


def ids(data: dict) -> list[str]:
    return [c["id"] for c in data["cases"]]


def asserted(case: dict) -> dict[str, dict]:
    return {a["type"]: a for a in case["assert"]}


# -- every data set --------------------------------------------------------------------------


@pytest.mark.parametrize("dataset", SUITE_DATASETS)
def test_each_dataset_makes_a_valid_suite_of_n_cases(datasets: Path, dataset: str) -> None:
    data = make_suite(dataset, 2, seed=0, datasets_dir=datasets)
    suite = parse_suite(data)
    assert isinstance(suite, Suite) and len(suite.cases) == 2
    assert suite.defaults.collection == f"eval-{dataset}" == suite_collection_name(dataset)
    assert suite.defaults.top_k == 5
    assert (suite.defaults.sampling.temperature, suite.defaults.sampling.seed) == (0.0, 0)
    assert all(c.id.startswith(f"{dataset}:") and c.tags[0] == dataset for c in suite.cases)
    # the same cases for a seed; all of them without n (or with a larger n)
    assert make_suite(dataset, 2, seed=0, datasets_dir=datasets) == data
    every = make_suite(dataset, None, datasets_dir=datasets)
    assert make_suite(dataset, 100, datasets_dir=datasets) == every
    assert set(ids(data)) <= set(ids(every))
    assert len({tuple(ids(make_suite(dataset, 1, s, datasets))) for s in range(8)}) > 1


def test_reading_sets_check_the_answer_and_the_gold_paragraph(datasets: Path) -> None:
    for dataset in ("xquad", "squad"):
        suite = parse_suite(make_suite(dataset, None, datasets_dir=datasets))
        assert len(suite.cases) == 6
        r1 = suite.case(f"{dataset}:r1")
        assert r1.question == "Where does the Danube end?"
        assert r1.reference == ("the Black Sea", "Black Sea")
        assert r1.expected_sources == ("Rivers#0",)  # evals.datasets.squad_doc_id
        assert suite.case(f"{dataset}:r3").expected_sources == ("Rivers#1",)
        assert r1.answerable and r1.tags == (dataset, "answerable")
        types = {a.type: a for a in r1.assertions}
        assert list(types) == ["token-f1", "recall@5", "exact-match"]
        assert types["token-f1"].threshold == 0.5
        assert types["exact-match"].weight == 0  # recorded, not gating


def test_scifact_checks_retrieval_of_the_judged_abstracts(datasets: Path) -> None:
    suite = parse_suite(make_suite("scifact", None, datasets_dir=datasets))
    assert {c.id: c.expected_sources for c in suite.cases} == {
        "scifact:q1": ("d1",),
        "scifact:q2": ("3", "d2"),
    }
    case = suite.case("scifact:q2")
    assert case.question == "what barks" and not case.reference
    assert [(a.type, a.weight) for a in case.assertions] == [
        ("recall@5", 1.0),
        ("mrr@10", 1.0),
        ("answers", 0.0),
    ]
    train = parse_suite(make_suite("scifact", None, datasets_dir=datasets, split="train"))
    assert [c.id for c in train.cases] == ["scifact:q3"]


def test_clapnq_unanswerable_cases_abstain(datasets: Path) -> None:
    suite = parse_suite(make_suite("clapnq", None, datasets_dir=datasets))
    assert len(suite.cases) == 10
    una = [c for c in suite.cases if not c.answerable]
    assert len(una) == 4
    for c in una:
        assert [a.type for a in c.assertions] == ["abstains"]
        assert c.tags == ("clapnq", "unanswerable") and not c.reference
    a0 = suite.case("clapnq:a0")
    assert a0.answerable and a0.reference == ("fact 0",)
    assert a0.expected_sources == (passage_id("Topic 0", "Fact 0 is true."),)
    types = {a.type: a for a in a0.assertions}
    assert list(types) == ["answers", "token-f1", "recall@5", "grounded"]
    assert types["token-f1"].threshold == 0.3
    # a sample keeps the set's ratio: 5 of 10 -> 3 answerable, 2 unanswerable
    half = parse_suite(make_suite("clapnq", 5, seed=1, datasets_dir=datasets))
    assert sorted(c.answerable for c in half.cases) == [False, False, True, True, True]


def test_bad_requests(datasets: Path) -> None:
    with pytest.raises(InvalidRequest, match="unknown data set 'nope'.*xquad"):
        make_suite("nope", 5, datasets_dir=datasets)
    with pytest.raises(InvalidRequest, match="at least 1"):
        make_suite("xquad", 0, datasets_dir=datasets)
    with pytest.raises(InvalidRequest, match="no split 'dev'"):
        make_suite("scifact", 1, datasets_dir=datasets, split="dev")


def test_write_suite_round_trips_through_yaml(datasets: Path, tmp_path: Path) -> None:
    said: list[str] = []
    path = tmp_path / "suites" / "clapnq.yaml"
    suite = write_suite(path, "clapnq", 4, seed=3, datasets_dir=datasets, progress=said.append)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# Made by evals.make_suite.make_suite('clapnq', 4, seed=3)")
    assert "rag eval answers --dataset clapnq" in text
    assert "- {type: abstains}" in text  # short mappings on one line
    loaded = load_suite(path)
    assert loaded == suite
    assert loaded.sha256 == parse_suite(make_suite("clapnq", 4, 3, datasets)).sha256
    assert said[-1] == f"wrote 4 cases to {path}"


# -- the real shared data ---------------------------------------------------------------------


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data sets not present")
def test_real_sets() -> None:
    xquad = parse_suite(make_suite("xquad", 100, seed=0))
    assert len(xquad.cases) == 100 and all(c.reference for c in xquad.cases)
    clapnq = parse_suite(make_suite("clapnq"))  # all cases, as the issue measures them
    assert len(clapnq.cases) == 167 + 140
    assert sum(not c.answerable for c in clapnq.cases) == 140
    scifact = parse_suite(make_suite("scifact", 50, seed=2))
    assert len(scifact.cases) == 50 and all(c.expected_sources for c in scifact.cases)


# -- the collection a suite asks (real platform) ---------------------------------------------


@pytest.mark.slow
def test_ensure_suite_collection_holds_every_expected_source(
    datasets: Path, tmp_path: Path
) -> None:
    from api.platform import Platform

    platform = Platform(Settings(data_dir=tmp_path / "data"))
    platform.startup()
    said: list[str] = []
    for dataset in ("xquad", "clapnq"):
        key, built = ensure_suite_collection(
            platform, dataset, datasets_dir=datasets, progress=said.append
        )
        assert key == CollectionKey.default(f"eval-{dataset}") and built
        with repository.read(platform.engine) as s:
            col = repository.find_collection(s, key)
            assert col is not None
            sources = {src for src, status, _ in repository.document_sources(s, col.id)}
        suite = parse_suite(make_suite(dataset, None, datasets_dir=datasets))
        expected = {src for c in suite.cases for src in c.expected_sources}
        assert expected and expected <= sources
        again = ensure_suite_collection(platform, dataset, datasets_dir=datasets)
        assert again == (key, False)  # reused
    assert any("ingesting" in m for m in said)
