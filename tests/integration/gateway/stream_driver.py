"""Reads one server-streaming RPC of the gateway from a plain process (grpc's streaming
client waits on threading conditions, which are green in the eventlet-patched test
process and would never wake from a real thread).

    python stream_driver.py ADDRESS  (JSON on stdin: method, request_b64, authorization, limit, timeout)

Prints one JSON object: messages (base64), code, details, trailing metadata.
"""

import base64
import json
import sys

import grpc


def main() -> None:
    address = sys.argv[1]
    job = json.loads(sys.stdin.read())
    channel = grpc.insecure_channel(address)
    call = channel.unary_stream(job["method"])(base64.b64decode(job["request_b64"]),
                                               metadata=[("authorization", job["authorization"])] if job["authorization"] else None,
                                               timeout=job["timeout"])
    messages, code, details, trailing = [], "OK", "", {}
    try:
        for item in call:
            messages.append(base64.b64encode(item).decode())
            if job["limit"] is not None and len(messages) >= job["limit"]:
                call.cancel()
                break
    except grpc.RpcError as e:
        if not (e.code() == grpc.StatusCode.CANCELLED and job["limit"] is not None and len(messages) >= job["limit"]):
            code, details, trailing = e.code().name, e.details() or "", dict(e.trailing_metadata() or ())
    channel.close()
    print(json.dumps({"messages": messages, "code": code, "details": details, "trailing": trailing}))


if __name__ == "__main__":
    main()
