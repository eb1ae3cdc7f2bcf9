"""The append transaction, one implementation per backend.

Both take the store-wide write lock first, read the stream's state under it, and write
the events and the chain head in the same transaction (ADR 0001). They differ in how
few round trips they need:

- SQLite runs in-process, so round trips are free: plain SQLAlchemy Core statements in
  a ``BEGIN IMMEDIATE`` transaction, behind an in-process lock.
- PostgreSQL pays a network round trip per statement, and appends are serial, so every
  round trip inside the lock costs throughput. The transaction is two round trips plus
  the commit's flush: ``BEGIN; UPDATE head; SELECT state`` (each statement of a
  multi-statement string gets a fresh snapshot, so the SELECT sees everything committed
  before the lock was granted), then ``INSERT events; UPSERT chain head; COMMIT``.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import sqlite

from . import schema

_E = schema.events
EVENT_COLUMNS = (
    "position",
    "tenant_id",
    "stream_id",
    "stream_version",
    "event_id",
    "event_type",
    "schema_version",
    "data",
    "metadata",
    "recorded_at_us",
    "hash",
)


def _sqlite_chain_head_upsert():
    ch = schema.chain_heads
    stmt = sqlite.insert(ch)
    return stmt.on_conflict_do_update(
        index_elements=[ch.c.tenant_id],
        set_={
            "last_position": stmt.excluded.last_position,
            "last_hash": stmt.excluded.last_hash,
            "event_count": ch.c.event_count + stmt.excluded.event_count,
        },
    )


class SqliteAppendTransaction:
    """Context manager: ``BEGIN IMMEDIATE`` on a connection, serialised in-process."""

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()
    _upsert_chain_head = _sqlite_chain_head_upsert()

    def __init__(self, engine: Engine):
        self.engine = engine
        key = str(engine.url)
        with self._locks_guard:
            self._lock = self._locks.setdefault(key, threading.Lock())

    def __enter__(self):
        self._lock.acquire()
        try:
            self.connection = self.engine.connect().execution_options(sqlite_begin="IMMEDIATE")
            self._tx = self.connection.begin()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._tx.is_active:
                self._tx.rollback()
            self.connection.close()
        finally:
            self._lock.release()
        return False

    def lock_and_read(self, n: int, stream_id: str, tenant_id: str):
        """Move the head by n; return (last position, stream version, stream owner
        tenant or None, tenant's last chain hash or None)."""
        conn = self.connection
        last = conn.execute(
            update(schema.head)
            .where(schema.head.c.id == 1)
            .values(last_position=schema.head.c.last_position + n)
            .returning(schema.head.c.last_position)
        ).scalar_one()
        row = conn.execute(
            select(
                select(_E.c.stream_version)
                .where(_E.c.stream_id == stream_id)
                .order_by(_E.c.stream_version.desc())
                .limit(1)
                .scalar_subquery(),
                select(_E.c.tenant_id).where(_E.c.stream_id == stream_id).limit(1).scalar_subquery(),
                select(schema.chain_heads.c.last_hash)
                .where(schema.chain_heads.c.tenant_id == tenant_id)
                .scalar_subquery(),
            )
        ).one()
        return last, row[0] or 0, row[1], row[2]

    def write_and_commit(self, rows: list[tuple], chain_head: dict) -> None:
        self.connection.execute(_E.insert(), [dict(zip(EVENT_COLUMNS, r)) for r in rows])
        self.connection.execute(self._upsert_chain_head, chain_head)
        self._tx.commit()


class PostgresAppendTransaction:
    """Context manager: a hand-driven transaction on an autocommit psycopg2
    connection, so BEGIN and COMMIT ride along with the statements around them."""

    _LOCK_AND_READ = (
        "BEGIN; "
        "UPDATE es_head SET last_position = last_position + %(n)s WHERE id = 1; "
        "SELECT (SELECT last_position FROM es_head WHERE id = 1), "
        "(SELECT stream_version FROM es_events WHERE stream_id = %(stream_id)s "
        "ORDER BY stream_version DESC LIMIT 1), "
        "(SELECT tenant_id FROM es_events WHERE stream_id = %(stream_id)s LIMIT 1), "
        "(SELECT last_hash FROM es_chain_heads WHERE tenant_id = %(tenant_id)s)"
    )
    _INSERT = f"INSERT INTO es_events ({', '.join(EVENT_COLUMNS)}) VALUES "
    _ROW = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    _UPSERT_AND_COMMIT = (
        "; INSERT INTO es_chain_heads (tenant_id, last_position, last_hash, event_count) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (tenant_id) DO UPDATE SET "
        "last_position = EXCLUDED.last_position, last_hash = EXCLUDED.last_hash, "
        "event_count = es_chain_heads.event_count + EXCLUDED.event_count; COMMIT"
    )

    _sql_by_size: dict[int, str] = {}

    def __init__(self, engine: Engine):
        self.engine = engine

    def __enter__(self):
        self.connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._open = False
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self._open:
                self.connection.exec_driver_sql("ROLLBACK")
        except Exception:
            self.connection.invalidate()  # a broken connection must not go back to the pool
        finally:
            self.connection.close()
        return False

    def lock_and_read(self, n: int, stream_id: str, tenant_id: str):
        self._open = True
        row = self.connection.exec_driver_sql(
            self._LOCK_AND_READ, {"n": n, "stream_id": stream_id, "tenant_id": tenant_id}
        ).one()
        return row[0], row[1] or 0, row[2], row[3]

    def write_and_commit(self, rows: list[tuple], chain_head: dict) -> None:
        sql = self._sql_by_size.get(len(rows))
        if sql is None:
            sql = self._INSERT + ", ".join([self._ROW] * len(rows)) + self._UPSERT_AND_COMMIT
            self._sql_by_size[len(rows)] = sql
        params = [value for row in rows for value in row]
        params += [chain_head["tenant_id"], chain_head["last_position"], chain_head["last_hash"],
                   chain_head["event_count"]]
        self.connection.exec_driver_sql(sql, tuple(params))
        self._open = False


def append_transaction(engine: Engine):
    """A new append transaction (a context manager) for the engine's backend."""
    if engine.dialect.name == "sqlite":
        return SqliteAppendTransaction(engine)
    if engine.dialect.name == "postgresql":
        return PostgresAppendTransaction(engine)
    raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
