"""Event store: events, head counter, per-tenant chain heads (the tables of
``tables_0001``), the head counter at 0."""

from alembic import op

from okr_shared.db.migrations.ops import creating
from okr_shared.eventstore.migrations.tables_0001 import chain_heads, events, head

revision = "0001_event_store"
down_revision = None

_create, downgrade = creating(events, head, chain_heads, adopt=False)


def upgrade() -> None:
    _create()
    op.bulk_insert(head, [{"id": 1, "last_position": 0}])
