"""The consumer layer (okr_shared.bus.consumer) against the real RabbitMQ, with its
consumer database and the event store on SQLite and on PostgreSQL: dedupe, gap filling
from the store, retries, dead letters, single-active-consumer hot standby, and a broker
restart while 10,000 events flow (on a private RabbitMQ node)."""

# The fixtures are imported from consumer_fixtures.py (the conftest of this folder is the
# relay's): pytest sees them as this module's, ruff as redefinitions.
# ruff: noqa: F811

from __future__ import annotations

import threading
import time

import pytest
from kombu import Connection, Producer

from okr_shared.bus import wire
from okr_shared.bus.consumer import HEADER_DEAD_LETTER_SOURCE, dead_letter_queue_name
from okr_shared.bus.relay import Relay

from .consumer_fixtures import (  # noqa: F401 - fixtures
    CHECK_IN,
    CORRECTED,
    Behaviour,
    append_check_ins,
    bus,
    consumer_db,
    consumer_service,
    entrypoint,
    make_bus,
    private_rabbit,
    run_consumer,
    wait_until,
)


def offset_of(consumer_db, queue):
    return consumer_db.scalar("SELECT last_position FROM okr_consumer_offsets WHERE consumer = :c", c=queue)


def dead_letter_rows(consumer_db, queue):
    return consumer_db.rows(
        "SELECT position, event_id, attempts FROM okr_consumer_dead_letters WHERE consumer = :c ORDER BY position",
        c=queue)


# ------------------------------------------------------------------------------ dedupe


def test_each_event_is_applied_once_in_order_and_redeliveries_change_nothing(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 5)
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db))
    bus.publish_recorded(*events)
    wait_until(lambda: offset_of(consumer_db, queue) == 5, message="offset 5")
    bus.publish_recorded(events[1], events[2], events[4], events[4])  # duplicates
    wait_until(lambda: entrypoint(container).stats.duplicates == 4, message="4 duplicates")
    assert consumer_db.positions() == [1, 2, 3, 4, 5]
    assert [r[1] for r in consumer_db.applied()] == [e.event_id for e in events]
    assert offset_of(consumer_db, queue) == 5
    assert bus.message_count(queue) == 0 and bus.message_count(dead_letter_queue_name(queue)) == 0


def test_a_message_whose_commit_was_not_acked_is_not_applied_again(store, consumer_db, bus, run_consumer):
    """The handler's change and the offset commit together: a consumer that stops after
    the commit but before the ack gets the message again, and it changes nothing."""
    events = append_check_ins(store, 3)
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db))
    bus.publish_recorded(*events)
    wait_until(lambda: offset_of(consumer_db, queue) == 3)
    # as if the acks of 2 and 3 had been lost: the broker delivers them again
    bus.publish_recorded(events[1], events[2])
    wait_until(lambda: entrypoint(container).stats.duplicates == 2)
    assert consumer_db.positions() == [1, 2, 3]


# -------------------------------------------------------------------- order and gaps


def test_a_gap_is_filled_from_the_store_and_late_messages_are_duplicates(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 6)
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db))
    by_position = {e.position: e for e in events}
    bus.publish_recorded(*(by_position[p] for p in (1, 4, 2, 6, 3)))
    wait_until(lambda: offset_of(consumer_db, queue) == 6)
    wait_until(lambda: entrypoint(container).stats.duplicates == 2)  # the late 2 and 3
    assert consumer_db.applied() == [
        (1, events[0].event_id, "a", "bus"),
        (2, events[1].event_id, "a", "store"),
        (3, events[2].event_id, "a", "store"),
        (4, events[3].event_id, "a", "bus"),
        (5, events[4].event_id, "a", "store"),
        (6, events[5].event_id, "a", "bus"),
    ]


def test_a_filtered_consumer_fills_gaps_with_its_own_types_and_tenant_only(store, consumer_db, bus, run_consumer):
    acme = append_check_ins(store, 2, tenant="acme")                                        # 1, 2
    append_check_ins(store, 2, tenant="globex", key_result_id="kr-g")                      # 3, 4
    acme_corrections = append_check_ins(store, 2, tenant="acme", event_type=CORRECTED)      # 5, 6
    later = append_check_ins(store, 2, tenant="acme")                                       # 7, 8
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db, event_types=[CHECK_IN], tenant="acme"))
    bus.publish_recorded(later[1])  # only the last one arrives: 1, 2 and 7 come from the store
    wait_until(lambda: offset_of(consumer_db, queue) == 8)
    assert consumer_db.positions() == [1, 2, 7, 8]
    assert [r[3] for r in consumer_db.applied()] == ["store", "store", "store", "bus"]
    assert acme[0].position == 1 and acme_corrections[0].position == 5
    # a globex check-in reaches the queue (same type) and is acked without being applied
    globex = append_check_ins(store, 1, tenant="globex", key_result_id="kr-g")
    bus.publish_recorded(*globex)
    wait_until(lambda: entrypoint(container).stats.skipped == 1)
    assert consumer_db.positions() == [1, 2, 7, 8]


