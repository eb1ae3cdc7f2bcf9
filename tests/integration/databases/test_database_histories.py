"""The schemas of the platform's databases other than the event store come from their
Alembic histories (okr_shared.db.migrate, one per database): the tables, columns and
indexes they create are those the code defines, and a database made before the
histories existed (by the services' old ``ensure_schema``: ``create_all`` of the same
table definitions) is adopted as it is — tables, rows and indexes untouched, stamped at
the head — on both backends."""

from __future__ import annotations

import re
import shutil
import sqlite3
import threading
import uuid
from pathlib import Path

import pytest
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from okr_services.gateway import auth
from okr_shared.db.migrations.directory import tables_0001 as directory_tables
from okr_services.notification import delivery, directory
from okr_services.notification.service import TABLES as NOTIFICATION_TABLES
from okr_services.reporting import storage
from okr_shared.readmodels import storage as read_models
from okr_shared.bus import consumer
from okr_shared.db import HISTORIES, migrate
from okr_shared.db.migrate import alembic_config, version_table
from okr_shared.eventstore import make_engine

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "databases"

#: The histories of each database and how the code before them made it.
DATABASES = {
    "gateway_keys": ("gateway_keys",),
    "reporting": ("consumer", "reporting"),
    "notification": ("consumer", "notification"),
    "directory": ("consumer", "directory"),
}
#: The databases that existed before the histories (made by ``ensure_schema``): adopted.
OLD_DATABASES = ("gateway_keys", "reporting", "notification")


def _made_the_old_way(engine, database: str) -> None:
    """The tables as the code's table definitions create them (what ``ensure_schema``
    did: ``create_all``)."""
    if database == "gateway_keys":
        auth.api_keys.metadata.create_all(engine, tables=[auth.api_keys])
        return
    consumer.metadata.create_all(engine)
    if database == "directory":  # new with its history: what its snapshot defines
        directory_tables.metadata.create_all(engine)
        return
    if database == "reporting":
        tables = read_models.tables_for(storage.PREFIX, storage.STORED)
    else:
        delivery.metadata.create_all(engine)
        directory.metadata.create_all(engine)
        tables = NOTIFICATION_TABLES
    for table in tables.values():
        table.create(engine)


def _shape(engine) -> dict:
    """Every table's columns (name, type, nullable), primary key, unique constraints and
    indexes (a read-model index's token replaced: each set of tables gets its own)."""
    insp = inspect(engine)
    shape = {}
    for name in insp.get_table_names():
        if name.startswith("alembic_version") or name.startswith("es_"):
            continue
        shape[name] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)],
            "primary_key": insp.get_pk_constraint(name)["constrained_columns"],
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(name)),
            "indexes": sorted((re.sub(r"_(live|[0-9a-f]{8})$", "_<token>", i["name"]), tuple(i["column_names"]),
                               bool(i["unique"])) for i in insp.get_indexes(name)),
        }
    return shape


def _revisions(engine, histories) -> dict[str, str | None]:
    with engine.connect() as conn:
        return {h: MigrationContext.configure(conn, opts={"version_table": version_table(h)}).get_current_revision()
                for h in histories}


def _heads(histories) -> dict[str, str]:
    return {h: ScriptDirectory.from_config(alembic_config(None, h)).get_current_head() for h in histories}


@pytest.fixture
def second_engine(database, tmp_path):
    """Another empty database on the same backend as ``database``."""
    if database.backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path}/second.db")
        yield engine
        engine.dispose()
        return
    schema = f"db_test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(database.url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(database.url, connect_args={"options": f"-csearch_path={schema}"})
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


def test_every_history_is_one_line_with_a_version_table_of_its_own():
    assert set(HISTORIES) == {h for histories in DATABASES.values() for h in histories}
    for history in HISTORIES:
        scripts = ScriptDirectory.from_config(alembic_config(None, history))
        assert len(scripts.get_heads()) == 1 and len(scripts.get_bases()) == 1
    assert len({version_table(h) for h in HISTORIES}) == len(HISTORIES)


@pytest.mark.parametrize("name", DATABASES)
def test_the_histories_create_the_tables_the_code_defines(database, second_engine, name):
    migrated, old = database.engine, second_engine
    for history in DATABASES[name]:
        migrate(migrated, history)
        migrate(migrated, history)  # idempotent
    _made_the_old_way(old, name)
    assert _shape(migrated) == _shape(old) != {}
    assert _revisions(migrated, DATABASES[name]) == _heads(DATABASES[name])


@pytest.mark.parametrize("name", OLD_DATABASES)
def test_a_database_made_before_the_histories_is_adopted_as_it_is(database, name):
    engine = database.engine
    _made_the_old_way(engine, name)
    with engine.begin() as conn:
        if name == "gateway_keys":
            conn.execute(auth.api_keys.insert().values(
                key_id="k" * 12, tenant="acme", subject="alice", role="admin", teams="[]",
                delegated_key_results="[]", secret_hash="h", created_at_us=1, description=""))
        else:
            conn.execute(consumer.offsets.insert().values(consumer="c", last_position=7, updated_at_us=1))
    before = _shape(engine)
    for history in DATABASES[name]:
        migrate(engine, history)
    assert _shape(engine) == before
    assert _revisions(engine, DATABASES[name]) == _heads(DATABASES[name])
    with engine.connect() as conn:
        if name == "gateway_keys":
            assert conn.execute(text("SELECT subject FROM gateway_api_keys")).scalars().all() == ["alice"]
        else:
            assert conn.execute(text("SELECT last_position FROM okr_consumer_offsets")).scalars().all() == [7]


@pytest.mark.parametrize("name", OLD_DATABASES)
def test_a_sqlite_database_made_by_the_code_before_the_histories_is_adopted(tmp_path, name):
    # The fixtures are the databases the services' old ensure_schema made, before
    # okr_shared.db existed (made by running that code: make_before_migrations.py).
    path = tmp_path / f"{name}.db"
    shutil.copyfile(FIXTURES / f"{name}-before-migrations.db", path)
    with sqlite3.connect(path) as con:
        con.execute("CREATE TABLE keep_me (x INTEGER)")  # anything else in the file stays too
    con.close()
    engine = make_engine(f"sqlite:///{path}")
    try:
        before = _shape(engine)
        for history in DATABASES[name]:
            migrate(engine, history)
        assert _shape(engine) == before
        assert _revisions(engine, DATABASES[name]) == _heads(DATABASES[name])
    finally:
        engine.dispose()


@pytest.mark.parametrize("name", DATABASES)
def test_instances_starting_at_once_both_get_the_schema(database, name):
    # in one process (nameko starts a runner's containers at once, in green threads)
    engines = [database.engine, database.make_engine()]
    errors = []

    def start(engine):
        try:
            for history in DATABASES[name]:
                migrate(engine, history)
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=start, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engines[1].dispose()
    assert errors == []
    assert _revisions(database.engine, DATABASES[name]) == _heads(DATABASES[name])
