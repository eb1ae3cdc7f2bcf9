"""Snapshots: the folded state of a stream at some version, so that loading a long
stream reads one row plus the events after it instead of the whole history.

A snapshot is derived data, never history: it is written after the append transaction
has committed (best-effort; a lost or failed write only costs a longer fold next time),
it never takes part in the hash chain or the export, and emptying ``es_snapshots`` is
always safe. Each row records the ``snapshot_version`` of the fold code that produced
it; a reader asks for its own version and ignores any other, so changing what a fold
means (and bumping that number) invalidates every old snapshot at once (ADR 0005).

    snapshots = SnapshotStore(engine)
    snapshots.save("kr-42", "acme", version=300, snapshot_version=1, state={...})
    snapshots.load("kr-42", snapshot_version=1, tenant_id="acme")   # -> Snapshot(version=300, ...) or None

A stream is a tenant's (ADR 0023): snapshots are keyed by (tenant_id, stream_id).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete, or_, select
from sqlalchemy.dialects import postgresql, sqlite

from ..clock import now_us
from . import schema
from .canonical import dumps, loads

_S = schema.snapshots



@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of the tenant's ``stream_id`` after its event number ``version``, as the JSON object
    the fold code's ``to_dict()`` made (``state``)."""

    stream_id: str
    tenant_id: str
    version: int
    snapshot_version: int
    state: dict[str, Any]
    taken_at_us: int


class SnapshotStore:
    """Reads and writes rows of ``es_snapshots`` (created by the event store migrations).

    Writes keep the newest snapshot per (tenant, stream): a save for a version older than the
    stored one (a slow writer losing a race) changes nothing, unless the stored row was
    made by another ``snapshot_version`` of the fold code.
    """

    def __init__(self, engine: Engine, *, clock=now_us):
        self.engine = engine
        self._clock = clock
        if engine.dialect.name == "sqlite":
            self._insert = sqlite.insert
        elif engine.dialect.name == "postgresql":
            self._insert = postgresql.insert
        else:
            raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")

    def load(
        self, stream_id: str, snapshot_version: int, *, tenant_id: str, connection: Connection | None = None
    ) -> Snapshot | None:
        """The snapshot of the tenant's stream if one was made by ``snapshot_version``,
        else None. Pass the ``connection`` of a read that follows (saves a pool round)."""
        query = select(_S.c.tenant_id, _S.c.version, _S.c.state, _S.c.taken_at_us).where(
            _S.c.tenant_id == tenant_id, _S.c.stream_id == stream_id, _S.c.snapshot_version == snapshot_version
        )
        if connection is not None:
            row = connection.execute(query).first()
        else:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        if row is None:
            return None
        return Snapshot(stream_id, row[0], row[1], snapshot_version, loads(row[2]), row[3])

    def save(
        self,
        stream_id: str,
        tenant_id: str,
        version: int,
        snapshot_version: int,
        state: Mapping[str, Any],
    ) -> bool:
        """Store ``state`` as the snapshot of the tenant's stream at ``version``. Returns False when a
        snapshot at least as new (by the same fold code) is already stored.

        One short statement in its own transaction, never inside an append: on SQLite
        it takes the write lock up front (``BEGIN IMMEDIATE``) and does not yield while
        holding it.
        """
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"version must be an integer >= 1, not {version!r}")
        values = {
            "stream_id": stream_id,
            "tenant_id": tenant_id,
            "version": version,
            "snapshot_version": snapshot_version,
            "state": dumps(state),
            "taken_at_us": self._clock(),
        }
        insert = self._insert(_S).values(**values)
        upsert = insert.on_conflict_do_update(
            index_elements=[_S.c.tenant_id, _S.c.stream_id],
            set_={k: insert.excluded[k] for k in values if k not in ("tenant_id", "stream_id")},
            where=or_(
                _S.c.version < insert.excluded.version,
                _S.c.snapshot_version != insert.excluded.snapshot_version,
            ),
        )
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with conn.begin():
                written = conn.execute(upsert).rowcount
        return written == 1

    def delete(self, stream_id: str | None = None, *, tenant_id: str | None = None) -> int:
        """Drop the snapshot of one stream of ``tenant_id``, or every snapshot (no
        stream); returns the count. Always safe: the next load folds from the events."""
        if stream_id is None:
            statement = delete(_S)
        elif tenant_id is None:
            raise ValueError("delete(stream_id) needs the stream's tenant_id")
        else:
            statement = delete(_S).where(_S.c.tenant_id == tenant_id, _S.c.stream_id == stream_id)
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with conn.begin():
                return conn.execute(statement).rowcount
