"""Model-graded judges, and the check that says whether one can be trusted.

A judge grades an answer against a rubric (``llm-rubric`` assertions). ``LLMJudge`` asks
any ``generation.ports.LLM`` (a GGUF file in process, an OpenAI-compatible endpoint) at
temperature 0 with one fixed prompt: the model's chat template for an instruct model, a
few-shot completion prompt for a base model (the style ``generation.prompt`` measured
best for the model), and reads PASS / FAIL from a few generated tokens. The LLM port
offers no token likelihoods, so the verdict is parsed from text; output naming neither
(or both) verdicts is a failed grade whose reason starts "unparseable judge output".

A judge is trusted only after ``judge_check`` has measured it on labelled examples:
accuracy and Cohen's kappa against the labels (``min_agreement`` of a suite's judge).

    judge = build_judge(JudgeSpec(model_path="smollm2-135m"), settings)   # or a GGUF path
    examples = load_judge_set("evals/labelled/judge-clapnq.jsonl")
    check = judge_check(judge, examples)
    check.accuracy, check.kappa, check.confusion
    pairwise(judge, question, answer_a, answer_b, sources).winner         # "a", "b", None

The labelled set shipped in ``evals/labelled/judge-clapnq.jsonl`` is made from ClapNQ by
``build_judge_set`` (``python -m evals.judge --build-set 60``): a good example is a gold
answer with its own passage; a bad one is another question's gold answer with the
passage, or the gold answer with an unrelated passage. Bring your own labels in the same
JSONL format: ``question``, ``answer``, ``sources`` (list of texts), ``label`` (good/bad).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from core.errors import ContextOverflow, InvalidRequest
from core.types import PromptStyle, SamplingParams
from evals.assertions import Judge
from evals.datasets import _read_jsonl_lines, load_clapnq

if TYPE_CHECKING:
    from core.settings import Settings
    from evals.suite import JudgeSpec
    from generation.ports import LLM

Progress = Callable[[str], None]
Label = Literal["good", "bad"]
LABELS: tuple[Label, Label] = ("good", "bad")
Pick = Literal[1, 2]

UNPARSEABLE = "unparseable judge output"
# The rubric of a judge check: what a "good" label means in the labelled sets.
DEFAULT_RUBRIC = "The answer responds to the question and is supported by the sources."
PAIRWISE_RUBRIC = "The better answer responds to the question using only what the sources say."

# -- the prompt: every word the judge model reads is here ---------------------------------------

JUDGE_INSTRUCTION = (
    "You grade an answer to a question. Read the sources, the question and the answer, "
    "then decide whether the answer meets the rubric. Reply with one word: PASS if it "
    "does, FAIL if it does not."
)
PAIRWISE_INSTRUCTION = (
    "You compare two answers to a question. Read the sources, the question and both "
    "answers, then decide which answer meets the rubric better. Reply with one number: "
    "1 for answer 1, 2 for answer 2."
)
_VERDICT_LABEL = "Verdict:"
_PICK_LABEL = "Better answer:"

# Worked examples for a base model (completion style); made-up passages only.
_GRADE_SHOTS = (
    ("The Danube flows through ten countries and ends in the Black Sea.",),
    "Where does the Danube end?",
    (("It ends in the Black Sea.", "PASS"), ("It ends in the North Sea.", "FAIL")),
)
_PAIR_SHOT = (
    ("The old bridge was rebuilt in stone after a flood in 1850.",),
    "What was the bridge rebuilt in?",
    ("It was rebuilt in wood.", "It was rebuilt in stone after the flood."),
)

_PASS_RE = re.compile(r"\b(pass|passes|passed|yes|good|correct)\b", re.IGNORECASE)
_FAIL_RE = re.compile(
    r"\b(fail|fails|failed|no|bad|incorrect|wrong|unsupported|not supported)\b", re.IGNORECASE
)
_PICK_RE = re.compile(r"\b(?:answer\s*)?([12])\b", re.IGNORECASE)
_WS = re.compile(r"\s+")

_MAX_SOURCES = 5
_SOURCE_CHARS = 1500  # first cut of each source; shrunk further until the prompt fits
_MIN_SOURCE_CHARS = 80


def _one_line(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _cut(text: str, chars: int) -> str:
    if len(text) <= chars:
        return text
    head = text[:chars].rsplit(" ", 1)[0]
    return head + " …"


def _sources_block(sources: Sequence[str]) -> str:
    if not sources:
        return "(no sources)"
    return "\n".join(f"[{i}] {s}" for i, s in enumerate(sources, 1))


def _case_block(sources: Sequence[str], question: str, body: str, rubric: str) -> str:
    return (
        f"Sources:\n{_sources_block(sources)}\nQuestion: {_one_line(question)}\n"
        f"{body}\nRubric: {_one_line(rubric)}\n"
    )


def _grade_body(answer: str) -> str:
    return f"Answer: {_one_line(answer)}"


def _pair_body(first: str, second: str) -> str:
    return f"Answer 1: {_one_line(first)}\nAnswer 2: {_one_line(second)}"


def _grade_shots(rubric: str) -> str:
    sources, question, graded = _GRADE_SHOTS
    return "".join(
        _case_block(sources, question, _grade_body(a), rubric) + f"{_VERDICT_LABEL} {v}\n\n"
        for a, v in graded
    )


def _pair_shots(rubric: str) -> str:
    sources, question, (worse, better) = _PAIR_SHOT
    return (
        _case_block(sources, question, _pair_body(worse, better), rubric)
        + f"{_PICK_LABEL} 2\n\n"
        + _case_block(sources, question, _pair_body(better, worse), rubric)
        + f"{_PICK_LABEL} 1\n\n"
    )


# -- verdicts from text -------------------------------------------------------------------------


def parse_verdict(text: str) -> bool | None:
    """PASS (True) / FAIL (False) from a judge's output; None when it names neither or
    both (e.g. it repeats "PASS or FAIL")."""
    said_pass, said_fail = bool(_PASS_RE.search(text)), bool(_FAIL_RE.search(text))
    if said_pass == said_fail:
        return None
    return said_pass


def parse_pick(text: str) -> Pick | None:
    """1 or 2 from a pairwise judge's output; None when it names neither or both."""
    picks = {int(m.group(1)) for m in _PICK_RE.finditer(text)}
    if len(picks) != 1:
        return None
    return 1 if picks == {1} else 2


