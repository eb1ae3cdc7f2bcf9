"""The append transaction, one implementation per backend.

Both take the store-wide write lock first, read the stream's state under it, and write
the events and the chain head in the same transaction (ADR 0001). Appends are serial,
so every microsecond and round trip spent inside the lock is throughput lost; both
implementations therefore speak plain SQL through the DBAPI connection of a pooled
SQLAlchemy connection, with statements written once:

- SQLite runs in-process: ``BEGIN IMMEDIATE`` on a raw sqlite3 connection, behind an
  in-process lock so green threads queue in Python instead of busy-waiting on SQLite's
  file lock (ADR 0030).
- PostgreSQL pays a network round trip per statement batch: the transaction is two
  round trips plus the commit's flush on an autocommit connection of a dedicated writer
  pool: ``BEGIN; UPDATE head; SELECT state`` (each statement of a multi-statement string
  gets a fresh snapshot, so the SELECT sees everything committed before the lock was
  granted), then ``INSERT events; UPSERT chain head; COMMIT``. Concurrent appends of a
  process share those two round trips (``group_commit``, ADR 0020).
"""

from __future__ import annotations

import sqlite3
import sys
import threading

from sqlalchemy import Engine, create_engine, exc

from .. import config

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


class EventIdCollision(Exception):
    """The insert hit the unique event_id constraint (the transaction is rolled back)."""


def _state_sql(p: str) -> str:
    """SELECT (the tenant's stream's version, the tenant's last chain hash); parameters
    tenant, stream, tenant. A stream is the tenant's own (ADR 0023): the same stream id of
    another tenant is another stream, read by the same index probe."""
    return (
        f"SELECT (SELECT stream_version FROM es_events WHERE tenant_id = {p} AND stream_id = {p} "
        f"ORDER BY stream_version DESC LIMIT 1), "
        f"(SELECT last_hash FROM es_chain_heads WHERE tenant_id = {p})"
    )


def _upsert_chain_head_sql(p: str, rows: int = 1) -> str:
    return (
        f"INSERT INTO es_chain_heads (tenant_id, last_position, last_hash, event_count) "
        f"VALUES {', '.join([f'({p}, {p}, {p}, {p})'] * rows)} ON CONFLICT (tenant_id) DO UPDATE SET "
        "last_position = excluded.last_position, last_hash = excluded.last_hash, "
        "event_count = es_chain_heads.event_count + excluded.event_count"
    )


def _streams_sql(p: str, n: int) -> str:
    """SELECT (stream_id, version) of the given streams of one tenant that exist;
    parameters: the tenant, then the ``n`` stream ids."""
    return (
        "SELECT stream_id, MAX(stream_version) FROM es_events "
        f"WHERE tenant_id = {p} AND stream_id IN ({', '.join([p] * n)}) GROUP BY stream_id"
    )


def _find_ids_sql(p: str, n: int) -> str:
    return (
        "SELECT event_id, tenant_id, stream_id, stream_version, position FROM es_events "
        f"WHERE event_id IN ({', '.join([p] * n)})"
    )


_COMMIT_IN_THREAD = config.sqlite_commit_in_thread()
#: ``OKR_SQLITE_COMMIT_IN_THREAD`` — unset (the default): the event store's appends
#: COMMIT in place and the consumers' read-model transactions hand their COMMIT to
#: eventlet's thread pool; ``1``: both in the pool; ``0``: both in place. Measured at 200
#: check-ins/s on 2 cores (ADR 0014, addendum of stop 12): an append's hand-off, made
#: with the store's append lock held, waits for the GIL of a busy process on the way
#: back (up to the 5 ms switch interval) and holds up every command queued behind it,
#: while the fsync itself costs ~0.25 ms; the reporting consumer's commits (rows of tens
#: of KB, and the WAL checkpoints they set off) stalled its whole process in place.
COMMIT_IN_THREAD = _COMMIT_IN_THREAD in ("1", "true", "yes", "on")
CONSUMER_COMMIT_IN_THREAD = _COMMIT_IN_THREAD not in ("0", "false", "no", "off")


