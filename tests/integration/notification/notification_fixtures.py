"""Fixtures of the notification service's integration tests (test_notification_service.py).

``world`` (one per module and backend, SQLite and PostgreSQL): an empty event store and a
notification database of the same backend, an exchange and queues of the test's own on the
real broker, an outbox relay in this process, a local HTTP receiver (scriptable per path:
``answer`` for a fixed answer, ``script`` for a sequence such as 503, 503, then 200) and a
local SMTP server (receivers.py), and the notification service running as a nameko
container with

- a controllable clock (``world.clock``): ``set(moment)`` jumps to an instant, from which
  the clock runs on in real time (so retry backoffs elapse); it never goes back;
- an e-mail channel sending to the local SMTP server;
- a retry policy of 3 attempts with 50-100 ms delays, dispatching every 50 ms;
- the timed rules' timer every 0.3 s, and ``world.tick()`` running that timer's method
  once, now, in a worker of the container (deterministic: returns when it is done).

Every test writes its own tenant's history (``company(tenant)``: hand-made with the real
deciders, ids prefixed by the tenant: streams are global in a store) and appends it with
``world.append(script)`` — the events keep the days ``Script`` gave them — then waits until
the service's offset is the store's head (``append`` does): the event rules' deliveries of
those events are then enqueued (same transaction as the offset).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import eventlet
import nameko
import pytest
from nameko.containers import get_container_cls
from nameko.standalone.rpc import ClusterRpcClient
from sqlalchemy import select

from tests.fixtures.company_history import Script
from okr_shared.bus.consumer import dead_letter_queue_name, offsets
from okr_shared.bus.relay import Relay
from okr_shared.domain import commands as c
from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine, migrate
from okr_services.notification import delivery as dl
from okr_services.notification.channels import EmailChannel
from okr_services.notification.config import SmtpSettings
from okr_services.notification.service import make_service
from .receivers import Answer, HttpReceiver, SmtpReceiver
from tests.infra import AMQP_URI, BACKENDS, require_broker, POSTGRES_URL, Databases, delete_bus_objects, publish_again  # noqa: F401
from tests.waiting import free_port, wait_until  # noqa: F401 - re-exported to the tests

#: Where the world's clock starts: Monday 5 Jan 2026, midnight UTC — before every timed
#: rule of the hand-made companies is due (first Friday reminder: 9 Jan).
START = datetime(2026, 1, 5, 0, 0, tzinfo=timezone.utc)
SENDER = "okr@notify.test"
MAX_ATTEMPTS = 3


# ------------------------------------------------------------------------------ clock


class Clock:
    """The service's ``now``: an instant set by the test, running on in real time."""

    def __init__(self, start: datetime):
        self._lock = threading.Lock()
        self._at, self._since = start, time.monotonic()

    def __call__(self) -> datetime:
        with self._lock:
            return self._at + timedelta(seconds=time.monotonic() - self._since)

    def set(self, moment: datetime) -> None:
        assert moment.tzinfo is not None
        with self._lock:
            now = self._at + timedelta(seconds=time.monotonic() - self._since)
            assert moment >= now - timedelta(seconds=1), f"the clock never goes back ({now} -> {moment})"
            self._at, self._since = max(moment, now), time.monotonic()


# -------------------------------------------------------------------------- receivers


class ScriptedAnswers(dict):
    """``HttpReceiver.answers`` with sequences: ``script(path, 503, 503, 200)`` answers
    the first two requests to ``path`` with 503, then 200 for ever (the last one stays)."""

    def __init__(self):
        super().__init__()
        self.sequences: dict[str, list[Answer]] = {}
        self._lock = threading.Lock()

    def get(self, path, default=None):
        with self._lock:
            sequence = self.sequences.get(path)
            if sequence:
                return sequence.pop(0) if len(sequence) > 1 else sequence[0]
        return super().get(path, default)


class Receiver(HttpReceiver):
    def __init__(self, port: int):
        super().__init__(port)
        self.answers = ScriptedAnswers()

    def script(self, path: str, *statuses: int) -> str:
        self.answers.sequences[path] = [Answer(status, b'{"ok": true}' if status < 300 else b'{"error": "down"}')
                                        for status in statuses]
        return self.url(path)

    def to(self, path: str) -> list:
        """The requests to ``path`` so far (every attempt)."""
        return [r for r in list(self.requests) if r.path.split("?", 1)[0] == path]

    def bodies(self, path: str) -> list[dict]:
        return [json.loads(r.body) for r in self.to(path)]


