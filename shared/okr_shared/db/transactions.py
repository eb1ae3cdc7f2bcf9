"""Write transactions on the platform's SQL databases (a consumer's read models and
offsets, the gateway's keys, notification's delivery log): on PostgreSQL a plain
transaction; on SQLite ``BEGIN IMMEDIATE`` under this process's lock of the file, so
that green threads wait on a lock instead of busy-waiting on SQLite's file lock inside
the C library (the rule of the store's appends,
docs/adr/0001-event-store-positions-from-a-locked-head-counter.md)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy import Engine

__all__ = ["sqlite_write_lock", "write_transaction"]

_sqlite_locks: dict[str, threading.Lock] = {}
_sqlite_locks_guard = threading.Lock()


def sqlite_write_lock(engine: Engine) -> threading.Lock:
    """This process's write lock of a SQLite file (one per file, shared by the consumer
    layer and every service table writer: green threads wait on it instead of
    busy-waiting on SQLite's file lock)."""
    with _sqlite_locks_guard:
        return _sqlite_locks.setdefault(str(engine.url.database), threading.Lock())


@contextlib.contextmanager
def write_transaction(engine: Engine) -> Iterator:
    """A short write transaction (commits on leaving); on SQLite ``BEGIN IMMEDIATE``
    under ``sqlite_write_lock``."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with sqlite_write_lock(engine), engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        yield conn
