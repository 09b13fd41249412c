"""Runs a suite: every case through the platform's one query path, scored by its assertions.

    answerer = PlatformAnswerer(platform.query, platform.settings, tenant="default")
    run = run_suite(suite, answerer, EvalContext(embedder=platform.embedder))
    run.pass_rate, run.summary()["by_type"], [c.case_id for c in run.cases if not c.passed]

In process (``PlatformAnswerer``) the answers come from the same ``QueryPipeline`` the
REST app serves; against a server (``HttpAnswerer``) from its ``POST /v1/query``, the
observation built from the answer JSON. A case whose query fails (its collection does
not exist, the server is down) fails with the error as its reason; the run goes on.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from core.errors import InvalidRequest, QuestionRefused, RagError
from core.types import CollectionKey, SentenceVerdict
from evals.answer_metrics import squad_em, squad_f1
from evals.assertions import (
    CHECK_TYPES,
    NEGATION,
    AssertionVerdict,
    CaseVerdict,
    CitedSource,
    EvalContext,
    Observation,
    RetrievedSource,
    SeenVerdict,
    answer_forms,
    check_context,
    observation_from_answer,
    refused_observation,
    score_case,
)
from evals.fingerprint import Fingerprint, platform_version
from evals.suite import Case, CaseSettings, Suite

if TYPE_CHECKING:
    import httpx

    from core.settings import Settings
    from generation.pipeline import QueryPipeline

Progress = Callable[[int, int], None]  # (done, total)


# -- answering a case ----------------------------------------------------------------------


class Answerer(Protocol):
    """Answers one case with the platform (in process or over HTTP)."""

    @property
    def target(self) -> str:
        """Where answers come from: "in-process" or the server's URL."""
        ...

    def answer(self, case: Case, settings: CaseSettings) -> Observation: ...


class PlatformAnswerer:
    """The platform's own ``QueryPipeline``: exactly what `rag ask` and the REST app run."""

    target = "in-process"

    def __init__(
        self,
        query: QueryPipeline,
        settings: Settings,
        tenant: str,
        default_collection: str | None = None,
        collection_map: Mapping[str, CollectionKey] | None = None,
    ) -> None:
        from generation.pipeline import sampling_from_settings

        self._map = dict(collection_map or {})
        self._query = query
        self._base = sampling_from_settings(settings.llm)
        self._top_k = settings.retrieval.top_k
        self._tenant = tenant
        self._default = default_collection or settings.default_collection
        # the in-process model answers one prompt at a time; a lock keeps a concurrent
        # run's timings honest (each case's latency is its own)
        self._lock = threading.Lock()

    def answer(self, case: Case, settings: CaseSettings) -> Observation:
        name = settings.collection or self._default
        key = self._map.get(name) or CollectionKey(self._tenant, name)
        with self._lock:
            t = time.perf_counter()
            try:
                answer = self._query.answer(
                    case.question,
                    key,
                    top_k=settings.top_k or self._top_k,
                    filter=settings.filter,
                    sampling=settings.sampling.apply(self._base),
                )
            except QuestionRefused as e:  # the policy's answer to this question
                return refused_observation(
                    case.question, e.message, (time.perf_counter() - t) * 1000
                )
            ms = (time.perf_counter() - t) * 1000
        return observation_from_answer(answer, latency_ms=ms)


