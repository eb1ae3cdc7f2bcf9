"""The configuration of ``make run`` (okr_services.run, the supervisor of the whole
suite on one machine): the environment it reads, and the environment it gives the
processes it starts, read here when asked (ADR 0031).

OKR_DATA_DIR (./data), AMQP_URI (amqp://guest:guest@localhost:5672/),
OKR_GATEWAY_ADDRESS (127.0.0.1:50051), WEB_SERVER_ADDRESS (127.0.0.1:8000),
OKR_DEMO_TENANT (demo), OKR_METRICS_PORT (9464: the first of three), OKR_METRICS_HOST
(127.0.0.1 here).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


def metrics_ports(value: str | None) -> dict[str, int]:
    """The three processes' metrics ports from ``OKR_METRICS_PORT`` (the first of three
    consecutive ports, default 9464: services 9464, relay 9465, gateway 9466; 0 or
    empty: no endpoints)."""
    if value is None:
        base = 9464
    elif value.strip() in ("", "0"):
        base = 0
    elif value.strip().isdigit() and 0 < int(value) < 65534:
        base = int(value)
    else:
        raise SystemExit(f"okr run: OKR_METRICS_PORT: expected a TCP port 1-65533 (the first of three), or 0 "
                         f"for no metrics endpoints, got {value!r}")
    return {name: base + i if base else 0 for i, name in enumerate(("services", "relay", "gateway"))}


@dataclass(frozen=True)
class RunConfig:
    data_dir: Path
    amqp_uri: str
    gateway: str
    web: str
    tenant: str
    metrics: dict[str, int]

    @classmethod
    def from_env(cls) -> "RunConfig":
        return cls(data_dir=Path(os.environ.get("OKR_DATA_DIR", "data")).resolve(),
                   amqp_uri=os.environ.get("AMQP_URI", "amqp://guest:guest@localhost:5672/"),
                   gateway=os.environ.get("OKR_GATEWAY_ADDRESS", "127.0.0.1:50051"),
                   web=os.environ.get("WEB_SERVER_ADDRESS", "127.0.0.1:8000"),
                   tenant=os.environ.get("OKR_DEMO_TENANT", "demo"),
                   metrics=metrics_ports(os.environ.get("OKR_METRICS_PORT")))

    def child_environment(self, root: Path) -> dict[str, str]:
        """The environment of the processes the run starts: this one's, with every
        database under the data folder and the run's addresses (``root``: the checkout,
        put on their module path)."""
        data_dir = self.data_dir
        env = dict(os.environ, OKR_DATA_DIR=str(data_dir), AMQP_URI=self.amqp_uri,
                   OKR_DATABASE_URL=f"sqlite:///{data_dir / 'okr.db'}",
                   OKR_REPORTING_DATABASE_URL=f"sqlite:///{data_dir / 'reporting.db'}",
                   OKR_NOTIFICATION_DATABASE_URL=f"sqlite:///{data_dir / 'notification.db'}",
                   OKR_DIRECTORY_DATABASE_URL=f"sqlite:///{data_dir / 'directory.db'}",
                   OKR_GATEWAY_DATABASE_URL=f"sqlite:///{data_dir / 'gateway.db'}",
                   OKR_GATEWAY_ADDRESS=self.gateway, WEB_SERVER_ADDRESS=self.web,
                   PYTHONPATH=os.pathsep.join([str(root / "shared"), str(root / "services"),
                                               os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
        env.setdefault("OKR_METRICS_HOST", "127.0.0.1")
        return env
