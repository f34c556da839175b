"""events carry tags and a people count; on PostgreSQL with pgvector the embedding becomes vector(256) + HNSW

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09 10:00:00

The vector part runs only on PostgreSQL where `CREATE EXTENSION vector` succeeds (the package is installed
and the role may create it); otherwise `event.embedding` stays JSON and search is brute force. Running
`framemask` migrations again after installing pgvector does not convert it: see docs/service.md.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

DIM = 256  # framemask.detect.nanodet.EMBEDDING_DIM when this migration was written
INDEX = "ix_event_embedding_hnsw"


def _vector_available(bind: sa.engine.Connection) -> bool:
    if bind.dialect.name != "postgresql":
        return False
    if not bind.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).scalar():
        log.warning("pgvector is not installed on this PostgreSQL server: event embeddings stay JSON (brute force)")
        return False
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.DBAPIError as exc:
        log.warning("CREATE EXTENSION vector failed (%s): event embeddings stay JSON", str(exc).splitlines()[0])
        return False
    return True


def _embedding_type(bind: sa.engine.Connection) -> str:
    return str(
        bind.execute(
            sa.text(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'event'::regclass AND attname = 'embedding'"
            )
        ).scalar()
    )


def upgrade() -> None:
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tags", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("people", sa.Integer(), nullable=True))
    bind = op.get_bind()
    if _vector_available(bind):
        op.execute("UPDATE event SET embedding = NULL")  # never set before this revision
        op.execute(f"ALTER TABLE event ALTER COLUMN embedding TYPE vector({DIM}) USING embedding::text::vector({DIM})")
        op.execute(f"CREATE INDEX {INDEX} ON event USING hnsw (embedding vector_cosine_ops)")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _embedding_type(bind).startswith("vector"):
        op.execute(f"DROP INDEX IF EXISTS {INDEX}")
        op.execute("ALTER TABLE event ALTER COLUMN embedding TYPE json USING embedding::text::json")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("people")
        batch_op.drop_column("tags")
