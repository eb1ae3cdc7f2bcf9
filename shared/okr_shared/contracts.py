"""The okr.v1 event contracts in Python: which event types exist, and how a payload moves
between its typed protobuf message, the JSON object the event store keeps, and the
``EventEnvelope`` published on the bus and returned by ``StreamEvents``.

The registry is derived from the generated code: a message of protos/okr/v1/events.proto
is a domain event exactly when it carries the ``(okr.v1.event)`` option, and its event
type is its fully-qualified name (``okr.v1.CheckInRecorded``). docs/contracts.md has the
catalogue and the evolution rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from okr.v1 import events_pb2

from .protojson import Codec

if TYPE_CHECKING:  # only a type: consumers of the contracts need no event store
    from .eventstore.model import RecordedEvent

__all__ = [
    "EVENT_TYPES",
    "EventEnvelope",
    "UnknownEventType",
    "envelope_from_recorded",
    "envelope_header",
    "event_type_of",
    "history_what",
    "message_class",
    "payload_from_dict",
    "payload_to_dict",
    "stream_id_for",
    "unpack_payload",
]

EventEnvelope = events_pb2.EventEnvelope

#: Prefix of the ``type_url`` of a payload packed into ``EventEnvelope.payload``.
TYPE_URL_PREFIX = "type.googleapis.com/"

#: Metadata keys of a stored event that the envelope carries as fields of its own.
_METADATA_FIELDS = ("actor", "correlation_id", "causation_id", "reason")


class UnknownEventType(KeyError):
    """The event type is not a domain event of the okr.v1 contracts."""

    def __init__(self, event_type: str):
        super().__init__(event_type)
        self.event_type = event_type

    def __str__(self) -> str:
        return (
            f"unknown event type {self.event_type!r}: not a domain event of the okr.v1 "
            f"contracts (known: {', '.join(sorted(EVENT_TYPES))})"
        )


def _domain_events() -> dict[str, type[Message]]:
    registry = {}
    for name, descriptor in events_pb2.DESCRIPTOR.message_types_by_name.items():
        if descriptor.GetOptions().HasExtension(events_pb2.event):
            registry[descriptor.full_name] = getattr(events_pb2, name)
    return registry


#: event type (fully-qualified message name) → generated message class, for every
#: domain event; EventEnvelope and the helper messages are not in it.
EVENT_TYPES: Mapping[str, type[Message]] = MappingProxyType(_domain_events())


#: ``HistoryEntry.what`` (audit.proto, ``GetHistory``) of each event type: the read
#: models' word for the fact — the reporting history rows of key result and initiative
#: streams use the same words (docs/reporting.md ``history.what``; a unit test checks
#: them against the fold). The table of docs/api.md "GetHistory" lists them.
HISTORY_WHAT: Mapping[str, str] = MappingProxyType({
    "okr.v1.CyclePlanned": "planned", "okr.v1.CycleActivated": "activated",
    "okr.v1.CycleMovedToReview": "moved_to_review", "okr.v1.CycleClosed": "closed",
    "okr.v1.ObjectiveCreated": "created", "okr.v1.ObjectiveAligned": "aligned",
    "okr.v1.ObjectiveRealigned": "realigned", "okr.v1.ObjectiveRestated": "restated",
    "okr.v1.ObjectiveArchived": "archived",
    "okr.v1.KeyResultDefined": "defined", "okr.v1.KeyResultTargetAdjusted": "adjusted",
    "okr.v1.KeyResultOwnerAssigned": "owner_assigned", "okr.v1.KeyResultArchived": "archived",
    "okr.v1.CheckInRecorded": "check_in", "okr.v1.CheckInCorrected": "correction",
    "okr.v1.InitiativeCreated": "created", "okr.v1.InitiativeStarted": "started",
    "okr.v1.InitiativeCompleted": "completed", "okr.v1.InitiativeDropped": "dropped",
    "okr.v1.InitiativeSlipped": "slipped",
    "okr.v1.PersonAdded": "added", "okr.v1.PersonDetailsChanged": "details_changed",
    "okr.v1.PersonManagerAssigned": "manager_assigned", "okr.v1.PersonDeactivated": "deactivated",
    "okr.v1.PersonReactivated": "reactivated", "okr.v1.RoleGranted": "role_granted",
    "okr.v1.RoleRevoked": "role_revoked",
    "okr.v1.TeamCreated": "created", "okr.v1.TeamRenamed": "renamed", "okr.v1.TeamMoved": "moved",
    "okr.v1.TeamMemberAdded": "member_added", "okr.v1.TeamMemberRemoved": "member_removed",
    "okr.v1.TeamLeadAssigned": "lead_assigned", "okr.v1.TeamLeadRemoved": "lead_removed",
    "okr.v1.TeamArchived": "archived",
})


def history_what(event_type: str) -> str:
    """``HISTORY_WHAT`` of ``event_type``; for a type outside the contracts (written by a
    test or a tool) the last part of its name."""
    return HISTORY_WHAT.get(event_type) or event_type.rpartition(".")[2]


def message_class(event_type: str) -> type[Message]:
    """The generated message class of ``event_type``; raises UnknownEventType (a
    KeyError) when it is not a domain event."""
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise UnknownEventType(event_type) from None


def event_type_of(message: Message) -> str:
    """The event type of a payload message, e.g. ``okr.v1.CheckInRecorded``; raises
    UnknownEventType when the message is not a domain event."""
    event_type = message.DESCRIPTOR.full_name
    message_class(event_type)
    return event_type


def stream_id_for(message: Message) -> str:
    """The id of the stream ``message`` is appended to, as its ``(okr.v1.event)`` option
    says, e.g. ``kr-<key_result_id>`` for a CheckInRecorded. Raises ValueError when the
    payload's stream key field is empty."""
    event_type_of(message)
    options = message.DESCRIPTOR.GetOptions().Extensions[events_pb2.event]
    key = getattr(message, options.stream_key_field)
    if not key:
        raise ValueError(
            f"{message.DESCRIPTOR.full_name}.{options.stream_key_field} is empty: "
            f"cannot name its {options.stream_category!r} stream"
        )
    return f"{options.stream_category}-{key}"


