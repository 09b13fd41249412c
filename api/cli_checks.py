"""`rag collections policy|rescan` and `rag docs flagged`: a collection's content checks.

rag collections policy docs                          # every rule in force
rag collections policy docs --set pii.documents=redact --set banned.phrases="a, b"
rag collections policy docs --file policy.yaml       # a whole policy (YAML or JSON)
rag collections rescan docs                          # the document checks again
rag docs flagged -c docs --check injection
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli import (
    DEFAULT_TENANT,
    CollectionOpt,
    JsonOpt,
    TenantOpt,
    _platform,
    _print_json,
    _ref,
    collections_app,
    docs_app,
    out,
)
from core.errors import InvalidRequest


def _pairs(items: list[str]) -> dict[str, Any]:
    updates: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InvalidRequest(f"--set {item!r}: write CHECK.FIELD=VALUE")
        updates[key.strip()] = value.strip()
    return updates


@collections_app.command("policy")
def collections_policy(
    name: Annotated[str, typer.Argument(help="the collection")],
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="CHECK.FIELD=VALUE, e.g. pii.answers=redact (repeatable)"),
    ] = None,
    file: Annotated[
        Path | None, typer.Option("--file", help="a whole policy, YAML or JSON")
    ] = None,
    reset: Annotated[bool, typer.Option("--reset", help="back to the defaults")] = False,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Show or change the collection's content-check policy: per check (injection, pii,
    banned, question_length, grounding) the action at each stage (documents, questions,
    answers): allow, warn, fence, drop, redact, abstain or block."""
    import yaml

    from api import service

    platform = _platform(start=False)
    key = _ref(name, tenant, platform.settings)
    document = None
    if file is not None:
        try:
            document = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise InvalidRequest(f"{file}: cannot read the policy ({e})") from e
        if not isinstance(document, dict):
            raise InvalidRequest(f"{file}: a policy is a mapping of check names to rules")
    updates = _pairs(set_ or [])
    if document is not None or updates or reset:
        result = service.set_policy(platform, key, document=document, updates=updates, reset=reset)
    else:
        result = service.get_policy(platform, key)
    if as_json:
        _print_json(result.model_dump(mode="json"))
        return
    table = Table("check", "documents", "questions", "answers", "settings")
    for check, rule in result.policy.items():
        extra = {k: v for k, v in rule.items() if k not in ("documents", "questions", "answers")}
        changed = result.changed.get(check, {})
        cells = [
            f"[bold]{rule[s]}[/]" if s in changed else str(rule[s])
            for s in ("documents", "questions", "answers")
        ]
        settings = ", ".join(f"{k}={v}" for k, v in extra.items() if v not in (None, []))
        table.add_row(check, *cells, settings)
    out.print(table)
    out.print("bold: differs from the default", style="dim")


@collections_app.command("rescan")
def collections_rescan(
    name: Annotated[str, typer.Argument(help="the collection")],
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """Run the document checks again over the stored chunks with the current policy:
    flags replaced, text the policy now redacts rewritten and re-embedded; documents the
    policy would refuse are listed, not deleted."""
    platform = _platform()
    result = platform.ingest.rescan(_ref(name, tenant, platform.settings))
    if as_json:
        _print_json(result)
        return
    out.print(
        f"{result['chunks']} chunk(s) checked: {result['flagged']} flagged, "
        f"{result['redacted']} redacted",
        highlight=False,
    )
    for r in result["refused"]:
        out.print(f"the policy refuses {r['source']}: {r['reason']}", highlight=False)


@docs_app.command("flagged")
def docs_flagged(
    collection: CollectionOpt = None,
    check: Annotated[
        str | None, typer.Option("--check", help="only this check's findings (injection, pii…)")
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="at most this many flagged chunks")
    ] = 100,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """The chunks a content check flagged: the check, its reasons and the flagged text."""
    from api import service

    platform = _platform(start=False)
    found = service.flagged_chunks(
        platform, _ref(collection, tenant, platform.settings), check, limit
    )
    if as_json:
        _print_json(found.model_dump(mode="json"))
        return
    table = Table("source", "chunk", "check", "action", "score", "reasons", "flagged text")
    for c in found.data:
        for name, f in c.flags.items():
            spans = f.get("spans") or []
            text = " … ".join(" ".join(c.text[a:b].split()) for a, b in spans[:2])
            table.add_row(
                c.source,
                str(c.ordinal),
                name,
                str(f.get("action", "")),
                f"{f.get('score', 0):.2f}",
                ", ".join(f.get("labels") or f.get("reasons") or []),
                text[:120] if text else ("(redacted)" if f.get("redacted") else ""),
            )
    out.print(table)
    if not found.data:
        out.print("no flagged chunks", style="dim")
