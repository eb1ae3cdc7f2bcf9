"""Engines for the event store: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import os

from sqlalchemy import Engine, create_engine, event


def make_engine(url: str, **kwargs) -> Engine:
    """Create an engine configured for the event store.

    SQLite: WAL journal, a busy timeout, and transactions begun explicitly so a
    writer can take the write lock up front with ``BEGIN IMMEDIATE`` (see
    ``write_connection``). ``OKR_SQLITE_SYNCHRONOUS`` (default FULL) sets durability.
    PostgreSQL: psycopg2, which eventlet's monkey patching makes green.
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    # No pool_pre_ping: it costs a round trip per checkout, i.e. per append, inside the
    # store's serial write path. A connection broken by a server restart is detected on
    # use, the pool is invalidated, and the caller's retry gets a fresh connection.
    return create_engine(url, **kwargs)


def _sqlite_engine(url: str, **kwargs) -> Engine:
    synchronous = os.environ.get("OKR_SQLITE_SYNCHRONOUS", "FULL").upper()
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"OKR_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    engine = create_engine(url, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy's begin hook below issue BEGIN itself (pysqlite's own
        # transaction handling would defer it and never take the write lock early).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout = 30000")
        if url not in ("sqlite://", "sqlite:///:memory:"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
