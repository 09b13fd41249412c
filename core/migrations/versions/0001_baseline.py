"""Baseline: the schema as it stood when migrations came in.

On an empty database it creates every table. A database made before Alembic (tables but
no ``alembic_version``) is brought to the same point in place instead of being stamped:
the tables it lacks are created, and the columns that came before Alembic are added
where missing: ``documents.recipe`` (NULL: unknown, so the next ingest of such a document
re-indexes it), ``collections.answer_models`` (NULL: the default models), and
``collections.tenant`` (the schema before tenants: filled with "default", and the
globally unique name index or constraint is replaced by the (tenant, name) one; on
SQLite by rebuilding the table). Every database ends with the same schema.

The tables are written out here, not taken from ``core.db``: a revision stays what it was
when the models move on.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

log = logging.getLogger("core.migrations")

COLLECTION_UNIQUE = "uq_collections_tenant_name"
DEFAULT_TENANT = "default"

_meta = sa.MetaData()


def _id() -> sa.Column[str]:
    return sa.Column("id", sa.String(32), primary_key=True)


sa.Table(
    "collections",
    _meta,
    _id(),
    sa.Column("tenant", sa.String(64), nullable=False, server_default=DEFAULT_TENANT),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("fusion_mode", sa.String(20)),
    sa.Column("rrf_k", sa.Integer()),
    sa.Column("alpha", sa.Float()),
    sa.Column("tuned_metric", sa.JSON()),
    sa.Column("answer_models", sa.JSON()),
    sa.UniqueConstraint("tenant", "name", name=COLLECTION_UNIQUE),
)
sa.Table(
    "documents",
    _meta,
    _id(),
    sa.Column(
        "collection_id",
        sa.String(32),
        sa.ForeignKey("collections.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("source", sa.String(1000), nullable=False),
    sa.Column("media_type", sa.String(200), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False, index=True),
    sa.Column("version", sa.Integer(), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("error", sa.Text()),
    sa.Column("size_bytes", sa.Integer(), nullable=False),
    sa.Column("n_chunks", sa.Integer(), nullable=False),
    sa.Column("recipe", sa.String(300)),
    sa.Column("metadata", sa.JSON(), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.UniqueConstraint("collection_id", "source"),
)
sa.Table(
    "chunks",
    _meta,
    _id(),
    sa.Column(
        "document_id",
        sa.String(32),
        sa.ForeignKey("documents.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("collection_id", sa.String(32), nullable=False, index=True),
    sa.Column("ordinal", sa.Integer(), nullable=False),
    sa.Column("text", sa.Text(), nullable=False),
    sa.Column("char_start", sa.Integer(), nullable=False),
    sa.Column("char_end", sa.Integer(), nullable=False),
    sa.Column("page", sa.Integer()),
    sa.Column("heading_path", sa.JSON(), nullable=False),
    sa.Column("token_count", sa.Integer(), nullable=False),
    sa.Column("embedding", sa.LargeBinary()),
)
sa.Table(
    "ingestion_jobs",
    _meta,
    _id(),
    sa.Column("collection_id", sa.String(32), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("started_at", sa.DateTime(), nullable=False),
    sa.Column("finished_at", sa.DateTime()),
    *(
        sa.Column(n, sa.Integer(), nullable=False)
        for n in ("n_inputs", "n_ingested", "n_unchanged", "n_replaced", "n_failed", "n_chunks")
    ),
    sa.Column("summary", sa.JSON(), nullable=False),
)
sa.Table(
    "api_keys",
    _meta,
    _id(),
    sa.Column("tenant", sa.String(64), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True, index=True),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("last_used_at", sa.DateTime()),
    sa.Column("revoked_at", sa.DateTime()),
)


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    missing = [t for t in _meta.sorted_tables if t.name not in existing]
    _meta.create_all(bind, tables=missing)
    if missing and existing & set(_meta.tables):  # a database made before Alembic
        log.info("created the missing tables %s", ", ".join(t.name for t in missing))
    if _lacks_column(bind, "documents", "recipe"):
        op.add_column("documents", sa.Column("recipe", sa.String(300)))
        log.info("documents: added recipe")
    if _lacks_column(bind, "collections", "answer_models"):
        op.add_column("collections", sa.Column("answer_models", sa.JSON()))
        log.info("collections: added answer_models")
    if _lacks_column(bind, "collections", "tenant"):
        _add_collection_tenant(bind)
        log.info("collections: added tenant, names now unique per tenant")


def downgrade() -> None:
    for table in reversed(_meta.sorted_tables):
        op.drop_table(table.name)


def _lacks_column(bind: sa.Connection, table: str, column: str) -> bool:
    return column not in {c["name"] for c in sa.inspect(bind).get_columns(table)}


def _add_collection_tenant(bind: sa.Connection) -> None:
    """The schema before tenants: a tenant column, names unique per tenant."""
    op.add_column(
        "collections",
        sa.Column("tenant", sa.String(64), nullable=False, server_default=DEFAULT_TENANT),
    )
    if bind.dialect.name == "sqlite":
        # SQLite cannot drop or add a constraint in place: the table is rebuilt as the
        # baseline's (its rows copied; core.db's migration lock has foreign keys off, so
        # the documents referencing it stay), which also drops the unique name index.
        with op.batch_alter_table(
            "collections", recreate="always", copy_from=_meta.tables["collections"]
        ):
            pass
        return
    insp = sa.inspect(bind)
    for ix in insp.get_indexes("collections"):
        if ix.get("duplicates_constraint"):  # PostgreSQL: a unique constraint's own index,
            continue  # dropped with its constraint below
        if ix.get("unique") and list(ix["column_names"]) == ["name"] and ix["name"]:
            op.drop_index(ix["name"], table_name="collections")
    for uc in insp.get_unique_constraints("collections"):
        if list(uc["column_names"]) == ["name"]:
            if not uc["name"]:
                raise RuntimeError(
                    "cannot migrate table collections: its names are unique through an "
                    "unnamed table constraint; recreate the database or drop it by hand"
                )
            op.drop_constraint(uc["name"], "collections", type_="unique")
    op.create_unique_constraint(COLLECTION_UNIQUE, "collections", ["tenant", "name"])
