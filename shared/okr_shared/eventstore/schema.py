"""Tables of the event store (owned by shared/okr_shared/eventstore; created only by
its Alembic migrations, never by create_all in production code)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, Index, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text, UniqueConstraint,
)

metadata = MetaData()

#: BIGINT, but SQLite's rowid alias (INTEGER PRIMARY KEY) there.
POSITION_TYPE = BigInteger().with_variant(Integer, "sqlite")

#: One row per event. ``position`` is global, gap-free and in commit order. A stream is
#: named by (tenant_id, stream_id): each tenant has its own id space, so two tenants may
#: both have a stream "objective-o1" (ADR 0023). ``event_id`` stays unique store-wide.
events = Table(
    "es_events",
    metadata,
    # INTEGER on SQLite makes it the rowid itself: one index fewer per insert.
    Column("position", POSITION_TYPE, primary_key=True, autoincrement=False),
    Column("tenant_id", String(64), nullable=False),
    Column("stream_id", String(200), nullable=False),
    Column("stream_version", Integer, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(200), nullable=False),
    Column("schema_version", Integer, nullable=False),
    # TEXT, not JSON/JSONB: the hash covers these exact bytes, and JSONB would
    # re-format them.
    Column("data", Text, nullable=False),
    Column("metadata", Text, nullable=False),
    # Microseconds since the Unix epoch, UTC: identical on every backend and cheap
    # to hash and to read.
    Column("recorded_at_us", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
    UniqueConstraint("tenant_id", "stream_id", "stream_version", name="uq_es_events_tenant_stream_version"),
    UniqueConstraint("event_id", name="uq_es_events_event_id"),
    Index("ix_es_events_tenant_position", "tenant_id", "position"),
)

#: A single row (id = 1) holding the last assigned position. Every append updates it
#: first, in its own transaction: that row lock serialises appends in commit order, and
#: a rolled-back append rolls the counter back too, so positions never have holes.
head = Table(
    "es_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_position", BigInteger, nullable=False),
)

#: The newest link of each tenant's hash chain: the anchor that reveals a truncated
#: history and the starting point of the next append.
chain_heads = Table(
    "es_chain_heads",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("last_position", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
    Column("event_count", BigInteger, nullable=False),
)

#: Derived data, not history: the folded state of one (tenant's) stream at ``version``, so a long
#: stream loads from here plus the events after it. Written best-effort outside the
#: append transaction; a row whose ``snapshot_version`` differs from the fold code's is
#: ignored (and replaced on the next write). Deleting every row is always safe.
snapshots = Table(
    "es_snapshots",
    metadata,
    Column("stream_id", String(200), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("snapshot_version", Integer, nullable=False),
    # JSON text of the state (``to_snapshot()``, else ``to_dict()``, of the aggregate).
    Column("state", Text, nullable=False),
    Column("taken_at_us", BigInteger, nullable=False),
    PrimaryKeyConstraint("tenant_id", "stream_id"),
)

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
