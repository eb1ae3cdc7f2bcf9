"""The gateway for real: an event store (SQLite or PostgreSQL), the outbox relay, the
goal, progress, reporting and directory services (nameko containers in this process,
names of the test's own) and the gRPC gateway in its own plain process (grpcio does not serve in an
eventlet-patched process), API keys for every role in two tenants.

The test process is eventlet-patched: every grpc client call goes through
``eventlet.tpool`` (a blocking grpc call on the hub would freeze the services that live
in this process; docs/adr/0030-…). ``World.call(stub_method, request, role=…)`` does it.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field

import eventlet.tpool
import grpc
import pytest

from tests.infra import AMQP_URI, BACKENDS, require_broker, Databases, delete_bus_objects
from okr.v1 import (audit_pb2_grpc, directory_pb2_grpc, goal_pb2_grpc, progress_pb2_grpc, reporting_pb2_grpc,
                    stream_pb2_grpc)
from okr_shared.bus.relay import Relay
from okr_shared.eventstore import EventStore, make_engine
from okr_services.gateway import auth
from tests.integration.stack import (StackNames, gateway_settings, serving, stack_databases, start_services,
                                     stop_process)
from tests.waiting import free_port, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

#: The principals of the tests, per tenant: name -> (subject, role, teams, delegated KRs).
PRINCIPALS = {
    "admin": ("ada", "admin", (), ()),
    "lead": ("lena", "lead", ("growth",), ()),
    "member": ("max", "member", (), ()),
    "viewer": ("vic", "viewer", (), ()),
    "auditor": ("aud", "auditor", (), ()),
    "service": ("svc-crm", "service", (), ("kr-delegated",)),
}


@dataclass
class StreamError:
    """A streaming call's failure, shaped like grpc.RpcError for the tests."""

    status: grpc.StatusCode
    text: str
    metadata: dict

    def code(self):
        return self.status

    def details(self):
        return self.text

    def trailing_metadata(self):
        return tuple(self.metadata.items())


@dataclass
class World:
    backend: str
    store: EventStore
    address: str
    keys: dict  # (tenant, name) -> key string
    process: subprocess.Popen
    containers: dict
    reporting_queue: str
    reporting_engine: object
    channel: grpc.Channel = None
    stubs: dict = field(default_factory=dict)

    def stub(self, name: str):
        return self.stubs[name]

    def call(self, method, request, *, tenant: str = "acme", role: str = "admin", key: str | None = None,
             timeout: float = 10.0, metadata=()):
        """Call a unary RPC in a real thread; returns (response, None) or (None, RpcError)."""
        credentials = (("authorization", f"ApiKey {key or self.keys[(tenant, role)]}"),) if key != "" else ()

        def run():
            try:
                return method(request, metadata=credentials + tuple(metadata), timeout=timeout), None
            except grpc.RpcError as e:
                return None, e

        return eventlet.tpool.execute(run)

    def stream(self, method: str, request, *, tenant: str = "acme", role: str = "admin", limit: int | None = None,
               timeout: float = 10.0, response_cls=None):
        """Read a server-streaming RPC (``method``: "/okr.v1.EventStream/StreamEvents") in a
        plain subprocess (stream_driver.py); returns (messages, None) or (messages, StreamError)."""
        job = {"method": method, "request_b64": base64.b64encode(request.SerializeToString()).decode(),
               "authorization": f"ApiKey {self.keys[(tenant, role)]}", "limit": limit, "timeout": timeout}
        done = subprocess.run([sys.executable, os.path.join(os.path.dirname(__file__), "stream_driver.py"),
                               self.address], input=json.dumps(job), capture_output=True, text=True,
                              timeout=timeout + 30)
        if done.returncode != 0:
            raise AssertionError(f"stream driver failed: {done.stderr[-2000:]}")
        out = json.loads(done.stdout.strip().splitlines()[-1])
        messages = [base64.b64decode(m) for m in out["messages"]]
        if response_cls is not None:
            messages = [response_cls.FromString(m) for m in messages]
        error = None if out["code"] == "OK" else StreamError(getattr(grpc.StatusCode, out["code"]), out["details"],
                                                               out["trailing"])
        return messages, error

    def reporting_caught_up(self, timeout: float = 20.0) -> None:
        from okr_services.reporting import storage

        head = self.store.head_position()

        def offset():
            with self.reporting_engine.connect() as conn:
                return (storage.offset_of(conn, self.reporting_queue) or 0) >= head

        wait_until(offset, timeout=timeout, message=f"reporting at {head}")


