"""The notification service's delivery log (services/okr_services/notification/delivery.py)
on both backends of the shared ``database`` fixture (a real SQLite file, a schema of its
own on the real PostgreSQL server): exactly-once enqueue (also under a race), retries with
the backoff schedule (fake clock, seeded rng), permanent failures, slow/hanging sends not
blocking the others, concurrent dispatchers, expired claims, a restart, the log queries and
the timed rules' period claims.
"""

from __future__ import annotations

import json
import random
import threading
import time

import pytest
from sqlalchemy import func, select, update

from okr_shared.db import migrate, write_transaction
from okr_services.notification import delivery as dl
from okr_services.notification.delivery import (
    Dispatcher,
    RetryPolicy,
    claim_period,
    delivery_counts,
    enqueue,
    list_deliveries,
)
from okr_services.notification.message import DeliveryError, Notification
from tests.waiting import wait_until

T0 = 1_772_000_000_000_000  # a fixed "now" in microseconds
S = 1_000_000
HOOK = "https://hooks.example.com/services/T000/B000/sEcReTtOkEn"


class Clock:
    def __init__(self, now: int = T0):
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def engine(database):
    migrate(database.engine, "notification")
    migrate(database.engine, "notification")  # idempotent
    return database.engine


def note(n: int = 1, *, tenant="acme", rule="kr_stalled", recipient="alice", period="2026-W09") -> Notification:
    return Notification(tenant=tenant, rule=rule, subject=f"kr-{n}", period=period, recipient=recipient,
                        title=f"KR {n} is stalled", text="No check-in for 3 weeks.", severity="warning",
                        facts=(("Owner", recipient), ("Progress", "40 %")), data={"n": n})


def rows(engine, **where):
    t = dl.deliveries
    query = select(t)
    for k, v in where.items():
        query = query.where(t.c[k] == v)
    with engine.connect() as conn:
        return [r._asdict() for r in conn.execute(query.order_by(t.c.id))]


def row(engine, did):
    (r,) = rows(engine, id=did)
    return r


class Recorder:
    """A ``send`` that records calls and behaves per target: a list of outcomes to play
    (None = success, an exception = raised), then success."""

    def __init__(self, script: dict[str, list] | None = None, delay_s: float = 0.0):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[tuple[str, str, str]] = []
        self.lock = threading.Lock()
        self.delay_s = delay_s

    def __call__(self, n: Notification, kind: str, target: str) -> None:
        assert isinstance(n, Notification)
        with self.lock:
            self.calls.append((n.dedupe_key, kind, target))
            plan = self.script.get(target)
            outcome = plan.pop(0) if plan else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if isinstance(outcome, BaseException):
            raise outcome


# ------------------------------------------------------------------------ enqueue


def test_enqueue_twice_makes_one_row_per_channel_and_target(engine):
    n = note()
    created = enqueue(engine, n, [("email", "alice@example.com"), ("slack", HOOK)], T0)
    assert len(created) == 2
    assert enqueue(engine, n, [("email", "alice@example.com"), ("slack", HOOK)], T0 + S) == []
    # in the caller's transaction (as the consumer layer does), with one new target
    with write_transaction(engine) as conn:
        again = enqueue(conn, n, [("slack", HOOK), ("webhook", "https://example.org/x")], T0 + 2 * S)
    assert len(again) == 1
    all_rows = rows(engine)
    assert len(all_rows) == 3
    assert {r["status"] for r in all_rows} == {"pending"}
    r = row(engine, created[1])
    assert r["id"] == dl.delivery_id(n.dedupe_key, "slack", HOOK)
    assert (r["dedupe_key"], r["channel"], r["target"]) == (n.dedupe_key, "slack", HOOK)
    assert r["target_display"] == "https://hooks.example.com/…"
    assert (r["rule"], r["subject"], r["period"], r["recipient"]) == ("kr_stalled", "kr-1", "2026-W09", "alice")
    assert dl.notification_from_json(r["payload"]) == n
    assert (r["attempts"], r["next_attempt_at_us"], r["created_at_us"]) == (0, T0, T0)