def _shown(text: str, limit: int = 40) -> str:
    text = _one_line(text)
    return repr(text if len(text) <= limit else text[:limit] + "…")


# -- the judges ---------------------------------------------------------------------------------


class PairJudge(Protocol):
    """A model that says which of two answers meets a rubric better: 1, 2, or None when
    its output names neither (with the reason)."""

    def prefer(
        self, rubric: str, question: str, first: str, second: str, sources: Sequence[str]
    ) -> tuple[Pick | None, str]: ...


class LLMJudge:
    """``evals.assertions.Judge`` (and ``PairJudge``) over any LLM, at temperature 0.

        judge = LLMJudge(build_llm(LLMSettings(bundled="smollm2-135m"), models_dir))
        judge.judge("Names the database", "Where is the data?", "In SQL [1]", ["..."])
        # -> (True, 1.0, "PASS ('PASS')")

    ``style``: the prompt style (default: the model's measured best, ``llm.default_style``):
    CHAT renders the instruction with the model's chat template, COMPLETION a few-shot
    prompt ending in "Verdict:". Sources are cut (then shrunk) so the prompt fits n_ctx.
    """

    def __init__(self, llm: LLM, *, style: PromptStyle | None = None, max_tokens: int = 6) -> None:
        self._llm = llm
        self._style = style
        # Greedy; a completion verdict ends at its line end, a chat reply gets its few tokens
        # whole (an instruct model may open with a line break).
        self._params = SamplingParams(
            temperature=0.0, top_p=1.0, top_k=0, max_tokens=max_tokens, seed=0, repeat_penalty=1.0
        )

    @property
    def style(self) -> PromptStyle:
        return self._style or self._llm.default_style

    @property
    def name(self) -> str:
        """The model's name (the file stem or the endpoint's model)."""
        info = self._llm.info
        return info.name or Path(info.path).name

    # -- the protocol ---------------------------------------------------------------------------

    def judge(
        self, rubric: str, question: str, answer: str, sources: Sequence[str]
    ) -> tuple[bool, float, str]:
        body = _grade_body(answer)
        out = self._ask(
            JUDGE_INSTRUCTION, _grade_shots, _VERDICT_LABEL, rubric, question, body, sources
        )
        if out is None:
            return False, 0.0, "the question and answer do not fit the judge's context window"
        verdict = parse_verdict(out)
        if verdict is None:
            return False, 0.0, f"{UNPARSEABLE}: {_shown(out)}"
        return verdict, 1.0 if verdict else 0.0, f"{'PASS' if verdict else 'FAIL'} ({_shown(out)})"

    def prefer(
        self, rubric: str, question: str, first: str, second: str, sources: Sequence[str]
    ) -> tuple[Pick | None, str]:
        body = _pair_body(first, second)
        out = self._ask(
            PAIRWISE_INSTRUCTION, _pair_shots, _PICK_LABEL, rubric, question, body, sources
        )
        if out is None:
            return None, "the question and answers do not fit the judge's context window"
        pick = parse_pick(out)
        if pick is None:
            return None, f"{UNPARSEABLE}: {_shown(out)}"
        return pick, f"answer {pick} ({_shown(out)})"

    # -- prompting ------------------------------------------------------------------------------

    def _ask(
        self,
        instruction: str,
        shots: Callable[[str], str],
        label: str,
        rubric: str,
        question: str,
        body: str,
        sources: Sequence[str],
    ) -> str | None:
        """The model's output for the prompt, the sources cut to fit; None if nothing fits."""
        chat = self.style == PromptStyle.CHAT
        prefix = "" if chat else f"{instruction}\n\n{shots(rubric)}"

        def render(texts: Sequence[str]) -> tuple[str, list[tuple[str, str]]]:
            case = _case_block(texts, question, body, rubric) + label
            if chat:
                return "", [("system", instruction), ("user", case)]
            return prefix + case, []

        def count(texts: Sequence[str]) -> int:
            text, messages = render(texts)
            return self._llm.count_chat_tokens(messages) if chat else self._llm.count_tokens(text)

        texts = _fit(
            [_one_line(s) for s in sources if s.strip()][:_MAX_SOURCES],
            count,
            self._llm.n_ctx - self._params.max_tokens,
        )
        if texts is None:
            return None
        text, messages = render(texts)
        try:
            if chat:
                done = self._llm.chat(messages, self._params)
            else:
                done = self._llm.complete(text, replace(self._params, stop=("\n",)))
        except ContextOverflow:  # a server counting differently than we estimated
            return None
        return done.text.strip()


