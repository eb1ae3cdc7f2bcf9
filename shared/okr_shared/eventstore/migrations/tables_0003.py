"""The outbox relay's tables as revision ``0003_relay`` creates them, and as ``schema``
uses them. A later change is a new revision with a snapshot of its own
(docs/adr/0032-one-definition-per-table.md), never an edit here."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

metadata = MetaData()

#: The outbox relay's progress: ``position`` is the last event the broker confirmed for
#: relay ``name`` (okr_shared.bus.relay). Written only by the holder of the lease of the
#: same name, after the confirms.
relay_checkpoints = Table(
    "es_relay_checkpoints",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

#: Leases (okr_shared.eventstore.lease): ``owner`` may act as the single active ``name`` until
#: ``expires_at_us`` (the database's clock, microseconds since the epoch); renewed while
#: the owner is alive, taken over by another process once expired.
relay_leases = Table(
    "es_relay_leases",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("owner", String(200), nullable=False),
    Column("expires_at_us", BigInteger, nullable=False),
)
