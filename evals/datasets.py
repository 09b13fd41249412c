"""Loaders for public evaluation data: BEIR folders and SQuAD-format JSON for retrieval,
ClapNQ-format JSONL for answer quality and abstention.

Every retrieval loader returns one ``RetrievalDataset`` (corpus, queries, graded qrels),
so the eval runner does not care where the data came from; ``load_clapnq`` returns
``AnswerCase``s (question, its one passage, gold long answer or none).

    ds = load_dataset("scifact", "test")            # ../shared/datasets/scifact
    ds.corpus["4983"]  # (title, text)
    cases = load_clapnq()                            # ../shared/datasets/clapnq-tune
    cases = load_clapnq("my-labelled.jsonl")         # one file in the same format
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import InvalidRequest, PathNotFound
from core.settings import default_datasets_dir as default_datasets_dir  # re-exported
from core.settings import require_datasets_dir


@dataclass(frozen=True)
class RetrievalDataset:
    """Documents, queries and judgements of one split of a data set."""

    name: str
    split: str
    corpus: Mapping[str, tuple[str, str]]  # doc id -> (title, text)
    queries: Mapping[str, str]  # query id -> text; only queries with qrels
    qrels: Mapping[str, Mapping[str, int]]  # query id -> doc id -> grade
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        missing = [q for q in self.qrels if q not in self.queries]
        if missing:
            raise InvalidRequest(
                f"data set '{self.name}' ({self.split}): {len(missing)} judged queries have "
                f"no text, e.g. '{missing[0]}'"
            )


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    """Where a named data set lives (relative to the datasets folder) and its format."""

    name: str
    path: str
    fmt: str  # "beir" | "squad"
    splits: tuple[str, ...]
    default_split: str
    train_split: str  # the split tuning may use
    # Chunk size (tokens) of the eval collection; None: the settings'. SciFact abstracts
    # (~400 tokens) are chunked at the embedding model's whole window (254 + 2 special
    # tokens): chosen on the train split (BM25 nDCG@10 0.682 vs 0.674 at 200 tokens).
    chunk_tokens: int | None = None


DATASETS: dict[str, DatasetSpec] = {
    "scifact": DatasetSpec(
        "scifact", "scifact", "beir", ("train", "test"), "test", "train", chunk_tokens=254
    ),
    "squad": DatasetSpec("squad", "squad-v1.1-dev/dev-v1.1.json", "squad", ("dev",), "dev", "dev"),
    "xquad": DatasetSpec("xquad", "xquad-en/xquad.en.json", "squad", ("dev",), "dev", "dev"),
}


def datasets_root(datasets_dir: str | Path | None) -> Path:
    """The folder given, else the default one (``core.settings.default_datasets_dir``),
    which must exist (``PathNotFound`` naming the ``datasets_dir`` setting)."""
    return require_datasets_dir(default_datasets_dir(datasets_dir))


def dataset_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise InvalidRequest(
            f"unknown data set '{name}'; choose one of {', '.join(sorted(DATASETS))}"
        ) from None


def resolve_split(name: str, split: str | None) -> str:
    """The split to use (the data set's default when None); rejects unknown splits."""
    spec = dataset_spec(name)
    if split is None:
        return spec.default_split
    if split not in spec.splits:
        raise InvalidRequest(
            f"data set '{spec.name}' has no split '{split}'; choose one of {', '.join(spec.splits)}"
        )
    return split


def load_dataset(
    name: str, split: str | None = None, datasets_dir: str | Path | None = None
) -> RetrievalDataset:
    """Load a named data set (scifact, squad, xquad) from the shared datasets folder."""
    spec = dataset_spec(name)
    split = resolve_split(name, split)
    root = datasets_root(datasets_dir)
    path = root / spec.path
    ds = load_beir(path, split) if spec.fmt == "beir" else load_squad(path)
    return RetrievalDataset(
        name=spec.name,
        split=split,
        corpus=ds.corpus,
        queries=ds.queries,
        qrels=ds.qrels,
        metadata={"path": str(path)},
    )


def _read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in _read_jsonl_lines(path)]


def _read_jsonl_lines(path: Path) -> list[tuple[int, dict]]:
    """(line number, object) for each non-blank line; blank lines are skipped."""
    if not path.is_file():
        raise PathNotFound(f"'{path}' does not exist")
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise InvalidRequest(f"{path}:{n}: not valid JSON ({e.msg})") from None
    return rows


