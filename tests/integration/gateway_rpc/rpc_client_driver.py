"""Drives okr_services.gateway.rpc_client.RpcClient in a plain (not eventlet-patched)
process, as the gateway runs it: reads one JSON command per line on stdin, answers one
JSON line on stdout (test_rpc_client.py starts it).

    python rpc_client_driver.py AMQP_URI
    -> {"ready": true}
    {"op": "call", "service": s, "method": m, "kwargs": {}, "context": {}, "timeout": t}
    {"op": "concurrent", "service": s, "n": 200, "threads": 16}
    {"op": "sever"}                        cut every connection of the client
    {"op": "sever_during", "service": s, "seconds": 2, "after": 0.3, "timeout": 5}
    {"op": "quit"}
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from okr_services.gateway.rpc_client import RemoteError, RpcClient


def outcome(fn) -> dict:
    started = time.monotonic()
    try:
        out = {"result": fn()}
    except RemoteError as e:
        out = {"error": "RemoteError", "exc_type": e.exc_type, "value": e.value, "exc_path": e.exc_path,
               "exc_args": e.exc_args, "field": e.field}
    except Exception as e:  # noqa: BLE001 - reported to the test
        out = {"error": type(e).__name__, "message": str(e)}
    out["elapsed"] = time.monotonic() - started
    return out


def main() -> None:
    client = RpcClient(sys.argv[1], default_timeout=5.0, name="gateway-test")
    client.start()
    print(json.dumps({"ready": True, "eventlet": "eventlet" in sys.modules}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd["op"]
        if op == "quit":
            break
        if op == "call":
            out = outcome(lambda: client.call(cmd["service"], cmd["method"], cmd.get("kwargs"),
                                              context_data=cmd.get("context"), timeout=cmd.get("timeout")))
        elif op == "concurrent":
            def one(i):
                return i, outcome(lambda: client.call(cmd["service"], "echo", {"x": {"i": i, "s": f"v{i}"}}))

            started = time.monotonic()
            with ThreadPoolExecutor(cmd["threads"]) as pool:
                results = list(pool.map(one, range(cmd["n"])))
            wrong = [(i, o) for i, o in results if o.get("result") != {"i": i, "s": f"v{i}"}]
            out = {"n": len(results), "wrong": wrong[:5], "wrong_count": len(wrong),
                   "elapsed": time.monotonic() - started, "threads": len({threading.get_ident()})}
        elif op == "sever":
            client._sever_connections()
            out = {"severed": True}
        elif op == "sever_during":
            box = {}
            t = threading.Thread(target=lambda: box.update(outcome(lambda: client.call(
                cmd["service"], "slow", {"seconds": cmd["seconds"]}, timeout=cmd["timeout"]))))
            t.start()
            time.sleep(cmd["after"])
            client._sever_connections()
            t.join()
            out = box
        else:
            out = {"error": f"unknown op {op}"}
        print(json.dumps(out), flush=True)
    client.stop()


if __name__ == "__main__":
    main()
