"""One entry point for a recorded batch run, shared by `rag eval run`, ``POST /v1/evals``
and collection gates: pick where answers come from, fingerprint the configuration,
run the suite, record every case in SQL.

    run = execute_run(platform, suite, "suite.yaml", tenant="default")
    run = execute_run(platform, suite, "suite.yaml", tenant="default",
                      against="http://127.0.0.1:8000", api_key=None, concurrency=4)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from core.errors import InvalidRequest
from core.types import CollectionKey
from evals.assertions import EvalContext, check_context
from evals.fingerprint import Fingerprint, platform_fingerprint
from evals.run_store import RunRecorder
from evals.runner import Answerer, CaseResult, HttpAnswerer, PlatformAnswerer, RunResult, run_suite
from evals.suite import Suite

if TYPE_CHECKING:
    from evals.ports import EvalStages

Progress = Callable[[int, int], None]


def eval_context(stages: EvalStages, suite: Suite) -> EvalContext:
    """What the suite's assertions may use: the platform's embedder and, when the suite
    names a judge, that judge with the agreement its last judge check measured here."""
    spec = suite.defaults.judge
    if spec is None:
        return EvalContext.for_suite(suite, embedder=stages.embedder)
    from evals.judge import build_judge, recalled_agreement

    judge = build_judge(spec, stages.settings)
    agreement = recalled_agreement(stages.settings.data_dir, judge)
    return EvalContext.for_suite(
        suite, embedder=stages.embedder, judge=judge, judge_agreement=agreement
    )


def suite_collections(suite: Suite, default: str) -> list[str]:
    """The collection names the suite's cases query (``default`` where they name none)."""
    names = {suite.settings_for(c).collection or default for c in suite.cases}
    return sorted(names)


class PreparedRun:
    """A run recorded as "running" in SQL, ready to execute (``execute`` may run later, on
    another thread: the REST API returns the run's id first)."""

    def __init__(
        self,
        suite: Suite,
        suite_name: str,
        tenant: str,
        answerer: Answerer,
        ctx: EvalContext,
        fingerprint: Fingerprint,
        recorder: RunRecorder,
        concurrency: int,
    ) -> None:
        self.suite, self.suite_name, self.tenant = suite, suite_name, tenant
        self.answerer, self.ctx, self.fingerprint = answerer, ctx, fingerprint
        self.recorder, self.concurrency = recorder, concurrency

    @property
    def run_id(self) -> str:
        return self.recorder.run_id

    def execute(
        self,
        progress: Progress | None = None,
        on_case: Callable[[CaseResult], None] | None = None,
    ) -> RunResult:
        """Answer and score every case, recording each; the run ends "done", or "failed"
        with the error when something outside the cases breaks."""

        def record(result: CaseResult) -> None:
            self.recorder.case(result)
            if on_case:
                on_case(result)

        try:
            run = run_suite(
                self.suite,
                self.answerer,
                self.ctx,
                suite_name=self.suite_name,
                tenant=self.tenant,
                fingerprint=self.fingerprint,
                concurrency=self.concurrency,
                progress=progress,
                on_case=record,
                run_id=self.recorder.run_id,
            )
        except BaseException as e:
            self.recorder.fail(e)
            raise
        finally:
            if isinstance(self.answerer, HttpAnswerer):
                self.answerer.close()
        self.recorder.finish(run)
        return run


def prepare_run(
    stages: EvalStages,
    suite: Suite,
    suite_name: str,
    *,
    tenant: str,
    against: str | None = None,
    api_key: str | None = None,
    concurrency: int = 1,
    collection_map: Mapping[str, CollectionKey] | None = None,
    gate_collection_id: str | None = None,
) -> PreparedRun:
    """Pick where answers come from (in process, or ``against`` a server's URL), take the
    configuration fingerprint (the server's own for ``against``) and record the run.
    ``collection_map`` answers a case's collection from another one (a gate runs the
    suite on a candidate version: {"docs": key.version("candidate")}); the fingerprint
    names the collections as the suite does."""
    if concurrency < 1:
        raise InvalidRequest(f"concurrency must be at least 1, not {concurrency}")
    default = stages.settings.default_collection
    names = suite_collections(suite, default)
    answerer: Answerer
    fingerprint: Fingerprint
    if against:
        http = HttpAnswerer(against, api_key, default_collection=default)
        try:
            fingerprint = http.fingerprint(names)
        except Exception:
            http.close()
            raise
        answerer = http
    else:
        mapping = dict(collection_map or {})
        keys = {n: mapping.get(n) or CollectionKey(tenant, n) for n in names}
        fingerprint = platform_fingerprint(stages, list(keys.values()))
        if mapping:  # name the collections as the suite does
            fingerprint["collections"] = {
                n: fingerprint["collections"].get(k.name) for n, k in keys.items()
            }
        answerer = PlatformAnswerer(
            stages.query, stages.settings, tenant, default, collection_map=mapping
        )
    ctx = eval_context(stages, suite)
    check_context(suite, ctx)
    recorder = RunRecorder(
        stages.engine,
        suite,
        suite_name,
        tenant,
        answerer.target,
        fingerprint,
        gate_collection_id=gate_collection_id,
    )
    return PreparedRun(suite, suite_name, tenant, answerer, ctx, fingerprint, recorder, concurrency)


def execute_run(
    stages: EvalStages,
    suite: Suite,
    suite_name: str,
    *,
    tenant: str,
    against: str | None = None,
    api_key: str | None = None,
    concurrency: int = 1,
    progress: Progress | None = None,
    collection_map: Mapping[str, CollectionKey] | None = None,
    gate_collection_id: str | None = None,
) -> RunResult:
    """``prepare_run`` then ``execute``, in this thread."""
    prepared = prepare_run(
        stages,
        suite,
        suite_name,
        tenant=tenant,
        against=against,
        api_key=api_key,
        concurrency=concurrency,
        collection_map=collection_map,
        gate_collection_id=gate_collection_id,
    )
    return prepared.execute(progress)
