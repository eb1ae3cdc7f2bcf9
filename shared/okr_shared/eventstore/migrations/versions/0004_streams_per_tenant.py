"""Streams per tenant: a stream is named by (tenant_id, stream_id) (ADR 0023).

es_events: the unique (stream_id, stream_version) becomes (tenant_id, stream_id,
stream_version), so two tenants may each have a stream of the same id;
es_snapshots: keyed by (tenant_id, stream_id) instead of stream_id.

Every existing row satisfies the new keys (the old ones were stricter), so no row is
changed. PostgreSQL alters the constraints in place (the new unique index is built
before the old one is dropped, in the migration's transaction). SQLite cannot drop a
table's constraint: each table is rebuilt — created under a new name with the new keys,
the rows copied in the same order with the same values (``position`` stays the rowid),
the old table dropped and the new one renamed — in the migration's transaction, so a
failure leaves the store as it was.

Revision ID: 0004_streams_per_tenant
Revises: 0003_relay
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_streams_per_tenant"
down_revision = "0003_relay"
branch_labels = None
depends_on = None

_EVENT_COLUMNS = ("position", "tenant_id", "stream_id", "stream_version", "event_id", "event_type",
                  "schema_version", "data", "metadata", "recorded_at_us", "hash")
_SNAPSHOT_COLUMNS = ("tenant_id", "stream_id", "version", "snapshot_version", "state", "taken_at_us")


def _events_columns() -> list:
    return [
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("stream_id", sa.String(200), nullable=False),
        sa.Column("stream_version", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(36), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("schema_version", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("recorded_at_us", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    ]


def _snapshot_columns(per_tenant: bool) -> list:
    return [
        sa.Column("tenant_id", sa.String(64), primary_key=per_tenant, nullable=False),
        sa.Column("stream_id", sa.String(200), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("snapshot_version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("taken_at_us", sa.BigInteger, nullable=False),
    ]


def _rebuild_sqlite(table: str, columns: list, constraints: list, copied: tuple, indexes: dict) -> None:
    """SQLite: replace ``table`` by a copy with other keys, rows and values unchanged."""
    new = f"{table}_0004"
    op.create_table(new, *columns, *constraints)
    names = ", ".join(copied)
    op.execute(f"INSERT INTO {new} ({names}) SELECT {names} FROM {table} ORDER BY rowid")
    op.drop_table(table)  # drops its indexes too
    op.rename_table(new, table)
    for name, index_columns in indexes.items():
        op.create_index(name, table, list(index_columns))


def _events_sqlite(per_tenant: bool) -> None:
    stream_key = ("tenant_id", "stream_id", "stream_version") if per_tenant else ("stream_id", "stream_version")
    name = "uq_es_events_tenant_stream_version" if per_tenant else "uq_es_events_stream_version"
    _rebuild_sqlite(
        "es_events", _events_columns(),
        [sa.UniqueConstraint(*stream_key, name=name), sa.UniqueConstraint("event_id", name="uq_es_events_event_id")],
        _EVENT_COLUMNS, {"ix_es_events_tenant_position": ("tenant_id", "position")},
    )


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _events_sqlite(per_tenant=True)
        _rebuild_sqlite("es_snapshots", _snapshot_columns(per_tenant=True), [], _SNAPSHOT_COLUMNS, {})
        return
    op.create_unique_constraint("uq_es_events_tenant_stream_version", "es_events",
                                ["tenant_id", "stream_id", "stream_version"])
    op.drop_constraint("uq_es_events_stream_version", "es_events", type_="unique")
    op.drop_constraint("es_snapshots_pkey", "es_snapshots", type_="primary")
    op.create_primary_key("es_snapshots_pkey", "es_snapshots", ["tenant_id", "stream_id"])


def downgrade() -> None:
    """Back to store-wide stream ids: refused while two tenants share a stream id (the
    old keys could not hold both; nothing is changed then)."""
    shared = op.get_bind().execute(sa.text(
        "SELECT stream_id FROM es_events GROUP BY stream_id HAVING COUNT(DISTINCT tenant_id) > 1 LIMIT 1"
    )).scalar()
    if shared is not None:
        raise RuntimeError(
            f"cannot downgrade below 0004_streams_per_tenant: several tenants have a stream {shared!r} "
            "(and maybe others); the older schema keys streams by stream_id alone")
    if op.get_context().dialect.name == "sqlite":
        _events_sqlite(per_tenant=False)
        _rebuild_sqlite("es_snapshots", _snapshot_columns(per_tenant=False), [], _SNAPSHOT_COLUMNS, {})
        return
    op.create_unique_constraint("uq_es_events_stream_version", "es_events", ["stream_id", "stream_version"])
    op.drop_constraint("uq_es_events_tenant_stream_version", "es_events", type_="unique")
    op.drop_constraint("es_snapshots_pkey", "es_snapshots", type_="primary")
    op.create_primary_key("es_snapshots_pkey", "es_snapshots", ["stream_id"])
