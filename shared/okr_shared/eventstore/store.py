"""The event store: one API over SQLAlchemy Core for SQLite and PostgreSQL.

Append protocol (one transaction; any error rolls all of it back; the per-backend
transactions are in transactions.py):

1. take the store's write lock by incrementing the head counter (PostgreSQL: the
   ``es_head`` row lock; SQLite: ``BEGIN IMMEDIATE`` plus an in-process lock, so green
   threads never busy-wait on SQLite's file lock);
2. read the stream's current version and the tenant's chain head (a stream is named
   by tenant and stream id: each tenant has its own streams, ADR 0023);
3. check the expected version; hash each event onto the tenant's chain;
4. insert the events and move the chain head; commit.

Positions come from the head counter inside the same transaction, so they are
assigned in commit order and a rollback leaves no hole.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

from sqlalchemy import Engine, and_, func, select

from .. import config
from ..clock import now_us  # the store's default clock (``recorded_at_us``)
from . import schema
from .canonical import GENESIS_HASH, canonical_bytes, chain_hash, chain_records, dumps
from .errors import (
    DuplicateEventIds,
    EmptyBatch,
    InvalidAppend,
    InvalidEvent,
    InvalidExpectedVersion,
    PayloadTooLarge,
    StreamNotFound,
    TenantMismatch,
    WrongExpectedVersion,
)
from .model import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, NewEvent, RecordedEvent, VerifyResult
from .group_commit import GroupCommit
from .transactions import EventIdCollision, PostgresAppender, appender_for
from ..observability import metrics

TENANT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
EVENT_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.]{0,199}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
MAX_STREAM_ID_LENGTH = 200

_E = schema.events
_COLUMNS = (
    _E.c.position,
    _E.c.tenant_id,
    _E.c.stream_id,
    _E.c.stream_version,
    _E.c.event_id,
    _E.c.event_type,
    _E.c.schema_version,
    _E.c.data,
    _E.c.metadata,
    _E.c.recorded_at_us,
    _E.c.hash,
)


_UNSET = object()


class _AlreadyStored(Exception):
    def __init__(self, result: AppendResult):
        self.result = result


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _group_commit_default() -> bool:
    """``OKR_EVENTSTORE_GROUP_COMMIT``: 1 (the default) or 0."""
    return config.eventstore_group_commit()


class EventStore:
    """Append-only store of events with optimistic concurrency, gap-free global
    positions, idempotent appends and a per-tenant SHA-256 hash chain.

    The schema must exist (``okr_shared.eventstore.migrate``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_data_bytes: int = 256 * 1024,
        max_metadata_bytes: int = 16 * 1024,
        max_batch_size: int = 1000,
        clock=now_us,
        group_commit: bool | None = None,
    ):
        self.engine = engine
        self.max_data_bytes = max_data_bytes
        self.max_metadata_bytes = max_metadata_bytes
        self.max_batch_size = max_batch_size
        self._clock = clock
        self._appender = appender_for(engine)
        if group_commit is None:
            group_commit = _group_commit_default()
        #: concurrent appends share a transaction (PostgreSQL only: a SQLite append is
        #: in-process and needs no round trip; ADR 0020)
        self._group = (
            GroupCommit(self, max_batch_size) if group_commit and isinstance(self._appender, PostgresAppender)
            else None
        )

    # ------------------------------------------------------------------ append

    def append(self, stream_id: str, expected_version, events: Sequence[NewEvent]) -> AppendResult:
        """Append ``events`` to ``stream_id`` atomically.

        ``expected_version``: ``ANY``; ``NO_STREAM`` (or 0) — the stream must not
        exist; ``STREAM_EXISTS``; or the integer version the stream must be at.
        Raises ``WrongExpectedVersion`` (carrying the actual version) on a conflict and
        an ``InvalidAppend`` subclass on bad input; in both cases nothing is written.
        Appending a batch whose event ids are all already stored, in this stream and
        order, writes nothing and returns the stored outcome (``already_stored``).
        """
        self._check_expected_version(expected_version)
        rows, tenant_id = self._prepare(stream_id, events)
        if self._group is not None:
            return self._group.append(stream_id, expected_version, rows, tenant_id)
        return self._append_one(stream_id, expected_version, rows, tenant_id)

    def _append_one(self, stream_id: str, expected_version, rows: list[tuple], tenant_id: str) -> AppendResult:
        """``append`` of validated rows in a transaction of its own."""
        event_ids = [r[0] for r in rows]
        n = len(rows)
        try:
            with self._appender.begin() as tx:
                last, current, prev_hex = tx.lock_and_read(n, stream_id, tenant_id)
                first_position = last - n + 1
                conflict = self._conflict(stream_id, expected_version, current)
                if conflict is not None:
                    stored = self._already_stored(tx.find_event_ids(event_ids), tenant_id, stream_id, event_ids)
                    # Leave by exception so the transaction (and the head increment)
                    # rolls back instead of committing.
                    raise conflict if stored is None else _AlreadyStored(stored)
                prev = bytes.fromhex(prev_hex) if prev_hex else GENESIS_HASH
                now = self._clock()
                records = []
                prev = chain_records(records, prev, first_position, tenant_id, stream_id, current, rows, now)
                tx.write_and_commit(records, (tenant_id, last, prev.hex(), n))
        except _AlreadyStored as done:
            return done.result
        except EventIdCollision:
            # Only the event_id constraint can fire under the write lock: some id of the
            # batch is stored already. An exact retry is a success; anything else is not.
            stored = self._already_stored(self._appender.find_event_ids(event_ids), tenant_id, stream_id, event_ids)
            if stored is not None:
                return stored
            raise DuplicateEventIds(
                f"some event ids of the batch for stream {stream_id!r} are already stored "
                "(elsewhere, or not the whole batch); an idempotent retry must resend the "
                "exact batch to the same stream"
            ) from None
        metrics.events_appended([r[1] for r in rows])  # (event_id, event_type, ...)
        return AppendResult(stream_id, current + n, first_position, last)

    def append_batch(
        self, appends: Sequence[tuple[str, object, Sequence[NewEvent]]], *, expect: Mapping[str, int] | None = None
    ) -> list[AppendResult]:
        """Append to several streams of one tenant in ONE transaction: all or nothing.

        ``appends``: ``(stream_id, expected_version, events)`` per stream, each stream at
        most once. Same rules as ``append`` for each entry (expected version,
        positions, hash chain: the events are chained in the given order);
        one failure — a ``WrongExpectedVersion`` of any stream, bad input — writes
        nothing at all. The total number of events is limited by ``max_batch_size``.
        Re-sending a batch whose event ids are all stored already, each on its stream
        in order, writes nothing and returns the stored outcomes (``already_stored``);
        some stored, some not raises ``DuplicateEventIds``. Returns one AppendResult per
        entry, in order.

        ``expect``: streams the batch does not write but was decided on (a parent, a
        cycle), each with the version it must still be at (0: must not exist); another
        version raises ``WrongExpectedVersion`` for that stream and writes nothing.
        """
        if isinstance(appends, (str, bytes, Mapping)) or not isinstance(appends, Iterable):
            raise InvalidAppend("appends must be a list of (stream_id, expected_version, events)")
        appends = list(appends)
        if not appends:
            raise EmptyBatch("append_batch with no streams")
        prepared, tenant_id, seen_streams, seen_ids = [], None, set(), set()
        total = 0
        for i, entry in enumerate(appends):
            if not isinstance(entry, (tuple, list)) or len(entry) != 3:
                raise InvalidAppend(f"appends[{i}] must be (stream_id, expected_version, events)")
            stream_id, expected, events = entry
            self._check_expected_version(expected)
            if isinstance(events, (list, tuple)):
                total += len(events)
                if total > self.max_batch_size:
                    raise InvalidAppend(f"batch of {total}+ events exceeds the limit of {self.max_batch_size}")
            rows, tenant = self._prepare(stream_id, events)
            if stream_id in seen_streams:
                raise InvalidAppend(f"stream {stream_id!r} appears twice in the batch; give its events once")
            seen_streams.add(stream_id)
            if tenant_id is None:
                tenant_id = tenant
            elif tenant != tenant_id:
                raise TenantMismatch(f"appends[{i}] is for tenant {tenant!r} but appends[0] is for {tenant_id!r}; "
                                     "one batch writes one tenant's streams")
            for row in rows:
                if row[0] in seen_ids:
                    raise InvalidAppend(f"event id {row[0]} appears twice in the batch")
                seen_ids.add(row[0])
            prepared.append((stream_id, expected, rows))
        n = sum(len(rows) for _, _, rows in prepared)
        if n > self.max_batch_size:
            raise InvalidAppend(f"batch of {n} events exceeds the limit of {self.max_batch_size}")
        expect = dict(expect or {})
        for stream_id, version in expect.items():
            if stream_id in seen_streams:
                raise InvalidAppend(f"stream {stream_id!r} is both written and expected; give it once")
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise InvalidExpectedVersion(f"expect[{stream_id!r}] must be an integer >= 0, not {version!r}")
        event_ids = [r[0] for _, _, rows in prepared for r in rows]
        stream_ids = [stream_id for stream_id, _, _ in prepared] + list(expect)
        try:
            with self._appender.begin() as tx:
                last, streams, prev_hex = tx.lock_and_read_streams(n, stream_ids, tenant_id)
                for stream_id, version in expect.items():
                    current = streams.get(stream_id, 0)
                    if current != version:
                        stored = self._batch_already_stored(tx.find_event_ids(event_ids), tenant_id, prepared)
                        if stored is not None:
                            raise _AlreadyStored(stored)
                        raise WrongExpectedVersion(stream_id, version, current)
                currents = []
                for stream_id, expected, _ in prepared:
                    current = streams.get(stream_id, 0)
                    conflict = self._conflict(stream_id, expected, current)
                    if conflict is not None:
                        stored = self._batch_already_stored(tx.find_event_ids(event_ids), tenant_id, prepared)
                        raise conflict if stored is None else _AlreadyStored(stored)
                    currents.append(current)
                prev = bytes.fromhex(prev_hex) if prev_hex else GENESIS_HASH
                now = self._clock()
                records, results = [], []
                position = last - n + 1
                for (stream_id, _, rows), current in zip(prepared, currents):
                    first = position
                    prev = chain_records(records, prev, position, tenant_id, stream_id, current, rows, now)
                    position += len(rows)
                    results.append(AppendResult(stream_id, current + len(rows), first, position - 1))
                tx.write_and_commit(records, (tenant_id, last, prev.hex(), n))
        except _AlreadyStored as done:
            return done.result
        except EventIdCollision:
            stored = self._batch_already_stored(self._appender.find_event_ids(event_ids), tenant_id, prepared)
            if stored is not None:
                return stored
            raise DuplicateEventIds(
                "some event ids of the batch are already stored (elsewhere, or not the whole batch); "
                "an idempotent retry must resend the exact batch"
            ) from None
        metrics.events_appended([r[1] for _, _, rows in prepared for r in rows])
        return results

    def _batch_already_stored(self, found: list[tuple], tenant_id: str, prepared: list) -> list[AppendResult] | None:
        """The results of an earlier identical append_batch, or None when none of its ids
        is stored; DuplicateEventIds when only some are, or elsewhere."""
        if not found:
            return None
        total = sum(len(rows) for _, _, rows in prepared)
        if len(found) != total:
            raise DuplicateEventIds(
                f"{len(found)} of the {total} event ids of the batch are already stored; an idempotent "
                "retry must resend the exact batch"
            )
        return [self._already_stored(found, tenant_id, stream_id, [r[0] for r in rows])
                for stream_id, _, rows in prepared]

    @staticmethod
    def _check_expected_version(expected) -> None:
        if expected is ANY or expected is NO_STREAM or expected is STREAM_EXISTS:
            return
        if isinstance(expected, bool) or not isinstance(expected, int):
            raise InvalidExpectedVersion(
                f"expected_version must be ANY, NO_STREAM, STREAM_EXISTS or an integer >= 0, "
                f"not {expected!r}"
            )
        if expected < 0:
            raise InvalidExpectedVersion(f"expected_version must be >= 0, not {expected}")

    @staticmethod
    def _conflict(stream_id: str, expected, current: int):
        if expected is ANY:
            return None
        if expected is NO_STREAM or expected == 0:
            return None if current == 0 else WrongExpectedVersion(stream_id, NO_STREAM, current)
        if current == 0:
            return StreamNotFound(stream_id)
        if expected is STREAM_EXISTS or expected == current:
            return None
        return WrongExpectedVersion(stream_id, expected, current)

    @staticmethod
    def _already_stored(
        found: list[tuple], tenant_id: str, stream_id: str, event_ids: list[str]
    ) -> AppendResult | None:
        """The AppendResult of an earlier identical append, given the stored rows
        (event_id, tenant_id, stream_id, stream_version, position) of the batch's ids;
        None if none is stored. Raises DuplicateEventIds when only some are, or
        elsewhere — another stream, or another tenant's (whose events are never
        described to this one: the message names only this append's stream)."""
        if not found:
            return None
        by_id = {r[0]: r for r in found}
        stored = [by_id.get(eid) for eid in event_ids]
        if (
            any(r is None or r[1] != tenant_id or r[2] != stream_id for r in stored)
            or any(b[3] != a[3] + 1 for a, b in zip(stored, stored[1:]))
        ):
            raise DuplicateEventIds(
                f"{len(found)} of the {len(event_ids)} event ids are already stored, but not as "
                f"this exact batch on stream {stream_id!r}; an idempotent retry must resend "
                "the exact batch to the same stream"
            )
        return AppendResult(stream_id, stored[-1][3], stored[0][4], stored[-1][4], True)

    def _prepare(self, stream_id: str, events: Sequence[NewEvent]) -> tuple[list[tuple], str]:
        """Validate and serialise the batch before any transaction opens: returns
        (event_id, event_type, schema_version, data_json, metadata_json) per event,
        and the batch's tenant."""
        if not isinstance(stream_id, str) or not stream_id or stream_id.strip() != stream_id:
            raise InvalidAppend(f"stream_id must be a non-empty string without surrounding spaces, not {stream_id!r}")
        if len(stream_id) > MAX_STREAM_ID_LENGTH or _CONTROL_RE.search(stream_id) or not _is_utf8(stream_id):
            raise InvalidAppend(
                f"stream_id must be at most {MAX_STREAM_ID_LENGTH} printable characters, valid UTF-8"
            )
        if isinstance(events, (NewEvent, str, bytes, Mapping)) or not isinstance(events, Iterable):
            raise InvalidAppend("events must be a list of NewEvent")
        events = list(events)
        if not events:
            raise EmptyBatch(f"append to stream {stream_id!r} with no events")
        if len(events) > self.max_batch_size:
            raise InvalidAppend(
                f"batch of {len(events)} events exceeds the limit of {self.max_batch_size}"
            )
        rows: list[tuple] = []
        seen_ids: set[str] = set()
        valid_types: set[str] = set()
        tenant_id = None
        last_metadata = meta = _UNSET
        for i, ev in enumerate(events):
            if not isinstance(ev, NewEvent):
                raise InvalidEvent(i, "event", f"must be a NewEvent, not {type(ev).__name__}")
            if ev.tenant_id == tenant_id:
                pass
            elif not isinstance(ev.tenant_id, str) or not TENANT_RE.fullmatch(ev.tenant_id):
                raise InvalidEvent(
                    i, "tenant_id", f"{ev.tenant_id!r} is not 1-64 letters, digits, '_', '.' or '-'"
                )
            if tenant_id is None:
                tenant_id = ev.tenant_id
            elif ev.tenant_id != tenant_id:
                raise TenantMismatch(
                    f"event #{i} is for tenant {ev.tenant_id!r} but event #0 is for {tenant_id!r}; "
                    "one append writes one tenant's stream"
                )
            if ev.event_type not in valid_types:
                if not isinstance(ev.event_type, str) or not EVENT_TYPE_RE.fullmatch(ev.event_type):
                    raise InvalidEvent(
                        i, "event_type", f"{ev.event_type!r} is not a dotted name of letters, digits and '_'"
                    )
                valid_types.add(ev.event_type)
            event_id = self._event_id(i, ev.event_id)
            if event_id in seen_ids:
                raise InvalidEvent(i, "event_id", f"{event_id} appears twice in the batch")
            seen_ids.add(event_id)
            sv = ev.schema_version
            if isinstance(sv, bool) or not isinstance(sv, int) or not 1 <= sv <= 1_000_000:
                raise InvalidEvent(i, "schema_version", f"must be an integer >= 1, not {sv!r}")
            data = self._json(i, "data", ev.data, self.max_data_bytes)
            if ev.metadata is not last_metadata:  # a batch often shares one metadata object
                last_metadata = ev.metadata
                meta = self._json(i, "metadata", ev.metadata, self.max_metadata_bytes)
            rows.append((event_id, ev.event_type, sv, data, meta))
        return rows, tenant_id

    @staticmethod
    def _event_id(i: int, value) -> str:
        if isinstance(value, uuid.UUID):
            return str(value)
        if isinstance(value, str):
            try:
                return str(uuid.UUID(value))
            except ValueError:
                pass
        raise InvalidEvent(i, "event_id", f"{value!r} is not a UUID")

    @staticmethod
    def _json(i: int, field: str, value, limit: int) -> str:
        if not isinstance(value, Mapping):
            raise InvalidEvent(i, field, f"must be a JSON object (dict), not {type(value).__name__}")
        try:
            text = dumps(value)
            size = len(text.encode("utf-8"))  # a lone surrogate fails here
        except (TypeError, ValueError) as e:
            raise InvalidEvent(i, field, f"not serialisable as UTF-8 JSON: {e}") from None
        if size > limit:
            raise PayloadTooLarge(i, field, f"{size} bytes exceeds the limit of {limit} bytes")
        return text

    def close(self) -> None:
        """Release the store's own connections (the engine stays the caller's)."""
        self._appender.close()

    # ------------------------------------------------------------------- reads

    def stream_version(self, stream_id: str, *, tenant_id: str) -> int:
        """The version of the tenant's stream (0 if the tenant has no such stream)."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(_E.c.stream_version)).where(_E.c.tenant_id == tenant_id, _E.c.stream_id == stream_id)
            ).scalar_one() or 0

    def head_position(self) -> int:
        """The last assigned global position (0 for an empty store)."""
        with self.engine.connect() as conn:
            return conn.execute(select(schema.head.c.last_position)).scalar_one()

    def read_stream(
        self, stream_id: str, from_version: int = 1, *, tenant_id: str, batch_size: int = 1000
    ) -> Iterator[RecordedEvent]:
        """Events of the tenant's stream from ``from_version`` on, in version order.

        Raises StreamNotFound (immediately, not on first iteration) when the tenant has
        no such stream — whether or not another tenant has one of that id.
        """
        if isinstance(from_version, bool) or not isinstance(from_version, int) or from_version < 1:
            raise ValueError(f"from_version must be an integer >= 1, not {from_version!r}")
        if self.stream_version(stream_id, tenant_id=tenant_id) == 0:
            raise StreamNotFound(stream_id)
        base = (select(*_COLUMNS).where(_E.c.tenant_id == tenant_id, _E.c.stream_id == stream_id)
                .order_by(_E.c.stream_version))

        def pages():
            version = from_version
            while True:
                with self.engine.connect() as conn:
                    rows = conn.execute(
                        base.where(_E.c.stream_version >= version).limit(batch_size)
                    ).all()
                yield from map(RecordedEvent._make, rows)
                if len(rows) < batch_size:
                    return
                version = rows[-1][3] + 1

        return pages()

    def read_all(
        self,
        from_position: int = 1,
        *,
        to_position: int | None = None,
        tenant_id: str | None = None,
        event_types: Iterable[str] | None = None,
        batch_size: int = 1000,
    ) -> Iterator[RecordedEvent]:
        """Every event from ``from_position`` (inclusive) in position order, optionally
        only one tenant's and only some event types, up to ``to_position`` (inclusive).

        Streams in batches of ``batch_size`` rows, each in its own short query, so
        memory stays flat however long the history is.
        """
        if isinstance(from_position, bool) or not isinstance(from_position, int) or from_position < 1:
            raise ValueError(f"from_position must be an integer >= 1, not {from_position!r}")
        conditions = []
        if tenant_id is not None:
            conditions.append(_E.c.tenant_id == tenant_id)
        if event_types is not None:
            types = list(event_types)
            if not types:
                return iter(())
            conditions.append(_E.c.event_type.in_(types))
        if to_position is not None:
            conditions.append(_E.c.position <= to_position)
        return self._pages(select(*_COLUMNS), conditions, from_position, batch_size, RecordedEvent._make)

    #: The columns of ``scan`` rows, in order.
    SCAN_COLUMNS = ("position", "tenant_id", "stream_id", "event_type", "data", "metadata", "recorded_at_us")

    def scan(
        self,
        from_position: int = 1,
        *,
        to_position: int | None = None,
        tenant_id: str | None = None,
        batch_size: int = 5000,
    ) -> Iterator[list[tuple]]:
        """The log as pages (lists) of plain tuples ``SCAN_COLUMNS``, in position order,
        from ``from_position`` up to ``to_position`` (inclusive), optionally one tenant's.

        For bulk readers (projection rebuilds, as-of replays): one query on a bare DBAPI
        cursor (PostgreSQL: a server-side cursor, so memory stays flat), no row objects
        and no JSON parsing — about twice as fast as ``read_all``. The query runs in one
        read transaction: the pages are one consistent snapshot.
        """
        if isinstance(from_position, bool) or not isinstance(from_position, int) or from_position < 1:
            raise ValueError(f"from_position must be an integer >= 1, not {from_position!r}")
        postgres = self.engine.dialect.name == "postgresql"
        mark = "%s" if postgres else "?"
        where, params = [f"position >= {mark}"], [from_position]
        if to_position is not None:
            where.append(f"position <= {mark}")
            params.append(to_position)
        if tenant_id is not None:
            where.append(f"tenant_id = {mark}")
            params.append(tenant_id)
        sql = (f"SELECT {', '.join(self.SCAN_COLUMNS)} FROM {_E.name} "
               f"WHERE {' AND '.join(where)} ORDER BY position")
        raw = self.engine.raw_connection()
        try:
            if postgres:
                cursor = raw.cursor(name=f"okr_scan_{uuid.uuid4().hex[:12]}")
                cursor.itersize = batch_size
            else:
                cursor = raw.cursor()
            cursor.execute(sql, params)
            while True:
                rows = cursor.fetchmany(batch_size)
                if not rows:
                    break
                yield rows
            cursor.close()
        finally:
            try:
                raw.rollback()  # end the read transaction before the connection goes back
            finally:
                raw.close()

    def _pages(self, base, conditions, from_position, batch_size, make):
        base = base.order_by(_E.c.position).limit(batch_size)
        position = from_position
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(base.where(and_(_E.c.position >= position, *conditions))).all()
            yield from map(make, rows)
            if len(rows) < batch_size:
                return
            position = rows[-1][0] + 1

    # ------------------------------------------------------------------ verify

    def verify(self, tenant_id: str | None = None, *, anchor: tuple[str, int | None] | None = None,
               batch_size: int = 5000) -> VerifyResult:
        """Recompute the hash chain(s) and report the first event at fault.

        Checks, in position order: each event's stored hash against SHA-256 of its
        predecessor's hash and its canonical bytes (an edited field, payload or hash, a
        removed or reordered event); over all tenants, that positions have no hole; at
        the end, that each tenant's chain head matches its last event (a truncated
        history) and that the head counter matches the last position. Events appended
        while the check runs are checked too (the scan catches up with the heads before
        it compares them), so a busy store does not look truncated.

        ``anchor`` (only with ``tenant_id``): ``(hash, position)`` of a chain head an
        auditor recorded earlier, ``position`` None to find the hash anywhere in the
        chain. The result is then ok only if the anchor is the recomputed hash of the
        tenant's event at that position, which proves the tenant's history from its
        first event through that one unchanged (docs/audit-format.md, section 1). Only
        the tenant's own events count: a position of another tenant's event, in a gap
        or beyond the head is "no event there", nothing more.
        """
        if anchor is not None and tenant_id is None:
            raise ValueError("anchor: an anchor is a hash of one tenant's chain; give tenant_id")
        scan = _ChainScan(tenant_id, anchor)
        conditions = [] if tenant_id is None else [_E.c.tenant_id == tenant_id]
        for _ in range(_VERIFY_CATCH_UP_ROUNDS):
            rows = self._pages(select(*_COLUMNS), conditions, scan.last_seen + 1, batch_size, tuple)
            seen_before = scan.last_seen
            broken = scan.run(rows)
            if broken is not None:
                return broken
            heads, head_position = self._stored_heads(tenant_id)
            if scan.last_seen == seen_before or not scan.behind(heads, head_position):
                break  # nothing new to read: compare (a head still ahead is a truncation)
        return scan.result(heads, head_position)

    def _stored_heads(self, tenant_id: str | None) -> tuple[dict, int]:
        """The chain heads (of ``tenant_id``, or all) by tenant, and the head counter."""
        ch = schema.chain_heads
        query = select(ch.c.tenant_id, ch.c.last_position, ch.c.last_hash, ch.c.event_count)
        if tenant_id is not None:
            query = query.where(ch.c.tenant_id == tenant_id)
        with self.engine.connect() as conn:
            heads = {r.tenant_id: r for r in conn.execute(query)}
            head_position = conn.execute(select(schema.head.c.last_position)).scalar_one()
        return heads, head_position

    def chain_head(self, tenant_id: str) -> dict | None:
        """The tenant's chain head: last_position, last_hash, event_count (None if no events)."""
        ch = schema.chain_heads
        with self.engine.connect() as conn:
            row = conn.execute(
                select(ch.c.last_position, ch.c.last_hash, ch.c.event_count).where(ch.c.tenant_id == tenant_id)
            ).first()
        return dict(row._mapping) if row else None


