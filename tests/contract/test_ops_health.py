"""gRPC health (``grpc.health.v1.Health``) as probes and load balancers use it
(docs/api.md "Health and reflection"): ``Check``, ``Watch`` and ``List`` answer without
credentials; each public service and the overall status ``""`` are listed; and a
dependency that cannot be reached turns the services that need it NOT_SERVING, and
SERVING again once it is back.

The outage: a second gateway of the running suite (as a deployment runs replicas) whose
``AMQP_URI`` goes through a TCP proxy of the test (tcp_proxy.py); stopping the proxy
closes its listener and every connection — RabbitMQ itself, shared with everyone, is
never touched. (The event store's outages, PostgreSQL through a proxy and a SQLite file gone,
are in tests/integration/gateway/test_health_outages.py: `make run`'s SQLite store is
open in every process of the suite.)"""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import eventlet
import grpc
import pytest
from grpc_health.v1 import health_pb2 as h, health_pb2_grpc

from .contract_suite import AMQP_URI, auth, code_of
from okr.v1 import audit_pb2, directory_pb2, goal_pb2, goal_pb2_grpc, progress_pb2, reporting_pb2, stream_pb2
from tests.tcp_proxy import TcpProxy
from tests.waiting import free_port, terminate, wait_until

DRIVER = str(Path(__file__).with_name("ops_grpc_driver.py"))
PUBLIC = sorted(s.full_name for m in (goal_pb2, progress_pb2, reporting_pb2, audit_pb2, stream_pb2, directory_pb2)
                for s in m.DESCRIPTOR.services_by_name.values())
S, N = h.HealthCheckResponse.SERVING, h.HealthCheckResponse.NOT_SERVING


def check(channel, service: str, metadata=()):
    """The status of ``service`` (or the refusal's code)."""
    try:
        return health_pb2_grpc.HealthStub(channel).Check(h.HealthCheckRequest(service=service), timeout=5,
                                                         metadata=metadata).status
    except grpc.RpcError as e:
        return e.code()


def listed(channel) -> dict:
    response = health_pb2_grpc.HealthStub(channel).List(h.HealthListRequest(), timeout=5)
    return {name: s.status for name, s in response.statuses.items()}


class Watch:
    """``Health/Watch`` of one service from a plain process (ops_grpc_driver.py); ``seen``:
    the statuses in the order they arrived."""

    def __init__(self, address: str, service: str):
        request = base64.b64encode(h.HealthCheckRequest(service=service).SerializeToString()).decode()
        self.process = subprocess.Popen([sys.executable, DRIVER, address, "/grpc.health.v1.Health/Watch", "server",
                                         "300"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.process.stdin.write(request)
        self.process.stdin.close()
        self.seen: list[int] = []
        self.reader = eventlet.spawn(self._read)

    def _read(self):
        for line in self.process.stdout:
            if line.startswith("status "):
                return
            self.seen.append(h.HealthCheckResponse.FromString(base64.b64decode(line)).status)

    def changes(self) -> list[int]:
        return [s for i, s in enumerate(self.seen) if i == 0 or self.seen[i - 1] != s]

    def stop(self):
        self.process.kill()
        self.process.wait()
        self.reader.wait()


# ------------------------------------------------------------ the shared suite


def test_list_names_every_public_service_and_the_server_all_serving(suite):
    assert listed(suite.channel) == {name: S for name in PUBLIC + [""]}
    for name in PUBLIC + [""]:
        assert check(suite.channel, name) == S, name
    assert check(suite.channel, "okr.v1.NoSuchService") == grpc.StatusCode.NOT_FOUND


def test_health_needs_no_credentials_and_ignores_a_wrong_one_while_the_api_refuses_both(suite):
    bogus = auth("not-a-key")
    assert check(suite.channel, "") == S
    assert check(suite.channel, "okr.v1.GoalService", metadata=bogus) == S
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    for metadata in ((), bogus):
        assert code_of(goals.GetCycle, goal_pb2.GetCycleRequest(cycle_id="c"), metadata=metadata,
                       timeout=10) == grpc.StatusCode.UNAUTHENTICATED


def test_watch_answers_the_current_status_at_once(suite):
    watch = Watch(suite.gateway, "okr.v1.ReportingService")
    try:
        wait_until(lambda: watch.seen, timeout=30, message="the first Watch answer")
        assert watch.seen[0] == S
    finally:
        watch.stop()


# ----------------------------------- a broker outage, a second gateway replica


class Replica:
    """A second gateway of the running suite (``python -m okr_services.gateway``, what
    `make gateway` runs — a replica as Kubernetes runs two), on the suite's data folder,
    reaching RabbitMQ through ``proxy``."""

    def __init__(self, suite, proxy: TcpProxy, log: Path):
        broker = urlsplit(AMQP_URI)
        via = broker._replace(netloc=f"{broker.netloc.rpartition('@')[0]}@127.0.0.1:{proxy.port}").geturl()
        self.address = f"127.0.0.1:{free_port()}"
        self.log = log
        env = suite.command_env(AMQP_URI=via, OKR_GATEWAY_ADDRESS=self.address, OKR_METRICS_PORT="0",
                                OKR_GATEWAY_HEALTH_INTERVAL_S="0.25")
        self.process = subprocess.Popen([sys.executable, "-m", "okr_services.gateway"], env=env,
                                        stdout=open(log, "w"), stderr=subprocess.STDOUT)
        self.channel = grpc.insecure_channel(self.address)
        wait_until(lambda: check(self.channel, "") == S or self.process.poll() is not None, timeout=60,
                   interval=0.2, message="the second gateway serving")
        assert self.process.poll() is None, log.read_text()

    def stop(self):
        self.channel.close()
        terminate(self.process)


@pytest.fixture
def replica(suite, tmp_path):
    """(replica, proxy): the proxy between the replica and RabbitMQ is running."""
    broker = urlsplit(AMQP_URI)
    proxy = TcpProxy(broker.hostname or "127.0.0.1", broker.port or 5672)
    proxy.start()
    running = None
    try:
        running = Replica(suite, proxy, tmp_path / "gateway.log")
        yield running, proxy
    finally:
        if running is not None:
            running.stop()
        proxy.stop()


def test_without_the_broker_every_service_is_not_serving_and_serving_once_it_is_back(suite, replica):
    gateway, proxy = replica
    everything = PUBLIC + [""]
    assert listed(gateway.channel) == {name: S for name in everything}
    whole, goal = Watch(gateway.address, ""), Watch(gateway.address, "okr.v1.GoalService")
    try:
        wait_until(lambda: whole.seen and goal.seen, timeout=30, message="the first Watch answers")

        proxy.stop()
        wait_until(lambda: listed(gateway.channel) == {name: N for name in everything}, timeout=60,
                   interval=0.1, message="every service NOT_SERVING while RabbitMQ is unreachable")
        assert {name: check(gateway.channel, name) for name in everything} == {name: N for name in everything}
        assert check(suite.channel, "") == S  # the suite's own gateway still reaches it

        proxy.start()
        wait_until(lambda: listed(gateway.channel) == {name: S for name in everything}, timeout=60,
                   interval=0.1, message="every service SERVING once RabbitMQ is back")
        wait_until(lambda: whole.changes() == [S, N, S] and goal.changes() == [S, N, S], timeout=30,
                   message=f"each Watch to see the outage and the recovery (seen {whole.seen}, {goal.seen})")
    finally:
        whole.stop()
        goal.stop()
