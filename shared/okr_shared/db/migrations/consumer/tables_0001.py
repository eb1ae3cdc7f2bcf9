"""The consumer layer's tables as revision ``0001_consumer`` creates them, and as
okr_shared.bus.consumer uses them. A later change is a new revision with a snapshot of
its own (docs/adr/0032-one-definition-per-table.md), never an edit here."""

from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, Text

metadata = MetaData()

#: Ordered consumers: the last position applied (or skipped) per consumer (= queue name).
offsets = Table(
    "okr_consumer_offsets",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("last_position", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

#: Unordered consumers: the event ids applied per consumer.
processed = Table(
    "okr_consumer_processed",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("processed_at_us", BigInteger, nullable=False),
)

#: Events a consumer gave up on (also in its ``<queue>.dlq``), until redriven.
dead_letters = Table(
    "okr_consumer_dead_letters",
    metadata,
    Column("consumer", String(200), primary_key=True),
    Column("position", BigInteger, primary_key=True),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("dead_at_us", BigInteger, nullable=False),
)
