"""Measure the PII check (generation/checks/pii.py) on the labelled sample and on ordinary
text; writes the table to bench/results/pii.txt.

    OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 python -m evals.pii_eval [--out bench/results/pii.txt]

Rows: span precision / recall per entity and overall on the tuning and held-out halves
of evals/labelled/pii-sample.jsonl (a span counts when it overlaps a gold span with the
same label; also label-agnostic); a min_score sweep on the tuning half (how the default
was chosen); the false-flag rate (share of texts with any finding) on the negatives
(SciFact abstracts, SQuAD paragraphs, look-alikes) and on 1,000 SQuAD dev paragraphs;
latency per text (mean / median / p95) with the share of texts the prefilter lets through
to presidio; the load time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from evals.datasets import default_datasets_dir
from generation.checks.base import Finding, Stage
from generation.checks.pii import DEFAULT_ENTITIES, DEFAULT_MIN_SCORE, PiiCheck

SAMPLE = Path(__file__).resolve().parent / "labelled" / "pii-sample.jsonl"
OUT = Path(__file__).resolve().parents[1] / "bench" / "results" / "pii.txt"
SWEEP = (0.3, 0.4, 0.5, 0.6, 0.7, 0.85)

Gold = list[tuple[int, int, str]]


def load_sample(path: Path = SAMPLE) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def squad_paragraphs(n: int = 1000) -> list[str]:
    path = default_datasets_dir() / "squad-v1.1-dev" / "dev-v1.1.json"
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paras = [p["context"] for art in data for p in art["paragraphs"]]
    return paras[:n]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class Tally:
    """Span counts per label: predictions matched / all, gold found / all."""

    def __init__(self) -> None:
        self.pred: Counter[str] = Counter()
        self.pred_ok: Counter[str] = Counter()
        self.gold: Counter[str] = Counter()
        self.gold_ok: Counter[str] = Counter()
        self.any_pred_ok = 0
        self.any_gold_ok = 0

    def add(self, gold: Gold, finding: Finding) -> None:
        preds = [(a, b, lab) for (a, b), lab in zip(finding.spans, finding.labels, strict=True)]
        for a, b, lab in preds:
            self.pred[lab] += 1
            self.pred_ok[lab] += any(g[2] == lab and _overlap((a, b), g[:2]) for g in gold)
            self.any_pred_ok += any(_overlap((a, b), g[:2]) for g in gold)
        for a, b, lab in gold:
            self.gold[lab] += 1
            self.gold_ok[lab] += any(p[2] == lab and _overlap((a, b), p[:2]) for p in preds)
            self.any_gold_ok += any(_overlap((a, b), p[:2]) for p in preds)

    def pr(self, label: str | None = None, agnostic: bool = False) -> tuple[float, float, int, int]:
        if label is not None:
            p_n, p_ok, g_n, g_ok = (
                self.pred[label],
                self.pred_ok[label],
                self.gold[label],
                self.gold_ok[label],
            )
        elif agnostic:
            p_n, p_ok = sum(self.pred.values()), self.any_pred_ok
            g_n, g_ok = sum(self.gold.values()), self.any_gold_ok
        else:
            p_n, p_ok = sum(self.pred.values()), sum(self.pred_ok.values())
            g_n, g_ok = sum(self.gold.values()), sum(self.gold_ok.values())
        prec = p_ok / p_n if p_n else float("nan")
        rec = g_ok / g_n if g_n else float("nan")
        return prec, rec, p_n, g_n


def _gold(row: dict) -> Gold:
    return [(e["start"], e["end"], e["label"]) for e in row["entities"]]


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def _timed(check: PiiCheck, texts: Sequence[str], stage: Stage = Stage.DOCUMENT) -> list[float]:
    out = []
    for text in texts:
        t = time.perf_counter_ns()
        check.inspect(text, stage)
        out.append((time.perf_counter_ns() - t) / 1e6)
    return out


def _lat(ms: Sequence[float]) -> str:
    s = sorted(ms)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    return f"mean {statistics.fmean(s):.3f}  median {statistics.median(s):.3f}  p95 {p95:.3f} ms"


def run(out: Path) -> str:
    lines: list[str] = []
    w = lines.append
    rows = load_sample()
    t0 = time.perf_counter()
    check = PiiCheck()
    check.warm_up()
    load_s = time.perf_counter() - t0

    findings = {row["id"]: check.inspect(row["text"], Stage.DOCUMENT) for row in rows}

    w("PII check (generation/checks/pii.py): presidio-analyzer pattern recognizers, offline")
    w(
        f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start "
        f"(other engineers' jobs), Python {sys.version.split()[0]}"
    )
    w(f"entities: {', '.join(DEFAULT_ENTITIES)}; min_score {DEFAULT_MIN_SCORE}")
    w(
        f"sample: {SAMPLE.relative_to(OUT.parents[2])}: {len(rows)} texts, "
        f"{sum(r['kind'] == 'positive' for r in rows)} generated with PII "
        f"({sum(len(r['entities']) for r in rows)} spans), "
        f"{sum(r['kind'] == 'ordinary' for r in rows)} SciFact/SQuAD texts "
        f"+ {sum(r['kind'] == 'real' for r in rows)} SciFact abstracts with real e-mail "
        "addresses / phone numbers (labelled by hand), "
        f"{sum(r['kind'] == 'lookalike' for r in rows)} look-alikes; "
        "halves split by template family"
    )
    w(
        "span match: a predicted span overlapping a gold span with the same label "
        "(label-agnostic: any label)"
    )
    w("")

    for half in ("tune", "heldout"):
        tally = Tally()
        for row in rows:
            if row["half"] == half:
                tally.add(_gold(row), findings[row["id"]])
        w(f"== {half} half: span precision / recall per entity")
        w(f"{'entity':<28}{'precision':>10}{'recall':>9}{'pred':>7}{'gold':>7}")
        for label in sorted(set(tally.gold) | set(tally.pred)):
            p, r, pn, gn = tally.pr(label)
            w(f"{label:<28}{p:>10.3f}{r:>9.3f}{pn:>7}{gn:>7}")
        p, r, pn, gn = tally.pr()
        w(f"{'ALL (same label)':<28}{p:>10.3f}{r:>9.3f}{pn:>7}{gn:>7}   F1 {_f1(p, r):.3f}")
        p, r, pn, gn = tally.pr(agnostic=True)
        w(f"{'ALL (label-agnostic)':<28}{p:>10.3f}{r:>9.3f}{pn:>7}{gn:>7}   F1 {_f1(p, r):.3f}")
        w("")

    tally = Tally()
    for row in rows:
        if row["kind"] == "real":
            tally.add(_gold(row), findings[row["id"]])
    w("== real text: the SciFact abstracts with authors' contacts (hand-labelled, both halves)")
    for label in sorted(set(tally.gold) | set(tally.pred)):
        p, r, pn, gn = tally.pr(label)
        w(f"{label:<28}{p:>10.3f}{r:>9.3f}{pn:>7}{gn:>7}")
    w("")

    w("== false-flag rate (share of texts with any finding) on the texts without PII")
    for kind, fam in (("ordinary", "scifact"), ("ordinary", "squad"), ("lookalike", None)):
        for half in ("tune", "heldout"):
            sel = [
                r
                for r in rows
                if r["kind"] == kind
                and r["half"] == half
                and (fam is None or r["family"] == fam)
                and not r["entities"]
            ]
            flagged = [r for r in sel if findings[r["id"]].flagged]
            name = fam or kind
            rate = len(flagged) / len(sel)
            w(f"{name:<12}{half:<9}{len(flagged):>4} / {len(sel):<4} = {rate:.3f}")
    squad = squad_paragraphs(1000)
    sq_findings = [check.inspect(t, Stage.DOCUMENT) for t in squad]
    sq_flagged = [(t, f) for t, f in zip(squad, sq_findings, strict=True) if f.flagged]
    w(
        f"{'SQuAD dev, first 1000 paragraphs':<34}{len(sq_flagged):>4} / {len(squad)} = "
        f"{len(sq_flagged) / len(squad):.3f}"
    )
    w("")
    w("found spans with no gold span of their label (all texts of the sample, then the")
    w("1000 SQuAD paragraphs):")
    for row in rows:
        f = findings[row["id"]]
        gold = _gold(row)
        for (a, b), lab in zip(f.spans, f.labels, strict=True):
            if not any(g[2] == lab and _overlap((a, b), g[:2]) for g in gold):
                ctx = row["text"][max(0, a - 30) : a]
                w(f"  [{row['half']}] {lab:<16}{row['text'][a:b]!r}  after {ctx!r}")
    for text, f in sq_flagged:
        for (a, b), lab in zip(f.spans, f.labels, strict=True):
            w(f"  [squad] {lab:<16}{text[a:b]!r}  after {text[max(0, a - 30) : a]!r}")
    w("")
    w("missed or mislabelled gold spans (both halves):")
    for row in rows:
        f = findings[row["id"]]
        preds = list(zip(f.spans, f.labels, strict=True))
        for a, b, lab in _gold(row):
            hit = [pl for (pa, pb), pl in preds if _overlap((a, b), (pa, pb))]
            if lab not in hit:
                got = f" (found as {', '.join(hit)})" if hit else ""
                w(f"  [{row['half']}] {lab:<16}{row['text'][a:b]!r}{got}")
    w("")

    w("== min_score sweep on the tuning half (how the default was chosen)")
    w(f"{'min_score':<11}{'precision':>10}{'recall':>9}{'F1':>8}{'neg flag rate':>15}")
    tune_rows = [r for r in rows if r["half"] == "tune"]
    for ms in SWEEP:
        c = PiiCheck(min_score=ms)
        tally = Tally()
        neg_n = neg_flag = 0
        for row in tune_rows:
            f = c.inspect(row["text"], Stage.DOCUMENT)
            tally.add(_gold(row), f)
            if not row["entities"]:
                neg_n += 1
                neg_flag += f.flagged
        p, r, _, _ = tally.pr()
        w(f"{ms:<11}{p:>10.3f}{r:>9.3f}{_f1(p, r):>8.3f}{neg_flag / neg_n:>15.3f}")
    w("")

    w("== latency per text (inspect, presidio loaded; 2-core machine, other jobs running)")
    lens = [len(t) for t in squad]
    passed = sum(bool(check.candidates(t)) for t in squad)
    for _ in range(2):  # warm caches
        _timed(check, squad[:50])
    lat = _timed(check, squad)
    w(
        f"SQuAD dev 1000 paragraphs (mean {statistics.fmean(lens):.0f} chars): {_lat(lat)}; "
        f"{passed / len(squad):.1%} reach presidio"
    )
    long_chunks = [" ".join(squad[i : i + 2])[:1000] for i in range(0, 1000, 2)]
    lat = _timed(check, long_chunks)
    passed = sum(bool(check.candidates(t)) for t in long_chunks)
    w(
        f"SQuAD 500 chunks of 1000 chars (two paragraphs joined, cut): {_lat(lat)}; "
        f"{passed / len(long_chunks):.1%} reach presidio"
    )
    skipped = [t for t in long_chunks if not check.candidates(t)]
    w(f"  of which the {len(skipped)} the prefilter skips: {_lat(_timed(check, skipped))}")
    texts = [r["text"] for r in rows]
    lat = _timed(check, texts)
    passed = sum(bool(check.candidates(t)) for t in texts)
    w(f"the sample, {len(texts)} texts: {_lat(lat)}; {passed / len(texts):.1%} reach presidio")
    pos = [r["text"] for r in rows if r["entities"]]
    w(f"the sample's texts with PII only ({len(pos)}): {_lat(_timed(check, pos))}")
    w(f"first use (imports presidio, spaCy, torch via thinc; builds the engines): {load_s:.1f} s")
    w("")
    w("reproduce:")
    w("  HF_HUB_OFFLINE=1 .venv/bin/python -m evals.make_pii_sample   # rebuilds the sample")
    w("  OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 .venv/bin/python -m evals.pii_eval")
    text = "\n".join(lines) + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    print(run(args.out), end="")


if __name__ == "__main__":
    main()
