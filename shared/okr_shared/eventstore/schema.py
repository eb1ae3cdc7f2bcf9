"""Tables of the event store (owned by shared/okr_shared/eventstore; created only by
its Alembic migrations, never by create_all in production code), as they are at the
newest revision: each defined once, in the snapshot of the revision that made it so
(``migrations/tables_<revision>.py``, docs/adr/0032-one-definition-per-table.md), and
gathered here in one MetaData (what ``migrations/env.py`` compares the database with)."""

from __future__ import annotations

from sqlalchemy import MetaData

from .migrations import tables_0001, tables_0002, tables_0003

metadata = MetaData()

#: One row per event. ``position`` is global, gap-free and in commit order. A stream is
#: named by (tenant_id, stream_id): each tenant has its own id space, so two tenants may
#: both have a stream "objective-o1" (ADR 0023, revision 0004). ``event_id`` stays
#: unique store-wide.
events = tables_0001.events_table(metadata, "uq_es_events_tenant_stream_version",
                                  "tenant_id", "stream_id", "stream_version")

#: The last assigned position (one row) and each tenant's newest chain link: as 0001 made them.
head = tables_0001.head.to_metadata(metadata)
chain_heads = tables_0001.chain_heads.to_metadata(metadata)

#: Derived data, not history: the folded state of one (tenant's) stream at ``version``, so a long
#: stream loads from here plus the events after it. Written best-effort outside the
#: append transaction; a row whose ``snapshot_version`` differs from the fold code's is
#: ignored (and replaced on the next write). Deleting every row is always safe. Keyed
#: by tenant and stream since 0004.
snapshots = tables_0002.snapshots_table(metadata, "tenant_id", "stream_id")

#: The relay's checkpoints and leases: as 0003 made them.
relay_checkpoints = tables_0003.relay_checkpoints.to_metadata(metadata)
relay_leases = tables_0003.relay_leases.to_metadata(metadata)