def _fit(texts: list[str], count: Callable[[Sequence[str]], int], budget: int) -> list[str] | None:
    """``texts`` each cut to the same length so that ``count(texts) <= budget``."""
    chars = _SOURCE_CHARS
    while True:
        cut = [_cut(t, chars) for t in texts]
        n = count(cut)
        if n <= budget:
            return cut
        if not texts or chars <= _MIN_SOURCE_CHARS:
            return None
        chars = max(_MIN_SOURCE_CHARS, int(chars * budget / n * 0.9))


# -- pairwise ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairwiseVerdict:
    """Which answer is better: ``winner`` "a" or "b" only when both orders agree, else None
    (``consistent`` False: the orders disagree or an output was unparseable)."""

    winner: Literal["a", "b"] | None
    consistent: bool
    reason: str
    picks: tuple[Literal["a", "b"] | None, Literal["a", "b"] | None]  # a-first, b-first order


def pairwise(
    judge: PairJudge,
    question: str,
    answer_a: str,
    answer_b: str,
    sources: Sequence[str],
    *,
    rubric: str = PAIRWISE_RUBRIC,
) -> PairwiseVerdict:
    """Ask ``judge`` with A first, then with B first; a verdict counts only when both orders
    name the same answer (a judge that always picks the first position gets none).

        v = pairwise(judge, "Where does the Danube end?", "Black Sea", "North Sea", [text])
        v.winner   # "a", "b", or None (v.reason: "inconsistent: ...")
    """
    p1, why1 = judge.prefer(rubric, question, answer_a, answer_b, sources)
    p2, why2 = judge.prefer(rubric, question, answer_b, answer_a, sources)
    first: Literal["a", "b"] | None = None if p1 is None else ("a" if p1 == 1 else "b")
    second: Literal["a", "b"] | None = None if p2 is None else ("b" if p2 == 1 else "a")
    said = f"A first: {why1}; B first: {why2}"
    if first is None or second is None:
        return PairwiseVerdict(None, False, f"no verdict: {said}", (first, second))
    if first != second:
        return PairwiseVerdict(None, False, f"inconsistent: {said}", (first, second))
    return PairwiseVerdict(first, True, f"{first.upper()} in both orders ({said})", (first, second))


