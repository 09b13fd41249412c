"""Changes that go live only when their suite passes.

A collection can have a gate: a suite and a minimum pass rate, stored with it. A change
to a gated collection (an ingest, an upload, a delete) is made on a candidate version
beside the live one; the suite runs against the candidate; the candidate replaces the
live version when it passes and is discarded when it fails.

    set_gate(platform, key, suite_mapping, "suite.yaml", min_pass_rate=0.9)
    outcome = gated_change(platform, key, lambda k: platform.ingest.ingest_paths([p], k))
    outcome.accepted, outcome.run.pass_rate, outcome.result   # the change's own result
    rollback(platform, key)                                    # back to the version before

Versions are collections of the same tenant named ``<name>~candidate`` and
``<name>~previous`` ("~" is outside the collection name rule: no request can name them,
listings leave them out). The candidate is a copy of the live version's SQL rows (texts
and stored embeddings, nothing re-embedded) with its own indexes. Queries resolve the
live name on every request, so they are served from the live version the whole time.
Promotion renames the versions in one SQL transaction, so a crash at any point leaves
exactly one of them live: before the commit the old one, after it the new one. A
candidate a crash left behind is discarded by the next gated change of that collection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from core import repository
from core.errors import InvalidRequest, RagError
from core.types import CollectionKey, require_key
from evals.batch import execute_run
from evals.runner import RunResult
from evals.suite import parse_suite

if TYPE_CHECKING:
    from evals.ports import EvalStages

T = TypeVar("T")

CANDIDATE, PREVIOUS = "candidate", "previous"

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


class GateRefused(RagError):
    """The candidate failed the collection's suite: the change was discarded."""

    code = "gate_refused"
    http_status = 409


class NoPreviousVersion(RagError):
    code = "no_previous_version"
    http_status = 409


def _lock(key: CollectionKey) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((key.tenant, key.name), threading.Lock())


@dataclass(frozen=True)
class GateOutcome(Generic[T]):
    """What a change to a collection did: ``accepted`` (live now) or refused with the
    failing cases in ``run``; ``gated`` False: the collection has no gate (applied)."""

    accepted: bool
    gated: bool
    result: T
    run: RunResult | None = None
    min_pass_rate: float | None = None

    @property
    def reasons(self) -> list[str]:
        if self.run is None or self.accepted:
            return []
        failing = [c.case_id for c in self.run.cases if not c.passed]
        shown = ", ".join(failing[:10]) + (" ..." if len(failing) > 10 else "")
        return [
            f"the candidate passed {self.run.pass_rate:.1%} of suite {self.run.suite_name}, "
            f"under the gate's {self.min_pass_rate:.1%} (failing: {shown}; run {self.run.id})"
        ]


def get_gate(stages: EvalStages, key: CollectionKey) -> dict[str, Any] | None:
    with repository.read(stages.engine) as s:
        gate = repository.get_collection(s, require_key(key)).gate
        return dict(gate) if gate else None


def set_gate(
    stages: EvalStages,
    key: CollectionKey,
    suite: Mapping[str, Any] | None,
    suite_name: str = "",
    min_pass_rate: float = 1.0,
) -> None:
    """Give the collection a gate (``suite`` None: remove it). The suite is validated and
    stored with the collection, so later edits of its file do not change the gate."""
    if suite is not None:
        if not 0.0 <= min_pass_rate <= 1.0:
            raise InvalidRequest(f"the minimum pass rate must be in [0, 1], not {min_pass_rate}")
        parsed = parse_suite(dict(suite), suite_name or "<gate>")
        gate: dict[str, Any] | None = {
            "suite_name": suite_name,
            "suite": parsed.model_dump(mode="json", by_alias=True, exclude_defaults=True),
            "suite_sha256": parsed.sha256,
            "min_pass_rate": min_pass_rate,
        }
    else:
        gate = None
    with repository.write(stages.engine) as s:
        repository.set_gate(s, require_key(key), gate)


