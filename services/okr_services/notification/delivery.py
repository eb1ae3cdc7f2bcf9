"""The notification service's durable delivery log: what must be sent where, what was
sent, what is being retried and what failed for good — and the schedule state of timed
rules. Both tables live in the service's own database and are created by its Alembic
history ``notification`` (``okr_shared.db.migrate``).

Tables
------
``notification_deliveries`` — one row per (notification, channel, target):

==================== ==========================================================
id                   ``"d" + sha256(dedupe_key, channel, target)[:32]``: stable,
                     the same delivery always gets the same id (primary key)
tenant, rule,        copied from the ``Notification`` (filters of the log)
subject, period,
recipient
dedupe_key           ``Notification.dedupe_key``
channel              the channel kind ("email", "slack", "webhook", ...)
target               the address / URL as given (needed to re-send after a restart;
                     never returned by the queries: it may hold tokens)
target_hash          sha256 of ``target`` (the unique key uses it: a long URL would
                     overflow PostgreSQL's index row limit)
target_display       the redacted form shown by the log (``https://host/…``,
                     ``a…@example.com``, ``abcd…``)
payload              the ``Notification`` as JSON (to re-send after a restart)
status               ``pending`` | ``sent`` | ``retrying`` | ``failed``
attempts             send attempts started (counted when claimed)
next_attempt_at_us   when it is due (pending / retrying); NULL once sent or failed
claimed_until_us,    the lease of the dispatcher working on it (NULL = free)
claim_token
last_error           the last failure's reason (URLs in it redacted), kept when failed
created_at_us, updated_at_us, sent_at_us
==================== ==========================================================

``UNIQUE (dedupe_key, channel, target_hash)`` (equivalent to
``UNIQUE (dedupe_key, channel, target)``; the id derives from the same three, so the primary key
enforces it as well), an index on ``(status, next_attempt_at_us)`` for claiming and one on
``(tenant, created_at_us, id)`` for the log.

``notification_schedule`` — ``(tenant, rule, subject) -> last_period`` for timed rules,
primary key ``(tenant, rule, subject)``.

Guarantees
----------
- **Exactly-once enqueue.** ``enqueue`` inserts with ``ON CONFLICT DO NOTHING`` (both
  PostgreSQL and SQLite), so a redelivered event, a restart or two consumers racing
  create each (dedupe_key, channel, target) row once; it runs in the caller's
  transaction (the consumer layer commits it together with its offset).
  ``claim_period`` is a compare-and-set in the caller's transaction: True exactly once
  per (tenant, rule, subject, period) and only for a period later than the last one
  (string order, byte-wise on both backends: PostgreSQL compares with ``COLLATE "C"``).
- **At-least-once send.** A dispatcher claims a batch of due rows in one short
  transaction (PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED``; SQLite: ``BEGIN
  IMMEDIATE`` under the process's write lock of that file) and sets a lease
  (``claimed_until_us``), so two dispatchers never hold the same row; a crashed
  dispatcher's claims expire and are retried. Each send's result is recorded in its own
  short transaction right after the send returns. The window in which a delivery can be
  sent twice is the time between the channel accepting it and that commit (a crash, a
  lost database connection) — plus a send that outlives ``send_timeout_s`` (abandoned
  and scheduled for a retry; if it later succeeds after all, the late success is still
  recorded when the row has not been sent by then). Channels should pass the dedupe
  key / delivery id on (``Idempotency-Key``, ``Message-ID``) where the receiver can use it.
- Attempts are counted when a row is claimed: a delivery whose lease expires on its last
  allowed attempt is marked ``failed`` ("outcome unknown") instead of being retried
  without bound. Rows are never deleted.
- Nothing secret leaves through the log: ``list_deliveries`` returns the redacted
  target and no payload body; error texts have URLs redacted.

SQLite and eventlet: every write this module opens itself takes the consumer layer's
in-process lock of the file first (``okr_shared.bus.consumer._sqlite_locks``) and begins
``IMMEDIATE``; no send (no yielding I/O) happens inside a write transaction. A
``Connection`` passed in must come from such a write transaction
(``ConsumerDatabase.transaction()``).

Backoff
-------
After the n-th failed attempt (n = 1, 2, ...)::

    d = min(max_s, base_s * factor ** (n - 1))
    delay = d * (1 - jitter * u),    u uniform in [0, 1) from policy.rng

i.e. "equal"-style jitter downwards: the delay lies in ``[(1 - jitter) d, d]``, never
above ``max_s``, never below ``(1 - jitter)`` of the exponential curve. Defaults: 5
attempts, 2 s, x2, at most 600 s, jitter 0.2 (delays ~2, 4, 8, 16 s).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import queue
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    Connection,
    Engine,
    Table,
    and_,
    collate,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from okr_shared import clock as wall_clock
from okr_shared.retry import exponential_delay
from okr_shared.db import write_transaction
# the tables: the notification history's snapshot of its newest revision (docs/adr/0032-…)
from okr_shared.db.migrations.notification.tables_0001 import deliveries, metadata, schedule
from okr_shared.observability import metrics

from .message import DeliveryError, Notification

log = logging.getLogger(__name__)

PENDING, SENT, RETRYING, FAILED = "pending", "sent", "retrying", "failed"
STATUSES = (PENDING, SENT, RETRYING, FAILED)
MAX_LIST_LIMIT = 1000
_ERROR_MAX = 500


# ------------------------------------------------------------------ transactions


@contextlib.contextmanager
def _writing(conn_or_engine: Connection | Engine) -> Iterator[Connection]:
    if isinstance(conn_or_engine, Engine):
        with write_transaction(conn_or_engine) as conn:
            yield conn
    else:
        yield conn_or_engine


def _insert(conn: Connection, table: Table):
    """INSERT ... ON CONFLICT DO NOTHING for the connection's dialect."""
    name = conn.dialect.name
    if name == "postgresql":
        return pg_dialect.insert(table).on_conflict_do_nothing()
    if name == "sqlite":
        return sqlite_dialect.insert(table).on_conflict_do_nothing()
    raise NotImplementedError(f"notification delivery log: unsupported database {name!r}")


