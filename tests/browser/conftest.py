"""Fixtures of the browser tests: a real headless Chromium (Playwright for Python driving
Debian's ``/usr/bin/chromium``; never ``playwright install``) and the reporting stack
running for real in this process.

``stack``: a fresh SQLite event store and reporting database in tmp, an exchange, a
dead-letter exchange and queues of the test's own on the real RabbitMQ (deleted after),
the goal and progress services (nameko, RPC names of their own), the outbox relay
(publishing the store to the test's exchange) and the reporting service with its HTTP
entrypoint on a free port of 127.0.0.1 (today: the real clock, as the goal and progress
services use). ``stack.caught_up()`` waits until the reporting offset is the store head.

Environment: ``OKR_TEST_AMQP_URI`` (RabbitMQ), ``OKR_CHROMIUM`` (default /usr/bin/chromium),
``OKR_REQUIRE_BROWSER=1`` (CI: a missing Chromium or Playwright fails instead of skipping).
A missing reporting service module (``okr_services.reporting.service``) skips the test.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field

import pytest
from tests.infra import AMQP_URI, require_broker, delete_bus_objects
from tests.waiting import free_port, wait_until  # noqa: F401 - re-exported to the tests

CHROMIUM = os.environ.get("OKR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# --------------------------------------------------------------------------- browser


def _missing(reason: str):
    """No browser here: skip, unless OKR_REQUIRE_BROWSER=1 (CI, .ci/run) makes it a failure."""
    if os.environ.get("OKR_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason}; OKR_REQUIRE_BROWSER=1", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's package) under Playwright."""
    try:
        from playwright import sync_api
    except ImportError:
        _missing("Playwright for Python is not installed (pip: playwright, pinned in pyproject)")
    path = CHROMIUM if os.path.isabs(CHROMIUM) else shutil.which(CHROMIUM)
    if not path or not os.access(path, os.X_OK):
        _missing(f"Chromium not found at {CHROMIUM!r} (`make browser`: apt-get install chromium; or set OKR_CHROMIUM)")
    manager = sync_api.sync_playwright()
    p = manager.start()
    try:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, timeout=20_000)
        try:
            yield b
        finally:
            b.close()
    finally:
        # Not p.stop(): under eventlet's monkey patching (the whole suite runs patched,
        # tests/conftest.py) it waits forever for asyncio's child watcher to see the
        # driver exit. Closing the driver's stdin is enough: it exits on its own, and at
        # the latest when this process does (its pipe closes).
        try:
            manager._client._transport.request_stop()
        except Exception:  # noqa: BLE001 - best effort; the driver dies with its pipe
            pass


# ----------------------------------------------------------------------------- stack


@dataclass
class Stack:
    tenant: str
    http: str
    goal: str
    progress: str
    store: object
    reporting_engine: object
    queue: str
    clients: list = field(default_factory=list)

    def rpc(self, service: str, actor: str):
        from nameko.standalone.rpc import ClusterRpcClient

        cluster = ClusterRpcClient(context_data={"actor": actor, "tenant_id": self.tenant}, timeout=30, uri=AMQP_URI)
        proxy = cluster.start()
        self.clients.append(cluster)
        return proxy[service]

    def offset(self):
        from okr_services.reporting import storage

        with self.reporting_engine.connect() as conn:
            return storage.offset_of(conn, self.queue)

    def caught_up(self, timeout: float = 15.0) -> int:
        head = self.store.head_position()
        wait_until(lambda: (self.offset() or 0) >= head, timeout=timeout, message=f"reporting offset {head}")
        return head


@pytest.fixture
def stack(tmp_path, monkeypatch):
    service_module = pytest.importorskip(
        "okr_services.reporting.service", reason="the reporting service (okr_services.reporting.service) is not there yet")
    import nameko
    from nameko.containers import get_container_cls

    from okr_shared.bus.consumer import dead_letter_queue_name
    from okr_shared.bus.relay import Relay
    from okr_shared.eventstore import EventStore, make_engine, migrate
    from okr_services.goal.service import GoalService
    from okr_services.progress.service import ProgressService

    require_broker()

    es_url, reporting_url = f"sqlite:///{tmp_path}/okr.db", f"sqlite:///{tmp_path}/reporting.db"
    es_engine = make_engine(es_url)
    migrate(es_engine)
    store = EventStore(es_engine)
    monkeypatch.setenv("OKR_DATABASE_URL", es_url)
    monkeypatch.setenv("OKR_DATA_DIR", str(tmp_path))

    suffix = uuid.uuid4().hex[:10]
    exchange, dlx = f"okr.events.browser-{suffix}", f"okr.events.dlx.browser-{suffix}"
    goal, progress = f"goal-{suffix}", f"progress-{suffix}"
    reporting, queue = f"reporting-{suffix}", f"reporting.read-models-{suffix}"
    port = free_port()
    service = service_module.make_service(
        reporting, queue=queue, db_url=reporting_url, event_store_url=es_url, refresh_interval=3600,
        exchange=exchange, dead_letter_exchange=dlx, retry_delay=0.01, retry_max_delay=0.1)
    containers = []
    relay = None
    reporting_engine = make_engine(reporting_url)
    s = Stack("acme", f"http://127.0.0.1:{port}", goal, progress, store, reporting_engine, queue)
    try:
        with nameko.config.patch({"AMQP_URI": AMQP_URI, "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}"}):
            for cls in (type("GoalService", (GoalService,), {"name": goal}),
                        type("ProgressService", (ProgressService,), {"name": progress}),
                        service):
                container = get_container_cls()(cls)
                container.start()
                containers.append(container)
            relay = Relay(es_engine, AMQP_URI, exchange=exchange, poll_interval=0.01, backoff=(0.05, 0.5))
            relay.start()
            yield s
    finally:
        for cluster in s.clients:
            cluster.stop()
        if relay is not None:
            relay.stop()
        for container in reversed(containers):
            container.stop()
        reporting_engine.dispose()
        store.close()
        es_engine.dispose()
        delete_bus_objects((queue, dead_letter_queue_name(queue), f"rpc-{goal}", f"rpc-{progress}",
                            f"rpc-{reporting}"), (exchange, dlx))
