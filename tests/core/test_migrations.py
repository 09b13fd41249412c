"""The Alembic migrations (core/migrations) on SQLite and on a real PostgreSQL server
(tests/pg.py; those cases skip, naming what is missing, without one): an empty database,
databases made before Alembic, a second start, concurrent starts, and the models and
the revisions agreeing (autogenerate finds nothing to do)."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session

from core import db, migrations
from tests.core.test_db_migration import OLD_SCHEMA
from tests.core.test_db_postgres import OLD_PG_SCHEMA, _run_script
from tests.pg import PostgresServer

TABLES = {*db.Base.metadata.tables, "alembic_version"}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'rag.sqlite3'}"
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.create_database()


def _old_database(url: str) -> None:
    """The schema before tenants (and before recipes and answer models), with rows."""
    _run_script(url, OLD_SCHEMA if url.startswith("sqlite") else OLD_PG_SCHEMA)


def _diffs(engine: Engine) -> list[Any]:
    """What autogenerate would write to make the database match the models."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            opts=migrations.context_options(conn, db.Base.metadata), connection=conn
        )
        return list(compare_metadata(ctx, db.Base.metadata))


def _revision(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return migrations.current(conn)


def test_the_revisions_are_one_line_to_a_single_head() -> None:
    script = ScriptDirectory.from_config(migrations.config())
    revisions = list(script.walk_revisions())  # newest first
    assert len(migrations.heads()) == 1 and revisions[0].revision == migrations.heads()[0]
    assert [r.down_revision for r in revisions] == [r.revision for r in revisions[1:]] + [None]
    assert [r.revision for r in revisions[-2:]] == ["0002", "0001"]


def test_an_empty_database_gets_the_schema_of_the_models(url: str) -> None:
    engine = db.make_engine(url)
    assert set(inspect(engine).get_table_names()) == TABLES
    assert _revision(engine) == migrations.heads()
    assert _diffs(engine) == []
    assert db.migrate(engine) is False  # a second start changes nothing
    engine.dispose()


def test_an_old_database_is_upgraded_to_the_schema_of_the_models(url: str) -> None:
    _old_database(url)
    engine = db.make_engine(url, upgrade=False)
    assert _revision(engine) == ()
    assert db.migrate(engine) is True
    assert _revision(engine) == migrations.heads()
    assert set(inspect(engine).get_table_names()) == TABLES  # api_keys was missing
    assert _diffs(engine) == []
    assert db.migrate(engine) is False
    with Session(engine) as s:
        docs = s.scalars(select(db.CollectionRow).order_by(db.CollectionRow.name)).all()
        assert [(c.id, c.tenant, c.name) for c in docs] == [
            ("c1", "default", "docs"),
            ("c2", "default", "handbook"),
        ]
        assert [(d.id, d.collection_id) for d in s.scalars(select(db.DocumentRow))] == [
            ("d1", "c1")
        ]
        assert s.scalars(select(db.ChunkRow.id)).all() == ["k1"]
    # foreign keys still cascade after SQLite's rebuild of the collections table
    with Session(engine) as s, s.begin():
        s.delete(s.get_one(db.CollectionRow, "c1"))
    with Session(engine) as s:
        assert s.scalars(select(db.DocumentRow)).all() == []
        assert s.scalars(select(db.ChunkRow)).all() == []
    engine.dispose()


def test_a_database_of_the_last_schema_before_alembic_is_taken_over(url: str) -> None:
    # What make_engine's create_all made last: revision 0001's schema, no alembic_version.
    engine = db.make_engine(url)
    with db._ddl_transaction(engine) as conn:  # noqa: SLF001 (migrate()'s lock)
        command.downgrade(migrations.config(conn), "0001")
        conn.execute(text("DROP TABLE alembic_version"))
    assert _revision(engine) == ()
    assert db.migrate(engine) is True
    assert _revision(engine) == migrations.heads() and _diffs(engine) == []
    engine.dispose()


def _start(url: str, barrier: Any, results: Any) -> None:
    """One process starting on the database: make_engine, then its own migrate()."""
    try:
        engine = db.make_engine(url, upgrade=False)
        barrier.wait(timeout=60)
        results.put(("migrated", db.migrate(engine)))
        engine.dispose()
    except BaseException as e:  # noqa: BLE001 (reported to the test)
        results.put(("error", repr(e)))


def test_concurrent_starts_on_an_empty_database_migrate_once(url: str) -> None:
    n = 3
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_start, args=(url, barrier, results)) for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == [("migrated", False)] * (n - 1) + [("migrated", True)]
    engine = db.make_engine(url)
    assert _revision(engine) == migrations.heads() and _diffs(engine) == []
    engine.dispose()