# ---------------------------------------------------------------- ids, redaction


def delivery_id(dedupe_key: str, channel: str, target: str) -> str:
    """The stable id of one delivery."""
    h = hashlib.sha256("\x1f".join((dedupe_key, channel, target)).encode()).hexdigest()
    return "d" + h[:32]


def _target_hash(target: str) -> str:
    return hashlib.sha256(target.encode()).hexdigest()


_EMAIL = re.compile(r"^([^@\s]+)@([^@\s]+)$")
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'\"<>]+")


def _redact_url(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if not parts.scheme or not host:
        return None
    netloc = host if port is None else f"{host}:{port}"
    rest = "/…" if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    return f"{parts.scheme}://{netloc}{rest}"


def redact_target(target: str) -> str:
    """A display form of a target that holds no secret: a URL keeps only its scheme and
    host (``https://hooks.slack.com/…``: paths and queries carry tokens), an e-mail
    address its domain and first character (``a…@example.com``), anything else its first
    four characters (``C012…``)."""
    shown = _redact_url(target) if "://" in target else None
    if shown is not None:
        return shown[:300]
    m = _EMAIL.match(target)
    if m:
        return f"{m.group(1)[:1]}…@{m.group(2)}"[:300]
    return target if len(target) <= 4 else target[:4] + "…"


def _scrub(text: str, target: str = "") -> str:
    """An error text safe to store: the target and any URL replaced by their redacted
    form, shortened."""
    if target and target in text:
        text = text.replace(target, redact_target(target))
    text = _URL_IN_TEXT.sub(lambda m: _redact_url(m.group(0)) or "<url>", text)
    return text if len(text) <= _ERROR_MAX else text[: _ERROR_MAX - 1] + "…"


# ---------------------------------------------------------------- (de)serialising


def notification_to_json(n: Notification) -> str:
    doc = dataclasses.asdict(n)
    doc["facts"] = [list(pair) for pair in n.facts]
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_FIELDS = {f.name for f in dataclasses.fields(Notification)}


def notification_from_json(text: str) -> Notification:
    doc = {k: v for k, v in json.loads(text).items() if k in _FIELDS}
    doc["facts"] = tuple(tuple(pair) for pair in doc.get("facts") or ())
    return Notification(**doc)


# ------------------------------------------------------------------------ enqueue


def enqueue(conn_or_engine: Connection | Engine, notification: Notification,
            deliveries_: Iterable[tuple[str, str]], now_us: int) -> list[str]:
    """Record one ``pending`` delivery, due at ``now_us``, per ``(channel_kind, target)``
    not already recorded for this notification's dedupe key; returns the ids newly
    created (in the order given). Race-safe (``ON CONFLICT DO NOTHING``).

    Pass the caller's ``Connection`` to enqueue in its transaction (on SQLite it must
    be a write transaction holding the process lock: ``ConsumerDatabase.transaction()``),
    or an ``Engine`` for a transaction of its own."""
    if not isinstance(notification, Notification):
        raise TypeError(f"enqueue: a Notification is needed, not {type(notification).__name__}")
    pairs = list(deliveries_)
    for pair in pairs:
        if (not isinstance(pair, tuple | list) or len(pair) != 2
                or not all(isinstance(x, str) and x.strip() for x in pair)):
            raise ValueError(f"enqueue: each delivery is a (channel_kind, target) pair of non-empty strings, "
                             f"not {pair!r}")
    key = notification.dedupe_key
    payload = notification_to_json(notification)
    created: list[str] = []
    with _writing(conn_or_engine) as conn:
        stmt = _insert(conn, deliveries)
        for kind, target in pairs:
            did = delivery_id(key, kind, target)
            result = conn.execute(stmt.values(
                id=did, tenant=notification.tenant, dedupe_key=key, channel=kind, target=target,
                target_hash=_target_hash(target), target_display=redact_target(target),
                rule=notification.rule, subject=notification.subject, period=notification.period,
                recipient=notification.recipient, payload=payload, status=PENDING, attempts=0,
                next_attempt_at_us=now_us, claimed_until_us=None, claim_token=None, last_error=None,
                created_at_us=now_us, updated_at_us=now_us, sent_at_us=None,
            ))
            if result.rowcount == 1:
                created.append(did)
    return created


# ----------------------------------------------------------------------- schedule


def claim_period(conn: Connection | Engine, tenant: str, rule: str, subject: str, period: str,
                 now_us: int | None = None) -> bool:
    """Compare-and-set the last period a timed rule fired for ``(tenant, rule, subject)``:
    True (and ``period`` recorded) only if ``period`` sorts after the recorded one (or
    none is recorded) — exactly once per period, never for an older one. Run it in the
    transaction that enqueues the reminder, so both commit or neither does. Periods
    compare as strings, byte-wise ("2026-W09" < "2026-W10")."""
    for name, value in (("tenant", tenant), ("rule", rule), ("subject", subject), ("period", period)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"claim_period: {name} must be a non-empty string, not {value!r}")
    now_us = wall_clock.now_us() if now_us is None else now_us
    with _writing(conn) as c:
        last = schedule.c.last_period
        if c.dialect.name == "postgresql":
            last = collate(last, "C")
        done = c.execute(
            update(schedule)
            .where(schedule.c.tenant == tenant, schedule.c.rule == rule, schedule.c.subject == subject,
                   last < period)
            .values(last_period=period, updated_at_us=now_us)
        ).rowcount
        if done:
            return True
        done = c.execute(_insert(c, schedule).values(
            tenant=tenant, rule=rule, subject=subject, last_period=period, updated_at_us=now_us)).rowcount
        return done == 1


def last_period(conn: Connection | Engine, tenant: str, rule: str, subject: str) -> str | None:
    """The last period claimed for ``(tenant, rule, subject)``, or None."""
    query = select(schedule.c.last_period).where(
        schedule.c.tenant == tenant, schedule.c.rule == rule, schedule.c.subject == subject)
    if isinstance(conn, Engine):
        with conn.connect() as c:
            return c.execute(query).scalar()
    return conn.execute(query).scalar()


# ---------------------------------------------------------------------- dispatch


@dataclass
class RetryPolicy:
    """How often and when a failed delivery is tried again (formula in the module doc).
    ``rng``: anything with ``.random()`` (a seeded ``random.Random`` in tests)."""

    max_attempts: int = 5
    base_s: float = 2.0
    factor: float = 2.0
    max_s: float = 600.0
    jitter: float = 0.2
    rng: Any = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self):
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise ValueError(f"max_attempts must be an integer >= 1, not {self.max_attempts!r}")
        if not self.base_s > 0 or not self.factor >= 1 or not self.max_s >= self.base_s:
            raise ValueError("RetryPolicy needs base_s > 0, factor >= 1 and max_s >= base_s")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must lie in [0, 1], not {self.jitter!r}")

    def delay_s(self, failed_attempts: int) -> float:
        """The delay after the ``failed_attempts``-th failure (1-based); draws from rng."""
        d = exponential_delay(max(1, failed_attempts), self.base_s, self.max_s, self.factor)
        return d * (1 - self.jitter * self.rng.random())


