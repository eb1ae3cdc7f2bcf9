"""The engine of ``okr.v1.EventStream.StreamEvents`` (protos/okr/v1/stream.proto): one
tenant's events from a position, optionally of some event types only, first caught up
from the event store and then followed live off the bus — without a gap or a duplicate
at the switch.

    for envelope in stream_events(store, amqp_uri, tenant="acme", from_position=1,
                                  event_types=["okr.v1.CheckInRecorded"], stop=cancelled):
        if envelope is None:        # idle heartbeat: nothing new for heartbeat_s seconds
            continue                # (a chance to notice a cancelled call)
        send(envelope)

Plain blocking code (kombu/py-amqp, threading): it runs in the gateway's threaded grpcio
process as it does under eventlet's monkey patching (the test suite).

**What it yields.** ``okr.v1.EventEnvelope`` messages — encoded exactly as the outbox
relay publishes them (``relay.encode``: an event type outside the contracts, or a
payload that does not fit its contract, goes with an empty payload) — of ``tenant``
(and of ``event_types`` when given), with ``position >= from_position``, in strictly
increasing position order, each exactly once. With ``follow=True`` it may also yield
``None`` after ``heartbeat_s`` seconds without an event: callers skip it (the gRPC
servicer checks cancellation then). ``follow=False`` never yields ``None``.

**How** (``covered`` = the highest *global* position up to which every wanted event has
been yielded; positions are global across tenants and gap-free in the store, and a
committed position p implies every position below p is committed — the store assigns
positions under its write lock in commit order):

1. (follow only) Declare an exclusive, auto-delete queue ``okr.stream.<tenant>.<hex>`` on a
   connection of our own, bind it to the exchange (one binding per event type, or
   ``okr.v1.#``) and start consuming it (no-ack) in a reader thread that buffers the
   messages. Binding is synchronous: every event committed from now on reaches the
   queue when the relay publishes it.
2. Read the store's head H *after* the binding and yield
   ``read_all(from_position, to_position=H, tenant, types)``; covered = max(H,
   from_position - 1). ``follow=False`` ends here (no broker involved at all).
3. Live: take buffered messages in order. A message whose position is <= covered is a
   duplicate (a relay re-publishing a window, the overlap of step 1/2): dropped. A
   message at covered + 1 moves covered on, and is yielded when it is the tenant's (and
   of a wanted type). A message beyond covered + 1 means positions in between were not
   seen on the queue (other event types are not bound, a relay skipped or lost some,
   or the message is the first after the catch-up): the store is the source of truth
   for that range, so ``read_all(covered + 1, to_position=q, tenant, types)`` is
   yielded first, where q is the highest position buffered so far (all committed,
   since published), and every buffered message up to q is then a duplicate.
4. The reader thread itself drops a message whose position is not above the highest
   it has buffered (so the buffer is strictly increasing), and keeps only the position
   of other tenants' messages, coalescing a run of consecutive ones into one range.

**Slow readers.** The buffer holds at most ``max_buffer`` entries (messages not yet
taken by the caller, during the catch-up too); beyond that the stream fails with
``StreamOverflow`` (the servicer's RESOURCE_EXHAUSTED; the client resumes from the last
position received + 1) instead of growing without bound.

**Failures.** The broker or the store unreachable (at the start or later) raises
``StreamUnavailable`` (UNAVAILABLE; resume as above). Bad arguments raise ``ValueError``
naming the field, when ``stream_events`` is called (before anything is iterated).

**Limits.** A follower receives an event when the relay publishes it (~5 ms after the
commit) — except an event whose type is outside the ``okr.v1`` namespace (not a domain
event; no service writes such), which is not routed to ``okr.v1.#`` and so reaches a
follower from the store with the next published event.

**Clean-up.** Closing the generator (``close()``, garbage collection, or the end of a
``follow=False`` stream), ``stop`` being set, or any failure stops the reader thread,
deletes the queue and closes the connection.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Iterator

import amqp
import kombu
import kombu.exceptions
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from sqlalchemy import exc as sa_exc

from okr_shared import contracts
from okr_shared.bus import wire
from okr_shared.contracts import EventEnvelope
from okr_shared.eventstore.store import TENANT_RE

__all__ = ["StreamOverflow", "StreamUnavailable", "stream_events"]

_log = logging.getLogger("okr.gateway.stream")

#: How often (at most) a waiting stream looks at ``stop``.
_STOP_POLL_S = 0.05
#: AMQP heartbeat of a stream's connection (the reader thread serves it).
_HEARTBEAT_S = 30


class StreamOverflow(Exception):
    """The caller reads too slowly: more than ``max_buffer`` live messages are waiting
    for it (gRPC RESOURCE_EXHAUSTED; resume from the last position received + 1)."""


class StreamUnavailable(Exception):
    """The event store or the message broker is unreachable (gRPC UNAVAILABLE; resume
    from the last position received + 1)."""


# ------------------------------------------------------------------------ arguments


def _validate(store, tenant, from_position, event_types, heartbeat_s, max_buffer):
    if not isinstance(tenant, str) or not tenant or not TENANT_RE.fullmatch(tenant):
        raise ValueError(f"tenant must be a tenant id (1-64 letters, digits, '_', '.', '-'), not {tenant!r}")
    if isinstance(from_position, bool) or not isinstance(from_position, int) or from_position < 1:
        raise ValueError(f"from_position must be an integer >= 1, not {from_position!r}")
    types: tuple[str, ...] | None
    if event_types is None:
        types = None
    else:
        if isinstance(event_types, str):
            event_types = (event_types,)
        try:
            requested = list(event_types)
        except TypeError:
            raise ValueError(f"event_types must be a list of event type names, not {event_types!r}") from None
        if wire.ALL_EVENTS in requested:
            types = None
        else:
            unknown = [t for t in requested if not isinstance(t, str) or t not in contracts.EVENT_TYPES]
            if unknown:
                raise ValueError(
                    f"event_types: {', '.join(map(repr, unknown))} not a domain event of the okr.v1 "
                    f"contracts (known: {', '.join(sorted(contracts.EVENT_TYPES))})"
                )
            types = tuple(dict.fromkeys(requested)) or None  # empty: every event type
    if isinstance(heartbeat_s, bool) or not isinstance(heartbeat_s, (int, float)) or not heartbeat_s > 0:
        raise ValueError(f"heartbeat_s must be a number > 0, not {heartbeat_s!r}")
    if isinstance(max_buffer, bool) or not isinstance(max_buffer, int) or max_buffer < 1:
        raise ValueError(f"max_buffer must be an integer >= 1, not {max_buffer!r}")
    try:
        head = store.head_position()
    except sa_exc.SQLAlchemyError as e:
        raise StreamUnavailable(f"the event store is unreachable: {e.__class__.__name__}") from e
    if from_position > head + 1:
        raise ValueError(f"from_position {from_position} is beyond the store's head + 1 ({head + 1})")
    return types


# ------------------------------------------------------------------------- envelopes


def envelope_of(event) -> EventEnvelope:
    """A stored event's envelope exactly as the relay publishes it (relay.encode)."""
    try:
        return contracts.envelope_from_recorded(event)
    except (contracts.UnknownEventType, json_format.ParseError, ValueError, TypeError):
        return contracts.envelope_header(event)


