"""Event store: events, head counter, per-tenant chain heads (the tables of
``tables_0001``).

Revision ID: 0001_event_store
Revises:
Create Date: 2026-11-27
"""

from alembic import op

from okr_shared.eventstore.migrations.tables_0001 import chain_heads, events, head, metadata

revision = "0001_event_store"
down_revision = None


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[events, head, chain_heads], checkfirst=False)
    op.bulk_insert(head, [{"id": 1, "last_position": 0}])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[chain_heads, head, events], checkfirst=False)
