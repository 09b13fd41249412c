"""Reading-comprehension test of the bundled LLMs with the platform's grounded prompt.

    python -m evals.reader_eval --n 60 --seed 0
    python -m evals.reader_eval --models gemma3-270m --styles completion --n 20

Each XQuAD-en question gets 3 numbered passages: its gold paragraph and 2 paragraphs
from other articles, at most 120 words each (the gold window keeps the answer), the
gold at a shuffled position. Temperature 0, max_tokens 48, n_ctx 2048, 2 threads.
Scores: SQuAD EM / token F1 (``[n]`` markers removed first), answer contains gold,
cites the gold passage (the ``[n]`` the model wrote, or the one ``postprocess``
attributes), seconds per question.

``postprocess(raw_text, prompt) -> (answer, cited_n | None)`` is the hook for answer
assembly (span copying, attribution); the default keeps the text and takes the first
``[n]`` the model wrote.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.types import Chunk, Prompt, PromptStyle, SamplingParams, ScoredChunk
from evals.answer_metrics import contains_gold, squad_em, squad_f1, strip_citations
from generation.ports import LLM
from generation.prompt import GroundedPromptBuilder, stop_strings

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "datasets" / "xquad-en" / "xquad.en.json"
)
MAX_WORDS = 120

Postprocess = Callable[[str, Prompt], tuple[str, int | None]]


@dataclass(frozen=True, slots=True)
class ReaderCase:
    qid: str
    question: str
    answers: tuple[str, ...]
    sources: tuple[ScoredChunk, ...]  # 3 passages in prompt order
    gold_n: int  # 1-based position of the gold passage


@dataclass(frozen=True, slots=True)
class CaseResult:
    qid: str
    raw: str
    answer: str
    cited: int | None
    em: float
    f1: float
    contains: float
    cites_gold: float
    seconds: float


@dataclass(frozen=True, slots=True)
class ConfigResult:
    name: str
    n: int
    em: float
    f1: float
    contains: float
    cites_gold: float
    seconds: float
    cases: tuple[CaseResult, ...] = ()


# -- data ------------------------------------------------------------------------------


def _window(text: str, answer: str | None, max_words: int = MAX_WORDS) -> str:
    """At most ``max_words`` words of ``text``, keeping ``answer`` inside when given."""
    words = text.split()
    if len(words) <= max_words:
        return " ".join(words)
    start = 0
    if answer:
        at = text.find(answer)
        if at >= 0:
            first = len(text[:at].split())  # index of the word where the answer starts
            span = len(answer.split())
            start = max(0, min(first - (max_words - span) // 2, len(words) - max_words))
    return " ".join(words[start : start + max_words])


def _chunk(cid: str, title: str, text: str) -> ScoredChunk:
    chunk = Chunk(
        id=cid,
        document_id=title,
        collection="xquad",
        ordinal=0,
        text=text,
        char_start=0,
        char_end=len(text),
        source=title.replace("_", " "),
        media_type="text/plain",
    )
    return ScoredChunk(chunk=chunk, score=1.0)


def load_cases(path: Path, n: int, seed: int = 0) -> list[ReaderCase]:
    """``n`` seeded XQuAD questions, each with its gold paragraph + 2 from other articles."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs: list[tuple[int, str, str]] = []  # (article index, title, context)
    questions: list[tuple[int, str, str, dict]] = []
    for ai, article in enumerate(data):
        for para in article["paragraphs"]:
            paragraphs.append((ai, article["title"], para["context"]))
            for qa in para["qas"]:
                questions.append((ai, article["title"], para["context"], qa))
    rng = random.Random(seed)
    picked = rng.sample(questions, min(n, len(questions)))
    cases = []
    for ai, title, context, qa in picked:
        answers = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
        gold = _chunk(f"{qa['id']}-gold", title, _window(context, answers[0]))
        others = [p for p in paragraphs if p[0] != ai]
        distractors = [
            _chunk(f"{qa['id']}-d{i}", t, _window(c, None))
            for i, (_, t, c) in enumerate(rng.sample(others, 2))
        ]
        gold_pos = rng.randrange(3)
        order = distractors[:gold_pos] + [gold] + distractors[gold_pos:]
        cases.append(ReaderCase(qa["id"], qa["question"], answers, tuple(order), gold_pos + 1))
    return cases


def with_dense_scores(cases: Sequence[ReaderCase], embedder: Any) -> list[ReaderCase]:
    """The cases with each passage's cosine to the question as its dense (and fused) score,
    as the platform's retriever reports them; the order stays shuffled. The query path's
    selector and abstention model read these scores; the prompt does not."""
    out = []
    for case in cases:
        vecs = embedder.embed([case.question, *(s.chunk.text for s in case.sources)])
        sources = tuple(
            replace(s, score=float(vecs[0] @ vecs[i]), dense_score=float(vecs[0] @ vecs[i]))
            for i, s in enumerate(case.sources, 1)
        )
        out.append(replace(case, sources=sources))
    return out


# -- running ---------------------------------------------------------------------------

_MARK = re.compile(r"\[\s*(\d+)\s*\]")


def default_postprocess(raw: str, prompt: Prompt) -> tuple[str, int | None]:
    """The model's text as the answer; the first ``[n]`` it wrote as its citation."""
    m = _MARK.search(raw)
    return raw.strip(), (int(m.group(1)) if m else None)