# ---------------------------------------------------------------------- live buffer


class _Live:
    """The queue of one stream and the reader thread that buffers its messages.

    Buffer entries are ``[lo, hi, envelope_or_None]``: positions lo..hi were all seen on
    the queue, and ``envelope`` (the tenant's event at position hi == lo) is set only
    for the tenant's messages; other tenants' consecutive messages coalesce into one
    entry. Entries are strictly increasing (the reader drops anything not above the
    highest position it buffered)."""

    def __init__(self, amqp_uri: str, exchange: str, tenant: str, types, max_buffer: int):
        self.tenant = tenant
        self.types = None if types is None else frozenset(types)
        self.max_buffer = max_buffer
        self.queue_name = f"okr.stream.{tenant}.{uuid.uuid4().hex[:16]}"
        self.buffer: deque[list] = deque()
        self.highest = 0  # highest position buffered (or dropped as a duplicate)
        self.error: BaseException | None = None  # StreamOverflow / StreamUnavailable
        self.cond = threading.Condition()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None
        self._kombu = kombu.Connection(amqp_uri, connect_timeout=5, heartbeat=_HEARTBEAT_S)
        self._errors = (
            self._kombu.connection_errors + self._kombu.channel_errors
            + (OSError, amqp.exceptions.AMQPError, kombu.exceptions.OperationalError)
        )
        try:
            self._kombu.connect()
            self._conn = self._kombu.connection
            channel = self._channel = self._kombu.channel()
            channel.exchange_declare(exchange, wire.EXCHANGE_TYPE, durable=True, auto_delete=False)
            channel.queue_declare(self.queue_name, durable=False, exclusive=True, auto_delete=True)
            for key in (wire.ALL_EVENTS,) if types is None else map(wire.routing_key, types):
                channel.queue_bind(self.queue_name, exchange, routing_key=key)
            channel.basic_consume(self.queue_name, callback=self._on_message, no_ack=True)
        except self._errors as e:
            self._release()
            raise StreamUnavailable(f"the message broker is unreachable: {e.__class__.__name__}: {e}") from e
        except BaseException:
            self._release()
            raise
        self._thread = threading.Thread(target=self._run, name=f"stream-{self.queue_name}", daemon=True)
        self._thread.start()

    # -------------------------------------------------------- reader thread

    def _run(self) -> None:
        conn = self._conn
        try:
            while not self._closing.is_set():
                try:
                    conn.drain_events(timeout=0.1)
                except TimeoutError:  # socket.timeout
                    pass
                conn.heartbeat_tick()  # a dead broker or network shows within ~2 heartbeats
        except self._errors as e:
            if not self._closing.is_set():
                self._fail(StreamUnavailable(f"lost the message broker: {e.__class__.__name__}: {e}"))
        except BaseException as e:  # noqa: BLE001 - must reach the stream
            self._fail(StreamUnavailable(f"the live reader failed: {e!r}"))
            _log.exception("stream reader failed", extra={"queue": self.queue_name})

    def _fail(self, error: BaseException) -> None:
        with self.cond:
            if self.error is None:
                self.error = error
            self.cond.notify_all()
        self._closing.set()

    def _on_message(self, message) -> None:
        if self.error is not None:
            return
        headers = (message.properties or {}).get("application_headers") or {}
        tenant = headers.get(wire.HEADER_TENANT)
        event_type = headers.get(wire.HEADER_EVENT_TYPE)
        position = headers.get(wire.HEADER_POSITION)
        envelope = None
        if not isinstance(position, int) or tenant is None or event_type is None:
            try:  # headers missing: the body says it
                envelope = wire.decode(message.body)
            except DecodeError:
                return  # garbage: a gap the store fills if anything is missing
            tenant, event_type, position = envelope.tenant_id, envelope.event_type, envelope.position
        wanted = tenant == self.tenant and (self.types is None or event_type in self.types)
        if wanted and envelope is None:
            try:
                envelope = wire.decode(message.body)
            except DecodeError:
                return
        with self.cond:
            if position <= self.highest:
                return  # a duplicate (or late): everything up to highest is covered
            buffer = self.buffer
            if not wanted and buffer and buffer[-1][2] is None and buffer[-1][1] + 1 == position:
                buffer[-1][1] = position  # extend a run of other tenants' events
            else:
                if len(buffer) >= self.max_buffer:
                    self.error = StreamOverflow(
                        f"the client reads too slowly: more than {self.max_buffer} live events waiting "
                        f"(resume from the last position received + 1)"
                    )
                    self.cond.notify_all()
                    self._closing.set()
                    return
                buffer.append([position, position, envelope if wanted else None])
            self.highest = position
            self.cond.notify_all()

    # -------------------------------------------------------- stream side

    def take(self, timeout: float, stop: threading.Event | None) -> list[list] | None:
        """Every buffered entry (removed from the buffer), waiting up to ``timeout`` for
        one; [] on timeout, None when ``stop`` is set. Raises the reader's error."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if self.error is not None:
                    raise self.error
                if stop is not None and stop.is_set():
                    return None
                if self.buffer:
                    entries = list(self.buffer)
                    self.buffer.clear()
                    return entries
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                self.cond.wait(min(remaining, _STOP_POLL_S))

    def check(self) -> None:
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._closing.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)
        if self.error is None or not isinstance(self.error, StreamUnavailable):
            try:
                self._channel.queue_delete(self.queue_name)
            except Exception:  # noqa: BLE001 - auto-delete/exclusive: goes with the connection
                pass
        self._release()

    def _release(self) -> None:
        try:
            self._kombu.release()
        except Exception:  # noqa: BLE001 - a dead connection: nothing left to close
            pass


# ---------------------------------------------------------------------------- stream


def stream_events(
    store,
    amqp_uri: str,
    *,
    tenant: str,
    from_position: int = 1,
    event_types: Iterable[str] | None = None,
    follow: bool = True,
    exchange: str = wire.EXCHANGE,
    stop: threading.Event | None = None,
    heartbeat_s: float = 1.0,
    max_buffer: int = 10_000,
) -> Iterator[EventEnvelope | None]:
    """``tenant``'s events (of ``event_types``, default all) from ``from_position`` on,
    as EventEnvelopes in strictly increasing position order, each once; see the module
    docstring. ``follow=False``: up to the store's head when iteration starts, then the
    iterator ends. ``follow=True``: then live events until ``stop`` is set or the
    iterator is closed, with ``None`` every ``heartbeat_s`` seconds while idle.

    Validates at once (ValueError naming the field: tenant, from_position — an integer
    >= 1 and at most the head + 1 —, event_types — domain events of the okr.v1
    contracts; empty or ``okr.v1.#`` means all —, heartbeat_s, max_buffer). Iterating
    raises StreamOverflow (slow reader) or StreamUnavailable (store or broker)."""
    types = _validate(store, tenant, from_position, event_types, heartbeat_s, max_buffer)
    return _stream(store, amqp_uri, tenant, from_position, types, bool(follow), exchange, stop,
                   float(heartbeat_s), max_buffer)


def _read(store, first: int, last: int, tenant: str, types) -> Iterator[EventEnvelope]:
    """The store's envelopes of ``tenant``/``types`` at positions first..last."""
    if first > last:
        return
    try:
        for event in store.read_all(first, to_position=last, tenant_id=tenant, event_types=types):
            yield envelope_of(event)
    except sa_exc.SQLAlchemyError as e:
        raise StreamUnavailable(f"the event store is unreachable: {e.__class__.__name__}") from e


def _head(store) -> int:
    try:
        return store.head_position()
    except sa_exc.SQLAlchemyError as e:
        raise StreamUnavailable(f"the event store is unreachable: {e.__class__.__name__}") from e


def _stream(store, amqp_uri, tenant, from_position, types, follow, exchange, stop, heartbeat_s, max_buffer):
    stopped = (lambda: stop.is_set()) if stop is not None else (lambda: False)
    live = _Live(amqp_uri, exchange, tenant, types, max_buffer) if follow else None
    try:
        # 2. catch up to the head read after the binding
        head = _head(store)
        for envelope in _read(store, from_position, head, tenant, types):
            if stopped():
                return
            if live is not None:
                live.check()
            yield envelope
        if not follow:
            return
        covered = max(head, from_position - 1)
        # 3. live, filling every hole from the store
        while True:
            entries = live.take(heartbeat_s, stop)
            if entries is None:
                return
            if not entries:
                yield None  # idle heartbeat
                continue
            top = entries[-1][1]
            for lo, hi, envelope in entries:
                if hi <= covered:
                    continue  # duplicate
                if lo > covered + 1:
                    # a hole: the store has every position up to ``top`` (published
                    # means committed, and so is everything below it)
                    for filled in _read(store, covered + 1, top, tenant, types):
                        if stopped():
                            return
                        yield filled
                    covered = top
                    break
                covered = hi
                if envelope is not None and envelope.position >= from_position:
                    if stopped():
                        return
                    yield envelope
            live.check()
    finally:
        if live is not None:
            live.close()
