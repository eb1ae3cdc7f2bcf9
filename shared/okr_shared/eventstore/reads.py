"""Hot reads of the events table for callers outside the store that poll it many times
a second: the tail of one tenant's stream after a version (``StreamTail``, the
repository's load) and the window of the log after a position (``PositionWindow``, the
outbox relay). Each statement is built and compiled once, for the engine's dialect,
and runs on a pooled DBAPI connection: one statement is its own consistent snapshot
(SQLite connections are in autocommit mode, a PostgreSQL one is rolled back when it
returns to the pool), without a SQLAlchemy Connection's BEGIN / ROLLBACK and row
objects (a quarter of the relay's CPU at 100 polls/s, ~150 µs of a hot stream's load).
DBAPI errors are raised as SQLAlchemy's."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, bindparam, exc as sa_exc, select

from .. import dbapi
from . import schema

_E = schema.events

__all__ = ["PositionWindow", "StreamTail"]


class _Compiled:
    """``statement`` compiled once for ``engine``'s dialect, run on a bare DBAPI cursor."""

    def __init__(self, engine: Engine, statement):
        self.engine = engine
        self.statement = statement
        self.sql, self.order = dbapi.compiled(statement, engine.dialect)

    def fetchall(self, params: dict) -> list:
        """Every row of the statement with ``params`` (plain tuples)."""
        args = params if self.order is None else tuple(params[name] for name in self.order)
        dbapi_error = self.engine.dialect.loaded_dbapi.Error
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            try:
                cursor.execute(self.sql, args)
                return cursor.fetchall()
            finally:
                cursor.close()
        except dbapi_error as e:
            raw.invalidate()
            raise sa_exc.DBAPIError.instance(self.sql, args, e, dbapi_error) from e
        finally:
            raw.close()


class StreamTail:
    """The (tenant_id, stream_version, event_type, data) rows of a tenant's stream after
    a version, in version order: one narrow, indexed query (the unique
    (tenant_id, stream_id, stream_version) index)."""

    def __init__(self, engine: Engine):
        self._query = _Compiled(engine, (
            select(_E.c.tenant_id, _E.c.stream_version, _E.c.event_type, _E.c.data)
            .where(_E.c.tenant_id == bindparam("tenant_id"), _E.c.stream_id == bindparam("stream_id"),
                   _E.c.stream_version > bindparam("after"))
            .order_by(_E.c.stream_version)
        ))

    def rows(self, tenant_id: str, stream_id: str, after: int) -> list:
        """The rows after version ``after``, on a pooled DBAPI connection."""
        return self._query.fetchall({"tenant_id": tenant_id, "stream_id": stream_id, "after": after})

    def rows_on(self, conn: Connection, tenant_id: str, stream_id: str, after: int) -> list:
        """The same rows on the caller's ``conn`` (e.g. in the snapshot read's
        transaction)."""
        return conn.execute(self._query.statement,
                            {"tenant_id": tenant_id, "stream_id": stream_id, "after": after}).all()


#: The columns of ``PositionWindow`` rows: those of RecordedEvent, in its order.
_WINDOW_COLUMNS = ("position", "tenant_id", "stream_id", "stream_version", "event_id", "event_type",
                   "schema_version", "data", "metadata", "recorded_at_us", "hash")


class PositionWindow:
    """Every event after a global position up to another, in position order, as rows
    for ``RecordedEvent._make`` (``read_all`` builds its query and cache key per call,
    ~10 % of the relay's CPU at 100 polls/s)."""

    def __init__(self, engine: Engine):
        self._query = _Compiled(engine, (
            select(*(_E.c[name] for name in _WINDOW_COLUMNS))
            .where(_E.c.position > bindparam("after"), _E.c.position <= bindparam("up_to"))
            .order_by(_E.c.position)
        ))

    def rows(self, after: int, up_to: int) -> list:
        """The rows with ``after`` < position <= ``up_to``."""
        return self._query.fetchall({"after": after, "up_to": up_to})
