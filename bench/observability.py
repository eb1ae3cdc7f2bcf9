"""Per-call cost of the observability hooks on the check-in hot path (issue #7):
the metric updates, the nameko ``Observed`` dependency around one worker (with and
without its access log line), the JSON formatting of one log line.

    .venv/bin/python bench/observability.py

Figures: best of 5 runs of N calls each, microseconds per call, on this machine.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from types import SimpleNamespace

from okr_shared.observability import context, logs, metrics
from okr_shared.observability.nameko import Observed

N = 100_000


def best(fn, n: int = N) -> float:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        fn(n)
        runs.append((time.perf_counter() - t0) / n * 1e6)
    return min(runs)


def bench_events_appended(n):
    f = metrics.events_appended
    batch = ["okr.v1.CheckInRecorded"]
    for _ in range(n):
        f(batch)


def bench_histogram(n):
    c = metrics.entrypoint_duration
    for _ in range(n):
        c[("progress", "record_check_in", "rpc", "ok")].observe(0.0042)


def bench_context(n):
    for _ in range(n):
        context.reset(context.bind("c0ffee", "acme", "progress", "record_check_in"))


class Rpc:  # the kind is read from the entrypoint's class name
    method_name = "record_check_in"
    expected_exceptions = ()


def make_observed(access: bool) -> Observed:
    o = Observed()
    o._access = access
    o._service = "progress"
    o._started = {}
    o._kinds = {}
    return o


def bench_observed(access: bool):
    observed = make_observed(access)
    ctx = SimpleNamespace(entrypoint=Rpc(), data={"correlation_id": "c0ffee", "tenant_id": "acme"},
                          call_id_stack=["gateway.1"], args=())

    def run(n):
        for _ in range(n):
            observed.worker_setup(ctx)
            observed.worker_result(ctx, {"ok": 1}, None)
            observed.worker_teardown(ctx)

    return run


def bench_json_line(n):
    fmt = logs.JsonLines()
    record = logging.LogRecord("okr.access", logging.INFO, __file__, 1, "%s %s.%s %s",
                               ("rpc", "progress", "record_check_in", "ok"), None)
    record.duration_ms = 4.2
    with context.bound(correlation_id="c0ffee", tenant_id="acme", service="progress", entrypoint="record_check_in"):
        for _ in range(n):
            fmt.format(record)


def main() -> int:
    access = logging.getLogger("okr.access")
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logs.JsonLines())
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
    rows = [
        ("okr_events_appended_total.inc (one event)", best(bench_events_appended)),
        ("histogram observe via the cached child", best(bench_histogram)),
        ("log context bind + reset", best(bench_context)),
        ("Observed around one RPC worker, access log off", best(bench_observed(False))),
        ("Observed around one RPC worker, access log on (JSON line)", best(bench_observed(True), N // 5)),
        ("one JSON log line formatted", best(bench_json_line, N // 5)),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"python {sys.version.split()[0]}, best of 5 x {N:,} calls")
    for name, us in rows:
        print(f"{name:<{width}}  {us:6.2f} µs/call")
    return 0


if __name__ == "__main__":
    sys.exit(main())
