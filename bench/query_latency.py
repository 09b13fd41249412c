"""Query latency split into retrieve and generate, on a warm platform.

    python bench/query_latency.py --data-dir /tmp/lat     # ingests examples/ first if empty

Prints one row a question and the median / max of each timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.platform import Platform  # noqa: E402
from core.settings import Settings  # noqa: E402

QUESTIONS = [
    "How large can an uploaded file be?",
    "What happens when I ingest a file that has not changed?",
    "Which embedding model is used?",
    "How do I delete a document?",
    "Which language model does the platform use?",
    "What is the default chunk size?",
    "Can I use PostgreSQL?",
    "Who won the 2018 football world cup?",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--collection", default="default")
    args = ap.parse_args()
    platform = Platform(Settings(data_dir=args.data_dir))
    platform.startup()
    root = Path(__file__).resolve().parents[1]
    platform.ingest.ingest_paths([root / "examples"], args.collection)  # unchanged: no work
    platform.warm_up()
    platform.query.answer(QUESTIONS[0], args.collection)  # first call warms caches
    timings = []
    print(f"{'retrieve ms':>11} {'generate ms':>11} {'total ms':>9}  abstained  question")
    for q in QUESTIONS:
        a = platform.query.answer(q, args.collection)
        t = a.timings
        timings.append(t)
        row = f"{t.retrieve_ms:11.1f} {t.generate_ms:11.1f} {t.total_ms:9.1f}"
        print(f"{row}  {a.abstained!s:9}  {q}")
    for name in ("retrieve_ms", "generate_ms", "total_ms"):
        vals = [getattr(t, name) for t in timings]
        print(f"{name}: median {statistics.median(vals):.1f}, max {max(vals):.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
