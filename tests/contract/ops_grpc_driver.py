"""A streaming gRPC call made from a plain process, as a generic tool (grpcurl, a
Kubernetes probe) makes it: the contract tests run under eventlet, where grpc's stream
iterators do not advance (contract_suite.server_stream and test_ops_health's Watch run it).

    python ops_grpc_driver.py ADDRESS /package.Service/Method (bidi|server) [TIMEOUT [AUTHORIZATION]]

stdin: the requests, serialised and base64-encoded, one per line (``server``: one).
stdout: each response as it arrives (base64, one per line, flushed), then a last line
``status <CODE> <details>``. No credentials are sent unless AUTHORIZATION is given (the
``authorization`` metadata's value).
"""

from __future__ import annotations

import base64
import sys

import grpc


def main() -> int:
    address, method, kind = sys.argv[1:4]
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 30.0
    requests = [base64.b64decode(line) for line in sys.stdin.read().split()]
    metadata = (("authorization", sys.argv[5]),) if len(sys.argv) > 5 else ()
    with grpc.insecure_channel(address) as channel:
        if kind == "bidi":
            call = channel.stream_stream(method)(iter(requests), timeout=timeout, metadata=metadata)
        else:
            # an empty line is an empty message (HealthCheckRequest(service="") is 0 bytes)
            call = channel.unary_stream(method)(requests[0] if requests else b"", timeout=timeout,
                                                metadata=metadata)
        try:
            for response in call:
                print(base64.b64encode(response).decode(), flush=True)
            print("status OK", flush=True)
        except grpc.RpcError as e:
            print(f"status {e.code().name} {e.details()}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
