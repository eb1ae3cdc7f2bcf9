"""The consumer layer's tables as revision ``0001_consumer`` creates them, and as
okr_shared.bus.consumer uses them. A later change is a new revision with a snapshot of
its own (docs/adr/0032-one-definition-per-table.md), never an edit here."""

from sqlalchemy import Column, Integer, MetaData, Table, Text

from ..columns import checkpoint, event_id, named, position, tenant_id, time_us

metadata = MetaData()

#: Ordered consumers: the last position applied (or skipped) per consumer (= queue name).
offsets = Table(
    "okr_consumer_offsets",
    metadata,
    *checkpoint("consumer", "last_position"),
)

#: Unordered consumers: the event ids applied per consumer.
processed = Table(
    "okr_consumer_processed",
    metadata,
    named("consumer", primary_key=True),
    event_id(primary_key=True),
    position(),
    time_us("processed_at_us"),
)

#: Events a consumer gave up on (also in its ``<queue>.dlq``), until redriven.
dead_letters = Table(
    "okr_consumer_dead_letters",
    metadata,
    named("consumer", primary_key=True),
    position(primary_key=True),
    event_id(),
    named("event_type"),
    tenant_id(),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    time_us("dead_at_us"),
)
