"""The ClapNQ answer eval: the loader (the real files and small bad ones), the figures'
arithmetic against hand-computed values, and one real run through a Platform (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console

from core.errors import InvalidRequest, PathNotFound
from core.settings import Settings
from core.types import (
    Answer,
    Chunk,
    Citation,
    CollectionKey,
    ModelInfo,
    SamplingParams,
    ScoredChunk,
    Timings,
    Usage,
)
from evals.answer_eval import (
    AnswerEvalResult,
    CaseResult,
    answer_collection_name,
    answer_corpus,
    answer_figures,
    evaluate_answers,
    format_figure,
    load_answer_set,
    render_table,
    score_case,
    stratified_sample,
)
from evals.answer_metrics import token_recall
from evals.datasets import AnswerCase, default_datasets_dir, load_clapnq, passage_id

CLAPNQ = default_datasets_dir() / "clapnq-tune"
MINI = CollectionKey.default("eval-clapnq-mini")


def line(qid: str, question: str, title: str, text: str, answer: str = "") -> str:
    row = {
        "id": qid,
        "input": question,
        "passages": [{"title": title, "text": text, "sentences": [text]}],
        "output": [{"answer": answer, "selected_sentences": [text] if answer else []}],
    }
    return json.dumps(row) + "\n"


# -- the loader ---------------------------------------------------------------------------


@pytest.mark.skipif(not CLAPNQ.is_dir(), reason="shared ClapNQ data not present")
def test_load_clapnq_real_files() -> None:
    cases = load_clapnq()
    assert len(cases) == 167 + 140
    assert sum(c.answerable for c in cases) == 167
    assert len({c.id for c in cases}) == len(cases)
    first = cases[0]
    assert first.answerable and first.gold_answer and first.selected_sentences
    assert first.passage_id == passage_id(first.title, first.text)
    assert first.passage_id.startswith(first.title + "#")
    assert all(not c.gold_answer and not c.selected_sentences for c in cases if not c.answerable)
    assert load_clapnq(CLAPNQ) == cases  # the clapnq-tune folder itself
    one = load_clapnq(CLAPNQ / "unanswerable.jsonl")  # a file: answerable from the answer
    assert len(one) == 140 and not any(c.answerable for c in one)


def test_load_clapnq_file_and_dedupe(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(
        line("1", "who wrote it", "Book", "Anna wrote the book. ", "Anna wrote the book.")
        + "\n"
        + line("2", "when was it printed", "Book", "Anna wrote the book.")
        + line(3, "who wrote the other", "Other book", "Anna wrote the book.", "Anna")
    )
    cases = load_clapnq(path)
    assert [c.id for c in cases] == ["1", "2", "3"]
    assert [c.answerable for c in cases] == [True, False, True]
    # same title and text: one passage; same text under another title: another
    assert cases[0].passage_id == cases[1].passage_id != cases[2].passage_id
    assert cases[0].text == "Anna wrote the book."
    corpus = answer_corpus(cases)
    assert len(corpus.corpus) == 2
    assert corpus.qrels["2"] == {cases[0].passage_id: 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json\n", "mine.jsonl:1: not valid JSON"),
        ('"a string"\n', "mine.jsonl:1: expected a JSON object"),
        (line("1", "q?", "T", "x") + json.dumps({"input": "q", "passages": []}), ":2: missing"),
        (line("1", "", "T", "x"), ":1: 'input'"),
        (line("1", "q?", "T", "   "), ":1: the passage's 'text'"),
        (
            json.dumps({"id": "1", "input": "q", "passages": [{"text": "a"}, {"text": "b"}]}),
            ":1: 'passages' must be a list of one object (got 2)",
        ),
        (json.dumps({"id": "1", "input": "q", "passages": [{"text": "a"}]}), ":1: 'output'"),
        (line("1", "q?", "T", "x") + "\n" + line("1", "q2?", "T", "y"), ":3: question id '1'"),
        ("\n\n", "no questions"),
    ],
)
def test_load_clapnq_bad_lines(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text(content)
    with pytest.raises(InvalidRequest) as e:
        load_clapnq(path)
    assert message in e.value.message


def test_plain_labelled_questions(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    rows = [
        {"question": "How large can a file be?", "answer": "50 MB", "source": "faq.html"},
        {"id": "u1", "question": "Who won the World Cup?", "answer": ""},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cases = load_clapnq(path)
    assert [(c.id, c.answerable, c.passage_id) for c in cases] == [
        ("1", True, "faq.html"),  # the line number when no id
        ("u1", False, ""),
    ]
    aset = load_answer_set(str(path), require_passages=False)  # rag tune --abstention -c
    assert len(aset.cases) == 2 and not aset.corpus.corpus
    with pytest.raises(InvalidRequest, match="carry no passages.*rag tune --abstention -c"):
        load_answer_set(str(path))  # rag eval answers builds its collection from passages
    for bad, message in (
        ({"question": "q", "answer": None}, "'answer' must be a string"),
        ({"question": " ", "answer": "x"}, "'question' must be a non-empty string"),
        ({"question": "q", "answer": "x", "source": 3}, "'source' must be a string"),
    ):
        path.write_text(json.dumps(bad) + "\n")
        with pytest.raises(InvalidRequest, match=message):
            load_clapnq(path)


def test_the_shipped_sample_corpus_questions_load() -> None:
    cases = load_clapnq(Path(__file__).resolve().parents[2] / "evals/labelled/examples.jsonl")
    assert sum(c.answerable for c in cases) >= 20 and sum(not c.answerable for c in cases) >= 15
    assert all(c.passage_id for c in cases if c.answerable)


def test_load_clapnq_folder_checks_each_file(tmp_path: Path) -> None:
    folder = tmp_path / "clapnq-tune"
    folder.mkdir()
    (folder / "answerable.jsonl").write_text(line("1", "q?", "T", "x", "x"))
    with pytest.raises(PathNotFound, match="unanswerable.jsonl"):
        load_clapnq(tmp_path)
    (folder / "unanswerable.jsonl").write_text(line("2", "q?", "T", "y", "an answer"))
    with pytest.raises(InvalidRequest, match=r"unanswerable.jsonl:1: expected an empty gold"):
        load_clapnq(tmp_path)
    (folder / "unanswerable.jsonl").write_text(line("2", "q?", "T", "y"))
    assert [c.answerable for c in load_clapnq(tmp_path)] == [True, False]
    with pytest.raises(InvalidRequest, match="neither 'clapnq' nor"):
        load_answer_set(str(tmp_path / "missing.jsonl"))


def test_stratified_sample_keeps_ratio() -> None:
    cases = [_case(str(i), answerable=i % 3 != 0) for i in range(30)]  # 20 : 10
    sub = stratified_sample(cases, 6, seed=1)
    assert len(sub) == 6 and sum(c.answerable for c in sub) == 4
    assert sub == stratified_sample(cases, 6, seed=1)  # seeded
    assert [c.id for c in sub] == sorted((c.id for c in sub), key=int)  # the set's order
    assert (
        stratified_sample(cases, 2, seed=0)[0].answerable
        != stratified_sample(cases, 2, seed=0)[1].answerable
    )
    assert stratified_sample(cases, 99) == cases
    with pytest.raises(InvalidRequest):
        stratified_sample(cases, 0)


def test_collection_names() -> None:
    assert answer_collection_name("clapnq") == "eval-clapnq"
    assert answer_collection_name("clapnq", 500) == "eval-clapnq+squad500"


@pytest.mark.skipif(not CLAPNQ.is_dir(), reason="shared ClapNQ data not present")
def test_answer_set_with_distractors() -> None:
    spec = load_answer_set("clapnq", n=10, seed=3, distractors=5)
    assert spec.collection == "eval-clapnq+squad5"
    assert len(spec.cases) == 10 and spec.n_total == 307
    assert sum(c.answerable for c in spec.cases) == 5  # 167 : 140 of 10
    squad = [d for d in spec.corpus.corpus if d.startswith("squad:")]
    assert len(squad) == 5 and len(spec.corpus.corpus) == 307 + 5  # every passage, always
    again = load_answer_set("clapnq", n=10, seed=4, distractors=5)
    assert sorted(again.corpus.corpus) == sorted(spec.corpus.corpus)  # same distractors
    assert again.cases != spec.cases
    with pytest.raises(InvalidRequest):
        load_answer_set("clapnq", distractors=-1)


# -- the arithmetic ----------------------------------------------------------------------


def _case(qid: str, answerable: bool = True, gold: str = "the cat sat on the mat") -> AnswerCase:
    return AnswerCase(
        id=qid,
        question=f"question {qid}?",
        answerable=answerable,
        passage_id=f"P{qid}",
        title="T",
        text="The cat sat on the mat.",
        gold_answer=gold if answerable else "",
        selected_sentences=(),
    )


def _scored(source: str) -> ScoredChunk:
    chunk = Chunk(
        id=f"c-{source}", document_id=f"d-{source}", collection="c", ordinal=0, text="t",
        char_start=0, char_end=1, source=source, media_type="application/jsonl",
    )  # fmt: skip
    return ScoredChunk(chunk=chunk, score=1.0)


def _answer(text: str, cited: list[str], retrieved: list[str], abstained: bool = False) -> Answer:
    return Answer(
        question="q",
        text=text,
        citations=tuple(Citation(i, _scored(s), "t") for i, s in enumerate(cited, 1)),
        retrieved=tuple(_scored(s) for s in retrieved),
        model=ModelInfo("m.gguf", "0" * 64),
        sampling=SamplingParams(),
        timings=Timings(retrieve_ms=10.0, generate_ms=90.0, total_ms=100.0),
        usage=Usage(),
        abstained=abstained,
    )


def test_token_recall_hand_computed() -> None:
    # gold {cat, sat, on, mat} (articles dropped); pred {cat, sat} -> 2/4
    assert token_recall("A cat sat [1].", ["the cat sat on the mat"]) == 0.5
    assert token_recall("cat cat", ["cat dog"]) == 0.5  # counted with multiplicity
    assert token_recall("x", ["y", "x y"]) == 0.5  # best gold counts
    assert token_recall("", ["cat"]) == 0.0


def test_score_case() -> None:
    case = _case("1")
    row = score_case(case, _answer("The cat sat [2].", ["Q", "P1", "Q"], ["Q", "P1"]))
    assert row.answer == "The cat sat ."
    assert row.cited_sources == ("Q", "P1")
    assert row.cites_own and not row.first_cites_own
    assert row.own_rank == 2
    # pred {cat, sat} vs gold {cat, sat, on, mat}: P 1, R 1/2 -> F1 2/3
    assert row.f1 == pytest.approx(2 / 3) and row.recall == 0.5
    assert row.answer_tokens == 2 and row.latency_ms == 100.0

    no = score_case(case, _answer("I could not find it.", [], ["Q"], abstained=True))
    assert no.abstained and no.f1 == 0.0 and no.recall == 0.0 and no.answer_tokens == 0
    assert no.own_rank is None and not no.cites_own

    una = score_case(_case("2", answerable=False), _answer("The cat.", ["P2"], ["P2"]))
    assert una.f1 is None and una.recall is None and una.first_cites_own


def _row(answerable: bool, abstained: bool, **kw: object) -> CaseResult:
    base: dict = dict(
        id="x", question="q", answerable=answerable, passage_id="P", abstained=abstained,
        answer="", cited_sources=(), cites_own=False, first_cites_own=False, own_rank=None,
        f1=None if not answerable else 0.0, recall=None if not answerable else 0.0,
        answer_tokens=0, latency_ms=100.0, retrieve_ms=0.0, generate_ms=0.0,
    )  # fmt: skip
    base.update(kw)
    return CaseResult(**base)


def test_figures_hand_computed() -> None:
    rows = [
        # 4 answerable: 3 answered, 1 not found
        _row(
            True,
            False,
            cites_own=True,
            first_cites_own=True,
            own_rank=1,
            f1=0.5,
            recall=1.0,
            answer_tokens=10,
            latency_ms=100.0,
            gold_answer="w x y z",
        ),
        _row(
            True,
            False,
            cites_own=True,
            own_rank=3,
            f1=0.2,
            recall=0.4,
            answer_tokens=20,
            latency_ms=200.0,
            gold_answer="y z",
        ),
        _row(
            True,
            False,
            f1=0.0,
            recall=0.0,
            answer_tokens=6,
            latency_ms=300.0,
            gold_answer="u v w x y z",
        ),
        _row(True, True, latency_ms=400.0, gold_answer="w x y z"),
        # 6 unanswerable: 4 not found, 2 answered
        *[_row(False, True, latency_ms=500.0) for _ in range(4)],
        _row(False, False, answer_tokens=4, latency_ms=600.0),
        _row(False, False, answer_tokens=8, latency_ms=1000.0),
    ]
    figs = {f.key: f for f in answer_figures(rows)}
    assert figs["unanswerable_not_found"].value == pytest.approx(4 / 6)
    assert (figs["unanswerable_not_found"].n, figs["unanswerable_not_found"].of) == (4, 6)
    assert figs["answerable_not_found"].value == pytest.approx(1 / 4)
    # abstentions: 4 unanswerable (TP) + 1 answerable (FP) -> P 4/5, R 4/6, F1 = 8/11
    assert figs["abstention_precision"].value == pytest.approx(0.8)
    assert figs["abstention_recall"].value == pytest.approx(2 / 3)
    assert figs["abstention_f1"].value == pytest.approx(2 * 0.8 * (2 / 3) / (0.8 + 2 / 3))
    assert figs["abstention_f1"].value == pytest.approx(8 / 11)
    assert figs["answerable_answered"].value == pytest.approx(3 / 4)
    assert figs["answered_citing_own"].value == pytest.approx(2 / 3)
    assert figs["answered_first_citing_own"].value == pytest.approx(1 / 3)
    assert figs["answerable_own_retrieved"].value == pytest.approx(2 / 4)
    assert figs["token_f1_answered"].value == pytest.approx(0.7 / 3)
    assert figs["token_f1_all"].value == pytest.approx(0.7 / 4)
    assert figs["token_recall_answered"].value == pytest.approx(1.4 / 3)
    assert figs["token_recall_all"].value == pytest.approx(1.4 / 4)
    # answered: 10, 20, 6 (answerable) and 4, 8 (unanswerable)
    assert figs["answer_tokens_mean"].value == pytest.approx(48 / 5)
    assert figs["gold_tokens_mean"].value == pytest.approx((4 + 2 + 6 + 4) / 4)
    # latencies 100, 200, 300, 400, 500 x4, 600, 1000: median 500; p90 at rank 8.1 of 0..9
    assert figs["latency_median_ms"].value == 500.0
    assert figs["latency_p90_ms"].value == pytest.approx(600 + 0.1 * 400)

    assert format_figure(figs["unanswerable_not_found"]) == "66.7%"
    assert format_figure(figs["abstention_precision"]) == "0.800"
    assert format_figure(figs["latency_p90_ms"]) == "640"


def test_figures_with_empty_denominators() -> None:
    figs = {f.key: f for f in answer_figures([_row(True, False, f1=1.0, recall=1.0)])}
    assert figs["unanswerable_not_found"].value is None  # no unanswerable question
    assert figs["abstention_precision"].value is None  # nothing abstained
    assert figs["abstention_f1"].value is None
    assert format_figure(figs["abstention_f1"]) == "-"
    figs = {f.key: f for f in answer_figures([_row(True, True), _row(False, False)])}
    assert figs["abstention_precision"].value == 0.0 and figs["abstention_recall"].value == 0.0
    assert figs["abstention_f1"].value == 0.0
    assert figs["answered_citing_own"].value is None  # no answerable question answered


# -- the real thing ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not CLAPNQ.is_dir(), reason="shared ClapNQ data not present")
def test_evaluate_answers_through_the_platform(tmp_path: Path) -> None:
    from api.platform import Platform

    settings = Settings(data_dir=tmp_path / "data", llm={"n_threads": 1})
    platform = Platform(settings)
    platform.startup()
    cases = stratified_sample(load_clapnq(), 6, seed=0)
    assert sum(c.answerable for c in cases) == 3
    result = evaluate_answers(
        platform.query, platform.ingest, platform.engine, cases, MINI, top_k=3
    )
    assert isinstance(result, AnswerEvalResult)
    assert len(result.rows) == 6 and result.n_answerable == 3
    assert result.n_documents == len({c.passage_id for c in cases})
    assert result.n_chunks >= result.n_documents and result.build_seconds > 0
    for row, case in zip(result.rows, cases, strict=True):
        assert row.id == case.id and row.passage_id == case.passage_id
        assert row.latency_ms > 0
        assert row.own_rank is None or 1 <= row.own_rank <= 3
        assert row.cites_own == (case.passage_id in row.cited_sources)
        for value in (row.f1, row.recall):
            assert value is None if not case.answerable else 0.0 <= value <= 1.0
    for f in result.figures:
        if f.value is not None and f.unit in ("share", "ratio"):
            assert 0.0 <= f.value <= 1.0, f.key
    assert result.figure("latency_median_ms").value is not None
    # every passage is one of the collection's document sources, so citations map back
    cited = {s for r in result.rows for s in r.cited_sources}
    assert cited <= {c.passage_id for c in cases}

    out = result.to_json()
    assert out["n_questions"] == 6 and len(out["cases"]) == 6
    assert "unanswerable_not_found" in out["figures"]
    json.dumps(out)
    console = Console(record=True, width=160)
    render_table(result, console)
    text = console.export_text()
    assert "unanswerable that get not-found" in text and "answered citing own passage" in text

    again = evaluate_answers(
        platform.query, platform.ingest, platform.engine, cases[:1], MINI,
        top_k=3, corpus=answer_corpus(cases),
    )  # fmt: skip
    assert again.build_seconds == 0.0  # the collection is reused
