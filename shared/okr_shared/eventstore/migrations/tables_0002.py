"""``es_snapshots`` as revision ``0002_snapshots`` creates it: keyed by ``stream_id``
(0004 keys it by tenant and stream, its columns as they are here). A later change is a
new revision with a snapshot of its own (docs/adr/0032-one-definition-per-table.md),
never an edit here."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, PrimaryKeyConstraint, Table, Text

from okr_shared.db.migrations.columns import named, tenant_id, time_us

metadata = MetaData()


def snapshots_table(metadata: MetaData, *primary_key: str) -> Table:
    """``es_snapshots`` in ``metadata``, keyed by the columns ``primary_key``."""
    return Table(
        "es_snapshots",
        metadata,
        named("stream_id"),
        tenant_id(),
        Column("version", Integer, nullable=False),
        Column("snapshot_version", Integer, nullable=False),
        # JSON text of the state (``to_snapshot()``, else ``to_dict()``, of the aggregate).
        Column("state", Text, nullable=False),
        time_us("taken_at_us"),
        PrimaryKeyConstraint(*primary_key),
    )


snapshots = snapshots_table(metadata, "stream_id")
