"""Replay one case of a stored run: the recorded suite's case, answered again now.

result = replay_case(platform, "default", "run-3fa1c2d4e5f6", "q-rrf")
result["identical"], result["config"]  # byte-identical answer? what configuration differs
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.errors import InvalidRequest
from core.types import CollectionKey
from evals.batch import eval_context, suite_collections
from evals.fingerprint import fingerprint_diff, platform_fingerprint
from evals.run_store import load_run, load_suite_of
from evals.runner import PlatformAnswerer, run_case

if TYPE_CHECKING:
    from evals.ports import EvalStages


def replay_case(stages: EvalStages, tenant: str, run_id: str, case_id: str) -> dict[str, Any]:
    """Answer the case again in process with the run's recorded suite (its sampling, seed,
    top_k, filter) and compare: the answer byte for byte, the verdict, and every
    difference between the run's configuration fingerprint and the platform's now."""
    run = load_run(stages.engine, tenant, run_id)
    suite = load_suite_of(stages.engine, tenant, run_id)
    try:
        case = suite.case(case_id)
    except KeyError:
        known = ", ".join(c.id for c in suite.cases[:10])
        raise InvalidRequest(
            f"run {run_id} has no case '{case_id}' (its cases: {known}"
            + (", ..." if len(suite.cases) > 10 else "")
            + ")"
        ) from None
    recorded = next((c for c in run.cases if c.case_id == case_id), None)
    default = stages.settings.default_collection
    names = suite_collections(suite, default)
    now_fp = platform_fingerprint(stages, [CollectionKey(tenant, n) for n in names])
    answerer = PlatformAnswerer(stages.query, stages.settings, tenant, default)
    ctx = eval_context(stages, suite)
    result = run_case(case, suite, answerer, ctx)
    before = recorded.answer if recorded else None
    return {
        "run": run_id,
        "case": case_id,
        "identical": recorded is not None and before == result.answer,
        "recorded": before,
        "now": result.answer,
        "passed_before": recorded.passed if recorded else None,
        "passed_now": result.passed,
        "config": fingerprint_diff(run.fingerprint, now_fp),
        "target_was": run.target,
    }
