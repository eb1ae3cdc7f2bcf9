"""The event store's promises, held against SQLite and PostgreSQL alike.

Every test runs once per backend (the ``database``/``store`` fixtures of
tests/conftest.py): a fresh SQLite file, or a fresh schema on the real PostgreSQL.
"""

import json
import math
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

import eventlet
import pytest
from sqlalchemy import text

from okr_shared.eventstore import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    DuplicateEventIds,
    EmptyBatch,
    EventStore,
    InvalidAppend,
    InvalidEvent,
    InvalidExpectedVersion,
    NewEvent,
    PayloadTooLarge,
    StreamNotFound,
    TenantMismatch,
    WrongExpectedVersion,
)

WRITER = Path(__file__).with_name("writer_process.py")


def ev(n=0, tenant="acme", event_type="okr.v1.CheckInRecorded", **kw):
    return NewEvent(event_type, {"value": n, "comment": f"check-in {n}"}, tenant_id=tenant, **kw)


def snapshot(store):
    """Everything observable about the store, to prove a refused call changed nothing."""
    return store.head_position(), [tuple(e) for e in store.read_all()], store.chain_head("acme")


# --------------------------------------------------------------- optimistic concurrency


def test_first_append_creates_stream_at_version_one_and_position_one(store):
    result = store.append("kr-1", NO_STREAM, [ev()])
    assert (result.stream_version, result.first_position, result.last_position) == (1, 1, 1)
    assert not result.already_stored
    assert [e.stream_version for e in store.read_stream("kr-1", tenant_id="acme")] == [1]


def test_append_at_expected_version_extends_the_stream(store):
    store.append("kr-1", NO_STREAM, [ev(1)])
    result = store.append("kr-1", 1, [ev(2), ev(3)])
    assert (result.stream_version, result.first_position, result.last_position) == (3, 2, 3)
    assert [e.data["value"] for e in store.read_stream("kr-1", tenant_id="acme")] == [1, 2, 3]


def test_wrong_expected_version_raises_conflict_carrying_actual_version(store):
    store.append("kr-1", NO_STREAM, [ev(1), ev(2)])
    before = snapshot(store)
    with pytest.raises(WrongExpectedVersion) as info:
        store.append("kr-1", 1, [ev(3)])
    assert info.value.actual_version == 2
    assert info.value.expected_version == 1
    assert snapshot(store) == before


@pytest.mark.parametrize("expected", [NO_STREAM, 0])
def test_no_stream_refuses_an_existing_stream(store, expected):
    store.append("kr-1", NO_STREAM, [ev(1)])
    with pytest.raises(WrongExpectedVersion) as info:
        store.append("kr-1", expected, [ev(2)])
    assert info.value.actual_version == 1


def test_any_appends_whatever_the_version(store):
    store.append("kr-1", ANY, [ev(1)])
    assert store.append("kr-1", ANY, [ev(2)]).stream_version == 2


def test_stream_exists_requires_the_stream(store):
    with pytest.raises(StreamNotFound):
        store.append("kr-1", STREAM_EXISTS, [ev()])
    store.append("kr-1", NO_STREAM, [ev()])
    assert store.append("kr-1", STREAM_EXISTS, [ev(2)]).stream_version == 2


def test_expecting_a_version_of_an_unknown_stream_is_stream_not_found(store):
    with pytest.raises(StreamNotFound) as info:
        store.append("kr-404", 3, [ev()])
    assert info.value.stream_id == "kr-404"
    assert store.head_position() == 0


# ---------------------------------------------------------------------- idempotency


@pytest.mark.parametrize("retry_expected", ["same", "any"])
def test_retrying_an_append_with_the_same_event_ids_reports_success_and_writes_nothing(store, retry_expected):
    store.append("kr-1", NO_STREAM, [ev(0)])
    batch = [ev(1), ev(2)]
    first = store.append("kr-1", 1, batch)
    store.append("kr-2", NO_STREAM, [ev(9)])
    before = snapshot(store)
    again = store.append("kr-1", 1 if retry_expected == "same" else ANY, batch)
    assert again.already_stored
    assert (again.stream_version, again.first_position, again.last_position) == (
        first.stream_version, first.first_position, first.last_position,
    )
    assert snapshot(store) == before


