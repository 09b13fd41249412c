"""`rag ingest --watch FOLDER`: the folder kept in sync until Ctrl-C (ingest.watch)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

from api.cli import _STATUS_STYLE, _shown, err, out
from core.types import CollectionKey, IngestOutcome
from ingest.jsonl import JsonlFields
from ingest.watch import FolderSync, SyncReport


def watch_folder(
    platform: Any,
    name: CollectionKey,
    folder: Path,
    source_prefix: str,
    fields: JsonlFields,
    interval: float | None,
    as_json: bool,
) -> None:
    """Sync now, then on every change; prints each file's outcome and each deletion (one
    JSON object per batch with ``--json``). Ctrl-C stops between batches or cancels the
    batch in progress (the next start syncs it again)."""
    sync = FolderSync(
        platform.engine,
        platform.jobs,
        lambda: platform.ingest,
        name,
        folder,
        source_prefix=source_prefix,
        jsonl=fields,
    )
    how = f"polling every {interval:g} s" if interval else "file-system events"
    err.print(f"watching {sync.folder} into collection {_shown(name)} ({how}); Ctrl-C stops")

    def on_progress(o: IngestOutcome) -> None:
        if not as_json:
            reason = f" — {o.error}" if o.error else ""
            out.print(f"[{_STATUS_STYLE[o.status]}]{o.status:9}[/] {o.source}{reason}")

    def on_sync(r: SyncReport) -> None:
        counts = {s: r.count(s) for s in _STATUS_STYLE}
        if as_json:
            line = {"jobs": list(r.job_ids), **counts, "deleted": list(r.deleted)}
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
            return
        for source in r.deleted:
            out.print(f"[magenta]{'deleted':9}[/] {source}")
        out.print(
            f"synced: {counts['ingested']} ingested, {counts['replaced']} replaced, "
            f"{counts['unchanged']} unchanged, {counts['failed']} failed, "
            f"{len(r.deleted)} deleted"
        )

    stop = threading.Event()
    try:
        sync.watch(stop, on_sync, interval=interval, on_progress=on_progress)
    except KeyboardInterrupt:
        stop.set()
        err.print("stopped")
