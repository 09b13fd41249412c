"""The `rag` command line.

    rag ingest docs/ --collection handbook
    rag ask "How do I reset my password?" --collection handbook
    rag keys create --tenant acme --label "acme web app"    # prints the secret once
    rag serve --port 8000

The CLI is the local admin: it reads the database directly, needs no key, and acts for
the tenant named by ``--tenant`` ("default" unless given).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn
from rich.table import Table

from core.errors import InvalidRequest, RagError
from core.settings import Settings
from core.types import DEFAULT_TENANT, CollectionKey, IngestOutcome, Query, check_tenant

app = typer.Typer(
    help="rag-platform: grounded answers with cited sources from your own documents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
docs_app = typer.Typer(help="List and delete documents.", no_args_is_help=True)
collections_app = typer.Typer(help="List collections.", no_args_is_help=True)
eval_app = typer.Typer(
    help="Evaluate retrieval and answers on labelled data.", no_args_is_help=True
)
keys_app = typer.Typer(
    help="Create, list and revoke API keys; each key acts for one tenant.", no_args_is_help=True
)
app.add_typer(docs_app, name="docs")
app.add_typer(collections_app, name="collections")
app.add_typer(eval_app, name="eval")
app.add_typer(keys_app, name="keys")

out = Console()
err = Console(stderr=True)


def _configured() -> Settings:
    """The settings as configured now (environment), for the defaults --help shows; the
    field defaults when the environment holds an invalid value (the command says so)."""
    try:
        return Settings()
    except Exception:
        return Settings.model_construct()


_HELP_DEFAULTS = _configured()

CollectionOpt = Annotated[
    str | None,
    typer.Option(
        "--collection",
        "-c",
        help=f"collection name (default: {_HELP_DEFAULTS.default_collection}, "
        "from RAG_DEFAULT_COLLECTION)",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _tenant_option(value: str | None) -> str | None:
    try:
        return None if value is None else check_tenant(value)
    except InvalidRequest as e:
        raise typer.BadParameter(e.message) from e


TenantOpt = Annotated[
    str,
    typer.Option(
        "--tenant", help="the tenant whose collections these are", callback=_tenant_option
    ),
]


def _ref(collection: str | None, tenant: str, settings: Settings) -> CollectionKey:
    """The --collection of the --tenant: resolved here, once; stages take the key."""
    return CollectionKey(tenant, collection or settings.default_collection)


def _shown(key: CollectionKey) -> str:
    return key.name if key.tenant == DEFAULT_TENANT else f"{key.name} (tenant {key.tenant})"


class _State:
    data_dir: Path | None = None


def _settings() -> Settings:
    settings = Settings()
    if _State.data_dir is not None:
        settings = settings.model_copy(update={"data_dir": _State.data_dir})
    return settings


def _platform(start: bool = True) -> Any:
    from api.platform import Platform

    platform = Platform(_settings())
    if start:
        platform.startup()
    return platform


def progress_bar(label: str, quiet: bool) -> Progress:
    """A progress bar on stderr (none when printing JSON or not on a terminal)."""
    return Progress(
        SpinnerColumn(),
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        console=err,
        transient=True,
        disable=quiet or not err.is_terminal,
    )


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def id_table(*headers: str) -> Table:
    """A table whose "id" column is never cut or wrapped (ids are copied into other
    commands); at 80 columns the other columns give way."""
    table = Table()
    for h in headers:
        if h == "id":
            table.add_column(h, no_wrap=True, min_width=32)
        else:
            table.add_column(h)
    return table


@app.callback()
def _root(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="where the database, indexes and models live", envvar=None),
    ] = None,
) -> None:
    _State.data_dir = data_dir


# -- ingest ------------------------------------------------------------------------------------

_STATUS_STYLE = {"ingested": "green", "replaced": "cyan", "unchanged": "dim", "failed": "red"}


def _count_inputs(paths: list[Path]) -> int | None:
    total = 0
    for p in paths:
        if p.is_dir():
            files = [f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")]
        else:
            files = [p]
        if any(f.suffix.lower() in (".jsonl", ".ndjson") for f in files):
            return None  # one line per document: unknown until read
        total += len(files)
    return total


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files and folders (recursive)")],
    collection: CollectionOpt = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    id_field: Annotated[str, typer.Option(help="JSONL: the document id field")] = "_id",
    text_field: Annotated[str, typer.Option(help="JSONL: the text field")] = "text",
    title_field: Annotated[str, typer.Option(help="JSONL: the title field")] = "title",
    source_prefix: Annotated[
        str,
        typer.Option(
            help="put before every source: a document is its path relative to the folder "
            "given, so `rag ingest docs/ --source-prefix docs` names files as `rag ingest .` does"
        ),
    ] = "",
    as_json: JsonOpt = False,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="run the job here and wait (default), or print its id and run it in the "
            "background (`rag jobs show ID`)",
        ),
    ] = True,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="keep the collection in sync with one folder until Ctrl-C: new and "
            "changed files ingested (one job per batch), deleted files' documents deleted",
        ),
    ] = False,
    interval: Annotated[
        float | None,
        typer.Option(help="--watch: look for changes every N seconds (polling) instead "
                     "of file-system events", min=0.1),
    ] = None,
) -> None:
    """Ingest files and folders as a job recorded in SQL (`rag jobs list`); prints per
    file: ingested / unchanged / replaced / failed. A collection with a gate is ingested
    through its gate suite instead (no job). ``--watch FOLDER`` keeps syncing."""
    from api.service import collection_exists, discard_refused, has_gate
    from ingest.jsonl import JsonlFields

    platform = _platform()
    name = _ref(collection, tenant, platform.settings)
    fields = JsonlFields(id_field=id_field, text_field=text_field, title_field=title_field)
    gated = has_gate(platform, name)
    if watch:
        from api.cli_watch import watch_folder

        if gated or len(paths) != 1 or not paths[0].is_dir():
            raise InvalidRequest("--watch takes one folder, into a collection without a gate")
        watch_folder(platform, name, paths[0], source_prefix, fields, interval, as_json)
        return
    existed = collection_exists(platform, name)
    job_id = None
    if not gated:
        job_id = platform.jobs.create_path_job(
            name, paths, source_prefix=source_prefix, jsonl=fields
        )
        if not wait:
            from api.cli_jobs import spawn_job

            log = spawn_job(job_id)
            if as_json:
                _print_json({"job_id": job_id, "log": str(log)})
            else:
                out.print(job_id)
                err.print(f"running in the background (log: {log}); see `rag jobs show {job_id}`")
            return
    total = _count_inputs(paths)
    lines: list[IngestOutcome] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]ingest[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
        disable=as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("", total=total)

        def on_progress(o: IngestOutcome) -> None:
            lines.append(o)
            progress.update(task, advance=1, description=o.source[-40:])
            if not as_json and (total is None or total <= 200 or o.status == "failed"):
                style = _STATUS_STYLE[o.status]
                reason = f" — {o.error}" if o.error else ""
                chunks = f" ({o.chunks} chunks)" if o.chunks else ""
                progress.console.print(f"[{style}]{o.status:9}[/] {o.source}{chunks}{reason}")

        from evals.gate import gated_change

        outcome = None
        if job_id is not None:  # run it here; Ctrl-C cancels it (`rag jobs retry` resumes)
            platform.jobs.run(job_id, on_progress=on_progress)
            report = platform.jobs.report(name.tenant, job_id)
            discard_refused(platform, name, existed, report)  # no empty collection left
        else:
            outcome = gated_change(
                platform,
                name,
                lambda key: platform.ingest.ingest_paths(
                    paths, key, jsonl=fields, on_progress=on_progress, source_prefix=source_prefix
                ),
            )
            report = outcome.result
    counts = {s: sum(1 for o in report.outcomes if o.status == s) for s in _STATUS_STYLE}
    if as_json:
        from api.schemas import IngestReportPublic

        _print_json(IngestReportPublic.of(report).model_dump(mode="json"))
    else:
        out.print(
            f"collection [bold]{_shown(name)}[/]: {counts['ingested']} ingested, "
            f"{counts['replaced']} replaced, {counts['unchanged']} unchanged, "
            f"{counts['failed']} failed, {report.chunks} chunks written"
        )
        for o in report.failed:
            err.print(f"[red]failed[/] {o.source}: {o.error}")
    if outcome is not None:
        _gate_verdict(outcome)
    if report.failed:
        raise typer.Exit(3)


def _gate_verdict(outcome: Any) -> None:
    """Say what a gated collection's suite decided; exit 4 when it refused the change."""
    if not outcome.gated:
        return
    run = outcome.run
    if outcome.accepted:
        err.print(
            f"[green]gate passed[/]: {run.pass_rate:.1%} of the suite (run {run.id}); "
            "the change is live",
            highlight=False,
        )
        return
    for reason in outcome.reasons:
        err.print(f"[red]gate refused the change[/]: {reason}", highlight=False)
    err.print(f"the live version is unchanged; see `rag eval show {run.id}`", highlight=False)
    raise typer.Exit(4)