def test_a_batch_mixing_stored_and_new_event_ids_is_refused(store):
    stored = ev(1)
    store.append("kr-1", NO_STREAM, [stored])
    before = snapshot(store)
    for expected in (1, ANY):
        with pytest.raises(DuplicateEventIds):
            store.append("kr-1", expected, [stored, ev(2)])
    assert snapshot(store) == before


def test_event_ids_stored_on_another_stream_are_refused(store):
    stored = ev(1)
    store.append("kr-1", NO_STREAM, [stored])
    before = snapshot(store)
    with pytest.raises(DuplicateEventIds):
        store.append("kr-2", NO_STREAM, [stored])
    assert snapshot(store) == before


# -------------------------------------------------------------------------- bad input


def _bad_inputs():
    big = {"blob": "x" * (256 * 1024)}
    return {
        "empty batch": ("kr-1", 1, [], EmptyBatch),
        "negative expected version": ("kr-1", -1, [ev()], InvalidExpectedVersion),
        "string expected version": ("kr-1", "1", [ev()], InvalidExpectedVersion),
        "bool expected version": ("kr-1", True, [ev()], InvalidExpectedVersion),
        "oversized payload": ("kr-1", 1, [NewEvent("t.X", big, tenant_id="acme")], PayloadTooLarge),
        "oversized metadata": (
            "kr-1", 1, [NewEvent("t.X", {}, tenant_id="acme", metadata={"m": "x" * 20000})], PayloadTooLarge,
        ),
        "payload not an object": ("kr-1", 1, [NewEvent("t.X", [1, 2], tenant_id="acme")], InvalidEvent),
        "payload with NaN": ("kr-1", 1, [NewEvent("t.X", {"v": math.nan}, tenant_id="acme")], InvalidEvent),
        "payload not JSON": ("kr-1", 1, [NewEvent("t.X", {"v": object()}, tenant_id="acme")], InvalidEvent),
        "malformed event id": ("kr-1", 1, [ev(event_id="not-a-uuid")], InvalidEvent),
        "event id twice in batch": (
            "kr-1", 1, [ev(event_id="8c4b4c8e-6a1f-4a5e-9d1e-0f3e2b1a9c7d")] * 2, InvalidEvent,
        ),
        "malformed event type": ("kr-1", 1, [NewEvent("no spaces allowed", {}, tenant_id="acme")], InvalidEvent),
        "malformed tenant": ("kr-1", 1, [ev(tenant="")], InvalidEvent),
        "schema version zero": ("kr-1", 1, [ev(schema_version=0)], InvalidEvent),
        "tenant mismatch in batch": ("kr-1", 1, [ev(1), ev(2, tenant="globex")], TenantMismatch),
        "empty stream id": ("", 1, [ev()], InvalidAppend),
        "control character in stream id": ("kr\n1", 1, [ev()], InvalidAppend),
        "lone surrogate in payload": ("kr-1", 1, [NewEvent("t.X", {"v": "\ud800"}, tenant_id="acme")], InvalidEvent),
        "lone surrogate in stream id": ("kr-\ud800", 1, [ev()], InvalidAppend),
        "single event instead of a list": ("kr-1", 1, ev(), InvalidAppend),
        "batch over the size limit": ("kr-1", 1, [ev(i) for i in range(1001)], InvalidAppend),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_a_specific_error_and_leaves_the_store_unchanged(store, case):
    store.append("kr-1", NO_STREAM, [ev(0)])
    before = snapshot(store)
    stream, expected, events, error = BAD_INPUTS[case]
    with pytest.raises(error) as info:
        store.append(stream, expected, events)
    assert str(info.value)  # says what is wrong
    assert snapshot(store) == before
    assert store.verify().ok


def test_invalid_event_error_names_the_event_and_field(store):
    with pytest.raises(PayloadTooLarge) as info:
        store.append("kr-1", NO_STREAM, [ev(1), NewEvent("t.X", {"b": "x" * 300_000}, tenant_id="acme")])
    assert (info.value.index, info.value.field) == (1, "data")
    assert "event #1: data:" in str(info.value)


# --------------------------------------------------------------------------- reading


def test_read_stream_from_a_version(store):
    store.append("kr-1", NO_STREAM, [ev(i) for i in range(5)])
    store.append("kr-2", NO_STREAM, [ev(99)])
    assert [e.stream_version for e in store.read_stream("kr-1", 3, tenant_id="acme")] == [3, 4, 5]
    assert list(store.read_stream("kr-1", 6, tenant_id="acme")) == []


def test_read_stream_pages_through_long_streams(store):
    store.append("kr-1", NO_STREAM, [ev(i) for i in range(25)])
    assert [e.data["value"] for e in store.read_stream("kr-1", batch_size=7, tenant_id="acme")] == list(range(25))


def test_reading_an_unknown_stream_raises_stream_not_found(store):
    with pytest.raises(StreamNotFound):
        store.read_stream("kr-404", tenant_id="acme")


# ------------------------------------------------------------------ streams per tenant


def test_two_tenants_each_have_their_own_stream_of_the_same_id(store):
    """A stream is named by (tenant, stream id) (ADR 0023): the same id in another tenant
    is another stream, with its own versions, expected-version checks and reads."""
    a1 = store.append("objective-o1", NO_STREAM, [ev(1), ev(2)])
    g1 = store.append("objective-o1", NO_STREAM, [ev(10, tenant="globex")])
    assert (a1.stream_version, g1.stream_version, g1.first_position) == (2, 1, 3)
    assert store.stream_version("objective-o1", tenant_id="acme") == 2
    assert store.stream_version("objective-o1", tenant_id="globex") == 1
    assert store.stream_version("objective-o1", tenant_id="initech") == 0
    with pytest.raises(WrongExpectedVersion) as info:  # globex's version, not acme's
        store.append("objective-o1", 1, [ev(3)])
    assert info.value.actual_version == 2
    store.append("objective-o1", 1, [ev(11, tenant="globex")])
    assert [e.data["value"] for e in store.read_stream("objective-o1", tenant_id="acme")] == [1, 2]
    assert [(e.tenant_id, e.stream_version, e.data["value"])
            for e in store.read_stream("objective-o1", tenant_id="globex")] == [("globex", 1, 10), ("globex", 2, 11)]
    with pytest.raises(StreamNotFound) as missing:  # exactly like a stream nobody has
        store.read_stream("objective-o1", tenant_id="initech")
    with pytest.raises(StreamNotFound) as nobody:
        store.read_stream("objective-o404", tenant_id="initech")
    assert str(missing.value) == str(nobody.value).replace("o404", "o1")
    assert store.verify().ok and store.chain_head("globex")["event_count"] == 2


def test_an_idempotent_retry_is_per_tenant(store):
    """A retry is recognised in its own tenant's stream; an event id stored by another
    tenant is never answered as "already stored" (nor described) to this one."""
    batch = [ev(1, event_id=uuid.uuid4())]
    first = store.append("kr-1", NO_STREAM, batch)
    assert store.append("kr-1", NO_STREAM, batch).already_stored
    other = [ev(1, tenant="globex", event_id=batch[0].event_id)]
    with pytest.raises(DuplicateEventIds) as refused:
        store.append("kr-1", NO_STREAM, other)
    assert "acme" not in str(refused.value)
    with pytest.raises(DuplicateEventIds):
        store.append_batch([("kr-1", NO_STREAM, other)])
    assert store.append("kr-1", NO_STREAM, [ev(1, tenant="globex")]).first_position == first.last_position + 1


def test_append_batch_writes_the_tenants_own_streams(store):
    store.append("objective-o1", NO_STREAM, [ev(0, tenant="globex")])
    store.append("cycle-c1", NO_STREAM, [ev(0, tenant="globex")])
    results = store.append_batch([("objective-o1", NO_STREAM, [ev(1)]), ("kr-k1", NO_STREAM, [ev(2)])],
                                 expect={"cycle-c1": 0})  # globex's cycle-c1 is not acme's
    assert [(r.stream_version, r.first_position) for r in results] == [(1, 3), (1, 4)]
    with pytest.raises(WrongExpectedVersion):  # acme's own objective-o1 exists now
        store.append_batch([("objective-o1", NO_STREAM, [ev(3)])])
    assert store.verify().ok


def test_read_all_from_a_position_with_tenant_and_type_filters(store):
    store.append("a-1", NO_STREAM, [ev(1, event_type="okr.v1.CheckInRecorded")])
    store.append("g-1", NO_STREAM, [ev(2, tenant="globex")])
    store.append("a-2", NO_STREAM, [ev(3, event_type="okr.v1.KeyResultDefined")])
    store.append("a-1", 1, [ev(4, event_type="okr.v1.CheckInRecorded")])
    assert [e.position for e in store.read_all()] == [1, 2, 3, 4]
    assert [e.position for e in store.read_all(3)] == [3, 4]
    assert [e.position for e in store.read_all(to_position=2)] == [1, 2]
    assert [e.position for e in store.read_all(tenant_id="acme")] == [1, 3, 4]
    assert [e.position for e in store.read_all(tenant_id="acme", event_types=["okr.v1.CheckInRecorded"])] == [1, 4]
    assert [e.position for e in store.read_all(2, tenant_id="acme", batch_size=1)] == [3, 4]
    assert list(store.read_all(event_types=[])) == []


def test_scan_pages_plain_rows_of_the_log(store):
    store.append("a-1", NO_STREAM, [ev(1, event_type="okr.v1.CheckInRecorded")])
    store.append("g-1", NO_STREAM, [ev(2, tenant="globex")])
    store.append("a-2", NO_STREAM, [ev(3, event_type="okr.v1.KeyResultDefined"), ev(4)])
    store.append("a-1", 1, [ev(5, event_type="okr.v1.CheckInRecorded")])

    def rows(*args, **kwargs):
        pages = list(store.scan(*args, **kwargs))
        assert all(isinstance(page, list) and page for page in pages)
        return [row for page in pages for row in page]

    expected = [(e.position, e.tenant_id, e.stream_id, e.event_type, e.data_json, e.metadata_json, e.recorded_at_us)
                for e in store.read_all()]
    assert [tuple(r) for r in rows()] == expected
    assert [len(page) for page in store.scan(batch_size=2)] == [2, 2, 1]
    assert [r[0] for r in rows(3)] == [3, 4, 5]
    assert [r[0] for r in rows(2, to_position=4, batch_size=1)] == [2, 3, 4]
    assert [r[0] for r in rows(tenant_id="acme")] == [1, 3, 4, 5]
    assert rows(6) == [] and rows(tenant_id="nobody") == []
    with pytest.raises(ValueError, match="from_position must be an integer >= 1"):
        next(store.scan(0))


def test_recorded_events_carry_metadata_and_recording_time(store):
    before_us = time.time_ns() // 1000
    store.append("kr-1", NO_STREAM, [ev(1, metadata={"actor": "ana", "correlation_id": "c-1", "reason": "why"})])
    (e,) = store.read_all()
    assert e.metadata == {"actor": "ana", "correlation_id": "c-1", "reason": "why"}
    assert e.tenant_id == "acme" and e.event_type == "okr.v1.CheckInRecorded"
    assert uuid.UUID(e.event_id)
    assert before_us <= e.recorded_at_us <= time.time_ns() // 1000
    assert e.recorded_at.tzinfo is not None


def test_unicode_payloads_round_trip_exactly(store):
    data = {"title": "Zufriedenheit ≥ 9 — 客户满意度 🚀", "nested": {"a": [1, 2.5, None, True]}}
    store.append("kr-1", NO_STREAM, [NewEvent("t.X", data, tenant_id="acme")])
    assert next(store.read_stream("kr-1", tenant_id="acme")).data == data
    assert store.verify().ok


# ------------------------------------------------------------------- gap-free positions


def test_an_append_that_rolls_back_leaves_no_hole(database):
    def failing_clock():
        raise RuntimeError("crash inside the append transaction, after the head moved")

    store = EventStore(database.engine)
    store.append("kr-1", NO_STREAM, [ev(1)])
    with pytest.raises(RuntimeError):
        EventStore(database.engine, clock=failing_clock).append("kr-1", 1, [ev(2), ev(3)])
    assert store.head_position() == 1
    # A rollback from inside the database (a unique violation) leaves no hole either.
    with pytest.raises(DuplicateEventIds):
        store.append("kr-2", NO_STREAM, [next(iter([NewEvent("t.X", {}, tenant_id="acme",
                                                             event_id=store_event_id(store))]))])
    result = store.append("kr-1", 1, [ev(2)])
    assert result.first_position == 2
    assert [e.position for e in store.read_all()] == [1, 2]
    assert store.verify().ok


def store_event_id(store):
    return next(store.read_all()).event_id


def _run_processes(database, mode, names, *args, timeout=180):
    search_path = database.schema if database.backend == "postgres" else "-"
    start_at = str(time.time() + 1.5)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WRITER), mode, database.url, search_path, start_at, name, *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in names
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    return results


