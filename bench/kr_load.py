"""Loading a key result whose stream holds 1,000 events: p50/p99 on SQLite and
PostgreSQL, cold (with and without a snapshot) and warm. Target (issue): p99 <= 5 ms.

    make bench-kr-load
    .venv/bin/python bench/kr_load.py --backends sqlite --loads 200
    .venv/bin/python bench/kr_load.py --no-eventlet --gc-unfrozen   # a plain process

One load is ``Repository.load("kr-<id>", "acme")``, exactly what every command on the key result
and every ``get_key_result`` does: take the newest known state (kept in the process,
else the snapshot), read the events after it (type and payload, one query), parse their
JSON and fold them with ``okr_shared.domain.fold``.

The stream: one KeyResultDefined and 999 CheckInRecorded (value, confidence, a comment
of ~50 characters, author, effective date), written through the event store with the
metadata the services write. Cases:

* ``no snapshots``: cold, no snapshot store: all 1,000 events are folded;
* ``snapshots``: cold, the worst case of the services' policy (a snapshot every 100
  events): the snapshot is at version 901 and the 99 events after it are folded — the
  figure the target is checked against;
* ``cached``: warm, as the services run: the state is kept in the process from the
  previous load, and the query for newer events returns none.

As in the services (okr_services.dependencies), the process is monkey-patched by eventlet
first (psycopg2 then runs green, which costs a little per query) and the objects made
at start-up are frozen out of the garbage collector (without that, a full collection
over them stalls a load now and then by ~30 ms: --gc-unfrozen shows it). Each case runs
--loads timed loads after --warmup untimed ones. The last line is one JSON object with
every figure. PostgreSQL: a temporary schema in the database at --pg-url
(OKR_BENCH_POSTGRES_URL, default postgresql+psycopg2://postgres@127.0.0.1:5432/test),
dropped at the end. SQLite: a file in a fresh temporary directory (--sqlite-dir).
"""

from __future__ import annotations

import argparse
import os
import sys

if "--no-eventlet" not in sys.argv:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import eventlet
    eventlet.monkey_patch()

import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import date, timedelta  # noqa: E402

from sqlalchemy import select, text  # noqa: E402

from okr import v1  # noqa: E402,F401  (generated code must be built: make proto)
from okr.v1 import events_pb2 as ev  # noqa: E402
from okr_shared import domain  # noqa: E402
from okr_shared.contracts import event_type_of, payload_to_dict  # noqa: E402
from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, make_engine, migrate, schema  # noqa: E402
from okr_shared.eventstore.snapshots import SnapshotStore  # noqa: E402
from okr_shared.service_layer import Repository  # noqa: E402
from okr_shared.service_layer.repository import DEFAULT_CACHE_SIZE  # noqa: E402
from okr_shared.runtime import freeze_startup_objects  # noqa: E402

TARGET_P99_MS = 5.0
EVENTS = 1000
SNAPSHOT_AT = 901  # worst case of a snapshot every 100 events: 99 events on top
DEFAULT_PG_URL = os.environ.get("OKR_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def stream_events(kr_id: str) -> list:
    messages = [ev.KeyResultDefined(
        key_result_id=kr_id, objective_id="objective-1", cycle_id="2026-q3", title="Run 2x the 2020 distance",
        kind="KEY_RESULT_KIND_INCREASE_TO", start_value=0, target_value=2000, unit="km", weight=1.0,
        owner="ann", due_date="2026-09-30",
    )]
    day = date(2026, 7, 1)
    for i in range(EVENTS - 1):
        messages.append(ev.CheckInRecorded(
            check_in_id=str(uuid.uuid4()), key_result_id=kr_id, objective_id="objective-1",
            value=float(i * 2), confidence=i % 11, comment=f"week {i}: steady progress, knees fine, rain on tuesday",
            author="ann", effective_date=(day + timedelta(days=i % 90)).isoformat(),
        ))
    return messages


def fill(engine, kr_id: str) -> None:
    store = EventStore(engine)
    metadata = {"actor": "ann", "correlation_id": str(uuid.uuid4()), "causation_id": "bench"}
    events = [NewEvent(event_type_of(m), payload_to_dict(m), tenant_id="acme", metadata=metadata)
              for m in stream_events(kr_id)]
    version = 0
    for start in range(0, len(events), 100):
        version = store.append(f"kr-{kr_id}", version or NO_STREAM, events[start:start + 100]).stream_version
    store.close()


def timed_loads(repository: Repository, stream_id: str, loads: int, warmup: int) -> dict:
    for _ in range(warmup):
        repository.load(stream_id, "acme")
    times = []
    for _ in range(loads):
        t0 = time.perf_counter()
        loaded = repository.load(stream_id, "acme")
        times.append((time.perf_counter() - t0) * 1000)
    assert loaded.version == EVENTS and len(loaded.state.check_ins) == EVENTS - 1, loaded.version
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
        "max_ms": round(times[-1], 3),
        "loads": loads,
    }