# -- building a judge --------------------------------------------------------------------------


def build_judge(
    spec: JudgeSpec, settings: Settings, *, style: PromptStyle | None = None
) -> LLMJudge:
    """The judge a suite's ``defaults.judge`` names, unloaded (it loads on first use).

    ``spec.model_path``: a GGUF file, or a bundled model's key ("gemma3-270m",
    "smollm2-135m"); ``spec.base_url`` (+ ``spec.model``): an OpenAI-compatible endpoint;
    neither: the platform's own LLM settings. The rest (n_ctx, threads, timeout) comes from
    ``settings.llm``; sampling is always temperature 0.

        judge = build_judge(suite.defaults.judge, settings)
    """
    from generation.factory import build_llm
    from generation.models import BUNDLED

    base = settings.llm.model_copy(update={"temperature": 0.0, "seed": 0, "prompt_style": None})
    if spec.base_url:
        update: dict[str, Any] = {"backend": "openai", "openai_base_url": spec.base_url}
        if spec.model:
            update["openai_model"] = spec.model
        llm_settings = base.model_copy(update=update)
    elif spec.model_path:
        path = Path(spec.model_path).expanduser()
        if spec.model_path in BUNDLED and not path.is_file():
            llm_settings = base.model_copy(
                update={"backend": "llama_cpp", "model_path": None, "bundled": spec.model_path}
            )
        else:
            llm_settings = base.model_copy(update={"backend": "llama_cpp", "model_path": str(path)})
    else:
        llm_settings = base
    return LLMJudge(build_llm(llm_settings, settings.models_dir), style=style)


# -- labelled examples -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgeExample:
    """A labelled example: ``good`` when the answer responds to the question and is
    supported by the sources, ``bad`` otherwise; ``kind`` says how it was made."""

    question: str
    answer: str
    sources: tuple[str, ...]
    label: Label
    id: str = ""
    kind: str = ""

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {"id": self.id} if self.id else {}
        row |= {"question": self.question, "answer": self.answer}
        row |= {"sources": list(self.sources), "label": self.label}
        return row | ({"kind": self.kind} if self.kind else {})


