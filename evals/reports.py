"""Reports of eval runs: a terminal table, JSON, JUnit XML for CI, one self-contained HTML.

    run = run_suite(suite, answerer, ctx, suite_name="examples")
    render_run(run, Console())                     # summary, per type / tag, failing cases
    render_diff(diff_runs(baseline, run), Console())
    Path("run.json").write_text(run_json(run))
    Path("junit.xml").write_text(junit_xml(run))   # one testsuite, one testcase per case
    Path("report.html").write_text(html_report(run))  # charts inline (SVG), no URL loaded

Every report reads the same ``RunResult`` and ``RunResult.summary()``; a case is in
exactly one of passed, failed (its query errored, or its assertions failed) and skipped
(nothing could be counted: reported apart, neither passed nor failed).
"""

from __future__ import annotations

import functools
import io
import json
import re
import textwrap
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Template
    from matplotlib.axes import Axes
    from rich.console import Console

    from evals.runner import CaseResult, RunDiff, RunResult

_DASH = "–"


# -- shared figures --------------------------------------------------------------------------


def _pct(rate: float | None) -> str:
    return _DASH if rate is None else f"{rate:.1%}"


def _ms(value: float | None) -> str:
    return _DASH if value is None else f"{value:,.0f} ms"


def _of(rate: Mapping[str, Any]) -> str:
    """``{"n", "passed", "rate"}`` (a summary's rate) as "passed / n"."""
    return f"{rate['passed']} / {rate['n']}" if rate["n"] else _DASH


def failing_cases(run: RunResult) -> list[CaseResult]:
    """Cases that failed: their query errored or their assertions did not pass (not skipped)."""
    return [c for c in run.cases if not c.passed and not c.skipped]


def failure_reasons(case: CaseResult) -> list[str]:
    """Why ``case`` failed, one line each: the query's error, else every failed assertion
    ("type: reason"); a case failed only by its threshold says so."""
    if case.error is not None:
        return [f"error: {case.error}"]
    reasons = [f"{v.type}: {v.reason}" for v in case.verdicts if not v.passed and not v.skipped]
    return reasons or [f"case score {case.score:.2f} is under its threshold"]


def summary_rows(run: RunResult) -> list[tuple[str, str, str]]:
    """The run's headline figures as (figure, value, counts): what the terminal table and
    the HTML report both show."""
    s = run.summary()
    n = s["cases"]
    skipped = sum(c.skipped for c in run.cases)
    lat = s["latency_ms"]
    done = f"{n} / {run.n_cases}" if run.n_cases and n != run.n_cases else str(n)
    return [
        ("cases", done, ""),
        ("pass rate", _pct(s["pass_rate"]), f"{s['passed']} / {n}"),
        ("failed", str(len(failing_cases(run))), ""),
        ("errors", str(s["errors"]), ""),
        ("skipped", str(skipped), ""),
        ("exact match", _pct(s["em"]), ""),
        ("token F1", _pct(s["f1"]), ""),
        (
            "answerable: answered",
            _pct(s["answerable_answered"]["rate"]),
            _of(s["answerable_answered"]),
        ),
        (
            "unanswerable: abstained",
            _pct(s["unanswerable_abstained"]["rate"]),
            _of(s["unanswerable_abstained"]),
        ),
        ("latency p50", _ms(lat["p50"]), ""),
        ("latency p95", _ms(lat["p95"]), ""),
        ("latency max", _ms(lat["max"]), ""),
        ("tokens generated", f"{s['tokens']:,}", ""),
    ]


