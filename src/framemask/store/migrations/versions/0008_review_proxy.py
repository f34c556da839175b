"""the original's review proxy (a short-GOP copy for the editor's random frame access), once made

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("video", sa.Column("proxy_key", sa.String(length=1024), nullable=True))


def downgrade() -> None:
    op.drop_column("video", "proxy_key")
