"""Follow-up questions with and without rewriting: none vs rules vs model.

    python bench/followup_rewrite.py --data-dir /tmp/followups   # ingests examples/ first

For every case of evals/labelled/followups.jsonl (earlier turns, a follow-up, the
documents that answer it) the follow-up is rewritten by each rewriter and retrieved
with the real hybrid retriever over examples/. Prints, per rewriter, hit@1 and hit@5
(the expected document among the first 1 / 5 chunks' documents), MRR of the expected
document and the rewrite's median latency, then each case's rewritten question; writes
the table to bench/results/followup_rewrite.txt.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.platform import Platform  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.types import CollectionKey, Query  # noqa: E402
from generation.rewrite import RewriteKind, Turn, build_rewriter  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CASES = ROOT / "evals" / "labelled" / "followups.jsonl"
RESULT = ROOT / "bench" / "results" / "followup_rewrite.txt"
KINDS: tuple[RewriteKind, ...] = ("none", "rules", "model")


@dataclass(frozen=True)
class Case:
    id: str
    history: list[Turn]
    followup: str
    expected: list[str]


@dataclass(frozen=True)
class Outcome:
    rank: int | None  # of the expected document's first chunk, 1-based
    ms: float
    text: str


def load_cases(path: Path = CASES) -> list[Case]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [
        Case(
            r["id"],
            [Turn(t["question"], t["answer"]) for t in r["history"]],
            r["followup"],
            r["expected_sources"],
        )
        for r in rows
    ]


def run(
    platform: Platform, key: CollectionKey, kind: RewriteKind, cases: list[Case]
) -> list[Outcome]:
    rewriter = build_rewriter(kind, platform.llm if kind == "model" else None)
    out = []
    for case in cases:
        t = time.perf_counter()
        rewrite = rewriter.rewrite(case.followup, case.history)
        ms = (time.perf_counter() - t) * 1000
        chunks = platform.retriever.retrieve(Query(rewrite.text, key, top_k=5))
        sources = [Path(sc.chunk.source).name for sc in chunks]
        rank = next((i + 1 for i, s in enumerate(sources) if s in case.expected), None)
        out.append(Outcome(rank, ms, rewrite.text))
    return out


def table(results: dict[RewriteKind, list[Outcome]]) -> str:
    lines = [f"{'rewrite':<8} {'hit@1':>6} {'hit@5':>6} {'MRR':>6} {'median ms':>10} {'max ms':>8}"]
    for kind, outs in results.items():
        n = len(outs)
        hit1 = sum(o.rank == 1 for o in outs) / n
        hit5 = sum(o.rank is not None for o in outs) / n
        mrr = sum(1 / o.rank for o in outs if o.rank) / n
        ms = [o.ms for o in outs]
        lines.append(
            f"{kind:<8} {hit1:6.3f} {hit5:6.3f} {mrr:6.3f} "
            f"{statistics.median(ms):10.1f} {max(ms):8.1f}"
        )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--collection", default="followups")
    args = ap.parse_args()
    platform = Platform(Settings(data_dir=args.data_dir))
    platform.startup()
    key = CollectionKey("default", args.collection)
    platform.ingest.ingest_paths([ROOT / "examples"], key)  # unchanged: no work
    platform.warm_up()
    cases = load_cases()
    results = {kind: run(platform, key, kind, cases) for kind in KINDS}
    summary = table(results)
    detail = [
        f"\n{len(cases)} follow-ups ({CASES.relative_to(ROOT)}), rank of the expected document:"
    ]
    for i, case in enumerate(cases):
        detail.append(f"- {case.id}: {case.followup!r}")
        for kind in KINDS:
            o = results[kind][i]
            detail.append(f"    {kind:<5} rank {o.rank or '-'}  {o.text!r}")
    text = summary + "\n" + "\n".join(detail) + "\n"
    print(text)
    RESULT.write_text("python bench/followup_rewrite.py --data-dir DIR\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
