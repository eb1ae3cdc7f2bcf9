"""The outbox relay: every event of the store, published to RabbitMQ with confirms.

The events table is the outbox (docs/architecture.md). A relay reads the store from its
checkpoint in position order, publishes each event to the durable topic exchange
``okr.events`` in the wire format of ``okr_shared.bus.wire`` (protobuf EventEnvelope,
routing key = event type, message_id = event id, headers with type, tenant, position and
schema version), and moves its checkpoint only after the broker confirmed.

How (one loop, one thread, one AMQP channel):

1. **Lease.** Only the holder of the database lease named like the relay
   (``okr_shared.eventstore.lease``, default TTL 5 s, renewed every 1 s) publishes; other
   relay processes are hot standbys that try to take it every renew interval, so one
   takes over within ~TTL + 1 s of the holder dying. A clean stop releases the lease
   (immediate takeover).
2. **Window.** Read up to ``window`` (default 500) events after the checkpoint, encode
   them, ``basic_publish`` them all on a channel in confirm mode without waiting, then
   drain the connection until the broker has acked or nacked every delivery tag of the
   window (``basic.ack``/``basic.nack`` with the ``multiple`` flag, via py-amqp's
   ``channel.events`` callbacks). The lease is renewed while waiting.
3. **Checkpoint.** Save the position of the last event of the longest *acked prefix*
   of the window, in a transaction that first renews the lease (nothing is saved by a
   relay that lost it). Under steady load the save is made at most every
   ``checkpoint_interval`` (0.1 s; 0 = after every window): the confirmed position is
   kept in memory meanwhile and saved by the first window or idle poll after the
   interval, and on a clean stop (ADR 0014: a crash republishes at most that much
   more; every event is still published at least once, in order). A nack (e.g. a queue with ``x-overflow: reject-publish`` is
   full) republishes from the checkpoint after a backoff (0.1 s doubling to 5 s). No
   confirm within ``confirm_timeout`` (10 s), or a connection error: close the
   connection, reconnect with the same backoff, republish from the checkpoint.
   Hence **at least once**: a crash between publish and checkpoint publishes that
   window again; consumers dedupe by event id / position (docs/events.md).
4. **Idle.** With nothing to publish, the relay waits on the AMQP socket (which also
   handles heartbeats) and polls the store again: ``busy_poll_interval`` (2 ms) after a
   window it published, doubling with every empty poll up to ``poll_interval`` (10 ms)
   — under load events are picked up ~1-2 ms after their commit instead of ~5 ms (half
   a fixed 10 ms wait; bench/e2e.py: check-in → board p50 −4 ms at 200/s), while an idle
   relay still polls 100 times a second, not 500. A committed event reaches a consumer
   a few ms later at p50 on loopback (bench/bus.py and the tests measure it; the target
   is 50 ms). One primary-key range query per poll is cheap on
   both backends, so no LISTEN/NOTIFY (which would need a trigger on every append).

The lease holder keeps the lease while the broker is unreachable (it retries with
backoff); a standby takes over only from a relay that died or stopped renewing.

An event whose type is not in the okr.v1 contracts (a test's or a tool's own type), or
whose stored payload does not parse as its contract message, must not stop the outbox:
it is published with its envelope fields and an **empty payload** (``payload.type_url``
empty), and a warning is logged once per event type and process.

Replay (``replay()``, ``python -m okr_services.relay replay``): a position range of the
store, published to one named queue only, so a new consumer catches up from the
beginning without disturbing others. Each replayed message is the live message — the
event type as routing key, the same body, properties and headers — plus the header
``okr-replayed: true`` (``wire.replayed``): it goes through an exchange of the replay's
own (``okr.events.replay.<id>``, topic, bound to that queue with the replay's binding
keys, default ``#``; deleted when the replay ends), so a consumer that dispatches or
filters by routing key treats it like live traffic (docs/events.md). It touches neither
the checkpoint nor the lease.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice

import amqp
import kombu
import kombu.exceptions
from google.protobuf import json_format
from sqlalchemy import Engine, exc as sa_exc

from ..clock import now_us
from ..retry import exponential_delay
from .. import contracts
from ..eventstore import EventStore, RecordedEvent
from ..eventstore.lease import Lease, LeaseLost
from ..eventstore.outbox import ensure_checkpoint, load_checkpoint, save_checkpoint
from ..eventstore.reads import PositionWindow
from ..observability import metrics
from . import wire

__all__ = [
    "ConfirmTimeout",
    "ConfirmingPublisher",
    "Relay",
    "ReplayFailed",
    "WindowResult",
    "encode",
    "load_checkpoint",
    "replay",
]

_log = logging.getLogger("okr.relay")

#: (body, properties for amqp.Message, routing key)
Encoded = tuple[bytes, dict, str]

class ConfirmTimeout(Exception):
    """The broker did not confirm every message of a window in time."""


class ReplayFailed(Exception):
    """A replay stopped early; ``confirmed_up_to`` is the last position confirmed."""

    def __init__(self, message: str, confirmed_up_to: int):
        super().__init__(message)
        self.confirmed_up_to = confirmed_up_to


# ----------------------------------------------------------------------- encoding

_warned_types: set[str] = set()


def encode(event: RecordedEvent) -> Encoded:
    """The message of a stored event: (body, amqp properties, routing key), per
    ``okr_shared.bus.wire``. Never raises for an event type or payload the contracts do
    not know: that event goes out with an empty payload (and a warning, once per type)."""
    try:
        envelope = contracts.envelope_from_recorded(event)
    except (contracts.UnknownEventType, json_format.ParseError, ValueError, TypeError) as e:
        envelope = contracts.envelope_header(event)
        if event.event_type not in _warned_types:
            _warned_types.add(event.event_type)
            reason = (
                "not an okr.v1 event type" if isinstance(e, contracts.UnknownEventType)
                else f"payload does not fit the contract: {e}"
            )
            _log.warning(
                "publishing events of type %s with an empty payload (%s); first at position %d",
                event.event_type, reason, event.position,
                extra={"event_type": event.event_type, "position": event.position},
            )
    return envelope.SerializeToString(), wire.message_properties(envelope), wire.routing_key(event.event_type)


# ----------------------------------------------------------------------- publisher


@dataclass
class WindowResult:
    """Outcome of one window: ``confirmed`` = length of the longest prefix the broker
    acked (those messages are safe); ``nacked`` = how many it refused."""

    sent: int
    confirmed: int
    nacked: int

    @property
    def complete(self) -> bool:
        return self.confirmed == self.sent


class ConfirmingPublisher:
    """One AMQP connection and one channel in confirm mode, publishing windows of
    messages and waiting for their confirms (py-amqp underneath kombu's URI handling)."""

    def __init__(
        self,
        amqp_uri: str,
        *,
        confirm_timeout: float = 10.0,
        heartbeat: float = 30.0,
        connect_timeout: float = 5.0,
    ):
        self.amqp_uri = amqp_uri
        self.confirm_timeout = confirm_timeout
        self.heartbeat = heartbeat
        self.connect_timeout = connect_timeout
        self._kombu: kombu.Connection | None = None
        self._conn: amqp.Connection | None = None
        self.channel: amqp.Channel | None = None
        self._tag = 0  # last delivery tag used on this channel
        self._first = self._last = 0  # tags of the current window
        self._status: list[bool | None] = []
        self._unresolved = 0
        self._low = 0  # every index below is resolved
        probe = kombu.Connection(amqp_uri)
        #: exceptions that mean "reconnect and retry"
        self.errors: tuple[type[BaseException], ...] = (
            probe.connection_errors + probe.channel_errors
            + (OSError, amqp.exceptions.AMQPError, kombu.exceptions.OperationalError, ConfirmTimeout)
        )

    @property
    def connected(self) -> bool:
        return self.channel is not None

    def connect(self) -> None:
        if self.connected:
            return
        conn = kombu.Connection(self.amqp_uri, heartbeat=self.heartbeat, connect_timeout=self.connect_timeout)
        try:
            conn.connect()
            channel = conn.channel()
            channel.confirm_select()
            channel.events["basic_ack"].add(self._on_ack)
            channel.events["basic_nack"].add(self._on_nack)
        except BaseException:
            conn.release()
            raise
        self._kombu, self._conn, self.channel, self._tag = conn, conn.connection, channel, 0

    def close(self) -> None:
        conn, self._kombu, self._conn, self.channel = self._kombu, None, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # a dead connection: nothing left to close
                pass

    def declare_exchange(self, name: str, type: str = wire.EXCHANGE_TYPE) -> None:
        self.channel.exchange_declare(name, type, durable=True, auto_delete=False)

    def check_queue(self, name: str) -> None:
        """Raise amqp.exceptions.NotFound when the queue does not exist."""
        self.channel.queue_declare(name, passive=True)

    def publish_window(
        self, exchange: str, messages: Sequence[Encoded], tick: Callable[[], None] | None = None
    ) -> WindowResult:
        """Publish ``messages`` without waiting, then wait until the broker confirmed
        (acked or nacked) each one. ``tick`` runs about every 0.2 s while waiting.
        Raises ConfirmTimeout after ``confirm_timeout`` (close and reconnect then: late
        confirms would be attributed to the next window)."""
        channel = self.channel
        n = len(messages)
        self._first, self._last = self._tag + 1, self._tag + n
        self._status = [None] * n
        self._unresolved, self._low = n, 0
        publish, Message = channel.basic_publish, amqp.Message
        for body, properties, routing_key in messages:
            self._tag += 1
            publish(Message(body, **properties), exchange=exchange, routing_key=routing_key)
        deadline = time.monotonic() + self.confirm_timeout
        while self._unresolved:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConfirmTimeout(
                    f"{self._unresolved} of {n} messages unconfirmed after {self.confirm_timeout} s"
                )
            try:
                self._conn.drain_events(timeout=min(remaining, 0.2))
            except socket.timeout:
                pass
            if tick is not None and self._unresolved:
                tick()
        status = self._status
        confirmed = next((i for i, ok in enumerate(status) if not ok), n)
        return WindowResult(n, confirmed, status.count(False))

    def idle(self, seconds: float) -> None:
        """Wait ``seconds`` while serving the connection (heartbeats, server close)."""
        if self._conn is None:
            time.sleep(seconds)
            return
        try:
            self._conn.drain_events(timeout=seconds)
        except socket.timeout:
            pass
        self._conn.heartbeat_tick()

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._resolve(delivery_tag, multiple, True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._resolve(delivery_tag, multiple, False)

    def _resolve(self, tag: int, multiple: bool, ok: bool) -> None:
        first = self._first
        lo = first + self._low if multiple else tag
        status = self._status
        for t in range(max(lo, first), min(tag, self._last) + 1):
            i = t - first
            if status[i] is None:
                status[i] = ok
                self._unresolved -= 1
        while self._low < len(status) and status[self._low] is not None:
            self._low += 1


# ----------------------------------------------------------------------- checkpoint



class _Backoff:
    """The reconnect delays: ``initial``, doubling up to ``maximum`` (exponential_delay)."""

    def __init__(self, initial: float = 0.1, maximum: float = 5.0):
        self.initial, self.maximum, self._attempt = initial, maximum, 0

    def next(self) -> float:
        self._attempt += 1
        return exponential_delay(self._attempt, self.initial, self.maximum)

    def reset(self) -> None:
        self._attempt = 0


# ----------------------------------------------------------------------- relay


@dataclass
class RelayStats:
    published: int = 0  # messages sent (including re-sends)
    confirmed: int = 0  # messages acked and checkpointed
    nacked: int = 0
    windows: int = 0
    reconnects: int = 0
    leases_acquired: int = 0


class Relay:
    """Publishes the event store to RabbitMQ; see the module docstring.

    ``run()`` loops until ``stop()``; ``start()`` runs it in a thread; ``catch_up()``
    publishes what is stored now and returns. ``name`` (default: the exchange) names
    both the checkpoint and the lease, so relays to different exchanges are independent.
    ``on_confirmed(first_position, last_position)`` is called after a window's confirms
    and before its checkpoint is saved (tests crash the relay there).
    """

    def __init__(
        self,
        engine: Engine,
        amqp_uri: str,
        *,
        exchange: str = wire.EXCHANGE,
        name: str | None = None,
        window: int = 500,
        poll_interval: float = 0.01,
        busy_poll_interval: float = 0.002,
        confirm_timeout: float = 10.0,
        lease_ttl: float = 5.0,
        lease_renew_interval: float = 1.0,
        owner: str | None = None,
        heartbeat: float = 30.0,
        backoff: tuple[float, float] = (0.1, 5.0),
        on_confirmed: Callable[[int, int], None] | None = None,
        checkpoint_interval: float = 0.1,
    ):
        if window < 1:
            raise ValueError("window must be >= 1")
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, not {poll_interval!r}")
        if not busy_poll_interval > 0:
            raise ValueError(f"busy_poll_interval must be > 0 seconds, not {busy_poll_interval!r}")
        if not checkpoint_interval >= 0:
            raise ValueError(f"checkpoint_interval must be >= 0 seconds, not {checkpoint_interval!r}")
        self.engine = engine
        self.store = EventStore(engine)
        self.exchange = exchange
        self.name = name or exchange
        self.window = window
        self.poll_interval = poll_interval
        self.busy_poll_interval = min(busy_poll_interval, poll_interval)  # never longer than the idle wait
        self._idle_wait = poll_interval  # the next wait on an empty poll
        self.lease = Lease(engine, self.name, owner=owner, ttl=lease_ttl, renew_interval=lease_renew_interval)
        self.publisher = ConfirmingPublisher(amqp_uri, confirm_timeout=confirm_timeout, heartbeat=heartbeat)
        self.on_confirmed = on_confirmed
        self.stats = RelayStats()
        self.position = 0  # last confirmed position (valid while active)
        self.checkpoint_interval = checkpoint_interval
        self._window = PositionWindow(engine)
        self._saved = 0  # the checkpoint as last saved (valid while active)
        self._saved_at = 0.0  # monotonic time of that save
        self._backoff = _Backoff(*backoff)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._active = False
        self._log_extra = {"relay": self.name, "owner": self.lease.owner}

    # ------------------------------------------------------------- public

    @property
    def active(self) -> bool:
        """True while this relay holds the lease and publishes."""
        return self._active

    def checkpoint(self) -> int:
        """The saved checkpoint (from the database)."""
        return load_checkpoint(self.engine, self.name)

    def run(self) -> None:
        """Publish until ``stop()`` is called; releases the lease on the way out."""
        self._stop.clear()
        self._loop(until_idle=False)

    def start(self) -> threading.Thread:
        """Run in a daemon thread (a green thread under eventlet's monkey patching)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(False,), name=f"relay-{self.name}", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float | None = 30.0) -> None:
        """Ask the loop to finish its window, save the checkpoint and release the lease;
        waits for the thread started by ``start()``. Safe from a signal handler when
        ``timeout`` is 0."""
        self._stop.set()
        thread = self._thread
        if thread is not None and timeout != 0 and thread is not threading.current_thread():
            thread.join(timeout)

    def catch_up(self, timeout: float = 60.0) -> int:
        """Take the lease (waiting up to ``timeout`` for another holder to let go),
        publish every event stored now, save the checkpoint, release the lease; returns
        the checkpoint. Raises TimeoutError if the lease or the broker stayed out of reach."""
        self._stop.clear()
        timer = threading.Timer(timeout, self._stop.set)
        timer.daemon = True
        timer.start()
        try:
            self._loop(until_idle=True)
        finally:
            timer.cancel()
        if self._stop.is_set():
            raise TimeoutError(f"relay {self.name!r} did not catch up within {timeout} s")
        return self.position

    # ------------------------------------------------------------- the loop

    def _loop(self, until_idle: bool) -> None:
        _log.info("relay starting", extra={**self._log_extra, "exchange": self.exchange, "window": self.window})
        try:
            while not self._stop.is_set():
                try:
                    if not self._ensure_active():
                        self._stop.wait(max(self.lease.seconds_to_next_attempt(), 0.01))
                        continue
                    if self._step() == 0:
                        if until_idle:
                            self._save_checkpoint()
                            return
                        if time.monotonic() - self._saved_at >= self.checkpoint_interval:
                            self._save_checkpoint()  # a deferred one, now that nothing waits
                        self.publisher.idle(self._next_idle_wait(published=False))
                    else:
                        self._next_idle_wait(published=True)
                except self.publisher.errors as e:
                    self._on_broker_error(e)
                except sa_exc.DBAPIError as e:
                    _log.warning("database error: %s", e.__class__.__name__, exc_info=True, extra=self._log_extra)
                    self._pause(self._backoff.next())
                except LeaseLost:
                    _log.warning("lease lost: another relay may publish now", extra=self._log_extra)
                    self._deactivate()
        finally:
            self._shutdown()

    def _next_idle_wait(self, published: bool) -> float:
        """After a published window the next empty poll waits ``busy_poll_interval``;
        each further empty poll twice as long, up to ``poll_interval``. Returns the wait
        for this empty poll."""
        if published:
            self._idle_wait = self.busy_poll_interval
            return 0.0
        wait = self._idle_wait
        self._idle_wait = min(self.poll_interval, wait * 2)
        return wait

    def _ensure_active(self) -> bool:
        held = self.lease.maintain()
        if held and not self._active:
            self._activate()
        elif not held and self._active:
            _log.warning("lease expired before it could be renewed", extra=self._log_extra)
            self._deactivate()
        return self._active

    def _activate(self) -> None:
        with self.lease.holding() as conn:
            ensure_checkpoint(conn, self.name, now_us())
        self.position = self._saved = load_checkpoint(self.engine, self.name)
        self._saved_at = 0.0
        self.stats.leases_acquired += 1
        self._connect()  # the broker error, if any, surfaces in the loop
        self._active = True
        _log.info("lease acquired: publishing", extra={**self._log_extra, "checkpoint": self.position})

    def _deactivate(self) -> None:
        self._active = False
        self.publisher.close()

    def _connect(self) -> None:
        if not self.publisher.connected:
            self.publisher.connect()
            self.publisher.declare_exchange(self.exchange)
            _log.info("connected to the broker", extra={**self._log_extra, "exchange": self.exchange})

    def _step(self) -> int:
        """Publish one window; returns how many events were read (0: nothing new)."""
        self._connect()  # also while idle: a relay that lost the broker reconnects at once
        events = [RecordedEvent._make(row) for row in self._window_rows()]
        if not events:
            return 0
        messages = [encode(event) for event in events]
        if not self.lease.held:  # e.g. a stall since the last renewal
            return len(events)
        result = self.publisher.publish_window(self.exchange, messages, tick=self._tick)
        self.stats.windows += 1
        self.stats.published += result.sent
        self.stats.nacked += result.nacked
        if result.confirmed:
            last = events[result.confirmed - 1].position
            if self.on_confirmed is not None:
                self.on_confirmed(events[0].position, last)
            self.position = last
            self.stats.confirmed += result.confirmed
            metrics.relay_published[(self.name,)].inc(result.confirmed)
            if time.monotonic() - self._saved_at >= self.checkpoint_interval:
                self._save_checkpoint()
        if result.complete:
            self._backoff.reset()
        else:
            delay = self._backoff.next()
            _log.warning(
                "broker refused %d of %d messages; republishing from position %d in %.1f s",
                result.nacked, result.sent, self.position + 1, delay,
                extra={**self._log_extra, "checkpoint": self.position},
            )
            self._pause(delay)
        return len(events)

    def _window_rows(self) -> list:
        """The next window's rows (one statement on a pooled DBAPI connection,
        ``okr_shared.eventstore.reads``); DBAPI errors are raised as SQLAlchemy's (the
        loop backs off on those)."""
        return self._window.rows(self.position, self.position + self.window)

    def _save_checkpoint(self) -> None:
        """Save the confirmed position as the checkpoint, if it moved since the last
        save, in a transaction that renews the lease first (LeaseLost: not saved)."""
        if self.position == self._saved or not self._active:
            return
        position = self.position
        with self.lease.holding() as conn:
            save_checkpoint(conn, self.name, position, now_us())
        self._saved, self._saved_at = position, time.monotonic()

    def _tick(self) -> None:
        """Runs while waiting for confirms: keep the lease (a database hiccup here only
        shortens the lease; the checkpoint write will tell)."""
        try:
            self.lease.maintain()
        except sa_exc.DBAPIError:
            _log.warning("could not renew the lease", exc_info=True, extra=self._log_extra)

    def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._stop.wait(min(remaining, 0.2))
            if self._active:
                self._tick()

    def _on_broker_error(self, error: BaseException) -> None:
        self.publisher.close()
        self.stats.reconnects += 1
        delay = self._backoff.next()
        _log.warning(
            "broker error (%s: %s); reconnecting in %.1f s, then republishing from position %d",
            error.__class__.__name__, error, delay, self.position + 1,
            extra={**self._log_extra, "checkpoint": self.position},
        )
        self._pause(delay)

    def _shutdown(self) -> None:
        if self._active:
            try:
                self._save_checkpoint()
            except (LeaseLost, sa_exc.DBAPIError):
                _log.warning("could not save the checkpoint at %d on the way out (a successor republishes "
                             "from %d)", self.position, self._saved, extra=self._log_extra)
        was_active, self._active = self._active, False
        self.publisher.close()
        if was_active:
            try:
                self.lease.release()
            except sa_exc.DBAPIError:
                _log.warning("could not release the lease (it expires by itself)", extra=self._log_extra)
        self.store.close()
        _log.info(
            "relay stopped",
            extra={**self._log_extra, "checkpoint": self.position, "published": self.stats.published,
                   "confirmed": self.stats.confirmed},
        )


# ----------------------------------------------------------------------- replay


def replay(
    engine: Engine,
    amqp_uri: str,
    queue: str,
    from_position: int = 1,
    to_position: int | None = None,
    *,
    window: int = 500,
    confirm_timeout: float = 30.0,
    attempts: int = 5,
    progress: Callable[[int], None] | None = None,
    bindings: Sequence[str] = ("#",),
) -> int:
    """Publish the events at positions ``from_position``..``to_position`` (default:
    the head now) to ``queue`` alone, as the relay publishes them plus the header
    ``okr-replayed: true``, with windowed confirms: through an exchange of this replay's
    own, bound to the queue with ``bindings`` (topic patterns; default ``#``, every event
    of the range — give the queue's own binding keys to receive exactly what live
    traffic brings it), deleted at the end. The queue must exist (declare and bind it
    first, so live events are not missed; dedupe absorbs the overlap). A refused window
    is retried from its first unconfirmed event up to ``attempts`` times. Returns the
    number of events published (whether or not ``bindings`` let them into the queue);
    raises ReplayFailed (with the last confirmed position) otherwise, and
    amqp.exceptions.NotFound for a missing queue."""
    bindings = tuple(bindings)
    if not bindings or not all(isinstance(b, str) and b for b in bindings):
        raise ValueError("bindings: at least one non-empty binding key")
    store = EventStore(engine)
    publisher = ConfirmingPublisher(amqp_uri, confirm_timeout=confirm_timeout)
    exchange = f"{wire.REPLAY_EXCHANGE_PREFIX}{uuid.uuid4().hex}"
    declared = False
    try:
        publisher.connect()
        try:
            publisher.check_queue(queue)
        except amqp.exceptions.NotFound:
            raise amqp.exceptions.NotFound(
                f"queue {queue!r} does not exist: declare it (and bind it to {wire.EXCHANGE}) first"
            ) from None
        # not durable, auto-deleted with its last binding (the queue's deletion too); a
        # broker restart removes one left behind by a replay that died
        declared = True
        publisher.channel.exchange_declare(exchange, wire.EXCHANGE_TYPE, durable=False, auto_delete=True)
        for key in dict.fromkeys(bindings):
            publisher.channel.queue_bind(queue, exchange, routing_key=key)
        last = store.head_position() if to_position is None else to_position
        position, count, failures = from_position, 0, 0
        while position <= last:
            events = list(islice(
                store.read_all(position, to_position=min(last, position + window - 1), batch_size=window), window
            ))
            if not events:
                break
            messages = [(body, wire.replayed(properties), routing_key)
                        for body, properties, routing_key in map(encode, events)]
            try:
                result = publisher.publish_window(exchange, messages)
            except publisher.errors as e:
                raise ReplayFailed(f"replay to {queue!r} failed: {e}", position - 1) from e
            if result.confirmed:
                count += result.confirmed
                position = events[result.confirmed - 1].position + 1
                if progress is not None:
                    progress(position - 1)
            if not result.complete:
                failures += 1
                if failures >= attempts:
                    raise ReplayFailed(
                        f"the broker refused messages for {queue!r} {failures} times", position - 1
                    )
                time.sleep(min(0.1 * 2 ** failures, 5.0))
        return count
    finally:
        if declared:
            _delete_exchange(publisher, exchange)
        publisher.close()
        store.close()


def _delete_exchange(publisher: ConfirmingPublisher, exchange: str) -> None:
    """Delete a replay's exchange (on a fresh connection if the replay's broke); a failure
    is only logged: the exchange goes with the queue's deletion or a broker restart."""
    error = None
    for attempt in range(2):
        try:
            if attempt or not publisher.connected:
                publisher.close()
                publisher.connect()
            publisher.channel.exchange_delete(exchange)
            return
        except amqp.exceptions.NotFound:
            return
        except publisher.errors as e:
            error = e
    _log.warning("could not delete the replay exchange %s (%r)", exchange, error, extra={"exchange": exchange})