def generate(llm: LLM, prompt: Prompt, params: SamplingParams) -> str:
    if prompt.style == PromptStyle.CHAT:
        return llm.chat(prompt.messages, params).text
    return llm.complete(prompt.text, params).text


def run_config(
    name: str,
    llm: LLM,
    style: PromptStyle,
    cases: Sequence[ReaderCase],
    *,
    max_tokens: int = 48,
    repeat_penalty: float = 1.1,
    postprocess: Postprocess | None = None,
    progress: bool = False,
) -> ConfigResult:
    """Ask every case with one LLM and prompt style; score the answers."""
    post = postprocess or default_postprocess
    builder = GroundedPromptBuilder(
        style, llm.count_tokens, llm.n_ctx, max_tokens, count_chat_tokens=llm.count_chat_tokens
    )
    params = SamplingParams(  # the query path's stop strings for this style
        temperature=0.0,
        max_tokens=max_tokens,
        repeat_penalty=repeat_penalty,
        stop=stop_strings(style),
    )
    results = []
    for i, case in enumerate(cases, 1):
        t0 = time.perf_counter()
        prompt = builder.build(case.question, case.sources)
        raw = generate(llm, prompt, params)
        answer, cited = post(raw, prompt)
        seconds = time.perf_counter() - t0
        answer_text = strip_citations(answer).strip()
        results.append(
            CaseResult(
                qid=case.qid,
                raw=raw,
                answer=answer_text,
                cited=cited,
                em=squad_em(answer_text, case.answers),
                f1=squad_f1(answer_text, case.answers),
                contains=contains_gold(answer_text, case.answers),
                cites_gold=float(cited == case.gold_n),
                seconds=seconds,
            )
        )
        if progress:
            print(f"  {name} {i}/{len(cases)}", file=sys.stderr, end="\r")
    n = len(results) or 1
    return ConfigResult(
        name=name,
        n=len(results),
        em=sum(r.em for r in results) / n,
        f1=sum(r.f1 for r in results) / n,
        contains=sum(r.contains for r in results) / n,
        cites_gold=sum(r.cites_gold for r in results) / n,
        seconds=sum(r.seconds for r in results) / n,
        cases=tuple(results),
    )


def format_table(results: Sequence[ConfigResult]) -> str:
    head = "| configuration | n | EM | F1 | contains gold | cites gold | s/question |"
    rows = [head, "|---|---|---|---|---|---|---|"]
    for r in results:
        rows.append(
            f"| {r.name} | {r.n} | {r.em:.2f} | {r.f1:.2f} | {r.contains:.2f} | "
            f"{r.cites_gold:.2f} | {r.seconds:.2f} |"
        )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None, postprocess: Postprocess | None = None) -> int:
    from generation.llama_cpp_llm import LlamaCppLLM
    from generation.models import bundled_path

    ap = argparse.ArgumentParser(
        prog="python -m evals.reader_eval", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    ap.add_argument("--styles", nargs="+", default=["completion", "chat"])
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--n-ctx", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--repeat-penalty", type=float, default=1.1)
    ap.add_argument("--json", type=Path, default=None, help="write per-case results here")
    ap.add_argument(
        "--postprocess",
        choices=("raw", "platform", "verbatim", "answer"),
        default="raw",
        help="raw: the model's text, its first [n] as citation; platform: the earlier "
        "span copy / fallback / attribution keeping wording that is no span; verbatim: "
        "the same with guards.verbatim_answers; answer: the query path's composition "
        "(the model's span as the short answer, else the selected source sentences)",
    )
    args = ap.parse_args(argv)
    if postprocess is None and args.postprocess == "answer":
        from generation.compose import make_answer_postprocess
        from ingest.embedding import SentenceTransformerEmbedder

        postprocess = make_answer_postprocess(SentenceTransformerEmbedder())
    elif postprocess is None and args.postprocess != "raw":
        from generation.extract import make_postprocess
        from ingest.embedding import SentenceTransformerEmbedder

        postprocess = make_postprocess(
            SentenceTransformerEmbedder(), verbatim=args.postprocess == "verbatim"
        )

    models_dir = args.models_dir or Settings().models_dir
    cases = load_cases(args.data, args.n, args.seed)
    if args.postprocess == "answer":
        from ingest.embedding import SentenceTransformerEmbedder

        cases = with_dense_scores(cases, SentenceTransformerEmbedder())
    results = []
    for key in args.models:
        llm = LlamaCppLLM(bundled_path(key, models_dir), n_ctx=args.n_ctx, n_threads=args.threads)
        llm.warm_up()
        for style_name in args.styles:
            style = PromptStyle(style_name)
            suffix = "" if args.postprocess == "raw" else f" + {args.postprocess} postprocess"
            res = run_config(
                f"{key} {style.value}{suffix}",
                llm,
                style,
                cases,
                max_tokens=args.max_tokens,
                repeat_penalty=args.repeat_penalty,
                postprocess=postprocess,
                progress=True,
            )
            print(f"{res.name}: EM {res.em:.2f} F1 {res.f1:.2f}", file=sys.stderr)
            results.append(res)
        llm.close()
    print(
        f"\nXQuAD-en reader test: n={len(cases)}, seed={args.seed}, temperature 0, "
        f"max_tokens {args.max_tokens}, n_ctx {args.n_ctx}, {args.threads} threads, "
        f"repeat_penalty {args.repeat_penalty}\n"
    )
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