def load_beir(folder: str | Path, split: str) -> RetrievalDataset:
    """A BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

    Only queries judged in the split's qrels are kept. The qrels file is tab-separated
    ``query-id corpus-id score`` with an optional header line.
    """
    folder = Path(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise PathNotFound(f"'{qrels_path}' does not exist (is '{split}' a split of {folder}?)")
    corpus = {
        str(r["_id"]): (str(r.get("title") or ""), str(r.get("text") or ""))
        for r in _read_jsonl(folder / "corpus.jsonl")
    }
    all_queries = {str(r["_id"]): str(r["text"]) for r in _read_jsonl(folder / "queries.jsonl")}
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.reader(f, delimiter="\t"), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 3:
                raise InvalidRequest(f"{qrels_path}:{n}: expected 3 tab-separated columns")
            qid, did, score = row[0].strip(), row[1].strip(), row[2].strip()
            try:
                grade = int(float(score))
            except ValueError:
                if n == 1:  # header line
                    continue
                raise InvalidRequest(f"{qrels_path}:{n}: score '{score}' is not a number") from None
            qrels.setdefault(qid, {})[did] = grade
    queries = {q: all_queries[q] for q in qrels if q in all_queries}
    qrels = {q: d for q, d in qrels.items() if q in queries}
    return RetrievalDataset(
        name=folder.name, split=split, corpus=corpus, queries=queries, qrels=qrels
    )


def squad_doc_id(title: str, index: int) -> str:
    """Stable document id of the ``index``-th paragraph of an article."""
    return f"{title}#{index}"


def load_squad(path: str | Path, split: str = "dev") -> RetrievalDataset:
    """SQuAD-format JSON: each paragraph a document, each question a query whose one
    relevant document is its paragraph (grade 1)."""
    path = Path(path)
    if not path.is_file():
        raise PathNotFound(f"'{path}' does not exist")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InvalidRequest(f"{path}: not valid JSON ({e.msg})") from None
    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for article in data.get("data", []):
        title = str(article.get("title", ""))
        for i, para in enumerate(article.get("paragraphs", [])):
            doc_id = squad_doc_id(title, i)
            corpus[doc_id] = (title.replace("_", " "), str(para["context"]))
            for qa in para.get("qas", []):
                qid = str(qa["id"])
                queries[qid] = str(qa["question"])
                qrels[qid] = {doc_id: 1}
    return RetrievalDataset(
        name=path.stem, split=split, corpus=corpus, queries=queries, qrels=qrels
    )


# -- ClapNQ: answer quality and abstention -----------------------------------------------

CLAPNQ_DIR = "clapnq-tune"
CLAPNQ_FILES: dict[str, bool] = {"answerable.jsonl": True, "unanswerable.jsonl": False}


@dataclass(frozen=True, slots=True)
class AnswerCase:
    """One question with the one passage it comes with and its gold long answer.

    ``gold_answer`` is empty when the passage does not answer the question (then
    ``answerable`` is False and the right response is "not found").
    """

    id: str
    question: str
    answerable: bool
    passage_id: str  # the passage's document source in the eval collection
    title: str
    text: str
    gold_answer: str
    selected_sentences: tuple[str, ...]


def passage_id(title: str, text: str) -> str:
    """Stable id of a passage: its title and the sha1 of its text, so a passage shared by
    several questions is one document.

        passage_id("Dada", "Dada or Dadaism was ...")   # "Dada#5c0f1e2a9b3d"
    """
    digest = hashlib.sha1(text.strip().encode("utf-8")).hexdigest()[:12]
    title = " ".join(title.split())
    return f"{title}#{digest}" if title else digest


def load_clapnq(datasets_dir: str | Path | None = None) -> list[AnswerCase]:
    """ClapNQ's answerable and unanswerable questions, or one file in the same format.

    ``datasets_dir``: the shared datasets folder (default ``../shared/datasets``), whose
    ``clapnq-tune/`` holds ``answerable.jsonl`` and ``unanswerable.jsonl``; the
    ``clapnq-tune`` folder itself; or a single JSONL file, where a question is answerable
    when its gold answer is not empty. Each line: ``id``, ``input`` (the question),
    ``passages`` (exactly one: ``title``, ``text``), ``output[0]`` (``answer``,
    ``selected_sentences``); or a plain labelled question about an existing collection:
    ``{"question", "answer" (empty: not answerable), "source" (optional: the document
    that answers it), "id" (optional)}``, which has no passage. Bad lines raise
    ``InvalidRequest`` naming file and line.
    """
    root = datasets_root(datasets_dir)
    if root.is_file():
        files: list[tuple[Path, bool | None]] = [(root, None)]
    else:
        folder = root if (root / "answerable.jsonl").exists() else root / CLAPNQ_DIR
        files = [(folder / name, answerable) for name, answerable in CLAPNQ_FILES.items()]
    cases: list[AnswerCase] = []
    seen: dict[str, str] = {}
    for path, answerable in files:
        for n, row in _read_jsonl_lines(path):
            case = _answer_case(row, f"{path}:{n}", answerable)
            if case.id in seen:
                raise InvalidRequest(
                    f"{path}:{n}: question id '{case.id}' repeats the one at {seen[case.id]}"
                )
            seen[case.id] = f"{path}:{n}"
            cases.append(case)
    if not cases:
        raise InvalidRequest(f"no questions in {', '.join(str(p) for p, _ in files)}")
    return cases


def _answer_case(row: object, where: str, answerable: bool | None) -> AnswerCase:
    """One ClapNQ line (or a plain labelled question) as an ``AnswerCase``;
    ``answerable`` None: decided by the answer."""
    if not isinstance(row, dict):
        raise InvalidRequest(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "question" in row and "input" not in row:
        return _plain_case(row, where)
    qid = row.get("id")
    if qid is None or isinstance(qid, (dict, list, bool)) or not str(qid).strip():
        raise InvalidRequest(f"{where}: missing or invalid 'id'")
    question = row.get("input")
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequest(f"{where}: 'input' (the question) must be a non-empty string")
    passages = row.get("passages")
    if not isinstance(passages, list) or len(passages) != 1 or not isinstance(passages[0], dict):
        if passages is None:
            raise InvalidRequest(f"{where}: missing 'passages' (a list of one object)")
        got = len(passages) if isinstance(passages, list) else type(passages).__name__
        raise InvalidRequest(f"{where}: 'passages' must be a list of one object (got {got})")
    title, text = passages[0].get("title", ""), passages[0].get("text")
    if not isinstance(title, str):
        raise InvalidRequest(f"{where}: the passage's 'title' must be a string")
    if not isinstance(text, str) or not text.strip():
        raise InvalidRequest(f"{where}: the passage's 'text' must be a non-empty string")
    output = row.get("output")
    if not isinstance(output, list) or not output or not isinstance(output[0], dict):
        raise InvalidRequest(f"{where}: 'output' must be a list starting with an object")
    gold = output[0].get("answer", "")
    selected = output[0].get("selected_sentences") or []
    if not isinstance(gold, str):
        raise InvalidRequest(f"{where}: 'output[0].answer' must be a string")
    if not isinstance(selected, list) or not all(isinstance(x, str) for x in selected):
        raise InvalidRequest(f"{where}: 'output[0].selected_sentences' must be a list of strings")
    has_answer = bool(gold.strip())
    if answerable is not None and answerable != has_answer:
        want = "a gold answer" if answerable else "an empty gold answer"
        raise InvalidRequest(f"{where}: expected {want} in 'output[0].answer'")
    return AnswerCase(
        id=str(qid).strip(),
        question=question.strip(),
        answerable=has_answer,
        passage_id=passage_id(title, text),
        title=title.strip(),
        text=text.strip(),
        gold_answer=gold.strip(),
        selected_sentences=tuple(selected),
    )


def _plain_case(row: dict, where: str) -> AnswerCase:
    """A labelled question about a collection you already have: ``question``, ``answer``
    (the text that answers it; empty when the documents do not), optional ``source`` (the
    document that answers it, as ``rag docs list`` shows it) and ``id``."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequest(f"{where}: 'question' must be a non-empty string")
    answer = row.get("answer")
    if not isinstance(answer, str):
        raise InvalidRequest(
            f"{where}: 'answer' must be a string (empty when the documents do not answer)"
        )
    source = row.get("source", "")
    if not isinstance(source, str):
        raise InvalidRequest(f"{where}: 'source' must be a string (a document's source name)")
    qid = row.get("id", where.rsplit(":", 1)[-1])
    if isinstance(qid, (dict, list, bool)) or not str(qid).strip():
        raise InvalidRequest(f"{where}: invalid 'id'")
    return AnswerCase(
        id=str(qid).strip(),
        question=question.strip(),
        answerable=bool(answer.strip()),
        passage_id=source.strip(),
        title="",
        text="",
        gold_answer=answer.strip(),
        selected_sentences=(),
    )
