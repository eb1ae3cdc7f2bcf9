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
failure leaves the store as it was."""

import sqlalchemy as sa
from alembic import op

revision = "0004_streams_per_tenant"
down_revision = "0003_relay"


def _rebuild_sqlite(table: str, primary_key: tuple, unique: dict, indexes: dict) -> None:
    """SQLite: replace ``table`` by a copy with other keys — the columns as they are
    (reflected), the rows and their values unchanged, in rowid order."""
    old = sa.Table(table, sa.MetaData(), autoload_with=op.get_bind())
    columns = [sa.Column(c.name, c.type, nullable=c.nullable, autoincrement=False) for c in old.columns]
    new = f"{table}_0004"
    op.create_table(new, *columns, sa.PrimaryKeyConstraint(*primary_key),
                    *(sa.UniqueConstraint(*cols, name=name) for name, cols in unique.items()))
    names = ", ".join(column.name for column in old.columns)
    op.execute(f"INSERT INTO {new} ({names}) SELECT {names} FROM {table} ORDER BY rowid")
    op.drop_table(table)  # drops its indexes too
    op.rename_table(new, table)
    for name, index_columns in indexes.items():
        op.create_index(name, table, list(index_columns))


def _events_sqlite(per_tenant: bool) -> None:
    stream_key = ("tenant_id", "stream_id", "stream_version") if per_tenant else ("stream_id", "stream_version")
    name = "uq_es_events_tenant_stream_version" if per_tenant else "uq_es_events_stream_version"
    # position stays INTEGER PRIMARY KEY: the rowid itself
    _rebuild_sqlite("es_events", ("position",), {name: stream_key, "uq_es_events_event_id": ("event_id",)},
                    {"ix_es_events_tenant_position": ("tenant_id", "position")})


def _snapshots_sqlite(per_tenant: bool) -> None:
    _rebuild_sqlite("es_snapshots", ("tenant_id", "stream_id") if per_tenant else ("stream_id",), {}, {})


def upgrade() -> None:
    if op.get_context().dialect.name == "sqlite":
        _events_sqlite(per_tenant=True)
        _snapshots_sqlite(per_tenant=True)
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
        _snapshots_sqlite(per_tenant=False)
        return
    op.create_unique_constraint("uq_es_events_stream_version", "es_events", ["stream_id", "stream_version"])
    op.drop_constraint("uq_es_events_tenant_stream_version", "es_events", type_="unique")
    op.drop_constraint("es_snapshots_pkey", "es_snapshots", type_="primary")
    op.create_primary_key("es_snapshots_pkey", "es_snapshots", ["stream_id"])
