"""Group commit on PostgreSQL (okr_shared.eventstore.group_commit, ADR 0020): concurrent
appends of one process share a transaction, and each keeps its own semantics.

Green threads on the real server, as in the services. To make a group form at a known
moment, the first append's transaction is held open (its clock sleeps) while the others
queue behind it; the next transaction then writes all of them.
"""

import uuid

import eventlet
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text

from okr_shared.eventstore import (
    ANY,
    NO_STREAM,
    DuplicateEventIds,
    EventStore,
    NewEvent,
    StreamNotFound,
    WrongExpectedVersion,
    make_engine,
    migrate,
)
from okr_shared.clock import now_us

from tests.infra import POSTGRES
from tests.waiting import wait_until

# the suite's ``database`` fixture (tests/conftest.py), on PostgreSQL only
pytestmark = pytest.mark.parametrize("database", [POSTGRES], indirect=True)


def ev(n=0, tenant="acme", **kw):
    return NewEvent("okr.v1.CheckInRecorded", {"value": n}, tenant_id=tenant, **kw)


class HoldFirst:
    """A clock whose first reading (inside the first transaction) waits until released."""

    def __init__(self):
        self.gate = eventlet.event.Event()
        self.calls = 0

    def __call__(self):
        self.calls += 1
        if self.calls == 1:
            self.gate.wait()
        return now_us()


def leader_held(clock):
    """Wait until the leader is inside its transaction, held by the clock's first reading."""
    wait_until(lambda: clock.calls >= 1, timeout=10, interval=0.005, message="the leader in its transaction")


def queued(store, n: int):
    """Wait until ``n`` appends wait in the group's queue (behind the held leader)."""
    wait_until(lambda: len(store._group._pending) == n, timeout=10, interval=0.005, message=f"{n} appends queued")


def run_group(store, clock, appends):
    """Start a leader (appends[0]) held inside its transaction, queue the others behind
    it, release: returns each append's result or exception, in order."""
    def call(args):
        try:
            return store.append(*args)
        except Exception as e:  # noqa: BLE001 - the outcome is what is tested
            return e

    leader = eventlet.spawn(call, appends[0])
    leader_held(clock)
    followers = [eventlet.spawn(call, a) for a in appends[1:]]
    queued(store, len(followers))
    groups_before = store._group.groups
    clock.gate.send(None)
    outcomes = [leader.wait()] + [f.wait() for f in followers]
    return outcomes, store._group.groups - groups_before


def queue_behind_a_held_leader(store, first: str):
    """The leader appending in a held transaction, ``first`` queued behind it, then three
    more (kr-0..kr-2): returns (leader, first's green thread, the three)."""
    leader = eventlet.spawn(store.append, "kr-lead", NO_STREAM, [ev(0)])
    leader_held(store._clock)
    behind = eventlet.spawn(store.append, first, NO_STREAM, [ev(1)])
    queued(store, 1)
    rest = [eventlet.spawn(store.append, f"kr-{i}", NO_STREAM, [ev(i)]) for i in range(3)]
    queued(store, 4)
    return leader, behind, rest


def positions(store):
    return [e.position for e in store.read_all()]


def group_metrics():
    return (REGISTRY.get_sample_value("okr_event_store_append_group_size_count"),
            REGISTRY.get_sample_value("okr_event_store_append_group_size_sum"),
            REGISTRY.get_sample_value("okr_event_store_append_group_failures_total"))


def test_appends_queued_behind_a_transaction_share_the_next_one(database):
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    appends = [(f"kr-{i}", NO_STREAM, [ev(i), ev(i + 100)]) for i in range(20)]
    before = group_metrics()
    outcomes, groups = run_group(store, clock, appends)
    assert groups == 1, "the 19 queued appends were written by one transaction"
    assert store._group.grouped_appends == 19
    after = group_metrics()
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 19, 0)
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    # in queue order, gap-free, each append contiguous
    assert [(o.first_position, o.last_position) for o in outcomes] == [(2 * i + 1, 2 * i + 2) for i in range(20)]
    assert all(o.stream_version == 2 and not o.already_stored for o in outcomes)
    assert positions(store) == list(range(1, 41))
    assert store.head_position() == 40
    assert store.verify().ok
    assert store.chain_head("acme")["event_count"] == 40


