"""a video's pixel aspect ratio (probe fact, "num:den" as displayed): the editor shows anamorphic frames unsqueezed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("video", sa.Column("sample_aspect_ratio", sa.String(length=16), nullable=True))


def downgrade() -> None:
    op.drop_column("video", "sample_aspect_ratio")
