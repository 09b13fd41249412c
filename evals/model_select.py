"""Can the bundled LLM pick answer sentences, or tell answerable questions, better than
the fitted selector and abstention model? Three measured tries on ClapNQ-tune (issue 7).

1. **Constrained choice**: the selector's six best candidates, numbered; the model answers
   with a number only (the argmax over the six number tokens: what a grammar allowing
   only "1".."6" yields at temperature 0). Scored: the pick is an annotator's sentence.
2. **Likelihood**: each of the six scored by the model's mean log-probability of the
   sentence after "Question: …\\nAnswer:" (``cond``), and minus its probability without
   the question (``pmi``); the best one is the pick.
3. **Yes / no verification**: the selected answer and the question, "Does the passage
   answer the question?"; log P(Yes) - log P(No) as an abstention signal, alone (AUC) and
   as a fifteenth question feature (the abstention model cross-validated with and without).

    python -m evals.model_select --data-dir /tmp/fit-data --cache /tmp/fit-rows.pkl [--n 80]

Results: bench/results/answers_clapnq.txt. Nothing here is used by the query path: none
of the three beat the fitted models.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from evals.answer_fit import FitRow, operating_point
from generation.compose import AnswerComposer

CHOICES = 6


class Scorer:
    """Next-token and continuation log-probabilities from a GGUF model (llama-cpp-python)."""

    def __init__(self, model_path: Path, n_threads: int = 2) -> None:
        from llama_cpp import Llama

        # Logits of every position only where needed: on 262k-token vocabularies they
        # cost more than the forward pass of a long prompt.
        self.last = Llama(str(model_path), n_ctx=2048, n_threads=n_threads, verbose=False)
        self.full = Llama(
            str(model_path), n_ctx=2048, n_threads=n_threads, verbose=False, logits_all=True
        )

    @staticmethod
    def _log_softmax(scores: np.ndarray) -> np.ndarray:
        top = scores.max(axis=-1, keepdims=True)
        return scores - (top + np.log(np.exp(scores - top).sum(axis=-1, keepdims=True)))

    def _tok(self, text: str, bos: bool) -> list[int]:
        return list(self.last.tokenize(text.encode(), add_bos=bos, special=False))

    def next_token(self, prompt: str, options: Sequence[str]) -> dict[str, float]:
        """log P(option's first token | prompt), the best of "X" and " X"."""
        self.last.reset()
        self.last.eval(self._tok(prompt, True)[-2000:])
        n_vocab = self.last.n_vocab()
        raw = np.ctypeslib.as_array(self.last._ctx.get_logits(), shape=(n_vocab,))
        lp = self._log_softmax(raw.astype(np.float64))
        return {o: max(float(lp[self._tok(v, False)[0]]) for v in (o, " " + o)) for o in options}

    def continuation(self, prefix: str, text: str) -> float:
        """Mean log-probability of ``text``'s tokens after ``prefix``."""
        p, c = self._tok(prefix, True), self._tok(text, False)
        toks = (p + c)[:2000]
        self.full.reset()
        self.full.eval(toks)
        lp = self._log_softmax(np.asarray(self.full.scores[: len(toks)], dtype=np.float64))
        return float(np.mean([lp[i - 1, toks[i]] for i in range(len(p), len(toks))]))


def _question(q: str) -> str:
    return q if q.rstrip().endswith("?") else q.rstrip() + "?"


def run(rows: Sequence[FitRow], scorer: Scorer, n_likelihood: int) -> dict[str, Any]:
    composer = AnswerComposer.default()
    choice_hits: list[bool] = []
    sel_hits: list[bool] = []
    lik: dict[str, list[bool]] = {"cond": [], "pmi": [], "selector": []}
    verify, labels, qx = [], [], []
    for row in rows:
        items = row.cands.items
        if not items:
            continue
        sel = composer.select(row.cands)
        q = _question(row.case.question)
        answer = " ".join(items[j].text for j in sel.chosen)
        yes_no = scorer.next_token(
            f"Passage: {answer}\n\nQuestion: {q}\n"
            "Does the passage answer the question? Answer Yes or No.\nAnswer:",
            ("Yes", "No"),
        )
        verify.append(yes_no["Yes"] - yes_no["No"])
        labels.append(not row.case.answerable)
        qx.append(composer.question_features(row.cands, sel))
        if not row.case.answerable:
            continue
        order = [int(j) for j in np.argsort(-sel.proba, kind="stable")[:CHOICES]]
        listing = "\n".join(f"{k}. {items[j].text}" for k, j in enumerate(order, 1))
        nums = [str(k) for k in range(1, len(order) + 1)]
        picked = scorer.next_token(
            f"Sentences:\n{listing}\n\nQuestion: {q}\n"
            "Which sentence answers the question best? Answer with its number.\nAnswer:",
            nums,
        )
        choice = order[int(max(picked, key=lambda k: picked[k])) - 1]
        choice_hits.append(bool(row.labels[choice]))
        sel_hits.append(bool(row.labels[order[0]]))
        if len(lik["selector"]) < n_likelihood:
            cond = [
                scorer.continuation(f"Question: {q}\nAnswer:", " " + items[j].text) for j in order
            ]
            bare = [scorer.continuation("Text:", " " + items[j].text) for j in order]
            lik["cond"].append(bool(row.labels[order[int(np.argmax(cond))]]))
            pmi = np.array(cond) - np.array(bare)
            lik["pmi"].append(bool(row.labels[order[int(np.argmax(pmi))]]))
            lik["selector"].append(bool(row.labels[order[0]]))
    y = np.array(labels)
    v = np.array(verify)
    x = np.vstack(qx)
    return {
        "choice": (float(np.mean(choice_hits)), float(np.mean(sel_hits)), len(choice_hits)),
        "likelihood": {k: float(np.mean(h)) for k, h in lik.items()} | {"n": len(lik["cond"])},
        "verify_auc": _auc(y, -v),
        "cv_without": _cv(x, y),
        "cv_with": _cv(np.column_stack([x, v]), y),
    }


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score))


