"""The assertion library of eval suites: each assertion type written once, behind one registry.

An assertion judges one ``Observation`` (what the platform did for a case: the answer,
its citations, what was retrieved, latency, tokens) against its ``AssertionSpec`` (the
``type``, ``value``, ``threshold`` and ``weight`` written in the suite) and the case
(``reference``, ``expected_sources``). It returns an ``Outcome`` (passed, score 0..1,
a reason stating what was observed); ``evaluate`` applies the ``not-`` prefix and
``score_case`` the weights and the case threshold, each once for every type.

    obs = observation_from_answer(answer)
    ctx = EvalContext(embedder=embedder)            # judge=... for llm-rubric
    verdict = score_case(case, obs, ctx)            # CaseVerdict: passed, score, verdicts
    [(v.type, v.passed, v.score, v.reason) for v in verdict.verdicts]

The types. "value" is what ``value`` holds; a threshold is always 0..1, given only to
the types that show a default here (``-``: none taken).

    type                          passes when                                value          thresh.
    equals                        the answer (stripped) is the value         text           -
    contains / icontains          it contains the value (i: ignoring case)   text           -
    contains-any / icontains-any  it contains one of the values              list of texts  -
    contains-all / icontains-all  the share of the values it contains        list of texts  1.0
    regex                         re.search finds it (``(?i)``: no case)     pattern        -
    starts-with                   the answer (stripped) starts with it       text           -
    is-json                       the answer parses as JSON                  -              -
    json-schema                   ... and is valid against the schema        schema         -
    latency-ms                    latency <= the value                       ms             -
    tokens                        generated tokens <= the value              count          -
    cites                         a citation names one of the sources        source(s) [1]  -
    citations-valid               every citation and [n] maps to a returned  -              -
                                  source; an answer cites something
    recall@K                      share of expected_sources in the top K     - [1]          1.0
    mrr@K                         1 / rank of the first expected source      - [1]          1/K
    exact-match                   SQuAD exact match with the reference       text(s) [2]    -
    token-f1                      SQuAD token F1 with the reference          text(s) [2]    0.5
    similar                       embedding cosine with the reference        text(s) [2]    0.75
    abstains / answers            the platform declined / did not decline    -              -
    grounded                      every shown sentence is supported by the   -              [3]
                                  text it cites
    flags-CHECK                   the content check CHECK (injection, pii,   -              -
                                  banned, length) found something in the
                                  question or the answer, or refused it
    refused                       the collection's policy refused the        -              -
                                  question
    repeats-flagged               the answer repeats text a check flagged    -              0.5
                                  in the retrieved chunks (share of 4-grams)
    pii                           the shown answer holds personal data       entity types   -
                                  (the platform's PII check)                 (optional)
    llm-rubric                    the judge grades the answer as meeting it  rubric         [4]

[1] default: the case's ``expected_sources``. recall@K and mrr@K rank the retrieved chunks'
sources, each at its best chunk's rank, K counting distinct sources (as ``rag eval
retrieval`` ranks documents); mrr@K's default 1/K means "found in the top K".
[2] default: the case's ``reference``. [3] default: the answer's own per-sentence verdicts;
with a threshold, each sentence's support score must reach it. [4] default: the judge's
own pass; with a threshold, its score must reach it.

Choices a runner and a report must know:

- The case score is the weighted share of *passed* assertions (a verdict's ``score`` is
  recorded for reports, not summed), so the default case threshold 1.0 means "every
  assertion passes". Weight 0 records an assertion without counting it.
- exact-match, token-f1 and similar score an abstention 0 (there is no answer to compare);
  they compare the answer text and, when the answer carries one, its ``short_answer``,
  and keep the better. The text checks (contains, regex, ...) read the text as shown,
  the abstention message included.
- grounded reads the answer's own per-sentence verdicts (``Answer.sentences``: the support
  check the query path runs live, against the text each sentence cites); with a
  threshold it requires each sentence's support score to reach it instead. An
  abstention shows no sentence and passes.
- llm-rubric without a judge in the context, or with a judge whose measured agreement
  (Cohen's kappa from a judge check) is unknown or under the suite's minimum, is
  *skipped*: its verdict says why, it is left out of the case score, and a case with
  nothing left to count is itself skipped (``skipped`` True, ``passed`` False): a report
  shows it apart, neither passed nor failed.
  Deterministic assertions carry the weight until a judge has earned trust.
- The content-check types run the platform's own checks (``generation.checks``): the
  ``flags-*`` types read the verdicts the live path returned (``injection_question``,
  ``pii_answer``…) so a suite of labelled cases (``flags-injection`` on attacks,
  ``not-flags-injection`` on ordinary questions) measures a check's precision and recall
  in the same runner (``summarize``'s ``checks``); ``pii`` and ``repeats-flagged`` run
  the check's implementation on the shown answer.
- similar needs an embedder in the context; without one ``evaluate`` raises
  ``AssertionUnavailable`` (a silent skip would let a CI gate pass unchecked).
  ``check_context(suite, ctx)`` raises it before a run starts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

import jsonschema
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.errors import InvalidRequest
from core.types import Answer, SentenceVerdict
from evals.answer_metrics import squad_em, squad_f1
from evals.metrics import mrr_at_k, parse_metric, recall_at_k
from generation.citations import MARKER_RE, marker_numbers, strip_markers
from ingest.ports import Embedder

if TYPE_CHECKING:
    from evals.suite import Case, Suite

NEGATION = "not-"
_EPS = 1e-9  # float slack for score >= threshold


class AssertionUnavailable(InvalidRequest):
    """An assertion needs something the run was not given (an embedder for ``similar``)."""

    code = "assertion_unavailable"


# -- what the platform did for a case --------------------------------------------------


@dataclass(frozen=True, slots=True)
class CitedSource:
    """A citation of the answer: ``[n]`` names the n-th returned source."""

    n: int
    source: str  # the document's source name, e.g. "retrieval.md"
    chunk_id: str


@dataclass(frozen=True, slots=True)
class RetrievedSource:
    """One retrieved chunk, in rank order (source ``[n]`` of the prompt is the n-th)."""

    chunk_id: str
    source: str
    score: float
    text: str = ""  # the chunk's text: what a judge reads
    # what the document checks flagged in it ({"injection": {"spans": [[a, b]], ...}})
    flags: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SeenVerdict:
    """One verdict the answer path returned (``Answer.verdicts``)."""

    guard: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Observation:
    """What the platform did for one case: everything an assertion may judge.

    Built from an ``Answer`` with ``observation_from_answer``; a runner that queries a
    server's REST API builds it from the answer JSON (the same fields).
    """

    question: str
    answer: str  # the text as shown (the abstention message when abstained)
    abstained: bool
    citations: tuple[CitedSource, ...] = ()
    retrieved: tuple[RetrievedSource, ...] = ()
    latency_ms: float = 0.0
    tokens: int = 0  # tokens the model generated (usage.completion_tokens)
    sentences: tuple[SentenceVerdict, ...] = ()  # the answer's own per-sentence verdicts
    short_answer: str | None = None
    dropped_citations: int = 0  # markers the model wrote naming no source (removed)
    verdicts: tuple[SeenVerdict, ...] = ()  # every guard's and check's verdict
    refused: str | None = None  # why the collection's policy refused the question


def refused_observation(question: str, reason: str, latency_ms: float = 0.0) -> Observation:
    """The observation of a question the policy refused (``QuestionRefused``): no answer,
    the refusal as the text shown."""
    return Observation(
        question=question,
        answer=reason,
        abstained=True,
        latency_ms=latency_ms,
        verdicts=(SeenVerdict("refused", False, reason),),
        refused=reason,
    )


def observation_from_answer(answer: Answer, *, latency_ms: float | None = None) -> Observation:
    """The observation of an ``Answer``; ``latency_ms`` defaults to its total time (a runner
    timing the whole call, e.g. over HTTP, passes its own)."""
    return Observation(
        question=answer.question,
        answer=answer.text,
        abstained=answer.abstained,
        citations=tuple(
            CitedSource(c.n, c.source.chunk.source, c.source.chunk.id) for c in answer.citations
        ),
        retrieved=tuple(
            RetrievedSource(
                sc.chunk.id, sc.chunk.source, float(sc.score), sc.chunk.text, sc.chunk.flags
            )
            for sc in answer.retrieved
        ),
        latency_ms=answer.timings.total_ms if latency_ms is None else latency_ms,
        tokens=answer.usage.completion_tokens,
        sentences=answer.sentences,
        short_answer=answer.short_answer,
        dropped_citations=answer.dropped_citations,
        verdicts=tuple(SeenVerdict(v.guard, v.passed, v.detail) for v in answer.verdicts),
    )


# -- what the assertions may use ----------------------------------------------------------


class Judge(Protocol):
    """A model that grades an answer against a rubric (llm-rubric).

    Runs at temperature 0 with a fixed prompt; returns (passed, score 0..1, reason).
    ``sources`` are the texts the answer was made from (cited chunks, else retrieved).
    """

    def judge(
        self, rubric: str, question: str, answer: str, sources: Sequence[str]
    ) -> tuple[bool, float, str]: ...


@dataclass(frozen=True, slots=True)
class EvalContext:
    """What assertions may call: the embedder (``similar``) and the judge (``llm-rubric``).

    ``judge_agreement`` is the judge's measured agreement with labels (Cohen's kappa of
    a judge check); when ``min_judge_agreement`` is set (the suite's
    ``defaults.judge.min_agreement``) a judge under it, or never measured, is not used.
    """

    embedder: Embedder | None = None
    judge: Judge | None = None
    judge_agreement: float | None = None
    min_judge_agreement: float | None = None

    @classmethod
    def for_suite(
        cls,
        suite: Suite,
        *,
        embedder: Embedder | None = None,
        judge: Judge | None = None,
        judge_agreement: float | None = None,
    ) -> EvalContext:
        """The context of a run of ``suite``: its judge minimum taken from the suite."""
        spec = suite.defaults.judge
        floor = spec.min_agreement if spec is not None else None
        return cls(embedder, judge, judge_agreement, floor)


# -- verdicts ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one assertion function found (before negation)."""

    passed: bool
    score: float  # 0..1
    reason: str  # what was observed, e.g. "the answer contains 'SQL'"
    skipped: bool = False  # could not be judged here (no judge): left out of the case score


