"""Metrics that read or write a real database, on both backends of the shared
``database`` fixture: events appended by EventStore.append, the relay lag gauges the
scrape-time collector computes from the store (also with no relay running), and the
notification dispatcher's sent/failed counters by channel.
"""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from okr_shared.eventstore import ANY, EventStore, NewEvent
from okr_shared.observability import lag
from okr_services.notification.delivery import Dispatcher, RetryPolicy, enqueue
from okr_shared.db import migrate
from okr_services.notification.message import DeliveryError, Notification


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape() -> dict[tuple[str, tuple], float]:
    """The whole registry as Prometheus would read it: (name, sorted labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(REGISTRY).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def events(n: int, tenant: str = "acme", event_type: str = "test.Happened"):
    return [NewEvent(event_type, {"i": i}, tenant) for i in range(n)]


def test_append_counts_committed_events_only(database):
    store = EventStore(database.engine)
    before = sample("okr_events_appended_total", event_type="test.Counted")
    batch = [NewEvent("test.Counted", {"i": i}, "acme", event_id=f"00000000-0000-0000-0000-00000000000{i}")
             for i in range(3)]
    store.append("s-1", ANY, batch)
    assert sample("okr_events_appended_total", event_type="test.Counted") == before + 3
    store.append("s-1", ANY, batch)  # an idempotent retry stores nothing
    assert sample("okr_events_appended_total", event_type="test.Counted") == before + 3
    store.close()


def test_relay_lag_from_the_store_with_no_relay_running(database, monkeypatch):
    # only this store: in the whole suite other modules' services share this process's
    # registry (a deployed process tracks one store; the head gauge has no label)
    monkeypatch.setattr(lag.COLLECTOR, "_stores", {})
    store = EventStore(database.engine)
    key = f"test-{database.backend}-{id(database)}"
    lag.track_store(key, database.engine)
    try:
        store.append("s-1", ANY, events(5))
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO es_relay_checkpoints (name, position, updated_at_us) "
                              "VALUES ('okr.test-relay', 2, 0)"))
        time.sleep(0.05)
        got = scrape()
        relay = (("relay", "okr.test-relay"),)
        assert got[("okr_event_store_head_position", ())] == 5
        assert got[("okr_relay_checkpoint_position", relay)] == 2
        assert got[("okr_relay_lag_events", relay)] == 3
        assert 0.05 <= got[("okr_relay_lag_seconds", relay)] < 60  # the age of position 3
        with database.engine.begin() as conn:  # the relay caught up
            conn.execute(text("UPDATE es_relay_checkpoints SET position = 5 WHERE name = 'okr.test-relay'"))
        got = scrape()
        assert got[("okr_relay_lag_events", relay)] == 0 and got[("okr_relay_lag_seconds", relay)] == 0
    finally:
        lag.untrack_store(key)
        store.close()
    assert ("okr_relay_lag_events", (("relay", "okr.test-relay"),)) not in scrape()


def test_a_store_that_cannot_be_read_is_left_out_and_counted(database, monkeypatch):
    from okr_shared.eventstore import make_engine

    monkeypatch.setattr(lag.COLLECTOR, "_stores", {})  # only the broken one (see above)

    broken = make_engine("sqlite:////nonexistent-dir/none.db")
    before = sample("okr_metrics_source_errors_total", source="event_store")
    lag.track_store("broken", broken)
    try:
        scrape()  # does not raise
    finally:
        lag.untrack_store("broken")
        broken.dispose()
    assert sample("okr_metrics_source_errors_total", source="event_store") == before + 1


def note(n: int) -> Notification:
    return Notification(tenant="acme", rule="kr_stalled", subject=f"kr-{n}", period="2026-W09", recipient="alice",
                        title=f"KR {n}", text="stalled")


def test_notification_outcomes_by_channel(database):
    engine = database.engine
    migrate(engine, "notification")
    now = [1_772_000_000_000_000]

    def send(notification, channel, target):
        if target == "down":
            raise DeliveryError("503 from the receiver", retryable=True)
        if target == "refuses":
            raise DeliveryError("400 bad address", retryable=False)

    labels = [("webhook", "sent"), ("webhook", "retrying"), ("email", "failed"), ("email", "sent")]
    before = {k: sample("okr_notification_deliveries_total", channel=k[0], outcome=k[1]) for k in labels}
    enqueue(engine, note(1), [("webhook", "ok"), ("webhook", "down"), ("email", "refuses"), ("email", "ok")],
            now_us=now[0])
    dispatcher = Dispatcher(engine, send, RetryPolicy(max_attempts=2), clock=lambda: now[0])
    stats = dispatcher.run_once()
    assert (stats.sent, stats.retrying, stats.failed) == (2, 1, 1)
    delta = {k: sample("okr_notification_deliveries_total", channel=k[0], outcome=k[1]) - before[k] for k in labels}
    assert delta == {("webhook", "sent"): 1, ("webhook", "retrying"): 1, ("email", "failed"): 1,
                     ("email", "sent"): 1}
    failed = sample("okr_notification_deliveries_total", channel="webhook", outcome="failed")
    now[0] += 3600 * 1_000_000  # the retry is due; its second (last) attempt fails for good
    assert dispatcher.run_once().failed == 1
    assert sample("okr_notification_deliveries_total", channel="webhook", outcome="failed") == failed + 1
