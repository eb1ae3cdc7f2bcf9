"""The outbox relay's tables as revision ``0003_relay`` creates them, and as ``schema``
uses them. A later change is a new revision with a snapshot of its own
(docs/adr/0032-one-definition-per-table.md), never an edit here."""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from okr_shared.db.migrations.columns import checkpoint, named, time_us

metadata = MetaData()

#: The outbox relay's progress: ``position`` is the last event the broker confirmed for
#: relay ``name`` (okr_shared.bus.relay). Written only by the holder of the lease of the
#: same name, after the confirms.
relay_checkpoints = Table(
    "es_relay_checkpoints",
    metadata,
    *checkpoint("name"),
)

#: Leases (okr_shared.eventstore.lease): ``owner`` may act as the single active ``name`` until
#: ``expires_at_us`` (the database's clock, microseconds since the epoch); renewed while
#: the owner is alive, taken over by another process once expired.
relay_leases = Table(
    "es_relay_leases",
    metadata,
    named("name", primary_key=True),
    named("owner"),
    time_us("expires_at_us"),
)
