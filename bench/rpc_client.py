"""The gateway's RPC client (okr_services.gateway.rpc_client.RpcClient) against nameko's
own ClusterRpcClient, calling the same tiny service.

    .venv/bin/python bench/rpc_client.py            # ~20 s
    .venv/bin/python bench/rpc_client.py --quick    # a few seconds

Two processes, as deployed: the **service** (a nameko container with one ``echo``
method, a unique name, started by this script as ``python bench/rpc_client.py _serve
NAME``: eventlet-patched) and this plain, not patched process (as the gateway), which
calls ``echo(x={"i": n, "s": "..."})``:

- sequential: one thread, ``--calls`` calls;
- threaded: ``--threads`` threads, ``--calls`` calls each. RpcClient: one client shared
  by the threads (as the gateway's grpc worker pool shares it). ClusterRpcClient is
  single-threaded: one client per thread.

After an untimed warm-up of 50 calls per client. Figures: calls/s, p50 and p99 latency
per call. The broker is ``AMQP_URI`` (default the local one); the service's queue is
deleted afterwards. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
ROOT = Path(__file__).resolve().parent.parent


def serve(name: str) -> None:
    """The tiny service (runs eventlet-patched, until terminated)."""
    import signal

    import nameko
    from nameko.containers import get_container_cls
    from nameko.rpc import rpc

    class Tiny:
        @rpc
        def echo(self, x):
            return x

    Tiny.name = name
    with nameko.config.patch({"AMQP_URI": AMQP_URI}):
        container = get_container_cls()(Tiny)
        container.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)
    container.stop()


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


def figures(latencies, elapsed):
    return {"calls": len(latencies), "calls_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(percentile(latencies, 50) * 1000, 3), "p99_ms": round(percentile(latencies, 99) * 1000, 3),
            "mean_ms": round(statistics.fmean(latencies) * 1000, 3)}


def run_threads(make_call, threads, calls):
    """``make_call()`` -> a callable(i) per thread; every thread does ``calls`` calls."""
    latencies = [[] for _ in range(threads)]
    errors = []
    barrier = threading.Barrier(threads + 1)

    def worker(t):
        call = make_call()
        for i in range(50):  # warm-up
            call(i)
        barrier.wait()
        for i in range(calls):
            payload = t * 1_000_000 + i
            started = time.perf_counter()
            result = call(payload)
            latencies[t].append(time.perf_counter() - started)
            if result != {"i": payload, "s": f"v{payload}"}:
                errors.append((payload, result))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise AssertionError(f"{len(errors)} wrong replies, e.g. {errors[:3]}")
    return figures([x for per in latencies for x in per], elapsed)


def bench_ours(service, threads, calls):
    from okr_services.gateway.rpc_client import RpcClient

    client = RpcClient(AMQP_URI, name="bench-gateway")
    client.start()
    try:
        def make_call():
            return lambda i: client.call(service, "echo", {"x": {"i": i, "s": f"v{i}"}})

        return {"sequential": run_threads(make_call, 1, calls),
                "threaded": run_threads(make_call, threads, calls)}
    finally:
        client.stop()


def bench_nameko(service, threads, calls):
    from nameko.standalone.rpc import ClusterRpcClient

    clients = []
    lock = threading.Lock()

    def make_call():
        cluster = ClusterRpcClient(uri=AMQP_URI, timeout=30)
        proxy = cluster.start()
        with lock:
            clients.append(cluster)
        method = proxy[service].echo
        return lambda i: method(x={"i": i, "s": f"v{i}"})

    try:
        return {"sequential": run_threads(make_call, 1, calls),
                "threaded": run_threads(make_call, threads, calls)}
    finally:
        for c in clients:
            c.stop()


def wait_ready(service, proc):
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise RuntimeError(f"the service did not start: {line!r} {proc.stderr.read() if proc.poll() else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per thread (default 2000)")
    parser.add_argument("--nameko-calls", type=int, default=300, help="calls per thread for ClusterRpcClient")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="200 / 50 calls per thread")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.nameko_calls = 200, 50

    service = f"bench-tiny-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, __file__, "_serve", service], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        wait_ready(service, proc)
        ours = bench_ours(service, args.threads, args.calls)
        theirs = bench_nameko(service, args.threads, args.nameko_calls)
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        try:
            from kombu import Connection

            with Connection(AMQP_URI) as conn:
                conn.default_channel.queue_delete(f"rpc-{service}")
        except Exception:  # noqa: BLE001 - best effort
            pass

    for label, r in (("RpcClient (ours)", ours), ("nameko ClusterRpcClient", theirs)):
        for mode in ("sequential", "threaded"):
            f = r[mode]
            what = "1 thread" if mode == "sequential" else f"{args.threads} threads"
            print(f"{label:26s} {what:10s}: {f['calls_per_s']:8.1f} calls/s  p50 {f['p50_ms']:7.2f} ms  "
                  f"p99 {f['p99_ms']:7.2f} ms  ({f['calls']} calls)", flush=True)
    speedup = {m: round(ours[m]["calls_per_s"] / theirs[m]["calls_per_s"], 2) for m in ("sequential", "threaded")}
    print(f"speed-up ours / nameko: sequential x{speedup['sequential']}, threaded x{speedup['threaded']}")
    print(json.dumps({"bench": "rpc_client", "python": platform.python_version(), "cpus": os.cpu_count(),
                      "load_avg": os.getloadavg(), "threads": args.threads, "ours": ours, "nameko": theirs,
                      "speedup": speedup}, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_serve":
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import eventlet
        eventlet.monkey_patch()
        serve(sys.argv[2])
        sys.exit(0)
    sys.exit(main())
