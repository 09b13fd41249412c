"""What an answer depends on, as one comparable JSON object: the configuration fingerprint.

A stored eval run keeps the fingerprint it ran under; a server exposes its own
(``GET /v1/fingerprint``), so a run against it, a replay or a diff can say exactly what
differs (another model file, chunk size, fusion, a re-indexed collection, ...).

    fp = platform_fingerprint(platform, [CollectionKey("acme", "docs")])
    fingerprint_diff(stored_fp, fp)  # ["llm.model_sha256: 3fa1… -> 9b2c…", ...]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from core import repository
from core.types import CollectionKey
from evals.retrieval_eval import describe_fusion

if TYPE_CHECKING:
    from evals.ports import EvalStages

Fingerprint = dict[str, Any]


def platform_version() -> str:
    try:
        return metadata.version("rag-platform")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


def _digest(value: Any) -> str:
    canon = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def platform_fingerprint(stages: EvalStages, collections: Iterable[CollectionKey]) -> Fingerprint:
    """The settings that affect answers, the model file's sha256, and per collection its
    index content (a digest of its ready chunk ids: any re-index changes it), chunking
    recipes and answer models. Collections that do not exist are listed as absent."""
    s = stages.settings
    info = stages.llm.info
    fp: Fingerprint = {
        "platform_version": platform_version(),
        "llm": {
            "model": info.name,
            "model_path": info.path,
            "model_sha256": info.sha256,
            "prompt_style": s.llm.prompt_style or "model default",
            "n_ctx": s.llm.n_ctx,
            "max_tokens": s.llm.max_tokens,
        },
        "embedding_model": stages.embedder.model_path,  # the bundled default resolved
        "retrieval": s.retrieval.model_dump(mode="json"),
        "guards": s.guards.model_dump(mode="json"),
        "collections": {},
    }
    with repository.read(stages.engine) as db:
        for key in sorted(set(collections), key=lambda k: (k.tenant, k.name)):
            row = repository.find_collection(db, key)
            if row is None:
                fp["collections"][key.name] = None
                continue
            state = repository.collection_state(db, row.id)
            fp["collections"][key.name] = {
                "documents": state["documents"],
                "chunks": state["chunks"],
                "index": state["chunk_digest"],
                "recipes": state["recipes"],
                "fusion": describe_fusion(stages.retriever.fusion_for(row)),
                "answer_models": _digest(row.answer_models) if row.answer_models else "default",
                # the content-check policy's differences from the defaults (a readable diff)
                "policy": dict(row.policy or {}),
            }
    return fp


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


def _short(v: Any) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 60 else text[:57] + "..."


def fingerprint_diff(before: Fingerprint | None, after: Fingerprint | None) -> list[str]:
    """Every leaf that differs, as "path: before -> after" (empty: the same configuration).
    ``platform_version`` differences are listed too; a missing side lists nothing."""
    if not before or not after:
        return []
    a, b = _flatten(before), _flatten(after)
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "(absent)"), b.get(key, "(absent)")
        if va != vb:
            out.append(f"{key}: {_short(va)} -> {_short(vb)}")
    return out