def _gateway_env(store_url: str, keys_url: str, port: int, names: StackNames) -> dict:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith(("OKR_JWT_", "OKR_GATEWAY_")):
            env.pop(k)
    env.update(AMQP_URI=AMQP_URI, OKR_DATABASE_URL=store_url, **gateway_settings(keys_url, f"127.0.0.1:{port}", names),
               PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "shared"), os.path.join(ROOT, "services")]))
    return env


@pytest.fixture(scope="module", params=BACKENDS)
def world(request, tmp_path_factory):
    require_broker()
    databases = Databases(request.param, tmp_path_factory.mktemp("gateway"), prefix="gw_test")
    dbs = stack_databases(databases)
    store = dbs.store
    keys = {}
    for tenant in ("acme", "globex"):
        for name, (subject, role, teams, delegated) in PRINCIPALS.items():
            keys[(tenant, name)], _ = auth.create_key(dbs.keys_engine, tenant, subject, role, teams=teams,
                                                      delegated_key_results=delegated)
    dbs.keys_engine.dispose()

    stack = StackNames.new("gw")
    old_env = os.environ.get("OKR_DATABASE_URL")
    os.environ["OKR_DATABASE_URL"] = dbs.store_url  # the goal and progress services' store
    containers = {}
    relay = process = channel = log = None
    reporting_engine = make_engine(dbs.reporting_url)
    try:
        start_services(containers, stack, dbs.store_url, dbs.reporting_url, dbs.directory_url)
        relay = Relay(dbs.engine, AMQP_URI, exchange=stack.exchange, poll_interval=0.01, backoff=(0.05, 0.5))
        relay.start()
        port = free_port()
        log_path = tmp_path_factory.mktemp("gateway-log") / "gateway.log"
        log = open(log_path, "w")  # a file, not a pipe nobody reads while the tests run (it would fill and block)
        process = subprocess.Popen([sys.executable, "-m", "okr_services.gateway"],
                                   env=_gateway_env(dbs.store_url, dbs.keys_url, port, stack),
                                   stdout=log, stderr=subprocess.STDOUT, text=True)
        address = f"127.0.0.1:{port}"
        channel = eventlet.tpool.execute(grpc.insecure_channel, address)
        wait_until(lambda: serving(channel), timeout=30, interval=0.2, message=f"the gateway on {address}")
        w = World(request.param, store, address, keys, process, containers, stack.queue, reporting_engine, channel)
        w.stubs = {"goal": goal_pb2_grpc.GoalServiceStub(channel),
                   "progress": progress_pb2_grpc.ProgressServiceStub(channel),
                   "reporting": reporting_pb2_grpc.ReportingServiceStub(channel),
                   "audit": audit_pb2_grpc.AuditServiceStub(channel),
                   "stream": stream_pb2_grpc.EventStreamStub(channel),
                   "directory": directory_pb2_grpc.DirectoryServiceStub(channel)}
        yield w
    finally:
        if channel is not None:
            eventlet.tpool.execute(channel.close)  # grpc's own threads: never on the hub
        if process is not None:
            stop_process(process)
            log.close()
            if request.node.session.testsfailed:
                print("gateway output:\n" + log_path.read_text()[-4000:])
        if relay is not None:
            relay.stop()
        for container in containers.values():
            container.stop()
        reporting_engine.dispose()
        store.close()
        dbs.engine.dispose()
        if old_env is None:
            os.environ.pop("OKR_DATABASE_URL", None)
        else:
            os.environ["OKR_DATABASE_URL"] = old_env
        delete_bus_objects(*stack.bus_objects())
        databases.drop()
