"""The runner, run storage, diffs and the CI gate, with a scripted answerer (the
``Answerer`` protocol's contract: answers given by the test) and a real SQLite database."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from core.db import make_engine
from core.errors import EvalRunNotFound, RagError
from evals.assertions import EvalContext, Observation, RetrievedSource
from evals.fingerprint import fingerprint_diff
from evals.run_store import RunRecorder, list_runs, load_run, load_suite_of, mark_interrupted
from evals.runner import diff_runs, gate, run_suite, summarize
from evals.suite import Case, CaseSettings, Suite, parse_suite

SUITE = {
    "description": "runner test",
    "defaults": {"collection": "docs", "top_k": 3},
    "cases": [
        {
            "id": "rrf",
            "question": "What is RRF?",
            "reference": "reciprocal rank fusion",
            "expected_sources": ["retrieval.md"],
            "tags": ["retrieval"],
            "assert": [{"type": "icontains", "value": "rank fusion"}, {"type": "recall@3"}],
        },
        {
            "id": "cup",
            "question": "Who won the 2018 World Cup?",
            "answerable": False,
            "tags": ["abstention"],
            "assert": [{"type": "abstains"}],
        },
        {
            "id": "boom",
            "question": "What breaks?",
            "tags": ["retrieval"],
            "assert": [{"type": "answers"}],
        },
    ],
}


class Scripted:
    """Answers from a table; raises for questions it has no answer to."""

    target = "scripted"

    def __init__(self, answers: dict[str, Observation], delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.seen: list[tuple[str, CaseSettings]] = []
        self._lock = threading.Lock()

    def answer(self, case: Case, settings: CaseSettings) -> Observation:
        with self._lock:
            self.seen.append((case.id, settings))
        time.sleep(self.delay)
        if case.question not in self.answers:
            raise RagError("no such collection")
        return self.answers[case.question]


def obs(question: str, answer: str, abstained: bool = False, source: str = "x.md") -> Observation:
    return Observation(
        question=question,
        answer=answer,
        abstained=abstained,
        retrieved=(RetrievedSource("c1", source, 0.9),),
        latency_ms=120.0,
        tokens=7,
    )


GOOD = {
    "What is RRF?": obs("What is RRF?", "RRF is reciprocal rank fusion.", source="retrieval.md"),
    "Who won the 2018 World Cup?": obs("Who won the 2018 World Cup?", "no answer", True),
}


@pytest.fixture()
def suite() -> Suite:
    return parse_suite(SUITE, "runner.yaml")


def test_run_scores_every_case_in_suite_order_and_a_failed_query_fails_its_case(
    suite: Suite,
) -> None:
    answerer = Scripted(GOOD, delay=0.01)
    progress: list[tuple[int, int]] = []
    run = run_suite(
        suite, answerer, EvalContext(), concurrency=3, progress=lambda d, t: progress.append((d, t))
    )
    assert [c.case_id for c in run.cases] == ["rrf", "cup", "boom"]
    assert [c.passed for c in run.cases] == [True, True, False]
    boom = run.cases[2]
    assert boom.error == "RagError: no such collection" and boom.score == 0.0
    assert progress[-1] == (3, 3) and len(progress) == 3
    assert run.status == "done" and run.pass_rate == pytest.approx(2 / 3)
    # the case settings come from the suite defaults
    assert {s.collection for _, s in answerer.seen} == {"docs"}
    assert {s.top_k for _, s in answerer.seen} == {3}
    assert run.cases[0].em == 0.0 and run.cases[0].f1 == 0.75


def test_summary_rates_per_type_tag_abstention_and_latency(suite: Suite) -> None:
    run = run_suite(suite, Scripted(GOOD), EvalContext())
    s = summarize(run.cases)
    assert s["pass_rate"] == pytest.approx(0.6667, abs=1e-4)
    assert s["errors"] == 1
    assert s["by_type"]["icontains"] == {"n": 1, "passed": 1, "rate": 1.0}
    assert s["by_type"]["recall@3"]["rate"] == 1.0
    assert s["by_tag"]["retrieval"] == {"n": 2, "passed": 1, "rate": 0.5}
    assert s["unanswerable_abstained"] == {"n": 1, "passed": 1, "rate": 1.0}
    assert s["answerable_answered"] == {"n": 1, "passed": 1, "rate": 1.0}
    assert s["latency_ms"]["p50"] == 120.0


def test_gate_fails_under_the_bar_and_on_a_case_the_baseline_passed(suite: Suite) -> None:
    base = run_suite(suite, Scripted(GOOD), EvalContext())
    assert gate(base, fail_under=0.6) == []
    assert "under the bar" in gate(base, fail_under=0.9)[0]
    worse = dict(GOOD)
    worse["What is RRF?"] = obs("What is RRF?", "I do not know.", source="faq.html")
    now = run_suite(suite, Scripted(worse), EvalContext())
    reasons = gate(now, baseline=base)
    assert len(reasons) == 1 and "passed in baseline" in reasons[0] and "rrf" in reasons[0]
    d = diff_runs(base, now)
    assert d.broken == ["rrf"] and d.fixed == []
    assert d.deltas["by_type"]["recall@3"] == (1.0, 0.0)
    assert d.deltas["overall"]["pass_rate"] == (pytest.approx(0.6667, abs=1e-4), 0.3333)


def test_runs_are_stored_per_case_and_read_back_tenant_scoped(tmp_path: Path, suite: Suite) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    fp = {"llm": {"model_sha256": "abc"}, "collections": {"docs": {"index": "1"}}}
    rec = RunRecorder(engine, suite, "runner.yaml", "acme", "scripted", fp)
    seen_running = []

    def on_case(result: object) -> None:
        rec.case(result)  # type: ignore[arg-type]
        seen_running.append(load_run(engine, "acme", rec.run_id).status)

    run = run_suite(
        suite, Scripted(GOOD), EvalContext(), tenant="acme", run_id=rec.run_id, on_case=on_case
    )
    rec.finish(run)
    assert seen_running == ["running"] * 3  # each case is stored as it finishes
    back = load_run(engine, "acme", rec.run_id)
    assert back.status == "done" and back.fingerprint == fp
    assert [c.to_json() for c in back.cases] == [c.to_json() for c in run.cases]
    assert back.summary() == run.summary()
    assert load_suite_of(engine, "acme", rec.run_id).sha256 == suite.sha256
    assert [r["id"] for r in list_runs(engine, "acme")] == [rec.run_id]
    assert list_runs(engine, "other") == []
    with pytest.raises(EvalRunNotFound, match="does not exist"):
        load_run(engine, "other", rec.run_id)  # another tenant's run answers as a missing one


def test_a_run_left_running_is_marked_failed(tmp_path: Path, suite: Suite) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    rec = RunRecorder(engine, suite, "runner.yaml", "default", "scripted", {})
    assert mark_interrupted(engine) == 1
    back = load_run(engine, "default", rec.run_id)
    assert back.status == "failed" and back.error and "interrupted" in back.error


def test_fingerprint_diff_names_each_difference() -> None:
    a = {"llm": {"model_sha256": "aaa", "n_ctx": 2048}, "collections": {"d": {"index": "1"}}}
    b = {"llm": {"model_sha256": "bbb", "n_ctx": 2048}, "collections": {"d": {"index": "2"}}}
    assert fingerprint_diff(a, b) == [
        "collections.d.index: 1 -> 2",
        "llm.model_sha256: aaa -> bbb",
    ]
    assert fingerprint_diff(a, a) == []


def test_a_server_that_cannot_be_reached_is_a_clear_error() -> None:
    from evals.runner import HttpAnswerer, ServerUnreachable

    http = HttpAnswerer("http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(ServerUnreachable, match="cannot reach http://127.0.0.1:9/v1/fingerprint"):
        http.fingerprint(["docs"])
    http.close()


def test_check_confusion_gives_precision_and_recall_from_labelled_cases() -> None:
    from evals.runner import check_confusion

    by_type = {"flags-injection": [9, 10], "not-flags-injection": [95, 100], "contains": [1, 1]}
    got = check_confusion(by_type)
    assert got == {
        "injection": {
            "tp": 9,
            "fn": 1,
            "fp": 5,
            "tn": 95,
            "recall": 0.9,
            "precision": round(9 / 14, 4),
            "false_flag_rate": 0.05,
        }
    }


def test_a_policy_change_shows_in_the_fingerprint_diff() -> None:
    from evals.fingerprint import fingerprint_diff

    before = {"collections": {"docs": {"policy": {}}}}
    after = {"collections": {"docs": {"policy": {"pii": {"answers": "redact"}}}}}
    assert fingerprint_diff(before, after) == [
        "collections.docs.policy.pii.answers: (absent) -> redact"
    ]