@dataclass(frozen=True, slots=True)
class AssertionVerdict:
    """One assertion's verdict on one case, as a run stores it."""

    type: str  # as written, e.g. "not-contains", "recall@5"
    passed: bool
    score: float
    reason: str
    weight: float = 1.0
    skipped: bool = False  # passed / score mean nothing then


@dataclass(frozen=True, slots=True)
class CaseVerdict:
    """A case's outcome: passed when the weighted share of passed assertions reaches its
    threshold; skipped when no assertion could be counted (``passed`` is then False)."""

    case_id: str
    passed: bool
    score: float
    threshold: float
    verdicts: tuple[AssertionVerdict, ...]
    skipped: bool = False


# -- the spec of an assertion in a suite --------------------------------------------------


class ValueKind(StrEnum):
    NONE = "none"  # takes no value
    TEXT = "text"  # a non-empty string
    TEXTS = "texts"  # a non-empty list of non-empty strings
    TEXT_OR_TEXTS = "text or list of texts"
    PATTERN = "regular expression"
    SCHEMA = "JSON schema (a mapping)"
    MILLISECONDS = "number of milliseconds > 0"
    COUNT = "whole number >= 0"


class Assertion(Protocol):
    """An assertion function: judges ``obs`` for ``case`` as ``spec`` says. Never raises
    for a bad answer (that is a failed ``Outcome``), only for a missing capability."""

    def __call__(
        self, spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext
    ) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class AssertionType:
    """A registered type: its function and what a suite may write for it."""

    name: str
    check: Assertion
    value: ValueKind = ValueKind.NONE
    value_optional: bool = False  # the value may be left out (a case field stands in)
    threshold: bool = False  # takes a threshold
    at_k: bool = False  # written name@K (recall@5)
    needs: str | None = None  # the case field used when the value is left out


