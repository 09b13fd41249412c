"""Dataset adapters: public labelled data turned into eval suites, so the same runner
measures retrieval, answers and abstention.

    data = make_suite("xquad", 100, seed=0)         # the suite mapping (parse_suite takes it)
    suite = write_suite("xquad-100.yaml", "xquad", 100)
    ensure_suite_collection(platform, "xquad")      # builds the collection its cases ask

What each data set's cases assert (a case passes when all its counted assertions pass):

    dataset        counted                                       recorded (weight 0)
    xquad, squad   token-f1 >= 0.5 against the gold answers,     exact-match
                   recall@5 of the gold paragraph
    scifact        recall@5 and mrr@10 of the abstracts the      answers
                   claim is judged against (claims, not
                   questions: retrieval is what is measured)
    clapnq         answerable: answers, token-f1 >= 0.3 against
                   the gold long answer, recall@5 of its
                   passage, grounded; unanswerable: abstains

A suite's collection is ``eval-<dataset>``: every paragraph / abstract / passage of the
data set as one document whose source is its doc id (``evals.datasets``: SQuAD's
"Title#i", SciFact's corpus id, ClapNQ's passage id), so ``expected_sources`` are doc ids.
`rag eval retrieval --dataset xquad|squad|scifact` and `rag eval answers --dataset clapnq`
build the same collections; ``ensure_suite_collection`` builds the one a suite needs and
reuses it when it already holds the whole corpus.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from core.errors import InvalidRequest, PathNotFound
from core.types import DEFAULT_TENANT, CollectionKey
from evals.answer_eval import load_answer_set
from evals.datasets import (
    AnswerCase,
    dataset_spec,
    datasets_root,
    load_dataset,
    resolve_split,
)
from evals.retrieval_eval import ensure_collection, eval_collection_name, eval_ingest_settings
from evals.suite import Suite, parse_suite

if TYPE_CHECKING:
    from evals.ports import EvalStages

Progress = Callable[[str], None]

SUITE_DATASETS: tuple[str, ...] = ("xquad", "squad", "scifact", "clapnq")
TOP_K = 5  # retrieved sources per case: what recall@5 ranks
TITLES = {
    "xquad": "XQuAD-en",
    "squad": "SQuAD v1.1 dev",
    "scifact": "BEIR SciFact",
    "clapnq": "ClapNQ (tuning half)",
}
_BUILT_BY = {
    "xquad": "rag eval retrieval --dataset xquad",
    "squad": "rag eval retrieval --dataset squad",
    "scifact": "rag eval retrieval --dataset scifact",
    "clapnq": "rag eval answers --dataset clapnq",
}

# What each kind of case asserts (see the module docstring).
_READING = (
    {"type": "token-f1", "threshold": 0.5},
    {"type": "recall@5"},
    {"type": "exact-match", "weight": 0},
)
_CLAIM = ({"type": "recall@5"}, {"type": "mrr@10"}, {"type": "answers", "weight": 0})
_ANSWERABLE = (
    {"type": "answers"},
    {"type": "token-f1", "threshold": 0.3},
    {"type": "recall@5"},
    {"type": "grounded"},
)
_UNANSWERABLE = ({"type": "abstains"},)


def _name(dataset: str) -> str:
    name = dataset.lower()
    if name not in SUITE_DATASETS:
        raise InvalidRequest(
            f"unknown data set '{dataset}'; choose one of {', '.join(SUITE_DATASETS)}"
        )
    return name


def suite_collection_name(dataset: str) -> str:
    """The collection a data set's suite asks: ``eval-<dataset>``."""
    return eval_collection_name(_name(dataset))


def _sample(ids: Sequence[str], n: int | None, seed: int) -> list[str]:
    """``n`` of ``ids`` drawn with ``seed``, in the data set's order (all when None)."""
    if n is not None and n < 1:
        raise InvalidRequest(f"n must be at least 1, not {n}")
    if n is None or n >= len(ids):
        return list(ids)
    picked = set(random.Random(seed).sample(list(ids), n))
    return [i for i in ids if i in picked]


def _squad_answers(path: Path) -> dict[str, tuple[str, ...]]:
    """Question id -> its distinct gold answer texts, from a SQuAD-format file."""
    if not path.is_file():
        raise PathNotFound(f"'{path}' does not exist")
    data = json.loads(path.read_text(encoding="utf-8"))
    return {
        str(qa["id"]): tuple(dict.fromkeys(a["text"].strip() for a in qa.get("answers", [])))
        for article in data.get("data", [])
        for para in article.get("paragraphs", [])
        for qa in para.get("qas", [])
    }


def _case(
    dataset: str,
    qid: str,
    question: str,
    asserts: Sequence[Mapping[str, Any]],
    *,
    reference: Sequence[str] = (),
    sources: Sequence[str] = (),
    answerable: bool = True,
) -> dict[str, Any]:
    case: dict[str, Any] = {"id": f"{dataset}:{qid}", "question": question}
    if reference:
        case["reference"] = reference[0] if len(reference) == 1 else list(reference)
    if sources:
        case["expected_sources"] = list(sources)
    if not answerable:
        case["answerable"] = False
    case["tags"] = [dataset, "answerable" if answerable else "unanswerable"]
    case["assert"] = [dict(a) for a in asserts]
    return case