def load_judge_set(path: str | Path) -> list[JudgeExample]:
    """Labelled examples from a JSONL file: one object a line with ``question``, ``answer``,
    ``sources`` (a list of texts, or one text), ``label`` ("good" / "bad"), optional ``id``
    and ``kind``. Bad lines raise ``InvalidRequest`` naming file and line."""
    path = Path(path)
    out: list[JudgeExample] = []
    for n, row in _read_jsonl_lines(path):
        where = f"{path}:{n}"
        if not isinstance(row, dict):
            raise InvalidRequest(f"{where}: expected a JSON object, got {type(row).__name__}")
        question, answer, label = row.get("question"), row.get("answer"), row.get("label")
        if not isinstance(question, str) or not question.strip():
            raise InvalidRequest(f"{where}: 'question' must be a non-empty string")
        if not isinstance(answer, str):
            raise InvalidRequest(f"{where}: 'answer' must be a string")
        sources = row.get("sources", [])
        sources = [sources] if isinstance(sources, str) else sources
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise InvalidRequest(f"{where}: 'sources' must be a list of texts")
        if label not in LABELS:
            raise InvalidRequest(f'{where}: \'label\' must be "good" or "bad", not {label!r}')
        out.append(
            JudgeExample(
                question.strip(),
                answer.strip(),
                tuple(sources),
                label,
                str(row.get("id") or n),
                str(row.get("kind") or ""),
            )
        )
    if not out:
        raise InvalidRequest(f"{path}: no labelled examples")
    return out


def write_judge_set(examples: Sequence[JudgeExample], path: str | Path) -> Path:
    """Write ``examples`` as JSONL (the format ``load_judge_set`` reads)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(e.to_json(), ensure_ascii=False) for e in examples]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_judge_set(
    n: int = 60, seed: int = 0, datasets_dir: str | Path | None = None
) -> list[JudgeExample]:
    """``n`` labelled examples from ClapNQ's answerable questions, half good, half bad,
    each question used once, drawn with ``seed``:

    - good ("gold"): the question's gold answer with its own passage;
    - bad, alternately ("swapped-answer"): the gold answer of a question about another
      article with the question's own passage, and ("unrelated-passage"): the gold
      answer with the passage of a question about another article.
    """
    cases = [c for c in load_clapnq(datasets_dir) if c.answerable and c.text]
    if not 2 <= n <= len(cases):
        raise InvalidRequest(f"n must be 2 to {len(cases)} (the answerable questions), not {n}")
    rng = random.Random(seed)
    picked = rng.sample(cases, n)
    n_good = n - n // 2
    out: list[JudgeExample] = []
    for c in picked[:n_good]:
        out.append(
            JudgeExample(c.question, c.gold_answer, (c.text,), "good", f"{c.id}:good", "gold")
        )
    for i, c in enumerate(picked[n_good:]):
        other = rng.choice([o for o in cases if o.title != c.title])
        if i % 2 == 0:
            ex = JudgeExample(
                c.question,
                other.gold_answer,
                (c.text,),
                "bad",
                f"{c.id}:swapped-answer",
                "swapped-answer",
            )
        else:
            ex = JudgeExample(
                c.question,
                c.gold_answer,
                (other.text,),
                "bad",
                f"{c.id}:unrelated-passage",
                "unrelated-passage",
            )
        out.append(ex)
    rng.shuffle(out)
    return out


# -- the judge check ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JudgeResult:
    """The judge's grade of one labelled example."""

    id: str
    label: Label
    predicted: Label  # "good" when the judge passed the answer; unparseable output: "bad"
    score: float
    reason: str
    kind: str = ""

    @property
    def agrees(self) -> bool:
        return self.label == self.predicted

    @property
    def parsed(self) -> bool:
        return not self.reason.startswith(UNPARSEABLE)


@dataclass(frozen=True, slots=True)
class Confusion:
    """Counts of (label, judged): ``good_good`` = labelled good, judged good."""

    good_good: int = 0
    good_bad: int = 0
    bad_good: int = 0
    bad_bad: int = 0


