"""Errors raised by the event store.

Every error names the problem precisely; none leaves a partial write behind, because
each append runs in one database transaction that is rolled back on any error.
"""

from __future__ import annotations

#: Every error, all part of the package's API (``okr_shared.eventstore`` exports them).
__all__ = ["DuplicateEventIds", "EmptyBatch", "EventStoreError", "InvalidAppend", "InvalidEvent",
           "InvalidExpectedVersion", "PayloadTooLarge", "StreamNotFound", "TenantMismatch", "WrongExpectedVersion"]


class EventStoreError(Exception):
    """Base class of every event store error."""


class InvalidAppend(EventStoreError, ValueError):
    """The append request itself is malformed; nothing was written."""


class EmptyBatch(InvalidAppend):
    """append() was called without any event."""


class InvalidEvent(InvalidAppend):
    """One event of the batch is malformed (bad id, type, payload...)."""

    def __init__(self, index: int, field: str, problem: str):
        self.index = index
        self.field = field
        self.problem = problem
        super().__init__(f"event #{index}: {field}: {problem}")


class PayloadTooLarge(InvalidEvent):
    """An event's data or metadata exceeds the configured size limit."""


class InvalidExpectedVersion(InvalidAppend):
    """The expected version is neither ANY, NO_STREAM nor an integer >= 0."""


class TenantMismatch(InvalidAppend):
    """Events of one batch name different tenants (a stream is always the tenant's own:
    another tenant's stream of the same id is another stream, ADR 0023)."""


class StreamNotFound(EventStoreError, LookupError):
    """The stream does not exist (read of an unknown stream, or an append that expected it)."""

    def __init__(self, stream_id: str):
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} does not exist")


class WrongExpectedVersion(EventStoreError):
    """Optimistic concurrency conflict: the stream is not at the expected version.

    ``actual_version`` is the stream's version when the append was refused
    (0 when the stream does not exist), so the caller can reload and retry.
    """

    def __init__(self, stream_id: str, expected, actual_version: int):
        self.stream_id = stream_id
        self.expected_version = expected
        self.actual_version = actual_version
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, actual version {actual_version}"
        )


class DuplicateEventIds(EventStoreError):
    """Some (not all) event ids of the batch are already stored, or they are stored
    elsewhere than this append would put them. An idempotent retry must resend the
    exact same batch to the same stream."""
