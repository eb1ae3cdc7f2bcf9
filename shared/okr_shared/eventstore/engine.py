"""Engines for the event store: SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine, event

from .. import config


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


def _sqlite_engine(url: str, *, wal_autocheckpoint: int | None = None, **kwargs) -> Engine:
    """``wal_autocheckpoint``: SQLite's pages-in-the-WAL threshold at which a COMMIT
    checkpoints (SQLite's default 1,000 when None); 0: never — for a process whose
    ``WalCheckpointer`` does it in the background."""
    synchronous = config.sqlite_synchronous()
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
        if wal_autocheckpoint is not None:
            cursor.execute(f"PRAGMA wal_autocheckpoint = {int(wal_autocheckpoint)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class WalCheckpointer:
    """Checkpoints a SQLite database's WAL from a thread of its own — an OS thread even
    in an eventlet-patched process — every ``interval`` seconds (PASSIVE: it copies what
    no reader still needs and never blocks a writer).

    For a process whose writes must not wait for checkpoints: its engine is made with
    ``wal_autocheckpoint=0``. Otherwise the COMMIT that takes the WAL past 1,000 pages
    runs the checkpoint itself before it returns, and whatever waits for that commit —
    every command queued on the event store's append lock, the next event of a read-
    model consumer — waits for the copy and the database file's fsync too
    (bench/e2e.py: 100-400 ms stalls at 200 check-ins/s; ADR 0018). Errors are logged
    and the next round tries again; other processes' connections to the same file keep
    SQLite's automatic checkpoints.
    """

    def __init__(self, path: str, interval: float = 0.2):
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, not {interval!r}")
        self.path = path
        self.interval = interval
        threading = _real("threading")
        self._stop = threading.Event()
        self._thread_cls = threading.Thread
        self._thread = None
        self.rounds = 0
        self.frames = 0  # pages copied back to the database file
        self.errors = 0

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = self._thread_cls(target=self._run, name=f"wal-checkpoint {self.path}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout)

    def checkpoint(self, conn) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, frames in the WAL, frames checkpointed)."""
        busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        self.rounds += 1
        self.frames += max(0, done)
        return busy, log, done

    def _run(self) -> None:
        import logging
        import sqlite3

        log = logging.getLogger(__name__)
        conn = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                        conn.execute("PRAGMA busy_timeout = 1000")
                    self.checkpoint(conn)
                except sqlite3.Error as e:
                    self.errors += 1
                    log.warning("WAL checkpoint of %s failed: %s", self.path, e)
                    if conn is not None:
                        conn.close()
                        conn = None
        finally:
            if conn is not None:
                conn.close()


def _real(module: str):
    """The module itself, not eventlet's green version, when eventlet patched it."""
    import sys

    patcher = sys.modules.get("eventlet.patcher")
    return patcher.original(module) if patcher is not None else __import__(module)


def background_checkpoints(url: str) -> tuple[Engine, WalCheckpointer | None]:
    """An engine for ``url`` and, for a SQLite file, a started ``WalCheckpointer`` that
    checkpoints its WAL in the background (the engine's COMMITs then never do)."""
    if not url.startswith("sqlite") or url in ("sqlite://", "sqlite:///:memory:"):
        return make_engine(url), None
    engine = make_engine(url, wal_autocheckpoint=0)
    checkpointer = WalCheckpointer(engine.url.database)
    checkpointer.start()
    return engine, checkpointer