def test_start_from_now_ignores_history(store, consumer_db, bus, run_consumer):
    old = append_check_ins(store, 3)
    queue = bus.queue_name()
    run_consumer(consumer_service("a", queue, bus, consumer_db, start_from="now"))
    new = append_check_ins(store, 2)
    bus.publish_recorded(*old, new[1])
    wait_until(lambda: offset_of(consumer_db, queue) == 5)
    assert consumer_db.positions() == [4, 5]


# ------------------------------------------------------------ retries and dead letters


def test_a_transient_failure_is_retried_with_backoff_then_applied(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 3)
    behaviour = Behaviour()
    behaviour.failures[events[1].event_id] = 3
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db, behaviour, max_retries=3,
                                              retry_delay=0.02, retry_max_delay=1))
    started = time.monotonic()
    bus.publish_recorded(*events)
    wait_until(lambda: offset_of(consumer_db, queue) == 3)
    assert time.monotonic() - started >= 0.02 + 0.04 + 0.08  # three backoffs
    assert consumer_db.positions() == [1, 2, 3]
    assert behaviour.calls[events[1].event_id] == 4
    assert entrypoint(container).stats.retries == 3
    assert bus.message_count(dead_letter_queue_name(queue)) == 0


def test_poison_messages_go_to_the_dead_letter_queue_and_the_stream_continues(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 5)
    behaviour = Behaviour()
    behaviour.always.add(events[1].event_id)    # keeps failing: after its retries
    behaviour.poison.add(events[3].event_id)    # PoisonEvent: at once
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db, behaviour, max_retries=2))
    bus.publish_recorded(events[0])
    bus.publish_raw(b"\x00not a protobuf envelope", message_id="garbage-1")
    bus.publish_raw(b'{"json": true}', message_id="garbage-2", routing_key=CHECK_IN)
    bus.publish_recorded(*events[1:])
    stats = entrypoint(container).stats
    # the transaction's counts reach the stats right after its commit (the offset): wait
    # for both, not for the offset alone
    wait_until(lambda: offset_of(consumer_db, queue) == 5 and stats.dead_lettered == 2)
    assert consumer_db.positions() == [1, 3, 5]
    assert stats.undecodable == 2 and stats.dead_lettered == 2 and stats.retries == 2
    assert behaviour.calls[events[1].event_id] == 3 and behaviour.calls[events[3].event_id] == 1
    dlq = bus.drain(dead_letter_queue_name(queue), expect=4)
    assert sorted(m.properties.get("message_id") for m in dlq) == sorted(
        ["garbage-1", "garbage-2", events[1].event_id, events[3].event_id])
    assert all(m.headers["x-death"][0]["reason"] == "rejected" for m in dlq)
    assert [(p, e) for p, e, _ in dead_letter_rows(consumer_db, queue)] == [
        (2, events[1].event_id), (4, events[3].event_id)]
    assert bus.message_count(queue) == 0


def test_a_poison_event_met_while_filling_a_gap_is_dead_lettered_from_the_store(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 3)
    behaviour = Behaviour()
    behaviour.always.add(events[1].event_id)
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db, behaviour, max_retries=1))
    bus.publish_recorded(events[0], events[2])  # 2 comes from the store, and fails
    wait_until(lambda: offset_of(consumer_db, queue) == 3)
    assert consumer_db.positions() == [1, 3]
    (dead,) = bus.drain(dead_letter_queue_name(queue), expect=1)
    assert dead.properties["message_id"] == events[1].event_id
    assert dead.headers[HEADER_DEAD_LETTER_SOURCE] == "store"
    assert wire.decode(dead.body).position == 2
    # the late bus copy of 2 is a duplicate (not retried again)
    duplicates = entrypoint(container).stats.duplicates
    bus.publish_recorded(events[1])
    wait_until(lambda: entrypoint(container).stats.duplicates == duplicates + 1, message="the late copy handled")
    assert behaviour.calls[events[1].event_id] == 2
    assert bus.message_count(dead_letter_queue_name(queue)) == 0


def test_a_redriven_dead_letter_is_applied(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 3)
    behaviour = Behaviour()
    behaviour.poison.add(events[1].event_id)
    queue = bus.queue_name()
    container = run_consumer(consumer_service("a", queue, bus, consumer_db, behaviour))
    bus.publish_recorded(*events)
    wait_until(lambda: offset_of(consumer_db, queue) == 3)
    (dead,) = bus.drain(dead_letter_queue_name(queue), expect=1)
    behaviour.poison.clear()  # fixed; the operator moves the dead letter back
    with Connection(bus.uri) as c:
        Producer(c.default_channel).publish(dead.body, routing_key=queue, headers=dead.headers,
                                            content_type=wire.CONTENT_TYPE, content_encoding="binary",
                                            message_id=dead.properties["message_id"])
    wait_until(lambda: entrypoint(container).stats.redriven == 1)
    assert sorted(consumer_db.positions()) == [1, 2, 3]
    assert [r[3] for r in consumer_db.applied()] == ["bus", "bus", "redrive"]
    assert dead_letter_rows(consumer_db, queue) == []


