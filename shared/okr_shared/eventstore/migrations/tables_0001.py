"""The event store's tables as revision ``0001_event_store`` creates them. ``es_head``
and ``es_chain_heads`` are still so (``schema`` uses them); ``es_events`` got its
per-tenant stream key in 0004, its columns as they are here (``event_columns``). A later
change is a new revision with a snapshot of its own
(docs/adr/0032-one-definition-per-table.md), never an edit here."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, Table, Text, UniqueConstraint

from okr_shared.db.migrations.columns import event_id, named, position, sha256, tenant_id, time_us

metadata = MetaData()

#: BIGINT, but SQLite's rowid alias (INTEGER PRIMARY KEY) there.
POSITION_TYPE = BigInteger().with_variant(Integer, "sqlite")


def event_columns() -> list[Column]:
    """The columns of ``es_events`` (new objects on each call: a Column belongs to one
    table)."""
    return [
        # INTEGER on SQLite makes it the rowid itself: one index fewer per insert.
        Column("position", POSITION_TYPE, primary_key=True, autoincrement=False),
        tenant_id(),
        named("stream_id"),
        Column("stream_version", Integer, nullable=False),
        event_id(),
        named("event_type"),
        Column("schema_version", Integer, nullable=False),
        # TEXT, not JSON/JSONB: the hash covers these exact bytes, and JSONB would
        # re-format them.
        Column("data", Text, nullable=False),
        Column("metadata", Text, nullable=False),
        # Microseconds since the Unix epoch, UTC: identical on every backend and cheap
        # to hash and to read.
        time_us("recorded_at_us"),
        sha256(),
    ]


def events_table(metadata: MetaData, key_name: str, *stream_key: str) -> Table:
    """``es_events`` in ``metadata``, an event's place in its stream unique by the
    columns ``stream_key`` (constraint ``key_name``)."""
    return Table(
        "es_events",
        metadata,
        *event_columns(),
        UniqueConstraint(*stream_key, name=key_name),
        UniqueConstraint("event_id", name="uq_es_events_event_id"),
        Index("ix_es_events_tenant_position", "tenant_id", "position"),
    )


#: One row per event. ``position`` is global, gap-free and in commit order; here a
#: stream's id is unique store-wide.
events = events_table(metadata, "uq_es_events_stream_version", "stream_id", "stream_version")

#: A single row (id = 1) holding the last assigned position. Every append updates it
#: first, in its own transaction: that row lock serialises appends in commit order, and
#: a rolled-back append rolls the counter back too, so positions never have holes.
head = Table(
    "es_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    position("last_position"),
)

#: The newest link of each tenant's hash chain: the anchor that reveals a truncated
#: history and the starting point of the next append.
chain_heads = Table(
    "es_chain_heads",
    metadata,
    tenant_id(primary_key=True),
    position("last_position"),
    sha256("last_hash"),
    position("event_count"),
)
