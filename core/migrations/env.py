"""Alembic's environment: runs the revisions on the connection ``core.db.migrate`` hands
over (in its locked transaction), or, from the command line (``python -m
core.migrations``), on the configured URL under the same lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from core import db, migrations


def _run(connection: Connection) -> None:
    context.configure(**migrations.context_options(connection, db.Base.metadata))
    with context.begin_transaction():  # a no-op inside the caller's transaction
        context.run_migrations()


def _main() -> None:
    if context.is_offline_mode():
        raise SystemExit(
            "--sql (offline) mode is not supported: the baseline revision inspects the database"
        )
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("no database URL configured (python -m core.migrations --url URL ...)")
    engine = db.make_engine(url, upgrade=False)
    try:
        with db._ddl_transaction(engine) as conn:  # noqa: SLF001 (the start-up's own lock)
            _run(conn)
    finally:
        engine.dispose()


_main()
