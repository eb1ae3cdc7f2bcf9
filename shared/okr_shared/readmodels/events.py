"""The event the fold reads, from a bus message: ``BusEvent(envelope)``."""

from __future__ import annotations

from okr_shared.contracts import payload_to_dict, unpack_payload


class BusEvent:
    """An EventEnvelope seen as the fold's event: ``data`` is the payload exactly as the
    store keeps it (``payload_to_dict``; the relay packed it from that JSON)."""

    __slots__ = ("position", "tenant_id", "stream_id", "event_type", "data", "metadata", "recorded_at_us")

    def __init__(self, envelope):
        self.position = envelope.position
        self.tenant_id = envelope.tenant_id
        self.stream_id = envelope.stream_id
        self.event_type = envelope.event_type
        try:
            self.data = payload_to_dict(unpack_payload(envelope)) if envelope.payload.type_url else {}
        except Exception:  # noqa: BLE001 - a type outside the contracts: the fold ignores it
            self.data = {}
        self.metadata = {"actor": envelope.actor, "reason": envelope.reason,
                         "correlation_id": envelope.correlation_id, "causation_id": envelope.causation_id}
        self.recorded_at_us = envelope.recorded_at.ToMicroseconds()
