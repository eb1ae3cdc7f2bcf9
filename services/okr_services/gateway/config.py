"""The gateway process's configuration: every environment variable the gateway (and
``okr keys``, which shares its API keys' database) reads is read here, when asked
(ADR 0031; the library-level settings are okr_shared.config's).

OKR_GATEWAY_ADDRESS (0.0.0.0:50051), OKR_GATEWAY_WORKERS (32), OKR_GATEWAY_RPC_TIMEOUT
(10 s), OKR_GATEWAY_KEY_CACHE_S (5 s), OKR_GATEWAY_HEALTH_INTERVAL_S (2 s),
OKR_GATEWAY_SERVICES, OKR_GATEWAY_DATABASE_URL, OKR_API_KEY_PEPPER, OKR_JWT_*.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from okr_shared.config import Settings

from .health import DEFAULT_INTERVAL_S

if TYPE_CHECKING:
    from .auth import JwtConfig


@dataclass(frozen=True)
class GatewayConfig:
    address: str = "0.0.0.0:50051"
    amqp_uri: str = "amqp://guest:guest@localhost:5672/"
    keys_url: str = ""
    store_url: str = ""
    workers: int = 32
    rpc_timeout: float = 10.0
    key_cache_s: float = 5.0
    #: Seconds between the health checker's probes of the broker and the event store.
    health_interval: float = DEFAULT_INTERVAL_S
    #: Logical service name -> the nameko service's name, when they differ
    #: (``OKR_GATEWAY_SERVICES="goal=goal-eu,progress=progress-eu,directory=directory-eu"``).
    service_names: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_env(cls, environ=os.environ) -> "GatewayConfig":
        settings = Settings.from_env()
        return cls(address=environ.get("OKR_GATEWAY_ADDRESS", cls.address),
                   amqp_uri=settings.amqp_uri, keys_url=gateway_database_url(),
                   store_url=settings.database_url,
                   workers=int(environ.get("OKR_GATEWAY_WORKERS", cls.workers)),
                   rpc_timeout=float(environ.get("OKR_GATEWAY_RPC_TIMEOUT", cls.rpc_timeout)),
                   key_cache_s=float(environ.get("OKR_GATEWAY_KEY_CACHE_S", cls.key_cache_s)),
                   health_interval=health_interval(environ),
                   service_names=_service_names(environ.get("OKR_GATEWAY_SERVICES", "")))


def _service_names(text: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        logical, sep, actual = part.partition("=")
        if not sep or logical not in ("goal", "progress", "reporting", "directory") or not actual.strip():
            raise ValueError(f"OKR_GATEWAY_SERVICES: expected goal=<name>,progress=<name>,reporting=<name>,"
                             f"directory=<name>, got {part!r}")
        pairs.append((logical, actual.strip()))
    return tuple(pairs)


def health_interval(environ: Mapping[str, str] = os.environ) -> float:
    """``OKR_GATEWAY_HEALTH_INTERVAL_S`` (default 2): seconds between dependency checks."""
    raw = environ.get("OKR_GATEWAY_HEALTH_INTERVAL_S", "2")
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ValueError(f"OKR_GATEWAY_HEALTH_INTERVAL_S: a positive number of seconds, not {raw!r}")
    return value


def gateway_database_url(database_url: str | None = None) -> str:
    """The URL of the API keys' database: ``database_url``, else ``OKR_GATEWAY_DATABASE_URL``,
    else SQLite ``gateway.db`` under ``OKR_DATA_DIR`` (the gateway and ``okr keys`` agree)."""
    url = database_url or os.environ.get("OKR_GATEWAY_DATABASE_URL")
    if not url:
        url = f"sqlite:///{Settings.from_env().data_dir / 'gateway.db'}"
    return url


def api_key_pepper() -> str | None:
    """``OKR_API_KEY_PEPPER``: the HMAC key of stored API key secrets; None when unset."""
    return os.environ.get("OKR_API_KEY_PEPPER") or None


def jwt_config(environ: Mapping[str, str] = os.environ) -> "JwtConfig | None":
    """From ``OKR_JWT_ALGORITHM`` (HS256 default, or RS256), ``OKR_JWT_SECRET`` (HS256)
    or ``OKR_JWT_PUBLIC_KEY`` / ``OKR_JWT_PUBLIC_KEY_FILE`` (RS256),
    ``OKR_JWT_ISSUER``, ``OKR_JWT_AUDIENCE``, ``OKR_JWT_LEEWAY_S`` (default 30).
    None when neither a secret nor a public key is configured (bearer tokens are
    then refused)."""
    from .auth import JwtConfig  # auth reads its pepper here: imported when asked

    algorithm = environ.get("OKR_JWT_ALGORITHM", "").strip().upper()
    secret = environ.get("OKR_JWT_SECRET") or None
    public = environ.get("OKR_JWT_PUBLIC_KEY") or None
    public_file = environ.get("OKR_JWT_PUBLIC_KEY_FILE") or None
    if public is None and public_file:
        public = Path(public_file).read_text(encoding="utf-8")
    if not algorithm:
        if secret is None and public is None:
            return None
        algorithm = "RS256" if public is not None and secret is None else "HS256"
    if algorithm == "HS256":
        key = secret
        if key is None:
            raise ValueError("OKR_JWT_ALGORITHM=HS256 needs OKR_JWT_SECRET")
    elif algorithm == "RS256":
        key = public
        if key is None:
            raise ValueError("OKR_JWT_ALGORITHM=RS256 needs OKR_JWT_PUBLIC_KEY or OKR_JWT_PUBLIC_KEY_FILE")
    else:
        raise ValueError(f"OKR_JWT_ALGORITHM must be HS256 or RS256, not {algorithm!r}")
    return JwtConfig(
        algorithm=algorithm, key=key,
        issuer=environ.get("OKR_JWT_ISSUER", ""), audience=environ.get("OKR_JWT_AUDIENCE", ""),
        leeway_s=float(environ.get("OKR_JWT_LEEWAY_S", "30")),
    )