@pytest.mark.slow
def test_concurrent_writers_on_one_stream_exactly_one_wins_each_version(store, database):
    writers, versions = 6, 40
    results = _run_processes(database, "race", [f"w{i}" for i in range(writers)], "kr-race", versions)
    wins = sorted(v for r in results for v in r["wins"])
    assert wins == list(range(versions)), "each expected version won by exactly one writer"
    conflicts = [c for r in results for c in r["conflicts"]]
    assert len(conflicts) == writers * versions - versions
    assert all(actual > expected for expected, actual in conflicts)
    events = list(store.read_stream("kr-race", tenant_id="t1"))
    assert [e.stream_version for e in events] == list(range(1, versions + 1))
    winners = {v: r for r, res in zip(range(writers), results) for v in res["wins"]}
    assert [e.data["writer"] for e in events] == [f"w{winners[v]}" for v in range(versions)]
    assert store.verify().ok


@pytest.mark.slow
def test_two_writers_get_gap_free_positions_in_commit_order_without_interleaving(store, database):
    appends, size = 1000, 3
    results = _run_processes(database, "batches", ["w0", "w1"], appends, size)
    # A reader tailing concurrently would have seen every position in order: checked
    # separately below; here, the final state.
    batches = [tuple(b) for r in results for b in r["batches"]]
    assert all(last - first == size - 1 for first, last in batches), "a batch is contiguous"
    positions = sorted(p for first, last in batches for p in range(first, last + 1))
    assert positions == list(range(1, 2 * appends * size + 1)), "no hole, no duplicate"
    for r in results:  # each writer saw its own appends in increasing positions
        firsts = [b[0] for b in r["batches"]]
        assert firsts == sorted(firsts)
    events = list(store.read_all())
    assert [e.position for e in events] == positions
    # recorded_at is taken under the write lock: commit order is position order
    assert all(a.recorded_at_us <= b.recorded_at_us for a, b in zip(events, events[1:]))
    assert store.verify().ok