def test_enqueue_rolls_back_with_the_callers_transaction(engine):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with write_transaction(engine) as conn:
            assert enqueue(conn, note(), [("email", "a@x.io")], T0)
            raise Boom
    assert rows(engine) == []


def test_enqueue_validates(engine):
    with pytest.raises(ValueError, match="channel_kind, target"):
        enqueue(engine, note(), [("email", "")], T0)
    with pytest.raises(TypeError):
        enqueue(engine, {"tenant": "acme"}, [("email", "a@x.io")], T0)


def test_concurrent_enqueue_makes_one_row(engine, database):
    engines = [database.make_engine(), database.make_engine()]
    try:
        for i in range(5):
            n = note(i)
            barrier = threading.Barrier(2)
            created: list[str] = []
            errors: list[BaseException] = []

            def go(e):
                try:
                    barrier.wait(5)
                    created.extend(enqueue(e, n, [("email", "alice@example.com")], T0))
                except BaseException as ex:  # pragma: no cover - reported below
                    errors.append(ex)

            threads = [threading.Thread(target=go, args=(e,)) for e in engines]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert errors == []
            assert len(created) == 1
        assert len(rows(engine)) == 5
    finally:
        for e in engines:
            e.dispose()


# ----------------------------------------------------------------------- retries


def test_fails_twice_then_succeeds_with_the_backoff_schedule(engine):
    clock = Clock()
    (did,) = enqueue(engine, note(), [("slack", HOOK)], T0)
    send = Recorder({HOOK: [DeliveryError("HTTP 503", retryable=True), TimeoutError("read timed out")]})
    d = Dispatcher(engine, send, RetryPolicy(rng=random.Random(7)), clock=clock)
    expected = RetryPolicy(rng=random.Random(7))
    delay1, delay2 = (int(expected.delay_s(k) * S) for k in (1, 2))
    assert 1.6 * S <= delay1 <= 2 * S and 3.2 * S <= delay2 <= 4 * S

    stats = d.run_once()
    assert (stats.claimed, stats.retrying) == (1, 1)
    r = row(engine, did)
    assert (r["status"], r["attempts"], r["next_attempt_at_us"], r["last_error"]) == (
        "retrying", 1, T0 + delay1, "HTTP 503")
    assert r["claimed_until_us"] is None

    clock.now = T0 + delay1 - 1  # not due yet
    assert d.run_once().claimed == 0
    clock.now = T0 + delay1
    assert d.run_once().retrying == 1
    r = row(engine, did)
    assert (r["status"], r["attempts"], r["next_attempt_at_us"]) == ("retrying", 2, T0 + delay1 + delay2)
    assert r["last_error"] == "TimeoutError: read timed out"  # any exception: retryable

    clock.now = T0 + delay1 + delay2
    assert d.run_once().sent == 1
    r = row(engine, did)
    assert (r["status"], r["attempts"], r["sent_at_us"], r["next_attempt_at_us"]) == (
        "sent", 3, T0 + delay1 + delay2, None)
    assert len(send.calls) == 3
    clock.now += 3600 * S
    assert d.run_once().claimed == 0  # sent once, never again
    assert len(rows(engine, status="sent")) == 1


def test_policy_delays():
    p = RetryPolicy(jitter=0.0)
    assert [p.delay_s(k) for k in range(1, 6)] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert RetryPolicy(jitter=0.0, max_s=10.0).delay_s(30) == 10.0
    assert RetryPolicy(jitter=0.0, max_s=10.0).delay_s(5000) == 10.0  # no overflow
    jittered = [RetryPolicy(rng=random.Random(s)).delay_s(3) for s in range(50)]
    assert all(6.4 <= x <= 8.0 for x in jittered) and len(set(jittered)) > 1
    for bad in ({"max_attempts": 0}, {"jitter": 1.5}, {"base_s": 0}, {"max_s": 1.0}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)


