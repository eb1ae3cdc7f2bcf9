"""The gateway's RPC client (okr_services.gateway.rpc_client) against a tiny nameko
service on the real broker, whose entrypoints reply as the services' do
(okr_services.rpc.query: an error with its details).

The service runs as a nameko container in this (eventlet-patched) process; the client
runs as the gateway runs it, in a plain threaded process (rpc_client_driver.py, one
JSON command per line) — plus one check that it also works under eventlet here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import eventlet
import nameko
import pytest
from nameko.containers import get_container_cls
from nameko.extensions import DependencyProvider

from tests.infra import AMQP_URI, require_broker, delete_bus_objects
from okr_services.rpc import query
from okr_shared.domain.errors import NotFound, ValidationError
from tests.waiting import free_port

DRIVER = Path(__file__).with_name("rpc_client_driver.py")


class WorkerContext(DependencyProvider):
    def get_dependency(self, worker_ctx):
        return worker_ctx


def tiny_service(name: str):
    class Tiny:
        ctx = WorkerContext()

        @query
        def echo(self, x):
            return x

        @query
        def fail(self, field="title", message="must not be empty"):
            raise ValidationError(field, message)

        @query
        def missing(self, id):
            raise NotFound("objective", id)

        @query
        def slow(self, seconds):
            eventlet.sleep(seconds)
            return seconds

        @query
        def context(self):
            return {"data": dict(self.ctx.data), "call_id_stack": list(self.ctx.call_id_stack)}

    Tiny.name = name
    return Tiny


def start_container(name: str):
    with nameko.config.patch({"AMQP_URI": AMQP_URI}):
        container = get_container_cls()(tiny_service(name))
        container.start()
    return container


class Driver:
    def __init__(self):
        self.proc = subprocess.Popen([sys.executable, str(DRIVER), AMQP_URI], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.hello = self._read()

    def _read(self, timeout: float = 30.0) -> dict:
        with eventlet.Timeout(timeout):
            line = self.proc.stdout.readline()
        assert line, f"the driver exited ({self.proc.poll()})"
        return json.loads(line)

    def send(self, **cmd) -> dict:
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def call(self, service, method, kwargs=None, context=None, timeout=None) -> dict:
        return self.send(op="call", service=service, method=method, kwargs=kwargs, context=context, timeout=timeout)

    def close(self):
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        except Exception:  # noqa: BLE001
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def service():
    require_broker()
    name = f"tiny-{uuid.uuid4().hex[:10]}"
    container = start_container(name)
    try:
        yield name
    finally:
        container.stop()
        delete_bus_objects((f"rpc-{name}",), ())


@pytest.fixture(scope="module")
def driver(service):
    d = Driver()
    assert d.hello == {"ready": True, "eventlet": False}
    yield d
    d.close()


def test_echo_round_trip(driver, service):
    value = {"text": "héllo", "n": [1, 2.5, None, True], "nested": {"a": "b"}}
    out = driver.call(service, "echo", {"x": value})
    assert out["result"] == value, out


def test_context_data_arrives_as_nameko_context(driver, service):
    context = {"tenant_id": "acme", "actor": "alice", "correlation_id": "corr-1", "causation_id": None}
    out = driver.call(service, "context", context=context)
    data = out["result"]["data"]
    assert data["tenant_id"] == "acme" and data["actor"] == "alice" and data["correlation_id"] == "corr-1"
    assert "causation_id" not in data  # None values are not sent
    stack = out["result"]["call_id_stack"]
    assert len(stack) == 2 and stack[0].startswith("gateway-test.")  # the client's call id, then the worker's


def test_remote_error_carries_type_message_and_field(driver, service):
    out = driver.call(service, "fail", {"field": "title", "message": "must not be empty"})
    assert out["error"] == "RemoteError", out
    assert out["exc_type"] == "ValidationError"
    assert out["value"] == "title: must not be empty"
    assert out["exc_args"] == ["title: must not be empty"]
    assert out["field"] == "title"
    assert out["exc_path"] == "okr_shared.domain.errors.ValidationError"

    out = driver.call(service, "missing", {"id": "o-1"})
    assert (out["error"], out["exc_type"], out["field"]) == ("RemoteError", "NotFound", None)
    assert out["value"] == "objective 'o-1' not found"

    out = driver.call(service, "no_such_method")
    assert (out["error"], out["exc_type"]) == ("RemoteError", "MethodNotFound")


def test_timeout_raises_rpc_timeout_on_time(driver, service):
    out = driver.call(service, "slow", {"seconds": 3}, timeout=1.0)
    assert out["error"] == "RpcTimeout", out
    assert 1.0 <= out["elapsed"] < 1.5, out


def test_unknown_service_is_unavailable_at_once(driver, service):
    out = driver.call(f"nosuch-{uuid.uuid4().hex[:8]}", "echo", {"x": 1}, timeout=5.0)
    assert out["error"] == "ServiceUnavailable", out
    assert out["elapsed"] < 1.0, out


def test_stopped_service_is_unavailable_within_the_timeout(driver):
    name = f"tiny-stop-{uuid.uuid4().hex[:8]}"
    container = start_container(name)
    try:
        assert driver.call(name, "echo", {"x": 7})["result"] == 7
        container.stop()
        out = driver.call(name, "echo", {"x": 8}, timeout=3.0)
        assert out["error"] == "ServiceUnavailable", out
        assert out["elapsed"] < 3.0, out  # probed after min(1 s, timeout / 2)
    finally:
        container.stop()
        delete_bus_objects((f"rpc-{name}",), ())


def test_concurrent_calls_get_their_own_replies(driver, service):
    out = driver.send(op="concurrent", service=service, n=200, threads=16)
    assert out["n"] == 200 and out["wrong_count"] == 0, out


def test_survives_severed_connections(driver, service):
    assert driver.send(op="sever") == {"severed": True}
    out = driver.call(service, "echo", {"x": "after"})
    assert out.get("result") == "after", out


def test_call_in_flight_when_the_connection_drops_fails_fast(driver, service):
    out = driver.send(op="sever_during", service=service, seconds=2, after=0.3, timeout=5)
    assert out["error"] == "ServiceUnavailable", out
    assert out["elapsed"] < 1.5, out
    assert driver.call(service, "echo", {"x": 1})["result"] == 1


def test_broker_unreachable_is_unavailable_after_a_bounded_wait():
    from okr_services.gateway.rpc_client import RpcClient, ServiceUnavailable

    client = RpcClient(f"amqp://guest:guest@127.0.0.1:{free_port()}/", connect_timeout=0.5, reconnect_wait=0.5)
    client.start()
    try:
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable):
            client.call("anything", "echo", {"x": 1}, timeout=5)
        assert time.monotonic() - started < 1.5
    finally:
        client.stop()


def test_also_works_under_eventlet_in_this_process(service):
    from okr_services.gateway.rpc_client import RemoteError, RpcClient

    client = RpcClient(AMQP_URI, name="gateway-green")
    client.start()
    try:
        pool = eventlet.GreenPool(8)
        results = list(pool.imap(lambda i: client.call(service, "echo", {"x": i}), range(40)))
        assert results == list(range(40))
        with pytest.raises(RemoteError) as e:
            client.call(service, "fail", {"field": "period"})
        assert e.value.field == "period"
    finally:
        client.stop()
