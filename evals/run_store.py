"""Eval runs in SQL: a run is recorded when it starts and each case as it finishes, so a
crash keeps what was done and a stopped run shows as failed, never as passed.

    recorder = RunRecorder(engine, suite, "suite.yaml", tenant, target, fingerprint)
    run = run_suite(suite, answerer, ctx, run_id=recorder.run_id, on_case=recorder.case, ...)
    recorder.finish(run)
    load_run(engine, tenant, recorder.run_id)  # the same RunResult, from SQL
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from core import repository
from core.db import EvalRunRow
from evals.fingerprint import Fingerprint, platform_version
from evals.runner import CaseResult, RunResult, new_run_id
from evals.suite import Suite, parse_suite


class RunRecorder:
    """Writes one run to SQL as it goes (one short transaction per case)."""

    def __init__(
        self,
        engine: Engine,
        suite: Suite,
        suite_name: str,
        tenant: str,
        target: str,
        fingerprint: Fingerprint,
        *,
        gate_collection_id: str | None = None,
        run_id: str | None = None,
    ) -> None:
        self._engine = engine
        self.run_id = run_id or new_run_id()
        self._ordinal = {c.id: i for i, c in enumerate(suite.cases)}
        self._done = 0
        self._passed = 0
        with repository.write(engine) as s:
            repository.add_eval_run(
                s,
                id=self.run_id,
                tenant=tenant,
                suite_name=suite_name,
                suite_sha256=suite.sha256,
                suite=suite_mapping(suite),
                target=target,
                status="running",
                platform_version=platform_version(),
                fingerprint=fingerprint,
                summary={},
                n_cases=len(suite.cases),
                gate_collection_id=gate_collection_id,
            )

    def case(self, result: CaseResult) -> None:
        self._done += 1
        self._passed += result.passed
        with repository.write(self._engine) as s:
            repository.add_eval_case(
                s,
                self.run_id,
                result.case_id,
                self._ordinal.get(result.case_id, self._done),
                result.passed,
                result.score,
                result.to_json(),
            )
            repository.update_eval_run(s, self.run_id, n_done=self._done, n_passed=self._passed)

    def finish(self, run: RunResult) -> None:
        with repository.write(self._engine) as s:
            repository.update_eval_run(
                s,
                self.run_id,
                status=run.status,
                summary=run.summary(),
                n_done=len(run.cases),
                n_passed=run.n_passed,
                finished_at=repository.utcnow(),
            )

    def fail(self, error: BaseException) -> None:
        with repository.write(self._engine) as s:
            repository.update_eval_run(
                s,
                self.run_id,
                status="failed",
                error=f"{type(error).__name__}: {error}"[:2000],
                finished_at=repository.utcnow(),
            )


def suite_mapping(suite: Suite) -> dict[str, Any]:
    """The suite as a mapping ``parse_suite`` reads back (what a replay runs)."""
    return suite.model_dump(mode="json", by_alias=True, exclude_defaults=True)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value else None


def run_from_row(row: EvalRunRow, cases: list[CaseResult]) -> RunResult:
    return RunResult(
        id=row.id,
        suite_name=row.suite_name,
        suite_sha256=row.suite_sha256,
        target=row.target,
        tenant=row.tenant,
        fingerprint=dict(row.fingerprint or {}),
        started_at=_iso(row.started_at) or "",
        finished_at=_iso(row.finished_at),
        status=row.status,
        cases=cases,
        n_cases=row.n_cases,
        platform_version=row.platform_version,
        error=row.error,
    )


def load_run(engine: Engine, tenant: str, run_id: str) -> RunResult:
    """A stored run with its cases; ``EvalRunNotFound`` (also for another tenant's run)."""
    with repository.read(engine) as s:
        row = repository.get_eval_run(s, tenant, run_id)
        cases = [CaseResult.from_json(c.result) for c in repository.eval_cases(s, run_id)]
        return run_from_row(row, cases)


def load_suite_of(engine: Engine, tenant: str, run_id: str) -> Suite:
    """The suite a stored run ran (its recorded content)."""
    with repository.read(engine) as s:
        row = repository.get_eval_run(s, tenant, run_id)
        return parse_suite(dict(row.suite), name=f"{row.suite_name} (run {run_id})")


def list_runs(engine: Engine, tenant: str, limit: int = 50) -> list[dict[str, Any]]:
    """The tenant's runs, newest first, as summary rows."""
    with repository.read(engine) as s:
        return [run_row_json(r) for r in repository.list_eval_runs(s, tenant, limit)]


def run_row_json(r: EvalRunRow) -> dict[str, Any]:
    return {
        "id": r.id,
        "suite": r.suite_name,
        "target": r.target,
        "status": r.status,
        "n_cases": r.n_cases,
        "n_done": r.n_done,
        "n_passed": r.n_passed,
        "pass_rate": round(r.n_passed / r.n_done, 4) if r.n_done else None,
        "started_at": _iso(r.started_at),
        "finished_at": _iso(r.finished_at),
        "gate_collection_id": r.gate_collection_id,
        "error": r.error,
    }


def mark_interrupted(engine: Engine) -> int:
    """Runs a crash or a stop left "running" become "failed" (at start-up)."""
    with repository.write(engine) as s:
        ids = [r.id for r in repository.unfinished_eval_runs(s)]
        for run_id in ids:
            repository.update_eval_run(
                s,
                run_id,
                status="failed",
                error="interrupted: the process stopped before the run finished",
                finished_at=repository.utcnow(),
            )
        return len(ids)
