"""The notification service's configuration: the environment variables only it reads,
read here when asked (ADR 0031; its database URL, ``OKR_NOTIFICATION_DATABASE_URL``, is
read by the consumer layer through okr_shared.config).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping


@dataclass(frozen=True)
class SmtpSettings:
    """Where e-mail goes out (channels.EmailChannel). From the environment (``from_env``):

    OKR_SMTP_HOST      default localhost
    OKR_SMTP_PORT      default 25 (465 with OKR_SMTP_SSL, 587 is usual with STARTTLS)
    OKR_SMTP_USERNAME  default "" (no AUTH)
    OKR_SMTP_PASSWORD  default ""
    OKR_SMTP_STARTTLS  1/true to upgrade with STARTTLS                   default false
    OKR_SMTP_SSL       1/true for implicit TLS (SMTPS)                   default false
    OKR_SMTP_SENDER    the From address          default okr@localhost
    """

    host: str = "localhost"
    port: int = 25
    username: str = ""
    password: str = ""
    starttls: bool = False
    use_ssl: bool = False
    sender: str = "okr@localhost"

    def __repr__(self) -> str:  # the password stays out of logs and tracebacks
        return (f"SmtpSettings(host={self.host!r}, port={self.port}, username={self.username!r}, "
                f"password={'***' if self.password else ''!r}, starttls={self.starttls}, "
                f"use_ssl={self.use_ssl}, sender={self.sender!r})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "SmtpSettings":
        def flag(name: str) -> bool:
            return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")

        use_ssl = flag("OKR_SMTP_SSL")
        return cls(
            host=environ.get("OKR_SMTP_HOST", "localhost"),
            port=int(environ.get("OKR_SMTP_PORT", "465" if use_ssl else "25")),
            username=environ.get("OKR_SMTP_USERNAME", ""),
            password=environ.get("OKR_SMTP_PASSWORD", ""),
            starttls=flag("OKR_SMTP_STARTTLS"),
            use_ssl=use_ssl,
            sender=environ.get("OKR_SMTP_SENDER", "okr@localhost"),
        )
