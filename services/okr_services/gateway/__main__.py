"""``python -m okr_services.gateway``: serve the gRPC API until SIGINT/SIGTERM.

Configuration (environment): OKR_GATEWAY_ADDRESS (0.0.0.0:50051), AMQP_URI,
OKR_GATEWAY_DATABASE_URL (API keys), OKR_DATABASE_URL (the event store: audit and
streams), OKR_JWT_* (bearer tokens: config.jwt_config), OKR_GATEWAY_WORKERS (32),
OKR_GATEWAY_RPC_TIMEOUT (10 s), OKR_GATEWAY_KEY_CACHE_S (5 s: how long a checked API key
is trusted before it is looked up again — a revocation takes effect within it),
OKR_GATEWAY_HEALTH_INTERVAL_S (2 s: between probes of RabbitMQ and the event store;
docs/api.md "Health and reflection");
OKR_METRICS_PORT (9466), OKR_LOG_FORMAT (json), OKR_LOG_LEVEL (INFO), OKR_ACCESS_LOG (1):
docs/observability.md.
"""

from __future__ import annotations

import signal
import sys
import threading

from okr_shared.observability.logs import configure_logging
from okr_shared.observability.server import serve_from_env, check_from_env as metrics_address
from okr_shared.runtime import freeze_startup_objects

from .config import GatewayConfig
from .server import Gateway


def main() -> int:
    try:
        configure_logging()  # OKR_LOG_FORMAT (json), OKR_LOG_LEVEL (INFO)
        metrics_address("gateway")  # a bad OKR_METRICS_PORT fails here, before serving
    except ValueError as e:
        print(f"okr gateway: {e}", file=sys.stderr)
        return 2
    try:
        config = GatewayConfig.from_env()
    except ValueError as e:  # a bad setting: one line naming it
        print(f"okr gateway: {e}", file=sys.stderr)
        return 2
    gateway = Gateway(config)
    try:
        port = gateway.start()
    except RuntimeError as e:
        print(f"okr gateway: {e}", file=sys.stderr)
        return 2
    metrics_port = serve_from_env("gateway")  # OKR_METRICS_PORT (9466)
    freeze_startup_objects()  # no full GC pass over the server's objects mid-call
    print(f"okr gateway: gRPC on {config.address.rsplit(':', 1)[0]}:{port} (health, reflection on)"
          + (f"; metrics on :{metrics_port}/metrics" if metrics_port else ""), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
