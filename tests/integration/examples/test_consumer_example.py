"""examples/consumer.py, the standalone subscriber for other teams, against the real broker."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

from kombu import Connection, Exchange, Producer, Queue

from okr.v1 import events_pb2
from okr_shared.bus import wire
from okr_shared.contracts import payload_to_dict

AMQP_URI = "amqp://guest:guest@127.0.0.1:5672/"
EXAMPLE = Path(__file__).parents[3] / "examples" / "consumer.py"


def envelope(position: int) -> events_pb2.EventEnvelope:
    check_in = events_pb2.CheckInRecorded(check_in_id=f"ci-{position}", key_result_id="kr-1", value=position,
                                          confidence=7, author="ana", effective_date="2026-02-01")
    env = events_pb2.EventEnvelope(event_id=str(uuid.uuid4()), event_type="okr.v1.CheckInRecorded",
                                   schema_version=1, tenant_id="acme", stream_id="kr-kr-1",
                                   stream_version=position, position=position, actor="ana")
    env.payload.Pack(check_in)
    assert payload_to_dict(check_in)["value"] == position
    return env


def test_the_example_consumer_prints_decoded_events_once_each():
    exchange_name = f"okr.events.test-{uuid.uuid4().hex[:8]}"
    queue = f"example-{uuid.uuid4().hex[:8]}"
    exchange = Exchange(exchange_name, type="topic", durable=True)
    with Connection(AMQP_URI) as conn:
        # declare the durable queue first so nothing published is missed
        Queue(queue, exchange=exchange, routing_key=wire.ALL_EVENTS, durable=True)(conn.default_channel).declare()
        producer = Producer(conn.default_channel, exchange=exchange)
        first, second = envelope(1), envelope(2)
        for env in (first, second, first):  # the third is a redelivery of the first
            props = wire.message_properties(env)
            producer.publish(env.SerializeToString(), routing_key=wire.routing_key(env.event_type),
                             headers=props.pop("application_headers"), **props)
        try:
            proc = subprocess.run(
                [sys.executable, str(EXAMPLE), "--amqp-uri", AMQP_URI, "--exchange", exchange_name,
                 "--queue", queue, "--json", "--timeout", "3"],
                capture_output=True, text=True, timeout=60,
            )
        finally:
            Queue(queue, exchange=exchange)(conn.default_channel).delete()
            exchange(conn.default_channel).delete()
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["position"] for line in lines] == ["1", "2"]
    assert lines[0]["payload"]["key_result_id"] == "kr-1" and lines[0]["payload"]["value"] == 1
    assert lines[1]["event_type"] == "okr.v1.CheckInRecorded" and lines[1]["tenant_id"] == "acme"


def test_the_example_imports_nothing_of_the_platform_but_the_generated_module():
    source = EXAMPLE.read_text()
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not [line for line in imports if "okr_shared" in line or "okr_services" in line], imports
    assert "from okr.v1 import events_pb2" in imports
