"""Fixtures and helpers of the consumer layer's tests (tests/integration/bus/test_consumer.py).

Each test gets an exchange, a dead-letter exchange and queues of its own on the shared
broker (deleted afterwards), an event store (the top conftest's ``database``: SQLite or
PostgreSQL) and a consumer database of the same backend (another SQLite file or another
PostgreSQL schema). Consumers run as nameko containers in this (monkey-patched) process.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nameko
import pytest
from kombu import Connection, Exchange, Producer
from nameko.containers import get_container_cls
from nameko.contextdata import ContextDataProvider
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, func, select, text

from okr_shared.bus import wire
from okr_shared.bus.consumer import ConsumerDatabase, PoisonEvent, dead_letter_queue_name, okr_event_handler
from okr_shared.contracts import envelope_from_recorded
from okr_shared.eventstore import ANY, NewEvent, make_engine
from tests.infra import AMQP_URI, Databases, require_broker, schema_url
from tests.waiting import wait_until  # noqa: F401 - re-exported to the tests

CHECK_IN = "okr.v1.CheckInRecorded"
CORRECTED = "okr.v1.CheckInCorrected"

# What the test handler writes: one row per application, so a duplicate shows.
app_metadata = MetaData()
applied = Table(
    "test_applied",
    app_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("position", BigInteger, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("instance", String(100), nullable=False),
    Column("source", String(20), nullable=False),
)


# --------------------------------------------------------------------------- events


def check_in(i: int, key_result_id: str = "kr-1") -> dict:
    return {"check_in_id": f"ci-{i}", "key_result_id": key_result_id, "objective_id": "obj-1",
            "value": float(i), "confidence": 7, "comment": "", "author": "ana", "effective_date": "2026-02-01"}


def correction(i: int, key_result_id: str = "kr-1") -> dict:
    return {"check_in_id": f"cc-{i}", "corrects_check_in_id": f"ci-{i}", "key_result_id": key_result_id,
            "objective_id": "obj-1", "value": float(i), "confidence": 5, "comment": "", "author": "ana",
            "effective_date": "2026-02-01", "reason": "typo"}


def append_check_ins(store, n: int, *, tenant: str = "acme", key_result_id: str = "kr-1",
                     batch: int = 1, event_type: str = CHECK_IN) -> list:
    """Append ``n`` events (``batch`` per append) and return them as recorded."""
    first = store.head_position() + 1
    make = check_in if event_type == CHECK_IN else correction
    for start in range(0, n, batch):
        events = [NewEvent(event_type, make(first + i, key_result_id), tenant_id=tenant,
                           metadata={"actor": "ana"}) for i in range(start, min(n, start + batch))]
        store.append(f"kr-{key_result_id}", ANY, events)
    return list(store.read_all(first))


# ---------------------------------------------------------------------------- broker


@dataclass
class Bus:
    """An exchange and a dead-letter exchange of this test's own on a broker."""

    uri: str
    exchange: str
    dead_letter_exchange: str
    queues: list = field(default_factory=list)

    def queue_name(self, label: str = "q") -> str:
        name = f"{label}-{uuid.uuid4().hex[:10]}"
        self.queues.append(name)
        return name

    def publish(self, *envelopes, conn: Connection | None = None) -> None:
        with Connection(self.uri) if conn is None else _nullcontext(conn) as c:
            producer = Producer(c.default_channel, exchange=Exchange(self.exchange, type="topic", durable=True))
            for envelope in envelopes:
                props = wire.message_properties(envelope)
                producer.publish(envelope.SerializeToString(), routing_key=wire.routing_key(envelope.event_type),
                                 headers=props.pop("application_headers"), **props)

    def publish_recorded(self, *recorded) -> None:
        self.publish(*(envelope_from_recorded(r) for r in recorded))

    def publish_raw(self, body: bytes, routing_key: str = CHECK_IN, **properties) -> None:
        with Connection(self.uri) as c:
            producer = Producer(c.default_channel, exchange=Exchange(self.exchange, type="topic", durable=True))
            producer.publish(body, routing_key=routing_key, content_type=wire.CONTENT_TYPE,
                             content_encoding="binary", delivery_mode=2, **properties)

    def drain(self, queue: str, expect: int = 0, timeout: float = 10.0) -> list:
        """Take every message now in ``queue`` (waiting until there are ``expect``)."""
        out = []
        deadline = time.monotonic() + timeout
        with Connection(self.uri) as c:
            channel = c.default_channel
            while True:
                message = channel.basic_get(queue, no_ack=True)
                if message is not None:
                    out.append(message)
                    continue
                if len(out) >= expect or time.monotonic() > deadline:
                    return out
                time.sleep(0.02)

    def message_count(self, queue: str) -> int:
        with Connection(self.uri) as c:
            return c.default_channel.queue_declare(queue, passive=True).message_count

    def cleanup(self) -> None:
        with Connection(self.uri, connect_timeout=5) as c:
            channel = c.default_channel
            for name in self.queues:
                for q in (name, dead_letter_queue_name(name)):
                    try:
                        channel.queue_delete(q)
                    except Exception:  # noqa: BLE001 - already gone
                        channel = c.channel()
            for ex in (self.exchange, self.dead_letter_exchange):
                try:
                    channel.exchange_delete(ex)
                except Exception:  # noqa: BLE001
                    channel = c.channel()


