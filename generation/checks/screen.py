"""The check library applied with a collection's policy, at each stage.

``Screen`` holds one instance of every check (injection, personal data, banned phrases and
topics, question length) and applies a ``CollectionPolicy``: to document chunks at
ingestion (``documents``: flags stored with the chunk, text redacted, or the document
refused), to questions before retrieval (``question``: refused, redacted, or abstained
on), to answers before they are returned (``answer``). Each stage's findings become
``Verdict``s named ``<check>_<stage>`` (``injection_question``, ``pii_answer``…) and are
counted in ``/metrics`` (``rag_check_findings_total{check,stage,action}``), so one
implementation serves ingestion, the live answer path and the eval suites.

    screen = Screen(embedder)
    chunks = screen.documents(texts, policy)          # ScreenedChunk(text, flags, refusal)
    q = screen.question(question, policy)             # q.text, q.verdicts, q.outcome
    views = answer_views(retrieved, policy)           # what the model / the answer may use
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from prometheus_client import Counter, Histogram

from core.types import ScoredChunk, Verdict
from generation.checks.base import (
    Action,
    Check,
    Finding,
    Span,
    Stage,
    blank_spans,
    drop_spans,
    fence_spans,
    merge_spans,
    replace_spans,
)
from generation.checks.policy import CollectionPolicy

FINDINGS = Counter(
    "rag_check_findings_total",
    "Texts a content check flagged, by check, stage and the action the policy took",
    ["check", "stage", "action"],
)
CHECK_SECONDS = Histogram(
    "rag_check_seconds",
    "Time the content checks took for one text",
    ["stage"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25),
)

_SINGULAR = {Stage.DOCUMENT: "document", Stage.QUESTION: "question", Stage.ANSWER: "answer"}

# -- the checks that are not detectors of their own module ---------------------------------


# What a question may ask of the platform without being an injection: the user is the
# principal, and "summarize it and list the dates", "translate it into French", "give an
# example" are tasks, not attacks. A question is an injection when it tries to override
# the platform (its instructions, its role, its secrets, where data goes) or hides text
# (invisible characters, encoded payloads); ``InjectionRule.question_tasks`` counts the
# task-like findings too.
TASK_REASONS = frozenset(
    [
        "second-directive",
        "unrelated-task",
        "unrelated-question",
        "answer-format",
        "instruction-like",
        "imperative",
        "transform",
        "create",
        "format",
        "question",
    ]
)


class InjectionCheck:
    """``generation.checks.injection`` as a ``Check``: chunk, question and answer models.
    ``question_tasks`` False: a question whose only findings are task-like wording
    (``TASK_REASONS``) passes, its reasons kept in the finding."""

    name = "injection"
    stages = frozenset(Stage)

    def __init__(self, detector: Any = None, *, question_tasks: bool = False) -> None:
        self._detector = detector
        self.question_tasks = question_tasks

    def for_questions(self, question_tasks: bool) -> InjectionCheck:
        if question_tasks == self.question_tasks:
            return self
        return InjectionCheck(self._detector, question_tasks=question_tasks)

    @property
    def detector(self) -> Any:
        if self._detector is None:
            from generation.checks.injection import default_detector

            self._detector = default_detector()
        return self._detector

    def inspect(self, text: str, stage: Stage) -> Finding:
        det = self.detector
        if stage is Stage.QUESTION:
            v = det.check_question(text)
        elif stage is Stage.ANSWER and hasattr(det, "check_answer"):
            v = det.check_answer(text)
        else:
            v = det.check(text)
        flagged = v.flagged
        if (
            flagged
            and stage is Stage.QUESTION
            and not self.question_tasks
            and all(r in TASK_REASONS for r in v.reasons)
        ):
            flagged = False  # a task the user asks for, not an attempt to subvert
        return Finding(self.name, flagged, v.score, tuple(v.reasons), tuple(sorted(v.spans)))


def _normal(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


class BannedCheck:
    """Banned phrases (whole words, case- and width-insensitive) and topics (embedding
    cosine of the text and the topic's description >= ``similarity``)."""

    name = "banned"
    stages = frozenset(Stage)

    def __init__(
        self,
        phrases: Sequence[str] = (),
        topics: Sequence[str] = (),
        similarity: float = 0.55,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
    ) -> None:
        self.phrases = tuple(p for p in (_normal(p) for p in phrases) if p)
        self.topics = tuple(t for t in topics if t.strip())
        self.similarity = similarity
        self._embed = embed
        self._topic_vectors: np.ndarray | None = None
        self._re = (
            re.compile(
                r"(?<!\w)(?:"
                + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in self.phrases)
                + r")(?!\w)",
                re.IGNORECASE,
            )
            if self.phrases
            else None
        )

    def inspect(self, text: str, stage: Stage) -> Finding:
        spans: list[Span] = []
        reasons: list[str] = []
        score = 0.0
        if self._re is not None:
            folded = unicodedata.normalize("NFKC", text)
            same_length = len(folded) == len(text)
            for m in self._re.finditer(folded):
                reasons.append(f"phrase:{_normal(m.group(0))}")
                if same_length:
                    spans.append((m.start(), m.end()))
                score = 1.0
        if self.topics and self._embed is not None and text.strip():
            if self._topic_vectors is None:
                self._topic_vectors = _unit(self._embed(list(self.topics)))
            cos = self._topic_vectors @ _unit(self._embed([text]))[0]
            for topic, c in zip(self.topics, cos, strict=True):
                if c >= self.similarity:
                    reasons.append(f"topic:{topic}")
                    score = max(score, float(c))
        reasons = list(dict.fromkeys(reasons))
        return Finding(self.name, bool(reasons), score, tuple(reasons), tuple(merge_spans(spans)))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return np.asarray(x / np.maximum(norm, 1e-12))