def gated_change(
    stages: EvalStages,
    key: CollectionKey,
    change: Callable[[CollectionKey], T],
    *,
    progress: Callable[[int, int], None] | None = None,
) -> GateOutcome[T]:
    """Apply ``change`` (given the collection key to change) to ``key``: directly when the
    collection has no gate (or does not exist yet), else on a candidate version that goes
    live only when the gate's suite passes on it."""
    require_key(key)
    with repository.read(stages.engine) as s:
        row = repository.find_collection(s, key)
        gate = dict(row.gate) if row is not None and row.gate else None
    if gate is None:
        return GateOutcome(True, False, change(key))
    with _lock(key):
        cand = key.version(CANDIDATE)
        _discard(stages, cand)  # a candidate a crash left behind
        with repository.write(stages.engine) as s:
            live = repository.get_collection(s, key)
            cand_id = repository.copy_collection(s, live.id, cand).id
            live_id = live.id
        try:
            stages.store.repair_collection(stages.engine, cand_id)
            result = change(cand)
            suite = parse_suite(gate["suite"], gate.get("suite_name") or "<gate>")
            run = execute_run(
                stages,
                suite,
                gate.get("suite_name") or "<gate>",
                tenant=key.tenant,
                progress=progress,
                collection_map={key.name: cand},
                gate_collection_id=live_id,
            )
        except BaseException:
            _discard(stages, cand)
            raise
        floor = float(gate.get("min_pass_rate", 1.0))
        if run.pass_rate + 1e-9 < floor:
            _discard(stages, cand)
            return GateOutcome(False, True, result, run, floor)
        _promote(stages, key, cand)
        return GateOutcome(True, True, result, run, floor)


def _discard(stages: EvalStages, key: CollectionKey) -> None:
    with repository.read(stages.engine) as s:
        exists = repository.find_collection(s, key) is not None
    if exists:
        stages.ingest.delete_collection(key)


def _promote(stages: EvalStages, key: CollectionKey, cand: CollectionKey) -> None:
    """One transaction: the old previous version goes, live becomes previous, the
    candidate becomes live. Index folders are per collection id: nothing moves on disk."""
    prev = key.version(PREVIOUS)
    dropped: str | None = None
    with repository.write(stages.engine) as s:
        old_prev = repository.find_collection(s, prev)
        if old_prev is not None:
            dropped = old_prev.id
            repository.delete_collection_rows(s, old_prev.id)
            s.flush()
        live = repository.get_collection(s, key)
        candidate = repository.get_collection(s, cand)
        repository.rename_collection(s, live.id, prev.name)
        repository.rename_collection(s, candidate.id, key.name)
        repository.move_answers(s, live.id, candidate.id)  # conversations stay live
    if dropped is not None:
        stages.store.drop_collection(dropped)


def rollback(stages: EvalStages, key: CollectionKey) -> None:
    """Make the version before the last promotion live again (and the current one the
    previous: a second rollback undoes the first)."""
    require_key(key)
    prev = key.version(PREVIOUS)
    swap = key.version("swap")
    with _lock(key), repository.write(stages.engine) as s:
        old = repository.find_collection(s, prev)
        if old is None:
            raise NoPreviousVersion(
                f"collection '{key.name}' has no previous version to return to "
                "(one exists after a gated change went live)"
            )
        live = repository.get_collection(s, key)
        repository.rename_collection(s, live.id, swap.name)
        repository.rename_collection(s, old.id, key.name)
        repository.rename_collection(s, live.id, prev.name)
        repository.move_answers(s, live.id, old.id)


def gated_delete(stages: EvalStages, key: CollectionKey, document_id: str) -> GateOutcome[None]:
    """Delete a document through the gate. A candidate copy gives documents new ids, so
    the document is found in the candidate by its source."""
    with repository.read(stages.engine) as s:
        live = repository.get_collection(s, require_key(key))
        source = repository.get_document(s, live.id, document_id).source

    def delete(k: CollectionKey) -> None:
        if k == key:
            stages.ingest.delete_document(k, document_id)
            return
        with repository.read(stages.engine) as s:
            doc = repository.find_document(s, repository.get_collection(s, k).id, source)
        if doc is not None:
            stages.ingest.delete_document(k, doc.id)

    return gated_change(stages, key, delete)


def delete_collection(stages: EvalStages, key: CollectionKey) -> None:
    """Delete a collection with its hidden versions (candidate, previous)."""
    with _lock(require_key(key)):
        for label in (CANDIDATE, PREVIOUS):
            _discard(stages, key.version(label))
        stages.ingest.delete_collection(key)