class HttpAnswerer:
    """A running server's ``POST /v1/query`` (``--against URL``)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        default_collection: str | None = None,
        timeout_s: float = 300.0,
        client: httpx.Client | None = None,
    ) -> None:
        """``client``: an httpx client to send through (tests pass the app's TestClient)."""
        import httpx

        self.target = base_url.rstrip("/")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        if client is None:
            client = httpx.Client(base_url=self.target, timeout=timeout_s)
        client.headers.update(headers)
        self._client = client
        self._default = default_collection

    def fingerprint(self, collections: Sequence[str]) -> Fingerprint:
        """The server's configuration fingerprint for ``collections``."""
        r = self._send("GET", "/v1/fingerprint", params=[("collection", c) for c in collections])
        return dict(r.json())

    def answer(self, case: Case, settings: CaseSettings) -> Observation:
        f = settings.filter
        body: dict[str, Any] = {
            "question": case.question,
            "collection": settings.collection or self._default,
            "top_k": settings.top_k,
            "filter": {
                "document_ids": list(f.document_ids),
                "sources": list(f.sources),
                "media_types": list(f.media_types),
                "metadata": dict(f.metadata),
            },
            "sampling": settings.sampling.model_dump(exclude_none=True),
        }
        t = time.perf_counter()
        try:
            r = self._send("POST", "/v1/query", json=body)
        except QuestionRefused as e:
            return refused_observation(case.question, e.message, (time.perf_counter() - t) * 1000)
        ms = (time.perf_counter() - t) * 1000
        return observation_from_json(case.question, r.json(), ms)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; a server that cannot be reached or answers an error is a
        ``RagError`` naming it (never a transport traceback)."""
        import httpx

        try:
            r = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as e:
            raise ServerUnreachable(f"cannot reach {self.target}{path}: {e}") from e
        _raise_for(r)
        return r

    def close(self) -> None:
        self._client.close()


class ServerUnreachable(RagError):
    """``--against``: the server did not answer (down, wrong URL, timed out)."""

    code = "server_unreachable"
    http_status = 502


def _raise_for(r: Any) -> None:
    if r.status_code >= 400:
        try:
            err = r.json().get("error", {})
            msg = f"{err.get('code', r.status_code)}: {err.get('message', r.text)}"
        except ValueError:
            err, msg = {}, f"HTTP {r.status_code}: {r.text[:200]}"
        if err.get("code") == QuestionRefused.code:  # the policy's answer, not a failure
            raise QuestionRefused(str(err.get("message", "")))
        raise RagError(f"the server answered {msg}")


def observation_from_json(question: str, data: Mapping[str, Any], latency_ms: float) -> Observation:
    """The observation of a ``POST /v1/query`` answer JSON (``api.schemas.answer_to_dict``)."""
    by_chunk = {r["chunk_id"]: r for r in data.get("retrieved", [])}
    return Observation(
        question=question,
        answer=str(data.get("answer", "")),
        abstained=bool(data.get("abstained")),
        citations=tuple(
            CitedSource(int(c["n"]), str(c["source"]), str(c["chunk_id"]))
            for c in data.get("citations", [])
        ),
        retrieved=tuple(
            RetrievedSource(
                str(r["chunk_id"]),
                str(r["source"]),
                float(r["score"]),
                str(r.get("text", "")),
                dict(r.get("flags") or {}),
            )
            for r in by_chunk.values()
        ),
        latency_ms=latency_ms,
        tokens=int((data.get("usage") or {}).get("completion_tokens", 0)),
        sentences=tuple(
            SentenceVerdict(
                text=v["text"],
                supported=bool(v["supported"]),
                score=float(v["score"]),
                citation=v.get("citation"),
                chunk_id=v.get("chunk_id"),
                char_start=v.get("char_start"),
                char_end=v.get("char_end"),
            )
            for v in data.get("sentences", [])
        ),
        short_answer=data.get("short_answer"),
        dropped_citations=int(data.get("dropped_citations", 0)),
        verdicts=tuple(
            SeenVerdict(str(v["guard"]), bool(v["passed"]), str(v.get("detail", "")))
            for v in data.get("verdicts", [])
        ),
    )


# -- results -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseResult:
    """One case of a run: what the platform answered and every assertion's verdict."""

    case_id: str
    question: str
    tags: tuple[str, ...]
    answerable: bool
    passed: bool
    score: float
    answer: str = ""
    abstained: bool = False
    short_answer: str | None = None
    citations: tuple[dict[str, Any], ...] = ()  # {n, source, chunk_id}
    retrieved: tuple[dict[str, Any], ...] = ()  # {chunk_id, source, score}
    latency_ms: float = 0.0
    tokens: int = 0
    verdicts: tuple[AssertionVerdict, ...] = ()
    em: float | None = None  # against the case's reference, when it has one
    f1: float | None = None
    error: str | None = None  # the query failed: the case fails with this reason
    skipped: bool = False  # no assertion could be counted

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["tags"] = list(self.tags)
        d["citations"] = list(self.citations)
        d["retrieved"] = list(self.retrieved)
        d["verdicts"] = [asdict(v) for v in self.verdicts]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CaseResult:
        data = dict(d)
        data["tags"] = tuple(data.get("tags", ()))
        data["citations"] = tuple(data.get("citations", ()))
        data["retrieved"] = tuple(data.get("retrieved", ()))
        data["verdicts"] = tuple(AssertionVerdict(**v) for v in data.get("verdicts", ()))
        return cls(**data)


def case_result(case: Case, obs: Observation, verdict: CaseVerdict) -> CaseResult:
    em = f1 = None
    if case.reference and not obs.abstained:
        forms = answer_forms(obs)
        em = max(squad_em(f, list(case.reference)) for f in forms)
        f1 = max(squad_f1(f, list(case.reference)) for f in forms)
    elif case.reference:
        em = f1 = 0.0
    return CaseResult(
        case_id=case.id,
        question=case.question,
        tags=case.tags,
        answerable=case.answerable,
        passed=verdict.passed,
        score=verdict.score,
        answer=obs.answer,
        abstained=obs.abstained,
        short_answer=obs.short_answer,
        citations=tuple(
            {"n": c.n, "source": c.source, "chunk_id": c.chunk_id} for c in obs.citations
        ),
        retrieved=tuple(
            {"chunk_id": r.chunk_id, "source": r.source, "score": round(r.score, 6)}
            for r in obs.retrieved
        ),
        latency_ms=round(obs.latency_ms, 1),
        tokens=obs.tokens,
        verdicts=verdict.verdicts,
        em=em,
        f1=None if f1 is None else round(f1, 4),
        skipped=verdict.skipped,
    )


def failed_case(case: Case, error: BaseException) -> CaseResult:
    return CaseResult(
        case_id=case.id,
        question=case.question,
        tags=case.tags,
        answerable=case.answerable,
        passed=False,
        score=0.0,
        error=f"{type(error).__name__}: {error}",
    )


@dataclass
class RunResult:
    """A whole run; ``summary()`` is what reports, diffs and the gate read."""

    id: str
    suite_name: str
    suite_sha256: str
    target: str
    tenant: str
    fingerprint: Fingerprint
    started_at: str
    finished_at: str | None = None
    status: str = "running"  # running | done | failed
    cases: list[CaseResult] = field(default_factory=list)
    n_cases: int = 0
    platform_version: str = field(default_factory=platform_version)
    error: str | None = None

    @property
    def n_passed(self) -> int:
        return sum(c.passed for c in self.cases)

    @property
    def pass_rate(self) -> float:
        return self.n_passed / len(self.cases) if self.cases else 0.0

    def summary(self) -> dict[str, Any]:
        return summarize(self.cases)

    def to_json(self, with_cases: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "suite": self.suite_name,
            "suite_sha256": self.suite_sha256,
            "target": self.target,
            "tenant": self.tenant,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "platform_version": self.platform_version,
            "n_cases": self.n_cases,
            "n_done": len(self.cases),
            "n_passed": self.n_passed,
            "pass_rate": round(self.pass_rate, 4),
            "summary": self.summary(),
            "fingerprint": self.fingerprint,
            "error": self.error,
        }
        if with_cases:
            out["cases"] = [c.to_json() for c in self.cases]
        return out


def _rate(passed: int, n: int) -> dict[str, Any]:
    return {"n": n, "passed": passed, "rate": round(passed / n, 4) if n else None}


def summarize(cases: Sequence[CaseResult]) -> dict[str, Any]:
    """Pass rates overall, per assertion type and per tag; EM / F1 over cases with a
    reference; abstention on answerable and unanswerable cases; latency percentiles."""
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_tag: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for c in cases:
        for v in c.verdicts:
            if not v.skipped:
                by_type[v.type][0] += v.passed
                by_type[v.type][1] += 1
        for t in c.tags or ("(untagged)",):
            by_tag[t][0] += c.passed
            by_tag[t][1] += 1
    with_ref = [c for c in cases if c.f1 is not None]
    answerable = [c for c in cases if c.answerable and c.error is None]
    unanswerable = [c for c in cases if not c.answerable and c.error is None]
    lat = sorted(c.latency_ms for c in cases if c.error is None)

    def pct(q: float) -> float | None:
        if not lat:
            return None
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 1)

    return {
        "cases": len(cases),
        "passed": sum(c.passed for c in cases),
        "pass_rate": round(sum(c.passed for c in cases) / len(cases), 4) if cases else None,
        "errors": sum(c.error is not None for c in cases),
        "by_type": {k: _rate(p, n) for k, (p, n) in sorted(by_type.items())},
        "by_tag": {k: _rate(p, n) for k, (p, n) in sorted(by_tag.items())},
        "em": round(statistics.fmean(c.em or 0.0 for c in with_ref), 4) if with_ref else None,
        "f1": round(statistics.fmean(c.f1 or 0.0 for c in with_ref), 4) if with_ref else None,
        "answerable_answered": _rate(sum(not c.abstained for c in answerable), len(answerable)),
        "unanswerable_abstained": _rate(sum(c.abstained for c in unanswerable), len(unanswerable)),
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "max": lat[-1] if lat else None},
        "tokens": sum(c.tokens for c in cases),
        "checks": check_confusion(by_type),
    }


