"""jobs have a parent (a segment of a video's processing job) and a part number (the segment's index)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-09 08:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_id", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("part", sa.Integer(), nullable=True))
        batch_op.create_foreign_key("fk_job_parent_id_job", "job", ["parent_id"], ["id"], ondelete="CASCADE")
        batch_op.create_index("ix_job_parent_part", ["parent_id", "part"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_parent_part")
        batch_op.drop_constraint("fk_job_parent_id_job", type_="foreignkey")
        batch_op.drop_column("part")
        batch_op.drop_column("parent_id")