def test_always_failing_ends_failed_after_max_attempts(engine):
    clock = Clock()
    (did,) = enqueue(engine, note(), [("webhook", HOOK)], T0)

    def send(n, kind, target):
        raise RuntimeError(f"POST {target} refused")  # the URL's token must not be stored

    d = Dispatcher(engine, send, RetryPolicy(max_attempts=4, rng=random.Random(1)), clock=clock)
    statuses = []
    for _ in range(4):
        clock.now = row(engine, did)["next_attempt_at_us"]
        d.run_once()
        statuses.append(row(engine, did)["status"])
    assert statuses == ["retrying", "retrying", "retrying", "failed"]
    r = row(engine, did)
    assert (r["attempts"], r["next_attempt_at_us"]) == (4, None)
    assert r["last_error"] == "RuntimeError: POST https://hooks.example.com/… refused"
    assert "sEcReT" not in json.dumps(list_deliveries(engine, "acme"))
    clock.now += 10 ** 12
    assert d.run_once().claimed == 0
    assert len(rows(engine)) == 1  # kept


def test_non_retryable_fails_at_once(engine):
    (did,) = enqueue(engine, note(), [("email", "nobody@example.com")], T0)
    send = Recorder({"nobody@example.com": [DeliveryError("550 no such user", retryable=False)]})
    stats = Dispatcher(engine, send, clock=Clock()).run_once()
    assert (stats.failed, stats.retrying) == (1, 0)
    r = row(engine, did)
    assert (r["status"], r["attempts"], r["last_error"]) == ("failed", 1, "550 no such user")


def test_a_failing_or_hanging_delivery_does_not_block_the_others(engine):
    targets = [f"user{i}@example.com" for i in range(6)]
    ids = enqueue(engine, note(), [("email", t) for t in targets], T0)
    release = threading.Event()
    hung = targets[2]

    def send(n, kind, target):
        if target == hung:
            release.wait(10)
            return  # succeeds late, after being abandoned
        if target == targets[4]:
            raise ValueError("boom")
        time.sleep(0.01)

    d = Dispatcher(engine, send, RetryPolicy(rng=random.Random(3)), clock=Clock(), concurrency=2,
                   send_timeout_s=0.4)
    started = time.monotonic()
    stats = d.run_once()
    assert time.monotonic() - started < 3
    assert (stats.claimed, stats.sent, stats.retrying, stats.timed_out) == (6, 4, 2, 1)
    by_target = {r["target"]: r for r in rows(engine)}
    assert {t for t, r in by_target.items() if r["status"] == "sent"} == set(targets) - {hung, targets[4]}
    assert by_target[targets[4]]["last_error"] == "ValueError: boom"
    assert by_target[hung]["status"] == "retrying"
    assert by_target[hung]["last_error"].startswith("timed out after 0.4 s")
    release.set()  # the abandoned send finishes after all: its success is recorded
    wait_until(lambda: row(engine, by_target[hung]["id"])["status"] == "sent", timeout=5,
               message="the late success to be recorded")
    assert set(ids) == {r["id"] for r in rows(engine, status="sent")} | {by_target[targets[4]]["id"]}


def test_two_dispatchers_never_send_the_same_delivery_twice(engine, database):
    ids = enqueue(engine, note(), [("email", f"u{i}@example.com") for i in range(40)], T0)
    send = Recorder(delay_s=0.005)
    engines = [database.make_engine(), database.make_engine()]
    try:
        dispatchers = [Dispatcher(e, send, clock=Clock(), batch=5, concurrency=3) for e in engines]
        totals = []
        threads = [threading.Thread(target=lambda d=d: totals.append(d.run_until_idle())) for d in dispatchers]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
    finally:
        for e in engines:
            e.dispose()
    sent = [target for _, _, target in send.calls]
    assert len(sent) == len(set(sent)) == 40
    assert sum(t.sent for t in totals) == 40
    assert all(t.sent > 0 for t in totals), totals  # both did work
    assert {r["id"] for r in rows(engine, status="sent")} == set(ids)
    assert {r["attempts"] for r in rows(engine)} == {1}


