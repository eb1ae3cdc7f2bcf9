"""Event store: events, head counter, per-tenant chain heads.

Revision ID: 0001_event_store
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_event_store"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "es_events",
        # SQLite: INTEGER PRIMARY KEY, the rowid itself (one index fewer per insert).
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("recorded_at_us", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("stream_id", "stream_version", name="uq_es_events_stream_version"),
        sa.UniqueConstraint("event_id", name="uq_es_events_event_id"),
    )
    op.create_index("ix_es_events_tenant_position", "es_events", ["tenant_id", "position"])
    head = op.create_table(
        "es_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_position", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "last_position": 0}])
    op.create_table(
        "es_chain_heads",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("last_position", sa.BigInteger, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("event_count", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("es_chain_heads")
    op.drop_table("es_head")
    op.drop_index("ix_es_events_tenant_position", table_name="es_events")
    op.drop_table("es_events")
