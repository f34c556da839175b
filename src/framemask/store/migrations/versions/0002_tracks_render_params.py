"""tracks carry their per-video number; videos record how their master was rendered

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("track", schema=None) as batch_op:
        batch_op.add_column(sa.Column("number", sa.Integer(), nullable=True))
        batch_op.create_index("ix_track_video_number", ["video_id", "number"], unique=True)
    with op.batch_alter_table("video", schema=None) as batch_op:
        batch_op.add_column(sa.Column("render_params", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("video", schema=None) as batch_op:
        batch_op.drop_column("render_params")
    with op.batch_alter_table("track", schema=None) as batch_op:
        batch_op.drop_index("ix_track_video_number")
        batch_op.drop_column("number")
