"""With OKR_SQLITE_COMMIT_IN_THREAD=1 a SQLite append's COMMIT (its fsync) runs in
eventlet's thread pool in an eventlet-patched process (this test process is one, like
the nameko services): the hub keeps serving other green threads meanwhile; the append
stays serial and atomic. By default appends COMMIT in place and the consumers' read-model
transactions in the pool (ADR 0014, addendum)."""

import os
import subprocess
import sys

import eventlet
from eventlet import patcher

from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine, migrate
from okr_shared.eventstore import transactions

_real_thread_id = patcher.original("threading").get_ident


def test_the_commit_runs_on_another_os_thread_and_green_threads_run_meanwhile(tmp_path, monkeypatch):
    monkeypatch.setattr(transactions, "COMMIT_IN_THREAD", True)
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    migrate(engine)
    store = EventStore(engine)
    caller = _real_thread_id()
    commits = []
    ticks = []
    original = transactions.off_the_hub

    def slow_commit(call, *args):
        def commit():
            commits.append(_real_thread_id())
            eventlet.patcher.original("time").sleep(0.05)  # a slow fsync, blocking its OS thread
            return call(*args)
        return original(commit)

    monkeypatch.setattr(transactions, "off_the_hub", slow_commit)

    def ticker():
        for _ in range(10):
            ticks.append(1)
            eventlet.sleep(0.002)

    t = eventlet.spawn(ticker)
    result = store.append("kr-1", ANY, [NewEvent("test.Event", {"n": 1}, tenant_id="acme")])
    ticked_during_the_append = len(ticks)
    t.wait()
    assert commits and commits[0] != caller  # not the hub's thread
    assert ticked_during_the_append == 10  # the ticker ran to its end while the commit slept
    assert result.last_position == 1 and [e.position for e in store.read_all()] == [1]
    store.close()
    engine.dispose()


def test_without_eventlet_patching_the_call_is_made_directly(monkeypatch):
    monkeypatch.setattr(patcher, "is_monkey_patched", lambda name: False)
    assert transactions.off_the_hub(_real_thread_id) == _real_thread_id()


def test_okr_sqlite_commit_in_thread_0_makes_the_call_directly(monkeypatch):
    monkeypatch.setattr(transactions, "COMMIT_IN_THREAD", False)
    assert transactions.off_the_hub(_real_thread_id) == _real_thread_id()
    monkeypatch.setattr(transactions, "COMMIT_IN_THREAD", True)
    assert transactions.off_the_hub(_real_thread_id) != _real_thread_id()


def test_by_default_appends_commit_in_place_and_consumers_in_a_thread():
    code = "import okr_shared.eventstore.transactions as t; print(t.COMMIT_IN_THREAD, t.CONSUMER_COMMIT_IN_THREAD)"
    for value, expected in ((None, "False True"), ("", "False True"), ("1", "True True"), ("on", "True True"),
                            ("0", "False False"), ("off", "False False")):
        env = {k: v for k, v in os.environ.items() if k != "OKR_SQLITE_COMMIT_IN_THREAD"}
        if value is not None:
            env["OKR_SQLITE_COMMIT_IN_THREAD"] = value
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == expected, value


def test_a_bad_okr_sqlite_commit_in_thread_is_named():
    env = {**os.environ, "OKR_SQLITE_COMMIT_IN_THREAD": "sometimes"}
    out = subprocess.run([sys.executable, "-c", "import okr_shared.eventstore.transactions"], env=env,
                         capture_output=True, text=True)
    assert out.returncode != 0
    assert "OKR_SQLITE_COMMIT_IN_THREAD: expected 1 or 0 (or unset), got 'sometimes'" in out.stderr


def test_the_consumers_commit_follows_its_own_setting(monkeypatch):
    monkeypatch.setattr(transactions, "COMMIT_IN_THREAD", False)
    assert transactions.off_the_hub(_real_thread_id, in_thread=True) != _real_thread_id()
    assert transactions.off_the_hub(_real_thread_id, in_thread=False) == _real_thread_id()