@dataclass
class DispatchStats:
    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    timed_out: int = 0  # sends abandoned after send_timeout_s (counted in retrying/failed too)
    lost: int = 0  # results not recorded: the claim had expired and been taken over


@dataclass(frozen=True)
class Claim:
    """One claimed delivery (what a dispatcher works on)."""

    id: str
    channel: str
    target: str
    payload: str
    attempts: int  # including this one
    token: str


class _Attempt:
    """One running send, shared by its worker thread and the dispatching loop."""

    def __init__(self, claim: Claim):
        self.claim = claim
        self.lock = threading.Lock()
        self.abandoned = False
        self.reported = False
        self.started = time.monotonic()


SendFn = Callable[[Notification, str, str], None]


class Dispatcher:
    """Sends due deliveries: ``run_once()`` claims up to ``batch`` of them (lease
    ``lease_s``), sends them with up to ``concurrency`` sends at a time (green threads
    under eventlet), gives each ``send_timeout_s`` of wall time, and records every result
    in its own short transaction as soon as it is known.

    ``send(notification, channel_kind, target)`` raises ``DeliveryError`` on failure;
    any other exception counts as a retryable failure. ``clock()`` returns now in
    microseconds (the schedule's time; the send timeout uses the monotonic clock).
    ``lease_s`` must exceed the time a whole batch can take (``send_timeout_s`` ×
    ⌈batch / concurrency⌉) or rows may be claimed twice."""

    def __init__(self, engine: Engine, send: SendFn, policy: RetryPolicy | None = None,
                 clock: Callable[[], int] = wall_clock.now_us, batch: int = 50, *, concurrency: int = 8,
                 send_timeout_s: float = 30.0, lease_s: float | None = None):
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch must be an integer >= 1, not {batch!r}")
        if not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an integer >= 1, not {concurrency!r}")
        if not send_timeout_s > 0:
            raise ValueError(f"send_timeout_s must be > 0, not {send_timeout_s!r}")
        self.engine = engine
        self.send = send
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.batch = batch
        self.concurrency = concurrency
        self.send_timeout_s = send_timeout_s
        min_lease = send_timeout_s * math.ceil(batch / concurrency)
        self.lease_s = lease_s if lease_s is not None else max(300.0, 2 * min_lease)
        if not self.lease_s > 0:
            raise ValueError(f"lease_s must be > 0, not {lease_s!r}")

    # ------------------------------------------------------------------ claiming

    def claim(self, now_us: int | None = None) -> list[Claim]:
        """Claim up to ``batch`` due deliveries (the first half of ``run_once``): one
        short transaction; counts the attempt and sets the lease. A due row whose lease
        expired on its last allowed attempt is marked failed instead."""
        now = self.clock() if now_us is None else now_us
        t = deliveries
        token = uuid.uuid4().hex
        due = and_(
            t.c.status.in_((PENDING, RETRYING)),
            t.c.next_attempt_at_us <= now,
            or_(t.c.claimed_until_us.is_(None), t.c.claimed_until_us <= now),
        )
        query = (select(t.c.id, t.c.channel, t.c.target, t.c.payload, t.c.attempts)
                 .where(due).order_by(t.c.next_attempt_at_us, t.c.id).limit(self.batch)
                 .with_for_update(skip_locked=True))
        claims: list[Claim] = []
        with write_transaction(self.engine) as conn:
            rows = conn.execute(query).all()
            exhausted = [r.id for r in rows if r.attempts >= self.policy.max_attempts]
            given_up = [r.channel for r in rows if r.attempts >= self.policy.max_attempts]
            if exhausted:
                conn.execute(update(t).where(t.c.id.in_(exhausted)).values(
                    status=FAILED, next_attempt_at_us=None, claimed_until_us=None, claim_token=None,
                    updated_at_us=now,
                    last_error=func.coalesce(t.c.last_error, "") + "; lease expired on the last attempt "
                                                                     "(dispatcher stopped?): outcome unknown"))
            ids = [r.id for r in rows if r.attempts < self.policy.max_attempts]
            if ids:
                conn.execute(update(t).where(t.c.id.in_(ids)).values(
                    attempts=t.c.attempts + 1, claimed_until_us=now + int(self.lease_s * 1_000_000),
                    claim_token=token, updated_at_us=now))
            for r in rows:
                if r.attempts < self.policy.max_attempts:
                    claims.append(Claim(r.id, r.channel, r.target, r.payload, r.attempts + 1, token))
        for channel in given_up:  # committed: failed for good
            metrics.notifications[(channel, "failed")].inc()
        return claims

    # ----------------------------------------------------------------- recording

    def _record_sent(self, claim: Claim) -> bool:
        """Mark sent whatever the lease (a success is a fact), unless already final."""
        now = self.clock()
        t = deliveries
        with write_transaction(self.engine) as conn:
            return conn.execute(update(t).where(t.c.id == claim.id, t.c.status.in_((PENDING, RETRYING))).values(
                status=SENT, sent_at_us=now, updated_at_us=now, next_attempt_at_us=None,
                claimed_until_us=None, claim_token=None)).rowcount == 1

    def _record_failure(self, claim: Claim, reason: str, retryable: bool) -> str | None:
        """Record a failure under our lease; returns the new status, None if the claim
        was lost (expired and taken over, or finished meanwhile)."""
        now = self.clock()
        t = deliveries
        reason = _scrub(reason, claim.target) or "unknown error"
        if retryable and claim.attempts < self.policy.max_attempts:
            status = RETRYING
            next_at = now + int(self.policy.delay_s(claim.attempts) * 1_000_000)
        else:
            status, next_at = FAILED, None
        with write_transaction(self.engine) as conn:
            done = conn.execute(update(t).where(
                t.c.id == claim.id, t.c.claim_token == claim.token, t.c.status.in_((PENDING, RETRYING))
            ).values(status=status, next_attempt_at_us=next_at, last_error=reason, updated_at_us=now,
                     claimed_until_us=None, claim_token=None)).rowcount
        return status if done else None

    # ------------------------------------------------------------------- sending

    def _work(self, attempt: _Attempt, results: queue.Queue) -> None:
        claim = attempt.claim
        outcome: tuple[str, str, bool]  # ("sent" | "error", reason, retryable)
        try:
            notification = notification_from_json(claim.payload)
        except Exception as e:  # a row we cannot read will never become sendable
            outcome = ("error", f"payload unreadable: {type(e).__name__}: {e}", False)
        else:
            try:
                self.send(notification, claim.channel, claim.target)
                outcome = ("sent", "", False)
            except DeliveryError as e:
                outcome = ("error", e.reason or type(e).__name__, e.retryable)
            except Exception as e:
                outcome = ("error", f"{type(e).__name__}: {e}".rstrip(": "), True)
        with attempt.lock:
            late = attempt.abandoned
            attempt.reported = True
            if not late:
                results.put((attempt, outcome))
        if late and outcome[0] == "sent":
            try:  # abandoned by the loop, but it did go out: keep the log true
                if self._record_sent(claim):
                    log.info("notification delivery %s: late success recorded", claim.id)
            except Exception:
                log.exception("notification delivery %s: recording a late success failed", claim.id)

    def run_once(self) -> DispatchStats:
        """Claim one batch of due deliveries, send them, record each result."""
        stats = DispatchStats()
        claims = self.claim()
        stats.claimed = len(claims)
        if not claims:
            return stats
        waiting = deque(claims)
        running: dict[str, _Attempt] = {}
        results: queue.Queue = queue.Queue()

        def record(claim: Claim, outcome: tuple[str, str, bool]) -> None:
            kind, reason, retryable = outcome
            try:
                if kind == "sent":
                    if self._record_sent(claim):
                        stats.sent += 1
                        metrics.notifications[(claim.channel, "sent")].inc()
                    else:
                        stats.lost += 1
                        metrics.notifications[(claim.channel, "lost")].inc()
                    return
                status = self._record_failure(claim, reason, retryable)
            except Exception:  # the database failed: the lease expiry brings it back
                log.exception("notification delivery %s: recording the result failed", claim.id)
                stats.lost += 1
                metrics.notifications[(claim.channel, "lost")].inc()
                return
            if status == RETRYING:
                stats.retrying += 1
            elif status == FAILED:
                stats.failed += 1
            else:
                stats.lost += 1
            metrics.notifications[(claim.channel, status or "lost")].inc()

        while waiting or running:
            while waiting and len(running) < self.concurrency:
                attempt = _Attempt(waiting.popleft())
                running[attempt.claim.id] = attempt
                threading.Thread(target=self._work, args=(attempt, results), daemon=True,
                                 name=f"notification-send-{attempt.claim.id}").start()
            deadline = min(a.started for a in running.values()) + self.send_timeout_s
            try:
                attempt, outcome = results.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                now_m = time.monotonic()
                for a in list(running.values()):
                    if now_m - a.started < self.send_timeout_s:
                        continue
                    with a.lock:
                        if a.reported:  # its result is in the queue: take it next round
                            continue
                        a.abandoned = True
                    del running[a.claim.id]
                    stats.timed_out += 1
                    record(a.claim, ("error", f"timed out after {self.send_timeout_s:g} s "
                                              "(send abandoned, outcome unknown)", True))
                continue
            running.pop(attempt.claim.id, None)
            record(attempt.claim, outcome)
        return stats

    def run_until_idle(self, max_runs: int = 100) -> DispatchStats:
        """``run_once`` until nothing is due (or ``max_runs``); the summed stats."""
        total = DispatchStats()
        for _ in range(max_runs):
            s = self.run_once()
            for f in dataclasses.fields(DispatchStats):
                setattr(total, f.name, getattr(total, f.name) + getattr(s, f.name))
            if s.claimed < self.batch:
                break
        return total