def _retrieval_cases(
    name: str, n: int | None, seed: int, split: str | None, root: Path
) -> tuple[list[dict[str, Any]], int]:
    ds = load_dataset(name, split, root)
    qids = _sample([q for q in ds.qrels if q in ds.queries], n, seed)
    answers = _squad_answers(root / dataset_spec(name).path) if name != "scifact" else {}
    cases = []
    for qid in qids:
        sources = sorted(d for d, grade in ds.qrels[qid].items() if grade > 0)
        if name == "scifact":
            cases.append(_case(name, qid, ds.queries[qid], _CLAIM, sources=sources))
            continue
        golds = [a for a in answers.get(qid, ()) if a]
        asserts = _READING if golds else [a for a in _READING if a["type"] == "recall@5"]
        cases.append(_case(name, qid, ds.queries[qid], asserts, reference=golds, sources=sources))
    return cases, len(ds.qrels)


def _clapnq_case(c: AnswerCase) -> dict[str, Any]:
    if not c.answerable:
        return _case("clapnq", c.id, c.question, _UNANSWERABLE, answerable=False)
    return _case(
        "clapnq",
        c.id,
        c.question,
        _ANSWERABLE,
        reference=[c.gold_answer],
        sources=[c.passage_id],
    )


def make_suite(
    dataset: str,
    n: int | None = None,
    seed: int = 0,
    datasets_dir: str | Path | None = None,
    *,
    split: str | None = None,
) -> dict[str, Any]:
    """A suite (the mapping ``parse_suite`` takes) of ``n`` questions of ``dataset``
    (xquad | squad | scifact | clapnq; all of them when ``n`` is None), drawn with ``seed``:
    a plain sample for the retrieval sets, answerable and unanswerable in the set's ratio
    for ClapNQ. ``split``: SciFact's qrels split (default test). Temperature 0, seed 0.

        suite = parse_suite(make_suite("clapnq", 60))
    """
    name = _name(dataset)
    root = datasets_root(datasets_dir)
    if name == "clapnq":
        aset = load_answer_set("clapnq", n=n, seed=seed, datasets_dir=root)
        cases, total = [_clapnq_case(c) for c in aset.cases], aset.n_total
        n_una = sum(1 for c in aset.cases if not c.answerable)
        what = f"{len(cases)} of {total} questions ({n_una} unanswerable)"
    else:
        split = resolve_split(name, split)
        cases, total = _retrieval_cases(name, n, seed, split, root)
        what = f"{len(cases)} of {total} questions" + (
            f" ({split} split)" if name == "scifact" else ""
        )
    collection = suite_collection_name(name)
    return {
        "description": (
            f"{TITLES[name]}: {what}, seed {seed}. Collection {collection}: every document of "
            f"the data set, built by `{_BUILT_BY[name]}` (or evals.make_suite."
            "ensure_suite_collection)."
        ),
        "defaults": {
            "collection": collection,
            "top_k": TOP_K,
            "sampling": {"temperature": 0.0, "seed": 0},
        },
        "cases": cases,
    }


class _Dumper(yaml.SafeDumper):
    """Short lists and mappings of scalars on one line: ``tags: [xquad, answerable]``,
    ``- {type: token-f1, threshold: 0.5}``."""


def _flow(values: Sequence[Any]) -> bool:
    return all(
        isinstance(v, int | float | bool) or (isinstance(v, str) and len(v) <= 40) for v in values
    )


_Dumper.add_representer(
    list, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=_flow(v))
)
_Dumper.add_representer(
    dict,
    lambda d, v: d.represent_mapping(
        "tag:yaml.org,2002:map", v.items(), flow_style=_flow(list(v.values()))
    ),
)


def write_suite(
    path: str | Path,
    dataset: str,
    n: int | None = None,
    seed: int = 0,
    datasets_dir: str | Path | None = None,
    *,
    split: str | None = None,
    progress: Progress | None = None,
) -> Suite:
    """``make_suite``'s suite, checked by ``parse_suite``, written to ``path`` as YAML;
    returns the parsed suite (``len(suite.cases)``, ``suite.sha256``).

        suite = write_suite("evals/suites/xquad-100.yaml", "xquad", 100)
    """
    path = Path(path)
    if progress:
        progress(f"reading {dataset}")
    data = make_suite(dataset, n, seed, datasets_dir, split=split)
    suite = parse_suite(data, name=str(path))
    args = f"{dataset!r}, {n}, seed={seed}" + (f", split={split!r}" if split else "")
    header = (
        f"# Made by evals.make_suite.make_suite({args}); make it again rather than edit it.\n"
        f"# Its collection, {data['defaults']['collection']}, holds every document of the data "
        f"set:\n# `{_BUILT_BY[_name(dataset)]}` builds it.\n"
    )
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body, encoding="utf-8")
    if progress:
        progress(f"wrote {len(suite.cases)} cases to {path}")
    return suite


def ensure_suite_collection(
    stages: EvalStages,
    dataset: str,
    *,
    tenant: str = DEFAULT_TENANT,
    datasets_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> tuple[CollectionKey, bool]:
    """Make ``tenant``'s ``eval-<dataset>`` collection hold the data set's whole corpus,
    chunked as `rag eval retrieval` / `rag eval answers` chunk it (so they share it);
    returns its key and whether anything was ingested.

        key, built = ensure_suite_collection(platform, "clapnq", progress=print)
    """
    name = _name(dataset)
    key = CollectionKey(tenant, suite_collection_name(name))
    if name == "clapnq":
        corpus = load_answer_set("clapnq", datasets_dir=datasets_dir).corpus
        pipeline = stages.ingest
    else:
        corpus = load_dataset(name, None, datasets_dir)
        pipeline = stages.ingest_with(eval_ingest_settings(stages.settings, name))
    _, built = ensure_collection(stages.engine, pipeline, corpus, key, progress)
    return key, built
