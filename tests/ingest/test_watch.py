"""`rag ingest --watch`: a folder kept in sync with a collection through jobs, on the real
platform (SQLite file, FAISS and BM25 files, the real embedding model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from api.platform import Platform
from core import repository
from core.settings import Settings
from core.types import CollectionKey
from ingest.watch import SYNCED_FROM, FolderSync

KEY = CollectionKey("default", "handbook")


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    p = Platform(Settings(data_dir=tmp_path / "data"))
    p.startup()
    yield p
    p.shutdown()


def documents(platform: Platform) -> dict[str, dict]:
    with repository.read(platform.engine) as s:
        col = repository.find_collection(s, KEY)
        docs = [] if col is None else repository.list_documents(s, col.id)
        return {d.source: dict(d.meta or {}) for d in docs}


def jobs(platform: Platform) -> int:
    with repository.read(platform.engine) as s:
        return len(repository.list_jobs(s, KEY.tenant, collection=KEY.name))


def test_sync_ingests_new_and_changed_files_in_one_job_and_deletes_removed_ones(
    tmp_path: Path, platform: Platform
) -> None:
    folder = tmp_path / "handbook"
    (folder / "hr").mkdir(parents=True)
    (folder / "leave.txt").write_text("Annual leave is twenty-five days a year.")
    (folder / "hr" / "pay.txt").write_text("Salaries are paid on the last working day.")
    (folder / ".draft.txt").write_text("hidden: never ingested")
    # `rag ingest FOLDER` first: the watch names files the same way, so they are unchanged
    job = platform.jobs.create_path_job(KEY, [folder])
    platform.jobs.run(job)
    platform.ingest.ingest_files([("upload.txt", b"Uploaded by hand: the office opens at 8.")], KEY)
    sync = FolderSync(platform.engine, platform.jobs, lambda: platform.ingest, KEY, folder)

    first = sync.sync()
    assert len(first.job_ids) == 1 and first.deleted == ()
    assert sorted((o.source, o.status) for o in first.outcomes) == [
        ("hr/pay.txt", "unchanged"),
        ("leave.txt", "unchanged"),
    ]
    docs = documents(platform)
    assert docs["leave.txt"][SYNCED_FROM] == str(folder.resolve())
    assert SYNCED_FROM not in docs["upload.txt"]

    (folder / "leave.txt").write_text("Annual leave is thirty days a year from 2027 onwards.")
    (folder / "travel.txt").write_text("Book trains two weeks ahead; flights need approval.")
    (folder / "hr" / "pay.txt").unlink()
    n_jobs = jobs(platform)
    second = sync.sync()
    assert len(second.job_ids) == 1 and jobs(platform) == n_jobs + 1  # one job per batch
    assert sorted((o.source, o.status) for o in second.outcomes) == [
        ("leave.txt", "replaced"),
        ("travel.txt", "ingested"),
    ]
    assert second.deleted == ("hr/pay.txt",)
    # the uploaded document is not the folder's: never deleted
    assert sorted(documents(platform)) == ["leave.txt", "travel.txt", "upload.txt"]

    assert sync.sync().empty  # nothing changed: no job
    assert jobs(platform) == n_jobs + 1
    # a new watch starts with a full sync: every file unchanged, nothing deleted
    again = FolderSync(platform.engine, platform.jobs, lambda: platform.ingest, KEY, folder).sync()
    assert {o.status for o in again.outcomes} == {"unchanged"} and again.deleted == ()


def wait_until(check: Callable[[], bool], timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("interval", [None, 0.3], ids=["watchfiles", "polling"])
def test_watch_loop_follows_changes_until_stopped(
    tmp_path: Path, platform: Platform, interval: float | None
) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "leave.txt").write_text("Annual leave is twenty-five days a year.")
    sync = FolderSync(platform.engine, platform.jobs, lambda: platform.ingest, KEY, folder)
    stop = threading.Event()
    reports = []
    worker = threading.Thread(
        target=sync.watch,
        args=(stop, reports.append),
        kwargs={"interval": interval, "debounce_s": 0.3},
    )
    worker.start()
    try:
        assert wait_until(lambda: "leave.txt" in documents(platform))  # the first sync
        (folder / "travel.txt").write_text("Book trains two weeks ahead; flights need approval.")
        assert wait_until(lambda: "travel.txt" in documents(platform))
        (folder / "leave.txt").unlink()
        assert wait_until(lambda: sorted(documents(platform)) == ["travel.txt"])
    finally:
        stop.set()
        worker.join(15)
    assert not worker.is_alive()
    assert [r.deleted for r in reports][-1] == ("leave.txt",)
