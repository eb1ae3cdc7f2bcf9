"""``python -m okr_services.gateway``: serve the gRPC API until SIGINT/SIGTERM.

Configuration (environment): OKR_GATEWAY_ADDRESS (0.0.0.0:50051), AMQP_URI,
OKR_GATEWAY_DATABASE_URL (API keys), OKR_DATABASE_URL (the event store: audit and
streams), OKR_JWT_* (bearer tokens: auth.JwtConfig), OKR_GATEWAY_WORKERS (32),
OKR_GATEWAY_RPC_TIMEOUT (10 s), OKR_GATEWAY_KEY_CACHE_S (5 s: how long a checked API key
is trusted before it is looked up again — a revocation takes effect within it).
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from .server import Gateway, GatewayConfig


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = GatewayConfig.from_env()
    gateway = Gateway(config)
    port = gateway.start()
    print(f"okr gateway: gRPC on {config.address.rsplit(':', 1)[0]}:{port} (health, reflection on)", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    gateway.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