CASES = {
    "no snapshots": "cold load, no snapshot: fold all 1,000 events",
    "snapshots": f"cold load: snapshot at {SNAPSHOT_AT} + fold of the {EVENTS - SNAPSHOT_AT} events after it",
    "cached": "warm load: state kept in the process + one query for newer events (none)",
}


def bench_backend(name: str, engine, loads: int, warmup: int) -> dict:
    migrate(engine)
    kr_id = str(uuid.uuid4())
    stream_id = f"kr-{kr_id}"
    fill(engine, kr_id)
    snapshots = SnapshotStore(engine)
    state = _state_at(engine, stream_id, SNAPSHOT_AT)  # made the way the services make it
    snapshots.save(stream_id, "acme", SNAPSHOT_AT, domain.SNAPSHOT_VERSION, (getattr(state, "to_snapshot", None) or state.to_dict)())
    # snapshot_every above the tail, so the timed loads never write a newer snapshot
    repositories = {
        "no snapshots": Repository(engine, domain),
        "snapshots": Repository(engine, domain, snapshots, snapshot_every=10**9),
        "cached": Repository(engine, domain, snapshots, snapshot_every=10**9, cache_size=DEFAULT_CACHE_SIZE),
    }
    results = {}
    for case, repository in repositories.items():
        figures = results[case] = timed_loads(repository, stream_id, loads, warmup)
        ok = "ok" if figures["p99_ms"] <= TARGET_P99_MS else "MISSED"
        print(f"{name:8} {case:12}  p50 {figures['p50_ms']:6.3f} ms  p99 {figures['p99_ms']:6.3f} ms  "
              f"max {figures['max_ms']:6.3f} ms  [{ok}]  {CASES[case]}", flush=True)
    return results


def _state_at(engine, stream_id: str, version: int):
    e = schema.events
    with engine.connect() as conn:
        rows = conn.execute(
            select(e.c.event_type, e.c.data)
            .where(e.c.tenant_id == "acme", e.c.stream_id == stream_id, e.c.stream_version <= version)
            .order_by(e.c.stream_version)
        ).all()
    return domain.fold([(t, json.loads(d)) for t, d in rows])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"])
    parser.add_argument("--loads", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--sqlite-dir", default=None)
    parser.add_argument("--no-eventlet", action="store_true", help="do not monkey-patch (the services do)")
    parser.add_argument("--gc-unfrozen", action="store_true",
                        help="do not gc.freeze() after start-up (the services do)")
    args = parser.parse_args(argv)

    if not args.gc_unfrozen:
        freeze_startup_objects()
    print(f"loading a key result whose stream holds {EVENTS} events (1 KeyResultDefined + "
          f"{EVENTS - 1} CheckInRecorded); eventlet monkey patching: {not args.no_eventlet}; "
          f"start-up objects frozen out of the GC: {not args.gc_unfrozen}", flush=True)
    report = {"benchmark": "kr_load", "events_in_stream": EVENTS, "target_p99_ms": TARGET_P99_MS,
              "eventlet": not args.no_eventlet, "gc_frozen": not args.gc_unfrozen, "python": platform.python_version(),
              "load_average": [round(x, 2) for x in os.getloadavg()], "results": {}}
    for backend in args.backends:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(dir=args.sqlite_dir) as folder:
                engine = make_engine(f"sqlite:///{folder}/kr_load.db")
                try:
                    report["results"]["sqlite"] = bench_backend("sqlite", engine, args.loads, args.warmup)
                finally:
                    engine.dispose()
        else:
            schema_name = f"bench_kr_load_{uuid.uuid4().hex[:10]}"
            admin = make_engine(args.pg_url)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema_name}"'))
            engine = make_engine(args.pg_url, connect_args={"options": f"-csearch_path={schema_name}"})
            try:
                report["results"]["postgres"] = bench_backend("postgres", engine, args.loads, args.warmup)
            finally:
                engine.dispose()
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema_name}" CASCADE'))
                admin.dispose()
    report["target_met_with_snapshots"] = all(
        r["snapshots"]["p99_ms"] <= TARGET_P99_MS for r in report["results"].values()
    )
    print(f"target p99 <= {TARGET_P99_MS:g} ms for a cold load with snapshots: "
          f"{'met' if report['target_met_with_snapshots'] else 'MISSED'} on {', '.join(report['results'])}")
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
