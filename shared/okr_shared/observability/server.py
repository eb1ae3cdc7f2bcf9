"""The per-process HTTP endpoint Prometheus scrapes: ``GET /metrics`` (any path answers
the same text exposition format), on ``OKR_METRICS_HOST:OKR_METRICS_PORT``.

``OKR_METRICS_PORT``: the port; ``0`` or empty disables the endpoint; unset: the
process kind's default (nameko services 9464, relay 9465, gateway 9466 — so `make
run`'s three processes coexist). ``OKR_METRICS_HOST``: the address to bind (default
``0.0.0.0``). A bad value stops the process with an error naming the variable; a port
already taken is logged as an error and the process runs on without the endpoint (the
scrape target shows down — the process's work matters more than its metrics).

One endpoint per process, whatever asks for it first (nameko runs several services in
one process; each one's ``Observed`` dependency asks).
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import REGISTRY, start_http_server

from .. import config

_log = logging.getLogger(__name__)

DEFAULT_PORTS = {"services": 9464, "relay": 9465, "gateway": 9466}

_lock = threading.Lock()
_server = None  # (server, thread, port)


def serve(port: int, host: str = "0.0.0.0") -> int | None:
    """Start the endpoint (once per process); returns its port, None if it could not
    listen. A second call returns the first endpoint's port."""
    global _server
    with _lock:
        if _server is not None:
            return _server[2]
        try:
            server, thread = start_http_server(port, addr=host, registry=REGISTRY)
        except OSError as e:
            _log.error("metrics endpoint disabled: cannot listen on %s:%s (%s); set OKR_METRICS_PORT to a free "
                       "port, or 0 to turn it off", host, port, e)
            return None
        _server = (server, thread, server.server_port)
        _log.info("metrics on http://%s:%s/metrics", host, server.server_port,
                  extra={"metrics_port": server.server_port})
        return server.server_port


def serve_from_env(kind: str) -> int | None:
    """``serve`` on the address of the environment (see the module docstring;
    ``okr_shared.config.metrics_address``) for a process of ``kind`` (services | relay |
    gateway); None when disabled."""
    address = check_from_env(kind)
    if address is None:
        return None
    host, port = address
    return serve(port, host)


def check_from_env(kind: str) -> tuple[str, int] | None:
    """The endpoint's address for a process of ``kind`` (ValueError on a bad value)."""
    return config.metrics_address(DEFAULT_PORTS[kind])


def serving_port() -> int | None:
    return _server[2] if _server is not None else None


def shutdown() -> None:
    """Stop the endpoint (tests)."""
    global _server
    with _lock:
        if _server is not None:
            _server[0].shutdown()
            _server[0].server_close()
            _server = None