# -- ask / retrieve -----------------------------------------------------------------------------


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    collection: CollectionOpt = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="sources retrieved")] = None,
    temperature: Annotated[float | None, typer.Option(help="sampling temperature")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="answer length limit")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Answer a question from the documents, with numbered sources."""
    from api.schemas import SamplingIn, answer_to_dict

    platform = _platform()
    settings = platform.settings
    sampling = SamplingIn(temperature=temperature, max_tokens=max_tokens, seed=seed)
    answer = platform.query.answer(
        question,
        _ref(collection, tenant, settings),
        top_k=top_k or settings.retrieval.top_k,
        sampling=sampling.to_core(settings.llm),
    )
    if as_json:
        _print_json(answer_to_dict(answer))
        return
    if answer.short_answer:
        out.print(f"[bold]{escape(answer.short_answer)}[/]", highlight=False)
    out.print(escape(answer.text), highlight=False)
    if answer.citations:
        out.print("\n[bold]Sources[/]")
        for c in answer.citations:
            ch = c.source.chunk
            page = f", page {ch.page}" if ch.page else ""
            mark = " (attributed)" if c.attributed else ""
            snippet = " ".join((c.snippet or ch.text).split())[:200]
            out.print(f"[{c.n}] [bold]{ch.source}[/]{page}{mark}\n    {snippet}", highlight=False)
    t = answer.timings
    err.print(
        f"[dim]retrieve {t.retrieve_ms:.0f} ms, generate {t.generate_ms:.0f} ms, "
        f"total {t.total_ms:.0f} ms; model {Path(answer.model.path).name}[/]"
    )


@app.command()
def retrieve(
    query: Annotated[str, typer.Argument(help="the search text")],
    collection: CollectionOpt = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            "-k",
            help=f"chunks shown (default: {_HELP_DEFAULTS.retrieval.top_k}, "
            "from RAG_RETRIEVAL__TOP_K)",
        ),
    ] = None,
    method: Annotated[str, typer.Option(help="hybrid, bm25 or dense")] = "hybrid",
    as_json: JsonOpt = False,
) -> None:
    """Show the ranked chunks for a query, without the LLM."""
    from api.schemas import retrieved_to_dict

    if method not in ("hybrid", "bm25", "dense"):
        raise InvalidRequest(f"--method must be hybrid, bm25 or dense, not '{method}'")
    platform = _platform()
    settings = platform.settings
    chunks = platform.retriever.retrieve(
        Query(
            text=query,
            collection=_ref(collection, tenant, settings),
            top_k=top_k or settings.retrieval.top_k,
        ),
        method=method,
    )
    if as_json:
        _print_json({"chunks": [retrieved_to_dict(c, with_text=True) for c in chunks]})
        return
    table = Table("#", "score", "bm25", "dense", "source", "text")
    for i, c in enumerate(chunks, 1):
        table.add_row(
            str(i),
            f"{c.score:.4f}",
            str(c.bm25_rank or "-"),
            str(c.dense_rank or "-"),
            c.chunk.source,
            " ".join(c.chunk.text.split())[:90],
        )
    out.print(table)


# -- documents and collections ----------------------------------------------------------------


@docs_app.command("list")
def docs_list(
    collection: CollectionOpt = None, tenant: TenantOpt = DEFAULT_TENANT, as_json: JsonOpt = False
) -> None:
    """List a collection's documents."""
    from api import service

    platform = _platform(start=False)
    docs = service.list_documents(platform, _ref(collection, tenant, platform.settings))
    if as_json:
        _print_json(docs.model_dump(mode="json"))
        return
    table = id_table("id", "source", "type", "version", "status", "chunks", "bytes", "flagged")
    for d in docs.data:
        table.add_row(
            d.id,
            d.source,
            d.media_type,
            str(d.version),
            d.status,
            str(d.n_chunks),
            str(d.size_bytes),
            ", ".join(f"{check} {n}" for check, n in sorted(d.flags.items())) or "-",
        )
    out.print(table)


