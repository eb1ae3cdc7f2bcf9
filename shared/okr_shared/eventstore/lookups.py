"""Look-ups of stored events by event id and by stream version, on the caller's
connection (so that several of them read one snapshot): what the command executor and
the plan importer ask before appending, to tell a retry of a stored command (the same
event ids, ADR 0024) from a new one."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import Connection, select

from . import schema

_E = schema.events

__all__ = ["ID_COLUMNS", "events_by_id", "stream_events_from"]

#: The default columns of ``events_by_id`` rows.
ID_COLUMNS = ("event_id", "stream_id", "stream_version", "position", "event_type", "metadata")


def events_by_id(conn: Connection, tenant_id: str, event_ids: Iterable[str],
                 columns: Sequence[str] = ID_COLUMNS) -> list:
    """The tenant's stored events among ``event_ids`` (in no particular order; an id
    stored by another tenant is not found), as rows of ``columns`` (attribute access by
    column name). One query on the unique event_id index."""
    return conn.execute(
        select(*(_E.c[name] for name in columns))
        .where(_E.c.tenant_id == tenant_id, _E.c.event_id.in_(tuple(event_ids)))
    ).all()


def stream_events_from(conn: Connection, tenant_id: str, stream_id: str, from_version: int,
                       limit: int) -> list:
    """Up to ``limit`` of the tenant's stream's events from ``from_version`` on, in
    version order, as rows (event_id, stream_version, position, event_type)."""
    return conn.execute(
        select(_E.c.event_id, _E.c.stream_version, _E.c.position, _E.c.event_type)
        .where(_E.c.tenant_id == tenant_id, _E.c.stream_id == stream_id, _E.c.stream_version >= from_version)
        .order_by(_E.c.stream_version)
        .limit(limit)
    ).all()