class LengthCheck:
    """A question longer than ``max_chars`` characters."""

    name = "question_length"
    stages = frozenset([Stage.QUESTION])

    def __init__(self, max_chars: int) -> None:
        self.max_chars = max_chars

    def inspect(self, text: str, stage: Stage) -> Finding:
        n = len(text)
        if n <= self.max_chars:
            return Finding(self.name, False, n / self.max_chars)
        return Finding(self.name, True, 1.0, (f"{n} characters, the limit is {self.max_chars}",))


# -- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScreenedChunk:
    """A chunk after the document-stage checks: its text to store (redacted where the
    policy says), the findings to store with it (JSON by check name), and the reason the
    policy refuses its document, if it does."""

    text: str
    flags: dict[str, dict[str, Any]]
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class Screened:
    """A question or an answer after its checks: the text to use, a verdict per check that
    ran, and the strongest action taken (``BLOCK`` / ``ABSTAIN`` / ``REDACT`` / ``WARN``,
    None when nothing was found) with every finding as the reason (the strongest's first)."""

    text: str
    verdicts: tuple[Verdict, ...] = ()
    findings: tuple[Finding, ...] = ()
    outcome: Action | None = None
    reason: str = ""


_SEVERITY = {
    Action.WARN: 1,
    Action.FENCE: 1,
    Action.DROP: 1,
    Action.REDACT: 2,
    Action.ABSTAIN: 3,
    Action.BLOCK: 4,
}


def _stronger(a: Action | None, b: Action) -> Action:
    return b if a is None or _SEVERITY.get(b, 0) > _SEVERITY.get(a, 0) else a


# -- the screen ------------------------------------------------------------------------------


