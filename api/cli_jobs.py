"""`rag jobs list|show|cancel|retry|run`: ingestion jobs (uploads and `rag ingest`).

rag jobs list                       # the tenant's jobs, newest first
rag jobs show JOB                   # each file: status, outcome, chunks, seconds, error
rag jobs cancel JOB                 # stops between files
rag jobs retry JOB                  # a new job over the failed and cancelled files
rag jobs run                        # run every job left pending or interrupted, here
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from api.cli import (
    DEFAULT_TENANT,
    JsonOpt,
    TenantOpt,
    _platform,
    _print_json,
    _State,
    app,
    err,
    id_table,
    out,
)

jobs_app = typer.Typer(help="Ingestion jobs: list, show, cancel, retry, run.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")

_STYLE = {"done": "green", "failed": "red", "cancelled": "yellow", "running": "cyan"}


def _status(status: str) -> str:
    return f"[{_STYLE.get(status, 'dim')}]{status}[/]"


@jobs_app.command("list")
def jobs_list(
    collection: Annotated[
        str | None, typer.Option("--collection", "-c", help="only this collection's")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="pending|running|done|failed|cancelled")
    ] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 50,
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """The tenant's ingestion jobs, newest first."""
    from api import service

    jobs = service.list_jobs(
        _platform(start=False), tenant, collection=collection, status=status, limit=limit
    )
    if as_json:
        _print_json(jobs.model_dump(mode="json"))
        return
    table = id_table("id", "collection", "kind", "status", "files", "ingested", "failed", "created")
    for j in jobs.data:
        table.add_row(
            j.id, escape(j.collection), j.kind, _status(j.status),
            f"{round(j.progress * j.files_total)}/{j.files_total}", str(j.ingested),
            str(j.failed), j.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
    out.print(table)


@jobs_app.command("show")
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    tenant: TenantOpt = DEFAULT_TENANT,
    as_json: JsonOpt = False,
) -> None:
    """A job and each of its files: status, outcome, chunks, seconds, error."""
    from api import service

    job = service.get_job(_platform(start=False), tenant, job_id)
    if as_json:
        _print_json(job.model_dump(mode="json"))
        return
    _summary(job)
    table = Table("file", "status", "outcome", "chunks", "seconds", "error")
    for f in job.files or []:
        table.add_row(
            escape(f.source), _status(f.status), f.outcome or "", str(f.chunks),
            "" if f.seconds is None else f"{f.seconds:.2f}", escape(f.error or ""),
        )  # fmt: skip
    out.print(table)


def _summary(job: Any) -> None:
    out.print(
        f"job [bold]{job.id}[/] ({job.kind}) on [bold]{escape(job.collection)}[/]: "
        f"{_status(job.status)}, {job.files_total} files: {job.ingested} ingested, "
        f"{job.replaced} replaced, {job.unchanged} unchanged, {job.failed} failed, "
        f"{job.chunks} chunks"
        + (f"; retried by {job.retried_by}" if job.retried_by else "")
        + (f"; error: {escape(job.error)}" if job.error else "")
    )


@jobs_app.command("cancel")
def jobs_cancel(
    job_id: Annotated[str, typer.Argument(help="the job id")],
    tenant: TenantOpt = DEFAULT_TENANT,
) -> None:
    """Stop a job between files (a pending one ends at once)."""
    from api import service

    platform = _platform(start=False)
    platform.jobs.cancel(tenant, job_id)
    _summary(service.get_job(platform, tenant, job_id, files=False))


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[str, typer.Argument(help="the ended job whose failed files to retry")],
    tenant: TenantOpt = DEFAULT_TENANT,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="run it here and wait (default)")
    ] = True,
) -> None:
    """A new job over the failed and cancelled files of an ended job; the files done are
    not redone. Exit 3 when a file fails again."""
    from api import service

    platform = _platform()
    new = platform.jobs.retry(tenant, job_id)
    if not wait:
        spawn_job(new)
        out.print(new)
        return
    platform.jobs.run(new)
    job = service.get_job(platform, tenant, new, files=False)
    _summary(job)
    if job.failed or job.status != "done":
        raise typer.Exit(3)


@jobs_app.command("run")
def jobs_run(
    job_id: Annotated[str | None, typer.Argument(help="the job (default: every one)")] = None,
) -> None:
    """Run a pending job here (`rag ingest --no-wait` starts this), or every job left
    pending or interrupted by a crash (resumed: files done are not redone)."""
    platform = _platform()
    runner = platform.jobs
    if job_id is not None:
        if not runner.run(job_id):
            err.print(f"job {job_id} is not pending, or another process is running it")
        return
    for jid, previous in runner.runnable():
        err.print(f"running job {jid}")
        runner.run(jid, previous_owner=previous)


def spawn_job(job_id: str) -> Path:
    """Start `rag jobs run JOB` in a process of its own (it outlives this one); returns
    its log file."""
    from core.settings import Settings

    data_dir = (_State.data_dir or Settings().data_dir).absolute()
    log = data_dir / "logs" / f"job-{job_id}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    args = [sys.executable, "-m", "api.cli", "--data-dir", str(data_dir), "jobs", "run", job_id]
    with open(log, "ab") as sink:
        subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True
        )
    return log