def off_the_hub(call, *args, in_thread: bool | None = None):
    """``call(*args)`` in eventlet's thread pool when this process is eventlet-patched
    (the nameko services) and ``in_thread`` (default: ``COMMIT_IN_THREAD``, the event
    store's setting) says so, else directly. For a COMMIT: its fsync would otherwise stop
    every green thread of the process; sqlite3 releases the GIL meanwhile, so RPC
    replies and the next commands' decisions go on. Appends stay serial: the caller holds
    the append lock throughout. Durability is the same either way
    (``OKR_SQLITE_SYNCHRONOUS``)."""
    if in_thread is None:
        in_thread = COMMIT_IN_THREAD
    patcher = sys.modules.get("eventlet.patcher")
    if in_thread and patcher is not None and patcher.is_monkey_patched("thread"):
        from eventlet import tpool

        return tpool.execute(call, *args)
    return call(*args)


class SqliteAppender:
    """Appends to a SQLite database; one per EventStore."""

    _locks: dict[str, threading.Lock] = {}
    _locks_guard = threading.Lock()

    # One statement: BEGIN IMMEDIATE already holds the write lock, so the RETURNING
    # subqueries see the latest state (on PostgreSQL they would not: ADR 0001).
    _LOCK_AND_READ = (
        "UPDATE es_head SET last_position = last_position + ? WHERE id = 1 RETURNING last_position, "
        + _state_sql("?").removeprefix("SELECT ")
    )
    _INSERT = f"INSERT INTO es_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(['?'] * len(EVENT_COLUMNS))})"
    _UPSERT = _upsert_chain_head_sql("?")

    def __init__(self, engine: Engine):
        self.engine = engine
        with self._locks_guard:  # one lock per database file in this process
            self._lock = self._locks.setdefault(str(engine.url), threading.Lock())
        # One connection kept for appends (they are serial anyway): no pool round per
        # append. Opened on first use, dropped and reopened after a failed rollback.
        self._raw = None

    def begin(self) -> "SqliteAppender._Transaction":
        return self._Transaction(self)

    def find_event_ids(self, event_ids: list[str]) -> list[tuple]:
        with self._lock:
            return self._cursor().execute(_find_ids_sql("?", len(event_ids)), event_ids).fetchall()

    def close(self) -> None:
        with self._lock:
            if self._raw is not None:
                self._raw.close()
                self._raw = None

    def _cursor(self):
        if self._raw is None:
            self._raw = self.engine.raw_connection()
        return self._raw.cursor()

    class _Transaction:
        def __init__(self, appender: "SqliteAppender"):
            self.a = appender

        def __enter__(self):
            self.a._lock.acquire()
            try:
                self._cur = self.a._cursor()
                self._cur.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.a._lock.release()
                raise
            self._open = True
            return self

        def __exit__(self, exc_type, exc_value, tb):
            try:
                if self._open:
                    self._cur.execute("ROLLBACK")
                self._cur.close()
            except BaseException:
                raw, self.a._raw = self.a._raw, None
                raw.invalidate()
                raise
            finally:
                self.a._lock.release()
            return False

        def lock_and_read(self, n: int, stream_id: str, tenant_id: str):
            """Move the head by n; return (last position, the tenant's stream's version,
            the tenant's last chain hash or None)."""
            last, version, last_hash = self._cur.execute(
                self.a._LOCK_AND_READ, (n, tenant_id, stream_id, tenant_id)
            ).fetchone()
            return last, version or 0, last_hash

        def find_event_ids(self, event_ids: list[str]) -> list[tuple]:
            return self._cur.execute(_find_ids_sql("?", len(event_ids)), event_ids).fetchall()

        def lock_and_read_streams(self, n: int, stream_ids: list[str], tenant_id: str):
            """Move the head by n; return (last position, {stream_id: version} of the
            tenant's streams that exist, tenant's last chain hash or None) — for
            ``EventStore.append_batch``."""
            (last,) = self._cur.execute(
                "UPDATE es_head SET last_position = last_position + ? WHERE id = 1 RETURNING last_position", (n,)
            ).fetchone()
            streams = dict(self._cur.execute(
                _streams_sql("?", len(stream_ids)), (tenant_id, *stream_ids)).fetchall())
            row = self._cur.execute("SELECT last_hash FROM es_chain_heads WHERE tenant_id = ?", (tenant_id,)).fetchone()
            return last, streams, row[0] if row else None

        def write_and_commit(self, rows: list[tuple], chain_head: tuple) -> None:
            try:
                self._cur.executemany(self.a._INSERT, rows)
            except sqlite3.IntegrityError as e:
                raise EventIdCollision(str(e)) from None
            self._cur.execute(self.a._UPSERT, chain_head)
            off_the_hub(self._cur.execute, "COMMIT")
            self._open = False


