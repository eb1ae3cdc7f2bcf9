"""Observability end to end, on real processes: the goal, progress and reporting
services (nameko containers in this process, whose ``Observed`` dependency starts this
process's /metrics endpoint), the outbox relay and the gRPC gateway (each its own
process, each with its own endpoint, JSON logs to a file), the real RabbitMQ, SQLite.

Every metric is scraped over HTTP and parsed with prometheus_client's parser; the tests
assert the exact change a real call or event makes. The correlation id a gRPC caller
sends (``okr-correlation-id``) is followed into the gateway's log line, the progress
service's log line, the stored event's metadata and the reporting handler's log line.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import eventlet.tpool
import grpc
import pytest
from kombu import Connection, Exchange, Producer
from prometheus_client.parser import text_string_to_metric_families

from tests.infra import AMQP_URI, Databases, delete_bus_objects, require_broker
from okr.v1 import events_pb2, goal_pb2, goal_pb2_grpc, progress_pb2, progress_pb2_grpc
from okr_shared.bus.consumer import dead_letter_queue_name
from okr_shared.eventstore import EventStore
from okr_shared.observability import logs, server
from okr_services.gateway import auth
from tests.integration.stack import (StackNames, gateway_settings, serving, stack_databases, start_services,
                                     stop_process)
from tests.waiting import free_port, wait_until

ROOT = Path(__file__).resolve().parents[3]
PYTHONPATH = os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services")])


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(scraped: dict, name: str, **labels) -> float:
    return scraped.get((name, tuple(sorted(labels.items()))), 0.0)


class Records(logging.Handler):
    """Every record of this process, formatted as the JSON line it would be."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logs.JsonLines())
        self.lines: list[dict] = []

    def emit(self, record):
        self.lines.append(json.loads(self.format(record)))

    def find(self, **fields) -> list[dict]:
        return [line for line in self.lines if all(line.get(k) == v for k, v in fields.items())]