# ----------------------------------------------------------------- unordered consumers


def test_unordered_competing_consumers_apply_each_event_id_once(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 60, batch=10)
    queue = bus.queue_name()
    behaviour = Behaviour()
    behaviour.delay = 0.002
    first = run_consumer(consumer_service("a", queue, bus, consumer_db, behaviour, ordered=False))
    second = run_consumer(consumer_service("b", queue, bus, consumer_db, behaviour, ordered=False))
    bus.publish_recorded(*events, *events[:20])
    total = lambda: entrypoint(first).stats.duplicates + entrypoint(second).stats.duplicates  # noqa: E731
    wait_until(lambda: consumer_db.count() == 60 and total() == 20, message="60 applied, 20 duplicates")
    assert sorted(consumer_db.positions()) == list(range(1, 61))
    assert consumer_db.scalar("SELECT count(*) FROM okr_consumer_processed WHERE consumer = :c", c=queue) == 60
    assert {r[2] for r in consumer_db.applied()} == {"a", "b"}  # both worked


# ------------------------------------------------------ single active consumer (hot standby)


def test_a_second_instance_is_a_hot_standby_that_continues_in_order(store, consumer_db, bus, run_consumer):
    events = append_check_ins(store, 300, batch=50)
    queue = bus.queue_name()
    behaviour = Behaviour()
    behaviour.delay = 0.001
    active = run_consumer(consumer_service("active", queue, bus, consumer_db, behaviour, batch_size=10))
    run_consumer(consumer_service("standby", queue, bus, consumer_db, behaviour, batch_size=10))
    bus.publish_recorded(*events[:100])
    wait_until(lambda: offset_of(consumer_db, queue) == 100)
    assert {r[2] for r in consumer_db.applied()} == {"active"}  # the standby got nothing
    bus.publish_recorded(*events[100:])
    wait_until(lambda: offset_of(consumer_db, queue) >= 150)
    active.stop()  # mid-stream: the standby takes over from the committed offset
    wait_until(lambda: offset_of(consumer_db, queue) == 300)
    applied = consumer_db.applied()
    assert [r[0] for r in applied] == list(range(1, 301))  # in order, each once
    instances = [r[2] for r in applied]
    switch = instances.index("standby")
    assert set(instances[:switch]) == {"active"} and set(instances[switch:]) == {"standby"}
    assert 150 <= switch < 300


# ------------------------------------------------------------------- broker restart


@pytest.mark.slow
def test_every_event_is_applied_exactly_once_across_a_broker_restart(
    database, store, consumer_db, private_rabbit, run_consumer
):
    """10,000 events flow store → outbox relay → private RabbitMQ node → consumer while
    the node's RabbitMQ application is stopped and started again (the shared broker
    other tests use is never touched)."""
    total = 10_000
    fault_bus = make_bus(private_rabbit.uri)
    queue = fault_bus.queue_name()
    container = run_consumer(consumer_service("a", queue, fault_bus, consumer_db), uri=private_rabbit.uri)
    relay = Relay(database.engine, private_rabbit.uri, exchange=fault_bus.exchange, backoff=(0.1, 1.0))
    relay.start()

    def produce():  # ~2,500 events/s into the store, in appends of 50
        for _ in range(total // 50):
            append_check_ins(store, 50, batch=50)
            time.sleep(0.02)

    producing = threading.Thread(target=produce, daemon=True)
    producing.start()
    try:
        wait_until(lambda: offset_of(consumer_db, queue) >= 2_000, timeout=60, message="2,000 applied")
        private_rabbit.stop_app()
        # the relay met the outage (its publishes failed) before the node comes back
        wait_until(lambda: relay.stats.reconnects >= 1, timeout=60, message="the relay's reconnect")
        private_rabbit.start_app()
        producing.join(timeout=60)
        wait_until(lambda: offset_of(consumer_db, queue) == total, timeout=60, interval=0.1,
                   message=f"all {total} applied")
    finally:
        relay.stop()
    stats = entrypoint(container).stats
    print(f"broker restart: relay {relay.stats}; consumer {stats}")
    assert relay.stats.reconnects >= 1
    assert consumer_db.count() == total
    assert consumer_db.positions() == list(range(1, total + 1))  # each once, in order
    assert stats.applied == total


def test_topic_patterns_match_whole_words():
    from okr_shared.bus.consumer import topic_matches

    def match(pattern, key):
        return topic_matches(tuple(pattern.split(".")), tuple(key.split(".")))

    assert match("okr.v1.#", "okr.v1.CheckInRecorded") and match("okr.v1.#", "okr.v1")
    assert match("okr.*.CheckInRecorded", "okr.v1.CheckInRecorded")
    assert not match("okr.v1.#", "okr.KeyResultDefined") and not match("okr.v1.*", "okr.v1.a.b")
    assert match("#", "anything.at.all") and match("okr.v1.CheckInRecorded", "okr.v1.CheckInRecorded")
