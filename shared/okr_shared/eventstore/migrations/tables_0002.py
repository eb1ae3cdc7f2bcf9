"""``es_snapshots`` as revision ``0002_snapshots`` creates it: keyed by ``stream_id``
(0004 keys it by tenant and stream, its columns as they are here). A later change is a
new revision with a snapshot of its own (docs/adr/0032-one-definition-per-table.md),
never an edit here."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, MetaData, PrimaryKeyConstraint, String, Table, Text

metadata = MetaData()


def snapshots_table(metadata: MetaData, *primary_key: str) -> Table:
    """``es_snapshots`` in ``metadata``, keyed by the columns ``primary_key``."""
    return Table(
        "es_snapshots",
        metadata,
        Column("stream_id", String(200), nullable=False),
        Column("tenant_id", String(64), nullable=False),
        Column("version", Integer, nullable=False),
        Column("snapshot_version", Integer, nullable=False),
        # JSON text of the state (``to_snapshot()``, else ``to_dict()``, of the aggregate).
        Column("state", Text, nullable=False),
        Column("taken_at_us", BigInteger, nullable=False),
        PrimaryKeyConstraint(*primary_key),
    )


snapshots = snapshots_table(metadata, "stream_id")
