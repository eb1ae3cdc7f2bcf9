"""The outbox's progress in the event store: the relays' checkpoints
(``es_relay_checkpoints``, written by the holder of the lease of the same name,
``okr_shared.eventstore.lease``) and the positions the relay lag is measured from
(``okr_shared.observability.lag``). The same SQL runs on SQLite and PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, text

__all__ = ["age_of", "ensure_checkpoint", "load_checkpoint", "relay_checkpoints", "save_checkpoint", "store_head"]

_LOAD = text("SELECT position FROM es_relay_checkpoints WHERE name = :name")
_ENSURE = text(
    "INSERT INTO es_relay_checkpoints (name, position, updated_at_us) "
    "VALUES (:name, 0, :now) ON CONFLICT (name) DO NOTHING"
)
_SAVE = text("UPDATE es_relay_checkpoints SET position = :position, updated_at_us = :now WHERE name = :name")
_ALL = text("SELECT name, position FROM es_relay_checkpoints")
_HEAD = text("SELECT last_position FROM es_head")
_RECORDED_AT = text("SELECT recorded_at_us FROM es_events WHERE position = :position")


def load_checkpoint(engine: Engine, name: str) -> int:
    """Relay ``name``'s last confirmed position (0 when it never published)."""
    with engine.connect() as conn:
        position = conn.execute(_LOAD, {"name": name}).scalar()
    return position or 0


def ensure_checkpoint(conn: Connection, name: str, now_us: int) -> None:
    """Create relay ``name``'s checkpoint at 0 unless it exists (in ``conn``'s
    transaction)."""
    conn.execute(_ENSURE, {"name": name, "now": now_us})


def save_checkpoint(conn: Connection, name: str, position: int, now_us: int) -> None:
    """Set relay ``name``'s checkpoint to ``position`` (in ``conn``'s transaction)."""
    conn.execute(_SAVE, {"name": name, "position": position, "now": now_us})


def relay_checkpoints(conn: Connection) -> list[tuple[str, int]]:
    """(name, checkpoint) of every relay that ever held its lease."""
    return conn.execute(_ALL).all()


def store_head(conn: Connection) -> int:
    """The store's last assigned position (0 for an empty store)."""
    return conn.execute(_HEAD).scalar() or 0


def age_of(conn: Connection, position: int, now_us: int) -> float:
    """Seconds since the event at ``position`` was recorded (0 if there is none)."""
    recorded = conn.execute(_RECORDED_AT, {"position": position}).scalar()
    return max(0.0, (now_us - recorded) / 1e6) if recorded is not None else 0.0
