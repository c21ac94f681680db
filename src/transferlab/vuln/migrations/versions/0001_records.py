"""Ingested records, per-source checkpoints and counted skips.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "records",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("native_id", sa.String(512), nullable=False),
        sa.Column("connector", sa.String(32), nullable=False),
        sa.Column("project", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("url", sa.Text),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("author", sa.Text),
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
        sa.Column("labels", JSON, nullable=False),
        sa.Column("parent_id", sa.String(512)),
        sa.Column("refs", JSON, nullable=False),
        sa.Column("raw", JSON),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("last_seen", sa.DateTime, nullable=False),
        sa.UniqueConstraint("source", "native_id", name="uq_records_identity"),
    )
    op.create_index("ix_records_project", "records", ["project"])
    op.create_index("ix_records_created_at", "records", ["created_at"])
    op.create_table(
        "checkpoints",
        sa.Column("key", sa.String(2048), primary_key=True),
        sa.Column("state", JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "skips",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("source_key", sa.String(2048), nullable=False),
        sa.Column("location", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("first_seen", sa.DateTime, nullable=False),
        sa.Column("times", sa.Integer, nullable=False),
    )
    op.create_index("ix_skips_source_key", "skips", ["source_key"])


def downgrade() -> None:
    op.drop_table("skips")
    op.drop_table("checkpoints")
    op.drop_table("records")