# ------------------------------------------------------------------------- databases


# -------------------------------------------------------------------------- histories

PLANNING, JAN1 = date(2025, 12, 20), date(2026, 1, 1)


def company(tenant: str) -> Script:
    """A small company: the Q1 2026 cycle (1 Jan - 31 Mar, active), the team objective
    ``<t>-o`` of team growth owned by olga, two key results 0 -> 100 due 31 Mar — ``<t>-kr1``
    owned by kim, ``<t>-kr2`` owned by kai — and two initiatives under kr1 (assignee kim).
    No check-in yet. Pace: expected progress on day d is (d - 1 Jan) / 89 days."""
    s = Script(tenant)
    q, o = f"{tenant}-q1", f"{tenant}-o"
    s.run(PLANNING, "olga", c.PlanCycle(q, "QUARTERLY", "Q1 2026", "2026-01-01", "2026-03-31"))
    s.run(PLANNING, "olga", c.CreateObjective(o, q, "TEAM", "Grow the <new> market & more", "olga",
                                              team_id="growth"))
    s.run(JAN1, "olga", c.ActivateCycle(q))
    s.run(JAN1, "kim", c.DefineKeyResult(f"{tenant}-kr1", o, "Signups 0 → 100", "INCREASE_TO", 0, 100, "kim",
                                         "2026-03-31"))
    s.run(JAN1, "kai", c.DefineKeyResult(f"{tenant}-kr2", o, "Partners 0 → 100", "INCREASE_TO", 0, 100, "kai",
                                         "2026-03-31"))
    s.run(JAN1, "kim", c.CreateInitiative(f"{tenant}-i1", f"{tenant}-kr1", "Launch the referral program", "kim",
                                          "2026-01-05", "2026-02-15"))
    s.run(JAN1, "kim", c.CreateInitiative(f"{tenant}-i2", f"{tenant}-kr1", "Paid ads pilot", "kim",
                                          "2026-01-05", "2026-02-28"))
    return s


def check_in(s: Script, day: date, actor: str, kr: str, value: float, confidence: int) -> None:
    s.run(day, actor, c.RecordCheckIn(f"{kr}-ci-{day.isoformat()}", kr, value, confidence, day.isoformat()))


# ------------------------------------------------------------------------------ world


