"""A bare grpcio echo server: the floor a gRPC unary call costs on this machine.

    .venv/bin/python bench/echo_server.py 127.0.0.1:50099 [workers]

One generic unary method ``/bench.Echo/Echo`` on raw bytes (no protobuf, no
serialisation): the request bytes come straight back. Same server construction as the
gateway (``grpc.server`` with a ThreadPoolExecutor of ``workers`` threads, default 32,
insecure port). Prints ``listening <port>`` once serving; SIGTERM/SIGINT stops it.
"""

from __future__ import annotations

import signal
import sys
import threading
from concurrent import futures

import grpc

METHOD = "/bench.Echo/Echo"


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else "127.0.0.1:0"
    workers = int(argv[2]) if len(argv) > 2 else 32
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="echo"),
                         options=[("grpc.so_reuseport", 0)])  # as the gateway
    handler = grpc.unary_unary_rpc_method_handler(lambda request, context: request)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bench.Echo", {"Echo": handler})])
    port = server.add_insecure_port(address)
    if port == 0:
        print(f"cannot listen on {address}", file=sys.stderr, flush=True)
        return 1
    server.start()
    print(f"listening {port}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
