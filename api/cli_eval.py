"""`rag eval run | list | show | diff | replay | judge-check | make-suite`: batch evaluation
runs from the command line (registered on ``api.cli.eval_app``).

    rag eval run evals/suites/examples.yaml --junit report.xml --html report.html \\
        --fail-under 0.8 --baseline run-3fa1c2d4e5f6
    rag eval diff RUN_A RUN_B
    rag eval replay RUN CASE
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli import (
    DEFAULT_TENANT,
    JsonOpt,
    TenantOpt,
    _platform,
    _print_json,
    _ref,
    collections_app,
    err,
    eval_app,
    id_table,
    out,
    progress_bar,
)
from core.errors import InvalidRequest


def _write(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InvalidRequest(f"cannot write the {what} to {path}: {e.strerror or e}") from e
    err.print(f"{what} written to {path}", highlight=False)


def _write_reports(run: Any, junit: Path | None, html: Path | None) -> None:
    from evals.reports import html_report, junit_xml

    if junit:
        _write(junit, junit_xml(run), "JUnit XML")
    if html:
        _write(html, html_report(run), "HTML report")


@eval_app.command("run")
def eval_run(
    suite_path: Annotated[Path, typer.Argument(metavar="SUITE", help="the suite's YAML file")],
    against: Annotated[
        str | None,
        typer.Option("--against", help="a running server's URL (default: in process)"),
    ] = None,
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="RAG_API_KEY", help="for --against")
    ] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="cases answered at once")] = 1,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="write the HTML report")] = None,
    fail_under: Annotated[
        float | None,
        typer.Option("--fail-under", min=0.0, max=1.0, help="exit 1 under this pass rate"),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="a stored run: exit 1 when a case it passed fails"),
    ] = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Run a suite (temperature 0, seed 0 unless it says otherwise), store the run, report it.

    Exit code 1 when the pass rate is under --fail-under or a case that passed in
    --baseline fails now: the CI gate."""
    from evals.batch import execute_run
    from evals.fingerprint import fingerprint_diff
    from evals.reports import render_run
    from evals.run_store import load_run
    from evals.runner import gate
    from evals.suite import load_suite

    suite = load_suite(suite_path)
    platform = _platform(start=against is None)
    base = load_run(platform.engine, tenant, baseline) if baseline else None
    with progress_bar("eval run", quiet=as_json) as bar:
        task = bar.add_task("", total=len(suite.cases))
        run = execute_run(
            platform,
            suite,
            str(suite_path),
            tenant=tenant,
            against=against,
            api_key=api_key,
            concurrency=concurrency,
            progress=lambda done, total: bar.update(task, completed=done),
        )
    skew = fingerprint_diff(base.fingerprint, run.fingerprint) if base else []
    if skew and not as_json:
        err.print(f"[yellow]configuration differs from baseline {base.id if base else ''}:[/]")
        for line in skew:
            err.print(f"  {line}", highlight=False)
    reasons = gate(run, fail_under, base)
    if as_json:
        _print_json({**run.to_json(), "skew": skew, "gate": reasons})
    else:
        render_run(run, out)
    _write_reports(run, junit, html)
    if reasons:
        for r in reasons:
            err.print(f"[red]gate failed[/]: {r}", highlight=False)
        raise typer.Exit(1)


