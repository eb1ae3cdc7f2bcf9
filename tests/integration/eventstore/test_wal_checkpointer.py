"""SQLite WAL checkpoints in the background (okr_shared.eventstore.engine.WalCheckpointer):
an engine made with ``wal_autocheckpoint=0`` never checkpoints in its COMMITs; the
checkpointer's own OS thread (a real one in this eventlet-patched process) copies the
WAL back to the database file."""

from __future__ import annotations

import os

import pytest
from eventlet import patcher
from sqlalchemy import text

from tests.infra import POSTGRES_URL
from okr_shared.eventstore import make_engine
from okr_shared.eventstore.engine import WalCheckpointer, background_checkpoints
from tests.waiting import wait_until


def _fill(engine, rows=6000):
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (x TEXT)"))
    for i in range(0, rows, 100):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (:x)"), [{"x": "x" * 1000} for _ in range(100)])


def test_an_engine_without_autocheckpoint_leaves_the_wal_to_grow(tmp_path):
    path = tmp_path / "db.sqlite"
    engine = make_engine(f"sqlite:///{path}", wal_autocheckpoint=0)
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        _fill(engine)
        assert os.path.getsize(f"{path}-wal") > 1000 * 4096  # past SQLite's 1,000-page default
        import sqlite3

        checkpointer = WalCheckpointer(str(path))
        conn = sqlite3.connect(path)
        busy, log, done = checkpointer.checkpoint(conn)
        conn.close()
        assert (busy, done) == (0, log) and log > 1000
    finally:
        engine.dispose()


def test_the_default_engine_keeps_sqlites_automatic_checkpoints(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    finally:
        engine.dispose()


def test_background_checkpoints_run_on_an_os_thread_of_their_own(tmp_path):
    path = tmp_path / "db.sqlite"
    engine, checkpointer = background_checkpoints(f"sqlite:///{path}")
    try:
        assert isinstance(checkpointer._thread, patcher.original("threading").Thread)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        _fill(engine)
        wait_until(lambda: checkpointer.frames > 1000, timeout=30)
        assert checkpointer.errors == 0 and checkpointer.rounds >= 1
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 6000
    finally:
        checkpointer.stop()
        engine.dispose()
    assert checkpointer._thread is None


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 pytest.param(POSTGRES_URL, marks=pytest.mark.postgres, id="postgres")])
def test_nothing_to_checkpoint_in_memory_or_on_postgresql(url):
    engine, checkpointer = background_checkpoints(url)
    engine.dispose()
    assert checkpointer is None


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval must be > 0 seconds, not 0"):
        WalCheckpointer("x.db", interval=0)