def check_confusion(by_type: Mapping[str, Sequence[int]]) -> dict[str, dict[str, Any]]:
    """Each content check's precision and recall from its labelled cases: ``flags-X``
    cases are the positives (passed: found), ``not-flags-X`` the negatives (failed: a
    false flag)."""
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(CHECK_TYPES):
        pos = by_type.get(f"flags-{name}", (0, 0))
        neg = by_type.get(f"{NEGATION}flags-{name}", (0, 0))
        if not pos[1] and not neg[1]:
            continue
        tp, fn = pos[0], pos[1] - pos[0]
        tn, fp = neg[0], neg[1] - neg[0]
        out[name] = {
            "tp": tp,
            "fn": fn,
            "fp": fp,
            "tn": tn,
            "recall": round(tp / (tp + fn), 4) if tp + fn else None,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "false_flag_rate": round(fp / (fp + tn), 4) if fp + tn else None,
        }
    return out


# -- running ---------------------------------------------------------------------------------


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:12]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run_case(case: Case, suite: Suite, answerer: Answerer, ctx: EvalContext) -> CaseResult:
    """One case: answered, then scored; a failed query is a failed case, not an error."""
    try:
        obs = answerer.answer(case, suite.settings_for(case))
    except Exception as e:  # a platform error, the server down, a model crash: the case
        return failed_case(case, e)  # fails with the error as its reason, the run goes on
    return case_result(case, obs, score_case(case, obs, ctx))


