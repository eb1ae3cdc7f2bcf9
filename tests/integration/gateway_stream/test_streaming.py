"""The EventStream engine (okr_services.gateway.streaming) on the real RabbitMQ, a real
event store (SQLite and PostgreSQL) and a real outbox relay publishing to an exchange
of the module's own: catch-up, following, the switch between them, event-type filters,
duplicates, holes the relay left, stop/close clean-up, slow readers, bad arguments."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

import amqp
import pytest
from kombu import Connection

from tests.infra import AMQP_URI, BACKENDS, require_broker, Databases, delete_bus_objects, publish_again
from okr_services.gateway.streaming import StreamOverflow, envelope_of, stream_events
from okr_shared.bus.relay import Relay
from okr_shared.contracts import envelope_from_recorded
from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine, migrate

CHECK_IN = "okr.v1.CheckInRecorded"
KR_DEFINED = "okr.v1.KeyResultDefined"
OBJECTIVE = "okr.v1.ObjectiveCreated"
TYPES = (CHECK_IN, KR_DEFINED, OBJECTIVE)
TIMEOUT = 15.0


class Env:
    def __init__(self, backend, store, exchange, relay):
        self.backend, self.store, self.exchange, self.relay = backend, store, exchange, relay
        self.extra_exchanges: list[str] = []

    def stream(self, tenant, **kwargs):
        kwargs.setdefault("exchange", self.exchange)
        kwargs.setdefault("heartbeat_s", 0.1)
        return stream_events(self.store, AMQP_URI, tenant=tenant, **kwargs)

    def relayed(self, timeout: float = TIMEOUT) -> None:
        """Wait until the relay has published (and checkpointed) the store's head."""
        head = self.store.head_position()
        deadline = time.monotonic() + timeout
        while self.relay.checkpoint() < head:
            assert time.monotonic() < deadline, f"relay did not reach {head}"
            time.sleep(0.01)

    def of(self, tenant, from_position=1, types=None):
        return [e.position for e in self.store.read_all(from_position, tenant_id=tenant, event_types=types)]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request, tmp_path_factory):
    require_broker()
    databases = Databases(request.param, tmp_path_factory.mktemp("stream"), prefix="stream_test")
    engine = make_engine(databases.new("eventstore"))
    migrate(engine)
    store = EventStore(engine)
    exchange = f"okr.events.test-stream-{uuid.uuid4().hex[:10]}"
    relay = Relay(engine, AMQP_URI, exchange=exchange, poll_interval=0.01, backoff=(0.05, 0.5))
    relay.start()
    e = Env(request.param, store, exchange, relay)
    try:
        yield e
    finally:
        relay.stop()
        store.close()
        engine.dispose()
        delete_bus_objects((), (exchange, *e.extra_exchanges))
        databases.drop()


def tenant_name() -> str:
    return f"t-{uuid.uuid4().hex[:8]}"


_counter = itertools.count()


def append(store, tenant, n=1, event_type=CHECK_IN, batch=True):
    """Append ``n`` events of ``tenant`` (one batch, or one append each)."""
    def new():
        i = next(_counter)
        return NewEvent(event_type, {"key_result_id": f"kr-{tenant}", "check_in_id": f"ci-{i}", "value": i},
                        tenant_id=tenant)

    stream = f"kr-{tenant}-{event_type.rsplit('.', 1)[1]}"
    if batch:
        for start in range(0, n, 1000):
            store.append(stream, ANY, [new() for _ in range(min(1000, n - start))])
    else:
        for _ in range(n):
            store.append(stream, ANY, [new()])


def collect(gen, n, timeout=TIMEOUT):
    """The first ``n`` envelopes of ``gen`` (skipping heartbeats)."""
    got, deadline = [], time.monotonic() + timeout
    for envelope in gen:
        if envelope is not None:
            got.append(envelope)
            if len(got) >= n:
                return got
        assert time.monotonic() < deadline, f"only {len(got)} of {n} events after {timeout} s"
    return got


def assert_exact(got, expected_positions):
    positions = [e.position for e in got]
    assert all(a < b for a, b in zip(positions, positions[1:])), "not strictly increasing"
    assert len(set(e.event_id for e in got)) == len(got), "duplicate event ids"
    assert positions == expected_positions


class Writer(threading.Thread):
    """Appends single events for some tenants, round robin, until stopped or ``count``."""

    def __init__(self, store, tenants, count, pause=0.002):
        super().__init__(daemon=True)
        self.store, self.tenants, self.count, self.pause = store, tenants, count, pause
        self.done = threading.Event()
        self.error = None

    def run(self):
        try:
            for i in range(self.count):
                append(self.store, self.tenants[i % len(self.tenants)], 1,
                       event_type=TYPES[i % len(TYPES)])
                time.sleep(self.pause)
        except BaseException as e:  # noqa: BLE001
            self.error = e
        finally:
            self.done.set()

    def finish(self):
        self.join(TIMEOUT)
        assert self.error is None, self.error