@docs_app.command("delete")
def docs_delete(
    document_ids: Annotated[list[str], typer.Argument(help="document ids (see `rag docs list`)")],
    collection: CollectionOpt = None,
    tenant: TenantOpt = DEFAULT_TENANT,
) -> None:
    """Delete documents from SQL and both indexes."""
    platform = _platform()
    name = _ref(collection, tenant, platform.settings)
    from evals.gate import gated_delete

    for doc_id in document_ids:
        outcome = gated_delete(platform, name, doc_id)
        _gate_verdict(outcome)
        out.print(f"deleted {doc_id}")


@collections_app.command("list")
def collections_list(
    tenant: TenantOpt = DEFAULT_TENANT,
    all_tenants: Annotated[
        bool, typer.Option("--all-tenants", help="every tenant's collections (overrides --tenant)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """List collections with their document and chunk counts."""
    from api import service

    cols = service.list_collections(_platform(start=False), None if all_tenants else tenant)
    if as_json:
        _print_json(cols.model_dump(mode="json"))
        return
    # Names are typed into -c: whole on one line up to 40 characters, folded (never cut)
    # beyond; the other columns give way at 80 columns.
    longest = max((len(c.name) for c in cols.data), default=4)
    table = Table("tenant")
    table.add_column("name", min_width=min(longest, 40), overflow="fold")
    for header in ("documents", "chunks", "fusion", "created"):
        table.add_column(header)
    for c in cols.data:
        fusion = c.fusion.mode or "default"
        table.add_row(
            c.tenant, c.name, str(c.documents), str(c.chunks), fusion, str(c.created_at)[:19]
        )
    out.print(table)


# -- evaluation -----------------------------------------------------------------------------------


@eval_app.command("retrieval")
def eval_retrieval(
    dataset: Annotated[str, typer.Option(help="scifact, squad or xquad")],
    split: Annotated[str | None, typer.Option(help="test, train or dev")] = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """BM25 alone, dense alone and hybrid (each fusion mode) on a public data set: one table."""
    from evals.retrieval_eval import eval_collection_name, evaluate_retrieval, render_table

    collection = CollectionKey(tenant, eval_collection_name(_dataset_name(dataset)))
    platform = _platform()
    quiet = as_json
    with progress_bar("ingest", quiet) as bar:
        task = bar.add_task("", total=None, visible=False)

        def on_message(message: str) -> None:
            if not quiet:
                bar.console.print(f"[dim]{message}[/]", highlight=False)

        def on_ingested(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=done < total)
            step = max(1, total // 10)
            if not quiet and not err.is_terminal and (done % step == 0 or done == total):
                err.print(f"ingested {done}/{total}", highlight=False)

        result = evaluate_retrieval(
            platform, dataset, split, collection=collection,
            datasets_dir=platform.settings.datasets_dir, progress=on_message,
            on_ingested=on_ingested,
        )  # fmt: skip
    if as_json:
        _print_json(result.to_json())
    else:
        render_table(result, out)


@eval_app.command("answers")
def eval_answers(
    dataset: Annotated[
        str, typer.Option(help="clapnq, or a JSONL file in ClapNQ's format (your own labels)")
    ],
    n: Annotated[
        int | None, typer.Option("--n", help="ask a seeded stratified subset of N questions")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the --n subset")] = 0,
    top_k: Annotated[int | None, typer.Option("--top-k", "-k", help="sources retrieved")] = None,
    distractors: Annotated[
        int, typer.Option(help="also index N SQuAD dev paragraphs, in their own collection")
    ] = 0,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: Annotated[
        bool, typer.Option("--json", help="print the figures as one JSON object")
    ] = False,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="write the figures and per-case rows as JSON")
    ] = None,
) -> None:
    """Answer quality and abstention: every question through the query path, one table."""
    from evals.answer_eval import evaluate_answers, load_answer_set, render_table

    datasets_dir = _settings().datasets_dir
    spec = load_answer_set(
        dataset, n=n, seed=seed, distractors=distractors, datasets_dir=datasets_dir
    )
    platform = _platform()
    top_k = top_k or platform.settings.retrieval.top_k
    quiet = as_json
    total = len(spec.cases)
    step = max(1, total // 10)
    done: list[Any] = []
    with progress_bar("eval answers", quiet) as bar:
        task = bar.add_task("", total=total)

        def on_message(message: str) -> None:
            if not quiet:
                bar.console.print(f"[dim]{message}[/]", highlight=False)

        def on_case(row: Any) -> None:
            done.append(row)
            bar.update(task, advance=1)
            if not quiet and not err.is_terminal and (len(done) % step == 0 or len(done) == total):
                err.print(f"answered {len(done)}/{total}", highlight=False)

        result = evaluate_answers(
            platform.query, platform.ingest, platform.engine, spec.cases,
            CollectionKey(tenant, spec.collection), top_k=top_k, corpus=spec.corpus,
            progress=on_message, on_case=on_case,
        )  # fmt: skip
    if out_file is not None:
        out_file.write_text(result.dumps() + "\n", encoding="utf-8")
    if as_json:
        _print_json(result.to_json(cases=False))
    else:
        render_table(result, out)
        if out_file is not None:
            err.print(f"per-case rows written to {out_file}", highlight=False)


@app.command()
def tune(
    collection: CollectionOpt = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    dataset: Annotated[
        str,
        typer.Option(
            help="labelled queries, required: scifact, squad or xquad; with --abstention "
            "(optional there, default clapnq): clapnq or a JSONL file in ClapNQ's format"
        ),
    ] = "",
    split: Annotated[str | None, typer.Option(help="the labelled split (e.g. train)")] = None,
    abstention: Annotated[
        bool,
        typer.Option(
            "--abstention",
            help="fit the answer selector and the answer-or-abstain model instead of fusion",
        ),
    ] = False,
    target_precision: Annotated[
        float,
        typer.Option(help="with --abstention: share of abstentions that must be right"),
    ] = 0.8,
    feedback: Annotated[
        bool,
        typer.Option(
            "--feedback",
            help="tune on the collection's answer feedback (beside --dataset's labels when "
            "given); stored only when it beats the current fusion on held-out labels",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Search fusion parameters on labelled queries and store the best for the collection;
    with --abstention, fit and store the collection's answer selector and abstention model;
    with --feedback, learn from users' thumbs up/down (POST /v1/feedback)."""
    from evals.tune import render_tune, tune_fusion

    if abstention:
        _tune_abstention(collection, tenant, dataset or "clapnq", target_precision, as_json)
        return
    if feedback:
        _tune_feedback(collection, tenant, dataset, split, as_json)
        return
    if not dataset:
        raise InvalidRequest("--dataset is required (scifact, squad or xquad)")
    from evals.retrieval_eval import eval_collection_name

    target = CollectionKey(tenant, collection or eval_collection_name(_dataset_name(dataset)))
    platform = _platform()
    result = tune_fusion(
        platform, target, dataset, split, datasets_dir=platform.settings.datasets_dir
    )
    if as_json:
        _print_json(result.to_json())
    else:
        render_tune(result, out)


def _tune_feedback(
    collection: str | None, tenant: str, dataset: str, split: str | None, as_json: bool
) -> None:
    """`rag tune --feedback`: the collection's feedback (and a data set's labels, its
    eval collection by default) -> the tuned fusion, stored when it wins on held-out."""
    from evals.datasets import dataset_spec, load_dataset
    from evals.feedback_tune import render_feedback_tune, tune_with_feedback
    from evals.retrieval_eval import eval_collection_name

    platform = _platform()
    labelled = None
    if dataset:
        spec = dataset_spec(dataset)
        datasets_dir = platform.settings.datasets_dir
        labelled = load_dataset(spec.name, split or spec.train_split, datasets_dir)
        collection = collection or eval_collection_name(spec.name)
    key = _ref(collection, tenant, platform.settings)
    result = tune_with_feedback(platform, key, labelled)
    if as_json:
        _print_json(result.to_json())
    else:
        render_feedback_tune(result, out)


def _tune_abstention(
    collection: str | None, tenant: str, dataset: str, target_precision: float, as_json: bool
) -> None:
    """`rag tune --abstention`: labelled questions about a collection (ClapNQ's own pool
    when --dataset clapnq and no --collection) -> fitted models stored in its SQL row."""
    from evals.answer_eval import load_answer_set
    from evals.answer_fit import render, tune_answer_models
    from evals.retrieval_eval import ensure_collection

    aset = load_answer_set(
        dataset, require_passages=collection is None, datasets_dir=_settings().datasets_dir
    )
    platform = _platform()
    if collection is None:  # the data set's own passages, ingested as `rag eval answers` does
        ref = CollectionKey(tenant, aset.collection)
        ensure_collection(platform.engine, platform.ingest, aset.corpus, ref, err.print)
    else:
        ref = _ref(collection, tenant, platform.settings)
    result = tune_answer_models(
        platform.retriever,
        platform.embedder,
        platform.engine,
        ref,
        aset.cases,
        dataset=aset.name,
        target_precision=target_precision,
        top_k=platform.settings.retrieval.top_k,
        progress=lambda m: err.print(f"[dim]{m}[/]"),
    )
    if as_json:
        _print_json(result.to_json())
        return
    out.print(render(result.report), highlight=False)
    what = "selector and abstention model" if result.selector_fitted else "abstention model"
    out.print(
        f"stored the {what} for collection '{_shown(ref)}': abstain from P(unanswerable) "
        f"{result.composer.abstainer.threshold:.3f}",
        highlight=False,
    )


def _dataset_name(dataset: str) -> str:
    from evals.datasets import dataset_spec

    return dataset_spec(dataset).name


# -- API keys -------------------------------------------------------------------------------------


def _engine() -> Any:
    """The platform's database (nothing else of it is built or started)."""
    return _platform(start=False).engine


@keys_app.command("create")
def keys_create(
    tenant: Annotated[
        str, typer.Option("--tenant", help="the tenant the key acts for", callback=_tenant_option)
    ],
    label: Annotated[str, typer.Option(help="what the key is for, shown in lists")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Create a key for a tenant and print its secret: shown once, stored only as a hash."""
    from api.auth import create_api_key

    created = create_api_key(_engine(), tenant, label)
    if as_json:
        _print_json(created.model_dump(mode="json"))
        return
    out.print(created.secret, highlight=False, soft_wrap=True)
    err.print(
        f"[green]created[/] key {created.key.id} for tenant [bold]{tenant}[/]"
        f"{f' ({label})' if label else ''}. Copy the secret now: it is not shown again. "
        "Send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'.",
        highlight=False,
    )


@keys_app.command("list")
def keys_list(
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", help="only this tenant's keys", callback=_tenant_option),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List keys (revoked ones too) with their ids and prefixes; never a secret."""
    from api.auth import list_api_keys

    keys = list_api_keys(_engine(), tenant)
    if as_json:
        _print_json(keys.model_dump(mode="json"))
        return
    # The id first and whole (to copy into `rag keys revoke`); narrow terminals squeeze the rest.
    table = Table()
    table.add_column("id", no_wrap=True, min_width=32)
    table.add_column("tenant", no_wrap=True)
    table.add_column("prefix", no_wrap=True)
    for name in ("label", "revoked", "last used", "created"):
        table.add_column(name)
    for k in keys.data:
        table.add_row(
            k.id,
            k.tenant,
            k.prefix + "…",
            k.label,
            str(k.revoked_at)[:16] if k.revoked_at else "-",
            str(k.last_used_at)[:16] if k.last_used_at else "-",
            str(k.created_at)[:16],
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="the key's id (see `rag keys list`)")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: requests with it get 401 from then on."""
    from api.auth import revoke_api_key

    key = revoke_api_key(_engine(), key_id)
    if as_json:
        _print_json(key.model_dump(mode="json"))
        return
    out.print(f"revoked {key.id} ({key.prefix}…, tenant {key.tenant})", highlight=False)


# -- serve --------------------------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[
        str | None,
        typer.Option(help=f"bind address (default: {_HELP_DEFAULTS.api.host}, from RAG_API__HOST)"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(help=f"port (default: {_HELP_DEFAULTS.api.port}, from RAG_API__PORT)"),
    ] = None,
    log_format: Annotated[
        str, typer.Option(help="json: one JSON object per log line (request id, tenant, "
                          "route, status, timings); text: uvicorn's plain lines")
    ] = "json",
    log_level: Annotated[str, typer.Option(help="DEBUG, INFO, WARNING, ERROR")] = "INFO",
) -> None:
    """Serve the REST API (/docs) and the web page (/)."""
    import uvicorn

    from api.app import create_app
    from api.observability import configure_logging

    if log_format not in ("json", "text"):
        raise typer.BadParameter("use json or text", param_hint="--log-format")
    if log_format == "json":
        configure_logging(log_level.upper())
    else:  # the platform's own lines (drain, restart repairs…) beside uvicorn's
        logging.basicConfig(level=log_level.upper(), format="%(levelname)-9s %(name)s: %(message)s")
    settings = _settings()
    from api.allocator import AllocatorTuning

    # before the models load: their buffers then come from a heap that stays flat
    AllocatorTuning(
        settings.api.malloc_mmap_threshold_kib, settings.api.malloc_trim_every_s
    ).start()
    application = create_app(settings, warm_up=True)
    keys = (
        "every /v1 request needs an API key"
        if settings.api.auth_required
        else "requests without an API key act as tenant 'default'"
    )
    err.print(
        f"serving on http://{host or settings.api.host}:{port or settings.api.port} "
        f"(API docs at /docs; {keys})"
    )
    # json: keep the handlers configure_logging installed (uvicorn's own config would
    # replace them) and leave the access line to api.observability
    as_json = log_format == "json"
    from api.lifecycle import GracefulServer

    config = uvicorn.Config(
        application,
        host=host or settings.api.host,
        port=port or settings.api.port,
        log_config=None if as_json else uvicorn.config.LOGGING_CONFIG,
        access_log=not as_json,
        # the drain already gave running requests api.shutdown_grace_s: what still runs
        # after it is cancelled this soon
        timeout_graceful_shutdown=3,
    )
    GracefulServer(config, application.state.lifecycle, settings.api.shutdown_grace_s).run()


# The batch evaluation run and content-check commands live in their own modules;
# importing them registers them.
from api import cli_checks, cli_eval, cli_jobs  # noqa: E402, F401

# -- errors ---------------------------------------------------------------------------------------


def main() -> None:
    """Entry point: run the app, turning platform errors into a message and an exit code."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TQDM_DISABLE", "1")
    try:
        rv = app(standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except RagError as e:
        err.print(f"[red]error[/] ({e.code}): {e.message}", highlight=False)
        sys.exit(e.exit_code)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as e:  # usage errors: click's, or the copy of click typer carries
        if any(c.__name__ == "ClickException" for c in type(e).__mro__):
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        raise


if __name__ == "__main__":
    # Run the app of the module ``api.cli`` (the one api.cli_eval registers its commands
    # on), not of this ``__main__`` copy.
    from api.cli import main as _main

    _main()