# ------------------------------------------------------------------------ queries


def _check_text(name: str, value: Any) -> None:
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise ValueError(f"{name} must be a non-empty string or None, not {value!r}")


def _check_status(status: Any) -> None:
    if status is not None and status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)} (or None), not {status!r}")


def _parse_cursor(cursor: Any) -> tuple[int, str]:
    if not isinstance(cursor, str) or ":" not in cursor:
        raise ValueError(f"cursor must be a value returned in a delivery's 'cursor' field, not {cursor!r}")
    at, _, did = cursor.partition(":")
    try:
        return int(at), did
    except ValueError:
        raise ValueError(f"cursor must be a value returned in a delivery's 'cursor' field, not {cursor!r}") from None


def _row_doc(r) -> dict[str, Any]:
    try:
        title = json.loads(r.payload).get("title", "")
    except Exception:
        title = ""
    return {
        "id": r.id,
        "tenant": r.tenant,
        "dedupe_key": r.dedupe_key,
        "channel": r.channel,
        "target": r.target_display,
        "rule": r.rule,
        "subject": r.subject,
        "period": r.period,
        "recipient": r.recipient,
        "title": title,
        "status": r.status,
        "attempts": r.attempts,
        "next_attempt_at_us": r.next_attempt_at_us,
        "last_error": r.last_error,
        "created_at_us": r.created_at_us,
        "updated_at_us": r.updated_at_us,
        "sent_at_us": r.sent_at_us,
        "cursor": f"{r.created_at_us}:{r.id}",
    }


