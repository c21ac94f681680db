"""Skips that a later read made good (a truncated file read to its end) are marked, not listed forever.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("skips", sa.Column("resolved_at", sa.DateTime))


def downgrade() -> None:
    with op.batch_alter_table("skips") as batch:
        batch.drop_column("resolved_at")
