"""Hot-path statements on the DBAPI cursor of a SQLAlchemy connection.

``Connection.execute`` costs ~60-80 µs per statement even when the statement is built
once (execution context, events, result wrapping); the cursor ~6 µs. The per-event paths
(the consumer layer's offset, the reporting handler's rows) run a few fixed statements
per event, so they compile them once per dialect here and execute them on the
connection's cursor, inside the caller's transaction. Errors are raised as SQLAlchemy's
(``DBAPIError`` subclasses), and a disconnect invalidates the connection, as
``Connection.execute`` would: the consumer layer's retry logic relies on both.
"""

from __future__ import annotations

import weakref

from sqlalchemy import exc as sa_exc

#: (SQL string, parameter names in order for a positional paramstyle, else None)
Compiled = tuple[str, "tuple[str, ...] | None"]

_compiled: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiled(statement, dialect) -> Compiled:
    """``statement`` (a Core statement with named bindparams) compiled for ``dialect``,
    cached per statement object and dialect name."""
    by_dialect = _compiled.get(statement)
    if by_dialect is None:
        by_dialect = _compiled[statement] = {}
    found = by_dialect.get(dialect.name)
    if found is None:
        c = statement.compile(dialect=dialect)
        found = by_dialect[dialect.name] = (c.string, tuple(c.positiontup) if c.positional else None)
    return found


def run(conn, statement: Compiled, params: dict):
    """Execute a compiled statement in ``conn``'s transaction; returns the DBAPI cursor
    (the caller fetches and closes it)."""
    sql, order = statement
    args = params if order is None else tuple(params[name] for name in order)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(sql, args)
    except conn.dialect.loaded_dbapi.Error as e:
        cursor.close()
        invalidated = conn.dialect.is_disconnect(e, conn.connection.dbapi_connection, cursor)
        if invalidated:
            conn.invalidate(e)
        raise sa_exc.DBAPIError.instance(sql, args, e, conn.dialect.loaded_dbapi.Error,
                                         connection_invalidated=invalidated, dialect=conn.dialect) from e
    return cursor


def scalar(conn, statement: Compiled, params: dict):
    """The first column of the first row, or None."""
    cursor = run(conn, statement, params)
    try:
        row = cursor.fetchone()
    finally:
        cursor.close()
    return row[0] if row else None
