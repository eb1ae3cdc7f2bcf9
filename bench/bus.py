"""Bus benchmark: the outbox relay's throughput beside raw publishing loops, on the same
broker, in the same run, with the same messages.

    make bench-bus                                  # full run, SQLite and PostgreSQL
    .venv/bin/python bench/bus.py --quick --backends sqlite

Measurements (one function each; ``main`` prints every figure and, last, one JSON line):

* ``relay_throughput``: a fresh event store (SQLite file / PostgreSQL schema of its
  own) seeded with ``--events`` check-ins (untimed), then ``Relay.catch_up()`` timed:
  read from the store, encode envelopes, publish in confirm windows, save the checkpoint
  after each window's confirms — events published *and confirmed* per second.
* ``kombu_confirms``: kombu ``Producer.publish`` with ``confirm_publish=True`` (one
  blocking confirm per message, measured at ~1,770/s: ADR 0030).
* ``kombu_no_confirms``: the same loop without confirms (no delivery guarantee).
* ``amqp_windowed``: a bare py-amqp loop with windowed confirms (publish a window, wait
  for the acks) — the ceiling of the relay's publishing technique without the store.
* ``relay_idle_latency``: a running relay (its own thread), one event appended at a
  time with pauses; commit (append returned) to arrival at a consumer, p50/p95/max.

Raw loops publish the relay's own encoded messages (same bodies, properties, routing
keys, so the same sizes) to the same exchange; every message is persistent and routed
to one durable queue (purged between measurements), as in production.
Targets (issue): relay >= 2,000 events/s and >= 0.5x the kombu confirm loop.
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

import amqp
from kombu import Connection, Exchange, Producer
from sqlalchemy import make_url, text

from okr.v1 import events_pb2
from okr_shared.bus import wire
from okr_shared.bus.relay import Relay, encode
from okr_shared.contracts import payload_to_dict
from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, make_engine, migrate

from common import Schemas

AMQP_URI = os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/")
PG_URL = os.environ.get("OKR_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/okr_bench_bus")

FULL = dict(events=20_000, kombu_messages=10_000, latency_samples=100)
QUICK = dict(events=3_000, kombu_messages=2_000, latency_samples=30)
WINDOW = 500
TARGET_RELAY_PER_S = 2000
TARGET_RATIO_VS_KOMBU = 0.5


# ------------------------------------------------------------------ fixtures



def commit_to_consumer_latency(backend: str, rate: float, seconds: float) -> dict:
    """bench/bus_latency.py in its own (eventlet-patched) process: appender → relay →
    nameko consumer at ``rate`` events/s; its figures for ``backend``."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("bus_latency.py")), "--backends", backend,
         "--rate", str(rate), "--seconds", str(seconds)],
        capture_output=True, text=True, timeout=seconds * 10 + 120,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"bus_latency.py exited {proc.returncode}: {proc.stderr[-2000:]}")
    return json.loads(lines[-1])["results"][backend]

def check_in_events(n: int, stream_no: int) -> list[NewEvent]:
    """``n`` realistic check-ins for one key result (~300-byte envelopes)."""
    kr = f"kr-{uuid.UUID(int=stream_no)}"
    out = []
    for i in range(n):
        message = events_pb2.CheckInRecorded(
            check_in_id=str(uuid.uuid4()), key_result_id=kr, objective_id=f"obj-{stream_no}",
            value=round(10 + i * 0.5, 2), confidence=7,
            comment="Two enterprise pilots converted, third one slipped to next quarter.",
            author="user-0042", effective_date="2026-02-01",
        )
        out.append(NewEvent("okr.v1.CheckInRecorded", payload_to_dict(message), tenant_id="acme",
                            metadata={"actor": "user:0042", "correlation_id": str(uuid.uuid4())}))
    return out


