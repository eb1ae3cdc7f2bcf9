"""Snapshots of folded stream state (derived data; safe to empty at any time).

Revision ID: 0002_snapshots
Revises: 0001_event_store
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_snapshots"
down_revision = "0001_event_store"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "es_snapshots",
        sa.Column("stream_id", sa.String(200), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("snapshot_version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("taken_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("es_snapshots")
