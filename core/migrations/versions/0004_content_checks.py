"""Content checks: what the document-stage checks found, stored with each chunk and
counted per document, and each collection's check policy.

``chunks.flags`` / ``documents.flags`` / ``collections.policy`` are JSON, NULL when there
is nothing to say (no finding; the default policy). Existing rows keep NULL: documents
ingested before this revision were never checked (``rag collections rescan`` checks them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("policy", sa.JSON(), nullable=True))
    with op.batch_alter_table("documents") as batch:
        batch.add_column(sa.Column("flags", sa.JSON(), nullable=True))
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("flags", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("flags")
    with op.batch_alter_table("documents") as batch:
        batch.drop_column("flags")
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("policy")