def queue_state(name: str) -> str:
    """'exists' (exclusive to the stream's connection) or 'deleted'."""
    with Connection(AMQP_URI) as conn:
        channel = conn.channel()
        try:
            channel.queue_declare(name, passive=True)
            return "exists"
        except amqp.exceptions.NotFound:
            return "deleted"
        except amqp.exceptions.ResourceLocked:
            return "exists"


def live_queue(gen) -> str:
    return gen.gi_frame.f_locals["live"].queue_name


# ---------------------------------------------------------------------------- tests


def test_catch_up_only_returns_exactly_the_tenants_events(env):
    a, b = tenant_name(), tenant_name()
    for _ in range(3):
        append(env.store, a, 7)
        append(env.store, b, 5)
    mine = list(env.store.read_all(1, tenant_id=a))
    start = mine[4].position
    got = list(env.stream(a, from_position=start, follow=False))
    assert_exact(got, [e.position for e in mine if e.position >= start])
    assert all(g.tenant_id == a for g in got)
    assert got == [envelope_from_recorded(e) for e in mine if e.position >= start]
    assert None not in got
    # from the head + 1: nothing, and no error
    assert list(env.stream(a, from_position=env.store.head_position() + 1, follow=False)) == []


def test_follow_while_two_tenants_write(env):
    a, b = tenant_name(), tenant_name()
    append(env.store, a, 10)
    append(env.store, b, 10)
    writer = Writer(env.store, [a, b], 200)
    gen = env.stream(a)
    try:
        first = collect(gen, 5)  # catching up; the writer starts now
        writer.start()
        rest = collect(gen, 10 + 100 - 5)
        writer.finish()
    finally:
        gen.close()
    assert_exact(first + rest, env.of(a))
    assert all(e.tenant_id == a for e in first + rest)


def test_switch_from_catch_up_to_live_with_appends_during_catch_up(env):
    a, b = tenant_name(), tenant_name()
    append(env.store, a, 1500)
    append(env.store, b, 1500)
    append(env.store, a, 500)
    gen = env.stream(a, from_position=1)
    writer = Writer(env.store, [a, b], 120, pause=0.001)
    try:
        got = collect(gen, 1)  # the head is read, the queue bound: catch-up under way
        append(env.store, a, 3, batch=False)  # after the head: live
        append(env.store, b, 3, batch=False)
        writer.start()
        env.relayed()
        got += collect(gen, 200)  # slowly: the live buffer fills meanwhile
        writer.finish()
        got += collect(gen, 2000 + 3 + 60 - len(got))
        env.relayed()
        append(env.store, a, 1)
        got += collect(gen, 1)
    finally:
        gen.close()
    assert_exact(got, env.of(a))


class HookStore:
    """A store whose ``head_position`` runs ``hook`` once armed, ``before`` or after
    reading the head: events appended before are committed after the binding and at or
    below the head the stream reads; those appended after are above it."""

    def __init__(self, store, hook, before=True):
        self.store, self.hook, self.before, self.armed = store, hook, before, False

    def head_position(self):
        armed, self.armed = self.armed, False
        if armed and self.before:
            self.hook()
        head = self.store.head_position()
        if armed and not self.before:
            self.hook()
        return head

    def read_all(self, *args, **kwargs):
        return self.store.read_all(*args, **kwargs)


@pytest.mark.parametrize("before", [True, False], ids=["before-head", "after-head"])
def test_switch_events_around_the_head_read_are_sent_once(env, before):
    a, b = tenant_name(), tenant_name()
    append(env.store, a, 5)

    def hook():
        append(env.store, a, 3, batch=False)
        append(env.store, b, 2, batch=False)
        env.relayed()  # before: in the queue too (duplicates); after: only there

    hooked = HookStore(env.store, hook, before=before)
    gen = stream_events(hooked, AMQP_URI, tenant=a, exchange=env.exchange, heartbeat_s=0.1)
    hooked.armed = True  # after the validation's head read
    try:
        got = collect(gen, 8, timeout=5)  # without any later event to reveal a hole
        append(env.store, a, 2, batch=False)
        got += collect(gen, 2)
    finally:
        gen.close()
    assert_exact(got, env.of(a))


def test_event_type_filter(env):
    a, b = tenant_name(), tenant_name()
    for t in TYPES:
        append(env.store, a, 4, event_type=t)
        append(env.store, b, 4, event_type=t)
    wanted = [CHECK_IN, OBJECTIVE]
    history = env.of(a, types=wanted)
    assert list(map(lambda e: e.position, env.stream(a, event_types=wanted, follow=False))) == history
    gen = env.stream(a, event_types=wanted)
    try:
        got = collect(gen, len(history))
        for t in TYPES:
            append(env.store, b, 2, event_type=t, batch=False)
            append(env.store, a, 2, event_type=t, batch=False)
        got += collect(gen, 4)
    finally:
        gen.close()
    assert_exact(got, env.of(a, types=wanted))
    assert {e.event_type for e in got} == set(wanted)


