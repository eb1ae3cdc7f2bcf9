"""Outbox relay: checkpoints and leases.

es_relay_checkpoints: the last position the broker confirmed, per relay name;
es_relay_leases: which relay process may publish (okr_shared.eventstore.lease).

Revision ID: 0003_relay
Revises: 0002_snapshots
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_relay"
down_revision = "0002_snapshots"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "es_relay_checkpoints",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("position", sa.BigInteger, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "es_relay_leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("es_relay_leases")
    op.drop_table("es_relay_checkpoints")
