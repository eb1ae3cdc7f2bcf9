"""The outbox relay against the real RabbitMQ, on SQLite and on PostgreSQL.

Each test has its own exchange and queue (conftest.py) and its own database. Relays run
in this process (a green thread) where that is enough, and as ``python -m
okr_services.relay`` processes where a crash, a kill or two relays at once are the point.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import uuid

import amqp
import pytest

from okr.v1 import events_pb2
from okr_shared.bus import wire
from okr_shared.eventstore.lease import Lease, LeaseLost
from okr_shared.bus.relay import Relay, encode, load_checkpoint, replay
from okr_shared.contracts import envelope_from_recorded, payload_to_dict
from okr_shared.eventstore import NO_STREAM, NewEvent
from tests.waiting import wait_until

AMQP_URI = os.environ.get("OKR_TEST_AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")

FAST = dict(lease_ttl=2.0, lease_renew_interval=0.4, poll_interval=0.005, backoff=(0.05, 0.2))


def check_in(n: int, tenant: str = "acme", kr: str = "kr-1") -> NewEvent:
    message = events_pb2.CheckInRecorded(
        check_in_id=f"ci-{uuid.uuid4().hex[:8]}", key_result_id=kr, value=n, confidence=7,
        author="ana", effective_date="2026-02-01",
    )
    return NewEvent("okr.v1.CheckInRecorded", payload_to_dict(message), tenant_id=tenant,
                    metadata={"actor": "ana", "correlation_id": f"c-{n}"})


def append_check_ins(store, count: int, stream: str = "kr-kr-1", tenant: str = "acme") -> list[int]:
    version = store.stream_version(stream, tenant_id=tenant)
    result = store.append(stream, version or NO_STREAM, [check_in(version + i, tenant) for i in range(count)])
    return list(range(result.first_position, result.last_position + 1))


# ------------------------------------------------------------------ what goes out


def test_every_event_is_published_once_in_position_order_in_the_wire_format(database, store, bus_probe):
    append_check_ins(store, 700)  # more than one window of 500
    store.append("kr-kr-2", NO_STREAM, [check_in(1, tenant="globex", kr="kr-2")])
    store.append("custom-1", NO_STREAM, [NewEvent("test.Custom", {"a": 1}, tenant_id="acme")])
    append_check_ins(store, 10)
    events = list(store.read_all())

    assert Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST).catch_up() == len(events)

    received = bus_probe.settle()
    assert [r.position for r in received] == [e.position for e in events]
    for r, event in zip(received, events, strict=True):
        message = r.message
        assert message.delivery_info["exchange"] == bus_probe.exchange
        assert message.delivery_info["routing_key"] == event.event_type
        assert message.properties["content_type"] == "application/x-protobuf"
        assert message.properties["delivery_mode"] == 2
        assert message.properties["message_id"] == event.event_id
        assert message.properties["application_headers"] == {
            wire.HEADER_EVENT_TYPE: event.event_type,
            wire.HEADER_TENANT: event.tenant_id,
            wire.HEADER_POSITION: event.position,
            wire.HEADER_SCHEMA_VERSION: event.schema_version,
        }
        if event.event_type != "test.Custom":
            assert message.body == envelope_from_recorded(event).SerializeToString()
    assert load_checkpoint(database.engine, bus_probe.exchange) == len(events)


def test_an_event_type_outside_the_contracts_goes_out_with_an_empty_payload(database, store, bus_probe):
    store.append("custom-1", NO_STREAM, [NewEvent("test.Custom", {"a": 1}, tenant_id="acme",
                                                   metadata={"actor": "tool"})])
    append_check_ins(store, 1)

    Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST).catch_up()

    custom, known = (wire.decode(r.message.body) for r in bus_probe.wait_for(2))
    assert (custom.event_type, custom.position, custom.actor, custom.payload.type_url) == \
        ("test.Custom", 1, "tool", "")
    assert known.payload.type_url == "type.googleapis.com/okr.v1.CheckInRecorded"


def test_events_committed_while_the_relay_runs_arrive_within_50_ms_at_p50(database, store, bus_probe):
    relay = Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST)
    relay.start()
    try:
        wait_until(lambda: relay.active, message="relay active")
        latencies = []
        for i in range(30):
            append_check_ins(store, 1)
            committed = time.perf_counter()
            arrived = bus_probe.wait_for(i + 1, timeout=5)[i].at
            latencies.append(arrived - committed)
            time.sleep(0.01)
    finally:
        relay.stop()
    p50 = statistics.median(latencies)
    print(f"commit-to-consumer latency p50 {p50 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert p50 <= 0.050
    assert [r.position for r in bus_probe.received] == list(range(1, 31))
    assert relay.lease.holder()[1] == 0  # a clean stop releases the lease


# ------------------------------------------------------------------ confirms and checkpoint


def test_the_checkpoint_moves_only_past_what_the_broker_confirmed(database, store, bus_probe):
    # A second queue that holds 2 messages and then refuses (nacks) further publishes.
    full = bus_probe.declare_queue(f"{bus_probe.queue}.full", {"x-max-length": 2, "x-overflow": "reject-publish"})
    append_check_ins(store, 5)
    relay = Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST)
    relay.start()
    try:
        wait_until(lambda: relay.stats.nacked >= 6, message="three refused publishes of 3..5")
        assert load_checkpoint(database.engine, bus_probe.exchange) == 2  # the acked prefix
        bus_probe.channel.queue_delete(full)  # the broker accepts again
        wait_until(lambda: load_checkpoint(database.engine, bus_probe.exchange) == 5, message="checkpoint 5")
    finally:
        relay.stop()
    positions = [r.position for r in bus_probe.settle()]
    assert positions[:2] == [1, 2] and set(positions) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize("interval, seen", [(0.0, [0, 1, 2, 3, 4]), (60.0, [0, 1, 1, 1, 1])])
def test_the_checkpoint_is_saved_at_most_every_checkpoint_interval_and_when_idle(
        database, store, bus_probe, interval, seen):
    # ADR 0014: five one-event windows; what the saved checkpoint was at each window's
    # confirms. Interval 0: after every window. 60 s: the first window saves, the next
    # four only move the position in memory, and catch_up saves 5 when it finds no more.
    append_check_ins(store, 5)
    at_confirm = []
    relay = Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, window=1, checkpoint_interval=interval,
                  on_confirmed=lambda first, last: at_confirm.append(load_checkpoint(database.engine,
                                                                                     bus_probe.exchange)),
                  **FAST)
    assert relay.catch_up() == 5
    assert at_confirm == seen
    assert load_checkpoint(database.engine, bus_probe.exchange) == 5
    assert [r.position for r in bus_probe.settle()] == [1, 2, 3, 4, 5]


def test_with_a_long_interval_a_clean_stop_saves_the_last_confirmed_position_for_its_successor(
        database, store, bus_probe):
    append_check_ins(store, 4)
    relay = Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, window=1, checkpoint_interval=60.0,
                  **FAST)
    relay.start()
    try:
        wait_until(lambda: relay.stats.confirmed == 4, message="four windows confirmed")
    finally:
        relay.stop()
    assert load_checkpoint(database.engine, bus_probe.exchange) == 4
    append_check_ins(store, 2)
    assert Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST).catch_up() == 6  # the checkpoint it reached
    assert [r.position for r in bus_probe.settle()] == [1, 2, 3, 4, 5, 6]


def test_checkpoint_interval_must_not_be_negative(database):
    with pytest.raises(ValueError, match="checkpoint_interval must be >= 0 seconds, not -1"):
        Relay(database.engine, AMQP_URI, checkpoint_interval=-1)


def test_without_confirms_the_checkpoint_stays_and_the_window_is_published_again(database, store, bus_probe):
    append_check_ins(store, 3)
    relay = Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, confirm_timeout=0.3, **FAST)
    relay.publisher._on_ack = lambda tag, multiple: None  # a broker that never confirms
    relay.start()
    try:
        wait_until(lambda: relay.stats.reconnects >= 2, message="two confirm timeouts")
        assert load_checkpoint(database.engine, bus_probe.exchange) == 0
        del relay.publisher._on_ack  # confirms work again after the next reconnect
        wait_until(lambda: load_checkpoint(database.engine, bus_probe.exchange) == 3, message="checkpoint 3")
    finally:
        relay.stop()
    positions = [r.position for r in bus_probe.settle()]
    assert len(positions) >= 9 and set(positions) == {1, 2, 3}  # three windows at least


def test_a_relay_that_loses_its_connection_while_idle_reconnects_and_publishes_on(database, store, bus_probe):
    relay = Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST)
    relay.start()
    try:
        append_check_ins(store, 1)
        bus_probe.wait_for(1)
        relay.publisher._conn.transport.sock.shutdown(socket.SHUT_RDWR)  # the connection drops
        wait_until(lambda: relay.stats.reconnects == 1 and relay.publisher.connected, message="reconnected")
        append_check_ins(store, 1)
        assert [r.position for r in bus_probe.wait_for(2)] == [1, 2]
        wait_until(lambda: load_checkpoint(database.engine, bus_probe.exchange) == 2, message="checkpoint 2")
    finally:
        relay.stop()


# ------------------------------------------------------------------ processes


def test_a_relay_killed_between_publish_and_checkpoint_publishes_again_and_dedupe_applies_once(
    database, store, bus_probe, relay_process
):
    positions = append_check_ins(store, 3)
    crashing = relay_process("--exit-after-confirm")
    assert crashing.wait() == 75
    assert [r.position for r in bus_probe.wait_for(3)] == positions
    assert load_checkpoint(database.engine, bus_probe.exchange) == 0

    restarted = relay_process()  # takes over once the dead relay's lease expires (2 s)
    received = bus_probe.wait_for(6)
    wait_until(lambda: load_checkpoint(database.engine, bus_probe.exchange) == 3, message="checkpoint 3")
    assert restarted.terminate() == 0

    assert [r.position for r in received] == positions * 2
    applied = {}
    for r in received:  # a consumer that dedupes by event id applies each event once
        applied.setdefault(r.message_id, r.position)
    assert sorted(applied.values()) == positions
    assert any(line["msg"].startswith("exiting after the confirms") for line in crashing.logs())


def test_of_two_relays_one_publishes_and_the_other_takes_over_when_it_is_killed(
    database, store, bus_probe, relay_process
):
    first, second = relay_process(), relay_process()
    lease = Lease(database.engine, bus_probe.exchange)
    wait_until(lambda: lease.holder() is not None, message="a lease holder")
    for _ in range(10):  # traffic while both run
        append_check_ins(store, 20)
        time.sleep(0.05)
    received = bus_probe.wait_for(200)
    wait_until(lambda: load_checkpoint(database.engine, bus_probe.exchange) == 200, message="checkpoint 200")
    assert [r.position for r in bus_probe.settle()] == list(range(1, 201))  # no duplicates

    owner = lease.holder()[0]
    active, standby = (first, second) if f":{first.pid}:" in owner else (second, first)
    assert f":{active.pid}:" in owner
    assert not [line for line in standby.logs() if line["msg"].startswith("lease acquired")]

    active.kill()
    killed = time.perf_counter()
    append_check_ins(store, 1)
    received = bus_probe.wait_for(201, timeout=10)
    takeover = received[200].at - killed
    print(f"takeover after SIGKILL: {takeover:.2f} s (lease ttl 2 s)")
    assert takeover < 4.0
    assert [r.position for r in bus_probe.settle()] == list(range(1, 202))
    assert f":{standby.pid}:" in lease.holder()[0]


def test_sigterm_stops_a_relay_cleanly_and_releases_its_lease(database, store, bus_probe, relay_process):
    append_check_ins(store, 5)
    relay = relay_process()
    bus_probe.wait_for(5)
    wait_until(lambda: load_checkpoint(database.engine, bus_probe.exchange) == 5, message="checkpoint 5")
    assert relay.terminate() == 0
    assert Lease(database.engine, bus_probe.exchange).holder()[1] == 0
    messages = [line["msg"] for line in relay.logs()]
    assert "lease acquired: publishing" in messages and messages[-1] == "relay stopped"


# ------------------------------------------------------------------ replay


def test_replay_publishes_a_position_range_straight_to_one_queue(database, store, bus_probe):
    append_check_ins(store, 6)
    queue = bus_probe.declare_queue(f"{bus_probe.queue}.new-consumer", bind=False)

    assert replay(database.engine, AMQP_URI, queue, from_position=2, to_position=4) == 3

    messages = bus_probe.get_from(queue, 3)
    events = list(store.read_all(2, to_position=4))
    assert [m.body for m in messages] == [encode(e)[0] for e in events]
    assert [m.properties["message_id"] for m in messages] == [e.event_id for e in events]
    # the event's routing key, not the queue's name; through the replay's own exchange
    assert [m.delivery_info["routing_key"] for m in messages] == [e.event_type for e in events]
    assert all(m.delivery_info["exchange"].startswith(wire.REPLAY_EXCHANGE_PREFIX) for m in messages)
    assert bus_probe.settle(0.2) == []  # nothing went through the exchange
    with pytest.raises(amqp.exceptions.NotFound):  # the replay's exchange is gone
        bus_probe.conn.channel().exchange_declare(messages[0].delivery_info["exchange"], "topic", passive=True)


def test_a_replayed_message_is_the_live_message_plus_the_replayed_header(database, store, bus_probe):
    """An outside consumer bound by routing key: what the relay publishes live and what a
    replay brings differ only by ``okr-replayed: true`` (and the exchange they came by)."""
    store.append("custom-1", NO_STREAM, [NewEvent("test.Custom", {"a": 1}, tenant_id="acme")])
    append_check_ins(store, 2)
    queue = bus_probe.declare_queue(f"{bus_probe.queue}.by-key", bind=False)
    bus_probe.channel.queue_bind(queue, bus_probe.exchange, routing_key="okr.v1.CheckInRecorded")
    Relay(database.engine, AMQP_URI, exchange=bus_probe.exchange, **FAST).catch_up()
    live = bus_probe.get_from(queue, 2)

    # the queue's own binding key: only what live traffic brought it, not test.Custom
    assert replay(database.engine, AMQP_URI, queue, from_position=1, to_position=3,
                  bindings=["okr.v1.CheckInRecorded"]) == 3
    replayed = bus_probe.get_from(queue, 2)
    assert bus_probe.channel.basic_get(queue, no_ack=True) is None

    for a, b in zip(live, replayed, strict=True):
        assert b.body == a.body
        assert b.delivery_info["routing_key"] == a.delivery_info["routing_key"] == "okr.v1.CheckInRecorded"
        assert b.properties["application_headers"] == {**a.properties["application_headers"],
                                                       wire.HEADER_REPLAYED: True}
        strip = lambda m: {k: v for k, v in m.properties.items() if k != "application_headers"}  # noqa: E731
        assert strip(b) == strip(a)
        assert (a.delivery_info["exchange"], b.delivery_info["exchange"][:len(wire.REPLAY_EXCHANGE_PREFIX)]) == (
            bus_probe.exchange, wire.REPLAY_EXCHANGE_PREFIX)


def test_the_replay_command_fills_a_queue_from_a_position_to_the_head(database, store, bus_probe, relay_env):
    append_check_ins(store, 4)
    queue = bus_probe.declare_queue(f"{bus_probe.queue}.new-consumer", bind=False)
    env = relay_env
    command = [sys.executable, "-m", "okr_services.relay", "replay", "--from-position", "2", "--queue"]

    done = subprocess.run([*command, queue], env=env, capture_output=True, text=True, timeout=30)
    missing = subprocess.run([*command, f"{queue}.nope"], env=env, capture_output=True, text=True, timeout=30)

    assert done.returncode == 0, done.stderr
    messages = bus_probe.get_from(queue, 3)
    assert [m.properties["application_headers"][wire.HEADER_POSITION] for m in messages] == [2, 3, 4]
    assert missing.returncode == 2 and "does not exist" in missing.stderr


# ------------------------------------------------------------------ the lease


def test_a_lease_has_one_holder_until_it_expires(database):
    first = Lease(database.engine, "relay", ttl=0.5, renew_interval=0.1, safety_margin=0.1)
    second = Lease(database.engine, "relay", ttl=0.5, renew_interval=0.1, safety_margin=0.1)
    assert first.acquire() and first.held
    assert not second.acquire()
    assert first.renew()
    time.sleep(0.6)  # the first stopped renewing
    assert not first.held
    assert second.acquire()
    assert not first.renew() and not first.acquire()
    with pytest.raises(LeaseLost):
        with first.holding():
            pytest.fail("ran without the lease")
    second.release()
    assert first.acquire()


def test_only_the_lease_holder_writes_in_holding(database):
    lease = Lease(database.engine, "relay", ttl=5, renew_interval=1)
    assert lease.acquire()
    with lease.holding() as conn:
        conn.exec_driver_sql(
            "INSERT INTO es_relay_checkpoints (name, position, updated_at_us) VALUES ('relay', 7, 0)"
        )
    assert load_checkpoint(database.engine, "relay") == 7
