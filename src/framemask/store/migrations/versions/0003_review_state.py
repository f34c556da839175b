"""videos carry their review state and the cached hashes of their original and final video

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("video", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("review_state", sa.String(length=32), nullable=False, server_default="unreviewed")
        )
        batch_op.add_column(sa.Column("review_by", sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column("review_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("original_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("final_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("video", schema=None) as batch_op:
        batch_op.drop_column("final_sha256")
        batch_op.drop_column("original_sha256")
        batch_op.drop_column("review_at")
        batch_op.drop_column("review_by")
        batch_op.drop_column("review_state")