def test_each_append_of_a_group_keeps_its_own_expected_version_per_tenant_stream(database):
    seed = EventStore(database.engine)
    seed.append("kr-a", NO_STREAM, [ev(0)])
    seed.append("kr-a", NO_STREAM, [ev(0, tenant="globex")])  # the same id: globex's own stream
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    appends = [
        ("kr-lead", NO_STREAM, [ev(1)]),
        ("kr-a", 1, [ev(2)]),            # ok: version 1 → 2
        ("kr-a", 1, [ev(3)]),            # conflict: the previous append of the group made it 2
        ("kr-a", 2, [ev(4)]),            # ok: sees the group's own earlier append
        ("kr-a", 1, [ev(5, tenant="globex")]),  # ok: globex's kr-a, at its own version 1
        ("kr-new", NO_STREAM, [ev(6)]),  # ok
        ("kr-missing", 3, [ev(7)]),      # no such stream
        ("globex-2", NO_STREAM, [ev(8, tenant="globex")]),  # ok, the other tenant's chain
    ]
    outcomes, groups = run_group(store, clock, appends)
    assert groups == 1
    lead, a2, a_conflict, a3, globex_a, new, missing, globex = outcomes
    assert isinstance(a_conflict, WrongExpectedVersion) and a_conflict.actual_version == 2
    assert isinstance(missing, StreamNotFound)
    assert (a2.stream_version, a3.stream_version, globex_a.stream_version, new.stream_version,
            globex.stream_version) == (2, 3, 2, 1, 1)
    # refused appends took no position: gap-free, in queue order
    assert [o.first_position for o in (lead, a2, a3, globex_a, new, globex)] == [3, 4, 5, 6, 7, 8]
    assert positions(store) == [1, 2, 3, 4, 5, 6, 7, 8]
    assert store.head_position() == 8
    assert [e.data["value"] for e in store.read_stream("kr-a", tenant_id="acme")] == [0, 2, 4]
    assert [e.data["value"] for e in store.read_stream("kr-a", tenant_id="globex")] == [0, 5]
    assert store.verify().ok  # both tenants' chains run through the group
    assert store.chain_head("globex")["last_position"] == 8
    assert store.chain_head("acme")["last_position"] == 7


def test_a_group_whose_appends_are_all_refused_writes_nothing_and_leaves_no_hole(database):
    EventStore(database.engine).append("kr-a", NO_STREAM, [ev(0)])
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    appends = [("kr-lead", NO_STREAM, [ev(1)])] + [("kr-a", NO_STREAM, [ev(i)]) for i in range(5)]
    outcomes, _ = run_group(store, clock, appends)
    assert all(isinstance(o, WrongExpectedVersion) for o in outcomes[1:])
    assert store.head_position() == 2
    assert store.append("kr-b", NO_STREAM, [ev(9)]).first_position == 3
    assert positions(store) == [1, 2, 3]
    assert store.verify().ok


def test_a_retry_in_the_same_group_is_answered_as_already_stored(database):
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    batch = [ev(1, event_id=uuid.uuid4()), ev(2, event_id=uuid.uuid4())]
    appends = [("kr-lead", NO_STREAM, [ev(0)]), ("kr-a", NO_STREAM, batch), ("kr-a", NO_STREAM, batch),
               ("kr-b", NO_STREAM, [ev(3)])]
    outcomes, _ = run_group(store, clock, appends)
    first, retry = outcomes[1], outcomes[2]
    assert not first.already_stored and retry.already_stored
    assert (retry.first_position, retry.last_position) == (first.first_position, first.last_position)
    assert positions(store) == [1, 2, 3, 4]
    assert store.verify().ok


def test_an_event_id_stored_earlier_fails_only_its_own_append(database):
    EventStore(database.engine).append("kr-old", NO_STREAM, [ev(0, event_id=(taken := uuid.uuid4()))])
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    appends = [("kr-lead", NO_STREAM, [ev(1)]), ("kr-a", NO_STREAM, [ev(2)]),
               ("kr-b", NO_STREAM, [ev(3), ev(4, event_id=taken)]), ("kr-c", NO_STREAM, [ev(5)])]
    outcomes, _ = run_group(store, clock, appends)
    assert isinstance(outcomes[2], DuplicateEventIds)
    assert [o.stream_id for o in (outcomes[0], outcomes[1], outcomes[3])] == ["kr-lead", "kr-a", "kr-c"]
    assert positions(store) == [1, 2, 3, 4]  # the group's unique violation was redone alone
    assert [e.stream_id for e in store.read_all()] == ["kr-old", "kr-lead", "kr-a", "kr-c"]
    assert store.verify().ok


def test_a_failure_inside_the_group_transaction_redoes_each_append_alone(database):
    failures = []

    class FailGroup(HoldFirst):
        def __call__(self):
            if self.calls == 1 and not failures:  # the group's transaction: fail it once
                self.calls += 1
                failures.append(1)
                raise RuntimeError("crash inside the group's transaction")
            return super().__call__()

    clock = FailGroup()
    store = EventStore(database.engine, clock=clock)
    appends = [(f"kr-{i}", NO_STREAM, [ev(i)]) for i in range(6)]
    failed_before = group_metrics()[2]
    outcomes, groups = run_group(store, clock, appends)
    assert failures == [1]
    assert group_metrics()[2] == failed_before + 1
    assert groups == 0  # the group failed; its appends were written one by one
    assert all(not isinstance(o, Exception) for o in outcomes), outcomes
    assert sorted(o.first_position for o in outcomes) == list(range(1, 7))
    assert positions(store) == list(range(1, 7))
    assert store.verify().ok


