"""The database schema's history as Alembic revisions (``versions/``), configured in code.

``core.db.migrate`` (run by ``make_engine`` at every start) upgrades a database to the
newest revision; nothing else creates tables. There is no alembic.ini: ``config()``
points Alembic at this package (``core:migrations``, which also works installed).

Databases made before Alembic (tables, no ``alembic_version``) need no stamping: the
baseline revision 0001 creates only the tables that are missing and adds the columns
that came before Alembic where they are missing, so on an empty database it builds the
schema and on an older one it brings it to the same point. Later revisions are plain
changes on top of it.

Adding a migration (change the models in ``core/db.py`` first; the command line
works on the settings' database, ``RAG_DB__URL`` or the SQLite file, or ``--url``)::

    python -m core.migrations revision --autogenerate --rev-id 0003 -m "what changes"
    python -m core.migrations check      # the models and the revisions agree?
"""

from __future__ import annotations

import functools
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.schema import MetaData

SCRIPT_LOCATION = "core:migrations"


def config(connection: Connection | None = None, url: str | None = None) -> Config:
    """Alembic's configuration for this package; ``connection``: run on it (in the caller's
    transaction), else ``url``: env.py opens its own (the command line)."""
    cfg = Config()
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def heads() -> tuple[str, ...]:
    """The newest revision (one, unless two branches were added and not merged)."""
    return tuple(ScriptDirectory.from_config(config()).get_heads())


def current(connection: Connection) -> tuple[str, ...]:
    """The database's revision(s); () for an empty database or one made before Alembic."""
    return MigrationContext.configure(connection).get_current_heads()


def context_options(connection: Connection, target_metadata: MetaData) -> dict[str, Any]:
    """How env.py (and the tests' comparison of models with the database) set up Alembic."""
    return {
        "connection": connection,
        "target_metadata": target_metadata,
        # SQLite alters most things only by copying a table: autogenerate writes batch ops
        "render_as_batch": connection.dialect.name == "sqlite",
        "compare_type": True,
    }


def upgrade(connection: Connection) -> None:
    """Upgrade to the newest revision on ``connection``, in its open transaction."""
    command.upgrade(config(connection), "head")