REGISTRY: dict[str, AssertionType] = {}


def known_types() -> list[str]:
    return sorted(f"{n}@K" if t.at_k else n for n, t in REGISTRY.items())


def parse_type(written: str) -> tuple[AssertionType, bool, int | None]:
    """``"not-recall@5"`` -> (the recall type, negated True, k 5); ``ValueError`` naming the
    known types for an unknown one."""
    negated = written.startswith(NEGATION)
    name = written[len(NEGATION) :] if negated else written
    base, at, k_text = name.partition("@")
    kind = REGISTRY.get(base)
    if kind is None:
        raise ValueError(
            f"unknown assertion type {written!r}; known: {', '.join(known_types())} "
            f"(each may be negated with '{NEGATION}')"
        )
    if kind.at_k != bool(at):
        form = f"{base}@K, e.g. {base}@5" if kind.at_k else base
        raise ValueError(f"write the type as {form}, not {written!r}")
    k = None
    if kind.at_k:
        try:
            _, k = parse_metric(name)
        except ValueError:
            raise ValueError(f"{written!r}: K must be a whole number >= 1") from None
    return kind, negated, k


def _texts(value: object) -> tuple[str, ...] | None:
    if isinstance(value, list | tuple) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def _check_value(kind: ValueKind, value: Any) -> Any:
    """The value normalised (lists as tuples), or ``ValueError`` saying what is expected."""
    got = f"got {value!r}" if len(repr(value)) <= 60 else f"got a {type(value).__name__}"
    if kind is ValueKind.NONE:
        raise ValueError(f"this type takes no value, {got}")
    if kind in (ValueKind.TEXT, ValueKind.PATTERN) and not (isinstance(value, str) and value):
        raise ValueError(f"expected a non-empty text, {got}")
    if kind is ValueKind.PATTERN:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression ({e}): {value!r}") from None
    if kind is ValueKind.TEXTS:
        if (texts := _texts(value)) is None:
            raise ValueError(f"expected a non-empty list of non-empty texts, {got}")
        return texts
    if kind is ValueKind.TEXT_OR_TEXTS:
        if isinstance(value, str) and value:
            return (value,)
        if (texts := _texts(value)) is None:
            raise ValueError(f"expected a text or a non-empty list of texts, {got}")
        return texts
    if kind is ValueKind.SCHEMA:
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON schema (a mapping), {got}")
        try:
            jsonschema.validators.validator_for(value).check_schema(value)
        except jsonschema.SchemaError as e:
            raise ValueError(f"not a valid JSON schema: {e.message}") from None
    if kind is ValueKind.MILLISECONDS and (
        isinstance(value, bool) or not isinstance(value, int | float) or value <= 0
    ):
        raise ValueError(f"expected a number of milliseconds > 0, {got}")
    if kind is ValueKind.COUNT and (
        isinstance(value, bool) or not isinstance(value, int) or value < 0
    ):
        raise ValueError(f"expected a whole number >= 0, {got}")
    return value