def test_a_failed_migration_leaves_no_revision(url: str) -> None:
    _old_database(url)
    # the tenant step fails (SQLite: its rebuild's table name is taken; PostgreSQL: the
    # name of the new constraint's index is): the whole upgrade is rolled back
    taken = (
        "CREATE TABLE _alembic_tmp_collections (x INTEGER)"
        if url.startswith("sqlite")
        else f"CREATE TABLE other (x INTEGER); CREATE INDEX {db.COLLECTION_UNIQUE} ON other (x)"
    )
    _run_script(url, taken)
    engine = db.make_engine(url, upgrade=False)
    with pytest.raises(Exception, match="already exists"):
        db.migrate(engine)
    insp = inspect(engine)
    assert "alembic_version" not in insp.get_table_names()
    assert "api_keys" not in insp.get_table_names()
    assert "recipe" not in {c["name"] for c in insp.get_columns("documents")}
    engine.dispose()


def test_sqlite_table_rebuilds_keep_the_rows_referencing_them(tmp_path: Path) -> None:
    """A batch migration copies a table and drops the old one; with foreign keys on, the
    drop would delete every document of the collections. The migration lock turns them
    off, checks them before the commit, and on again after."""
    lock = db._ddl_transaction  # noqa: SLF001 (the lock migrate() runs the revisions in)
    engine = db.make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    with Session(engine) as s, s.begin():
        s.add(db.CollectionRow(id="c1", name="docs"))
        s.flush()
        s.add(db.DocumentRow(id="d1", collection_id="c1", source="a", media_type="t", sha256="0"))
    with lock(engine) as conn:
        ops = Operations(MigrationContext.configure(conn))
        with ops.batch_alter_table("collections", recreate="always") as batch:
            batch.alter_column("fusion_mode", comment="rebuilt")
    with Session(engine) as s:
        assert s.scalars(select(db.DocumentRow.id)).all() == ["d1"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1

    # A migration that leaves a document without its collection is rolled back.
    with pytest.raises(RuntimeError, match="table documents"), lock(engine) as conn:
        conn.exec_driver_sql("DELETE FROM collections")
    with Session(engine) as s:
        assert s.scalars(select(db.CollectionRow.id)).all() == ["c1"]
    engine.dispose()


def test_postgres_datetimes_keep_their_instant(pg_server: PostgresServer) -> None:
    """Old columns held UTC instants as wall-clock times of the session's zone (here
    New York); with time zone they are the same instants, read back in UTC."""
    url = pg_server.create_database()
    name = make_url(url).database
    _run_script(pg_server.url(), f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")
    _old_database(url)  # collection c1 created 2026-01-01 00:00 New York time
    engine = db.make_engine(url)
    cols = {c["name"]: c["type"] for c in inspect(engine).get_columns("collections")}
    assert cols["created_at"].timezone is True
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with Session(engine) as s, s.begin():
        assert s.get_one(db.CollectionRow, "c1").created_at == datetime(2026, 1, 1, 5, tzinfo=UTC)
        s.add(db.CollectionRow(id="c3", name="new", created_at=when))
    with Session(engine) as s:
        created = s.get_one(db.CollectionRow, "c3").created_at
        assert created == when and created.utcoffset() is not None
        assert created.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    engine.dispose()


def test_sqlite_datetimes_read_back_as_naive_utc(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'rag.sqlite3'}")
    when = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    with Session(engine) as s, s.begin():
        s.add(db.CollectionRow(id="c1", name="docs", created_at=when))
    with Session(engine) as s:
        assert s.get_one(db.CollectionRow, "c1").created_at == when.replace(tzinfo=None)
    engine.dispose()


def test_the_command_line_works_on_our_configuration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rag.sqlite3'}"

    def run(*args: str) -> str:
        out = subprocess.run(
            [sys.executable, "-m", "core.migrations", "--url", url, *args],
            capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2],
        )  # fmt: skip
        return out.stdout + out.stderr

    run("upgrade", "head")  # the command line migrates under the same lock as a start
    assert f"{migrations.heads()[0]} (head)" in run("current")
    assert "No new upgrade operations detected" in run("check")
    engine = db.make_engine(url, upgrade=False)
    assert db.migrate(engine) is False
    engine.dispose()
