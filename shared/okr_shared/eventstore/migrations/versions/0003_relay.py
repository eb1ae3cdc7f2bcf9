"""Outbox relay: checkpoints and leases (the tables of ``tables_0003``).

es_relay_checkpoints: the last position the broker confirmed, per relay name;
es_relay_leases: which relay process may publish (okr_shared.eventstore.lease).

Revision ID: 0003_relay
Revises: 0002_snapshots
Create Date: 2026-11-29
"""

from alembic import op

from okr_shared.eventstore.migrations.tables_0003 import metadata, relay_checkpoints, relay_leases

revision = "0003_relay"
down_revision = "0002_snapshots"


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[relay_checkpoints, relay_leases], checkfirst=False)


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[relay_leases, relay_checkpoints], checkfirst=False)
