"""Concurrent appends of one process on PostgreSQL: group commit on vs off (ADR 0020).

    make bench-appends
    .venv/bin/python bench/concurrent_appends.py --seconds 5 --concurrency 1,16

As in the progress service: one eventlet-patched process, green threads appending to one
``EventStore`` (psycopg2 made green), one check-in event per append to one of --streams
key result streams with its expected version checked (each green thread owns its
streams, so no append conflicts). Per concurrency level, the two settings run
alternately (--rounds rounds each, --seconds each, after an untimed warm-up), each on a
schema of its own that is dropped afterwards. Figures: appends/s (all rounds' appends /
all rounds' time), append latency p50 / p99 over every append, and with grouping on the
mean number of appends per group transaction. The database server runs on this machine
too; its CPU is not measured. The last line printed is one JSON object.
"""

from __future__ import annotations

import eventlet

eventlet.monkey_patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402

from sqlalchemy import text  # noqa: E402

from okr_shared.eventstore import NO_STREAM, EventStore, NewEvent, make_engine, migrate  # noqa: E402

DEFAULT_PG_URL = os.environ.get("OKR_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/test")


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(len(values) * p / 100))] * 1000, 2) if values else None


def run(url: str, group: bool, concurrency: int, streams: int, seconds: float, warmup: float) -> dict:
    schema = f"bench_appends_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        migrate(engine)
        store = EventStore(engine, group_commit=group)
        versions = {f"kr-{i}": 0 for i in range(streams)}
        latencies: list[float] = []
        state = {"measure": False, "stop": False}

        def writer(w: int) -> None:
            mine = [s for i, s in enumerate(versions) if i % concurrency == w] or [f"kr-w{w}"]
            for s in mine:
                versions.setdefault(s, 0)
            n = 0
            while not state["stop"]:
                s = mine[n % len(mine)]
                n += 1
                event = NewEvent("okr.v1.CheckInRecorded", {"key_result_id": s, "value": n, "comment": "bench"},
                                 tenant_id="acme")
                t0 = time.perf_counter()
                r = store.append(s, versions[s] or NO_STREAM, [event])
                if state["measure"]:
                    latencies.append(time.perf_counter() - t0)
                versions[s] = r.stream_version

        pool = eventlet.GreenPool(concurrency)
        for w in range(concurrency):
            pool.spawn(writer, w)
        eventlet.sleep(warmup)
        groups0 = (store._group.groups, store._group.grouped_appends) if store._group else (0, 0)
        state["measure"] = True
        t0 = time.perf_counter()
        eventlet.sleep(seconds)
        state["measure"] = False
        elapsed = time.perf_counter() - t0
        groups1 = (store._group.groups, store._group.grouped_appends) if store._group else (0, 0)
        state["stop"] = True
        pool.waitall()
        assert store.verify().ok
        groups = groups1[0] - groups0[0]
        return {"appends": len(latencies), "seconds": elapsed, "latencies": latencies,
                "groups": groups, "grouped_appends": groups1[1] - groups0[1]}
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pg-url", default=DEFAULT_PG_URL)
    p.add_argument("--concurrency", default="1,4,16,32", help="green threads appending, comma list")
    p.add_argument("--streams", type=int, default=50)
    p.add_argument("--seconds", type=float, default=8.0, help="per round and setting")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    print(f"concurrent appends on PostgreSQL ({args.pg_url.rsplit('@', 1)[-1]}): {args.streams} streams, "
          f"{args.rounds} × {args.seconds:g} s per setting and level, settings alternating; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results = []
    for c in levels:
        acc = {True: [], False: []}
        for r in range(args.rounds):
            order = (True, False) if r % 2 == 0 else (False, True)
            for group in order:
                acc[group].append(run(args.pg_url, group, c, args.streams, args.seconds, args.warmup))
        for group in (False, True):
            runs = acc[group]
            lat = [x for run_ in runs for x in run_["latencies"]]
            appends = sum(run_["appends"] for run_ in runs)
            groups = sum(run_["groups"] for run_ in runs)
            grouped = sum(run_["grouped_appends"] for run_ in runs)
            row = {
                "concurrency": c, "group_commit": group,
                "appends_per_s": round(appends / sum(run_["seconds"] for run_ in runs), 1),
                "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                "mean_ms": round(statistics.fmean(lat) * 1000, 2) if lat else None,
                # appends written by a group transaction (>= 2 appends) and their mean group size
                "grouped_share": round(grouped / appends, 3) if group and appends else None,
                "appends_per_group": round(grouped / groups, 1) if group and groups else None,
            }
            results.append(row)
            extra = (f"   {row['grouped_share'] * 100:.0f} % of appends in groups of {row['appends_per_group']} on average"
                     if group and row["appends_per_group"] else "")
            print(f"  {c:>3} green threads, group commit {'on ' if group else 'off'}: "
                  f"{row['appends_per_s']:>8.1f} appends/s   p50 {row['p50_ms']:>6} ms   p99 {row['p99_ms']:>7} ms{extra}",
                  flush=True)
    print(json.dumps({"bench": "concurrent_appends", "streams": args.streams, "seconds": args.seconds,
                      "rounds": args.rounds, "results": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
