"""Cascade scores per record and model version; triage verdicts.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "scores",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("cascade_version", sa.String(64), nullable=False),
        sa.Column("stage1", sa.Float, nullable=False),
        sa.Column("stage2", sa.Float),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("scored_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("record_id", "cascade_version", name="uq_scores_record_version"),
    )
    op.create_index("ix_scores_flagged", "scores", ["cascade_version", "flagged"])
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("record_id", sa.Integer, sa.ForeignKey("records.id", ondelete="CASCADE"), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("reviewer", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("cascade_version", sa.String(64)),
    )
    op.create_index("ix_verdicts_record", "verdicts", ["record_id"])


def downgrade() -> None:
    op.drop_table("verdicts")
    op.drop_table("scores")