@dataclass
class Stack:
    store: EventStore
    address: str
    key: str
    names: dict
    queue: str
    exchange: str
    services_port: int
    relay_port: int
    gateway_port: int
    gateway_log: Path
    records: Records
    channel: grpc.Channel
    relay_env: dict
    tmp: Path
    relay: subprocess.Popen | None = None
    relay_log: Path | None = None

    def call(self, method, request, correlation_id: str | None = None):
        metadata = (("authorization", f"ApiKey {self.key}"),)
        if correlation_id:
            metadata += (("okr-correlation-id", correlation_id),)

        def run():
            try:
                return method(request, metadata=metadata, timeout=10), None
            except grpc.RpcError as e:
                return None, e

        return eventlet.tpool.execute(run)

    def start_relay(self) -> None:
        self.relay_log = self.tmp / f"relay-{time.monotonic_ns()}.log"
        self.relay = subprocess.Popen([sys.executable, "-m", "okr_services.relay", "--exchange", self.exchange,
                                       "--lease-ttl", "2"], env=self.relay_env, cwd=ROOT,
                                      stdout=open(self.relay_log, "w"), stderr=subprocess.STDOUT)

    def stop_relay(self) -> None:
        assert stop_process(self.relay) == 0, self.relay_log.read_text()[-2000:]

    def caught_up(self) -> None:
        head = self.store.head_position()
        wait_until(lambda: value(scrape(self.services_port), "okr_consumer_offset_position",
                                 consumer=self.queue) >= head, timeout=20, message=f"reporting at {head}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    require_broker()
    # this process's metrics registry is shared with the suite's other modules: the
    # scrape-time lag collector must see only this module's stores and consumers
    from okr_shared.observability import lag

    saved = lag.COLLECTOR._stores, lag.COLLECTOR._consumers
    lag.COLLECTOR._stores, lag.COLLECTOR._consumers = {}, {}
    try:
        yield from _stack(tmp_path_factory)
    finally:
        lag.COLLECTOR._stores, lag.COLLECTOR._consumers = saved


def _stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("obs")
    databases = Databases("sqlite", tmp)
    dbs = stack_databases(databases)
    store_url, engine, store = dbs.store_url, dbs.engine, dbs.store
    key, _ = auth.create_key(dbs.keys_engine, "acme", "ada", "admin")
    dbs.keys_engine.dispose()

    names = StackNames.new("obs")
    services_port, relay_port, gateway_port, grpc_port = free_port(), free_port(), free_port(), free_port()

    records = Records()
    root, access = logging.getLogger(), logging.getLogger("okr.access")
    saved_access_level = access.level
    root.addHandler(records)
    access.setLevel(logging.INFO)
    saved_env = {k: os.environ.get(k) for k in ("OKR_DATABASE_URL", "OKR_METRICS_PORT", "OKR_METRICS_HOST")}
    os.environ.update(OKR_DATABASE_URL=store_url, OKR_METRICS_PORT=str(services_port), OKR_METRICS_HOST="127.0.0.1")
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("OKR_JWT_", "OKR_GATEWAY_", "OKR_LOG_"))}
    base_env.update(AMQP_URI=AMQP_URI, OKR_DATABASE_URL=store_url, PYTHONPATH=PYTHONPATH, OKR_METRICS_HOST="127.0.0.1")
    relay_env = dict(base_env, OKR_METRICS_PORT=str(relay_port))
    gateway_env = dict(base_env, OKR_METRICS_PORT=str(gateway_port),
                       **gateway_settings(dbs.keys_url, f"127.0.0.1:{grpc_port}", names))
    containers, gateway, channel, stack_ = {}, None, None, None
    gateway_log = tmp / "gateway.log"
    try:
        start_services(containers, names, store_url, dbs.reporting_url)
        assert server.serving_port() == services_port  # started by the services' Observed dependency
        gateway = subprocess.Popen([sys.executable, "-m", "okr_services.gateway"], env=gateway_env, cwd=ROOT,
                                   stdout=open(gateway_log, "w"), stderr=subprocess.STDOUT)
        channel = eventlet.tpool.execute(grpc.insecure_channel, f"127.0.0.1:{grpc_port}")
        wait_until(lambda: serving(channel), timeout=30, interval=0.2, message="the gateway")
        stack_ = Stack(store, f"127.0.0.1:{grpc_port}", key, names.names, names.queue, names.exchange,
                       services_port, relay_port, gateway_port, gateway_log, records, channel, relay_env, tmp)
        stack_.start_relay()
        yield stack_
    finally:
        if stack_ is not None and stack_.relay is not None and stack_.relay.poll() is None:
            stack_.stop_relay()
        if channel is not None:
            eventlet.tpool.execute(channel.close)
        if gateway is not None:
            stop_process(gateway)
        for container in containers.values():
            container.stop()
        server.shutdown()
        root.removeHandler(records)
        access.setLevel(saved_access_level)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        store.close()
        engine.dispose()
        delete_bus_objects(*names.bus_objects())
        databases.drop()


@pytest.fixture(scope="module")
def kr(stack):
    """An active cycle, an objective and a key result, made through the gateway."""
    goal = goal_pb2_grpc.GoalServiceStub(stack.channel)
    today = date.today()
    for method, request in (
        (goal.PlanCycle, goal_pb2.PlanCycleRequest(cycle_id="q1", cadence=events_pb2.CADENCE_QUARTERLY, name="Q",
                                                   start_date=(today - timedelta(days=30)).isoformat(),
                                                   end_date=(today + timedelta(days=60)).isoformat())),
        (goal.ActivateCycle, goal_pb2.ActivateCycleRequest(cycle_id="q1")),
        (goal.CreateObjective, goal_pb2.CreateObjectiveRequest(objective_id="o1", cycle_id="q1", title="Grow",
                                                               level=events_pb2.OBJECTIVE_LEVEL_COMPANY, owner="ada")),
        (goal.DefineKeyResult, goal_pb2.DefineKeyResultRequest(
            key_result_id="kr1", objective_id="o1", title="Members", kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO,
            start_value=0, target_value=100, owner="ada", due_date=(today + timedelta(days=60)).isoformat())),
    ):
        _, error = stack.call(method, request)
        assert error is None, error
    return "kr1"


