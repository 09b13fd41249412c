"""SQuAD answer metrics: the official normalisation, exact match, token F1 and recall.

    squad_f1("the Black Sea [2]", ["Black Sea"])   # -> 1.0 (citations removed first)
    token_recall("Black", ["the Black Sea"])       # -> 0.5 (share of gold tokens said)

Follows the SQuAD v1.1 evaluation script: lower-case, drop punctuation, drop the
articles a/an/the, collapse whitespace; a prediction is scored against each gold
answer and the best score counts.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_CITATION = re.compile(r"\[\s*\d+(?:\s*[,;-]\s*\d+)*\s*\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def strip_citations(text: str) -> str:
    """Remove ``[n]`` / ``[1, 2]`` markers."""
    return _CITATION.sub(" ", text)


def normalize_answer(text: str) -> str:
    text = strip_citations(text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def _one_f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def answer_tokens(text: str) -> list[str]:
    """The tokens F1 and recall count: whitespace tokens of the normalised text."""
    return normalize_answer(text).split()


def _one_recall(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = answer_tokens(prediction), answer_tokens(gold)
    if not gold_tokens:
        return float(not pred_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    return sum(common.values()) / len(gold_tokens)


def token_recall(prediction: str, golds: Sequence[str]) -> float:
    """Share of the gold answer's tokens (with multiplicity) that the prediction contains,
    best over ``golds``: for long gold answers, where a short correct answer has a low F1."""
    return max((_one_recall(prediction, g) for g in golds), default=0.0)


def squad_em(prediction: str, golds: Sequence[str]) -> float:
    return max(
        (float(normalize_answer(prediction) == normalize_answer(g)) for g in golds), default=0.0
    )


def squad_f1(prediction: str, golds: Sequence[str]) -> float:
    return max((_one_f1(prediction, g) for g in golds), default=0.0)


def contains_gold(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when some normalised gold answer appears (word-aligned) in the normalised prediction."""
    pred = f" {normalize_answer(prediction)} "
    return max(
        (float(bool(g) and f" {g} " in pred) for g in (normalize_answer(x) for x in golds)),
        default=0.0,
    )