def test_an_expired_claim_is_retried(engine):
    clock = Clock()
    (did,) = enqueue(engine, note(), [("email", "alice@example.com")], T0)
    crashed = Dispatcher(engine, Recorder(), clock=clock, lease_s=60)
    assert [c.id for c in crashed.claim()] == [did]  # ... and the process dies here
    send = Recorder()
    d = Dispatcher(engine, send, clock=clock, lease_s=60)
    clock.now = T0 + 59 * S
    assert d.run_once().claimed == 0  # still leased
    clock.now = T0 + 60 * S
    assert d.run_once().sent == 1
    r = row(engine, did)
    assert (r["status"], r["attempts"]) == ("sent", 2)
    assert len(send.calls) == 1


def test_a_lease_expiring_on_the_last_attempt_fails_the_delivery(engine):
    clock = Clock()
    (did,) = enqueue(engine, note(), [("email", "alice@example.com")], T0)
    policy = RetryPolicy(max_attempts=1)
    assert Dispatcher(engine, Recorder(), policy, clock=clock, lease_s=10).claim()
    clock.now = T0 + 11 * S
    send = Recorder()
    assert Dispatcher(engine, send, policy, clock=clock, lease_s=10).run_once().claimed == 0
    r = row(engine, did)
    assert r["status"] == "failed" and "outcome unknown" in r["last_error"]
    assert send.calls == []


def test_a_stale_dispatcher_does_not_overwrite_a_newer_claim(engine):
    clock = Clock()
    (did,) = enqueue(engine, note(), [("email", "alice@example.com")], T0)
    old = Dispatcher(engine, Recorder(), clock=clock, lease_s=10)
    (stale,) = old.claim()
    clock.now = T0 + 20 * S
    new = Dispatcher(engine, Recorder(), clock=clock, lease_s=10)
    (fresh,) = new.claim()
    assert old._record_failure(stale, "late failure", True) is None  # lost its claim
    assert new._record_sent(fresh)
    assert row(engine, did)["status"] == "sent"


def test_a_new_dispatcher_resumes_retrying_deliveries_when_due(engine):
    clock = Clock()
    (did,) = enqueue(engine, note(), [("email", "alice@example.com")], T0)
    first = Dispatcher(engine, Recorder({"alice@example.com": [DeliveryError("421 try later")]}), clock=clock)
    assert first.run_once().retrying == 1
    due = row(engine, did)["next_attempt_at_us"]
    del first  # restart
    send = Recorder()
    d = Dispatcher(engine, send, clock=clock)
    clock.now = due - 1
    assert d.run_once().claimed == 0
    clock.now = due
    assert d.run_once().sent == 1
    assert (row(engine, did)["attempts"], len(send.calls)) == (2, 1)


def test_a_corrupt_payload_fails_without_stopping_the_dispatcher(engine):
    bad, good = enqueue(engine, note(), [("email", "a@x.io"), ("email", "b@x.io")], T0)
    with engine.begin() as conn:
        conn.execute(update(dl.deliveries).where(dl.deliveries.c.id == bad).values(payload="{not json"))
    stats = Dispatcher(engine, Recorder(), clock=Clock()).run_once()
    assert (stats.sent, stats.failed) == (1, 1)
    assert row(engine, bad)["last_error"].startswith("payload unreadable")


# ------------------------------------------------------------------------ queries


