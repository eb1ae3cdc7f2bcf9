"""Run the event store's Alembic migrations programmatically (``okr migrate``)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

#: The event store keeps its own migration history, so the services' own tables can
#: live in the same database with histories of their own.
VERSION_TABLE = "alembic_version_eventstore"


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "okr_shared.eventstore:migrations")
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the event store schema to ``revision`` (default: the newest)."""
    command.upgrade(alembic_config(engine), revision)
