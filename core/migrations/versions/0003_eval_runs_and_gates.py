"""Eval runs and gates: stored batch evaluation runs with their cases, and a collection's
gate (the suite a change must pass before it goes live).

``eval_runs`` holds one row per run (the suite's content, for replays; its configuration
fingerprint; its summary), ``eval_cases`` one row per case of a run (the answer,
citations, retrieved ids and scores, timings and every assertion's verdict, as JSON).
``collections.gate`` is NULL for a collection without a gate.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("suite_name", sa.String(1000), nullable=False),
        sa.Column("suite_sha256", sa.String(64), nullable=False),
        sa.Column("suite", sa.JSON(), nullable=False),
        sa.Column("target", sa.String(1000), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("platform_version", sa.String(50), nullable=False),
        sa.Column("fingerprint", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("n_cases", sa.Integer(), nullable=False),
        sa.Column("n_done", sa.Integer(), nullable=False),
        sa.Column("n_passed", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("gate_collection_id", sa.String(32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_eval_runs_tenant", "eval_runs", ["tenant"])
    op.create_table(
        "eval_cases",
        sa.Column(
            "run_id",
            sa.String(32),
            sa.ForeignKey("eval_runs.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("case_id", sa.String(128), primary_key=True),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
    )
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("gate", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("gate")
    op.drop_table("eval_cases")
    op.drop_index("ix_eval_runs_tenant", table_name="eval_runs")
    op.drop_table("eval_runs")
