"""The gateway's health follows its dependencies (okr_services.gateway.health): the
gateway process runs with its broker (AMQP_URI) and its PostgreSQL event store
(OKR_DATABASE_URL) reached through TCP proxies of the test's own (tcp_proxy.py; the
shared servers are never stopped). Stopping a proxy closes its listener and every live
connection: the services that need that dependency turn NOT_SERVING — Check, List and
Watch all say so — and SERVING again once the proxy is back on the same port. A SQLite
store is unreachable when its file is gone."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit

import eventlet
import eventlet.tpool
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import make_url

from .gateway_fixtures import ROOT
from tests.infra import AMQP_URI, Databases, require_broker
from okr_services.gateway import auth
from okr_shared.db import migrate as db_migrate
from okr_shared.eventstore import make_engine, migrate
from tests.tcp_proxy import TcpProxy
from tests.waiting import free_port, terminate, wait_until

S, N = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING
RPC_SERVICES = ["okr.v1.GoalService", "okr.v1.ProgressService", "okr.v1.ReportingService", "okr.v1.DirectoryService"]
STORE_SERVICES = ["okr.v1.AuditService", "okr.v1.EventStream"]
ALL = RPC_SERVICES + STORE_SERVICES + [""]


class Gateway:
    """``python -m okr_services.gateway`` on a port of its own, health checked every 0.2 s."""

    def __init__(self, tmp_path, amqp_uri: str, store_url: str):
        keys_url = f"sqlite:///{tmp_path}/keys.db"
        engine = make_engine(keys_url)
        db_migrate(engine, "gateway_keys")
        engine.dispose()
        self.address = f"127.0.0.1:{free_port()}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_JWT_", "OKR_GATEWAY_"))}
        env.update(OKR_GATEWAY_ADDRESS=self.address, AMQP_URI=amqp_uri, OKR_DATABASE_URL=store_url,
                   OKR_GATEWAY_DATABASE_URL=keys_url, OKR_GATEWAY_HEALTH_INTERVAL_S="0.2", OKR_METRICS_PORT="0",
                   PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "shared"), os.path.join(ROOT, "services")]))
        self.log_path = tmp_path / "gateway.log"
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen([sys.executable, "-m", "okr_services.gateway"], env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT)
        self.channel = eventlet.tpool.execute(grpc.insecure_channel, self.address)
        self.stub = health_pb2_grpc.HealthStub(self.channel)
        wait_until(lambda: self.check("") == S, timeout=60, interval=0.2, message=f"the gateway on {self.address}")

    def check(self, service: str):
        def run():
            try:
                return self.stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status
            except grpc.RpcError as e:
                return e.code()
        return eventlet.tpool.execute(run)

    def list(self) -> dict:
        response = eventlet.tpool.execute(self.stub.List, health_pb2.HealthListRequest(), timeout=2)
        return {name: r.status for name, r in response.statuses.items()}

    def statuses(self) -> dict:
        return {name: self.check(name) for name in ALL}

    def watch(self, service: str) -> "Watcher":
        return Watcher(self.address, service)

    def close(self) -> None:
        eventlet.tpool.execute(self.channel.close)
        terminate(self.process)
        self.log.close()


class Watcher:
    """Health/Watch of one service, read by a plain process (grpc's streaming iterator
    must not run on this process's green threads), one status per line; ``seen`` is the
    statuses as they arrived."""

    SCRIPT = ("import sys, grpc\n"
              "from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g\n"
              "channel = grpc.insecure_channel(sys.argv[1])\n"
              "for r in g.HealthStub(channel).Watch(h.HealthCheckRequest(service=sys.argv[2]), timeout=300):\n"
              "    print(r.status, flush=True)\n")

    def __init__(self, address: str, service: str):
        self.seen: list[int] = []
        self.process = subprocess.Popen([sys.executable, "-c", self.SCRIPT, address, service],
                                        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.reader = eventlet.spawn(self._read)

    def _read(self):
        for line in self.process.stdout:
            self.seen.append(int(line))

    def changes(self) -> list[int]:
        out = []
        for status in self.seen:
            if not out or out[-1] != status:
                out.append(status)
        return out

    def cancel(self):
        self.process.kill()
        self.process.wait()
        self.reader.wait()


def wait_for(gateway: Gateway, expected: dict, message: str) -> None:
    wait_until(lambda: gateway.statuses() == expected, timeout=30, interval=0.1, message=message)


@pytest.fixture
def postgres_store(tmp_path):
    databases = Databases("postgres", tmp_path, prefix="gw_health")
    url = databases.new("store")
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    databases.drop()


@pytest.mark.postgres
def test_store_and_broker_outages_turn_their_services_not_serving_and_back(tmp_path, postgres_store):
    require_broker()
    amqp = urlsplit(AMQP_URI)
    store = make_url(postgres_store)
    broker_proxy = TcpProxy(amqp.hostname or "127.0.0.1", amqp.port or 5672)
    store_proxy = TcpProxy(store.host or "127.0.0.1", store.port or 5432)
    broker_proxy.start()
    store_proxy.start()
    gateway = None
    watchers = []
    try:
        via_proxy = amqp._replace(netloc=f"{amqp.netloc.rpartition('@')[0]}@127.0.0.1:{broker_proxy.port}")
        gateway = Gateway(tmp_path, via_proxy.geturl(),
                          store.set(host="127.0.0.1", port=store_proxy.port).render_as_string(hide_password=False))
        assert gateway.list() == {name: S for name in ALL}
        whole, goal, audit = gateway.watch(""), gateway.watch("okr.v1.GoalService"), gateway.watch(
            "okr.v1.AuditService")
        watchers += [whole, goal, audit]
        wait_until(lambda: whole.seen and goal.seen and audit.seen, timeout=10, message="the first Watch answers")

        store_proxy.stop()
        wait_for(gateway, {**{name: S for name in RPC_SERVICES}, **{name: N for name in STORE_SERVICES}, "": N},
                 "the store's services NOT_SERVING, the others SERVING")
        assert gateway.list() == gateway.statuses()
        store_proxy.start()
        wait_for(gateway, {name: S for name in ALL}, "everything SERVING once the store is back")

        broker_proxy.stop()
        wait_for(gateway, {name: N for name in ALL}, "every service NOT_SERVING without the broker")
        broker_proxy.start()
        wait_for(gateway, {name: S for name in ALL}, "everything SERVING once the broker is back")

        wait_until(lambda: whole.changes() == [S, N, S, N, S] and goal.changes() == [S, N, S]
                   and audit.changes() == [S, N, S, N, S], timeout=10,
                   message=f"the Watch streams to see each change (seen: {whole.seen}, {goal.seen}, {audit.seen})")
    except BaseException:
        if gateway is not None:
            print(gateway.log_path.read_text()[-4000:])
        raise
    finally:
        for w in watchers:
            w.cancel()
        if gateway is not None:
            gateway.close()
        broker_proxy.stop()
        store_proxy.stop()


def test_a_sqlite_store_is_unreachable_while_its_file_is_gone(tmp_path):
    require_broker()
    path = tmp_path / "events.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    gateway = Gateway(tmp_path, AMQP_URI, url)
    try:
        moved = path.rename(tmp_path / "events.db.moved")
        wait_until(lambda: gateway.check("okr.v1.AuditService") == N and gateway.check("") == N, timeout=30,
                   interval=0.1, message="NOT_SERVING without the database file")
        assert gateway.check("okr.v1.GoalService") == S
        assert not path.exists()  # nothing created an empty store in its place
        moved.rename(path)
        wait_for(gateway, {name: S for name in ALL}, "SERVING with the file back")
    finally:
        gateway.close()