def list_deliveries(engine: Engine | Connection, tenant: str, status: str | None = None,
                    rule: str | None = None, recipient: str | None = None, limit: int = 100,
                    cursor: str | None = None) -> list[dict[str, Any]]:
    """One tenant's deliveries, newest first (``created_at_us``, then id), JSON-safe:
    the redacted target, the title, no payload body. ``cursor``: the ``cursor`` field of
    the last delivery of the previous page. ValueError on bad arguments."""
    _check_text("tenant", tenant)
    if tenant is None:
        raise ValueError("tenant is required")
    _check_status(status)
    _check_text("rule", rule)
    _check_text("recipient", recipient)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIST_LIMIT}, not {limit!r}")
    t = deliveries
    query = select(t.c.id, t.c.tenant, t.c.dedupe_key, t.c.channel, t.c.target_display, t.c.rule,
                   t.c.subject, t.c.period, t.c.recipient, t.c.payload, t.c.status, t.c.attempts,
                   t.c.next_attempt_at_us, t.c.last_error, t.c.created_at_us, t.c.updated_at_us,
                   t.c.sent_at_us).where(t.c.tenant == tenant)
    if status is not None:
        query = query.where(t.c.status == status)
    if rule is not None:
        query = query.where(t.c.rule == rule)
    if recipient is not None:
        query = query.where(t.c.recipient == recipient)
    if cursor is not None:
        at, did = _parse_cursor(cursor)
        query = query.where(or_(t.c.created_at_us < at, and_(t.c.created_at_us == at, t.c.id < did)))
    query = query.order_by(t.c.created_at_us.desc(), t.c.id.desc()).limit(limit)
    return [_row_doc(r) for r in _read(engine, query)]