#: The payloads' JSON conversion, compiled per message type (okr_shared.protojson).
_codec = Codec()


def payload_to_dict(message: Message) -> dict[str, Any]:
    """The JSON object the store keeps for a payload: protobuf's JSON mapping with the
    proto field names (``key_result_id``, enum values by name). Fields without presence
    are written even at their default (``"confidence": 0``) so a stored event reads the
    same to a person or a non-protobuf tool as to a protobuf reader."""
    event_type_of(message)
    return _codec.to_dict(message)  # = json_format.MessageToDict with those options


def payload_from_dict(event_type: str, data: Mapping[str, Any]) -> Message:
    """Parse a stored JSON payload into the message of ``event_type``.

    Fields and enum values this version of the contracts does not know are ignored, so
    events written by a newer writer still parse (forward compatibility). Raises
    UnknownEventType for an unknown type and ``json_format.ParseError`` for a payload
    that does not fit the schema (e.g. a string where a number belongs).
    """
    # = json_format.ParseDict(data, message, ignore_unknown_fields=True), compiled
    return _codec.from_dict(message_class(event_type), data)


def envelope_header(event: RecordedEvent) -> EventEnvelope:
    """The EventEnvelope of a stored event without its payload: the row's fields and
    the metadata's actor, correlation id, causation id and reason. (The relay sends
    this for an event type outside the contracts rather than block the outbox.)"""
    metadata = event.metadata
    envelope = EventEnvelope(
        event_id=event.event_id,
        event_type=event.event_type,
        schema_version=event.schema_version,
        tenant_id=event.tenant_id,
        stream_id=event.stream_id,
        stream_version=event.stream_version,
        position=event.position,
        hash=event.hash,
        **{key: str(metadata.get(key) or "") for key in _METADATA_FIELDS},
    )
    envelope.recorded_at.FromMicroseconds(event.recorded_at_us)
    return envelope


def envelope_from_recorded(event: RecordedEvent) -> EventEnvelope:
    """The EventEnvelope of a stored event: ``envelope_header`` plus the payload packed
    into ``Any``. Raises UnknownEventType when the event type is not a domain event."""
    envelope = envelope_header(event)
    envelope.payload.Pack(payload_from_dict(event.event_type, event.data), TYPE_URL_PREFIX)
    return envelope


def unpack_payload(envelope: EventEnvelope) -> Message:
    """The typed domain event inside an envelope. Raises UnknownEventType for an event
    type this version of the contracts does not know, and ValueError when the payload's
    type_url disagrees with ``event_type``."""
    message = message_class(envelope.event_type)()
    if not envelope.payload.Unpack(message):
        raise ValueError(
            f"envelope {envelope.event_id}: payload type {envelope.payload.type_url!r} "
            f"does not match event type {envelope.event_type!r}"
        )
    return message
