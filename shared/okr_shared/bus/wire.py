"""How an event looks on the bus — the one definition the relay, the consumer layer,
the docs (docs/events.md) and outside consumers agree on.

- exchange ``okr.events``: durable topic exchange;
- routing key: the event type, e.g. ``okr.v1.CheckInRecorded`` (bind ``okr.v1.#`` for
  everything, ``okr.v1.CheckIn*`` is not a topic pattern: list the types you want);
- body: a serialised ``okr.v1.EventEnvelope`` (protobuf binary),
  content type ``application/x-protobuf``, delivery mode 2 (persistent);
- ``message_id`` = event id; headers ``okr-event-type``, ``okr-tenant``, ``okr-position``
  (int), ``okr-schema-version`` (int), so a router or a dead-letter inspector can read
  them without decoding the body.

A message **replayed** from the store (``python -m okr_services.relay replay``) is the
live message — same routing key, body, properties and headers — plus one header,
``okr-replayed`` = true (``replayed``); it reaches only the queue it was replayed to,
through an exchange of that replay's own (``REPLAY_EXCHANGE_PREFIX`` + an id).
"""

from __future__ import annotations

from okr.v1.events_pb2 import EventEnvelope

EXCHANGE = "okr.events"
EXCHANGE_TYPE = "topic"
CONTENT_TYPE = "application/x-protobuf"
#: Where consumers' dead letters go (a direct exchange; each consumer queue gets its own
#: ``<queue>.dlq`` bound with its queue name as routing key).
DEAD_LETTER_EXCHANGE = "okr.events.dlx"
ALL_EVENTS = "okr.v1.#"

HEADER_EVENT_TYPE = "okr-event-type"
HEADER_TENANT = "okr-tenant"
HEADER_POSITION = "okr-position"
HEADER_SCHEMA_VERSION = "okr-schema-version"
#: Only on replayed messages (true): the one thing that tells them from live ones.
HEADER_REPLAYED = "okr-replayed"
#: A replay's own exchange: ``okr.events.replay.<id>``, bound to its one queue, deleted after.
REPLAY_EXCHANGE_PREFIX = f"{EXCHANGE}.replay."


def routing_key(event_type: str) -> str:
    """The routing key of an event type: the type itself (``okr.v1.CheckInRecorded``)."""
    return event_type


def message_properties(envelope: EventEnvelope) -> dict:
    """AMQP properties and headers of an envelope's message (kombu/py-amqp keyword names)."""
    return {
        "content_type": CONTENT_TYPE,
        "delivery_mode": 2,
        "message_id": envelope.event_id,
        "timestamp": envelope.recorded_at.seconds,
        "application_headers": {
            HEADER_EVENT_TYPE: envelope.event_type,
            HEADER_TENANT: envelope.tenant_id,
            HEADER_POSITION: envelope.position,
            HEADER_SCHEMA_VERSION: envelope.schema_version,
        },
    }


def replayed(properties: dict) -> dict:
    """The properties of a replayed message: the live message's (``message_properties``)
    plus the header ``okr-replayed: true``."""
    return {**properties, "application_headers": {**properties["application_headers"], HEADER_REPLAYED: True}}


def decode(body: bytes) -> EventEnvelope:
    """Parse a message body; raises google.protobuf.message.DecodeError on garbage."""
    envelope = EventEnvelope()
    envelope.ParseFromString(body)
    if not envelope.event_id or not envelope.position:
        from google.protobuf.message import DecodeError

        raise DecodeError("not an okr.v1.EventEnvelope: event_id or position missing")
    return envelope