@eval_app.command("list")
def eval_list(
    limit: Annotated[int, typer.Option(min=1, help="newest runs shown")] = 20,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Stored runs, newest first."""
    from evals.run_store import list_runs

    rows = list_runs(_platform(start=False).engine, tenant, limit)
    if as_json:
        _print_json({"data": rows, "count": len(rows)})
        return
    table = id_table("id", "suite", "target", "status", "passed", "rate", "started")
    for r in rows:
        rate = "-" if r["pass_rate"] is None else f"{r['pass_rate']:.1%}"
        table.add_row(
            r["id"],
            r["suite"][-40:],
            r["target"][-30:],
            r["status"],
            f"{r['n_passed']}/{r['n_cases']}",
            rate,
            (r["started_at"] or "")[:19],
        )
    out.print(table)


@eval_app.command("show")
def eval_show(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    html: Annotated[Path | None, typer.Option("--html", help="write the HTML report")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML")] = None,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """A stored run: its summary and failing cases (or its JSON / HTML / JUnit)."""
    from evals.reports import render_run
    from evals.run_store import load_run

    run = load_run(_platform(start=False).engine, tenant, run_id)
    if as_json:
        _print_json(run.to_json())
    else:
        render_run(run, out)
    _write_reports(run, junit, html)


@eval_app.command("diff")
def eval_diff(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B")],
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Cases that flipped between two runs, metric deltas per tag and assertion type, and
    what differs in their configurations."""
    from evals.reports import render_diff
    from evals.run_store import load_run
    from evals.runner import diff_runs

    engine = _platform(start=False).engine
    d = diff_runs(load_run(engine, tenant, run_a), load_run(engine, tenant, run_b))
    if as_json:
        _print_json(d.to_json())
    else:
        render_diff(d, out)


@eval_app.command("replay")
def eval_replay(
    run_id: Annotated[str, typer.Argument(metavar="RUN")],
    case_id: Annotated[str, typer.Argument(metavar="CASE")],
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Re-run one case of a stored run with its recorded suite, and say whether the answer
    is byte-identical; when the configuration differs, say what differs."""
    from evals.replay import replay_case

    result = replay_case(_platform(), tenant, run_id, case_id)
    if as_json:
        _print_json(result)
        return
    if result["config"]:
        out.print("[yellow]the configuration differs from the run's:[/]")
        for line in result["config"]:
            out.print(f"  {line}", highlight=False)
    verdict = "[green]byte-identical[/]" if result["identical"] else "[red]different[/]"
    out.print(f"case {case_id}: answer {verdict}", highlight=False)
    if not result["identical"]:
        out.print(f"  recorded: {result['recorded']!r}", highlight=False)
        out.print(f"  now:      {result['now']!r}", highlight=False)
    if result["passed_before"] != result["passed_now"]:
        out.print(
            f"  verdict flipped: passed {result['passed_before']} -> {result['passed_now']}",
            highlight=False,
        )


# -- gates -------------------------------------------------------------------------------------


@collections_app.command("gate")
def collections_gate(
    name: Annotated[str, typer.Argument(help="the collection")],
    suite_path: Annotated[
        Path | None, typer.Option("--suite", help="the suite a change must pass (YAML)")
    ] = None,
    min_pass_rate: Annotated[
        float, typer.Option("--min-pass-rate", min=0.0, max=1.0, help="the bar")
    ] = 1.0,
    remove: Annotated[bool, typer.Option("--remove", help="remove the gate")] = False,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Show, set (--suite) or remove (--remove) the collection's gate: a change (ingest,
    upload, delete) goes live only when the suite passes on the changed candidate."""
    import yaml

    from evals.gate import get_gate, set_gate

    platform = _platform(start=False)
    key = _ref(name, tenant, platform.settings)
    if remove and suite_path:
        raise InvalidRequest("give --suite or --remove, not both")
    if suite_path is not None:
        from evals.suite import load_suite

        load_suite(suite_path)  # the file's own errors, with its lines
        data = yaml.safe_load(suite_path.read_text(encoding="utf-8"))
        set_gate(platform, key, data, str(suite_path), min_pass_rate)
    elif remove:
        set_gate(platform, key, None)
    gate = get_gate(platform, key)
    if as_json:
        _print_json({"collection": key.name, "gate": gate})
    elif gate is None:
        out.print(f"collection {key.name}: no gate", highlight=False)
    else:
        n = len(gate["suite"].get("cases", []))
        out.print(
            f"collection {key.name}: changes go live when {gate['suite_name']} ({n} cases) "
            f"passes at {gate['min_pass_rate']:.0%} or more",
            highlight=False,
        )


@collections_app.command("rollback")
def collections_rollback(
    name: Annotated[str, typer.Argument(help="the collection")],
    tenant: TenantOpt = DEFAULT_TENANT,
) -> None:
    """Return a gated collection to the version before its last change went live."""
    from evals.gate import rollback

    platform = _platform()
    key = _ref(name, tenant, platform.settings)
    rollback(platform, key)
    out.print(f"collection {key.name}: the previous version is live again", highlight=False)


# -- judges and suites from public data ---------------------------------------------------------


@eval_app.command("judge-check")
def eval_judge_check(
    model: Annotated[
        str | None,
        typer.Option(help="a GGUF file or a bundled model (gemma3-270m, smollm2-135m)"),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="an OpenAI-compatible endpoint instead of a file")
    ] = None,
    labelled: Annotated[
        Path, typer.Option(help="JSONL: question, answer, sources, label (good|bad)")
    ] = Path("evals/labelled/judge-clapnq.jsonl"),
    as_json: JsonOpt = False,
) -> None:
    """Measure a judge against labelled verdicts (accuracy, Cohen's kappa) and remember the
    kappa here: suites with `judge.min_agreement` count its verdicts only when it reaches it."""
    from evals.judge import build_judge, judge_check, load_judge_set, remember_check
    from evals.suite import JudgeSpec

    platform = _platform(start=False)
    judge = build_judge(JudgeSpec(model_path=model, base_url=base_url), platform.settings)
    examples = load_judge_set(labelled)
    with progress_bar("judge-check", quiet=as_json) as bar:
        task = bar.add_task("", total=len(examples))
        check = judge_check(judge, examples, progress=lambda _m: bar.advance(task))
    remember_check(platform.settings.data_dir, judge, check, str(labelled))
    if as_json:
        _print_json({"judge": judge.name, **check.to_json(results=False)})
        return
    out.print(f"judge {judge.name} on {labelled}: {check.summary()}", highlight=False)
    verdict = "agrees with the labels" if check.kappa >= 0.6 else "cannot be trusted"
    out.print(f"kappa {check.kappa:.2f}: this judge {verdict} (0 = chance, 1 = perfect)")


@eval_app.command("make-suite")
def eval_make_suite(
    dataset: Annotated[str, typer.Option(help="xquad, squad, scifact or clapnq")],
    output: Annotated[Path, typer.Option("--out", "-o", help="the suite file to write")],
    n: Annotated[int | None, typer.Option(min=1, help="cases (default: all)")] = None,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    build: Annotated[
        bool, typer.Option("--build/--no-build", help="also build the suite's collection")
    ] = True,
    tenant: TenantOpt = DEFAULT_TENANT,
) -> None:
    """Turn a public data set into a suite (and build its eval-<dataset> collection)."""
    from evals.make_suite import ensure_suite_collection, write_suite

    platform = _platform(start=False)
    datasets_dir = platform.settings.datasets_dir
    suite = write_suite(output, dataset, n, seed, datasets_dir, progress=lambda m: err.print(m))
    if build:
        platform.startup()
        key, built = ensure_suite_collection(
            platform,
            dataset,
            tenant=tenant,
            datasets_dir=datasets_dir,
            progress=lambda m: err.print(m),
        )
        state = "built" if built else "already complete"
        err.print(f"collection {key.name}: {state}", highlight=False)
    out.print(f"{len(suite.cases)} cases written to {output} (sha256 {suite.sha256[:12]})")