class Database:
    """A fresh event store: a SQLite file in a temporary folder, or a PostgreSQL schema
    of its own (in OKR_BENCH_POSTGRES_URL's database, created if missing)."""

    def __init__(self, backend: str, tmp_dir: str):
        self.backend, self.schemas = backend, Schemas(PG_URL)
        if backend == "sqlite":
            self.engine = make_engine(f"sqlite:///{tmp_dir}/bus-{uuid.uuid4().hex[:6]}.db")
        else:
            url = make_url(PG_URL)
            admin = make_engine(url.set(database="postgres").render_as_string(hide_password=False),
                                isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": url.database}).first():
                    conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            admin.dispose()
            self.engine = make_engine(self.schemas.new("bus"))
        migrate(self.engine)
        self.store = EventStore(self.engine)

    def seed(self, n: int) -> None:
        for stream_no in range(0, n, 1000):
            self.store.append(f"kr-{stream_no}", NO_STREAM, check_in_events(min(1000, n - stream_no), stream_no))

    def close(self) -> None:
        self.store.close()
        self.engine.dispose()
        self.schemas.drop()


class Broker:
    """An exchange of the bench's own with one durable queue bound to everything."""

    def __init__(self):
        suffix = uuid.uuid4().hex[:8]
        self.exchange, self.queue = f"okr.events.bench-{suffix}", f"bench-bus-{suffix}"
        with Connection(AMQP_URI) as conn:
            channel = conn.channel()
            channel.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
            channel.queue_declare(self.queue, durable=True, auto_delete=False)
            channel.queue_bind(self.queue, self.exchange, "#")
            self.version = conn.connection.server_properties.get("version", "?")

    def purge(self) -> int:
        with Connection(AMQP_URI) as conn:
            return conn.channel().queue_purge(self.queue) or 0

    def close(self) -> None:
        with Connection(AMQP_URI) as conn:
            channel = conn.channel()
            channel.queue_delete(self.queue)
            channel.exchange_delete(self.exchange)


def _rate(count: int, seconds: float) -> dict:
    return {"messages": count, "seconds": round(seconds, 3), "per_s": round(count / seconds)}


# ------------------------------------------------------------------ measurements


def relay_throughput(backend: str, broker: Broker, events: int, tmp_dir: str) -> dict:
    """Events published and confirmed per second by Relay.catch_up() over a seeded store."""
    db = Database(backend, tmp_dir)
    try:
        db.seed(events)
        relay = Relay(db.engine, AMQP_URI, exchange=broker.exchange, window=WINDOW)
        started = time.perf_counter()
        checkpoint = relay.catch_up(timeout=600)
        seconds = time.perf_counter() - started
        assert checkpoint == events, (checkpoint, events)
        return {**_rate(events, seconds), "window": WINDOW, "windows": relay.stats.windows,
                "republished": relay.stats.published - events}
    finally:
        db.close()
        broker.purge()


def sample_messages(tmp_dir: str, n: int) -> list[tuple[bytes, dict, str]]:
    """The relay's own encoding of ``n`` seeded events (for the raw loops)."""
    db = Database("sqlite", tmp_dir)
    try:
        db.seed(n)
        return [encode(event) for event in db.store.read_all()]
    finally:
        db.close()


def kombu_confirms(broker: Broker, messages, confirm: bool = True) -> dict:
    """kombu Producer.publish, persistent, one blocking confirm per message (or none)."""
    options = {"transport_options": {"confirm_publish": True}} if confirm else {}
    with Connection(AMQP_URI, **options) as conn:
        producer = Producer(conn.channel(), exchange=Exchange(broker.exchange, type="topic", durable=True))
        started = time.perf_counter()
        for body, properties, routing_key in messages:
            properties = dict(properties)
            headers = properties.pop("application_headers")
            producer.publish(body, routing_key=routing_key, headers=headers, **properties)
        seconds = time.perf_counter() - started
    broker.purge()
    return _rate(len(messages), seconds)


def amqp_windowed(broker: Broker, messages, window: int = WINDOW) -> dict:
    """Bare py-amqp: publish ``window`` messages, then wait for their acks; repeat."""
    acked = [0]

    def on_ack(tag, multiple):
        acked[0] = max(acked[0], tag)

    def on_nack(tag, multiple):
        raise RuntimeError(f"nack {tag}")

    with Connection(AMQP_URI) as conn:
        conn.connect()
        raw = conn.connection
        channel = raw.channel()
        channel.confirm_select()
        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(on_nack)
        started = time.perf_counter()
        tag = 0
        for i in range(0, len(messages), window):
            for body, properties, routing_key in messages[i:i + window]:
                channel.basic_publish(amqp.Message(body, **properties), exchange=broker.exchange,
                                      routing_key=routing_key)
                tag += 1
            while acked[0] < tag:
                raw.drain_events(timeout=10)
        seconds = time.perf_counter() - started
    broker.purge()
    return {**_rate(len(messages), seconds), "window": window}


def relay_idle_latency(backend: str, broker: Broker, samples: int, tmp_dir: str) -> dict:
    """Commit-to-consumer latency of single events through a running, idle relay."""
    db = Database(backend, tmp_dir)
    relay = Relay(db.engine, AMQP_URI, exchange=broker.exchange)
    arrivals: dict[int, float] = {}
    try:
        with Connection(AMQP_URI) as conn:
            channel = conn.channel()
            probe = channel.queue_declare("", exclusive=True, auto_delete=True).queue
            channel.queue_bind(probe, broker.exchange, "#")
            channel.basic_consume(probe, no_ack=True, callback=lambda m: arrivals.setdefault(
                m.properties["application_headers"][wire.HEADER_POSITION], time.perf_counter()))
            relay.start()
            deadline = time.monotonic() + 10
            while not relay.active and time.monotonic() < deadline:
                time.sleep(0.01)
            latencies = []
            for i in range(samples):
                position = db.store.append(f"kr-{i}", NO_STREAM, check_in_events(1, i)).first_position
                committed = time.perf_counter()
                wait_until = time.monotonic() + 5
                while position not in arrivals and time.monotonic() < wait_until:
                    try:
                        conn.drain_events(timeout=0.5)
                    except TimeoutError:
                        pass
                latencies.append(arrivals[position] - committed)
                time.sleep(0.02 + (i % 5) * 0.007)  # idle in between, at varying phases of the poll
    finally:
        relay.stop()
        db.close()
        broker.purge()
    latencies.sort()
    ms = lambda s: round(s * 1000, 2)  # noqa: E731
    return {"samples": samples, "p50_ms": ms(statistics.median(latencies)),
            "p95_ms": ms(latencies[int(0.95 * (len(latencies) - 1))]), "max_ms": ms(latencies[-1]),
            "poll_interval_ms": relay.poll_interval * 1000}


# ------------------------------------------------------------------ main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"small sizes ({QUICK})")
    p.add_argument("--backends", default="sqlite,postgres")
    p.add_argument("--events", type=int, help="events seeded for the relay")
    args = p.parse_args(argv)
    sizes = dict(QUICK if args.quick else FULL)
    if args.events:
        sizes["events"] = args.events
    backends = [b for b in args.backends.split(",") if b]

    broker = Broker()
    print(f"bus benchmark: RabbitMQ {broker.version} at {AMQP_URI.split('@')[-1]}, Python "
          f"{platform.python_version()}, {os.cpu_count()} CPUs, sizes {sizes}, window {WINDOW}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results: dict = {"raw": {}, "relay": {}, "relay_idle_latency": {}, "commit_to_consumer": {}}
    failed: list[str] = []
    try:
        with tempfile.TemporaryDirectory(prefix="okr-bench-bus-") as tmp_dir:
            messages = sample_messages(tmp_dir, sizes["events"])
            size = statistics.mean(len(body) for body, _, _ in messages)
            results["message_body_bytes"] = round(size)
            print(f"messages: the relay's encoding of CheckInRecorded events, body ~{size:.0f} bytes, persistent, "
                  "one durable queue bound", flush=True)
            for name, run in (
                ("kombu_confirms", lambda: kombu_confirms(broker, messages[: sizes["kombu_messages"]])),
                ("kombu_no_confirms", lambda: kombu_confirms(broker, messages, confirm=False)),
                ("amqp_windowed", lambda: amqp_windowed(broker, messages)),
            ):
                results["raw"][name] = run()
                print(f"  raw {name:<18} {results['raw'][name]['per_s']:>8,} msg/s", flush=True)
            for backend in backends:
                try:
                    results["relay"][backend] = r = relay_throughput(backend, broker, sizes["events"], tmp_dir)
                    print(f"  relay [{backend:<8}]      {r['per_s']:>8,} events/s published+confirmed "
                          f"({r['messages']:,} in {r['seconds']} s)", flush=True)
                    results["relay_idle_latency"][backend] = lat = relay_idle_latency(
                        backend, broker, sizes["latency_samples"], tmp_dir)
                    print(f"  relay [{backend:<8}] idle commit-to-consumer latency p50 {lat['p50_ms']} ms, "
                          f"p95 {lat['p95_ms']} ms, max {lat['max_ms']} ms", flush=True)
                    results["commit_to_consumer"][backend] = c2c = commit_to_consumer_latency(
                        backend, rate=500, seconds=3 if args.quick else 10)
                    print(f"  [{backend:<8}] commit-to-consumer at 500 events/s: p50 {c2c['p50_ms']} ms, "
                          f"p99 {c2c['p99_ms']} ms (targets p50 <= 20, p99 <= 100)", flush=True)
                except Exception as e:  # report, go on with the other backend, fail at the end
                    failed.append(backend)
                    results["relay"][backend] = {"error": f"{type(e).__name__}: {e}"}
                    print(f"  [{backend}] FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        broker.close()

    kombu = results["raw"]["kombu_confirms"]["per_s"]
    ratios, targets = {}, {}
    for backend, r in results["relay"].items():
        if "per_s" in r:
            ratios[backend] = {
                "relay_vs_kombu_confirms": round(r["per_s"] / kombu, 2),
                "relay_vs_amqp_windowed": round(r["per_s"] / results["raw"]["amqp_windowed"]["per_s"], 2),
            }
            targets[backend] = {
                "relay_per_s_ge_2000": r["per_s"] >= TARGET_RELAY_PER_S,
                "relay_ge_half_kombu_confirms": ratios[backend]["relay_vs_kombu_confirms"] >= TARGET_RATIO_VS_KOMBU,
                "idle_latency_p50_le_50ms": results["relay_idle_latency"].get(backend, {}).get("p50_ms", 1e9) <= 50,
                "commit_to_consumer_p50_le_20ms_p99_le_100ms": bool(
                    results["commit_to_consumer"].get(backend, {}).get("targets_met")),
            }
            print(f"  [{backend}] relay / kombu confirm loop = {ratios[backend]['relay_vs_kombu_confirms']}x, "
                  f"relay / bare windowed loop = {ratios[backend]['relay_vs_amqp_windowed']}x; targets: "
                  + ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in targets[backend].items()), flush=True)
    summary = {"bench": "bus", "rabbitmq": broker.version, "python": platform.python_version(),
               "cpus": os.cpu_count(), "sizes": sizes, "window": WINDOW, **results,
               "ratios": ratios, "targets": targets, "failed": failed}
    print(json.dumps(summary, separators=(",", ":")))
    return 1 if failed or not all(all(t.values()) for t in targets.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