def run_suite(
    suite: Suite,
    answerer: Answerer,
    ctx: EvalContext,
    *,
    suite_name: str = "<suite>",
    tenant: str = "default",
    fingerprint: Fingerprint | None = None,
    concurrency: int = 1,
    progress: Progress | None = None,
    on_case: Callable[[CaseResult], None] | None = None,
    run_id: str | None = None,
) -> RunResult:
    """Every case of ``suite`` (in suite order in the result, whatever the concurrency).

    ``on_case`` sees each finished case (a store records it as it comes); ``progress``
    gets (done, total).
    """
    if concurrency < 1:
        raise InvalidRequest(f"--concurrency must be at least 1, not {concurrency}")
    check_context(suite, ctx)
    run = RunResult(
        id=run_id or new_run_id(),
        suite_name=suite_name,
        suite_sha256=suite.sha256,
        target=answerer.target,
        tenant=tenant,
        fingerprint=fingerprint or {},
        started_at=now_iso(),
        n_cases=len(suite.cases),
    )
    results: list[CaseResult | None] = [None] * len(suite.cases)
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        res = run_case(suite.cases[i], suite, answerer, ctx)
        with lock:
            results[i] = res
            done += 1
            if on_case:
                on_case(res)
            if progress:
                progress(done, len(suite.cases))

    if concurrency == 1:
        for i in range(len(suite.cases)):
            one(i)
    else:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(one, range(len(suite.cases))))
    run.cases = [r for r in results if r is not None]
    run.finished_at = now_iso()
    run.status = "done"
    return run