def _rate_rows(rates: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """A summary section (``by_type`` / ``by_tag``) as (name, rate, "passed / n")."""
    return [(name, _pct(r["rate"]), _of(r)) for name, r in rates.items()]


def model_summary(fingerprint: Mapping[str, Any]) -> dict[str, str]:
    """The model lines of a fingerprint (empty when the run has none)."""
    llm = fingerprint.get("llm") or {}
    out = {
        "model": llm.get("model"),
        "model file": llm.get("model_path"),
        "model sha256": llm.get("model_sha256"),
        "embedding model": fingerprint.get("embedding_model"),
    }
    return {k: str(v) for k, v in out.items() if v}


def collection_summary(fingerprint: Mapping[str, Any]) -> dict[str, str]:
    """Each collection of a fingerprint in a line: documents, chunks, index digest, fusion."""
    out = {}
    for name, c in (fingerprint.get("collections") or {}).items():
        if c is None:
            out[name] = "absent"
            continue
        parts = [f"{c.get('documents', '?')} documents", f"{c.get('chunks', '?')} chunks"]
        if c.get("index"):
            parts.append(f"index {c['index']}")
        if c.get("fusion"):
            parts.append(f"fusion {c['fusion']}")
        out[name] = ", ".join(parts)
    return out


# -- terminal ----------------------------------------------------------------------------------


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: user text is never markup
    return table


def render_run(run: RunResult, console: Console) -> None:
    """The run as terminal tables: summary, pass rate per assertion type and per tag, then
    every failing case with its failed assertions' reasons."""
    from rich.table import Table
    from rich.text import Text

    s = run.summary()
    console.print(
        Text(f"run {run.id}: suite {run.suite_name}, target {run.target}, {run.status}"),
        style="bold",
    )
    if run.error:
        console.print(Text(f"run error: {run.error}"), style="red")
    console.print(_table("summary", ("figure", "value", "of"), summary_rows(run)))
    if s["by_type"]:
        rows = _rate_rows(s["by_type"])
        console.print(_table("pass rate per assertion type", ("type", "rate", "of"), rows))
    if s["by_tag"]:
        rows = _rate_rows(s["by_tag"])
        console.print(_table("pass rate per tag", ("tag", "rate", "of"), rows))
    failing = failing_cases(run)
    if failing:
        table = Table(title=f"failing cases ({len(failing)})", title_justify="left")
        table.add_column("case", no_wrap=True)
        table.add_column("question", ratio=1)
        table.add_column("failed", ratio=2)
        for c in failing:
            table.add_row(
                Text(c.case_id),
                Text(textwrap.shorten(c.question, width=70, placeholder=" …")),
                Text("\n".join(failure_reasons(c))),
            )
        console.print(table)
    skipped = [c.case_id for c in run.cases if c.skipped]
    if skipped:
        console.print(Text(f"skipped (nothing could be counted): {', '.join(skipped)}"))


def _delta_cells(key: str, a: float | None, b: float | None) -> tuple[str, str, str]:
    """Latencies (``*_ms``) in ms; every other figure is a rate, its delta in points."""
    if key.endswith("_ms"):
        delta = _DASH if a is None or b is None else f"{b - a:+,.0f} ms"
        return _ms(a), _ms(b), delta
    delta = _DASH if a is None or b is None else f"{(b - a) * 100:+.1f} pp"
    return _pct(a), _pct(b), delta


def render_diff(diff: RunDiff, console: Console) -> None:
    """Two runs compared: the cases that flipped, the figures that moved per section, and
    the configuration differences."""
    from rich.text import Text

    console.print(Text(f"diff {diff.a} -> {diff.b}"), style="bold")
    for label, ids in (
        ("fixed (failed, now pass)", diff.fixed),
        ("broken (passed, now fail)", diff.broken),
        (f"only in {diff.a}", diff.only_a),
        (f"only in {diff.b}", diff.only_b),
    ):
        if ids or label.startswith(("fixed", "broken")):
            console.print(Text(f"{label}: {len(ids)}" + (f": {', '.join(ids)}" if ids else "")))
    titles = {"overall": ("overall", "figure"), "by_type": ("per assertion type", "type")}
    titles["by_tag"] = ("per tag", "tag")
    for section, rows in diff.deltas.items():
        if rows:
            title, first = titles.get(section, (section, ""))
            table_rows = [(key, *_delta_cells(key, a, b)) for key, (a, b) in rows.items()]
            console.print(_table(title, (first, diff.a, diff.b, "delta"), table_rows))
    if diff.config:
        console.print(Text("configuration differences:"))
        for line in diff.config:
            console.print(Text(f"  {line}"))
    else:
        console.print(Text("same configuration"))


# -- JSON --------------------------------------------------------------------------------------


def run_json(run: RunResult) -> str:
    """The run with every case, as indented JSON (``RunResult.to_json``)."""
    return json.dumps(run.to_json(), indent=2, ensure_ascii=False, default=str)


# -- JUnit XML ---------------------------------------------------------------------------------

# characters XML 1.0 cannot hold at all (a model may well write them)
_XML_INVALID = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _x(text: object) -> str:
    return _XML_INVALID.sub("\ufffd", str(text))


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.3f}"


