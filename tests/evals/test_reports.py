"""Reports of eval runs over hand-built runs (real ``RunResult`` / ``CaseResult`` values):
the terminal tables, JSON, JUnit XML as CI systems parse it, the self-contained HTML page
(charts inline, user text escaped) and the diff of two runs."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest
from rich.console import Console

from evals.assertions import AssertionVerdict
from evals.reports import (
    failure_reasons,
    html_report,
    junit_xml,
    render_diff,
    render_run,
    run_json,
)
from evals.runner import CaseResult, RunResult, diff_runs

MODEL_SHA = "ab" * 32
FINGERPRINT = {
    "platform_version": "0.1.0",
    "llm": {
        "model": "gemma-3-270m-it",
        "model_path": "/models/gemma-3-270m-it-Q4_K_M.gguf",
        "model_sha256": MODEL_SHA,
        "prompt_style": "model default",
        "n_ctx": 4096,
        "max_tokens": 256,
    },
    "embedding_model": "all-MiniLM-L6-v2",
    "retrieval": {"top_k": 5, "fusion": "rrf"},
    "collections": {
        "docs": {
            "documents": 7,
            "chunks": 120,
            "index": "9f8e7d6c5b4a3210",
            "recipes": [],
            "fusion": "rrf k=60",
            "answer_models": "default",
        },
        "gone": None,
    },
}


def _v(type_: str, passed: bool, reason: str, score: float | None = None, **kw) -> AssertionVerdict:
    return AssertionVerdict(
        type=type_,
        passed=passed,
        score=float(passed) if score is None else score,
        reason=reason,
        **kw,
    )


def _cases() -> list[CaseResult]:
    return [
        CaseResult(
            case_id="sql-truth",
            question="What is the source of truth?",
            tags=("storage",),
            answerable=True,
            passed=True,
            score=1.0,
            answer="The SQL database is the source of truth [1].",
            citations=({"n": 1, "source": "data.txt", "chunk_id": "c-1"},),
            retrieved=({"chunk_id": "c-1", "source": "data.txt", "score": 0.91},),
            latency_ms=820.0,
            tokens=14,
            verdicts=(_v("icontains", True, "contains 'SQL'"), _v("recall@5", True, "1/1 found")),
            em=1.0,
            f1=1.0,
        ),
        CaseResult(
            case_id="fusion-mode",
            question="Which fusion modes does retrieval support, and which one is the default "
            "when nothing is configured for the collection?",
            tags=("retrieval", "fusion"),
            answerable=True,
            passed=False,
            score=0.5,
            answer="It uses <script>alert('x')</script> Excel & friends [2].",
            citations=({"n": 2, "source": "retrieval.md", "chunk_id": "c-7"},),
            retrieved=(
                {"chunk_id": "c-9", "source": "faq.html", "score": 0.71},
                {"chunk_id": "c-7", "source": "retrieval.md", "score": 0.64},
            ),
            latency_ms=1430.0,
            tokens=31,
            verdicts=(
                _v("icontains", True, "contains 'rrf'"),
                _v("not-contains", False, "the answer contains 'Excel'"),
                _v("token-f1", False, "F1 0.21 < 0.5", score=0.21),
            ),
            em=0.0,
            f1=0.21,
        ),
        CaseResult(
            case_id="no-such-collection",
            question="Who wrote the design?",
            tags=(),
            answerable=True,
            passed=False,
            score=0.0,
            error="NotFound: collection 'nope' does not exist",
        ),
        CaseResult(
            case_id="rubric-only",
            question="Is the answer polite?",
            tags=("judge",),
            answerable=True,
            passed=False,
            score=0.0,
            answer="Yes.",
            latency_ms=300.0,
            verdicts=(_v("llm-rubric", False, "no judge in the context", skipped=True),),
            skipped=True,
        ),
        CaseResult(
            case_id="moon-cheese",
            question="What is the moon made of?",
            tags=("unanswerable",),
            answerable=False,
            passed=True,
            score=1.0,
            answer="I cannot answer that from the documents.",
            abstained=True,
            latency_ms=510.0,
            tokens=9,
            verdicts=(_v("abstains", True, "the platform declined"),),
        ),
    ]


def _run(**kw) -> RunResult:
    cases = kw.pop("cases", _cases())
    return RunResult(
        id=kw.pop("id", "run-aaaaaaaaaaaa"),
        suite_name="examples",
        suite_sha256="5" * 64,
        target="in-process",
        tenant="default",
        fingerprint=kw.pop("fingerprint", FINGERPRINT),
        started_at="2025-01-02T03:04:05+00:00",
        finished_at="2025-01-02T03:05:00+00:00",
        status="done",
        cases=cases,
        n_cases=len(cases),
        platform_version="0.1.0",
        **kw,
    )


def _text(render, value) -> str:
    console = Console(record=True, width=200)
    render(value, console)
    return console.export_text()


# -- terminal ------------------------------------------------------------------------------


def test_render_run_shows_summary_sections_and_failing_cases() -> None:
    out = _text(render_run, _run())
    assert "run run-aaaaaaaaaaaa: suite examples, target in-process, done" in out
    assert re.search(r"pass rate\s*│\s*40\.0%\s*│\s*2 / 5", out)
    assert re.search(r"errors\s*│\s*1\b", out)
    assert re.search(r"skipped\s*│\s*1\b", out)
    assert re.search(r"failed\s*│\s*2\b", out)
    # EM / F1 over the cases with a reference; abstention on both kinds of question
    assert re.search(r"exact match\s*│\s*50\.0%", out)
    assert re.search(r"token F1\s*│\s*60\.5%", out)
    assert re.search(r"answerable: answered\s*│\s*100\.0%\s*│\s*3 / 3", out)
    assert re.search(r"unanswerable: abstained\s*│\s*100\.0%\s*│\s*1 / 1", out)
    assert re.search(r"latency p50\s*│\s*820 ms", out)
    assert re.search(r"latency p95\s*│\s*1,430 ms", out)
    # per assertion type (skipped verdicts not counted) and per tag
    assert "pass rate per assertion type" in out
    assert re.search(r"not-contains\s*│\s*0\.0%\s*│\s*0 / 1", out)
    assert re.search(r"icontains\s*│\s*100\.0%\s*│\s*2 / 2", out)
    assert "llm-rubric" not in out.split("pass rate per tag")[0].split("per assertion type")[1]
    assert re.search(r"storage\s*│\s*100\.0%\s*│\s*1 / 1", out)
    assert re.search(r"\(untagged\)\s*│\s*0\.0%\s*│\s*0 / 1", out)
    # the failing cases: the failed assertions' reasons, the error, the question shortened
    failing = out.split("failing cases (2)")[1]
    assert "fusion-mode" in failing and "no-such-collection" in failing
    assert "sql-truth" not in failing and "moon-cheese" not in failing
    assert "not-contains: the answer contains 'Excel'" in failing
    assert "token-f1: F1 0.21 < 0.5" in failing
    assert "icontains: contains 'rrf'" not in failing
    assert "error: NotFound: collection 'nope' does not exist" in failing
    assert "Which fusion modes does retrieval support" in failing
    assert "for the collection?" not in failing
    assert "skipped (nothing could be counted): rubric-only" in out


def test_render_run_prints_user_text_literally() -> None:
    case = replace(_cases()[1], case_id="markup", question="Is [bold]this[/bold] [red]markup?")
    out = _text(render_run, _run(cases=[case]))
    assert "Is [bold]this[/bold] [red]markup?" in out


def test_render_run_of_an_empty_run() -> None:
    out = _text(render_run, _run(cases=[]))
    assert re.search(r"pass rate\s*│\s*–", out)
    assert "failing cases" not in out


def test_failure_reasons_of_a_case_failed_by_its_threshold_alone() -> None:
    case = replace(_cases()[0], passed=False, score=0.5)
    assert failure_reasons(case) == ["case score 0.50 is under its threshold"]


# -- JSON --------------------------------------------------------------------------------------


def test_run_json_round_trips_the_cases() -> None:
    run = _run()
    data = json.loads(run_json(run))
    assert data["id"] == run.id and data["n_passed"] == 2 and data["pass_rate"] == 0.4
    assert data["fingerprint"]["llm"]["model_sha256"] == MODEL_SHA
    assert [CaseResult.from_json(c) for c in data["cases"]] == run.cases


# -- JUnit XML -----------------------------------------------------------------------------------


def test_junit_xml_counts_cases_and_carries_the_run() -> None:
    root = ET.fromstring(junit_xml(_run()))
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.attrib["name"] == "examples"
    assert {k: suite.attrib[k] for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "5",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    assert float(suite.attrib["time"]) == pytest.approx(3.06)
    props = {p.attrib["name"]: p.attrib["value"] for p in suite.iter("property")}
    assert props["run_id"] == "run-aaaaaaaaaaaa"
    assert props["target"] == "in-process"
    assert props["pass_rate"] == "0.4000"
    assert props["model_sha256"] == MODEL_SHA
    cases = {c.attrib["name"]: c for c in suite.findall("testcase")}
    assert list(cases) == [
        "sql-truth",
        "fusion-mode",
        "no-such-collection",
        "rubric-only",
        "moon-cheese",
    ]
    assert cases["sql-truth"].attrib["classname"] == "storage"
    assert cases["no-such-collection"].attrib["classname"] == "examples"  # no tag: the suite
    assert cases["fusion-mode"].attrib["time"] == "1.430"
    assert list(cases["sql-truth"]) == [] and list(cases["moon-cheese"]) == []


def test_junit_xml_failure_error_and_skipped_elements() -> None:
    suite = ET.fromstring(junit_xml(_run())).find("testsuite")
    assert suite is not None
    cases = {c.attrib["name"]: c for c in suite.findall("testcase")}
    failure = cases["fusion-mode"].find("failure")
    assert failure is not None
    message = failure.attrib["message"]
    assert "not-contains: the answer contains 'Excel'" in message
    assert "token-f1: F1 0.21 < 0.5" in message
    assert "icontains" not in message  # the passed assertion is not a reason
    assert failure.text is not None and "case score: 0.500" in failure.text
    out = cases["fusion-mode"].find("system-out")
    assert out is not None and out.text is not None
    assert "<script>alert('x')</script>" in out.text  # escaped in XML, intact once parsed
    error = cases["no-such-collection"].find("error")
    assert error is not None and "collection 'nope' does not exist" in error.attrib["message"]
    assert cases["no-such-collection"].find("failure") is None
    skipped = cases["rubric-only"].find("skipped")
    assert skipped is not None and skipped.attrib["message"] == "no judge in the context"


def test_junit_xml_stays_well_formed_with_characters_xml_cannot_hold() -> None:
    case = replace(
        _cases()[1],
        answer="bell \x07 and escape \x1b[0m and NUL \x00",
        verdicts=(_v("regex", False, "no match in 'a\x0bb'"),),
    )
    root = ET.fromstring(junit_xml(_run(cases=[case], fingerprint={})))
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None and "no match in 'a\ufffdb'" in failure.attrib["message"]
    names = {p.attrib["name"] for p in root.iter("property")}
    assert "model_sha256" not in names  # no fingerprint recorded: no invented value


# -- HTML ------------------------------------------------------------------------------------


def test_html_report_is_self_contained_with_charts() -> None:
    page = html_report(_run())
    assert page.startswith("<!DOCTYPE html>")
    # nothing is loaded from anywhere: no external src/href, no scripts at all
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    assert "<link" not in page.lower()
    # four charts drawn by matplotlib, inline as SVG
    assert page.count("<svg") == 4
    for title in (
        "pass rate per assertion type",
        "pass rate per tag",
        "latency distribution",
        "score distribution",
    ):
        assert f"<figcaption>{title}</figcaption>" in page
    assert len(page) < 400_000


def test_html_report_header_and_fingerprint() -> None:
    page = html_report(_run())
    assert "run-aaaaaaaaaaaa" in page and "examples" in page and "in-process" in page
    assert MODEL_SHA in page
    assert "/models/gemma-3-270m-it-Q4_K_M.gguf" in page
    assert "collection docs</th><td>7 documents, 120 chunks, index 9f8e7d6c5b4a3210" in page
    assert "collection gone</th><td>absent" in page


def test_html_report_lists_every_failing_case_with_verdicts_and_escapes_user_text() -> None:
    page = html_report(_run())
    failing = page.split("Failing cases (2)")[1]
    assert "<code>fusion-mode</code>" in failing
    assert "<code>no-such-collection</code>" in failing
    assert "<code>sql-truth</code>" not in failing.split("Skipped cases")[0]
    # the answer's markup is shown, never run
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Excel &amp; friends [2]." in failing
    # sources and each verdict: type, passed or failed, score, reason
    assert "[2] retrieval.md" in failing and "faq.html" in failing
    assert "<code>not-contains</code>" in failing
    assert "the answer contains &#39;Excel&#39;" in failing
    assert '<td class="num">0.21</td>' in failing
    assert '<span class="passed">passed</span>' in failing
    assert "the query failed: NotFound: collection &#39;nope&#39; does not exist" in failing
    skipped = page.split("Skipped cases (1)")[1]
    assert "rubric-only" in skipped and "no judge in the context" in skipped


def test_html_report_escapes_tags_and_types_in_the_charts() -> None:
    case = replace(_cases()[1], tags=("<b>$x$ & y",), verdicts=(_v("contains", False, "<i>"),))
    page = html_report(_run(cases=[case]))
    assert "<b>$x$" not in page
    assert "&lt;b&gt;$x$ &amp; y" in page  # in the charts (SVG text) and the tables
    ET.fromstring(page[page.index("<svg") : page.index("</svg>") + len("</svg>")])


def test_html_report_of_an_empty_run() -> None:
    page = html_report(_run(cases=[], fingerprint={}))
    assert page.count("<svg") == 0
    assert page.count("no data") == 4
    assert "no configuration fingerprint was recorded" in page
    assert "Failing cases (0)" in page


# -- diff ----------------------------------------------------------------------------------------


def test_render_diff_shows_flips_deltas_and_configuration() -> None:
    a = _run()
    cases = _cases()
    cases[0] = replace(cases[0], passed=False, score=0.5, verdicts=(_v("icontains", False, "no"),))
    cases[1] = replace(cases[1], passed=True, score=1.0, latency_ms=900.0)
    cases.append(replace(cases[0], case_id="new-case"))
    other_fp = {**FINGERPRINT, "llm": {**FINGERPRINT["llm"], "model_sha256": "cd" * 32}}
    b = _run(id="run-bbbbbbbbbbbb", cases=cases, fingerprint=other_fp)
    out = _text(render_diff, diff_runs(a, b))
    assert "diff run-aaaaaaaaaaaa -> run-bbbbbbbbbbbb" in out
    assert "fixed (failed, now pass): 1: fusion-mode" in out
    assert "broken (passed, now fail): 1: sql-truth" in out
    assert "only in run-bbbbbbbbbbbb: 1: new-case" in out
    assert "only in run-aaaaaaaaaaaa" not in out
    assert re.search(r"pass_rate\s*│\s*40\.0%\s*│\s*33\.3%\s*│\s*-6\.7 pp", out)
    assert re.search(r"latency_p50_ms\s*│\s*820 ms\s*│\s*820 ms\s*│\s*\+0 ms", out)
    assert "per assertion type" in out and "per tag" in out
    assert re.search(r"storage\s*│\s*100\.0%\s*│\s*0\.0%\s*│\s*-100\.0 pp", out)
    config = out.split("configuration differences:")[1]
    assert re.search(r"llm\.model_sha256: (ab)+a?\.\.\. -> (cd)+c?\.\.\.", config)


def test_render_diff_of_identical_runs() -> None:
    run = _run()
    out = _text(render_diff, diff_runs(run, run))
    assert "fixed (failed, now pass): 0" in out
    assert "broken (passed, now fail): 0" in out
    assert "same configuration" in out
    assert re.search(r"pass_rate\s*│\s*40\.0%\s*│\s*40\.0%\s*│\s*\+0\.0 pp", out)