class _nullcontext:
    def __init__(self, value):
        self.value = value

    def __enter__(self):
        return self.value

    def __exit__(self, *exc):
        return False


def make_bus(uri: str) -> Bus:
    suffix = uuid.uuid4().hex[:10]
    return Bus(uri, f"okr.events.test-{suffix}", f"okr.events.dlx.test-{suffix}")


@pytest.fixture
def bus():
    require_broker()
    b = make_bus(AMQP_URI)
    yield b
    b.cleanup()


# ------------------------------------------------------------------------- databases


@dataclass
class ConsumerDb:
    """The consumer's own database (same backend as the event store of the test)."""

    url: str
    event_store_url: str
    engine: object

    def applied(self, instance: str | None = None) -> list[tuple]:
        query = select(applied.c.position, applied.c.event_id, applied.c.instance, applied.c.source).order_by(
            applied.c.seq)
        if instance is not None:
            query = query.where(applied.c.instance == instance)
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(query)]

    def positions(self) -> list[int]:
        return [r[0] for r in self.applied()]

    def count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(applied)).scalar_one()

    def scalar(self, sql: str, **params):
        with self.engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()

    def rows(self, sql: str, **params) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]


@pytest.fixture
def consumer_db(database, tmp_path):
    """A consumer database next to the test's event store (``database``)."""
    databases = Databases(database.backend, tmp_path, prefix="cons_test")
    url = databases.new("consumer")
    es_url = database.url if database.backend == "sqlite" else schema_url(database.schema)
    engine = make_engine(url)
    app_metadata.create_all(engine)
    yield ConsumerDb(url, es_url, engine)
    engine.dispose()
    databases.drop()


# ------------------------------------------------------------------------- consumers


class Behaviour:
    """What the test handler does per event id: fail ``n`` times, always, or as poison."""

    def __init__(self):
        self.failures: dict[str, int] = {}
        self.always: set[str] = set()
        self.poison: set[str] = set()
        self.calls: dict[str, int] = {}
        self.delay = 0.0

    def __call__(self, envelope):
        self.calls[envelope.event_id] = self.calls.get(envelope.event_id, 0) + 1
        if self.delay:
            time.sleep(self.delay)
        if envelope.event_id in self.poison:
            raise PoisonEvent(f"cannot apply {envelope.event_id}")
        if envelope.event_id in self.always:
            raise RuntimeError(f"handler always fails on {envelope.event_id}")
        left = self.failures.get(envelope.event_id, 0)
        if left:
            self.failures[envelope.event_id] = left - 1
            raise RuntimeError(f"transient failure on {envelope.event_id} ({left} left)")


class EventSource(ContextDataProvider):
    """Where the worker's event came from: bus, store (gap fill) or redrive."""

    context_key = "okr_source"