class Screen:
    """Every check, applied by policy. Thread-safe; built once per process.

    ``embed``: the sentence embedder's ``embed`` (for banned topics; without it topics are
    not checked). ``max_question_chars``: the default question limit.
    """

    def __init__(
        self,
        embed: Callable[[Sequence[str]], np.ndarray] | None = None,
        *,
        max_question_chars: int = 2000,
        injection: Check | None = None,
        pii: Check | None = None,
    ) -> None:
        self.embed = embed
        self.max_question_chars = max_question_chars
        self.injection: Check = injection or InjectionCheck()
        self._pii = pii
        self._banned: dict[str, BannedCheck] = {}
        self._pii_by_entities: dict[str, Check] = {}
        self._lock = threading.Lock()

    # -- the checks a policy asks for -------------------------------------------------------

    def pii(self, entities: Sequence[str] | None = None) -> Check:
        """The personal-data check (presidio), for ``entities`` or its default set."""
        if self._pii is not None and entities is None:
            return self._pii
        from generation.checks.pii import PiiCheck, default_pii_check

        with self._lock:
            if entities is None:
                self._pii = self._pii or default_pii_check()
                return self._pii
            key = ",".join(sorted(entities))
            check = self._pii_by_entities.get(key)
            if check is None:
                check = self._pii_by_entities[key] = PiiCheck(entities=list(entities))
            return check

    def banned(self, policy: CollectionPolicy) -> BannedCheck:
        rule = policy.banned
        key = repr((rule.phrases, rule.topics, rule.topic_similarity))
        with self._lock:
            check = self._banned.get(key)
            if check is None:
                if len(self._banned) > 256:
                    self._banned.clear()
                check = self._banned[key] = BannedCheck(
                    rule.phrases, rule.topics, rule.topic_similarity, self.embed
                )
        return check

    def plan(self, policy: CollectionPolicy, stage: Stage) -> list[tuple[Check, Action]]:
        """The checks to run at ``stage`` and their actions, in order: length, injection
        (on the text as sent), personal data (may redact), banned phrases/topics."""
        out: list[tuple[Check, Action]] = []
        if stage is Stage.QUESTION:
            rule = policy.question_length
            if rule.questions is not Action.ALLOW:
                out.append((LengthCheck(rule.max_chars or self.max_question_chars), rule.questions))
        if (a := policy.injection.action(stage)) is not Action.ALLOW:
            check = self.injection
            if isinstance(check, InjectionCheck):
                check = check.for_questions(policy.injection.question_tasks)
            out.append((check, a))
        if (a := policy.pii.action(stage)) is not Action.ALLOW:
            out.append((self.pii(policy.pii.entities), a))
        if (policy.banned.phrases or policy.banned.topics) and (
            a := policy.banned.action(stage)
        ) is not Action.ALLOW:
            out.append((self.banned(policy), a))
        return out

    # -- documents ---------------------------------------------------------------------------

    def documents(
        self,
        texts: Sequence[str],
        policy: CollectionPolicy | Mapping[str, Any] | None,
    ) -> list[ScreenedChunk]:
        """The document-stage checks over a document's chunks (``policy``: the policy, or
        its stored JSON). Redaction happens first so the other checks' spans refer to the
        text that is stored."""
        if not isinstance(policy, CollectionPolicy):
            policy = CollectionPolicy.from_stored(policy)
        plan = self.plan(policy, Stage.DOCUMENT)
        plan.sort(key=lambda ca: ca[1] is not Action.REDACT)  # redactions first
        out = []
        for text in texts:
            t0 = time.perf_counter()
            flags: dict[str, dict[str, Any]] = {}
            refusal = None
            for check, action in plan:
                f = check.inspect(text, Stage.DOCUMENT)
                if not f.flagged:
                    continue
                FINDINGS.labels(check.name, Stage.DOCUMENT.value, action.value).inc()
                entry = f.to_json()
                entry["action"] = action.value
                if action is Action.REDACT and f.spans:
                    text = redact(check, text, f)
                    entry.pop("spans", None)
                    entry["redacted"] = len(f.spans)
                elif action is Action.BLOCK and refusal is None:
                    refusal = f"{check.name}: {f.summary()}"
                flags[check.name] = entry
            CHECK_SECONDS.labels(Stage.DOCUMENT.value).observe(time.perf_counter() - t0)
            out.append(ScreenedChunk(text, flags, refusal))
        return out

    # -- questions and answers ---------------------------------------------------------------

    def question(self, question: str, policy: CollectionPolicy) -> Screened:
        return self._screen(question, policy, Stage.QUESTION)

    def answer(
        self, text: str, policy: CollectionPolicy, flagged_texts: Sequence[str] = ()
    ) -> Screened:
        """The answer-stage checks; an answer that repeats flagged document text (half of
        its word 4-grams or more) is an injection finding too."""
        return self._screen(text, policy, Stage.ANSWER, flagged_texts)

    def _screen(
        self,
        text: str,
        policy: CollectionPolicy,
        stage: Stage,
        flagged_texts: Sequence[str] = (),
    ) -> Screened:
        t0 = time.perf_counter()
        verdicts: list[Verdict] = []
        findings: list[Finding] = []
        outcome: Action | None = None
        reason = ""
        for check, action in self.plan(policy, stage):
            f = check.inspect(text, stage)
            if check.name == "injection" and stage is Stage.ANSWER and not f.flagged:
                share = repeated_share(text, flagged_texts)
                if share >= REPEAT_SHARE:
                    f = Finding(
                        "injection", True, share, (f"repeats flagged document text ({share:.0%})",)
                    )
            name = f"{check.name}_{_SINGULAR[stage]}"
            if not f.flagged:
                detail = "nothing found"
                if f.reasons:  # found, but under the policy's bar (task-like wording)
                    detail = f"task-like wording only ({', '.join(f.reasons)}): not refused"
                verdicts.append(Verdict(name, True, detail, round(1 - f.score, 4)))
                continue
            findings.append(f)
            FINDINGS.labels(check.name, stage.value, action.value).inc()
            taken = action
            if action is Action.REDACT:
                if f.spans:
                    text = redact(check, text, f)
                else:  # nothing to cut out (a topic): the stage's strongest other action
                    taken = Action.BLOCK if stage is Stage.QUESTION else Action.ABSTAIN
            detail = f"{f.summary()}; policy {check.name}.{stage.value}={action.value}"
            verdicts.append(Verdict(name, False, detail, round(1 - f.score, 4)))
            found = f"{check.name}: {f.summary()}"
            if outcome is None or _SEVERITY[taken] > _SEVERITY[outcome]:
                reason = f"{found}; {reason}" if reason else found  # the strongest first
            else:
                reason = f"{reason}; {found}"
            outcome = _stronger(outcome, taken)
        CHECK_SECONDS.labels(stage.value).observe(time.perf_counter() - t0)
        return Screened(text, tuple(verdicts), tuple(findings), outcome, reason)


