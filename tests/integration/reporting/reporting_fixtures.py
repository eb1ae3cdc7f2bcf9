"""Fixtures of the reporting service's integration tests (test_reporting_service.py).

``world`` (one per module and backend, SQLite and PostgreSQL): an event store holding the
generated history of acme and a small hand-made globex (interleaved in time; re-appended
with the same event ids, positions, payloads and ``recorded_at_us``), a reporting
database of the same backend, an exchange and queues of the test's own on the real
broker, the reporting service running as a nameko container (fixed ``today``: the last
day of the history; timer every 0.3 s; HTTP on a free port) and an outbox relay in this
process — caught up: the service's offset is the store's head.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import nameko
import pytest
from nameko.containers import get_container_cls
from nameko.standalone.rpc import ClusterRpcClient

from datetime import date, timedelta

from tests.fixtures.company_history import LAST_DAY, Script, drafts, record
from okr_shared.domain import commands as c
from okr_shared.bus.consumer import dead_letter_queue_name
from okr_shared.bus.relay import Relay
from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine, migrate
from okr_services.reporting import storage
from okr_services.reporting.service import make_service
from tests.infra import AMQP_URI, BACKENDS, require_broker, POSTGRES_URL, Databases, delete_bus_objects, publish_again  # noqa: F401
from tests.waiting import free_port, wait_until  # noqa: F401 - re-exported to the tests

TODAY = LAST_DAY


def globex() -> Script:
    """A second, small company (ids of its own: streams are global in a store) checking
    in weekly through the same weeks as acme."""
    s = Script("globex")
    planning, jan1 = date(2025, 12, 20), date(2026, 1, 1)
    s.run(planning, "gus", c.PlanCycle("gx-q1", "QUARTERLY", "Q1 2026", "2026-01-01", "2026-03-31"))
    s.run(planning, "gus", c.CreateObjective("gx-o", "gx-q1", "TEAM", "Ship the <new> app & more", "gus",
                                             team_id="mobile"))
    s.run(jan1, "gus", c.ActivateCycle("gx-q1"))
    s.run(jan1, "gus", c.DefineKeyResult("gx-kr-1", "gx-o", "Installs 0 → 1000", "INCREASE_TO", 0, 1000, "gus",
                                         "2026-03-31"))
    s.run(jan1, "gwen", c.DefineKeyResult("gx-kr-2", "gx-o", "Crash rate 5 → 1 %", "DECREASE_TO", 5, 1, "gwen",
                                          "2026-03-31"))
    s.run(jan1, "gwen", c.CreateInitiative("gx-i1", "gx-kr-2", "Fix the top crashes", "gwen", "2026-01-05",
                                           "2026-02-15"))
    for week in range(1, 11):
        day = jan1 + timedelta(days=7 * week - 1)
        s.run(day, "gus", c.RecordCheckIn(f"gx-ci1-{week}", "gx-kr-1", 80.0 * week, 6, day.isoformat()))
        if week <= 5:
            s.run(day, "gwen", c.RecordCheckIn(f"gx-ci2-{week}", "gx-kr-2", 5 - 0.3 * week, 5, day.isoformat()))
    return s


def append_recorded(engine, events) -> EventStore:
    """Append ``events`` (RecordedEvents from the fixture) to an empty store one by one
    with their own ids, payloads, metadata and recorded_at_us: the store then holds
    exactly them (same positions and hash chain)."""
    now = {"us": 0}
    store = EventStore(engine, clock=lambda: now["us"])
    for e in events:
        now["us"] = e.recorded_at_us
        store.append(e.stream_id, ANY, [NewEvent(e.event_type, e.data, tenant_id=e.tenant_id,
                                                 event_id=e.event_id, metadata=e.metadata)])
    store.close()
    return EventStore(engine)


@dataclass
class World:
    backend: str
    events: list
    store: EventStore
    es_url: str
    reporting_url: str
    reporting_engine: object
    container: object
    relay: Relay
    http: str
    service_name: str
    queue: str
    databases: Databases
    exchange: str = ""
    service_cls: object = None
    config: dict = field(default_factory=dict)
    clients: list = field(default_factory=list)

    def stop_service(self) -> None:
        self.container.stop()

    def start_service(self) -> None:
        with nameko.config.patch(self.config):
            self.container = get_container_cls()(self.service_cls)
            self.container.start()

    def offset(self) -> int | None:
        with self.reporting_engine.connect() as conn:
            return storage.offset_of(conn, self.queue)

    def dump(self):
        with self.reporting_engine.connect() as conn:
            return storage.dump_tables(conn), storage.offset_of(conn, self.queue)

    def model(self):
        with self.reporting_engine.connect() as conn:
            return storage.load_model(conn)

    def caught_up(self, timeout: float = 30.0) -> None:
        head = self.store.head_position()
        wait_until(lambda: self.offset() == head, timeout=timeout, message=f"reporting offset {head}")

    def rpc(self, **context_data):
        cluster = ClusterRpcClient(context_data=context_data, timeout=30, uri=AMQP_URI)
        proxy = cluster.start()
        self.clients.append(cluster)
        return proxy[self.service_name]

    def publish_again(self, *recorded) -> None:
        publish_again(self.exchange, *recorded)

    def entrypoint(self):
        (ep,) = [e for e in self.container.entrypoints if e.method_name == "on_event"]
        return ep

    def dependency(self, attr_name: str):
        (found,) = [d for d in self.container.dependencies if d.attr_name == attr_name]
        return found


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    require_broker()
    databases = Databases(request.param, tmp_path_factory.mktemp("reporting"), prefix="rep_test")
    events = record(drafts("acme") + globex().drafts)
    es_url, reporting_url = databases.new("eventstore"), databases.new("reporting")
    es_engine = make_engine(es_url)
    migrate(es_engine)
    store = append_recorded(es_engine, events)
    suffix = uuid.uuid4().hex[:10]
    exchange, dlx = f"okr.events.test-{suffix}", f"okr.events.dlx.test-{suffix}"
    name, queue = f"reporting-{suffix}", f"reporting.read-models-{suffix}"
    port = free_port()
    service = make_service(name, queue=queue, db_url=reporting_url, event_store_url=es_url, today=TODAY,
                           refresh_interval=0.3, exchange=exchange, dead_letter_exchange=dlx,
                           retry_delay=0.01, retry_max_delay=0.1)
    config = {"AMQP_URI": AMQP_URI, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}
    with nameko.config.patch(config):
        container = get_container_cls()(service)
        container.start()
    relay = Relay(es_engine, AMQP_URI, exchange=exchange, poll_interval=0.01, backoff=(0.05, 0.5))
    relay.start()
    reporting_engine = make_engine(reporting_url)
    w = World(request.param, events, store, es_url, reporting_url, reporting_engine, container, relay,
              f"http://127.0.0.1:{port}", name, queue, databases, exchange, service, config)
    try:
        w.caught_up(timeout=45)
        yield w
    finally:
        for cluster in w.clients:
            cluster.stop()
        relay.stop()
        w.container.stop()
        reporting_engine.dispose()
        store.close()
        es_engine.dispose()
        delete_bus_objects((queue, dead_letter_queue_name(queue), f"rpc-{name}"), (exchange, dlx))
        databases.drop()