def test_a_leader_killed_in_its_transaction_does_not_strand_the_queue(database):
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    leader = eventlet.spawn(store.append, "kr-lead", NO_STREAM, [ev(0)])
    leader_held(clock)
    followers = [eventlet.spawn(store.append, f"kr-{i}", NO_STREAM, [ev(i)]) for i in range(5)]
    queued(store, 5)
    leader.kill()  # e.g. a worker killed at its deadline, inside the transaction
    results = [f.wait() for f in followers]
    assert sorted(r.stream_id for r in results) == [f"kr-{i}" for i in range(5)]
    assert [e.stream_id for e in store.read_all()] == [r.stream_id for r in sorted(results, key=lambda r: r.first_position)]
    assert store.verify().ok
    assert store.append("kr-after", NO_STREAM, [ev(9)]).last_position == 6


def test_a_follower_killed_while_queued_leaves_and_the_rest_go_on(database):
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    leader, gone, rest = queue_behind_a_held_leader(store, "kr-gone")
    gone.kill()
    clock.gate.send(None)
    leader.wait()
    assert sorted(r.wait().stream_id for r in rest) == ["kr-0", "kr-1", "kr-2"]
    assert "kr-gone" not in {e.stream_id for e in store.read_all()}
    assert positions(store) == [1, 2, 3, 4]
    assert store.verify().ok


def test_many_green_threads_racing_on_few_streams(database):
    """The race of the conformance suite inside one process: every expected version is
    won exactly once, whatever the grouping, and the log stays gap-free and chained."""
    store = EventStore(database.engine)
    wins, conflicts = [], []

    def writer(w):
        for _ in range(15):
            stream = f"kr-{w % 3}"
            version = store.stream_version(stream, tenant_id="acme")
            try:
                r = store.append(stream, version or NO_STREAM, [ev(w)])
                wins.append((stream, r.stream_version))
            except WrongExpectedVersion:
                conflicts.append(w)

    pool = eventlet.GreenPool(30)
    list(pool.imap(writer, range(30)))
    assert store._group.grouped_appends > store._group.groups > 0, "groups formed"
    assert sorted(wins) == sorted(set(wins)), "no version won twice"
    for s in range(3):
        assert [e.stream_version for e in store.read_stream(f"kr-{s}", tenant_id="acme")] == list(
            range(1, 1 + sum(1 for w in wins if w[0] == f"kr-{s}")))
    assert positions(store) == list(range(1, len(wins) + 1))
    assert len(wins) + len(conflicts) == 30 * 15
    assert store.verify().ok


def test_group_commit_can_be_switched_off(database, monkeypatch):
    monkeypatch.setenv("OKR_EVENTSTORE_GROUP_COMMIT", "0")
    assert EventStore(database.engine)._group is None
    monkeypatch.setenv("OKR_EVENTSTORE_GROUP_COMMIT", "maybe")
    with pytest.raises(ValueError, match="OKR_EVENTSTORE_GROUP_COMMIT"):
        EventStore(database.engine)
    monkeypatch.delenv("OKR_EVENTSTORE_GROUP_COMMIT")
    assert EventStore(database.engine)._group is not None


def test_sqlite_appends_are_not_grouped(database, tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/eventstore.db")
    try:
        migrate(engine)
        assert EventStore(engine)._group is None
    finally:
        engine.dispose()


def test_head_and_chain_heads_after_groups_match_the_log(database):
    store = EventStore(database.engine)

    def writer(w):
        tenant = ("acme", "globex")[w % 2]
        for i in range(10):
            store.append(f"{tenant}-kr-{w}", ANY, [ev(i, tenant=tenant)])

    list(eventlet.GreenPool(16).imap(writer, range(16)))
    with database.engine.connect() as conn:
        heads = dict(conn.execute(text("SELECT tenant_id, event_count FROM es_chain_heads")).all())
    assert heads == {"acme": 80, "globex": 80}
    assert store.head_position() == 160 and positions(store) == list(range(1, 161))
    assert store.verify().ok


def test_a_follower_killed_just_after_it_was_handed_the_lead_passes_it_on(database):
    clock = HoldFirst()
    store = EventStore(database.engine, clock=clock)
    group = store._group
    killed = []
    hand_over = group._hand_over

    def hand_over_then_kill():  # the kill lands between the hand-over and the wake-up
        hand_over()
        if not killed:
            killed.append(True)
            promoted.kill()

    group._hand_over = hand_over_then_kill
    leader, promoted, rest = queue_behind_a_held_leader(store, "kr-promoted")
    clock.gate.send(None)
    with eventlet.Timeout(10):
        leader.wait()
        assert sorted(r.wait().stream_id for r in rest) == ["kr-0", "kr-1", "kr-2"]
    assert killed
    assert "kr-promoted" not in {e.stream_id for e in store.read_all()}
    assert positions(store) == [1, 2, 3, 4]
    assert not group._active and not group._pending
