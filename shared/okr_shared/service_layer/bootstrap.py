"""Wiring: the one place where the service layer's parts are put together."""

from __future__ import annotations

from datetime import date, datetime
from typing import Callable
from zoneinfo import ZoneInfo

from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from ..eventstore import EventStore
from ..eventstore.migrate import VERSION_TABLE, alembic_config
from ..eventstore.snapshots import SnapshotStore
from .executor import CommandExecutor, RetryPolicy
from .repository import DEFAULT_CACHE_SIZE, DEFAULT_SNAPSHOT_EVERY, Repository


class SchemaNotCurrent(RuntimeError):
    """The database's event store schema is missing or older than this code."""


def check_schema(engine: Engine) -> None:
    """Raise SchemaNotCurrent unless the event store schema is at the newest migration.
    The services check, they do not migrate: ``okr migrate`` does (ADR 0005)."""
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        raise SchemaNotCurrent(
            f"the event store schema at {url} is at revision {current or 'none (empty database)'}, "
            f"this code needs {head}: run `okr migrate` (with the same OKR_DATABASE_URL) first"
        )


def today_in(timezone: str) -> Callable[[], date]:
    """Today's date in ``timezone`` (an IANA name such as ``Europe/Berlin``)."""
    zone = ZoneInfo(timezone)
    return lambda: datetime.now(zone).date()


def command_executor(
    engine: Engine,
    *,
    today: Callable[[], date] | None = None,
    retry: RetryPolicy | None = None,
    snapshots: bool = True,
    snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
    cache_size: int = DEFAULT_CACHE_SIZE,
) -> CommandExecutor:
    """A CommandExecutor over the event store at ``engine`` (schema already migrated),
    with snapshots unless ``snapshots=False`` and the latest states of ``cache_size``
    streams kept in memory. Close with ``executor.store.close()``."""
    from .. import domain

    repository = Repository(engine, domain, SnapshotStore(engine) if snapshots else None,
                            snapshot_every=snapshot_every, cache_size=cache_size)
    kwargs = {} if today is None else {"today": today}
    return CommandExecutor(EventStore(engine), repository, domain=domain, retry=retry, **kwargs)