@dataclass
class World:
    backend: str
    clock: Clock
    store: EventStore
    es_engine: object
    db_engine: object
    receiver: Receiver
    smtp: SmtpReceiver
    relay: Relay
    service_cls: object
    service_name: str
    queue: str
    exchange: str
    config: dict
    container: object = None
    clients: list = field(default_factory=list)
    appended: dict = field(default_factory=dict)  # tenant -> drafts already in the store
    recorded: list = field(default_factory=list)  # every RecordedEvent appended

    # ------------------------------------------------------------------- service

    def start_service(self) -> None:
        with nameko.config.patch(self.config):
            self.container = get_container_cls()(self.service_cls)
            self.container.start()

    def stop_service(self) -> None:
        self.container.stop()

    def entrypoint(self, method: str = "on_event"):
        (ep,) = [e for e in self.container.entrypoints if e.method_name == method]
        return ep

    def tick(self, timeout: float = 20.0) -> None:
        """Run the timed rules once, now, in a worker of the container (the timer's own
        method); returns when it finished (re-raises what it raised)."""
        done = eventlet.event.Event()

        def handle_result(worker_ctx, result, exc_info):
            done.send((result, exc_info))
            return result, exc_info

        self.container.spawn_worker(self.entrypoint("tick"), (), {}, handle_result=handle_result)
        with eventlet.Timeout(timeout):
            result, exc_info = done.wait()
        if exc_info is not None:
            raise exc_info[1]

    # -------------------------------------------------------------------- events

    def offset(self) -> int | None:
        with self.db_engine.connect() as conn:
            return conn.execute(select(offsets.c.last_position).where(offsets.c.consumer == self.queue)).scalar()

    def caught_up(self, timeout: float = 20.0) -> int:
        head = self.store.head_position()
        wait_until(lambda: (self.offset() or 0) >= head, timeout=timeout, message=f"notification offset {head}")
        return head

    def append(self, script: Script) -> list:
        """Append the script's events not appended yet (with their own ids, payloads,
        metadata and recorded_at_us) and wait until the service consumed them."""
        done = self.appended.get(script.tenant, 0)
        new = script.drafts[done:]
        now = {"us": 0}
        writer = EventStore(self.es_engine, clock=lambda: now["us"])
        try:
            for d in new:
                now["us"] = d.recorded_at_us
                writer.append(d.stream_id, ANY, [NewEvent(d.event_type, d.data, tenant_id=d.tenant_id,
                                                                   event_id=d.event_id, metadata=d.metadata)])
        finally:
            writer.close()
        self.appended[script.tenant] = len(script.drafts)
        head = self.caught_up()
        events = [e for e in self.store.read_all(from_position=head - len(new) + 1)] if new else []
        self.recorded.extend(events)
        return events

    def events_of(self, tenant: str) -> list:
        return [e for e in self.recorded if e.tenant_id == tenant]

    def publish_again(self, *recorded) -> None:
        publish_again(self.exchange, *recorded)

    # ----------------------------------------------------------------------- rpc

    def rpc(self, tenant: str):
        cluster = ClusterRpcClient(context_data={"tenant_id": tenant}, timeout=30, uri=AMQP_URI)
        proxy = cluster.start()
        self.clients.append(cluster)
        return proxy[self.service_name]

    # ---------------------------------------------------------------- deliveries

    def rows(self, tenant: str, **where) -> list[dict]:
        """The tenant's deliveries straight from the table (every column but the payload)."""
        t = dl.deliveries
        query = select(t).where(t.c.tenant == tenant)
        for k, v in where.items():
            query = query.where(t.c[k] == v)
        with self.db_engine.connect() as conn:
            return [r._asdict() for r in conn.execute(query.order_by(t.c.rule, t.c.subject, t.c.recipient,
                                                                     t.c.channel, t.c.period))]

    def settled(self, tenant: str, timeout: float = 20.0) -> list[dict]:
        """Wait until none of the tenant's deliveries is pending or retrying; its rows."""
        def done():
            rows = self.rows(tenant)
            return rows if all(r["status"] in (dl.SENT, dl.FAILED) for r in rows) else None
        return wait_until(lambda: done() is not None, timeout=timeout,
                          message=f"{tenant}'s deliveries to settle") and self.rows(tenant)


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    require_broker()
    tmp = tmp_path_factory.mktemp("notification")
    databases = Databases(request.param, tmp, prefix="ntf_test")
    es_url, db_url = databases.new("eventstore"), databases.new("notification")
    es_engine = make_engine(es_url)
    migrate(es_engine)
    store = EventStore(es_engine)
    receiver = Receiver(free_port()).start()
    smtp = SmtpReceiver(free_port(), tmp / "mail")
    smtp.start()
    clock = Clock(START)
    suffix = uuid.uuid4().hex[:10]
    exchange, dlx = f"okr.events.test-{suffix}", f"okr.events.dlx.test-{suffix}"
    name, queue = f"notification-{suffix}", f"notification.rules-{suffix}"
    service = make_service(
        name, queue=queue, db_url=db_url, event_store_url=es_url, now=clock, tick_interval=0.3,
        dispatch_interval=0.05, send_timeout=5.0,
        policy=dl.RetryPolicy(max_attempts=MAX_ATTEMPTS, base_s=0.05, factor=2.0, max_s=0.1, jitter=0.0),
        channels={"email": EmailChannel(SmtpSettings(host="127.0.0.1", port=smtp.port, sender=SENDER))},
        exchange=exchange, dead_letter_exchange=dlx, retry_delay=0.01, retry_max_delay=0.1)
    relay = Relay(es_engine, AMQP_URI, exchange=exchange, poll_interval=0.01, backoff=(0.05, 0.5))
    db_engine = make_engine(db_url)
    w = World(request.param, clock, store, es_engine, db_engine, receiver, smtp, relay, service, name, queue,
              exchange, {"AMQP_URI": AMQP_URI})
    try:
        w.start_service()
        relay.start()
        yield w
    finally:
        for cluster in w.clients:
            cluster.stop()
        relay.stop()
        if w.container is not None:
            w.container.stop()
        receiver.stop()
        smtp.stop()
        db_engine.dispose()
        store.close()
        es_engine.dispose()
        delete_bus_objects((queue, dead_letter_queue_name(queue), f"rpc-{name}"), (exchange, dlx))
        databases.drop()
