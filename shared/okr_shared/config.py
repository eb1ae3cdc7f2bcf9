"""Configuration, in one place, from environment variables (defaults documented here
and in README.md).

OKR_DATA_DIR      folder of the embedded SQLite database            default ./data
OKR_DATABASE_URL  event store database (SQLAlchemy URL)             default sqlite:///$OKR_DATA_DIR/okr.db
                  production: postgresql+psycopg2://user:pass@host:5432/okr
AMQP_URI          RabbitMQ                                          default amqp://guest:guest@localhost:5672/
OKR_SQLITE_SYNCHRONOUS  SQLite durability (OFF/NORMAL/FULL/EXTRA)   default FULL
OKR_TIMEZONE      the organisation's calendar (IANA name): "today"  default UTC
OKR_MAX_WORKERS   concurrent workers per service                    default 10
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    amqp_uri: str
    timezone: str = "UTC"

    @classmethod
    def from_env(cls, environ=os.environ) -> "Settings":
        data_dir = Path(environ.get("OKR_DATA_DIR", "data")).resolve()
        return cls(
            data_dir=data_dir,
            database_url=environ.get("OKR_DATABASE_URL", f"sqlite:///{data_dir / 'okr.db'}"),
            amqp_uri=environ.get("AMQP_URI", "amqp://guest:guest@localhost:5672/"),
            timezone=environ.get("OKR_TIMEZONE", "UTC"),
        )