def _cv(x: np.ndarray, y: np.ndarray, seeds: Sequence[int] = (0, 1, 2)) -> dict[str, float]:
    """Abstention F1 and answered share out of fold (operating point at precision 0.8
    chosen on the training folds), mean over seeds. The selector is the shipped one."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    f1s, answered = [], []
    for seed in seeds:
        pred = np.zeros(len(y), dtype=bool)
        for tr, te in StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y):
            scaler = StandardScaler().fit(x[tr])
            lr = LogisticRegression(max_iter=2000, class_weight="balanced")
            lr.fit(scaler.transform(x[tr]), y[tr])
            t = operating_point(lr.predict_proba(scaler.transform(x[tr]))[:, 1], y[tr], 0.8)
            pred[te] = lr.predict_proba(scaler.transform(x[te]))[:, 1] >= t
        tp = float((pred & y).sum())
        p, r = tp / max(pred.sum(), 1), tp / max(y.sum(), 1)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
        answered.append(1.0 - float((pred & ~y).sum()) / max((~y).sum(), 1))
    return {"abstention_f1": float(np.mean(f1s)), "answered": float(np.mean(answered))}


def main(argv: Sequence[str] | None = None) -> int:
    from core.settings import Settings
    from evals.answer_fit import main as fit_main
    from generation.models import bundled_path

    ap = argparse.ArgumentParser(prog="python -m evals.model_select", description=__doc__)
    ap.add_argument("--data-dir", type=Path, default=Path("data"))
    ap.add_argument("--cache", type=Path, required=True, help="answer_fit's candidate cache")
    ap.add_argument("--n", type=int, default=80, help="answerable questions for the likelihood")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if not args.cache.is_file():  # collect (and cross-validate) once, as answer_fit does
        fit_main(["--data-dir", str(args.data_dir), "--cache", str(args.cache)])
    import pickle

    with args.cache.open("rb") as f:
        rows = pickle.load(f)
    scorer = Scorer(bundled_path("gemma3-270m", Settings().models_dir), args.threads)
    t0 = time.perf_counter()
    res = run(rows, scorer, args.n)
    ch, sel, n = res["choice"]
    print(
        f"constrained choice among the selector's {CHOICES} best (answerable n={n}): "
        f"an annotator's sentence {ch:.3f}, the selector's first {sel:.3f}"
    )
    lk = res["likelihood"]
    print(
        f"likelihood pick (n={lk['n']}): cond {lk['cond']:.3f}, pmi {lk['pmi']:.3f}, "
        f"selector {lk['selector']:.3f}"
    )
    print(f"yes/no verification: AUC {res['verify_auc']:.3f} (unanswerable positive)")
    print(f"abstention out of fold without it: {res['cv_without']}")
    print(f"abstention out of fold with it:    {res['cv_with']}")
    print(f"({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
