"""Configuration, in one place, from environment variables (defaults documented here
and in README.md): the library-level settings every process kind shares. The
environment is read here, and in each process kind's own configuration module
(okr_services.gateway.config, .notification.config, .reporting.config,
okr_services.run_config) — nowhere else (tests/unit/test_config_modules.py; ADR 0031).
Every function reads the environment when called, not at import.

OKR_DATA_DIR      folder of the embedded SQLite database            default ./data
OKR_DATABASE_URL  event store database (SQLAlchemy URL)             default sqlite:///$OKR_DATA_DIR/okr.db
                  production: postgresql+psycopg2://user:pass@host:5432/okr
AMQP_URI          RabbitMQ                                          default amqp://guest:guest@localhost:5672/
OKR_SQLITE_SYNCHRONOUS  SQLite durability (OFF/NORMAL/FULL/EXTRA)   default FULL
OKR_TIMEZONE      the organisation's calendar (IANA name): "today"  default UTC
OKR_MAX_WORKERS   concurrent workers per service                    default 10

and the tunables below (each function's docstring): the event store's group commit and
SQLite commits off the hub, RPC reply confirms, logs, access log, metrics endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
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


def database_url_of(variable: str, environ: Mapping[str, str] = os.environ) -> str | None:
    """The SQLAlchemy URL a consumer's own database is configured by (its ``url_env``,
    e.g. ``OKR_REPORTING_DATABASE_URL``); None when unset."""
    return environ.get(variable)


# ------------------------------------------------------------------- event store


def sqlite_synchronous(environ: Mapping[str, str] = os.environ) -> str:
    """``OKR_SQLITE_SYNCHRONOUS``: SQLite's PRAGMA synchronous (default FULL)."""
    synchronous = environ.get("OKR_SQLITE_SYNCHRONOUS", "FULL").upper()
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise ValueError(f"OKR_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}")
    return synchronous


#: The words an on/off variable accepts (any case).
_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")


def _switch_word(environ: Mapping[str, str], name: str, default: str, expected: str) -> str:
    """The on/off variable ``name`` as a lower-case word of ``_ON``/``_OFF`` (``default``
    when unset or empty; ``""`` may be a default of its own); ValueError naming it else."""
    value = (environ.get(name) or default).strip().lower()
    if value not in (*_ON, *_OFF, default):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return value


def sqlite_commit_in_thread(environ: Mapping[str, str] = os.environ) -> str:
    """``OKR_SQLITE_COMMIT_IN_THREAD``, normalised (``""`` when unset; see
    okr_shared.eventstore.transactions)."""
    return _switch_word(environ, "OKR_SQLITE_COMMIT_IN_THREAD", "", "1 or 0 (or unset)")


def eventstore_group_commit(environ: Mapping[str, str] = os.environ) -> bool:
    """``OKR_EVENTSTORE_GROUP_COMMIT``: 1 (the default) or 0."""
    return _switch_word(environ, "OKR_EVENTSTORE_GROUP_COMMIT", "1", "1 or 0") in _ON


# -------------------------------------------------------------------------- RPC


def rpc_reply_confirms(environ: Mapping[str, str] = os.environ) -> bool:
    """``OKR_RPC_REPLY_CONFIRMS`` (default 0): publish RPC replies with confirms (ADR 0014)."""
    return environ.get("OKR_RPC_REPLY_CONFIRMS", "0").strip() in _ON


# ---------------------------------------------------------------- observability

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("json", "text")


def log_format(environ: Mapping[str, str] = os.environ) -> str:
    """``OKR_LOG_FORMAT``: json (the default) or text."""
    value = (environ.get("OKR_LOG_FORMAT") or "json").strip().lower()
    if value not in LOG_FORMATS:
        raise ValueError(f"OKR_LOG_FORMAT: expected one of {', '.join(LOG_FORMATS)}, got {value!r}")
    return value


def log_level(environ: Mapping[str, str] = os.environ, default: str = "INFO") -> str:
    """``OKR_LOG_LEVEL`` (``default`` when unset or empty), validated."""
    value = (environ.get("OKR_LOG_LEVEL") or default).strip().upper()
    if value not in LOG_LEVELS:
        raise ValueError(f"OKR_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return value


def log_level_setting(environ: Mapping[str, str] = os.environ) -> str:
    """``OKR_LOG_LEVEL`` as set (default INFO), unvalidated: the relay's ``--log-level``
    default."""
    return environ.get("OKR_LOG_LEVEL", "INFO")


def access_log_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    """``OKR_ACCESS_LOG``: 1 (the default) or 0."""
    return _switch_word(environ, "OKR_ACCESS_LOG", "1", "1 or 0 (on/off)") in _ON


def metrics_address(default_port: int, environ: Mapping[str, str] = os.environ) -> tuple[str, int] | None:
    """(host, port) of the metrics endpoint from ``OKR_METRICS_PORT`` (unset:
    ``default_port``; 0 or empty: None, disabled) and ``OKR_METRICS_HOST`` (default
    0.0.0.0). ValueError naming the variable on a bad value."""
    raw = environ.get("OKR_METRICS_PORT")
    if raw is None:
        port = default_port
    else:
        raw = raw.strip()
        if raw in ("", "0"):
            return None
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            raise ValueError(f"OKR_METRICS_PORT: expected a TCP port 1-65535 (0 or empty: no endpoint), got {raw!r}")
        port = int(raw)
    if not port:
        return None
    host = (environ.get("OKR_METRICS_HOST") or "0.0.0.0").strip()
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"OKR_METRICS_HOST: expected an address to listen on, got {host!r}")
    return host, port