def consumer_service(instance: str, queue: str, bus: Bus, db: ConsumerDb, behaviour: Behaviour | None = None,
                     **handler_options):
    """A nameko service class consuming ``queue`` into ``db``'s test_applied table."""
    behaviour = behaviour or Behaviour()
    handler_options.setdefault("retry_delay", 0.01)
    handler_options.setdefault("retry_max_delay", 0.1)

    class TestConsumer:
        name = instance
        database = ConsumerDatabase(db.url, event_store_url=db.event_store_url)
        source = EventSource()

        @okr_event_handler(queue, exchange=bus.exchange, dead_letter_exchange=bus.dead_letter_exchange,
                           **handler_options)
        def on_event(self, envelope, conn):
            behaviour(envelope)
            conn.execute(applied.insert().values(position=envelope.position, event_id=envelope.event_id,
                                                 instance=instance, source=self.source))

    return TestConsumer


@pytest.fixture
def run_consumer(bus):
    """``run_consumer(service_cls, uri=bus.uri)`` → a started nameko container (stopped
    at the end of the test). ``entrypoint(container)`` gives its OkrEventHandler."""
    containers = []

    def start(service_cls, uri: str | None = None):
        with nameko.config.patch({"AMQP_URI": uri or bus.uri}):
            container = get_container_cls()(service_cls)
            container.start()
        containers.append(container)
        return container

    yield start
    for container in containers:
        container.stop()


def entrypoint(container):
    (ep,) = container.entrypoints
    return ep


# ----------------------------------------------------------- a private RabbitMQ node


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


RABBITMQ_SBIN = Path(os.environ.get("OKR_TEST_RABBITMQ_SBIN", "/usr/lib/rabbitmq/bin"))


class PrivateRabbit:
    """A RabbitMQ node of the test's own (own name, ports, data, cookie and config), so
    that the shared broker is never stopped. Needs rabbitmq-server on this machine."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="okrfault-"))
        self.node = f"okrfault{uuid.uuid4().hex[:6]}@localhost"
        self.port, dist_port = _free_ports(2)
        for sub in ("home", "mnesia", "log"):
            (self.dir / sub).mkdir()
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq.conf").write_text("loopback_users = none\n")
        (self.dir / "rabbitmq-env.conf").write_text("")
        self.env = dict(
            os.environ,
            HOME=str(self.dir / "home"),  # its own Erlang cookie, made on first start
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(dist_port),
            RABBITMQ_MNESIA_BASE=str(self.dir / "mnesia"),
            RABBITMQ_LOG_BASE=str(self.dir / "log"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.dir / "enabled_plugins"),
            RABBITMQ_CONFIG_FILE=str(self.dir / "rabbitmq.conf"),
            RABBITMQ_CONF_ENV_FILE=str(self.dir / "rabbitmq-env.conf"),
            RABBITMQ_PID_FILE=str(self.dir / "pid"),
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
            ERL_EPMD_ADDRESS="127.0.0.1",
        )
        self.uri = f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _run(self, *args, timeout=90):
        return subprocess.run([str(RABBITMQ_SBIN / args[0]), *args[1:]], env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=True)

    def ctl(self, *args, timeout=90):
        return self._run("rabbitmqctl", "-n", self.node, *args, timeout=timeout)

    def start(self):
        self._run("rabbitmq-server", "-detached")
        self.ctl("wait", str(self.dir / "pid"), "--timeout", "60")

    def stop_app(self):
        self.ctl("stop_app")

    def start_app(self):
        self.ctl("start_app")

    def shutdown(self):
        try:
            self.ctl("stop", str(self.dir / "pid"), timeout=60)
        except Exception:  # noqa: BLE001 - last resort: the node's own pid
            pid_file = self.dir / "pid"
            if pid_file.exists():
                try:
                    os.kill(int(pid_file.read_text().strip()), 9)
                except (ValueError, ProcessLookupError):
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_rabbit():
    if not (RABBITMQ_SBIN / "rabbitmq-server").exists():
        pytest.skip(f"no rabbitmq-server in {RABBITMQ_SBIN} (OKR_TEST_RABBITMQ_SBIN) for a private node")
    node = PrivateRabbit()
    try:
        node.start()
    except Exception as e:
        log = "\n".join(p.read_text()[-3000:] for p in (node.dir / "log").glob("*.log"))
        node.shutdown()
        pytest.fail(f"could not start a private RabbitMQ node: {e}\n{getattr(e, 'stderr', '')}\n{log}")
    yield node
    node.shutdown()