class PostgresAppender:
    """Appends to PostgreSQL; one per EventStore, with its own small pool of autocommit
    connections (switching a pooled connection to autocommit and back would cost a
    round trip per append)."""

    _LOCK_AND_READ = (
        "BEGIN; UPDATE es_head SET last_position = last_position + %s WHERE id = 1; "
        "SELECT (SELECT last_position FROM es_head WHERE id = 1), q.* FROM (" + _state_sql("%s") + ") q"
    )
    _ROW = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    _INSERT = f"INSERT INTO es_events ({', '.join(EVENT_COLUMNS)}) VALUES "
    _UPSERT_AND_COMMIT = "; " + _upsert_chain_head_sql("%s") + "; COMMIT"
    _sql_by_size: dict[int, str] = {}

    def __init__(self, engine: Engine):
        self.engine = engine
        # Same database and connect arguments (the pool's creator), own connections.
        self.writer = create_engine(engine.url, pool=engine.pool.recreate(), isolation_level="AUTOCOMMIT")

    def begin(self) -> "PostgresAppender._Transaction":
        return self._Transaction(self)

    def find_event_ids(self, event_ids: list[str]) -> list[tuple]:
        with self.writer.connect() as conn:
            return conn.exec_driver_sql(_find_ids_sql("%s", len(event_ids)), tuple(event_ids)).all()

    def close(self) -> None:
        self.writer.dispose()

    _streams_sql_by_size: dict[int, str] = {}

    def lock_and_read_streams_sql(self, n: int) -> str:
        """BEGIN, take the head's row lock (adding the batch's size), then one SELECT:
        a row per existing stream of ``n`` of the tenant — (head, the tenant's last hash,
        stream id, its version) — or one row with no stream when none exists."""
        sql = self._streams_sql_by_size.get(n)
        if sql is None:
            sql = (
                "BEGIN; UPDATE es_head SET last_position = last_position + %s WHERE id = 1; "
                "SELECT h.last_position, (SELECT last_hash FROM es_chain_heads WHERE tenant_id = %s), s.* "
                f"FROM es_head h LEFT JOIN ({_streams_sql('%s', n)}) s ON TRUE WHERE h.id = 1"
            )
            self._streams_sql_by_size[n] = sql
        return sql

    # The group statements are put together per call from parts cached per count (each
    # count is at most max_batch_size): a cache per combination of counts could grow
    # without bound in a long-running service.
    _group_streams_sql: dict[int, str] = {}
    _group_tenants_sql: dict[int, str] = {}
    _values_sql: dict[int, str] = {}
    _group_upsert_sql: dict[int, str] = {}

    @staticmethod
    def _cached(cache: dict[int, str], n: int, make) -> str:
        sql = cache.get(n)
        if sql is None:
            sql = cache[n] = make(n)
        return sql

    def lock_and_read_group_sql(self, streams: int, tenants: int) -> str:
        """For a group commit (``okr_shared.eventstore.group_commit``): BEGIN, take the
        head's row lock (adding the group's size), then one SELECT of tagged rows — the
        head (0), each existing (tenant, stream)'s tenant, version and stream id (1),
        each tenant's last chain hash (2) — in one round trip."""
        return (
            "BEGIN; UPDATE es_head SET last_position = last_position + %s WHERE id = 1; "
            "SELECT 0, NULL, last_position, NULL FROM es_head WHERE id = 1 UNION ALL "
            # the newest event of each stream by the (tenant_id, stream_id,
            # stream_version) index: one index probe per stream, whatever its length
            + self._cached(self._group_streams_sql, streams, lambda n: (
                "SELECT 1, s.tenant, e.stream_version, s.id FROM (VALUES " + ", ".join(["(%s, %s)"] * n)
                + ") s(tenant, id) CROSS JOIN LATERAL (SELECT stream_version FROM es_events "
                "WHERE tenant_id = s.tenant AND stream_id = s.id ORDER BY stream_version DESC LIMIT 1) e "
                "UNION ALL "))
            + self._cached(self._group_tenants_sql, tenants, lambda n: (
                f"SELECT 2, tenant_id, NULL, last_hash FROM es_chain_heads WHERE tenant_id IN ({', '.join(['%s'] * n)})"))
        )

    def write_group_sql(self, rows: int, tenants: int, set_head: bool) -> str:
        """INSERT the events, upsert each tenant's chain head (one row per tenant: a
        statement may not update a row twice), set the head back to the last position
        used when some appends of the group were refused (positions stay gap-free; the
        head's row lock is still held), COMMIT — one round trip."""
        return (
            self._insert_values_sql(rows) + "; "
            + self._cached(self._group_upsert_sql, tenants, lambda n: _upsert_chain_head_sql("%s", n))
            + ("; UPDATE es_head SET last_position = %s WHERE id = 1" if set_head else "")
            + "; COMMIT"
        )

    def insert_sql(self, n: int) -> str:
        return self._cached(self._sql_by_size, n, lambda n: self._insert_values_sql(n) + self._UPSERT_AND_COMMIT)

    def _insert_values_sql(self, n: int) -> str:
        return self._cached(self._values_sql, n, lambda n: self._INSERT + ", ".join([self._ROW] * n))

    class _Transaction:
        def __init__(self, appender: "PostgresAppender"):
            self.a = appender

        def __enter__(self):
            self._conn = self.a.writer.connect()
            self._open = False
            return self

        def __exit__(self, exc_type, exc_value, tb):
            try:
                if self._open:
                    self._conn.exec_driver_sql("ROLLBACK")
            except Exception:
                self._conn.invalidate()  # a broken connection must not go back to the pool
            finally:
                self._conn.close()
            return False

        def lock_and_read(self, n: int, stream_id: str, tenant_id: str):
            self._open = True
            row = self._conn.exec_driver_sql(self.a._LOCK_AND_READ, (n, tenant_id, stream_id, tenant_id)).one()
            return row[0], row[1] or 0, row[2]

        def find_event_ids(self, event_ids: list[str]) -> list[tuple]:
            return self._conn.exec_driver_sql(_find_ids_sql("%s", len(event_ids)), tuple(event_ids)).all()

        def lock_and_read_streams(self, n: int, stream_ids: list[str], tenant_id: str):
            """As SqliteAppender's, in ONE round trip (the head's row lock is held from
            here to the COMMIT, so every round trip in between is time every other
            append waits): under the lock, each statement of READ COMMITTED sees
            everything committed before the lock was granted."""
            self._open = True
            rows = self._conn.exec_driver_sql(
                self.a.lock_and_read_streams_sql(len(stream_ids)), (n, tenant_id, tenant_id, *stream_ids)).all()
            last, last_hash = rows[0][0], rows[0][1]
            streams = {row[2]: row[3] for row in rows if row[2] is not None}
            return last, streams, last_hash

        def lock_and_read_group(self, n: int, streams: list[tuple[str, str]], tenant_ids: list[str]):
            """Move the head by n; return (last position, {(tenant_id, stream_id):
            version} of the given streams that exist, {tenant_id: last chain hash} of
            the tenants that have one) — one round trip; under the lock, each statement
            of READ COMMITTED sees everything committed before the lock was granted."""
            self._open = True
            rows = self._conn.exec_driver_sql(
                self.a.lock_and_read_group_sql(len(streams), len(tenant_ids)),
                (n, *(value for stream in streams for value in stream), *tenant_ids)).all()
            last, versions, hashes = None, {}, {}
            for tag, key, number, text in rows:
                if tag == 0:
                    last = number
                elif tag == 1:
                    versions[(key, text)] = number
                else:
                    hashes[key] = text
            return last, versions, hashes

        def write_group_and_commit(self, rows: list[tuple], chain_heads: list[tuple], head: int | None) -> None:
            """Write a group's events and chain heads and COMMIT; ``head``: the last
            position used, when it is below the one the lock took (refused appends)."""
            params = [value for row in rows for value in row]
            for chain_head in chain_heads:
                params.extend(chain_head)
            if head is not None:
                params.append(head)
            try:
                self._conn.exec_driver_sql(
                    self.a.write_group_sql(len(rows), len(chain_heads), head is not None), tuple(params))
            except exc.IntegrityError as e:
                raise EventIdCollision(str(e.orig)) from None
            self._open = False

        def write_and_commit(self, rows: list[tuple], chain_head: tuple) -> None:
            params = [value for row in rows for value in row]
            params.extend(chain_head)
            try:
                self._conn.exec_driver_sql(self.a.insert_sql(len(rows)), tuple(params))
            except exc.IntegrityError as e:
                raise EventIdCollision(str(e.orig)) from None
            self._open = False


def appender_for(engine: Engine):
    """The appender for the engine's backend."""
    if engine.dialect.name == "sqlite":
        return SqliteAppender(engine)
    if engine.dialect.name == "postgresql":
        return PostgresAppender(engine)
    raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")
