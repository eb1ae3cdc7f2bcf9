"""Consumer layer: ordered consumers' offsets, unordered consumers' processed event ids,
dead letters (okr_shared.bus.consumer). Creates only the tables that are missing, so a
database made by the consumer layer before this history existed is adopted as it is.

Revision ID: 0001_consumer
Revises:
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_consumer"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "okr_consumer_offsets" not in existing:
        op.create_table(
            "okr_consumer_offsets",
            sa.Column("consumer", sa.String(200), primary_key=True),
            sa.Column("last_position", sa.BigInteger, nullable=False),
            sa.Column("updated_at_us", sa.BigInteger, nullable=False),
        )
    if "okr_consumer_processed" not in existing:
        op.create_table(
            "okr_consumer_processed",
            sa.Column("consumer", sa.String(200), primary_key=True),
            sa.Column("event_id", sa.String(36), primary_key=True),
            sa.Column("position", sa.BigInteger, nullable=False),
            sa.Column("processed_at_us", sa.BigInteger, nullable=False),
        )
    if "okr_consumer_dead_letters" not in existing:
        op.create_table(
            "okr_consumer_dead_letters",
            sa.Column("consumer", sa.String(200), primary_key=True),
            sa.Column("position", sa.BigInteger, primary_key=True),
            sa.Column("event_id", sa.String(36), nullable=False),
            sa.Column("event_type", sa.String(200), nullable=False),
            sa.Column("tenant_id", sa.String(64), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False),
            sa.Column("error", sa.Text, nullable=False),
            sa.Column("dead_at_us", sa.BigInteger, nullable=False),
        )


def downgrade() -> None:
    op.drop_table("okr_consumer_dead_letters")
    op.drop_table("okr_consumer_processed")
    op.drop_table("okr_consumer_offsets")