def redact(check: Check, text: str, finding: Finding) -> str:
    """The check's own redaction when it has one (presidio's anonymizer for personal
    data), else each span replaced by ``<LABEL>`` (or ``[removed]``)."""
    own = getattr(check, "anonymize", None)
    if own is not None:
        return str(own(text, finding))
    labels = finding.labels or ("removed",) * len(finding.spans)
    return replace_spans(text, finding.spans, [f"<{label}>" for label in labels])


# -- answer-time views of retrieved chunks -----------------------------------------------------

REPEAT_SHARE = 0.5
_WORD = re.compile(r"\w+")


def _grams(text: str, n: int = 4) -> set[tuple[str, ...]]:
    toks = [t.casefold() for t in _WORD.findall(text)]
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def repeated_share(answer: str, flagged_texts: Sequence[str]) -> float:
    """The share of the answer's word 4-grams that occur in flagged document text."""
    if not flagged_texts:
        return 0.0
    mine = _grams(answer)
    if not mine:
        return 0.0
    theirs: set[tuple[str, ...]] = set()
    for t in flagged_texts:
        theirs |= _grams(t)
    return len(mine & theirs) / len(mine)


def injection_spans(flags: Mapping[str, Any] | None) -> list[Span]:
    entry = (flags or {}).get("injection") or {}
    return [(int(a), int(b)) for a, b in entry.get("spans", ())]


@dataclass(frozen=True, slots=True)
class AnswerViews:
    """The retrieved chunks as the answer path may use them.

    ``model``: what the model reads (flagged spans fenced or dropped by policy);
    ``source``: what answer sentences may be copied from (flagged spans blanked, offsets
    unchanged, whatever the policy: an instruction is never returned as the answer);
    ``flagged_texts``: the flagged spans' text (an answer repeating them is withheld).
    """

    model: tuple[ScoredChunk, ...]
    source: tuple[ScoredChunk, ...]
    flagged_texts: tuple[str, ...] = field(default=())
    verdict: Verdict | None = None


def answer_views(retrieved: Sequence[ScoredChunk], policy: CollectionPolicy) -> AnswerViews:
    action = policy.injection.documents
    model: list[ScoredChunk] = []
    source: list[ScoredChunk] = []
    flagged: list[str] = []
    n = 0
    for sc in retrieved:
        spans = merge_spans(injection_spans(sc.chunk.flags))
        text = sc.chunk.text
        spans = [(a, min(b, len(text))) for a, b in spans if a < len(text)]
        if not spans:
            model.append(sc)
            source.append(sc)
            continue
        n += 1
        flagged.extend(text[a:b] for a, b in spans)
        source.append(replace(sc, chunk=replace(sc.chunk, text=blank_spans(text, spans))))
        if action is Action.FENCE:
            model.append(replace(sc, chunk=replace(sc.chunk, text=fence_spans(text, spans))))
        elif action in (Action.DROP, Action.BLOCK):
            model.append(replace(sc, chunk=replace(sc.chunk, text=drop_spans(text, spans))))
        else:  # warn / allow: the model reads it as it is
            model.append(sc)
    verdict = None
    if n:
        how = {Action.FENCE: "fenced off", Action.DROP: "left out", Action.BLOCK: "left out"}
        verdict = Verdict(
            "injection_sources",
            False,
            f"{n} retrieved chunk(s) hold instruction-like text: "
            f"{how.get(action, 'shown to the model')} (policy injection.documents="
            f"{action.value}); never used as the answer",
        )
    return AnswerViews(tuple(model), tuple(source), tuple(flagged), verdict)
