"""Outbox relay: checkpoints and leases (the tables of ``tables_0003``).

es_relay_checkpoints: the last position the broker confirmed, per relay name;
es_relay_leases: which relay process may publish (okr_shared.eventstore.lease)."""

from okr_shared.db.migrations.ops import creating
from okr_shared.eventstore.migrations.tables_0003 import relay_checkpoints, relay_leases

revision = "0003_relay"
down_revision = "0002_snapshots"

upgrade, downgrade = creating(relay_checkpoints, relay_leases, adopt=False)
