"""Writers that race on the same new row (issue 11's load test: the first uploads into a
new collection, at once, answered 500 on a UNIQUE violation)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from core import repository
from core.db import make_engine
from core.settings import Settings
from core.types import CollectionKey


def test_a_request_that_loses_the_race_to_create_a_collection_gets_the_winners(
    tmp_path: Path,
) -> None:
    engine = make_engine(Settings(data_dir=tmp_path).db_url)
    key = CollectionKey("default", "race")
    created, release = threading.Event(), threading.Event()
    ids: dict[str, str] = {}
    errors: list[BaseException] = []

    def winner() -> None:
        with repository.write(engine) as s:
            ids["winner"] = repository.get_or_create_collection(s, key).id
            created.set()
            release.wait(30)  # commits only once the loser is inside its own insert

    def loser() -> None:
        try:
            with repository.write(engine) as s:
                ids["loser"] = repository.get_or_create_collection(s, key).id
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    first = threading.Thread(target=winner)
    first.start()
    assert created.wait(30)
    second = threading.Thread(target=loser)
    second.start()
    time.sleep(0.5)  # the loser found nothing committed and waits on the insert
    release.set()
    first.join(60)
    second.join(60)
    assert not errors, errors
    assert ids["loser"] == ids["winner"]
    engine.dispose()
