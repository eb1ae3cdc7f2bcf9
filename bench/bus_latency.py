"""Commit-to-consumer latency through the whole bus, at a steady append rate.

    .venv/bin/python bench/bus_latency.py                         # SQLite and PostgreSQL, 500 events/s, 10 s
    .venv/bin/python bench/bus_latency.py --backends sqlite --rate 500 --seconds 10
    .venv/bin/python bench/bus_latency.py --quick                 # 3 s per backend

Three processes, as deployed: an **appender** (``EventStore.append``, one check-in
event per append, at ``--rate`` appends per second on a fixed schedule, spread over 100
key results), the **outbox relay** (``python -m okr_services.relay``, default poll
interval 10 ms and window 500), and a **consumer** — this process: a nameko container
with an ordered ``@okr_event_handler`` (single-active-consumer queue, dedupe by position,
gap check) whose handler upserts one projection row per event in the consumer's own
database (a second SQLite file / PostgreSQL schema).

Latency of an event = the consumer handler receiving it − the append returning (the
commit), both on the machine's monotonic clock (CLOCK_MONOTONIC is one clock for all
processes on Linux). The first second is warm-up and not counted. Figures: p50, p90,
p99, max; the achieved append rate; whether every event arrived once and in order.

Targets (issue): p50 <= 20 ms and p99 <= 100 ms at 500 events/s.

Everything runs on the broker at ``AMQP_URI`` (default the local one), on an exchange of
its own (``okr.events.bench-<hex>``, deleted afterwards); PostgreSQL at
``OKR_BENCH_POSTGRES_URL`` (schemas of its own, dropped afterwards). The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import Schemas

ROOT = Path(__file__).resolve().parent.parent
AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("OKR_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")
TARGET_P50_MS, TARGET_P99_MS = 20.0, 100.0
KEY_RESULTS = 100


# ------------------------------------------------------------------ appender process


def appender(url: str, rate: float, seconds: float, out: str) -> None:
    """Append one check-in per 1/rate s for ``seconds``; write [(position, commit ns)]."""
    from okr_shared.eventstore import ANY, EventStore, NewEvent, make_engine

    engine = make_engine(url)
    store = EventStore(engine)
    n = int(rate * seconds)
    interval = 1.0 / rate
    commits = []
    started = next_at = time.monotonic()
    for i in range(n):
        kr = f"kr-{i % KEY_RESULTS}"
        event = NewEvent("okr.v1.CheckInRecorded", {
            "check_in_id": str(uuid.uuid4()), "key_result_id": kr, "objective_id": "obj-1", "value": float(i),
            "confidence": 7, "comment": "Two enterprise pilots converted, third one slipped.",
            "author": "user-0042", "effective_date": "2026-02-01"}, tenant_id="acme",
            metadata={"actor": "user:0042", "correlation_id": str(uuid.uuid4())})
        result = store.append(kr, ANY, [event])
        commits.append((result.first_position, time.monotonic_ns()))
        next_at += interval
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - started
    store.close()
    engine.dispose()
    Path(out).write_text(json.dumps({"commits": commits, "seconds": elapsed}))


# ------------------------------------------------------------------ the measurement


class _Databases:
    """The event store and the consumer's database: two SQLite files, or two
    PostgreSQL schemas."""

    def __init__(self, backend: str, tmp_dir: str):
        from okr_shared.eventstore import make_engine, migrate

        self.backend, self.schemas = backend, Schemas(PG_URL)
        if backend == "sqlite":
            self.store_url = f"sqlite:///{tmp_dir}/store-{uuid.uuid4().hex[:6]}.db"
            self.consumer_url = f"sqlite:///{tmp_dir}/consumer-{uuid.uuid4().hex[:6]}.db"
        else:
            self.store_url, self.consumer_url = (self.schemas.new("bench_lat") for _ in range(2))
        engine = make_engine(self.store_url)
        migrate(engine)
        engine.dispose()

    def close(self) -> None:
        self.schemas.drop()


def _consumer_service(queue: str, exchange: str, db_url: str, store_url: str, receipts: dict):
    from sqlalchemy import Column, Float, MetaData, String, Table, text

    from okr_shared.bus.consumer import ConsumerDatabase, okr_event_handler
    from okr_shared.contracts import unpack_payload

    projection = Table("bench_kr_latest", MetaData(), Column("key_result_id", String(100), primary_key=True),
                       Column("value", Float, nullable=False))

    class LatencyConsumer:
        name = f"bench_latency_{uuid.uuid4().hex[:6]}"
        db = ConsumerDatabase(db_url, event_store_url=store_url)

        @okr_event_handler(queue, exchange=exchange, dead_letter_exchange=f"{exchange}.dlx")
        def on_event(self, envelope, conn):
            receipts.setdefault(envelope.position, time.monotonic_ns())
            check_in = unpack_payload(envelope)
            updated = conn.execute(text("UPDATE bench_kr_latest SET value = :v WHERE key_result_id = :k"),
                                   {"v": check_in.value, "k": check_in.key_result_id}).rowcount
            if not updated:
                conn.execute(projection.insert().values(key_result_id=check_in.key_result_id, value=check_in.value))

    return LatencyConsumer, projection


def _percentile(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(round(q * (len(sorted_values) - 1))))]


def commit_to_consumer_latency(backend: str, rate: float = 500, seconds: float = 10, warmup: float = 1.0,
                               amqp_uri: str = AMQP_URI, tmp_dir: str | None = None) -> dict:
    """Run appender + relay + consumer for ``seconds`` at ``rate`` events/s; returns the
    latency figures (ms). The calling process must be monkey-patched by eventlet (the
    consumer is a nameko container)."""
    import nameko
    from kombu import Connection
    from nameko.containers import get_container_cls

    from okr_shared.bus.consumer import dead_letter_queue_name
    from okr_shared.eventstore import make_engine

    own_tmp = tempfile.TemporaryDirectory(prefix="okr-bench-latency-") if tmp_dir is None else None
    tmp_dir = tmp_dir or own_tmp.name
    suffix = uuid.uuid4().hex[:8]
    exchange, queue = f"okr.events.bench-{suffix}", f"bench-latency-{suffix}"
    dbs = _Databases(backend, tmp_dir)
    receipts: dict[int, int] = {}
    service, projection = _consumer_service(queue, exchange, dbs.consumer_url, dbs.store_url, receipts)
    consumer_engine = make_engine(dbs.consumer_url)
    projection.metadata.create_all(consumer_engine)
    consumer_engine.dispose()
    env = {**os.environ, "OKR_DATABASE_URL": dbs.store_url, "AMQP_URI": amqp_uri,
           "PYTHONPATH": os.pathsep.join([str(ROOT / "shared"), str(ROOT / "services"),
                                          os.environ.get("PYTHONPATH", "")])}
    relay = container = None
    out = Path(tmp_dir) / f"commits-{suffix}.json"
    try:
        with nameko.config.patch({"AMQP_URI": amqp_uri}):
            container = get_container_cls()(service)
            container.start()  # declares and binds the queue before anything is published
        relay = subprocess.Popen([sys.executable, "-m", "okr_services.relay", "--exchange", exchange,
                                  "--log-level", "WARNING"], env=env, stderr=subprocess.PIPE, text=True)
        time.sleep(0.5)  # the relay takes its lease and connects
        appending = subprocess.Popen([sys.executable, __file__, "_append", dbs.store_url, str(rate), str(seconds),
                                      str(out)], env=env)
        while appending.poll() is None:
            time.sleep(0.05)  # (green) the consumer works meanwhile
        if appending.returncode != 0:
            raise RuntimeError(f"appender exited with {appending.returncode}")
        written = json.loads(out.read_text())
        commits = written["commits"]
        last = commits[-1][0]
        deadline = time.monotonic() + 30
        while len(receipts) < len(commits) and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = container.entrypoints and next(iter(container.entrypoints)).stats
    finally:
        if relay is not None:
            relay.terminate()
            try:
                relay.wait(15)
            except subprocess.TimeoutExpired:
                relay.kill()
        if container is not None:
            container.stop()
        with Connection(amqp_uri) as conn:
            channel = conn.channel()
            for name in (queue, dead_letter_queue_name(queue)):
                channel.queue_delete(name)
            for name in (exchange, f"{exchange}.dlx"):
                channel.exchange_delete(name)
        dbs.close()
        if own_tmp is not None:
            own_tmp.cleanup()
    missing = [p for p, _ in commits if p not in receipts]
    t0 = commits[0][1]
    timed = [((t - t0) / 1e9, (receipts[p] - t) / 1e6) for p, t in commits if p in receipts and t - t0 >= warmup * 1e9]
    latencies = sorted(lat for _, lat in timed)
    worst = sorted(timed, key=lambda x: -x[1])[:5]
    in_order = sorted(receipts, key=receipts.get) == sorted(receipts)
    result = {
        "backend": backend,
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(len(commits) / written["seconds"], 1),
        "events": len(commits),
        "measured": len(latencies),
        "missing": len(missing),
        "received_in_order": in_order,
        "last_position": last,
        "p50_ms": round(statistics.median(latencies), 2) if latencies else None,
        "p90_ms": round(_percentile(latencies, 0.90), 2) if latencies else None,
        "p99_ms": round(_percentile(latencies, 0.99), 2) if latencies else None,
        "max_ms": round(latencies[-1], 2) if latencies else None,
        "worst_at_s_ms": [(round(at, 3), round(lat, 1)) for at, lat in worst],
        "consumer_commits": stats.commits if stats else None,
        "consumer_duplicates": stats.duplicates if stats else None,
    }
    result["targets_met"] = bool(latencies) and not missing and result["p50_ms"] <= TARGET_P50_MS \
        and result["p99_ms"] <= TARGET_P99_MS
    return result


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--rate", type=float, default=500.0, help="appends (events) per second")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="3 s per backend")
    args = p.parse_args(argv)
    seconds = 3.0 if args.quick else args.seconds
    print(f"bus latency benchmark: {args.rate:.0f} events/s for {seconds:.0f} s per backend; Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}", flush=True)
    results, ok = {}, True
    for backend in [b for b in args.backends.split(",") if b]:
        r = results[backend] = commit_to_consumer_latency(backend, args.rate, seconds)
        ok = ok and r["targets_met"]
        print(f"  [{backend:<8}] commit-to-consumer p50 {r['p50_ms']} ms, p90 {r['p90_ms']} ms, p99 {r['p99_ms']} ms, "
              f"max {r['max_ms']} ms; {r['achieved_rate_per_s']} events/s appended, {r['events']} events, "
              f"{r['missing']} missing, in order: {r['received_in_order']}, consumer commits "
              f"{r['consumer_commits']}; targets (p50 <= {TARGET_P50_MS:.0f} ms, p99 <= {TARGET_P99_MS:.0f} ms) "
              f"{'met' if r['targets_met'] else 'NOT met'}", flush=True)
    print(json.dumps({"bench": "bus_latency", "python": platform.python_version(), "cpus": os.cpu_count(),
                      "rate": args.rate, "seconds": seconds, "results": results}, separators=(",", ":")))
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_append":
        _, _, url, rate, seconds, out = sys.argv
        appender(url, float(rate), float(seconds), out)
        sys.exit(0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet
    eventlet.monkey_patch()  # before anything else: the consumer is a nameko container
    sys.exit(main())
