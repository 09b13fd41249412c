"""Datetimes with time zone: PostgreSQL's columns become TIMESTAMP WITH TIME ZONE.

The code always wrote aware UTC datetimes; into a column without time zone PostgreSQL
stored them as wall-clock times of the session's time zone, which was the connection's
default (``SET TIME ZONE`` came later, with this revision). So the old values are read in
that default zone (``pg_settings.reset_val``: the database's, the role's or the URL's
setting), which keeps every instant. SQLite has no time zone type (its datetimes are text,
naive UTC): nothing to do there.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# table -> its datetime columns (name, nullable)
COLUMNS = {
    "collections": [("created_at", False)],
    "documents": [("created_at", False), ("updated_at", False)],
    "ingestion_jobs": [("started_at", False), ("finished_at", True)],
    "api_keys": [("created_at", False), ("last_used_at", True), ("revoked_at", True)],
}


def upgrade() -> None:
    _alter(to_timezone=True)


def downgrade() -> None:
    _alter(to_timezone=False)


def _alter(to_timezone: bool) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    zone = bind.execute(sa.text("SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'"))
    literal = "'" + str(zone.scalar_one()).replace("'", "''") + "'"
    for table, columns in COLUMNS.items():
        for name, nullable in columns:
            op.alter_column(
                table,
                name,
                type_=sa.DateTime(timezone=to_timezone),
                existing_type=sa.DateTime(timezone=not to_timezone),
                existing_nullable=nullable,
                postgresql_using=f"{name} AT TIME ZONE {literal}",
            )
