#!/usr/bin/env python3
"""Subscribe to the OKR platform's events and print them — a standalone consumer.

It needs only kombu and the Python code generated from protos/okr/v1/events.proto
(`make proto`, or `python -m grpc_tools.protoc -I protos --python_out=. protos/okr/v1/events.proto`
in your own project); nothing else of the platform. See docs/events.md.

    python examples/consumer.py                                  # every event, a fresh queue
    python examples/consumer.py --queue my-service.okr --bind okr.v1.CheckInRecorded
    python examples/consumer.py --max-messages 10 --json

Delivery is at least once: a redelivered event has the same event_id and position, so
a consumer that remembers what it applied (in the same transaction as its own change)
applies each event once. This example dedupes in memory to show the idea.
"""

import argparse
import json
import sys

from google.protobuf import json_format
from kombu import Connection, Exchange, Queue

from okr.v1 import events_pb2

EXCHANGE = Exchange("okr.events", type="topic", durable=True)


def describe(envelope: events_pb2.EventEnvelope) -> dict:
    """The envelope as a dict, its payload unpacked into the typed message when known."""
    out = json_format.MessageToDict(envelope, preserving_proto_field_name=True)
    type_name = envelope.payload.TypeName()
    message_class = getattr(events_pb2, type_name.rsplit(".", 1)[-1], None) if type_name else None
    if message_class is not None:
        payload = message_class()
        envelope.payload.Unpack(payload)
        out["payload"] = json_format.MessageToDict(payload, preserving_proto_field_name=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--amqp-uri", default="amqp://guest:guest@localhost:5672/")
    p.add_argument("--exchange", default=EXCHANGE.name)
    p.add_argument("--queue", default="", help="durable queue name (default: an exclusive, auto-deleted queue)")
    p.add_argument("--bind", action="append", help="routing key(s) to bind (default okr.v1.#: everything)")
    p.add_argument("--max-messages", type=int, default=0, help="stop after this many (0: run until Ctrl-C)")
    p.add_argument("--timeout", type=float, default=0, help="stop after this many idle seconds (0: never)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    args = p.parse_args(argv)

    exchange = Exchange(args.exchange, type="topic", durable=True)
    bindings = args.bind or ["okr.v1.#"]
    seen: set[str] = set()
    count = 0

    with Connection(args.amqp_uri) as conn:
        queue_kw = dict(durable=True) if args.queue else dict(exclusive=True, auto_delete=True, durable=False)
        queues = [Queue(args.queue or "", exchange=exchange, routing_key=key, **queue_kw) for key in bindings]

        def on_message(body, message):
            nonlocal count
            envelope = events_pb2.EventEnvelope()
            try:
                envelope.ParseFromString(body)
            except Exception as e:  # not an EventEnvelope: do not lose it silently
                print(f"undecodable message {message.properties.get('message_id')}: {e}", file=sys.stderr)
                message.reject(requeue=False)
                return
            if envelope.event_id in seen:  # a redelivery: already handled
                message.ack()
                return
            seen.add(envelope.event_id)
            if args.json:
                print(json.dumps(describe(envelope)), flush=True)
            else:
                payload = describe(envelope).get("payload", {})
                print(f"#{envelope.position} {envelope.event_type} tenant={envelope.tenant_id} "
                      f"stream={envelope.stream_id}@{envelope.stream_version} actor={envelope.actor} "
                      f"{json.dumps(payload, ensure_ascii=False)}", flush=True)
            message.ack()
            count += 1

        with conn.Consumer(queues, callbacks=[on_message], accept=["application/x-protobuf"], prefetch_count=100):
            idle = 0.0
            while not args.max_messages or count < args.max_messages:
                try:
                    conn.drain_events(timeout=1)
                    idle = 0.0
                except TimeoutError:
                    idle += 1
                    if args.timeout and idle >= args.timeout:
                        break
                except KeyboardInterrupt:
                    break
    return 0


if __name__ == "__main__":
    sys.exit(main())
