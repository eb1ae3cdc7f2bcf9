"""How long the outbox relay waits between polls of the store (okr_shared.bus.relay):
briefly after a window it published, doubling per empty poll up to the idle interval."""

import pytest
from sqlalchemy import create_engine

from okr_shared.bus.relay import Relay


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    yield engine
    engine.dispose()


def relay(engine, **kw):
    return Relay(engine, "amqp://guest:guest@127.0.0.1:5672/", exchange="okr.events.test", **kw)


def test_after_a_window_the_waits_double_from_the_busy_interval_to_the_idle_one(engine):
    r = relay(engine, poll_interval=0.01, busy_poll_interval=0.002)
    assert [r._next_idle_wait(published=False) for _ in range(2)] == [0.01, 0.01]  # idle from the start
    assert r._next_idle_wait(published=True) == 0.0  # a window went out: poll again at once
    assert [r._next_idle_wait(published=False) for _ in range(5)] == [0.002, 0.004, 0.008, 0.01, 0.01]
    r._next_idle_wait(published=True)
    assert r._next_idle_wait(published=False) == 0.002  # each window starts over


def test_the_busy_interval_is_never_longer_than_the_idle_one(engine):
    r = relay(engine, poll_interval=0.001)  # busy default 0.002
    assert r.busy_poll_interval == 0.001
    r._next_idle_wait(published=True)
    assert [r._next_idle_wait(published=False) for _ in range(2)] == [0.001, 0.001]


@pytest.mark.parametrize("kw, message", [
    (dict(poll_interval=0), "poll_interval must be > 0 seconds, not 0"),
    (dict(busy_poll_interval=-1), "busy_poll_interval must be > 0 seconds, not -1"),
])
def test_bad_intervals_are_named(engine, kw, message):
    with pytest.raises(ValueError, match=message):
        relay(engine, **kw)
