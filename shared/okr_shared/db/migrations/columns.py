"""The kinds of column that the platform's databases share, each defined once.

A tenant id, an event id, an event type or a position has one SQL type wherever it is
stored: in the event store, the consumer layer, the gateway's keys and the notification
service's tables. The revision snapshots (``tables_<revision>.py``) build their columns
from these, so the width of an identifier is written in one place. They are frozen like
the snapshots (docs/adr/0032-one-definition-per-table.md): changing a kind is a schema
change of every table that uses it, made by new revisions, never an edit here.

Each function returns a new ``Column`` (a column belongs to one table), ``NOT NULL``
unless the caller says ``nullable=True``; other keyword arguments go to ``Column``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String

#: Widths of the identifiers (characters).
TENANT_ID_LENGTH = 64
EVENT_ID_LENGTH = 36  # a UUID's text form
NAME_LENGTH = 200  # event types, stream ids, consumer (queue), relay and lease names, lease owners
HASH_LENGTH = 64  # a SHA-256 in hex


def _column(name: str, type_, kwargs: dict) -> Column:
    kwargs.setdefault("nullable", False)
    return Column(name, type_, **kwargs)


def tenant_id(name: str = "tenant_id", **kwargs) -> Column:
    """A tenant's id."""
    return _column(name, String(TENANT_ID_LENGTH), kwargs)


def event_id(name: str = "event_id", **kwargs) -> Column:
    """An event's id (a UUID)."""
    return _column(name, String(EVENT_ID_LENGTH), kwargs)


def named(name: str, **kwargs) -> Column:
    """A name of the bus or the store: an event type, a stream id, a consumer (queue), a
    relay or a lease, a lease's owner."""
    return _column(name, String(NAME_LENGTH), kwargs)


def sha256(name: str = "hash", **kwargs) -> Column:
    """A SHA-256 digest in hex."""
    return _column(name, String(HASH_LENGTH), kwargs)


def position(name: str = "position", **kwargs) -> Column:
    """A position in the event store's global order (or a count of them)."""
    return _column(name, BigInteger, kwargs)


def time_us(name: str, **kwargs) -> Column:
    """An instant in microseconds since the Unix epoch, UTC: identical on every backend
    and cheap to compare."""
    return _column(name, BigInteger, kwargs)


def checkpoint(reader: str, position_name: str = "position") -> list[Column]:
    """The columns of a checkpoint table: per named reader of the event order (a consumer,
    the outbox relay), the last position it reached, and when it got there."""
    return [named(reader, primary_key=True), position(position_name), time_us("updated_at_us")]


__all__ = ["EVENT_ID_LENGTH", "HASH_LENGTH", "NAME_LENGTH", "TENANT_ID_LENGTH", "checkpoint", "event_id", "named",
           "position", "sha256", "tenant_id", "time_us"]