def check_in(stack, value: float, confidence: int = 7, correlation_id: str | None = None):
    progress = progress_pb2_grpc.ProgressServiceStub(stack.channel)
    return stack.call(progress.RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id="kr1", value=value, confidence=confidence), correlation_id=correlation_id)


def test_the_correlation_id_of_a_grpc_call_reaches_every_log_line_and_the_event(stack, kr):
    cid = f"obs-{uuid.uuid4()}"
    _, error = check_in(stack, 10, correlation_id=cid)
    assert error is None, error
    # the stored event
    event = list(stack.store.read_stream(f"kr-{kr}", tenant_id="acme"))[-1]
    assert event.event_type == "okr.v1.CheckInRecorded" and event.metadata["correlation_id"] == cid
    # the progress service's log line (this process)
    (line,) = stack.records.find(correlation_id=cid, service=stack.names["progress"], logger="okr.access")
    assert line["entrypoint"] == "record_check_in" and line["tenant_id"] == "acme" and line["outcome"] == "ok"
    assert line["kind"] == "rpc" and line["duration_ms"] > 0
    # the reporting handler's log line for that event (after the relay and the bus)
    wait_until(lambda: stack.records.find(correlation_id=cid, service=stack.names["reporting"]), timeout=20,
               message="the reporting handler's log line")
    (handled,) = stack.records.find(correlation_id=cid, service=stack.names["reporting"])
    assert handled["entrypoint"] == "on_event" and handled["event_type"] == "okr.v1.CheckInRecorded"
    assert handled["position"] == event.position and handled["tenant_id"] == "acme"

    # the gateway's log line (its own process, JSON lines in its log file)
    def gateway_lines():
        return [json.loads(x) for x in stack.gateway_log.read_text().splitlines() if x.startswith("{")]

    wait_until(lambda: any(x.get("correlation_id") == cid for x in gateway_lines()), timeout=5,
               message="the gateway's log line")
    (access,) = [x for x in gateway_lines() if x.get("correlation_id") == cid]
    assert access["entrypoint"] == "/okr.v1.ProgressService/RecordCheckIn" and access["grpc_code"] == "OK"
    assert access["service"] == "gateway" and access["logger"] == "okr.access"


def test_a_call_without_a_correlation_id_gets_one_shared_by_the_gateway_and_the_event(stack, kr):
    _, error = check_in(stack, 11)
    assert error is None, error
    event = list(stack.store.read_stream(f"kr-{kr}", tenant_id="acme"))[-1]
    cid = event.metadata["correlation_id"]
    wait_until(lambda: cid in stack.gateway_log.read_text(), timeout=5, message="the generated id in the gateway log")
    assert stack.records.find(correlation_id=cid, service=stack.names["progress"])


