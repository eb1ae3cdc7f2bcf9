"""The schema is created and evolved only by Alembic, identically on both backends."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, migrate
from okr_shared.eventstore.migrate import VERSION_TABLE, alembic_config
from okr_shared.eventstore.schema import metadata


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