class AssertionSpec(BaseModel):
    """One assertion as a suite writes it: ``type`` (``not-`` negates), ``value``,
    ``threshold`` (0..1, for the types that take one), ``weight`` (>= 0, default 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    value: Any = Field(default=None, validate_default=True)
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    weight: float = Field(default=1.0, ge=0.0)

    @field_validator("type")
    @classmethod
    def _known(cls, v: str) -> str:
        parse_type(v)
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: Any, info: ValidationInfo) -> Any:
        if "type" not in info.data:
            return v  # the type is already reported
        kind, _, _ = parse_type(info.data["type"])
        if v is None:
            if kind.value is ValueKind.NONE or kind.value_optional:
                return None
            raise ValueError(f"{kind.name} needs a value: {kind.value.value}")
        return _check_value(kind.value, v)

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is not None and "type" in info.data:
            kind, _, _ = parse_type(info.data["type"])
            if not kind.threshold:
                takes = sorted(n for n, t in REGISTRY.items() if t.threshold)
                raise ValueError(f"{kind.name} takes no threshold (those that do: {takes})")
        return v

    @property
    def kind(self) -> AssertionType:
        return parse_type(self.type)[0]

    @property
    def negated(self) -> bool:
        return self.type.startswith(NEGATION)

    @property
    def k(self) -> int:
        """K of a name@K type (recall@5 -> 5)."""
        k = parse_type(self.type)[2]
        if k is None:
            raise ValueError(f"{self.type} has no K")
        return k


# -- the registry -------------------------------------------------------------------------


def register(
    name: str,
    value: ValueKind = ValueKind.NONE,
    *,
    value_optional: bool = False,
    threshold: bool = False,
    at_k: bool = False,
    needs: str | None = None,
) -> Callable[[Assertion], Assertion]:
    """Registers an assertion function under ``name`` (one place per type)."""

    def add(fn: Assertion) -> Assertion:
        if name in REGISTRY:
            raise ValueError(f"assertion type {name!r} is registered twice")
        REGISTRY[name] = AssertionType(name, fn, value, value_optional, threshold, at_k, needs)
        return fn

    return add


def _shown(text: str, limit: int = 80) -> str:
    one = " ".join(text.split())
    return repr(one if len(one) <= limit else one[: limit - 1] + "…")


def _binary(passed: bool, reason: str) -> Outcome:
    return Outcome(passed, 1.0 if passed else 0.0, reason)


def _at_least(score: float, threshold: float, what: str) -> Outcome:
    score = min(max(float(score), 0.0), 1.0)
    ok = score >= threshold - _EPS
    return Outcome(ok, score, f"{what} {score:.3f} ({'>=' if ok else '<'} {threshold:g})")


def _threshold(spec: AssertionSpec, default: float) -> float:
    return default if spec.threshold is None else spec.threshold


# -- text -----------------------------------------------------------------------------------


@register("equals", ValueKind.TEXT)
def equals(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    same = obs.answer.strip() == spec.value.strip()
    return _binary(same, f"the answer {'is' if same else 'is not'} {_shown(spec.value)}")


def _contains(obs: Observation, needles: Sequence[str], fold: bool) -> list[bool]:
    text = obs.answer.casefold() if fold else obs.answer
    return [(n.casefold() if fold else n) in text for n in needles]


def _found_outcome(
    spec: AssertionSpec, needles: Sequence[str], found: list[bool], all_: bool
) -> Outcome:
    names = [n for n, f in zip(needles, found, strict=True) if f]
    missing = [n for n, f in zip(needles, found, strict=True) if not f]
    said = f"contains {names}" if names else "contains none of them"
    if missing and names:
        said += f", not {missing}"
    if not all_:
        return _binary(bool(names), f"the answer {said}")
    return _at_least(len(names) / len(needles), _threshold(spec, 1.0), f"the answer {said}; share")


@register("contains", ValueKind.TEXT)
def contains(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    (hit,) = _contains(obs, [spec.value], fold=False)
    return _binary(
        hit, f"the answer {'contains' if hit else 'does not contain'} {_shown(spec.value)}"
    )


@register("icontains", ValueKind.TEXT)
def icontains(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    (hit,) = _contains(obs, [spec.value], fold=True)
    said = "contains" if hit else "does not contain"
    return _binary(hit, f"the answer {said} {_shown(spec.value)} (ignoring case)")


@register("contains-any", ValueKind.TEXTS)
def contains_any(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    return _found_outcome(spec, spec.value, _contains(obs, spec.value, fold=False), all_=False)


@register("icontains-any", ValueKind.TEXTS)
def icontains_any(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    return _found_outcome(spec, spec.value, _contains(obs, spec.value, fold=True), all_=False)


@register("contains-all", ValueKind.TEXTS, threshold=True)
def contains_all(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    return _found_outcome(spec, spec.value, _contains(obs, spec.value, fold=False), all_=True)


@register("icontains-all", ValueKind.TEXTS, threshold=True)
def icontains_all(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    return _found_outcome(spec, spec.value, _contains(obs, spec.value, fold=True), all_=True)


@register("regex", ValueKind.PATTERN)
def regex(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    m = re.search(spec.value, obs.answer)
    if m is None:
        return _binary(False, f"no match of /{spec.value}/ in the answer")
    return _binary(True, f"/{spec.value}/ matches {_shown(m.group(0))}")


@register("starts-with", ValueKind.TEXT)
def starts_with(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    ok = obs.answer.strip().startswith(spec.value)
    said = "starts" if ok else f"does not start ({_shown(obs.answer.strip()[:40])})"
    return _binary(ok, f"the answer {said} with {_shown(spec.value)}")


# -- structured output -----------------------------------------------------------------------


def _parse_json(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, f"the answer is not JSON ({e.msg} at line {e.lineno} column {e.colno})"


@register("is-json", ValueKind.NONE)
def is_json(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    parsed, problem = _parse_json(obs.answer)
    if problem:
        return _binary(False, problem)
    return _binary(True, f"the answer is JSON ({type(parsed).__name__})")


@register("json-schema", ValueKind.SCHEMA)
def json_schema(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    parsed, problem = _parse_json(obs.answer)
    if problem:
        return _binary(False, problem)
    validator = jsonschema.validators.validator_for(spec.value)(spec.value)
    error = jsonschema.exceptions.best_match(validator.iter_errors(parsed))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return _binary(False, f"the JSON does not match the schema at {where}: {error.message}")
    return _binary(True, "the JSON matches the schema")


# -- cost ----------------------------------------------------------------------------------


@register("latency-ms", ValueKind.MILLISECONDS)
def latency_ms(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    ok = obs.latency_ms <= spec.value
    score = 1.0 if ok else spec.value / obs.latency_ms
    return Outcome(ok, score, f"latency {obs.latency_ms:.1f} ms (limit {spec.value:g} ms)")


@register("tokens", ValueKind.COUNT)
def tokens(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    ok = obs.tokens <= spec.value
    score = 1.0 if ok else spec.value / obs.tokens
    return Outcome(ok, score, f"{obs.tokens} generated tokens (limit {spec.value})")


# -- sources ---------------------------------------------------------------------------------


@register("cites", ValueKind.TEXT_OR_TEXTS, value_optional=True, needs="expected_sources")
def cites(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    wanted = tuple(spec.value or case.expected_sources)
    cited = list(dict.fromkeys(c.source for c in obs.citations))
    hit = [s for s in cited if s in wanted]
    if not cited:
        return _binary(False, f"the answer cites no source (expected one of {list(wanted)})")
    said = f"cites {cited}"
    return _binary(bool(hit), f"the answer {said}; expected one of {list(wanted)}")


@register("citations-valid")
def citations_valid(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    n_ret = len(obs.retrieved)
    bad = [
        c.n
        for c in obs.citations
        if not 1 <= c.n <= n_ret or obs.retrieved[c.n - 1].chunk_id != c.chunk_id
    ]
    markers = {
        n
        for m in MARKER_RE.finditer(obs.answer)
        for n in marker_numbers(m.group("b") or m.group("p") or "")
    }
    stray = sorted(markers - {c.n for c in obs.citations})
    if bad:
        return _binary(False, f"citations {bad} name no returned source ({n_ret} returned)")
    if stray:
        return _binary(False, f"markers {stray} in the text are not among the citations")
    if not obs.citations and not obs.abstained:
        return _binary(False, "the answer cites no source")
    dropped = f"; {obs.dropped_citations} model marker(s) naming no source were removed"
    tail = dropped if obs.dropped_citations else ""
    return _binary(True, f"{len(obs.citations)} citation(s), all map to returned sources{tail}")


def _source_ranking(obs: Observation, case: Case) -> tuple[list[str], dict[str, int]]:
    """The retrieved chunks' sources in rank order (the metrics keep each source at its
    best chunk's rank and count K in distinct sources, as ``rag eval retrieval`` ranks
    documents), and the expected sources as qrels."""
    return [r.source for r in obs.retrieved], {s: 1 for s in case.expected_sources}


@register("recall", threshold=True, at_k=True, needs="expected_sources")
def recall(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    ranked, expected = _source_ranking(obs, case)
    k = spec.k
    top = list(dict.fromkeys(ranked))[:k]
    found = [s for s in top if s in expected]
    what = f"{len(found)} of {len(expected)} expected source(s) among the top {k} sources; recall"
    return _at_least(recall_at_k(ranked, expected, k), _threshold(spec, 1.0), what)


@register("mrr", threshold=True, at_k=True, needs="expected_sources")
def mrr(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    ranked, expected = _source_ranking(obs, case)
    k = spec.k
    score = mrr_at_k(ranked, expected, k)
    where = (
        f"first expected source is source {round(1 / score)} of the ranking"
        if score
        else f"no expected source among the top {k} sources"
    )
    return _at_least(score, _threshold(spec, 1.0 / k), f"{where}; reciprocal rank")


# -- answer against a reference ---------------------------------------------------------------


def _golds(spec: AssertionSpec, case: Case) -> tuple[str, ...]:
    return tuple(spec.value or case.reference)


def answer_forms(obs: Observation) -> list[str]:
    """The answer as shown and, when it has one, its short answer: scored against a
    reference, the better counts."""
    forms = [" ".join(strip_markers(obs.answer).split())]
    if obs.short_answer:
        forms.append(obs.short_answer)
    return forms


_ABSTAINED = "abstained: no answer to compare with the reference"


@register("exact-match", ValueKind.TEXT_OR_TEXTS, value_optional=True, needs="reference")
def exact_match(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    if obs.abstained:
        return _binary(False, _ABSTAINED)
    golds = _golds(spec, case)
    hit = max(squad_em(form, golds) for form in answer_forms(obs)) == 1.0
    said = "matches" if hit else "does not match"
    return _binary(hit, f"the answer {said} {' / '.join(_shown(g, 40) for g in golds)}")


@register(
    "token-f1", ValueKind.TEXT_OR_TEXTS, value_optional=True, threshold=True, needs="reference"
)
def token_f1(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    if obs.abstained:
        return Outcome(False, 0.0, _ABSTAINED)
    golds = _golds(spec, case)
    f1 = max(squad_f1(form, golds) for form in answer_forms(obs))
    return _at_least(f1, _threshold(spec, 0.5), "token F1")


@register(
    "similar", ValueKind.TEXT_OR_TEXTS, value_optional=True, threshold=True, needs="reference"
)
def similar(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    if ctx.embedder is None:
        raise AssertionUnavailable(f"{spec.type} needs an embedder: pass EvalContext(embedder=...)")
    if obs.abstained:
        return Outcome(False, 0.0, _ABSTAINED)
    golds = _golds(spec, case)
    forms = answer_forms(obs)
    vectors = np.asarray(ctx.embedder.embed([*forms, *golds]), dtype=np.float32)
    cosine = float(np.max(vectors[: len(forms)] @ vectors[len(forms) :].T))
    return _at_least(cosine, _threshold(spec, 0.75), "cosine similarity to the reference")


# -- behaviour ----------------------------------------------------------------------------------


@register("abstains")
def abstains(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    return _binary(obs.abstained, "abstained" if obs.abstained else "answered")


@register("answers")
def answers(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    return _binary(not obs.abstained, "abstained" if obs.abstained else "answered")


@register("grounded", threshold=True)
def grounded(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    if obs.abstained:
        return _binary(True, "abstained: no sentence is shown")
    if not obs.sentences:
        return _binary(False, "the answer carries no per-sentence support verdicts")
    if spec.threshold is None:
        ok = [s.supported and s.citation is not None for s in obs.sentences]
        rule = "supported by the text it cites (the answer path's own verdict)"
    else:
        ok = [s.citation is not None and s.score >= spec.threshold - _EPS for s in obs.sentences]
        rule = f"citing text with support >= {spec.threshold:g}"
    weak = [_shown(s.text, 50) for s, good in zip(obs.sentences, ok, strict=True) if not good]
    share = sum(ok) / len(ok)
    reason = f"{sum(ok)} of {len(ok)} sentence(s) {rule}"
    if weak:
        reason += f"; not: {', '.join(weak)}"
    return Outcome(not weak, share, reason)


# -- content checks (generation.checks) ------------------------------------------------------

# check name in the suite -> the check's name in verdicts ("<check>_<stage>")
CHECK_TYPES = {
    "injection": "injection",
    "pii": "pii",
    "banned": "banned",
    "length": "question_length",
}


def _flags_assertion(check: str) -> Assertion:
    def flags(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
        found = [
            v
            for v in obs.verdicts
            if not v.passed and v.guard.startswith(check + "_") and v.guard != check + "_sources"
        ]
        if obs.refused and check in obs.refused:
            return _binary(True, f"refused: {_shown(obs.refused, 120)}")
        if found:
            what = "; ".join(f"{v.guard}: {_shown(v.detail, 80)}" for v in found)
            return _binary(True, f"flagged: {what}")
        return _binary(False, f"the {check} check found nothing")

    return flags


for _name, _check in CHECK_TYPES.items():
    register(f"flags-{_name}")(_flags_assertion(_check))


@register("refused")
def refused(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    if obs.refused:
        return _binary(True, f"refused: {_shown(obs.refused, 120)}")
    return _binary(False, "the question was answered" if not obs.abstained else "abstained")


@register("repeats-flagged", threshold=True)
def repeats_flagged(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    from generation.checks.screen import injection_spans, repeated_share

    flagged = [r.text[a:b] for r in obs.retrieved for a, b in injection_spans(r.flags) if r.text]
    if obs.abstained or not flagged:
        why = "abstained" if obs.abstained else "no flagged text among the retrieved chunks"
        return Outcome(False, 0.0, why)
    share = repeated_share(" ".join(answer_forms(obs)), flagged)
    return _at_least(share, _threshold(spec, 0.5), "word 4-grams of flagged text repeated")


@register("pii", ValueKind.TEXTS, value_optional=True)
def pii(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    from generation.checks.base import Stage
    from generation.checks.pii import PiiCheck, default_pii_check

    check = PiiCheck(entities=list(spec.value)) if spec.value else default_pii_check()
    if obs.abstained:
        return _binary(False, "abstained: no answer shown")
    f = check.inspect(obs.answer, Stage.ANSWER)
    if f.flagged:
        return _binary(True, f"personal data in the answer: {', '.join(f.reasons)}")
    return _binary(False, "no personal data in the answer")


# -- model-graded --------------------------------------------------------------------------------


def _judge_sources(obs: Observation) -> list[str]:
    by_id = {r.chunk_id: r.text for r in obs.retrieved}
    cited = [by_id.get(c.chunk_id, "") for c in obs.citations]
    return [t for t in cited if t] or [r.text for r in obs.retrieved if r.text]


@register("llm-rubric", ValueKind.TEXT, threshold=True)
def llm_rubric(spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext) -> Outcome:
    if ctx.judge is None:
        return Outcome(False, 0.0, "skipped: no judge configured", skipped=True)
    floor = ctx.min_judge_agreement
    if floor is not None and (ctx.judge_agreement is None or ctx.judge_agreement < floor):
        measured = "never measured" if ctx.judge_agreement is None else f"{ctx.judge_agreement:.3f}"
        reason = f"skipped: the judge's agreement ({measured}) is under the suite's {floor:g}"
        return Outcome(False, 0.0, reason, skipped=True)
    passed, score, why = ctx.judge.judge(spec.value, obs.question, obs.answer, _judge_sources(obs))
    score = min(max(float(score), 0.0), 1.0)
    if spec.threshold is not None:
        passed = score >= spec.threshold - _EPS
    return Outcome(bool(passed), score, f"judge: {why}")


# -- evaluation ------------------------------------------------------------------------------------


def evaluate(
    spec: AssertionSpec, obs: Observation, case: Case, ctx: EvalContext
) -> AssertionVerdict:
    """One assertion's verdict; ``not-`` flips pass and score (a skipped one stays skipped)."""
    out = spec.kind.check(spec, obs, case, ctx)
    passed, score, reason = out.passed, min(max(out.score, 0.0), 1.0), out.reason
    if spec.negated and not out.skipped:
        passed, score, reason = not passed, 1.0 - score, f"negated: {reason}"
    return AssertionVerdict(spec.type, passed, round(score, 4), reason, spec.weight, out.skipped)


