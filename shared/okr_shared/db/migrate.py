"""The schemas of the platform's databases other than the event store, each created and
upgraded by an Alembic migration history of its own (the store's is
``okr_shared.eventstore.migrate``):

- ``consumer``: the consumer layer's offsets, processed ids and dead letters
  (``okr_shared.bus.consumer``), in every consumer's database;
- ``gateway_keys``: the gateway's API keys (``okr_services.gateway.auth``);
- ``reporting``: the reporting service's read models;
- ``notification``: the notification service's copies of the read models, its delivery
  log and its directory;
- ``directory``: the directory service's read model of people and teams
  (``okr_services.directory``).

A database may hold several of these (a consumer's database holds ``consumer`` and the
service's own), so each history has a version table of its own
(``alembic_version_<name>``). The first revision of each creates only what is missing:
a database made before the histories existed (by the old ``ensure_schema``) is adopted
as it is, its tables and rows untouched, and stamped. ``migrate`` is safe when several
instances start at once (the loser of a race retries and finds the schema current).
"""

from __future__ import annotations

import threading
import time

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, exc as sa_exc

__all__ = ["HISTORIES", "alembic_config", "migrate", "version_table"]

#: Alembic runs a migration through module-level state (``alembic.context``): two at once
#: in one process (a runner's containers start concurrently, in green threads) would mix
#: them up, so this process runs one at a time.
_ONE_AT_A_TIME = threading.Lock()

#: The migration histories, by database (the folders under okr_shared/db/migrations/).
HISTORIES = ("consumer", "gateway_keys", "reporting", "notification", "directory")


def version_table(history: str) -> str:
    """The table holding ``history``'s current revision."""
    return f"alembic_version_{history}"


def alembic_config(engine: Engine, history: str) -> Config:
    """The Alembic configuration of ``history`` on ``engine``."""
    if history not in HISTORIES:
        raise ValueError(f"unknown migration history {history!r}; one of: {', '.join(HISTORIES)}")
    cfg = Config()
    # one environment (migrations/env.py) for every history; each its own revisions
    cfg.set_main_option("script_location", "okr_shared.db:migrations")
    cfg.set_main_option("path_separator", "newline")  # the locations hold a ":"
    cfg.set_main_option("version_locations", f"okr_shared.db:migrations/{history}/versions")
    cfg.attributes["engine"] = engine
    cfg.attributes["version_table"] = version_table(history)
    return cfg


def migrate(engine: Engine, history: str, revision: str = "head") -> None:
    """Bring ``history``'s schema on ``engine`` to ``revision`` (default: the newest).
    Idempotent; another process migrating at the same moment makes ours fail once
    (a table or the version row created between our check and our CREATE / INSERT):
    the retry finds it done."""
    cfg = alembic_config(engine, history)
    for attempt in range(3):
        try:
            with _ONE_AT_A_TIME:
                command.upgrade(cfg, revision)
            return
        except (sa_exc.IntegrityError, sa_exc.ProgrammingError, sa_exc.OperationalError):
            if attempt == 2:
                raise
            time.sleep(0.05 * (attempt + 1))


def run_environment() -> None:
    """The body of the histories' ``env.py``: run the migrations on the engine that
    ``migrate`` passed in, recording the revision in the history's version table."""
    from alembic import context

    engine = context.config.attributes["engine"]
    with engine.connect() as connection:
        context.configure(connection=connection, version_table=context.config.attributes["version_table"])
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