def test_duplicates_are_not_sent_twice(env):
    a, b = tenant_name(), tenant_name()
    append(env.store, a, 5)
    gen = env.stream(a)
    try:
        got = collect(gen, 5)
        append(env.store, a, 4, batch=False)
        append(env.store, b, 2, batch=False)
        got += collect(gen, 4)
        env.relayed()
        recent = list(env.store.read_all(got[0].position))
        publish_again(env.exchange, *recent)  # a relay that crashed before its checkpoint
        publish_again(env.exchange, *recent[:3])
        append(env.store, a, 2, batch=False)
        got += collect(gen, 2)
        publish_again(env.exchange, *recent)
        append(env.store, a, 1)
        got += collect(gen, 1)
    finally:
        gen.close()
    assert_exact(got, env.of(a))


def test_a_hole_the_relay_left_is_filled_from_the_store(env):
    exchange = f"okr.events.test-stream-gap-{uuid.uuid4().hex[:8]}"  # no relay publishes here
    env.extra_exchanges.append(exchange)
    a, b = tenant_name(), tenant_name()
    append(env.store, a, 3)
    gen = env.stream(a, exchange=exchange)
    try:
        got = collect(gen, 3)
        append(env.store, a, 3, batch=False)
        append(env.store, b, 2, batch=False)
        last_b = list(env.store.read_all(1, tenant_id=b))[-1]
        publish_again(exchange, last_b)  # only another tenant's later event is published
        got += collect(gen, 3)
        append(env.store, a, 2, batch=False)
        append(env.store, b, 1)
        last_a = list(env.store.read_all(1, tenant_id=a))[-1]
        publish_again(exchange, last_a, last_a)  # an own event, the ones before it missing
        got += collect(gen, 2)
        publish_again(exchange, last_b)  # old: nothing
        assert next(gen) is None  # idle heartbeat
        append(env.store, a, 1)  # the next one, published in order
        publish_again(exchange, list(env.store.read_all(1, tenant_id=a))[-1])
        got += collect(gen, 1)
    finally:
        gen.close()
    assert_exact(got, env.of(a))
    assert envelope_of(last_a) in got


def test_stop_ends_the_stream_and_deletes_the_queue(env):
    a = tenant_name()
    append(env.store, a, 2)
    stop = threading.Event()
    gen = env.stream(a, stop=stop)
    got = collect(gen, 2)
    name = live_queue(gen)
    assert queue_state(name) == "exists"
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    rest = [e for e in gen]  # ends by itself
    assert time.monotonic() - started < 2
    assert rest == [None] * len(rest) and len(got) == 2
    assert queue_state(name) == "deleted"
    # closing the generator (a gRPC call going away) cleans up as well
    gen2 = env.stream(a)
    collect(gen2, 2)
    name2 = live_queue(gen2)
    assert queue_state(name2) == "exists"
    gen2.close()
    assert queue_state(name2) == "deleted"


def test_a_slow_reader_overflows_instead_of_growing(env):
    a = tenant_name()
    gen = env.stream(a, from_position=env.store.head_position() + 1, max_buffer=5)
    try:
        assert next(gen) is None  # following, nothing yet
        name = live_queue(gen)
        append(env.store, a, 20, batch=False)
        env.relayed()
        time.sleep(0.2)
        with pytest.raises(StreamOverflow, match="too slowly"):
            collect(gen, 20)
    finally:
        gen.close()
    assert queue_state(name) == "deleted"


def test_bad_arguments_name_the_field(env):
    head = env.store.head_position()
    cases = [
        (dict(tenant=""), "tenant"),
        (dict(tenant=None), "tenant"),
        (dict(tenant="no spaces"), "tenant"),
        (dict(tenant="a", from_position=0), "from_position"),
        (dict(tenant="a", from_position=-3), "from_position"),
        (dict(tenant="a", from_position="1"), "from_position"),
        (dict(tenant="a", from_position=True), "from_position"),
        (dict(tenant="a", from_position=head + 2), "from_position"),
        (dict(tenant="a", event_types=["okr.v1.NoSuchEvent"]), "event_types"),
        (dict(tenant="a", event_types=[CHECK_IN, "CheckInRecorded"]), "event_types"),
        (dict(tenant="a", event_types=[3]), "event_types"),
        (dict(tenant="a", heartbeat_s=0), "heartbeat_s"),
        (dict(tenant="a", max_buffer=0), "max_buffer"),
    ]
    for kwargs, field in cases:
        with pytest.raises(ValueError, match=field):
            stream_events(env.store, AMQP_URI, exchange=env.exchange, **kwargs)
    # empty or the wildcard: every event type
    assert list(stream_events(env.store, AMQP_URI, tenant="nobody", event_types=[], follow=False)) == []
    assert list(stream_events(env.store, AMQP_URI, tenant="nobody", event_types=["okr.v1.#"], follow=False)) == []
