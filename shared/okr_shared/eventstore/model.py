"""Value types of the event store API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, NamedTuple

from .canonical import loads


class _ExpectedVersionSentinel:
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: The append succeeds whatever the stream's version (no concurrency check).
ANY = _ExpectedVersionSentinel("ANY")
#: The append succeeds only if the stream does not exist yet (same as 0).
NO_STREAM = _ExpectedVersionSentinel("NO_STREAM")
#: The append succeeds only if the stream already exists, whatever its version.
STREAM_EXISTS = _ExpectedVersionSentinel("STREAM_EXISTS")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append. ``data`` and ``metadata`` must be JSON objects.

    ``event_id`` defaults to a fresh UUID; pass your own to make a retried append
    idempotent. ``metadata`` carries actor, correlation_id, causation_id and reason.
    """

    event_type: str
    data: Mapping[str, Any]
    tenant_id: str
    event_id: uuid.UUID | str = field(default_factory=uuid.uuid4)
    schema_version: int = 1
    metadata: Mapping[str, Any] = field(default_factory=dict)


class RecordedEvent(NamedTuple):
    """An event as stored: with its global position, stream version and chain hash.

    ``data_json``/``metadata_json`` are the exact stored bytes (decoded as UTF-8) that
    the hash covers; ``data``/``metadata`` are their parsed form.
    """

    position: int
    tenant_id: str
    stream_id: str
    stream_version: int
    event_id: str
    event_type: str
    schema_version: int
    data_json: str
    metadata_json: str
    recorded_at_us: int
    hash: str

    @property
    def data(self) -> dict:
        return loads(self.data_json)

    @property
    def metadata(self) -> dict:
        return loads(self.metadata_json)

    @property
    def recorded_at(self) -> datetime:
        return datetime.fromtimestamp(self.recorded_at_us / 1_000_000, tz=timezone.utc)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Outcome of append(): the stream's version after the append and the positions
    of the batch. ``already_stored`` is True for an idempotent retry that wrote nothing."""

    stream_id: str
    stream_version: int
    first_position: int
    last_position: int
    already_stored: bool = False


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of verify(). ``ok`` is False when a problem was found; then
    ``position``/``event_id`` name the first event at fault and ``problem`` says why.

    With an anchor, ``anchor_position`` is the position of the event whose recomputed
    hash is the anchor and ``anchor_event_count`` the tenant's events from its first
    through that one (both None when the anchor was not reached); they are set even when
    the chain is broken *after* the anchor (the history up to it is still proven).
    ``chain_head`` is the tenant's stored head the chain was compared with (tenant
    verifications that got that far), the value to anchor after a successful check.
    """

    ok: bool
    events_checked: int
    tenants_checked: int
    position: int | None = None
    event_id: str | None = None
    tenant_id: str | None = None
    problem: str | None = None
    anchor_position: int | None = None
    anchor_event_count: int | None = None
    chain_head: dict | None = None

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.events_checked} events in {self.tenants_checked} tenant(s)"
        return (
            f"chain BROKEN at position {self.position} (event {self.event_id}, tenant "
            f"{self.tenant_id}): {self.problem}"
        )