@dataclass(frozen=True)
class JudgeCheck:
    """How well a judge agrees with labels: accuracy, Cohen's kappa (chance-corrected: 0 is
    what a judge guessing with its own pass rate gets, 1 full agreement), the confusion
    counts, and every example's grade."""

    n: int
    accuracy: float
    kappa: float
    confusion: Confusion
    results: tuple[JudgeResult, ...]
    seconds: float = 0.0
    rubric: str = DEFAULT_RUBRIC
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def unparseable(self) -> int:
        return sum(1 for r in self.results if not r.parsed)

    @property
    def pass_rate(self) -> float:
        return sum(1 for r in self.results if r.predicted == "good") / self.n

    def by_kind(self) -> dict[str, float]:
        """Accuracy per kind of example (gold, swapped-answer, ...)."""
        kinds: dict[str, list[bool]] = {}
        for r in self.results:
            kinds.setdefault(r.kind or "-", []).append(r.agrees)
        return {k: sum(v) / len(v) for k, v in sorted(kinds.items())}

    def summary(self) -> str:
        c = self.confusion
        return (
            f"n {self.n}, accuracy {self.accuracy:.3f}, kappa {self.kappa:.3f}, "
            f"judged good {self.pass_rate:.2f}, unparseable {self.unparseable}; "
            f"label/judged good/good {c.good_good}, good/bad {c.good_bad}, "
            f"bad/good {c.bad_good}, bad/bad {c.bad_bad}"
        )

    def to_json(self, *, results: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "kappa": round(self.kappa, 4),
            "pass_rate": round(self.pass_rate, 4),
            "unparseable": self.unparseable,
            "confusion": {
                "good/good": self.confusion.good_good,
                "good/bad": self.confusion.good_bad,
                "bad/good": self.confusion.bad_good,
                "bad/bad": self.confusion.bad_bad,
            },
            "accuracy_by_kind": {k: round(v, 4) for k, v in self.by_kind().items()},
            "seconds": round(self.seconds, 2),
            "rubric": self.rubric,
            **self.notes,
        }
        if results:
            out["results"] = [
                {
                    "id": r.id,
                    "label": r.label,
                    "predicted": r.predicted,
                    "score": r.score,
                    "reason": r.reason,
                    "kind": r.kind,
                }
                for r in self.results
            ]
        return out


def cohen_kappa(labels: Sequence[str], predicted: Sequence[str]) -> float:
    """Cohen's kappa of two raters over the same items (scikit-learn's); 0.0 when chance
    agreement is total (both raters gave one and the same label to everything)."""
    from sklearn.metrics import cohen_kappa_score

    if len(labels) != len(predicted) or not labels:
        raise ValueError("kappa needs two equally long, non-empty sequences of labels")
    if len(set(labels) | set(predicted)) == 1:
        return 0.0
    return float(cohen_kappa_score(list(labels), list(predicted)))


def judge_check(
    judge: Judge,
    labelled: Sequence[JudgeExample],
    *,
    rubric: str = DEFAULT_RUBRIC,
    progress: Progress | None = None,
) -> JudgeCheck:
    """Grade every labelled example with ``judge`` and measure agreement with the labels.
    The set needs both labels (kappa means nothing otherwise).

        check = judge_check(build_judge(spec, settings), load_judge_set(path))
        check.kappa >= suite.defaults.judge.min_agreement
    """
    if not labelled:
        raise InvalidRequest("no labelled examples to check the judge on")
    if {e.label for e in labelled} != set(LABELS):
        raise InvalidRequest("a labelled set needs both good and bad examples")
    results: list[JudgeResult] = []
    t0 = time.perf_counter()
    for i, ex in enumerate(labelled, 1):
        passed, score, reason = judge.judge(rubric, ex.question, ex.answer, ex.sources)
        predicted: Label = "good" if passed else "bad"
        results.append(JudgeResult(ex.id, ex.label, predicted, float(score), reason, ex.kind))
        if progress:
            progress(f"judged {i}/{len(labelled)}")
    seconds = time.perf_counter() - t0
    labels = [r.label for r in results]
    preds = [r.predicted for r in results]
    pairs = list(zip(labels, preds, strict=True))
    confusion = Confusion(
        pairs.count(("good", "good")),
        pairs.count(("good", "bad")),
        pairs.count(("bad", "good")),
        pairs.count(("bad", "bad")),
    )
    accuracy = sum(r.agrees for r in results) / len(results)
    return JudgeCheck(
        len(results),
        accuracy,
        cohen_kappa(labels, preds),
        confusion,
        tuple(results),
        seconds,
        rubric,
    )


