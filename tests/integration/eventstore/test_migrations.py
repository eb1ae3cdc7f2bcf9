"""The schema is created and evolved only by Alembic, identically on both backends."""

import uuid

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, StreamNotFound, migrate
from okr_shared.eventstore.migrate import VERSION_TABLE, alembic_config
from okr_shared.eventstore.schema import metadata
from okr_shared.eventstore.snapshots import SnapshotStore


def test_migrated_schema_matches_the_table_definitions(database):
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []


def test_migration_history_is_kept_in_the_event_store_version_table(database):
    scripts = ScriptDirectory.from_config(alembic_config(database.engine))
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert ctx.get_current_revision() == scripts.get_current_head()
    assert "alembic_version" not in inspect(database.engine).get_table_names()


def test_migrations_form_one_line_from_the_event_store_on():
    history = [s.revision for s in reversed(list(ScriptDirectory.from_config(alembic_config(None)).walk_revisions()))]
    assert history[:2] == ["0001_event_store", "0002_snapshots"]


def test_migrating_again_keeps_the_data(database):
    store = EventStore(database.engine)
    store.append("kr-1", NO_STREAM, [NewEvent("t.X", {"a": 1}, tenant_id="acme")])
    migrate(database.engine)
    assert [e.data for e in store.read_all()] == [{"a": 1}]


def test_downgrade_to_base_and_upgrade_again(database):
    command.downgrade(alembic_config(database.engine), "base")
    assert not [t for t in inspect(database.engine).get_table_names() if t.startswith("es_")]
    migrate(database.engine)
    store = EventStore(database.engine)
    assert store.head_position() == 0
    assert store.append("kr-1", NO_STREAM, [NewEvent("t.X", {}, tenant_id="acme")]).first_position == 1


# ------------------------------------------------ 0004: streams per tenant (ADR 0023)


def _store_at_0003(database):
    """A store as the version before 0004 writes it: the schema built by revisions
    0001-0003, events of two tenants (stream ids distinct across tenants, as that schema
    demanded), chain heads, and a snapshot row of each tenant."""
    command.downgrade(alembic_config(database.engine), "base")
    migrate(database.engine, "0003_relay")
    store = EventStore(database.engine)
    acme = [NewEvent("t.X", {"n": i}, tenant_id="acme", event_id=uuid.uuid4()) for i in range(3)]
    store.append("objective-a1", NO_STREAM, acme[:2])
    store.append("kr-g1", NO_STREAM, [NewEvent("t.X", {"n": 9}, tenant_id="globex")])
    store.append("objective-a1", 2, acme[2:])
    store.append_batch([("kr-g2", NO_STREAM, [NewEvent("t.X", {"n": 10}, tenant_id="globex")])])
    with database.engine.begin() as conn:  # the old table's key was stream_id alone
        for tenant, stream in (("acme", "objective-a1"), ("globex", "kr-g1")):
            conn.execute(text("INSERT INTO es_snapshots (stream_id, tenant_id, version, snapshot_version, state, "
                              "taken_at_us) VALUES (:s, :t, 1, 1, '{\"v\": 1}', 1)"), {"s": stream, "t": tenant})
    return store, acme


def test_0004_keeps_a_store_written_before_it_working(database):
    store, acme = _store_at_0003(database)
    before = [tuple(e) for e in store.read_all()]
    heads = {t: store.chain_head(t) for t in ("acme", "globex")}
    store.close()
    migrate(database.engine)

    with database.engine.connect() as conn:  # the schema is the table definitions
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert compare_metadata(ctx, metadata) == []
    if database.backend == "sqlite":  # position is still the rowid itself
        with database.engine.connect() as conn:
            ddl = conn.execute(text("SELECT sql FROM sqlite_master WHERE name = 'es_events'")).scalar()
        assert "position INTEGER NOT NULL" in ddl and "PRIMARY KEY (position)" in ddl
    store = EventStore(database.engine)
    assert [tuple(e) for e in store.read_all()] == before  # every row, byte for byte
    assert {t: store.chain_head(t) for t in ("acme", "globex")} == heads
    assert store.verify().ok
    assert [e.data["n"] for e in store.read_stream("objective-a1", tenant_id="acme")] == [0, 1, 2]
    with pytest.raises(StreamNotFound):
        store.read_stream("objective-a1", tenant_id="globex")
    snapshots = SnapshotStore(database.engine)
    assert snapshots.load("objective-a1", 1, tenant_id="acme").state == {"v": 1}
    assert snapshots.load("kr-g1", 1, tenant_id="globex").version == 1
    assert snapshots.load("kr-g1", 1, tenant_id="acme") is None
    # an idempotent retry of a batch stored before the migration is still recognised
    assert store.append("objective-a1", 2, acme[2:]).already_stored
    # appends go on: positions continue gap-free, chains continue, and now the other
    # tenant may use the same ids
    assert store.append("objective-a1", 3, [NewEvent("t.X", {"n": 3}, tenant_id="acme")]).first_position == 6
    g = store.append("objective-a1", NO_STREAM, [NewEvent("t.X", {"n": 20}, tenant_id="globex")])
    assert (g.stream_version, g.first_position) == (1, 7)
    assert store.append_batch([("kr-g1", NO_STREAM, [NewEvent("t.X", {}, tenant_id="acme")]),
                               ("kr-g2", NO_STREAM, [NewEvent("t.X", {}, tenant_id="acme")])])[1].last_position == 9
    assert snapshots.save("objective-a1", "globex", 1, 1, {"v": 2})
    assert snapshots.load("objective-a1", 1, tenant_id="acme").state == {"v": 1}
    assert store.verify().ok and store.head_position() == 9
    assert store.chain_head("globex")["event_count"] == 3 and store.chain_head("acme")["event_count"] == 6
    store.close()


def test_0004_downgrade_is_refused_while_tenants_share_a_stream_id(database):
    store = EventStore(database.engine)
    store.append("kr-1", NO_STREAM, [NewEvent("t.X", {}, tenant_id="acme")])
    store.append("kr-2", NO_STREAM, [NewEvent("t.X", {}, tenant_id="globex")])
    command.downgrade(alembic_config(database.engine), "0003_relay")  # no shared id: fine
    migrate(database.engine)
    store.append("kr-1", NO_STREAM, [NewEvent("t.X", {}, tenant_id="globex")])
    before = [tuple(e) for e in store.read_all()]
    with pytest.raises(RuntimeError, match="several tenants have a stream 'kr-1'"):
        command.downgrade(alembic_config(database.engine), "0003_relay")
    with database.engine.connect() as conn:  # nothing changed
        ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        assert ctx.get_current_revision() == "0004_streams_per_tenant"
        assert compare_metadata(ctx, metadata) == []
    assert [tuple(e) for e in store.read_all()] == before and store.verify().ok
    store.close()
