"""Snapshots of folded stream state (derived data; safe to empty at any time): the
table of ``tables_0002``.

Revision ID: 0002_snapshots
Revises: 0001_event_store
Create Date: 2026-11-28
"""

from alembic import op

from okr_shared.eventstore.migrations.tables_0002 import snapshots

revision = "0002_snapshots"
down_revision = "0001_event_store"


def upgrade() -> None:
    snapshots.create(op.get_bind())


def downgrade() -> None:
    snapshots.drop(op.get_bind())
