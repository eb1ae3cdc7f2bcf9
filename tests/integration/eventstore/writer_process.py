"""A separate OS process that writes to (or tails) the event store, for the
conformance suite's concurrency tests. Prints one JSON object on stdout.

    python writer_process.py MODE URL SEARCH_PATH START_AT NAME [ARGS...]

It is a real process, not a green thread, so the database's own locking is what is
tested (SQLite's file lock across processes, PostgreSQL's row lock).
"""

import json
import sys
import time

from okr_shared.eventstore import ANY, EventStore, NewEvent, WrongExpectedVersion, make_engine


def main() -> None:
    mode, url, search_path, start_at, name, *args = sys.argv[1:]
    connect_args = {"options": f"-csearch_path={search_path}"} if search_path != "-" else {}
    store = EventStore(make_engine(url, connect_args=connect_args))
    store.head_position()  # connect before the start line
    time.sleep(max(0.0, float(start_at) - time.time()))
    print(json.dumps(MODES[mode](store, name, *args)))


def race(store, name, stream, versions):
    """Append one event at each expected version 0..versions-1, as fast as possible."""
    wins, conflicts = [], []
    for v in range(int(versions)):
        try:
            store.append(stream, v, [NewEvent("test.Raced", {"writer": name, "v": v}, tenant_id="t1")])
            wins.append(v)
        except WrongExpectedVersion as e:
            conflicts.append([v, e.actual_version])
    return {"wins": wins, "conflicts": conflicts}


def batches(store, name, count, size):
    """Append `count` batches of `size` events to this writer's own streams."""
    out = []
    for i in range(int(count)):
        r = store.append(
            f"{name}-{i % 10}",
            ANY,
            [NewEvent("test.Batched", {"writer": name, "i": i, "j": j}, tenant_id=name) for j in range(int(size))],
        )
        out.append([r.first_position, r.last_position])
    return {"batches": out}


def tail(store, name, total, timeout):
    """Follow read_all from the start until `total` events are seen; record every time
    a read returned a position other than the next one expected (a visible hole)."""
    seen, holes, deadline = 0, [], time.time() + float(timeout)
    while seen < int(total) and time.time() < deadline:
        for ev in store.read_all(seen + 1, batch_size=500):
            if ev.position != seen + 1:
                holes.append([seen + 1, ev.position])
            seen = ev.position
    return {"seen": seen, "holes": holes}


MODES = {"race": race, "batches": batches, "tail": tail}

if __name__ == "__main__":
    main()