#: How often verify() reads on after the heads moved during its scan (appends going on).
_VERIFY_CATCH_UP_ROUNDS = 10


class _ChainScan:
    """The state of one verify(): each tenant's previous hash, last position and count,
    and where the anchor (if any) was met. ``run`` consumes rows in position order and
    returns a failed VerifyResult at the first event at fault (None when all chain)."""

    def __init__(self, tenant_id: str | None, anchor: tuple[str, int | None] | None):
        self.tenant_id = tenant_id
        self.anchor_hash, self.anchor_at = anchor if anchor is not None else (None, None)
        self.prev: dict[str, bytes] = {}
        self.last_position: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.last_seen = 0  # last position read (of any tenant scanned)
        self.checked = 0
        self.anchor: tuple[int, int] | None = None  # (position, tenant's events through it)
        self.anchor_mismatch = False  # the tenant's event at anchor_at has another hash

    def _fail(self, position, event_id, tenant, problem) -> VerifyResult:
        return VerifyResult(False, self.checked, len(self.prev), position, event_id, tenant, problem,
                            *(self.anchor or (None, None)))

    def run(self, rows: Iterable[tuple]) -> VerifyResult | None:
        for row in rows:
            (position, tenant, stream_id, version, event_id, event_type, sv, data, meta, rec, stored) = row
            if self.tenant_id is None and position != self.last_seen + 1:
                return self._fail(position, event_id, tenant,
                                  f"position {self.last_seen + 1} is missing before this event "
                                  "(an event was removed or renumbered)")
            self.last_seen = position
            computed = chain_hash(
                self.prev.get(tenant, GENESIS_HASH),
                canonical_bytes(position, tenant, stream_id, version, event_id, event_type, sv, rec, data, meta),
            ).hex()
            if computed != stored:
                return self._fail(position, event_id, tenant,
                                  "stored hash does not match the event's content chained to its "
                                  "predecessor (a field or the payload was edited, or an event before it "
                                  "in this tenant's chain was removed or reordered)")
            self.prev[tenant] = bytes.fromhex(stored)
            self.last_position[tenant] = position
            self.counts[tenant] = self.counts.get(tenant, 0) + 1
            self.checked += 1
            if self.anchor_hash is not None and self.anchor is None:
                if computed == self.anchor_hash and self.anchor_at in (None, position):
                    self.anchor = (position, self.counts[tenant])
                elif position == self.anchor_at:
                    self.anchor_mismatch = True
        return None

    def behind(self, heads: dict, head_position: int) -> bool:
        """Whether a stored head is ahead of what was read: appended during the scan."""
        if self.tenant_id is None and head_position > self.last_seen:
            return True
        return any(h.last_position > self.last_position.get(t, 0) for t, h in heads.items())

    def result(self, heads: dict, head_position: int) -> VerifyResult:
        """Compare the chains read with the stored heads, then the anchor."""
        prev, last_position, counts = self.prev, self.last_position, self.counts
        for tenant in sorted(set(heads) | set(prev)):
            h = heads.get(tenant)
            if h is None:
                return self._fail(last_position[tenant], None, tenant, "tenant has events but no chain head")
            if (
                h.last_hash != (prev[tenant].hex() if tenant in prev else None)
                or h.last_position != last_position.get(tenant)
                or h.event_count != counts.get(tenant, 0)
            ):
                return self._fail(
                    h.last_position, None, tenant,
                    f"chain head says {h.event_count} events ending at position {h.last_position}, "
                    f"but the table holds {counts.get(tenant, 0)} ending at "
                    f"{last_position.get(tenant)} (history truncated or head edited)",
                )
        if self.tenant_id is None and head_position != self.last_seen:
            return self._fail(head_position, None, None,
                              f"head counter is at position {head_position} but the last event is at "
                              f"{self.last_seen}")
        h = heads.get(self.tenant_id) if self.tenant_id is not None else None
        head = None if h is None else {"last_position": h.last_position, "last_hash": h.last_hash,
                                       "event_count": h.event_count}
        if self.anchor_hash is not None and self.anchor is None:
            return VerifyResult(False, self.checked, len(prev), None, None, self.tenant_id,
                                self._anchor_problem(), chain_head=head)
        return VerifyResult(True, self.checked, len(prev), *(() if self.anchor is None else (
            None, None, None, None, *self.anchor)), chain_head=head)

    def _anchor_problem(self) -> str:
        if self.anchor_at is None:
            return ("expected head is not in this tenant's chain (the history was rewritten, or the "
                    "anchor is not this tenant's)")
        if self.anchor_mismatch:
            return (f"expected head does not match: this tenant's event at position {self.anchor_at} has "
                    "another hash (the history up to it was rewritten, or the anchor is not this tenant's)")
        return (f"expected head not found: this tenant's chain has no event at position {self.anchor_at} "
                "(a position of another tenant or beyond the chain head)")
