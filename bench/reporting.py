"""Reporting read models: rebuild throughput beside the physical limit, as-of board, board latency.

    make bench-reporting                          # full: 1,000,000 events, SQLite and PostgreSQL
    .venv/bin/python bench/reporting.py --quick   # ~50,000 events, a smoke test
    .venv/bin/python bench/reporting.py --backends sqlite --events 200000

Seeding. The generated company history (tests/fixtures/company_history.py: real
commands through the real deciders, ~800 events per company, 8 seeds) is repeated over
as many tenants as needed (tenant ``t0000``, ``t0001``, ...; fresh event ids; the
tenants interleaved by their day-by-day ``recorded_at_us``, so the store is every
company's history up to one instant) and written as the store's own rows: gap-free
positions, stream versions, each tenant's SHA-256 chain computed with the store's
``canonical_bytes``/``chain_hash``, the chain heads and the head counter. The rows are
bulk-inserted (SQLite: executemany in 50k-row transactions; PostgreSQL: COPY) instead of
``EventStore.append``: the company's streams hold ~10 events each, so appends could
not be 1000-event batches (it would be ~100,000 small appends per million events).
``EventStore.verify()`` then checks every chain, position and head (skip: --no-verify).

Measured per backend, each phase in a fresh subprocess (its peak RSS is its own):

* raw scan, SQL: ``SELECT <columns> FROM es_events ORDER BY position`` on a bare DBAPI
  cursor with ``fetchmany(1000)`` (PostgreSQL: a server-side cursor, itersize 1000, so
  memory stays flat) — the physical limit;
* raw scan, store: ``EventStore.scan()`` pages (what the rebuild reads) and
  ``EventStore.read_all()`` (RecordedEvents);
* scan + decode: ``scan()`` plus orjson parsing of every payload and metadata — what any
  fold must at least do;
* fold: ``projections.fold_rows`` over ``scan()`` into one in-memory model (history rows
  included), the cyclic GC on;
* full rebuild: ``bulk_rebuild.rebuild(engine, store, workers=1)`` and with one worker process
  per CPU (at most 4) into the reporting tables of a separate database (history rows
  written per page, entity rows at the end, indexes, the swap and the consumer offset).

Ratios are throughput ratios (events/s ÷ scan events/s).

As-of board: a separate store of --asof-events (100,000) events; ``fold_rows`` over
``rows_as_of(store.scan(), position=p)`` into a model without the history table (what the
service's ``as_of`` does for a board) + ``queries.board`` of one tenant on the day of that
position, for p = the head (every event folded) and the middle; p50/p99 over
--asof-reps; and the same from the tenant's events only (``scan(tenant_id=)``, as the
service reads), checked to give the same board; the middle board is also checked
against the generic path (``fold_as_of(store.read_all())``).

Board latency: ``queries.board`` on the folded model of the generated company (one
tenant, the quarter's last day), p50/p99 over --board-reps (>= 200) runs; and, after the
full rebuild, ``storage.load_model(conn, tenant, <board tables>)`` + ``queries.board``
from the rebuilt tables (tenant t0000 among all the others).

The last line printed is one JSON object with every figure and setting.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import io
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from datetime import date, datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for p in (ROOT / "shared", ROOT / "services", ROOT):
    sys.path.insert(0, str(p))

from sqlalchemy import make_url, text  # noqa: E402

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # imported by the bus layer

from okr_shared.eventstore import EventStore, make_engine, migrate  # noqa: E402
from okr_shared.eventstore.canonical import GENESIS_HASH, canonical_bytes, chain_hash, dumps  # noqa: E402
from okr_shared.eventstore.transactions import EVENT_COLUMNS  # noqa: E402

from common import add_size_options, chosen_backends, chosen_sizes, print_summary, run_figures  # noqa: E402

DEFAULT_PG_URL = os.environ.get(
    "OKR_BENCH_REPORTING_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/okr_bench_reporting"
)
SEEDS = 8
NS = uuid.UUID("0b5e7d1c-3f2a-4e6b-8c9d-1a2b3c4d5e6f")
BOARD_TABLES = ("cycles", "objectives", "key_results", "initiatives")

FULL = dict(events=1_000_000, asof_events=100_000, asof_reps=7, board_reps=500, scan_reps=1)
QUICK = dict(events=50_000, asof_events=20_000, asof_reps=3, board_reps=200, scan_reps=1)


def _maxrss_mb() -> float:
    """Peak RSS of this process image (VmHWM: reset by exec, unlike getrusage's ru_maxrss,
    which keeps the forking parent's peak)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


# ------------------------------------------------------------------- seeding


#: Placeholder of the tenant in the templates' ids: stream ids are unique store-wide, so every
#: entity id (and the stream named after it) gets the tenant as a suffix, e.g. kr-churn-t0042.
_T = "@T@"


def _templates():
    """SEEDS company histories as prepared rows: (recorded_at_us, stream_id, stream_version,
    event_type, data_json, metadata_json), with ``_T`` where the tenant goes."""
    from tests.fixtures.company_history import drafts

    out = []
    for k in range(SEEDS):
        ds = sorted(drafts("T", seed=2026 + k), key=lambda d: d.recorded_at_us)  # record()'s order
        ids = {d.stream_id.split("-", 1)[1] for d in ds}

        def rename(v):
            if isinstance(v, str):
                return v + "-" + _T if v in ids else v
            if isinstance(v, dict):
                return {key: rename(x) for key, x in v.items()}
            if isinstance(v, list):
                return [rename(x) for x in v]
            return v

        out.append([(d.recorded_at_us, f"{d.stream_id}-{_T}", d.stream_version, d.event_type,
                     dumps(rename(d.data)), dumps(d.metadata)) for d in ds])
    return out


def generate_rows(n_events: int, templates=None):
    """Yield ``n_events`` store rows (EVENT_COLUMNS order) and finally, as the generator's
    return value, {tenant: (last_position, last_hash, count)}."""
    templates = templates or _templates()
    per_tenant = statistics.mean(len(t) for t in templates)
    n_tenants = max(1, -(-n_events // int(per_tenant)) + 1)
    tenants = [f"t{i:04d}" for i in range(n_tenants)]

    def stream(i):
        for j, row in enumerate(templates[i % SEEDS]):
            yield row[0], i, j

    heads: dict[str, list] = {}
    position = 0
    for at_us, i, j in heapq.merge(*(stream(i) for i in range(n_tenants))):
        position += 1
        if position > n_events:
            break
        _, stream_id, version, event_type, data_json, meta_json = templates[i % SEEDS][j]
        tenant = tenants[i]
        stream_id = stream_id.replace(_T, tenant)
        data_json = data_json.replace(_T, tenant)
        event_id = str(uuid.uuid5(NS, f"{tenant}/{stream_id}/{version}"))
        h = heads.get(tenant)
        prev = h[1] if h else GENESIS_HASH
        digest = chain_hash(prev, canonical_bytes(position, tenant, stream_id, version, event_id, event_type, 1,
                                                  at_us, data_json, meta_json))
        if h:
            h[0], h[1], h[2] = position, digest, h[2] + 1
        else:
            heads[tenant] = [position, digest, 1]
        yield (position, tenant, stream_id, version, event_id, event_type, 1, data_json, meta_json, at_us,
               digest.hex())
    return {t: (p, d.hex(), n) for t, (p, d, n) in heads.items()}


_INSERT = f"INSERT INTO es_events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join(['?'] * len(EVENT_COLUMNS))})"


class SqliteSink:
    def __init__(self, engine):
        self.raw = engine.raw_connection()
        self.cur = self.raw.cursor()
        self.seconds = 0.0

    def write(self, rows):
        t0 = time.perf_counter()
        self.cur.execute("BEGIN")
        self.cur.executemany(_INSERT, rows)
        self.cur.execute("COMMIT")
        self.seconds += time.perf_counter() - t0

    def finish(self, heads, last):
        t0 = time.perf_counter()
        self.cur.execute("BEGIN")
        self.cur.executemany("INSERT INTO es_chain_heads (tenant_id, last_position, last_hash, event_count) "
                             "VALUES (?, ?, ?, ?)", [(t, *h) for t, h in heads.items()])
        self.cur.execute("UPDATE es_head SET last_position = ? WHERE id = 1", (last,))
        self.cur.execute("COMMIT")
        self.cur.execute("ANALYZE")
        self.raw.close()
        self.seconds += time.perf_counter() - t0


class PostgresSink:
    def __init__(self, engine):
        self.raw = engine.raw_connection()
        self.seconds = 0.0

    def write(self, rows):
        t0 = time.perf_counter()
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        buf.seek(0)
        cur = self.raw.cursor()
        cur.copy_expert(f"COPY es_events ({', '.join(EVENT_COLUMNS)}) FROM STDIN WITH (FORMAT csv)", buf)
        self.raw.commit()
        self.seconds += time.perf_counter() - t0

    def finish(self, heads, last):
        t0 = time.perf_counter()
        cur = self.raw.cursor()
        cur.executemany("INSERT INTO es_chain_heads (tenant_id, last_position, last_hash, event_count) "
                        "VALUES (%s, %s, %s, %s)", [(t, *h) for t, h in heads.items()])
        cur.execute("UPDATE es_head SET last_position = %s WHERE id = 1", (last,))
        self.raw.commit()
        self.raw.set_isolation_level(0)
        self.raw.cursor().execute("VACUUM ANALYZE es_events")
        self.raw.close()
        self.seconds += time.perf_counter() - t0


def seed(engines: dict, n_events: int, templates, chunk: int = 50_000) -> dict:
    """Write the same generated rows into every engine; returns timings."""
    sinks = {name: (SqliteSink(e) if e.dialect.name == "sqlite" else PostgresSink(e)) for name, e in engines.items()}
    gen = generate_rows(n_events, templates)
    t0 = time.perf_counter()
    rows, n = [], 0
    heads = None
    while True:
        try:
            rows.append(next(gen))
        except StopIteration as stop:
            heads = stop.value
            break
        if len(rows) >= chunk:
            for s in sinks.values():
                s.write(rows)
            n += len(rows)
            rows = []
    if rows:
        for s in sinks.values():
            s.write(rows)
        n += len(rows)
    for s in sinks.values():
        s.finish(heads, n)
    total = time.perf_counter() - t0
    writes = sum(s.seconds for s in sinks.values())
    return {"events": n, "tenants": len(heads), "seconds_total": round(total, 2),
            "seconds_generate": round(total - writes, 2),
            **{f"seconds_write_{name}": round(s.seconds, 2) for name, s in sinks.items()}}


# --------------------------------------------------------------------- phases


def _phase(name: str, url: str, rm_url: str | None) -> dict:
    """Run in a fresh subprocess: one measured pass; returns events, seconds, peak RSS."""
    engine = make_engine(url)
    store = EventStore(engine)
    rss0 = _maxrss_mb()
    extra = {}
    t0 = time.perf_counter()
    if name == "scan_sql":
        n = 0
        raw = engine.raw_connection()
        cols = ", ".join(EVENT_COLUMNS)
        if engine.dialect.name == "postgresql":
            cur = raw.cursor(name="bench_scan")
            cur.itersize = 1000
        else:
            cur = raw.cursor()
        cur.execute(f"SELECT {cols} FROM es_events ORDER BY position")
        while True:
            rows = cur.fetchmany(1000)
            if not rows:
                break
            n += len(rows)
        cur.close()
        raw.close()
    elif name == "scan_store":
        n = 0
        for page in store.scan():
            n += len(page)
    elif name == "scan_read_all":
        n = 0
        for _ in store.read_all():
            n += 1
    elif name == "scan_decode":
        from orjson import loads

        n = 0
        for page in store.scan():
            for row in page:
                loads(row[4])
                loads(row[5])
            n += len(page)
    elif name == "fold":
        from okr_shared.readmodels.projections import fold_rows, new_model

        model = new_model()
        n = 0
        for page in store.scan():
            fold_rows(model, page)
            n += len(page)
        extra["rows"] = {t: len(r) for t, r in model.items()}
    elif name.startswith("rebuild"):
        from okr_services.reporting import bulk_rebuild, storage

        rm = make_engine(rm_url)
        workers = 1 if name == "rebuild" else min(os.cpu_count() or 1, 4)
        extra["workers"] = workers
        n = bulk_rebuild.rebuild(rm, store, workers=workers)
        with rm.connect() as conn:
            extra["rows"] = {t: conn.execute(text(f"SELECT count(*) FROM {storage.table_name(t)}")).scalar()
                             for t in ("cycles", "objectives", "key_results", "initiatives", "history")}
        rm.dispose()
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - t0
    engine.dispose()
    return {"events": n, "seconds": round(seconds, 3), "events_per_s": round(n / seconds),
            "rss_before_mb": rss0, "peak_rss_mb": _maxrss_mb(), **extra}


def run_phase(name: str, url: str, rm_url: str | None = None) -> dict:
    cmd = [sys.executable, __file__, "--phase", name, "--url", url] + (["--rm-url", rm_url] if rm_url else [])
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"phase {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_phase(name, url, reps, rm_url=None) -> dict:
    results = [run_phase(name, url, rm_url) for _ in range(reps)]
    best = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]
    if reps > 1:
        best["reps"] = reps
    return best


# ------------------------------------------------------------------ databases


def pg_database(url: str, suffix: str = "") -> str:
    u = make_url(url)
    u = u.set(database=u.database + suffix)
    admin = make_engine(u.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{u.database}"'))
    finally:
        admin.dispose()
    return u.render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    u = make_url(url)
    admin = make_engine(u.set(database="postgres").render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def urls_for(backend: str, args, name: str) -> str:
    if backend == "sqlite":
        path = Path(args.sqlite_dir) / f"{name}.db"
        for f in Path(args.sqlite_dir).glob(f"{name}.db*"):
            f.unlink()
        return f"sqlite:///{path}"
    return pg_database(args.pg_url, "" if name == "events" else f"_{name}")


# --------------------------------------------------------------- measurements


def _day_of(us: int) -> date:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc).date()


def measure_asof(url: str, reps: int) -> dict:
    """The as-of board as the service's ``as_of`` computes it (``store.scan`` pages,
    ``rows_as_of``, ``fold_rows`` into a model without the history table, ``board``), over
    the whole store (every tenant's events: the worst case of one tenant holding them
    all) to its head and to its middle; then from the tenant's events only."""
    from okr_services.reporting import queries
    from okr_shared.readmodels.projections import fold_as_of, fold_rows, new_model, rows_as_of

    engine = make_engine(url)
    store = EventStore(engine)
    head = store.head_position()
    out = {"store_events": head, "tenant": "t0000", "reps": reps}
    boards = {}
    for label, position in (("head", head), ("middle", head // 2)):
        at = next(iter(store.read_all(position, to_position=position)))
        today = _day_of(at.recorded_at_us)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model = new_model(history=False)
            fold_rows(model, rows_as_of(store.scan(1, to_position=position), position=position))
            b = queries.board(model, "t0000", today)
            times.append(time.perf_counter() - t0)
            del model
        tenant_times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            model = new_model(history=False)
            fold_rows(model, rows_as_of(store.scan(1, tenant_id="t0000", to_position=position), position=position))
            b2 = queries.board(model, "t0000", today)
            tenant_times.append(time.perf_counter() - t0)
        assert b2 == b, "the tenant's replay must give the same board as the whole store's"
        boards[label] = b
        out[label] = {"position": position, "events_folded": position, "today": today.isoformat(),
                      "kr_cards": sum(len(c["cards"]) for c in b["key_results"]),
                      "p50_ms": round(statistics.median(times) * 1000, 1), "p99_ms": round(pct(times, 99) * 1000, 1),
                      "events_per_s_p50": round(position / statistics.median(times)),
                      "tenant_only": {"events": sum(len(p) for p in store.scan(1, tenant_id="t0000",
                                                                              to_position=position)),
                                      "p50_ms": round(statistics.median(tenant_times) * 1000, 1),
                                      "p99_ms": round(pct(tenant_times, 99) * 1000, 1)}}
    # the same board from the slower generic path (RecordedEvents, the full model): a cross-check
    reference = fold_as_of(store.read_all(), position=head // 2)
    assert queries.board(reference, "t0000", date.fromisoformat(out["middle"]["today"])) == boards["middle"]
    engine.dispose()
    return out


def measure_board_tables(rm_url: str, reps: int) -> dict:
    from okr_services.reporting import queries, storage
    from tests.fixtures.company_history import LAST_DAY

    engine = make_engine(rm_url)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        with engine.connect() as conn:
            model = storage.load_model(conn, "t0000", tables=BOARD_TABLES)
        queries.board(model, "t0000", LAST_DAY)
        times.append(time.perf_counter() - t0)
    engine.dispose()
    return {"reps": reps, "p50_ms": round(statistics.median(times) * 1000, 2),
            "p99_ms": round(pct(times, 99) * 1000, 2), "tables": list(BOARD_TABLES)}


def measure_board_memory(reps: int) -> dict:
    from okr_services.reporting import queries
    from okr_shared.readmodels.projections import fold
    from tests.fixtures.company_history import LAST_DAY, company_history

    events = company_history()
    model = fold(events)
    queries.board(model, "acme", LAST_DAY)  # warm-up
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        b = queries.board(model, "acme", LAST_DAY)
        times.append(time.perf_counter() - t0)
    return {"events": len(events), "kr_cards": sum(len(c["cards"]) for c in b["key_results"]),
            "initiative_cards": sum(len(c["cards"]) for c in b["initiatives"]), "today": LAST_DAY.isoformat(),
            "reps": reps, "p50_ms": round(statistics.median(times) * 1000, 2),
            "p99_ms": round(pct(times, 99) * 1000, 2)}


def _has_rebuild() -> bool:
    try:
        from okr_services.reporting import bulk_rebuild
    except Exception:
        return False
    return hasattr(bulk_rebuild, "rebuild")


def run_backend(backend: str, args, sizes, templates) -> dict:
    out: dict = {}
    url = urls_for(backend, args, "events")
    engine = make_engine(url)
    migrate(engine)
    print(f"\n[{backend}] seeding {sizes['events']:,} events ...", flush=True)
    out["seed"] = seed({backend: engine}, sizes["events"], templates)
    s = out["seed"]
    print(f"  seeded {s['events']:,} events ({s['tenants']} tenants) in {s['seconds_total']} s "
          f"(generate + hash {s['seconds_generate']} s, write {s[f'seconds_write_{backend}']} s)", flush=True)
    if args.verify:
        t0 = time.perf_counter()
        v = EventStore(engine).verify()
        out["verify"] = {"ok": v.ok, "events": v.events_checked, "seconds": round(time.perf_counter() - t0, 2)}
        print(f"  verify: {v} in {out['verify']['seconds']} s", flush=True)
        if not v.ok:
            raise RuntimeError(f"generated store does not verify: {v}")
    engine.dispose()

    reps = sizes["scan_reps"]
    for name, label in (("scan_sql", "raw scan, bare SQL cursor"), ("scan_store", "raw scan, store.scan pages"),
                        ("scan_read_all", "raw scan, store.read_all events"),
                        ("scan_decode", "scan + parse payload and metadata"),
                        ("fold", "fold_rows over store.scan, in memory")):
        r = out[name] = _median_phase(name, url, reps)
        print(f"  {label:<36} {r['events_per_s']:>10,} events/s  {r['seconds']:>7.2f} s  "
              f"peak RSS {r['peak_rss_mb']:,.0f} MB", flush=True)
    if _has_rebuild() and not args.no_rebuild:
        for name in ("rebuild", "rebuild_workers"):
            rm_url = urls_for(backend, args, "readmodel")
            r = out[name] = run_phase(name, url, rm_url)
            label = f"full rebuild, {r['workers']} worker" + ("s" if r["workers"] > 1 else "")
            print(f"  {label:<36} {r['events_per_s']:>10,} events/s  {r['seconds']:>7.2f} s  "
                  f"peak RSS {r['peak_rss_mb']:,.0f} MB (parent)  rows {r['rows']}", flush=True)
        b = out["board_from_tables"] = measure_board_tables(rm_url, sizes["board_reps"])
        print(f"  board from tables (load_model t0000 + board): p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms "
              f"({b['reps']} runs)", flush=True)
        if backend == "postgres" and not args.keep:
            drop_pg_database(rm_url)
    else:
        out["rebuild"] = None
        print("  full rebuild: skipped (" + ("--no-rebuild" if args.no_rebuild else "bulk_rebuild.rebuild not available")
              + ")", flush=True)
    ratios = {}
    for num in ("scan_decode", "fold", "rebuild", "rebuild_workers"):
        if out.get(num):
            for den in ("scan_sql", "scan_store", "scan_read_all"):
                ratios[f"{num}/{den}"] = round(out[num]["events_per_s"] / out[den]["events_per_s"], 3)
    out["ratios"] = ratios
    print("  ratios (throughput): " + ", ".join(f"{k} {v}" for k, v in ratios.items()), flush=True)

    asof_url = urls_for(backend, args, "asof")
    e2 = make_engine(asof_url)
    migrate(e2)
    seed({backend: e2}, sizes["asof_events"], templates)
    e2.dispose()
    a = out["asof_board"] = measure_asof(asof_url, sizes["asof_reps"])
    for label in ("head", "middle"):
        r = a[label]
        print(f"  as-of board at the {label} ({r['events_folded']:,} of {a['store_events']:,} events folded + board): "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms ({a['reps']} runs); the tenant's events only "
              f"({r['tenant_only']['events']} events): p50 {r['tenant_only']['p50_ms']} ms, "
              f"p99 {r['tenant_only']['p99_ms']} ms", flush=True)
    if backend == "postgres" and not args.keep:
        drop_pg_database(asof_url)
        drop_pg_database(url)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="~50,000 events, a smoke test")
    p.add_argument("--backends", default="sqlite,postgres", help="comma list: sqlite,postgres")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="the events database (DROPPED and recreated; "
                   "also <name>_readmodel and <name>_asof); env OKR_BENCH_REPORTING_POSTGRES_URL")
    p.add_argument("--sqlite-dir", default=None, help="directory for the SQLite files (default: a temp dir)")
    add_size_options(p, FULL)
    p.add_argument("--no-verify", dest="verify", action="store_false", help="skip verify() of the seeded store")
    p.add_argument("--no-rebuild", action="store_true", help="skip bulk_rebuild.rebuild (fold only)")
    p.add_argument("--keep", action="store_true", help="keep the PostgreSQL databases")
    p.add_argument("--out", default=None, help="also write the JSON result to this file")
    p.add_argument("--phase", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    p.add_argument("--rm-url", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.phase:
        print(json.dumps(_phase(args.phase, args.url, args.rm_url)), flush=True)
        return 0

    sizes = chosen_sizes(args, FULL, QUICK)
    backends = chosen_backends(p, args.backends)
    tmp = None
    if args.sqlite_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="okr-bench-reporting-", dir=os.environ.get("OKR_BENCH_TMP"))
        args.sqlite_dir = tmp.name
    Path(args.sqlite_dir).mkdir(parents=True, exist_ok=True)

    load_before = [round(x, 2) for x in os.getloadavg()]
    print(f"reporting benchmark: Python {platform.python_version()}, {os.cpu_count()} CPUs; sizes {sizes}; "
          f"backends {backends}; OKR_SQLITE_SYNCHRONOUS={os.environ.get('OKR_SQLITE_SYNCHRONOUS', 'FULL (default)')}; "
          f"load average {load_before}", flush=True)
    if load_before[0] > 0.5:
        print(f"note: load average {load_before[0]} before the run; other work on this machine skews the figures",
              flush=True)
    started = time.perf_counter()
    t0 = time.perf_counter()
    templates = _templates()
    print(f"templates: {SEEDS} generated company histories, {sum(map(len, templates)):,} events (ids suffixed per tenant), "
          f"{time.perf_counter() - t0:.2f} s", flush=True)
    b = measure_board_memory(sizes["board_reps"])
    print(f"\nboard query on the folded generated company ({b['events']} events, {b['kr_cards']} KR + "
          f"{b['initiative_cards']} initiative cards): p50 {b['p50_ms']} ms, p99 {b['p99_ms']} ms "
          f"({b['reps']} runs)", flush=True)
    results: dict = {"board_in_memory": b}
    failed = []
    try:
        for backend in backends:
            try:
                results[backend] = run_backend(backend, args, sizes, templates)
            except Exception as e:
                failed.append(backend)
                results[backend] = {"error": f"{type(e).__name__}: {e}"}
                print(f"[{backend}] FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
    finally:
        if tmp is not None:
            tmp.cleanup()
    summary = {
        "bench": "reporting",
        "quick": args.quick,
        "sizes": sizes,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        **run_figures(load_before, started),
        "results": results,
    }
    print_summary(summary, args.out)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