def junit_xml(run: RunResult) -> str:
    """JUnit XML as CI systems read it: one testsuite (the suite), one testcase per case
    (classname: its first tag, else the suite name) with ``<failure>`` listing the failed
    assertions, ``<error>`` when its query failed, ``<skipped>`` when nothing could be
    counted; the run id, target, pass rate and model sha256 as properties."""
    failures = [c for c in failing_cases(run) if c.error is None]
    errors = [c for c in run.cases if c.error is not None]
    skipped = [c for c in run.cases if c.skipped]
    total_ms = sum(c.latency_ms for c in run.cases)
    counts = {
        "tests": str(len(run.cases)),
        "failures": str(len(failures)),
        "errors": str(len(errors)),
        "skipped": str(len(skipped)),
        "time": _seconds(total_ms),
    }
    root = ET.Element("testsuites", {"name": _x(run.suite_name), **counts})
    suite = ET.SubElement(
        root,
        "testsuite",
        {"name": _x(run.suite_name), **counts, "timestamp": run.started_at, "id": _x(run.id)},
    )
    props = ET.SubElement(suite, "properties")
    llm = run.fingerprint.get("llm") or {}
    for name, value in (
        ("run_id", run.id),
        ("suite_sha256", run.suite_sha256),
        ("target", run.target),
        ("tenant", run.tenant),
        ("pass_rate", f"{run.pass_rate:.4f}"),
        ("platform_version", run.platform_version),
        ("model", llm.get("model")),
        ("model_sha256", llm.get("model_sha256")),
    ):
        if value is not None:
            ET.SubElement(props, "property", {"name": name, "value": _x(value)})
    for c in run.cases:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": _x(c.tags[0] if c.tags else run.suite_name),
                "name": _x(c.case_id),
                "time": _seconds(c.latency_ms),
            },
        )
        if c.error is not None:
            err = ET.SubElement(case, "error", {"message": _x(c.error), "type": "query_error"})
            err.text = _x(c.error)
        elif c.skipped:
            why = "; ".join(v.reason for v in c.verdicts if v.skipped) or "nothing counted"
            ET.SubElement(case, "skipped", {"message": _x(why)})
        elif not c.passed:
            reasons = failure_reasons(c)
            fail = ET.SubElement(
                case, "failure", {"message": _x("; ".join(reasons)), "type": "assertion"}
            )
            fail.text = _x("\n".join([*reasons, f"case score: {c.score:.3f}"]))
            out = ET.SubElement(case, "system-out")
            out.text = _x(f"question: {c.question}\nanswer: {c.answer}")
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# -- HTML --------------------------------------------------------------------------------------

_CHART_LOCK = threading.Lock()  # rcParams are process-wide; one chart at a time
_BLUE, _GREEN, _RED = "#3b6ea8", "#4c9a5b", "#c0504d"


