"""Event store throughput: ours vs the `eventsourcing` library (pyeventsourcing).

    make bench-eventstore                      # full run, SQLite and PostgreSQL
    .venv/bin/python bench/eventstore.py --quick --backends sqlite
    .venv/bin/python bench/eventstore.py --profile      # + anatomy of one PG append

Per backend, in one run and on the same database server (PostgreSQL: one database,
dropped and recreated at the start; SQLite: two files side by side in one directory,
same settings), the same workloads run against

* ours: ``okr_shared.eventstore.EventStore`` (hash chain always on), and
* theirs: eventsourcing's ApplicationRecorder (``SQLiteFactory`` / ``PostgresFactory``
  via ``InfrastructureFactory.construct``), which assigns global notification ids as
  our store assigns positions, fed ``StoredEvent``s with the same payload.

Workloads (identical for both; both sides start from Python dicts and serialise the
payload to JSON inside the timed loop — ours in ``append``, theirs in the loop):

* single-event appends: each stream gets 10 appends of one check-in event, with the
  expected version checked (ours: NO_STREAM then 1..9; theirs: originator_version
  1..10, where the primary key enforces the same optimistic concurrency);
* 10-event batches: each stream gets 10 batches of 10 events;
* bulk load: 1000-event appends, one new stream each, up to --bulk events (reported,
  and it fills the store so the reads cover >= 100,000 events);
* read-all: every event in position order, in pages of --read-batch (ours:
  ``read_all``; theirs: ``select_notifications(start, limit)``);
* verify (ours only): ``EventStore.verify()`` over the whole store.

Appends run in --rounds rounds that alternate which side goes first, after an untimed
warm-up; figures are total events / total time over all rounds. Reads and verify run
--reps times after an untimed warm-up pass, alternating sides; figures are medians.
The last line printed is one JSON object with every figure, ratio and setting.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "shared"))

from eventsourcing.persistence import InfrastructureFactory, StoredEvent  # noqa: E402
from sqlalchemy import make_url, text  # noqa: E402

from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, make_engine, migrate  # noqa: E402

from common import add_size_options, chosen_backends, chosen_sizes, print_summary, run_figures  # noqa: E402

ES_VERSION = importlib.metadata.version("eventsourcing")
DEFAULT_PG_URL = os.environ.get(
    "OKR_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/okr_bench"
)
EVENT_TYPE = "okr.progress.CheckInRecorded"
TOPIC = "okr.progress.events:CheckInRecorded"
APPENDS_PER_STREAM = 10
BATCH = 10
BULK_CALL = 1000
TENANTS = ("acme", "globex", "initech", "umbrella")

FULL = dict(singles=3000, batches=2000, bulk=100_000, rounds=4, reps=3, warmup=100)
QUICK = dict(singles=200, batches=100, bulk=5000, rounds=2, reps=1, warmup=20)

# PostgreSQL targets of the issue (events/s); "ours >= theirs" is checked everywhere.
TARGETS = {
    "single_appends_per_s": 1000,
    "batch10_events_per_s": 10_000,
    "read_all_events_per_s": 100_000,
    "verify_events_per_s": 100_000,
}
LABELS = {
    "single_appends_per_s": ("single-event appends", "appends/s"),
    "batch10_events_per_s": ("10-event batch appends", "events/s"),
    "bulk1000_events_per_s": ("1000-event bulk appends", "events/s"),
    "read_all_events_per_s": ("read-all", "events/s"),
    "verify_events_per_s": ("verify (hash chain)", "events/s"),
}


# ----------------------------------------------------------------- payloads


def make_payloads(n: int = 256, seed: int = 7) -> list[tuple[dict, dict]]:
    """Realistic check-in payloads: data ~230 bytes, metadata ~110 bytes as JSON."""
    rng = random.Random(seed)
    comments = [
        "Shipped the onboarding flow to 20% of new tenants; activation is trending up.",
        "Blocked on the data-export review; expecting sign-off next week.",
        "Two enterprise pilots converted, third one slipped to next quarter.",
        "Latency p95 down to 180 ms after the cache change, still above target.",
    ]
    out = []
    for _ in range(n):
        data = {
            "key_result_id": f"kr-{uuid.UUID(int=rng.getrandbits(128))}",
            "value": round(rng.uniform(0, 100), 2),
            "confidence": round(rng.uniform(0.3, 0.95), 2),
            "comment": rng.choice(comments),
            "author": f"user-{rng.randrange(10_000):04d}@acme.example",
            "effective_date": f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
        }
        meta = {
            "actor": f"user:{rng.randrange(10_000):04d}",
            "correlation_id": str(uuid.UUID(int=rng.getrandbits(128))),
            "causation_id": str(uuid.UUID(int=rng.getrandbits(128))),
        }
        out.append((data, meta))
    return out


def _dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


# ------------------------------------------------------------------- sides


class Ours:
    name = "ours"

    def __init__(self, url: str, payloads):
        self.engine = make_engine(url)
        migrate(self.engine)
        self.store = EventStore(self.engine)
        self.payloads = payloads
        self.k = 0

    def _events(self, tenant: str, n: int) -> list[NewEvent]:
        out = []
        for _ in range(n):
            data, meta = self.payloads[self.k % len(self.payloads)]
            self.k += 1
            out.append(NewEvent(EVENT_TYPE, data, tenant_id=tenant, metadata=meta))
        return out

    def new_stream(self, i: int):
        return f"kr-{uuid.uuid4()}", TENANTS[i % len(TENANTS)]

    def append(self, stream, version: int, n: int) -> None:
        """Append n events to stream, which is at ``version`` (0: new)."""
        sid, tenant = stream
        self.store.append(sid, NO_STREAM if version == 0 else version, self._events(tenant, n))

    def read_all(self, batch_size: int, limit: int | None = None) -> int:
        n = 0
        for _ in self.store.read_all(batch_size=batch_size):
            n += 1
            if limit is not None and n >= limit:
                break
        return n

    def verify(self) -> int:
        result = self.store.verify()
        if not result.ok:
            raise RuntimeError(f"verify failed: {result}")
        return result.events_checked

    def sqlite_settings(self) -> dict:
        with self.engine.connect() as conn:
            return {
                "journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                "synchronous": _SYNC[conn.exec_driver_sql("PRAGMA synchronous").scalar()],
            }

    def close(self) -> None:
        self.engine.dispose()


class Theirs:
    name = "theirs"

    def __init__(self, env: dict, payloads, id_type: str):
        self.factory = InfrastructureFactory.construct(env=env)
        self.recorder = self.factory.application_recorder()
        self.payloads = payloads
        self.k = 0
        self.uuid_ids = id_type == "uuid"

    def _stored(self, oid, version: int, n: int) -> list[StoredEvent]:
        out = []
        for i in range(n):
            data, meta = self.payloads[self.k % len(self.payloads)]
            self.k += 1
            state = _dumps({"data": data, "metadata": meta}).encode()
            out.append(StoredEvent(oid, version + 1 + i, TOPIC, state))
        return out

    def new_stream(self, i: int):
        return uuid.uuid4() if self.uuid_ids else f"kr-{uuid.uuid4()}"

    def append(self, stream, version: int, n: int) -> None:
        self.recorder.insert_events(self._stored(stream, version, n))

    def read_all(self, batch_size: int, limit: int | None = None) -> int:
        n, start = 0, 1
        while True:
            page = self.recorder.select_notifications(start, batch_size)
            n += len(page)
            if len(page) < batch_size or (limit is not None and n >= limit):
                return n
            start = page[-1].id + 1

    def sqlite_settings(self) -> dict:
        with self.recorder.datastore.transaction(commit=False) as c:
            c.execute("PRAGMA journal_mode")
            journal = c.fetchone()[0]
            c.execute("PRAGMA synchronous")
            sync = _SYNC[c.fetchone()[0]]
        return {"journal_mode": journal, "synchronous": sync}

    def close(self) -> None:
        self.factory.close()


_SYNC = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


# --------------------------------------------------------------- workloads


def run_appends(side, n_appends: int, events_per_append: int, *, first_stream: int = 0):
    """n_appends appends of events_per_append events, APPENDS_PER_STREAM per stream.
    Returns (seconds, client CPU seconds, per-append latencies)."""
    lat = []
    perf = time.perf_counter
    cpu0, t0 = time.process_time(), perf()
    i = 0
    s = first_stream
    while i < n_appends:
        stream = side.new_stream(s)
        s += 1
        for k in range(min(APPENDS_PER_STREAM, n_appends - i)):
            a = perf()
            side.append(stream, k * events_per_append, events_per_append)
            lat.append(perf() - a)
            i += 1
    return perf() - t0, time.process_time() - cpu0, lat


def run_bulk(side, n_events: int) -> tuple[float, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    done = 0
    while done < n_events:
        n = min(BULK_CALL, n_events - done)
        side.append(side.new_stream(done), 0, n)
        done += n
    return time.perf_counter() - t0, time.process_time() - cpu0


def timed(fn):
    t0 = time.perf_counter()
    n = fn()
    return n, time.perf_counter() - t0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


def compare_appends(sides, key, n_appends, per_append, rounds):
    """Alternate the sides round by round; aggregate per side."""
    agg = {s.name: {"seconds": 0.0, "cpu": 0.0, "lat": [], "rounds": []} for s in sides}
    per_round = max(1, n_appends // rounds)
    stream_no = 10_000
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            secs, cpu, lat = run_appends(side, per_round, per_append, first_stream=stream_no)
            a = agg[side.name]
            a["seconds"] += secs
            a["cpu"] += cpu
            a["lat"] += lat
            a["rounds"].append(round(per_round * per_append / secs, 1))
        stream_no += per_round
    out = {}
    for name, a in agg.items():
        n_events = len(a["lat"]) * per_append
        rate = (len(a["lat"]) if per_append == 1 else n_events) / a["seconds"]
        out[name] = {
            key: round(rate, 1),
            f"{key}_rounds": a["rounds"],
            f"{key}_p50_ms": round(pct(a["lat"], 50) * 1000, 3),
            f"{key}_p99_ms": round(pct(a["lat"], 99) * 1000, 3),
            f"{key}_client_cpu_us_per_event": round(a["cpu"] / n_events * 1e6, 1),
            f"{key}_n_events": n_events,
        }
    return out


def compare_reads(sides, read_batch, reps, total_expected):
    out = {s.name: {} for s in sides}
    for side in sides:  # warm-up: caches, prepared statements, pools
        side.read_all(read_batch, limit=min(20_000, total_expected))
    samples = {s.name: [] for s in sides}
    for r in range(reps):
        for side in sides if r % 2 == 0 else list(reversed(sides)):
            n, secs = timed(lambda: side.read_all(read_batch))
            if n != total_expected:
                raise RuntimeError(f"{side.name} read {n} events, expected {total_expected}")
            samples[side.name].append(n / secs)
    for name, rates in samples.items():
        out[name]["read_all_events_per_s"] = round(statistics.median(rates), 1)
        out[name]["read_all_samples"] = [round(x, 1) for x in rates]
        out[name]["read_all_n_events"] = total_expected
    return out


def measure_verify(ours, reps, total_expected):
    ours.store.verify(batch_size=5000)  # warm-up (full pass; verify has no limit)
    rates = []
    for _ in range(reps):
        n, secs = timed(ours.verify)
        if n != total_expected:
            raise RuntimeError(f"verify checked {n} events, expected {total_expected}")
        rates.append(n / secs)
    return {
        "verify_events_per_s": round(statistics.median(rates), 1),
        "verify_samples": [round(x, 1) for x in rates],
        "verify_n_events": total_expected,
    }


# ----------------------------------------------------------------- backends


def setup_postgres(url: str, id_type: str, payloads) -> tuple[Ours, Theirs, dict]:
    u = make_url(url)
    admin = make_engine(u.set(database="postgres").render_as_string(hide_password=False),
                        isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
            settings = {
                "server_version": conn.execute(text("SHOW server_version")).scalar(),
                **{
                    k: conn.execute(text(f"SHOW {k}")).scalar()
                    for k in ("synchronous_commit", "fsync", "wal_sync_method", "shared_buffers")
                },
            }
    finally:
        admin.dispose()
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": u.database,
        "POSTGRES_HOST": u.host or "127.0.0.1",
        "POSTGRES_PORT": str(u.port or 5432),
        "POSTGRES_USER": u.username or "postgres",
        "POSTGRES_PASSWORD": u.password or "",
        "ORIGINATOR_ID_TYPE": id_type,
    }
    ours = Ours(url, payloads)
    theirs = Theirs(env, payloads, id_type)
    settings.update(
        database=f"{u.host}:{u.port or 5432}/{u.database} (one database, both sides)",
        ours_driver=f"SQLAlchemy {__import__('sqlalchemy').__version__} + psycopg2 "
        f"{__import__('psycopg2').__version__.split()[0]}, pool_pre_ping={ours.engine.pool._pre_ping}",
        theirs_driver=f"psycopg {__import__('psycopg').__version__} "
        f"({__import__('psycopg').pq.__impl__}) + psycopg_pool",
        theirs_originator_id_type=id_type,
    )
    return ours, theirs, settings


def setup_sqlite(directory: Path, id_type: str, payloads) -> tuple[Ours, Theirs, dict]:
    directory.mkdir(parents=True, exist_ok=True)
    for f in directory.glob("*.db*"):
        f.unlink()
    ours = Ours(f"sqlite:///{directory}/ours.db", payloads)
    theirs = Theirs(
        {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(directory / "theirs.db"),
            "ORIGINATOR_ID_TYPE": id_type,
        },
        payloads,
        id_type,
    )
    o, t = ours.sqlite_settings(), theirs.sqlite_settings()
    settings = {
        "sqlite_version": __import__("sqlite3").sqlite_version,
        "directory": str(directory),
        "ours_journal_mode": o["journal_mode"],
        "ours_synchronous": o["synchronous"],
        "theirs_journal_mode": t["journal_mode"],
        "theirs_synchronous": t["synchronous"],
        "theirs_originator_id_type": id_type,
    }
    if o != t:
        settings["warning"] = "durability settings differ between the sides"
    return ours, theirs, settings


def run_backend(backend: str, args, sizes, payloads) -> dict:
    if backend == "postgres":
        ours, theirs, settings = setup_postgres(args.pg_url, args.id_type, payloads)
    else:
        ours, theirs, settings = setup_sqlite(Path(args.sqlite_dir), args.id_type, payloads)
    sides = [ours, theirs]
    try:
        print(f"\n[{backend}] " + ", ".join(f"{k}={v}" for k, v in settings.items()), flush=True)
        # Untimed warm-up: connections, statement caches, code paths.
        for side in sides:
            run_appends(side, sizes["warmup"], 1)
            run_appends(side, max(10, sizes["warmup"] // 5), BATCH)
        total = sizes["warmup"] + max(10, sizes["warmup"] // 5) * BATCH

        results = {s.name: {} for s in sides}
        for key, n, per in (
            ("single_appends_per_s", sizes["singles"], 1),
            ("batch10_events_per_s", sizes["batches"], BATCH),
        ):
            r = compare_appends(sides, key, n, per, sizes["rounds"])
            for name in r:
                results[name].update(r[name])
            total += results["ours"][f"{key}_n_events"]
            _print_row(backend, key, results)

        for side in sides:
            secs, cpu = run_bulk(side, sizes["bulk"])
            results[side.name]["bulk1000_events_per_s"] = round(sizes["bulk"] / secs, 1)
            results[side.name]["bulk1000_client_cpu_us_per_event"] = round(cpu / sizes["bulk"] * 1e6, 1)
        total += sizes["bulk"]
        _print_row(backend, "bulk1000_events_per_s", results)

        r = compare_reads(sides, args.read_batch, sizes["reps"], total)
        for name in r:
            results[name].update(r[name])
        _print_row(backend, "read_all_events_per_s", results)

        results["ours"].update(measure_verify(ours, sizes["reps"], total))
        _print_row(backend, "verify_events_per_s", results)

        ratios = {
            key: round(results["ours"][key] / results["theirs"][key], 2)
            for key in LABELS
            if key in results["theirs"]
        }
        return {"settings": settings, "ours": results["ours"], "theirs": results["theirs"],
                "ratio_ours_over_theirs": ratios, "events_in_store": total}
    finally:
        for side in sides:
            side.close()


def _print_row(backend, key, results):
    label, unit = LABELS[key]
    ours = results["ours"].get(key)
    theirs = results["theirs"].get(key)
    extra = ""
    if f"{key}_p50_ms" in results["ours"]:
        o, t = results["ours"], results["theirs"]
        extra = (f"   p50/p99 ms ours {o[f'{key}_p50_ms']:.2f}/{o[f'{key}_p99_ms']:.2f}"
                 f" theirs {t[f'{key}_p50_ms']:.2f}/{t[f'{key}_p99_ms']:.2f};"
                 f" client CPU µs/event ours {o[f'{key}_client_cpu_us_per_event']:.0f}"
                 f" theirs {t[f'{key}_client_cpu_us_per_event']:.0f}")
    if theirs is None:
        print(f"  {label:<26} ours {ours:>12,.0f} {unit:<10} theirs          n/a  (no equivalent)",
              flush=True)
    else:
        print(f"  {label:<26} ours {ours:>12,.0f} {unit:<10} theirs {theirs:>12,.0f} {unit:<10}"
              f" ours/theirs {ours / theirs:5.2f}x{extra}", flush=True)


def check_targets(results: dict) -> dict:
    out = {}
    pg = results.get("postgres")
    if pg and "ours" in pg:
        for key, target in TARGETS.items():
            out[f"postgres_{key}>={target}"] = pg["ours"][key] >= target
    for backend, r in results.items():
        for key, ratio in r.get("ratio_ours_over_theirs", {}).items():
            if key in ("single_appends_per_s", "batch10_events_per_s", "read_all_events_per_s"):
                out[f"{backend}_{key}_ours>=theirs"] = ratio >= 1.0
    return out


# ------------------------------------------------------------------ profile


def _data_segments_out(dbapi_connections) -> int:
    """Data segments the client has sent on these PostgreSQL connections (Linux
    TCP_INFO tcpi_data_segs_out): with libpq's small, TCP_NODELAY messages, each
    request the driver sends is one segment, and psycopg2 waits for each reply, so this
    counts round trips, including ones the driver makes on its own."""
    import socket
    import struct

    total = 0
    for dbapi in dbapi_connections:
        if dbapi.closed:
            continue
        sock = socket.socket(fileno=os.dup(dbapi.fileno()))
        try:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
        finally:
            sock.close()
        total += struct.unpack_from("I", info, 156)[0]  # tcpi_data_segs_out
    return total


def profile_append(url: str, payloads, n: int = 500) -> None:
    """Anatomy of our PostgreSQL single-event append: round trips per append (TCP
    segments sent), the statements SQLAlchemy sends, and where the client's time goes
    (cProfile)."""
    import cProfile
    import pstats

    from sqlalchemy import event

    engine = make_engine(url)
    dbapi_connections = []
    statements: list[str] = []
    checkouts = [0]
    event.listen(engine, "connect", lambda dbapi, rec: dbapi_connections.append(dbapi))
    event.listen(engine.pool, "checkout", lambda *a: checkouts.__setitem__(0, checkouts[0] + 1))
    on_execute = lambda c, cur, stmt, p, ctx, many: statements.append(" ".join(stmt.split())[:110])  # noqa: E731
    probe = Ours.__new__(Ours)
    probe.engine, probe.store, probe.payloads, probe.k = engine, EventStore(engine), payloads, 0
    try:
        run_appends(probe, 100, 1)  # warm-up
        m = 200
        checkouts[0] = 0
        event.listen(engine, "before_cursor_execute", on_execute)
        segs0 = _data_segments_out(dbapi_connections)
        run_appends(probe, m, 1)
        segs = _data_segments_out(dbapi_connections) - segs0
        event.remove(engine, "before_cursor_execute", on_execute)
        print(f"\n[profile] our PostgreSQL single-event append: {segs / m:.2f} round trips "
              f"(client TCP data segments) per append, {checkouts[0] / m:.1f} pool checkouts; "
              f"SQLAlchemy sent per append:")
        for stmt in dict.fromkeys(statements):
            print(f"    {statements.count(stmt) / m:.1f}x  {stmt}")
        extra = segs / m - len(statements) / m
        if extra > 0.05:
            print(f"    {extra:.1f}x  sent by psycopg2/the pool itself, not through SQLAlchemy "
                  "cursor events (e.g. 'SET default_transaction_isolation TO DEFAULT' when a "
                  "connection leaves autocommit, a separate BEGIN/COMMIT/ROLLBACK, a pre-ping)")
        prof = cProfile.Profile()
        cpu0, t0 = time.process_time(), time.perf_counter()
        prof.enable()
        run_appends(probe, n, 1)
        prof.disable()
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        print(f"[profile] {n} appends under cProfile: {n / wall:,.0f}/s, client CPU "
              f"{cpu / n * 1e6:,.0f} µs of {wall / n * 1e6:,.0f} µs wall per append")
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
    finally:
        engine.dispose()


# --------------------------------------------------------------------- main


def ours_source_digest() -> str:
    """Short digest of okr_shared/eventstore/*.py: which version of our store was measured."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted((ROOT / "shared" / "okr_shared" / "eventstore").glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    p.add_argument("--backends", default="sqlite,postgres", help="comma list: sqlite,postgres")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL,
                   help="our SQLAlchemy URL; the database is DROPPED and recreated "
                   "(env OKR_BENCH_POSTGRES_URL)")
    p.add_argument("--sqlite-dir", default=None, help="directory for the SQLite files "
                   "(default: a fresh temp dir; use a real disk, not tmpfs)")
    p.add_argument("--id-type", choices=("uuid", "text"), default="uuid",
                   help="eventsourcing ORIGINATOR_ID_TYPE (its default: uuid)")
    p.add_argument("--read-batch", type=int, default=1000, help="page size of read-all, both sides")
    add_size_options(p, FULL)
    p.add_argument("--profile", action="store_true",
                   help="also profile our PostgreSQL single-event append")
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    args = p.parse_args(argv)

    sizes = chosen_sizes(args, FULL, QUICK)
    backends = chosen_backends(p, args.backends)
    tmp = None
    if args.sqlite_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="okr-bench-")
        args.sqlite_dir = tmp.name

    payloads = make_payloads()
    d, m = payloads[0]
    payload_bytes = len(_dumps(d).encode()) + len(_dumps(m).encode())
    print(f"event store benchmark: ours (okr_shared.eventstore) vs eventsourcing "
          f"{ES_VERSION}; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs; sizes {sizes}; payload ~{payload_bytes} bytes JSON "
          f"(data+metadata); OKR_SQLITE_SYNCHRONOUS={os.environ.get('OKR_SQLITE_SYNCHRONOUS', 'FULL (default)')}",
          flush=True)

    load_before = [round(x, 2) for x in os.getloadavg()]
    if load_before[0] > 0.5:
        print(f"note: load average {load_before[0]} before the run; other work on this machine "
              "skews the figures (both sides alternate, so ratios suffer less)", flush=True)
    results: dict = {}
    failed = []
    started = time.perf_counter()
    try:
        for backend in backends:
            try:
                results[backend] = run_backend(backend, args, sizes, payloads)
            except Exception as e:  # report, go on with the other backend, fail at the end
                failed.append(backend)
                results[backend] = {"error": f"{type(e).__name__}: {e}"}
                print(f"[{backend}] FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        if args.profile and "postgres" in backends and "postgres" not in failed:
            profile_append(args.pg_url, payloads)
    finally:
        if tmp is not None:
            tmp.cleanup()

    targets = check_targets(results)
    if targets:
        print("\ntargets: " + ", ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in targets.items()))
    summary = {
        "bench": "eventstore",
        "quick": args.quick,
        "sizes": sizes,
        "read_batch": args.read_batch,
        "payload_bytes": payload_bytes,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "eventsourcing_version": ES_VERSION,
        "ours_source_digest": ours_source_digest(),
        **run_figures(load_before, started),
        "results": results,
        "targets": targets,
    }
    print_summary(summary, args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