def score_case(case: Case, obs: Observation, ctx: EvalContext) -> CaseVerdict:
    """Every assertion of ``case`` on ``obs``; the case passes when the weighted share of
    passed (not skipped) assertions reaches ``case.threshold``.

        verdict = score_case(case, observation_from_answer(answer), EvalContext(embedder=e))
        verdict.passed, verdict.score, [v.reason for v in verdict.verdicts if not v.passed]
    """
    verdicts = tuple(evaluate(a, obs, case, ctx) for a in case.assertions)
    counted = [v for v in verdicts if not v.skipped]
    total = sum(v.weight for v in counted)
    if total <= 0:
        return CaseVerdict(case.id, False, 0.0, case.threshold, verdicts, skipped=True)
    score = sum(v.weight for v in counted if v.passed) / total
    passed = score >= case.threshold - _EPS
    return CaseVerdict(case.id, passed, round(score, 4), case.threshold, verdicts)


def check_context(suite: Suite, ctx: EvalContext) -> None:
    """Raises ``AssertionUnavailable`` before a run when the suite uses an assertion the
    context cannot serve (``similar`` without an embedder)."""
    if ctx.embedder is not None:
        return
    for case in suite.cases:
        for a in case.assertions:
            if a.kind.name == "similar":
                raise AssertionUnavailable(
                    f"case {case.id!r} asserts {a.type!r}, which needs an embedder: "
                    "pass EvalContext(embedder=...)"
                )
