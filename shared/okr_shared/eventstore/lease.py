"""A lease in the event store's database: at most one process at a time acts as
``name`` (e.g. the outbox relay), and another takes over once the holder stops renewing.

Table ``es_relay_leases`` (migration 0003_relay): ``name``, ``owner``, ``expires_at_us``.
The same SQL runs on SQLite and PostgreSQL; the only per-backend piece is how the
database tells the time. Expiry is judged by the *database's* clock, so relays on hosts
with skewed clocks still agree on who holds a lease.

- ``acquire()`` takes the lease when it is free, expired, or already ours;
- ``renew()`` extends it only while it is ours and unexpired (a lease that expired is
  never silently revived: the holder goes through ``acquire()`` again and reloads
  whatever state it guards);
- ``holding()`` is a write transaction that renews the lease first and raises
  ``LeaseLost`` instead of running the caller's writes when the lease is gone — the
  outbox relay saves its checkpoint in it;
- ``release()`` expires it at once (clean shutdown: a standby takes over without
  waiting for the TTL).

Locally the holder trusts its lease until ``ttl - safety_margin`` after the start of
the last successful renewal (``held``), measured on the monotonic clock; renewing every
``renew_interval`` (default 1 s for a 5 s TTL) keeps it held with room for a slow
database round trip. A process that stalls longer than the TTL (GC pause, SIGSTOP) may
find on waking that another took over: the relay checks ``held`` before every publish
window, and its checkpoint write fails, so such a stall costs duplicates, never losses.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterator

from sqlalchemy import Connection, Engine, text


class LeaseLost(Exception):
    """The lease expired or another owner took it."""


def default_owner() -> str:
    """host:pid:random — unique per Lease object, readable in the table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def db_now_us_sql(engine: Engine) -> str:
    """SQL expression: the database's clock in microseconds since the Unix epoch."""
    if engine.dialect.name == "sqlite":
        # julianday() has millisecond resolution: plenty for a lease.
        return "CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)"
    if engine.dialect.name == "postgresql":
        return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
    raise ValueError(f"unsupported database {engine.dialect.name!r}: use SQLite or PostgreSQL")


class Lease:
    """A named lease held by ``owner`` for ``ttl`` seconds at a time. Not thread-safe:
    one Lease object belongs to one thread (its relay)."""

    def __init__(
        self,
        engine: Engine,
        name: str,
        *,
        owner: str | None = None,
        ttl: float = 5.0,
        renew_interval: float = 1.0,
        safety_margin: float | None = None,
    ):
        if not 0 < renew_interval < ttl:
            raise ValueError(f"renew_interval ({renew_interval}) must be > 0 and < ttl ({ttl})")
        self.engine = engine
        self.name = name
        self.owner = owner or default_owner()
        self.ttl = ttl
        self.renew_interval = renew_interval
        self.safety_margin = min(1.0, ttl / 5) if safety_margin is None else safety_margin
        self._ttl_us = int(ttl * 1_000_000)
        self._deadline = 0.0  # monotonic time until which we may act as the holder
        self._next_attempt = 0.0
        now = db_now_us_sql(engine)
        self._take = text(
            f"UPDATE es_relay_leases SET owner = :owner, expires_at_us = {now} + :ttl "
            f"WHERE name = :name AND (owner = :owner OR expires_at_us <= {now})"
        )
        self._insert = text(
            "INSERT INTO es_relay_leases (name, owner, expires_at_us) "
            f"VALUES (:name, :owner, {now} + :ttl) ON CONFLICT (name) DO NOTHING"
        )
        self._renew = text(
            f"UPDATE es_relay_leases SET expires_at_us = {now} + :ttl "
            f"WHERE name = :name AND owner = :owner AND expires_at_us > {now}"
        )
        self._release = text(
            "UPDATE es_relay_leases SET expires_at_us = 0 WHERE name = :name AND owner = :owner"
        )
        self._params = {"name": name, "owner": self.owner, "ttl": self._ttl_us}

    # ---------------------------------------------------------------- state

    @property
    def held(self) -> bool:
        """True while this process may act as the holder (local, no database call)."""
        return time.monotonic() < self._deadline

    def remaining(self) -> float:
        """Seconds the lease is still trusted locally (0 when not held)."""
        return max(0.0, self._deadline - time.monotonic())

    def holder(self) -> tuple[str, int] | None:
        """(owner, expires_at_us) as stored, or None — for operators and tests."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT owner, expires_at_us FROM es_relay_leases WHERE name = :name"),
                {"name": self.name},
            ).first()
        return None if row is None else (row[0], row[1])

    # ---------------------------------------------------------------- changes

    def acquire(self) -> bool:
        """Take the lease if it is free, expired or ours; returns whether we hold it."""
        started = time.monotonic()
        with self._transaction() as conn:
            taken = conn.execute(self._take, self._params).rowcount == 1
            if not taken:
                taken = conn.execute(self._insert, self._params).rowcount == 1
        self._deadline = self._deadline_from(started) if taken else 0.0
        return taken

    def renew(self) -> bool:
        """Extend the lease if it is still ours and unexpired; returns whether we hold it."""
        started = time.monotonic()
        with self._transaction() as conn:
            ok = conn.execute(self._renew, self._params).rowcount == 1
        self._deadline = self._deadline_from(started) if ok else 0.0
        return ok

    def release(self) -> None:
        """Give the lease up now (another process may take it at once)."""
        self._deadline = 0.0
        with self._transaction() as conn:
            conn.execute(self._release, self._params)

    def maintain(self) -> bool:
        """Call often: renews the held lease every ``renew_interval``, or tries to
        acquire it at that pace when not held. Returns ``held``. A database error is
        raised to the caller; the lease then stays trusted until its local deadline."""
        now = time.monotonic()
        if now >= self._next_attempt:
            self._next_attempt = now + self.renew_interval
            if self.held:
                self.renew()
            else:
                self.acquire()
        return self.held

    def seconds_to_next_attempt(self) -> float:
        return max(0.0, self._next_attempt - time.monotonic())

    @contextlib.contextmanager
    def holding(self) -> Iterator[Connection]:
        """A write transaction in which the lease is renewed first; the caller's
        statements run and commit only if we still hold it, else LeaseLost is raised
        (and nothing is written)."""
        started = time.monotonic()
        with self._transaction() as conn:
            if conn.execute(self._renew, self._params).rowcount != 1:
                self._deadline = 0.0
                raise LeaseLost(f"lease {self.name!r} is no longer held by {self.owner}")
            yield conn
        self._deadline = self._deadline_from(started)

    # ---------------------------------------------------------------- helpers

    def _deadline_from(self, started: float) -> float:
        return started + self.ttl - self.safety_margin

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        # SQLite: BEGIN IMMEDIATE takes the write lock up front, so a read-then-write
        # transaction never fails with a stale WAL snapshot (the engine's begin hook
        # honours this option; PostgreSQL ignores it).
        with self.engine.connect().execution_options(sqlite_begin="IMMEDIATE") as conn:
            with conn.begin():
                yield conn