def test_list_deliveries_filters_pages_and_validates(engine):
    for i in range(5):
        enqueue(engine, note(i, rule="kr_stalled" if i % 2 else "checkin_reminder",
                             recipient="bob" if i == 4 else "alice"),
                [("slack", HOOK)], T0 + i * S)
    enqueue(engine, note(9, tenant="globex"), [("email", "g@globex.io")], T0)
    clock = Clock(T0 + 10 * S)
    Dispatcher(engine, Recorder({HOOK: [None, DeliveryError("403", retryable=False)]}), clock=clock,
               concurrency=1).run_once()

    everything = list_deliveries(engine, "acme")
    assert [d["subject"] for d in everything] == ["kr-4", "kr-3", "kr-2", "kr-1", "kr-0"]  # newest first
    json.dumps(everything)  # JSON-safe
    assert all(d["target"] == "https://hooks.example.com/…" for d in everything)
    assert "payload" not in everything[0] and "sEcReT" not in json.dumps(everything)
    assert everything[0]["title"] == "KR 4 is stalled"
    assert {d["subject"] for d in list_deliveries(engine, "acme", rule="kr_stalled")} == {"kr-1", "kr-3"}
    assert [d["subject"] for d in list_deliveries(engine, "acme", recipient="bob")] == ["kr-4"]
    assert [d["subject"] for d in list_deliveries(engine, "acme", status="failed")] == ["kr-1"]
    assert len(list_deliveries(engine, "acme", status="sent")) == 4
    assert list_deliveries(engine, "initech") == []
    assert [d["tenant"] for d in list_deliveries(engine, "globex")] == ["globex"]

    page1 = list_deliveries(engine, "acme", limit=2)
    page2 = list_deliveries(engine, "acme", limit=2, cursor=page1[-1]["cursor"])
    page3 = list_deliveries(engine, "acme", limit=2, cursor=page2[-1]["cursor"])
    assert [d["id"] for d in page1 + page2 + page3] == [d["id"] for d in everything]

    assert delivery_counts(engine, "acme") == {"pending": 0, "sent": 4, "retrying": 0, "failed": 1}
    assert delivery_counts(engine, "globex") == {"pending": 0, "sent": 1, "retrying": 0, "failed": 0}

    with pytest.raises(ValueError, match="pending, sent, retrying, failed"):
        list_deliveries(engine, "acme", status="lost")
    for bad_limit in (0, 1001, "10", True, 2.5):
        with pytest.raises(ValueError, match="limit"):
            list_deliveries(engine, "acme", limit=bad_limit)
    with pytest.raises(ValueError, match="cursor"):
        list_deliveries(engine, "acme", cursor="nope")
    with pytest.raises(ValueError, match="tenant"):
        list_deliveries(engine, "")
    with pytest.raises(ValueError, match="rule"):
        list_deliveries(engine, "acme", rule="  ")
    assert len(list_deliveries(engine, "acme", limit=1000)) == 5


# ----------------------------------------------------------------------- schedule


def test_claim_period_once_per_period_and_never_backwards(engine):
    def claim(period, subject="kr-1"):
        with write_transaction(engine) as conn:
            return claim_period(conn, "acme", "checkin_reminder", subject, period, now_us=T0)

    assert claim("2026-W09") is True
    assert claim("2026-W09") is False  # repeat
    assert claim("2026-W08") is False  # older
    assert claim("2026-W10") is True  # next
    assert claim("2026-W10") is False
    assert claim("2026-W09", subject="kr-2") is True  # per subject
    assert dl.last_period(engine, "acme", "checkin_reminder", "kr-1") == "2026-W10"
    # rolled back with the caller's transaction: the period can be claimed again
    with pytest.raises(RuntimeError):
        with write_transaction(engine) as conn:
            assert claim_period(conn, "acme", "checkin_reminder", "kr-1", "2026-W11")
            raise RuntimeError("enqueue failed")
    assert claim("2026-W11") is True
    with pytest.raises(ValueError, match="period"):
        claim("")


def test_concurrent_claim_period_is_true_once(engine, database):
    engines = [database.make_engine() for _ in range(3)]
    try:
        for period in ("2026-W12", "2026-W13"):
            barrier = threading.Barrier(len(engines))
            results: list[bool] = []

            def go(e):
                barrier.wait(5)
                with write_transaction(e) as conn:
                    results.append(claim_period(conn, "acme", "team_digest", "team:growth", period))

            threads = [threading.Thread(target=go, args=(e,)) for e in engines]
            for t in threads:
                t.start()
            for t in threads:
                t.join(10)
            assert sorted(results) == [False, False, True]
    finally:
        for e in engines:
            e.dispose()
    with database.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(dl.schedule)).scalar() == 1
