"""sampled analyses (pose keypoints) a video's owner asked for, stored per sample, deleted with the video

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-10 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analysis",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("video_id", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.String(length=32), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("rate", sa.Float(), nullable=False),
        sa.Column("requested_by", sa.String(length=120), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("sample_count", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["video_id"], ["video.id"], name="fk_analysis_video_id_video", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_analysis"),
    )
    op.create_index("ix_analysis_video_id", "analysis", ["video_id"])
    op.create_table(
        "analysis_sample",
        sa.Column("analysis_id", sa.String(length=32), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time_ms", sa.Float(), nullable=False),
        sa.Column("frame_time_ms", sa.Float(), nullable=False),
        sa.Column("people", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["analysis_id"], ["analysis.id"], name="fk_analysis_sample_analysis_id_analysis", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("analysis_id", "k", name="pk_analysis_sample"),
    )


def downgrade() -> None:
    op.drop_table("analysis_sample")
    op.drop_index("ix_analysis_video_id", table_name="analysis")
    op.drop_table("analysis")