# -- comparing runs ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RunDiff:
    """Cases that flipped between two runs and the metric deltas per tag and type."""

    a: str
    b: str
    fixed: list[str]  # failed in a, passed in b
    broken: list[str]  # passed in a, failed in b
    only_a: list[str]
    only_b: list[str]
    deltas: dict[str, dict[str, tuple[float | None, float | None]]]
    config: list[str]  # fingerprint differences

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "fixed": self.fixed,
            "broken": self.broken,
            "only_a": self.only_a,
            "only_b": self.only_b,
            "deltas": {
                section: {k: {"a": va, "b": vb} for k, (va, vb) in rows.items()}
                for section, rows in self.deltas.items()
            },
            "config": self.config,
        }


def diff_runs(a: RunResult, b: RunResult) -> RunDiff:
    from evals.fingerprint import fingerprint_diff

    ca = {c.case_id: c for c in a.cases}
    cb = {c.case_id: c for c in b.cases}
    both = [k for k in ca if k in cb]
    sa, sb = a.summary(), b.summary()
    suite_change = (
        [f"suite_sha256: {a.suite_sha256[:12]} -> {b.suite_sha256[:12]} (the suites differ)"]
        if a.suite_sha256 != b.suite_sha256
        else []
    )
    deltas: dict[str, dict[str, tuple[float | None, float | None]]] = {"overall": {}}
    for k in ("pass_rate", "em", "f1"):
        deltas["overall"][k] = (sa[k], sb[k])
    for k in ("answerable_answered", "unanswerable_abstained"):
        deltas["overall"][k] = (sa[k]["rate"], sb[k]["rate"])
    deltas["overall"]["latency_p50_ms"] = (sa["latency_ms"]["p50"], sb["latency_ms"]["p50"])
    for section in ("by_type", "by_tag"):
        keys = sorted(set(sa[section]) | set(sb[section]))
        deltas[section] = {
            k: (sa[section].get(k, {}).get("rate"), sb[section].get(k, {}).get("rate"))
            for k in keys
        }
    return RunDiff(
        a=a.id,
        b=b.id,
        fixed=[k for k in both if not ca[k].passed and cb[k].passed],
        broken=[k for k in both if ca[k].passed and not cb[k].passed],
        only_a=[k for k in ca if k not in cb],
        only_b=[k for k in cb if k not in ca],
        deltas=deltas,
        config=suite_change + fingerprint_diff(a.fingerprint, b.fingerprint),
    )


def gate(
    run: RunResult, fail_under: float | None = None, baseline: RunResult | None = None
) -> list[str]:
    """Why the run fails the CI gate (empty: it passes): a pass rate under ``fail_under``,
    or a case that passed in ``baseline`` and fails now."""
    reasons = []
    if fail_under is not None and run.pass_rate + 1e-9 < fail_under:
        reasons.append(f"pass rate {run.pass_rate:.1%} is under the bar {fail_under:.1%}")
    if baseline is not None:
        broken = diff_runs(baseline, run).broken
        if broken:
            shown = ", ".join(broken[:10]) + (" ..." if len(broken) > 10 else "")
            reasons.append(
                f"{len(broken)} case(s) passed in baseline {baseline.id} and fail now: {shown}"
            )
    return reasons