def delivery_counts(engine: Engine | Connection, tenant: str) -> dict[str, int]:
    """``{status: n}`` for one tenant, every status present (0 when none)."""
    _check_text("tenant", tenant)
    if tenant is None:
        raise ValueError("tenant is required")
    t = deliveries
    query = select(t.c.status, func.count()).where(t.c.tenant == tenant).group_by(t.c.status)
    counts = dict.fromkeys(STATUSES, 0)
    for st, n in _read(engine, query):
        counts[st] = int(n)
    return counts


def get_delivery(engine: Engine | Connection, delivery_id_: str) -> dict[str, Any] | None:
    """One delivery as ``list_deliveries`` shows it, or None."""
    t = deliveries
    query = select(t.c.id, t.c.tenant, t.c.dedupe_key, t.c.channel, t.c.target_display, t.c.rule,
                   t.c.subject, t.c.period, t.c.recipient, t.c.payload, t.c.status, t.c.attempts,
                   t.c.next_attempt_at_us, t.c.last_error, t.c.created_at_us, t.c.updated_at_us,
                   t.c.sent_at_us).where(t.c.id == delivery_id_)
    rows = _read(engine, query)
    return _row_doc(rows[0]) if rows else None


def _read(engine: Engine | Connection, query) -> Sequence:
    if isinstance(engine, Engine):
        with engine.connect() as conn:
            return conn.execute(query).all()
    return engine.execute(query).all()