# -- measuring the bundled models --------------------------------------------------------------

DEFAULT_SET = Path(__file__).resolve().parent / "labelled" / "judge-clapnq.jsonl"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m evals.judge``: build the labelled set, or check models as judges."""
    from core.settings import Settings
    from evals.suite import JudgeSpec

    ap = argparse.ArgumentParser(prog="python -m evals.judge", description=main.__doc__)
    ap.add_argument("--set", type=Path, default=DEFAULT_SET, help="labelled JSONL")
    ap.add_argument(
        "--build-set",
        type=int,
        metavar="N",
        default=None,
        help="write N examples made from ClapNQ to --set, then stop",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--models",
        nargs="+",
        default=["gemma3-270m", "smollm2-135m"],
        help="bundled keys or GGUF paths",
    )
    ap.add_argument(
        "--styles", nargs="+", default=["default"], choices=["default", "completion", "chat"]
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="write per-example results here")
    args = ap.parse_args(argv)
    if args.build_set is not None:
        path = write_judge_set(build_judge_set(args.build_set, args.seed), args.set)
        print(f"wrote {args.build_set} labelled examples to {path}")
        return 0
    settings = Settings()
    settings = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"n_threads": args.threads})}
    )
    examples = load_judge_set(args.set)
    checks: dict[str, Any] = {}
    for model in args.models:
        for style_name in args.styles:
            style = None if style_name == "default" else PromptStyle(style_name)
            judge = build_judge(JudgeSpec(model_path=model), settings, style=style)
            check = judge_check(judge, examples)
            label = f"{model} {judge.style.value}"
            print(f"{label}: {check.summary()}; {check.seconds / check.n:.2f} s/example")
            print(f"  accuracy by kind: {check.by_kind()}", file=sys.stderr)
            checks[label] = check.to_json()
    if args.json:
        args.json.write_text(json.dumps(checks, indent=1, ensure_ascii=False), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


# -- measured agreement, remembered per judge model ----------------------------------------


def _checks_file(data_dir: Path) -> Path:
    return data_dir / "judge-checks.json"


def judge_key(judge: LLMJudge) -> str:
    """What a judge check is remembered by: the model file's sha256 (or the endpoint's
    model name) and the prompt style."""
    info = judge._llm.info  # noqa: SLF001 (the judge's own model)
    return f"{info.sha256 or info.path}:{judge.style.value}"


def remember_check(data_dir: Path, judge: LLMJudge, check: JudgeCheck, labelled: str) -> None:
    """Store the judge's measured agreement, so runs whose suite sets
    ``judge.min_agreement`` can count its verdicts (``recalled_agreement``)."""
    path = _checks_file(data_dir)
    try:
        known = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    known[judge_key(judge)] = {
        "judge": judge.name,
        "kappa": round(check.kappa, 4),
        "accuracy": round(check.accuracy, 4),
        "n": check.n,
        "labelled": labelled,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(known, indent=2), encoding="utf-8")


def recalled_agreement(data_dir: Path, judge: LLMJudge) -> float | None:
    """The kappa of the judge's last `rag eval judge-check` here, or None (never checked:
    its verdicts do not count where a suite asks for a minimum agreement)."""
    try:
        known = json.loads(_checks_file(data_dir).read_text(encoding="utf-8"))
        return float(known[judge_key(judge)]["kappa"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
