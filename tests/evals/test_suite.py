"""Suite files: loading, derived ids, the content hash, per-case settings, and an error
naming the file, the case and the field for every kind of malformed input."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from core.errors import InvalidRequest
from core.types import Filter, SamplingParams
from evals.assertions import REGISTRY
from evals.suite import SuiteError, derived_id, load_suite, parse_suite

EXAMPLES = Path(__file__).resolve().parents[2] / "evals" / "suites" / "examples.yaml"
CORPUS = EXAMPLES.parents[2] / "examples"

GOOD = """\
description: two cases
defaults:
  collection: handbook
  top_k: 4
  sampling: {temperature: 0.2, seed: 7, max_tokens: 32}
  filter: {sources: [a.txt]}
  judge: {base_url: "http://127.0.0.1:8080/v1", min_agreement: 0.6}
cases:
  - id: first
    question: What is the source of truth?
    reference: The SQL database
    expected_sources: [a.txt]
    tags: [storage]
    assert:
      - {type: icontains, value: sql}
      - {type: recall@5, weight: 2}
  - question: Who wrote it?
    answerable: false
    top_k: 9
    collection: other
    assert:
      - type: abstains
"""


def write(tmp_path: Path, text: str, name: str = "suite.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


# -- loading ----------------------------------------------------------------------------


def test_loads_fields_and_defaults(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    first, second = suite.cases
    assert suite.description == "two cases"
    assert first.id == "first" and first.reference == ("The SQL database",)
    assert first.expected_sources == ("a.txt",) and first.tags == ("storage",)
    assert [a.type for a in first.assertions] == ["icontains", "recall@5"]
    assert first.assertions[1].weight == 2 and first.assertions[1].k == 5
    assert first.threshold == 1.0 and first.answerable
    assert second.answerable is False and second.id == derived_id("Who wrote it?")
    assert suite.defaults.judge is not None and suite.defaults.judge.min_agreement == 0.6
    assert suite.case("first") is first


def test_settings_for_uses_defaults_and_case_overrides(tmp_path: Path) -> None:
    suite = load_suite(write(tmp_path, GOOD))
    first, second = (suite.settings_for(c) for c in suite.cases)
    assert (first.collection, first.top_k) == ("handbook", 4)
    assert first.filter == Filter(sources=("a.txt",))
    assert (second.collection, second.top_k) == ("other", 9)
    params = first.sampling.apply(SamplingParams(temperature=0.8, seed=1, max_tokens=64, top_p=0.9))
    assert (params.temperature, params.seed, params.max_tokens) == (0.2, 7, 32)
    assert params.top_p == 0.9  # unset in the suite: the platform's own


def test_sampling_defaults_to_temperature_zero_and_a_seed() -> None:
    suite = parse_suite("cases: [{question: q, assert: [{type: answers}]}]")
    params = suite.defaults.sampling.apply(SamplingParams(temperature=0.7, seed=3))
    assert (params.temperature, params.seed) == (0.0, 0)


def test_derived_id_is_stable_and_ignores_whitespace() -> None:
    assert derived_id("What is  it?\n") == derived_id("What is it?")
    assert derived_id("What is it?") != derived_id("What is this?")
    assert derived_id("What is it?").startswith("q-")


def test_numeric_id_becomes_text() -> None:
    suite = parse_suite("cases: [{id: 7, question: q, assert: [{type: answers}]}]")
    assert suite.cases[0].id == "7"


def test_reference_may_be_a_list() -> None:
    suite = parse_suite("cases: [{question: q, reference: [a, b], assert: [{type: exact-match}]}]")
    assert suite.cases[0].reference == ("a", "b")


def test_hash_ignores_formatting_order_comments_and_written_defaults(tmp_path: Path) -> None:
    a = parse_suite(GOOD)
    reordered = """\
    # the same suite, written differently
    cases:
      - assert: [{value: sql, type: icontains}, {weight: 2.0, type: recall@5, threshold: null}]
        tags: [storage]
        expected_sources: [a.txt]
        reference: [The SQL database]
        question: What is the source of truth?
        id: first
        threshold: 1.0
      - {question: "Who wrote it?", answerable: false, top_k: 9, collection: other,
         assert: [{type: abstains, weight: 1}]}
    defaults:
      judge: {min_agreement: 0.6, base_url: "http://127.0.0.1:8080/v1"}
      filter: {sources: [a.txt]}
      sampling: {max_tokens: 32, seed: 7, temperature: 0.2}
      top_k: 4
      collection: handbook
    description: two cases
    """
    assert parse_suite(textwrap.dedent(reordered)).sha256 == a.sha256
    assert len(a.sha256) == 64
    changed = parse_suite(GOOD.replace("value: sql", "value: SQL"))
    assert changed.sha256 != a.sha256


def test_example_suite_loads() -> None:
    suite = load_suite(EXAMPLES)
    assert 8 <= len(suite.cases) <= 12
    assert len({c.id for c in suite.cases}) == len(suite.cases)
    assert any(not c.answerable for c in suite.cases)
    assert all(
        any(a.type == "abstains" for a in c.assertions) for c in suite.cases if not c.answerable
    )
    assert suite.defaults.collection == "default"
    sources = {p.name for p in CORPUS.iterdir()}
    for case in suite.cases:  # every expected / cited source is a document of examples/
        assert set(case.expected_sources) <= sources, case.id
        for a in case.assertions:
            assert a.kind.name in REGISTRY
            if a.kind.name == "cites" and a.value:
                assert set(a.value) <= sources, case.id


def test_parse_suite_takes_a_mapping() -> None:
    suite = parse_suite({"cases": [{"question": "q", "assert": [{"type": "answers"}]}]})
    assert suite.cases[0].question == "q"


# -- malformed suites -------------------------------------------------------------------

CASE0 = "cases[0] (id 'c1', question \"What is it?\")"

MALFORMED = [
    pytest.param(
        "  - {type: containz, value: x}",
        [CASE0, "assert[0].type", "unknown assertion type 'containz'", "icontains", "recall@K"],
        id="unknown-type",
    ),
    pytest.param(
        "  - {type: regex, value: '[unclosed'}",
        [CASE0, "assert[0].value", "not a valid regular expression"],
        id="bad-regex",
    ),
    pytest.param(
        "  - {type: contains}",
        [CASE0, "assert[0].value", "contains needs a value"],
        id="missing-value",
    ),
    pytest.param(
        "  - {type: contains-any, value: SQL}",
        [CASE0, "assert[0].value", "list of non-empty texts", "got 'SQL'"],
        id="text-for-list",
    ),
    pytest.param(
        "  - {type: latency-ms, value: fast}",
        [CASE0, "assert[0].value", "milliseconds", "got 'fast'"],
        id="latency-not-a-number",
    ),
    pytest.param(
        "  - {type: tokens, value: 2.5}",
        [CASE0, "assert[0].value", "whole number"],
        id="tokens-not-whole",
    ),
    pytest.param(
        "  - {type: abstains, value: yes}",
        [CASE0, "assert[0].value", "takes no value"],
        id="value-not-taken",
    ),
    pytest.param(
        "  - {type: json-schema, value: {type: 12}}",
        [CASE0, "assert[0].value", "not a valid JSON schema"],
        id="bad-json-schema",
    ),
    pytest.param(
        "  - {type: contains, value: x, threshold: 0.5}",
        [CASE0, "assert[0].threshold", "contains takes no threshold"],
        id="threshold-not-taken",
    ),
    pytest.param(
        "  - {type: token-f1, value: x, threshold: 1.5}",
        [CASE0, "assert[0].threshold", "less than or equal to 1"],
        id="threshold-over-one",
    ),
    pytest.param(
        "  - {type: answers, weight: -1}",
        [CASE0, "assert[0].weight", "greater than or equal to 0"],
        id="negative-weight",
    ),
    pytest.param(
        "  - {type: answers, weight: heavy}",
        [CASE0, "assert[0].weight", "valid number", "got 'heavy'"],
        id="weight-wrong-type",
    ),
    pytest.param(
        "  - {type: answers, wieght: 2}",
        [CASE0, "assert[0].wieght", "unknown field", "type, value, threshold, weight"],
        id="unknown-assertion-field",
    ),
    pytest.param(
        "  - {type: recall}",
        [CASE0, "assert[0].type", "recall@K, e.g. recall@5"],
        id="recall-without-k",
    ),
    pytest.param(
        "  - {type: recall@0}",
        [CASE0, "assert[0].type", "K must be a whole number >= 1"],
        id="recall-at-zero",
    ),
    pytest.param(
        "  - {type: contains@3, value: x}",
        [CASE0, "assert[0].type", "write the type as contains"],
        id="k-on-plain-type",
    ),
    pytest.param(
        "  - {type: recall@5}",
        [CASE0, "assert[0].value", "recall@5 needs a value or the case's expected_sources"],
        id="recall-without-expected-sources",
    ),
    pytest.param(
        "  - {type: not-token-f1}",
        [CASE0, "assert[0].value", "needs a value or the case's reference"],
        id="f1-without-reference",
    ),
    pytest.param(
        "  - {type: answers, weight: 0}",
        [CASE0, "assert", "every assertion has weight 0"],
        id="all-weights-zero",
    ),
    pytest.param(
        "  - answers",
        [CASE0, "assert[0]", "valid dictionary", "got 'answers'"],
        id="assertion-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("assertion", "expected"), MALFORMED)
def test_malformed_assertion_names_file_case_and_field(
    tmp_path: Path, assertion: str, expected: list[str]
) -> None:
    path = write(tmp_path, "cases:\n- id: c1\n  question: What is it?\n  assert:\n" + assertion)
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    message = str(e.value)
    assert message.startswith(f"{path} line 5: "), message
    for part in expected:
        assert part in message, (part, message)


CASE_LEVEL = [
    pytest.param(
        "- id: c1\n  question: 42\n  assert: [{type: answers}]",
        ["line 3", "cases[0] (id 'c1')", "question: Input should be a valid string, got 42"],
        id="question-wrong-type",
    ),
    pytest.param(
        "- id: c1\n  assert: [{type: answers}]",
        ["cases[0] (id 'c1')", "question: required field is missing"],
        id="question-missing",
    ),
    pytest.param(
        "- id: c1\n  question: '  '\n  assert: [{type: answers}]",
        ["cases[0] (id 'c1', question \"\")", "question: the question is blank"],
        id="question-blank",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  tags: storage\n  assert: [{type: answers}]",
        ["line 4", "cases[0] (id 'c1', question \"q\")", "tags: Input should be a valid tuple"],
        id="tags-not-a-list",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  answerable: maybe\n  assert: [{type: answers}]",
        ["line 4", "answerable: Input should be a valid boolean"],
        id="answerable-not-bool",
    ),
    pytest.param(
        "- id: c1\n  question: q",
        ["cases[0] (id 'c1', question \"q\")", "assert: required field is missing"],
        id="no-assertions",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  assert: []",
        ["cases[0] (id 'c1', question \"q\")", "assert: a case needs at least one assertion"],
        id="empty-assertions",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  threshold: 0\n  assert: [{type: answers}]",
        ["line 4", "threshold: Input should be greater than 0"],
        id="case-threshold-zero",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  questoin: r\n  assert: [{type: answers}]",
        ["line 4", "cases[0] (id 'c1', question \"q\"): questoin: unknown field", "reference"],
        id="unknown-case-field",
    ),
    pytest.param(
        "- id: a b\n  question: q\n  assert: [{type: answers}]",
        ["cases[0] (id 'a b', question \"q\"): id: 'a b' is not a usable id"],
        id="bad-id",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  collection: 'no spaces'\n  assert: [{type: answers}]",
        ["cases[0] (id 'c1', question \"q\"): collection: invalid collection name"],
        id="bad-collection",
    ),
    pytest.param(
        "- id: c1\n  question: q\n  assert: [{type: answers}]\n"
        "- id: c2\n  question: r\n  assert: [{type: answers}]\n"
        "- id: c1\n  question: s\n  assert: [{type: answers}]",
        ["line 8", "cases[2] (id 'c1', question \"s\"): id: duplicate id 'c1': cases[0]"],
        id="duplicate-id",
    ),
    pytest.param(
        "- question: Same?\n  assert: [{type: answers}]\n"
        "- question: Same?\n  assert: [{type: abstains}]",
        [
            f"cases[1] (id '{derived_id('Same?')}', question \"Same?\"): id: duplicate id",
            "both derived from the question: give one an id",
        ],
        id="duplicate-derived-id",
    ),
    pytest.param(
        "- just a question",
        ["cases[0] (not a mapping)", "valid dictionary"],
        id="case-not-a-mapping",
    ),
]


@pytest.mark.parametrize(("cases", "expected"), CASE_LEVEL)
def test_malformed_case_names_file_case_and_field(
    tmp_path: Path, cases: str, expected: list[str]
) -> None:
    path = write(tmp_path, "cases:\n" + cases)
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    message = str(e.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, (part, message)
    assert e.value.problems and e.value.problems[0].case_index is not None


SUITE_LEVEL = [
    pytest.param("cases: []", ["cases: a suite needs at least one case"], id="no-cases"),
    pytest.param("description: x", ["cases: required field is missing"], id="cases-missing"),
    pytest.param(
        "defualts: {}\ncases: [{question: q, assert: [{type: answers}]}]",
        ["line 1", "defualts: unknown field (the fields here: description, defaults, cases)"],
        id="unknown-top-field",
    ),
    pytest.param(
        "defaults: {top_k: 0}\ncases: [{question: q, assert: [{type: answers}]}]",
        ["line 1", "defaults.top_k: Input should be greater than or equal to 1"],
        id="bad-top-k",
    ),
    pytest.param(
        "defaults: {sampling: {temprature: 0}}\ncases: [{question: q, assert: [{type: answers}]}]",
        ["defaults.sampling.temprature: unknown field", "temperature, seed"],
        id="unknown-sampling-field",
    ),
    pytest.param(
        "defaults:\n  judge: {model_path: j.gguf, base_url: 'http://x'}\n"
        "cases: [{question: q, assert: [{type: answers}]}]",
        ["line 2", "defaults.judge: give model_path (a GGUF file) or base_url, not both"],
        id="judge-two-backends",
    ),
    pytest.param(
        "defaults: {filter: {metadata: {team: [a, b]}}}\n"
        "cases: [{question: q, assert: [{type: answers}]}]",
        ["line 1: defaults.filter.metadata: team: a metadata value is a text, a number"],
        id="filter-metadata-not-scalar",
    ),
    pytest.param("- a\n- b", ["a suite is a mapping", "got a list"], id="not-a-mapping"),
    pytest.param("", ["a suite is a mapping", "got an empty file"], id="empty-file"),
    pytest.param(
        "cases:\n  - question: q\n   assert: []",
        ["line 3 column 4: not valid YAML"],
        id="invalid-yaml",
    ),
]


@pytest.mark.parametrize(("text", "expected"), SUITE_LEVEL)
def test_malformed_suite_names_file_and_field(
    tmp_path: Path, text: str, expected: list[str]
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    message = str(e.value)
    assert message.startswith(str(path)), message
    for part in expected:
        assert part in message, (part, message)


def test_every_problem_is_listed_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        cases:
          - id: c1
            question: q
            assert: [{type: nope}]
          - id: c2
            question: r
            assert:
              - {type: regex, value: "("}
        """,
    )
    with pytest.raises(SuiteError) as e:
        load_suite(path)
    message = str(e.value)
    assert message.startswith(f"{path}: 2 problems:"), message
    first, second = e.value.problems
    assert (first.case_index, first.case_id, first.line) == (0, "c1", 4)
    assert first.path == "cases[0] (id 'c1', question \"q\"): assert[0].type"
    assert (second.case_index, second.case_id, second.line) == (1, "c2", 8)
    assert "assert[0].value" in second.path and "regular expression" in second.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="nope.yaml: no such suite file"):
        load_suite(tmp_path / "nope.yaml")


def test_suite_error_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest) as e:
        parse_suite("cases: []", name="inline")
    assert e.value.code == "invalid_suite" and e.value.http_status == 422
    assert str(e.value).startswith("inline line 1: cases: a suite needs at least one case")