def _svg(fig: Any, salt: str) -> str:
    """``fig`` as an inline ``<svg>`` element (ids salted per chart so that several charts
    in one page do not share ids)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _new_axes(height: float) -> tuple[Any, Axes]:
    # the Figure class, not pyplot: no global figure registry, no GUI backend
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, height), layout="constrained")
    return fig, fig.add_subplot()


def _rate_chart(rates: Mapping[str, Mapping[str, Any]], salt: str) -> str:
    from matplotlib.ticker import PercentFormatter

    names = list(rates)[::-1]  # first row on top
    values = [rates[n]["rate"] or 0.0 for n in names]
    fig, ax = _new_axes(0.8 + 0.3 * len(names))
    bars = ax.barh(names, values, color=_BLUE)
    ax.bar_label(bars, labels=[f"{rates[n]['passed']}/{rates[n]['n']}" for n in names], padding=3)
    ax.set_xlim(0, 1.2)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("pass rate (passed/n)")
    return _svg(fig, salt)


def _count_axis(ax: Axes, label: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_ylabel(label)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def _latency_chart(latencies: Sequence[float]) -> str:
    fig, ax = _new_axes(2.6)
    ax.hist(latencies, bins=min(30, max(5, len(latencies) // 3)), color=_BLUE)
    ax.set_xlabel("latency (ms)")
    _count_axis(ax, "cases")
    return _svg(fig, "latency")


def _score_chart(cases: Sequence[CaseResult]) -> str:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 2.6), layout="constrained")
    left, right = fig.subplots(1, 2)
    bins = [i / 10 for i in range(11)]
    passed = [c.score for c in cases if c.passed]
    failed = [c.score for c in cases if not c.passed and not c.skipped]
    left.hist([passed, failed], bins=bins, stacked=True, color=[_GREEN, _RED])
    left.legend(["passed", "failed"], loc="upper left", fontsize="small")
    left.set_xlabel("case score")
    _count_axis(left, "cases")
    scores = [v.score for c in cases for v in c.verdicts if not v.skipped]
    right.hist(scores, bins=bins, color=_BLUE)
    right.set_xlabel("assertion score")
    _count_axis(right, "assertions")
    return _svg(fig, "scores")


def _charts(run: RunResult) -> list[tuple[str, str | None]]:
    """(title, inline svg or None when there is nothing to plot) for each chart."""
    import matplotlib

    s = run.summary()
    latencies = [c.latency_ms for c in run.cases if c.error is None]
    # tags and types are user text: never mathtext ("$")
    with _CHART_LOCK, matplotlib.rc_context({"text.parse_math": False, "svg.fonttype": "none"}):
        return [
            (
                "pass rate per assertion type",
                _rate_chart(s["by_type"], "by_type") if s["by_type"] else None,
            ),
            (
                "pass rate per tag",
                _rate_chart(s["by_tag"], "by_tag") if s["by_tag"] else None,
            ),
            ("latency distribution", _latency_chart(latencies) if latencies else None),
            ("score distribution", _score_chart(run.cases) if run.cases else None),
        ]


_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>eval run {{ run.id }}: {{ run.suite_name }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: .2em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { font-size: 1.05em; margin-bottom: .3em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code, pre { font-family: ui-monospace, monospace; font-size: .92em; }
pre { white-space: pre-wrap; word-break: break-word; background: #f7f7f7; padding: .6em;
      margin: .3em 0; }
.passed { color: #2e7d32; font-weight: 600; }
.failed { color: #c62828; font-weight: 600; }
.skipped { color: #777; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
          gap: 1em; }
.charts svg { max-width: 100%; height: auto; }
.case { border: 1px solid #e3e3e3; border-left: 4px solid #c62828; padding: .4em 1em;
        margin: 1em 0; }
.muted { color: #666; }
</style>
</head>
<body>
<h1>Eval run <code>{{ run.id }}</code></h1>
<p class="muted">suite <b>{{ run.suite_name }}</b> (sha256 <code>{{ run.suite_sha256[:16] }}</code>)
 &middot; target {{ run.target }} &middot; tenant {{ run.tenant }} &middot; {{ run.status }}
 &middot; {{ run.started_at }}{% if run.finished_at %} to {{ run.finished_at }}{% endif %}
 &middot; platform {{ run.platform_version }}</p>
{% if run.error %}<p class="failed">run error: {{ run.error }}</p>{% endif %}

<h2>Configuration</h2>
{% if models or collections %}
<table>
{% for k, v in models.items() %}<tr><th>{{ k }}</th><td><code>{{ v }}</code></td></tr>
{% endfor %}
{% for name, line in collections.items() %}
<tr><th>collection {{ name }}</th><td>{{ line }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="muted">no configuration fingerprint was recorded</p>{% endif %}

<h2>Summary</h2>
<table>
<tr><th>figure</th><th>value</th><th>of</th></tr>
{% for label, value, of in summary %}
<tr><td>{{ label }}</td><td class="num">{{ value }}</td><td class="num">{{ of }}</td></tr>
{% endfor %}
</table>

<h2>Charts</h2>
<div class="charts">
{% for title, svg in charts %}
<figure><figcaption>{{ title }}</figcaption>
{% if svg %}{{ svg | safe }}{% else %}<p class="muted">no data</p>{% endif %}</figure>
{% endfor %}
</div>

{% for title, rows in rate_tables %}{% if rows %}
<h3>{{ title }}</h3>
<table><tr><th>name</th><th>pass rate</th><th>passed / n</th></tr>
{% for name, rate, of in rows %}
<tr><td>{{ name }}</td><td class="num">{{ rate }}</td><td class="num">{{ of }}</td></tr>
{% endfor %}
</table>
{% endif %}{% endfor %}

<h2>Failing cases ({{ failing | length }})</h2>
{% for c in failing %}
<div class="case" id="case-{{ loop.index }}">
<h3><code>{{ c.case_id }}</code>
{% for t in c.tags %} <span class="muted">#{{ t }}</span>{% endfor %}
 <span class="muted">score {{ "%.2f" | format(c.score) }}</span></h3>
<p><b>question</b>: {{ c.question }}</p>
{% if c.error %}<p class="failed">the query failed: {{ c.error }}</p>{% else %}
<p><b>answer</b>{% if c.abstained %} <span class="muted">(abstained)</span>{% endif %}
{% if c.latency_ms %} <span class="muted">{{ "%.0f" | format(c.latency_ms) }} ms,
 {{ c.tokens }} tokens</span>{% endif %}</p>
<pre>{{ c.answer }}</pre>
{% if c.short_answer %}<p><b>short answer</b>: {{ c.short_answer }}</p>{% endif %}
{% if c.em is not none %}<p class="muted">EM {{ "%.2f" | format(c.em) }}, F1
 {{ "%.2f" | format(c.f1 or 0) }}</p>{% endif %}
<p><b>citations</b>: {% for s in c.citations %}[{{ s.n }}] {{ s.source }}
 <code class="muted">{{ s.chunk_id }}</code>{% if not loop.last %}; {% endif %}
{% else %}<span class="muted">none</span>{% endfor %}</p>
<p><b>retrieved</b>: {% for r in c.retrieved %}{{ r.source }}
 <span class="muted">({{ "%.3f" | format(r.score) }})</span>{% if not loop.last %}, {% endif %}
{% else %}<span class="muted">nothing</span>{% endfor %}</p>
<table><tr><th>assertion</th><th>verdict</th><th>score</th><th>weight</th><th>reason</th></tr>
{% for v in c.verdicts %}
<tr><td><code>{{ v.type }}</code></td>
{% set verdict = "skipped" if v.skipped else ("passed" if v.passed else "failed") %}
<td><span class="{{ verdict }}">{{ verdict }}</span></td>
<td class="num">{{ "%.2f" | format(v.score) }}</td><td class="num">{{ v.weight }}</td>
<td>{{ v.reason }}</td></tr>
{% endfor %}
</table>
{% endif %}
</div>
{% else %}<p>none</p>{% endfor %}

{% if skipped %}
<h2>Skipped cases ({{ skipped | length }})</h2>
<ul>{% for c in skipped %}<li><code>{{ c.case_id }}</code>: {{ c.question }}
 <span class="muted">({{ c.verdicts | selectattr("skipped") | map(attribute="reason")
 | join("; ") }})</span></li>
{% endfor %}</ul>
{% endif %}
</body>
</html>
"""


@functools.cache
def _template() -> Template:
    from jinja2 import Environment, StrictUndefined

    env = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    return env.from_string(_HTML)


def html_report(run: RunResult) -> str:
    """One self-contained HTML page: the run and its configuration, the summary, charts
    (pass rate per assertion type and per tag, latency and score distributions; matplotlib,
    inline SVG) and every failing case with its answer, sources and verdicts. Nothing in it
    loads a URL; all user text is escaped."""
    s = run.summary()
    return _template().render(
        run=run,
        models=model_summary(run.fingerprint),
        collections=collection_summary(run.fingerprint),
        summary=summary_rows(run),
        charts=_charts(run),
        rate_tables=[
            ("pass rate per assertion type", _rate_rows(s["by_type"])),
            ("pass rate per tag", _rate_rows(s["by_tag"])),
        ],
        failing=failing_cases(run),
        skipped=[c for c in run.cases if c.skipped],
    )