@pytest.mark.slow
def test_a_reader_tailing_concurrent_writers_never_sees_a_hole(store, database):
    appends, size = 300, 2
    total = 2 * appends * size
    search_path = database.schema if database.backend == "postgres" else "-"
    start_at = str(time.time() + 1.5)
    cmd = [sys.executable, str(WRITER)]
    reader = subprocess.Popen(
        cmd + ["tail", database.url, search_path, start_at, "r", str(total), "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    writers = [
        subprocess.Popen(
            cmd + ["batches", database.url, search_path, start_at, name, str(appends), str(size)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name in ("w0", "w1")
    ]
    for w in writers:
        assert w.wait(timeout=180) == 0, w.stderr.read()
    out, err = reader.communicate(timeout=180)
    assert reader.returncode == 0, err
    result = json.loads(out)
    assert result == {"seen": total, "holes": []}


def test_green_threads_appending_to_one_sqlite_or_postgres_store_all_succeed(store):
    """Under eventlet, writers in one process never trip over each other (on SQLite a
    yielded write transaction would make the next writer fail with 'database is locked')."""

    def writer(w):
        for i in range(10):
            store.append(f"kr-{w}", ANY, [ev(i)])
        return w

    pool = eventlet.GreenPool(20)
    assert sorted(pool.imap(writer, range(20))) == list(range(20))
    assert [e.position for e in store.read_all()] == list(range(1, 201))
    assert store.verify().ok


# ------------------------------------------------------------------- tamper evidence


def _tamper(database, sql, **params):
    with database.engine.begin() as conn:
        conn.execute(text(sql), params)


def _history(store):
    for t in ("acme", "globex"):
        for s in range(3):
            store.append(f"{t}-kr-{s}", NO_STREAM, [ev(i, tenant=t) for i in range(4)])


def test_verify_passes_on_an_untouched_history(store):
    _history(store)
    result = store.verify()
    assert result.ok and result.events_checked == 24 and result.tenants_checked == 2
    assert store.verify("acme").events_checked == 12


def test_changing_one_payload_byte_is_detected_and_named(store, database):
    _history(store)
    victim = [e for e in store.read_all()][13]
    tampered = victim.data_json.replace('"value":1', '"value":7')
    assert tampered != victim.data_json
    _tamper(database, "UPDATE es_events SET data = :d WHERE position = :p", d=tampered, p=victim.position)
    for result in (store.verify(), store.verify(victim.tenant_id)):
        assert not result.ok
        assert (result.position, result.event_id) == (victim.position, victim.event_id)
        assert "hash does not match" in result.problem
        assert str(victim.position) in str(result)


def test_editing_a_stored_hash_is_detected(store, database):
    _history(store)
    _tamper(database, "UPDATE es_events SET hash = :h WHERE position = 5", h="0" * 64)
    assert store.verify().position == 5


def test_removing_an_event_is_detected(store, database):
    _history(store)
    _tamper(database, "DELETE FROM es_events WHERE position = 7")
    full, tenant = store.verify(), store.verify("acme")
    assert not full.ok and full.position == 8 and "missing" in full.problem
    assert not tenant.ok and tenant.position == 8


def test_reordering_events_is_detected(store, database):
    _history(store)
    _tamper(database, "UPDATE es_events SET position = -1 WHERE position = 3")
    _tamper(database, "UPDATE es_events SET position = 3 WHERE position = 4")
    _tamper(database, "UPDATE es_events SET position = 4 WHERE position = -1")
    result = store.verify()
    assert not result.ok and result.position == 3


def test_truncating_a_tenants_history_is_detected(store, database):
    _history(store)
    last = store.chain_head("globex")["last_position"]
    _tamper(database, "DELETE FROM es_events WHERE position = :p", p=last)
    result = store.verify("globex")
    assert not result.ok and result.tenant_id == "globex" and "truncated" in result.problem


def _positions(store, tenant):
    return [(e.position, e.hash) for e in store.read_all() if e.tenant_id == tenant]


def test_an_older_anchor_proves_the_history_up_to_it(store):
    _history(store)
    acme = _positions(store, "acme")
    position, hash_ = acme[4]  # an auditor's head taken after acme's fifth event
    for anchor in ((hash_, position), (hash_, None)):
        result = store.verify("acme", anchor=anchor)
        assert result.ok and (result.anchor_position, result.anchor_event_count) == (position, 5)
        assert result.events_checked == 12 and result.chain_head["event_count"] == 12
    latest = store.verify("acme", anchor=acme[-1][::-1])
    assert latest.ok and latest.anchor_event_count == 12


def test_an_anchor_not_in_the_tenants_chain_is_not_ok(store):
    _history(store)
    acme, globex = _positions(store, "acme"), _positions(store, "globex")
    (p0, h0), (p1, h1) = acme[0], acme[1]
    mismatch = store.verify("acme", anchor=(h1, p0))
    assert not mismatch.ok and mismatch.anchor_position is None and mismatch.position is None
    assert mismatch.problem.startswith(f"expected head does not match: this tenant's event at position {p0}")
    # another tenant's event (its own hash at its own position) answers like a position beyond the head
    foreign = store.verify("acme", anchor=(globex[0][1], globex[0][0]))
    beyond = store.verify("acme", anchor=(globex[0][1], 10**9))
    assert foreign.problem == beyond.problem.replace(str(10**9), str(globex[0][0]))
    assert foreign.problem.startswith("expected head not found: this tenant's chain has no event at position")
    absent = store.verify("acme", anchor=(globex[-1][1], None))
    assert not absent.ok and absent.problem.startswith("expected head is not in this tenant's chain")
    with pytest.raises(ValueError):
        store.verify(anchor=(h0, p0))  # an anchor belongs to one tenant's chain


def test_a_chain_broken_after_the_anchor_still_reports_the_anchor(store, database):
    _history(store)
    acme = _positions(store, "acme")
    _tamper(database, "UPDATE es_events SET hash = :h WHERE position = :p", h="0" * 64, p=acme[6][0])
    result = store.verify("acme", anchor=acme[2][::-1])
    assert not result.ok and result.position == acme[6][0]
    assert (result.anchor_position, result.anchor_event_count) == (acme[2][0], 3)
    before = store.verify("acme", anchor=acme[8][::-1])
    assert not before.ok and before.anchor_position is None


def test_verify_reads_on_when_events_are_appended_during_its_scan(store, monkeypatch):
    """An append committed after the scan's last page but before the heads are read is
    checked too, not reported as a truncated history."""
    _history(store)
    pages, appended = store._pages, []

    def pages_then_append(*args, **kwargs):
        yield from pages(*args, **kwargs)
        if not appended:
            appended.append(store.append("acme-kr-0", ANY, [ev(9)]))

    monkeypatch.setattr(store, "_pages", pages_then_append)
    for tenant in ("acme", None):
        appended.clear()
        result = store.verify(tenant)
        assert appended and result.ok, result
        assert result.events_checked == (len(_positions(store, "acme")) if tenant else store.head_position())


# ------------------------------------------------------------------------ memory


@pytest.mark.slow
def test_reading_100000_events_keeps_memory_flat(store):
    payload = {"key_result_id": "kr-1", "value": 41.5, "confidence": 7, "comment": "x" * 120}
    for b in range(100):
        store.append(f"kr-{b}", NO_STREAM, [NewEvent("okr.v1.CheckInRecorded", payload, tenant_id="acme")
                                             for _ in range(1000)])

    def peak_while_reading(limit):
        tracemalloc.start()
        count = 0
        for e in store.read_all(to_position=limit):
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert count == limit
        return peak

    small, large = peak_while_reading(10_000), peak_while_reading(100_000)
    # Ten times the events, (about) the same memory: one batch at a time is held.
    assert large < small * 1.5, (small, large)
    assert large < 16 * 1024 * 1024


# ------------------------------------------------------- append_batch: many streams, one transaction


def test_append_batch_writes_several_streams_in_one_chain(store):
    store.append("kr-0", NO_STREAM, [ev(0)])
    results = store.append_batch([("objective-1", NO_STREAM, [ev(1)]), ("kr-1", NO_STREAM, [ev(2), ev(3)]),
                                  ("kr-0", 1, [ev(4)])])
    assert [(r.stream_id, r.stream_version, r.first_position, r.last_position) for r in results] == [
        ("objective-1", 1, 2, 2), ("kr-1", 2, 3, 4), ("kr-0", 2, 5, 5)]
    assert [e.data["value"] for e in store.read_all()] == [0, 1, 2, 3, 4]
    assert store.head_position() == 5 and store.chain_head("acme")["event_count"] == 5
    assert store.verify().ok


def test_append_batch_with_a_conflict_in_the_middle_writes_nothing(store):
    store.append("kr-2", NO_STREAM, [ev(0)])
    before = snapshot(store)
    with pytest.raises(WrongExpectedVersion) as info:
        store.append_batch([("kr-1", NO_STREAM, [ev(1)]), ("kr-2", NO_STREAM, [ev(2)]), ("kr-3", NO_STREAM, [ev(3)])])
    assert info.value.stream_id == "kr-2" and info.value.actual_version == 1
    assert snapshot(store) == before
    assert store.append("kr-1", NO_STREAM, [ev(1)]).first_position == 2  # no hole left behind
    assert store.verify().ok


def test_append_batch_failing_inside_the_insert_writes_nothing(store):
    taken = uuid.uuid4()
    store.append("kr-9", NO_STREAM, [ev(0, event_id=taken)])
    before = snapshot(store)
    # the third of five events collides with a stored id: the database refuses mid-insert
    with pytest.raises(DuplicateEventIds):
        store.append_batch([("kr-1", NO_STREAM, [ev(1), ev(2)]), ("kr-2", NO_STREAM, [ev(3, event_id=taken), ev(4)]),
                            ("kr-3", NO_STREAM, [ev(5)])])
    assert snapshot(store) == before
    assert store.verify().ok


def test_append_batch_resent_with_the_same_ids_is_a_no_op(store):
    batch = [("kr-1", NO_STREAM, [ev(1, event_id=uuid.uuid4())]),
             ("kr-2", NO_STREAM, [ev(2, event_id=uuid.uuid4()), ev(3, event_id=uuid.uuid4())])]
    first = store.append_batch(batch)
    before = snapshot(store)
    again = store.append_batch(batch)
    assert all(r.already_stored for r in again)
    assert [(r.stream_id, r.stream_version, r.first_position, r.last_position) for r in again] == [
        (r.stream_id, r.stream_version, r.first_position, r.last_position) for r in first]
    assert snapshot(store) == before
    with pytest.raises(DuplicateEventIds):  # only part of it again, with a new event: refused
        store.append_batch([batch[0], ("kr-3", NO_STREAM, [ev(4)])])
    assert snapshot(store) == before


def test_append_batch_refuses_bad_input_before_writing(store):
    store.append("kr-1", NO_STREAM, [ev(0, tenant="globex")])
    before = snapshot(store)
    with pytest.raises(EmptyBatch):
        store.append_batch([])
    with pytest.raises(InvalidAppend, match="twice"):
        store.append_batch([("kr-5", NO_STREAM, [ev(1)]), ("kr-5", ANY, [ev(2)])])
    with pytest.raises(TenantMismatch):
        store.append_batch([("kr-5", NO_STREAM, [ev(1)]), ("kr-6", NO_STREAM, [ev(2, tenant="globex")])])
    with pytest.raises(EmptyBatch):
        store.append_batch([("kr-5", NO_STREAM, [ev(1)]), ("kr-6", NO_STREAM, [])])
    small = EventStore(store.engine, max_batch_size=3)
    with pytest.raises(InvalidAppend, match="limit of 3"):
        small.append_batch([("kr-5", NO_STREAM, [ev(1), ev(2)]), ("kr-6", NO_STREAM, [ev(3), ev(4)])])
    small.close()
    assert snapshot(store) == before


def test_append_batch_checks_the_streams_it_was_decided_on(store):
    store.append("objective-1", NO_STREAM, [ev(0)])
    store.append_batch([("kr-1", NO_STREAM, [ev(1)])], expect={"objective-1": 1, "cycle-9": 0})
    store.append("objective-1", 1, [ev(2)])  # a concurrent change of the parent
    before = snapshot(store)
    with pytest.raises(WrongExpectedVersion) as info:
        store.append_batch([("kr-2", NO_STREAM, [ev(3)])], expect={"objective-1": 1})
    assert (info.value.stream_id, info.value.actual_version) == ("objective-1", 2)
    assert snapshot(store) == before