def test_metrics_move_by_what_one_call_and_one_refusal_do(stack, kr):
    stack.caught_up()
    services0, gateway0, relay0 = scrape(stack.services_port), scrape(stack.gateway_port), scrape(stack.relay_port)
    assert check_in(stack, 20)[1] is None
    _, refused = check_in(stack, 21, confidence=11)
    assert refused is not None and refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    stack.caught_up()
    wait_until(lambda: value(scrape(stack.relay_port), "okr_relay_events_published_total", relay=stack.exchange)
               >= value(relay0, "okr_relay_events_published_total", relay=stack.exchange) + 1, timeout=10,
               message="the relay's published counter")
    services1, gateway1, relay1 = scrape(stack.services_port), scrape(stack.gateway_port), scrape(stack.relay_port)

    def delta(before, after, name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    progress, reporting = stack.names["progress"], stack.names["reporting"]
    assert delta(services0, services1, "okr_events_appended_total", event_type="okr.v1.CheckInRecorded") == 1
    rpc = dict(service=progress, entrypoint="record_check_in", kind="rpc")
    assert delta(services0, services1, "okr_entrypoint_duration_seconds_count", outcome="ok", **rpc) == 1
    assert delta(services0, services1, "okr_entrypoint_duration_seconds_count", outcome="refused", **rpc) == 1
    assert delta(services0, services1, "okr_entrypoint_duration_seconds_sum", outcome="ok", **rpc) > 0
    event = dict(service=reporting, entrypoint="on_event", kind="event", outcome="ok")
    assert delta(services0, services1, "okr_entrypoint_duration_seconds_count", **event) == 1
    assert delta(services0, services1, "okr_consumer_events_total", consumer=stack.queue, result="applied") == 1
    head = stack.store.head_position()
    assert value(services1, "okr_consumer_offset_position", consumer=stack.queue) == head
    assert value(services1, "okr_consumer_lag_events", consumer=stack.queue) == 0
    assert value(services1, "okr_event_store_head_position") == head
    # the gateway: gRPC by code, and its RPC client by outcome
    grpc_labels = dict(grpc_service="okr.v1.ProgressService", grpc_method="RecordCheckIn")
    assert delta(gateway0, gateway1, "okr_grpc_server_duration_seconds_count", grpc_code="OK", **grpc_labels) == 1
    assert delta(gateway0, gateway1, "okr_grpc_server_duration_seconds_count", grpc_code="INVALID_ARGUMENT",
                 **grpc_labels) == 1
    client = dict(service="progress", method="record_check_in")
    assert delta(gateway0, gateway1, "okr_rpc_client_duration_seconds_count", outcome="ok", **client) == 1
    assert delta(gateway0, gateway1, "okr_rpc_client_duration_seconds_count", outcome="remote_error", **client) == 1
    # the relay process: what it published, and no lag once it did
    assert delta(relay0, relay1, "okr_relay_events_published_total", relay=stack.exchange) == 1
    assert value(relay1, "okr_relay_lag_events", relay=stack.exchange) == 0
    assert value(relay1, "okr_relay_checkpoint_position", relay=stack.exchange) == head


def test_relay_lag_rises_while_the_relay_is_stopped_and_falls_to_zero_after(stack, kr):
    stack.caught_up()
    stack.stop_relay()
    assert check_in(stack, 30)[1] is None and check_in(stack, 31)[1] is None
    time.sleep(0.3)
    scraped = scrape(stack.services_port)  # the services read the store: the lag shows with no relay up
    assert value(scraped, "okr_relay_lag_events", relay=stack.exchange) == 2
    assert value(scraped, "okr_relay_lag_seconds", relay=stack.exchange) >= 0.3
    assert value(scraped, "okr_consumer_lag_events", consumer=stack.queue) == 2  # nothing reached the consumer
    assert value(scraped, "okr_consumer_lag_seconds", consumer=stack.queue) >= 0.3
    stack.start_relay()
    wait_until(lambda: value(scrape(stack.services_port), "okr_relay_lag_events", relay=stack.exchange) == 0,
               timeout=20, message="relay lag back to 0")
    stack.caught_up()
    scraped = scrape(stack.services_port)
    assert value(scraped, "okr_relay_lag_seconds", relay=stack.exchange) == 0
    assert value(scraped, "okr_consumer_lag_events", consumer=stack.queue) == 0
    # the relay's own JSON log lines
    lines = [json.loads(x) for x in stack.relay_log.read_text().splitlines() if x.startswith("{")]
    assert any(x["msg"] == "lease acquired: publishing" and x["relay"] == stack.exchange for x in lines)


def test_a_poison_message_counts_as_dead_lettered(stack, kr):
    before = value(scrape(stack.services_port), "okr_dead_letters_total", consumer=stack.queue, reason="undecodable")
    with Connection(AMQP_URI) as conn:
        Producer(conn.default_channel, exchange=Exchange(stack.exchange, type="topic", durable=True)).publish(
            b"not a protobuf envelope", routing_key="okr.v1.CheckInRecorded", content_type="application/x-protobuf")
    wait_until(lambda: value(scrape(stack.services_port), "okr_dead_letters_total", consumer=stack.queue,
                             reason="undecodable") == before + 1, timeout=10, message="the dead-letter counter")
    with Connection(AMQP_URI) as conn:  # and it is in the dead-letter queue
        wait_until(lambda: conn.default_channel.queue_declare(dead_letter_queue_name(stack.queue),
                                                               passive=True).message_count >= 1, timeout=5)
