"""An outside consumer on the bus (docs/events.md), written with py-amqp as an
integrator would: its queue is bound to ``okr.events`` by routing key; a live event
arrives, then the documented replay (`python -m okr_services.relay replay`) brings the
same event again. The two messages are the same — routing key, body, every property,
every header — except for the documented ``okr-replayed: true`` header (and the
exchange, a replay's own, as documented), and the replay brings only what the queue's
binding keys select."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from urllib.parse import urlsplit

import amqp

from .contract_suite import AMQP_URI, auth
from okr.v1 import events_pb2, goal_pb2, goal_pb2_grpc

PLANNED = "okr.v1.CyclePlanned"


def connect() -> amqp.Connection:
    url = urlsplit(AMQP_URI)
    conn = amqp.Connection(f"{url.hostname}:{url.port or 5672}", userid=url.username or "guest",
                           password=url.password or "guest", virtual_host=(url.path or "/").lstrip("/") or "/")
    conn.connect()
    return conn


def next_message(channel, queue: str, tenant: str, timeout: float = 30.0) -> amqp.Message:
    """The next message of ``tenant`` in ``queue`` (others' events are dropped)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = channel.basic_get(queue, no_ack=True)
        if message is None:
            time.sleep(0.05)
        elif message.properties["application_headers"].get("okr-tenant") == tenant:
            return message
    raise AssertionError(f"no message of tenant {tenant} in {queue} within {timeout} s")


def test_a_replayed_event_is_the_live_message_plus_the_replayed_header(suite, tenant):
    tenant_id, key = tenant
    conn = connect()
    channel = conn.channel()
    queue = f"contract.replay-routing.{uuid.uuid4().hex[:10]}"
    channel.queue_declare(queue, durable=True, auto_delete=False)
    try:
        channel.queue_bind(queue, "okr.events", routing_key=PLANNED)
        goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
        planned = goals.PlanCycle(goal_pb2.PlanCycleRequest(
            cycle_id="2026", cadence=events_pb2.CADENCE_ANNUAL, name="2026", start_date="2026-01-01",
            end_date="2026-12-31"), metadata=auth(key), timeout=30)
        objective = goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
            objective_id="o-1", cycle_id="2026", level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Grow",
            owner="ada"), metadata=auth(key), timeout=30)
        live = next_message(channel, queue, tenant_id)

        # the documented replay, with the queue's own binding key: the objective's event
        # lies in the range but is not one the queue binds
        replay = subprocess.run(
            [sys.executable, "-m", "okr_services.relay", "replay", "--queue", queue,
             "--from-position", str(planned.first_position), "--to-position", str(objective.last_position),
             "--binding", PLANNED], env=suite.command_env(), capture_output=True, text=True, timeout=120)
        assert replay.returncode == 0, replay.stderr
        replayed = next_message(channel, queue, tenant_id)
        assert channel.basic_get(queue, no_ack=True) is None  # only the CyclePlanned came back

        assert live.delivery_info["routing_key"] == replayed.delivery_info["routing_key"] == PLANNED
        assert replayed.body == live.body
        envelope = events_pb2.EventEnvelope.FromString(replayed.body)
        assert (envelope.event_type, envelope.tenant_id, envelope.position) == (
            PLANNED, tenant_id, planned.first_position)
        live_properties, replayed_properties = dict(live.properties), dict(replayed.properties)
        live_headers = live_properties.pop("application_headers")
        replayed_headers = replayed_properties.pop("application_headers")
        assert replayed_properties == live_properties  # message_id, content_type, delivery_mode, timestamp...
        assert replayed_headers == {**live_headers, "okr-replayed": True}
        assert "okr-replayed" not in live_headers
        assert live.delivery_info["exchange"] == "okr.events"
        assert replayed.delivery_info["exchange"].startswith("okr.events.replay.")
    finally:
        channel.queue_delete(queue)
        conn.close()


def test_a_replay_to_a_queue_that_does_not_exist_says_so(suite):
    done = subprocess.run([sys.executable, "-m", "okr_services.relay", "replay", "--queue",
                           f"contract.replay-routing.none-{uuid.uuid4().hex[:8]}"], env=suite.command_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "does not exist" in done.stderr
