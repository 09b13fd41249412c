"""Ingestion jobs run by a worker: one row per file of a job, and the job's state.

``ingestion_job_files`` holds each file of a job (where its bytes are, its status,
outcome, error, chunk count and timings); ``ingestion_jobs`` gains the job's kind (rows
written before this revision are synchronous calls: "sync"), options, error, the cancel
request, the worker that runs it and its heartbeat, and the retry links.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingestion_job_files",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=1000), nullable=False),
        sa.Column("path", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("document_id", sa.String(length=32), nullable=True),
        sa.Column("n_documents", sa.Integer(), nullable=False),
        sa.Column("n_chunks", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("outcomes", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["job_id"], ["ingestion_jobs.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ingestion_job_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ingestion_job_files_job_id"), ["job_id"], unique=False)

    with op.batch_alter_table("ingestion_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=20), server_default="sync", nullable=False)
        )
        batch_op.add_column(sa.Column("options", sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column("error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retry_of", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("retried_by", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("ingestion_jobs", schema=None) as batch_op:
        batch_op.drop_column("retried_by")
        batch_op.drop_column("retry_of")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("error")
        batch_op.drop_column("options")
        batch_op.drop_column("kind")

    with op.batch_alter_table("ingestion_job_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ingestion_job_files_job_id"))

    op.drop_table("ingestion_job_files")
