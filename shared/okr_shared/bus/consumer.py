"""The consumer layer: how the platform's services (reporting, notification) and the
tests take events off the bus, on top of nameko.

    from okr_shared.bus.consumer import ConsumerDatabase, PoisonEvent, okr_event_handler

    class ReportingService:
        name = "reporting"
        db = ConsumerDatabase(url_env="OKR_REPORTING_DATABASE_URL")   # the service's own DB

        @okr_event_handler("reporting.kr-status",
                           event_types=["okr.v1.KeyResultDefined", "okr.v1.CheckInRecorded"])
        def on_event(self, envelope, conn):        # EventEnvelope, open SQLAlchemy transaction
            conn.execute(kr_status.update()...)    # the projection's change; commits with the offset

What it guarantees (nameko's own ``@event_handler`` acks a message even when the
handler raises, and loses it — ADR 0030):

- **Exactly-once effect.** The handler runs inside a transaction on the consumer's OWN
  database; the layer records what it applied in the same transaction (ordered: the
  last position, ``okr_consumer_offsets``; unordered: the event id,
  ``okr_consumer_processed``) and acks the message only after the commit. A
  redelivered or duplicated event changes nothing.
- **Order and gaps** (``ordered=True``, the default). The queue is a RabbitMQ
  single-active-consumer queue: every instance of the service subscribes, one receives,
  the others are hot standbys that take over (from the committed offset) when it goes.
  A jump in positions (``last + 1 < position``) first fetches the missing range from the
  event store — only the consumer's event types and tenant, encoded exactly as the relay
  encodes them (``envelope_of``) — and applies it in order.
  Positions at or below the offset are duplicates. A large gap (a new projection
  catching up on the whole history) is applied in chunks of ``gap_chunk`` events, one
  transaction each.
- **Retries.** A handler that raises is retried in process with exponential backoff
  (``retry_delay`` · 2ⁿ, at most ``retry_max_delay``), up to ``max_retries`` times; then
  the event is dead-lettered. ``raise PoisonEvent(...)`` dead-letters at once. While a
  message is retried an ordered consumer waits (order); an unordered one goes on with
  its other workers. The consumer's database or the event store being unreachable is
  not the event's fault: such failures (and a failing commit) are retried without limit
  (capped backoff) and never dead-letter anything.
- **Dead letters.** The queue has ``x-dead-letter-exchange`` = ``okr.events.dlx``
  (direct) and ``x-dead-letter-routing-key`` = its own name; ``<queue>.dlq`` is bound
  there. A message that cannot be decoded is rejected (``requeue=False``) at once; an
  event that keeps failing is rejected after its retries, or — when it came from the
  store to fill a gap — published to the dead-letter exchange. Either way it is recorded
  in ``okr_consumer_dead_letters`` (position, event id, error, attempts) in a transaction
  that also moves an ordered consumer's offset past it, so the stream continues behind
  it. Redriving a dead letter (moving it, headers and all, from ``<queue>.dlq`` back to
  ``<queue>``) applies it: a message with ``x-death`` or ``okr-dead-letter-source`` whose
  event is in the dead-letter table is applied (out of order), and its row deleted; a
  late copy of the same event without those headers stays a duplicate.

Unordered consumers (``ordered=False``): competing consumers on a plain durable queue,
up to ``prefetch_count`` messages at once per instance, deduped by event id; no gap
filling (there is no order to find a gap in). Their ``okr_consumer_processed`` table
grows by one row per event: prune old rows with ``prune_processed`` (a redelivery comes
minutes after the first delivery, not months).

Handlers must only change the database they are given (anything else — e-mail, a
webhook — is not rolled back with it and would repeat on a retry: write an outbox row
and send after the commit). On SQLite the layer serialises the process's writers to one
database file (``ConsumerDatabase.transaction()``; use it for the service's own writes
too): a green thread that yields inside a write transaction would otherwise make the
next writer busy-wait in C (ADR 0030).

Schema: the three tables are the layer's, created by the Alembic history ``consumer``
(``okr_shared.db.migrate``: idempotent, safe to run from several instances at once, its
own version table beside the service's history) when the ``ConsumerDatabase`` starts
(docs/adr/0007-…, 0029-…). Queue arguments cannot change on an existing queue (RabbitMQ
refuses the declaration): switching a queue between ordered and unordered means a new
queue name.

Message flow: nameko's AMQP consumer (``nameko.amqp.consume.Consumer``, which
reconnects after a broker restart) hands raw messages to this entrypoint; an ordered
consumer takes up to ``batch_size`` waiting messages into one transaction (one commit,
then one ack each); every event runs as a nameko worker (``handler(self, envelope,
conn)``, dependencies injected as usual, worker context data ``okr_source`` = ``bus`` /
``store`` / ``redrive`` and ``okr_queue``).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import warnings

with warnings.catch_warnings():  # "Eventlet is deprecated": nameko 3 runs on it (ADR 0030)
    warnings.simplefilter("ignore")  # EventletDeprecationWarning is a plain Warning
    import eventlet
    import eventlet.event
    import eventlet.queue
from kombu import Connection, Exchange, Queue, binding
from nameko import config as nameko_config
from nameko.amqp.consume import Consumer as NamekoConsumer
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_AMQP_URI,
    DEFAULT_HEARTBEAT,
    DEFAULT_PREFETCH_COUNT,
    HEARTBEAT_CONFIG_KEY,
    LOGIN_METHOD_CONFIG_KEY,
    PREFETCH_COUNT_CONFIG_KEY,
)
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import DependencyProvider, Entrypoint
from sqlalchemy import (
    Engine,
    bindparam,
    delete,
    exc as sa_exc,
    insert,
    select,
    update,
)

from ..clock import now_us
from ..retry import exponential_delay
from .. import contracts, dbapi
from ..config import Settings, database_url_of
from ..db import migrate, sqlite_write_lock
# the tables: the consumer history's snapshot of its newest revision (docs/adr/0032-…)
from ..db.migrations.consumer.tables_0001 import dead_letters, metadata, offsets, processed
from ..eventstore import EventStore, make_engine
from ..eventstore.engine import background_checkpoints
from ..eventstore import transactions
from ..eventstore.transactions import off_the_hub
from ..observability import lag as _lag, metrics
from . import wire

_log = logging.getLogger(__name__)

__all__ = [
    "ConsumerDatabase",
    "OkrEventHandler",
    "PoisonEvent",
    "dead_letter_queue_name",
    "envelope_of",
    "metadata",
    "okr_event_handler",
    "prune_processed",
]

# The ordered path's two offset statements, built once (per event batch they were
# rebuilt, with their cache keys, on every transaction).
_READ_OFFSET = select(offsets.c.last_position).where(offsets.c.consumer == bindparam("consumer")).with_for_update()
_WRITE_OFFSET = (update(offsets).where(offsets.c.consumer == bindparam("w_consumer"))
                 .values(last_position=bindparam("last_position"), updated_at_us=bindparam("updated_at_us")))


def prune_processed(engine: Engine, consumer: str, older_than_s: float) -> int:
    """Delete an unordered consumer's processed-event ids older than ``older_than_s``
    seconds; returns how many. Keep well beyond any redelivery delay (days)."""
    cutoff = now_us() - int(older_than_s * 1_000_000)
    with engine.begin() as conn:
        return conn.execute(
            delete(processed).where(processed.c.consumer == consumer, processed.c.processed_at_us < cutoff)
        ).rowcount


#: Headers of a dead letter the layer publishes itself (an event from the store that
#: failed while filling a gap); the broker's own dead letters carry ``x-death``.
HEADER_DEAD_LETTER_REASON = "okr-dead-letter-reason"
HEADER_DEAD_LETTER_SOURCE = "okr-dead-letter-source"


def dead_letter_queue_name(queue: str) -> str:
    return f"{queue}.dlq"



# ------------------------------------------------------------------------ envelopes


def envelope_of(event) -> contracts.EventEnvelope:
    """The EventEnvelope of a stored event exactly as the outbox relay publishes it
    (``relay.encode``: a type outside the contracts, or a payload that does not fit its
    contract, goes with an empty payload), so an event filled in from the store reads
    the same to a handler as one from the bus."""
    from .relay import encode  # the relay's module imports nothing of this one

    envelope = contracts.EventEnvelope()
    envelope.ParseFromString(encode(event)[0])
    return envelope


def topic_matches(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    """AMQP topic matching of a routing key's words against a binding pattern's (``*`` one
    word, ``#`` zero or more)."""
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        return any(topic_matches(rest, words[i:]) for i in range(len(words) + 1))
    if not words:
        return False
    return (head == "*" or head == words[0]) and topic_matches(rest, words[1:])


# ------------------------------------------------------------------------- failures


class PoisonEvent(Exception):
    """Raise from a handler for an event that can never be applied: it is dead-lettered
    at once, without retries."""


class _EventFailed(Exception):
    """The handler raised for ``envelope`` (which may be a gap event from the store)."""

    def __init__(self, envelope, error: BaseException):
        super().__init__(f"event {envelope.event_id} at position {envelope.position}: {error!r}")
        self.envelope = envelope
        self.error = error


class _GapNotInStore(Exception):
    """The event store does not (yet) hold the whole missing range: infrastructure."""


# ------------------------------------------------------------------------- database

class ConsumerDatabase(DependencyProvider):
    """The consumer's own database (its projections and the layer's tables), and a
    reader of the event store for filling gaps.

    - ``url``: SQLAlchemy URL; default: the environment variable ``url_env``
      (``OKR_CONSUMER_DATABASE_URL``), else ``sqlite:///$OKR_DATA_DIR/<service name>.db``;
    - ``event_store_url``: default ``OKR_DATABASE_URL`` (okr_shared.config.Settings).

    Workers get the engine (for the service's queries); ``transaction()`` is the write
    transaction the layer runs handlers in (on SQLite: one writer per database file in
    this process, and ``BEGIN IMMEDIATE``).
    """

    def __init__(self, url: str | None = None, *, url_env: str = "OKR_CONSUMER_DATABASE_URL",
                 event_store_url: str | None = None):
        self.url = url
        self.url_env = url_env
        self.event_store_url = event_store_url
        self.engine: Engine | None = None
        self._checkpointer = None
        self._store: EventStore | None = None
        self._store_engine: Engine | None = None

    def setup(self):
        settings = Settings.from_env()
        url = self.url or database_url_of(self.url_env)
        if not url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            url = f"sqlite:///{settings.data_dir / self.container.service_name}.db"
        # SQLite: the WAL is checkpointed by a thread of its own, not by the COMMIT that
        # the next event waits for (ADR 0018)
        self.engine, self._checkpointer = background_checkpoints(url)
        self._store_url = self.event_store_url or settings.database_url
        self._sqlite = self.engine.dialect.name == "sqlite"
        if self._sqlite:
            self._lock = sqlite_write_lock(self.engine)
            self._writer = self.engine.execution_options(sqlite_begin="IMMEDIATE")
        else:
            self._lock = contextlib.nullcontext()
            self._writer = self.engine
        migrate(self.engine, "consumer")

    @property
    def event_store(self) -> EventStore:
        if self._store is None:
            self._store_engine = make_engine(self._store_url)
            self._store = EventStore(self._store_engine)
        return self._store

    @contextlib.contextmanager
    def transaction(self) -> Iterator:
        """A write transaction on the consumer's database (commits on leaving; on SQLite
        the COMMIT, an fsync, runs off the eventlet hub unless
        ``OKR_SQLITE_COMMIT_IN_THREAD=0``: ``off_the_hub``)."""
        with self._lock:
            if not self._sqlite:
                with self._writer.begin() as conn:
                    yield conn
                return
            with self._writer.connect() as conn:
                with conn.begin() as trans:
                    yield conn
                    off_the_hub(trans.commit, in_thread=transactions.CONSUMER_COMMIT_IN_THREAD)

    def get_dependency(self, worker_ctx):
        return self.engine

    def stop(self):
        if self._store is not None:
            self._store.close()
            self._store_engine.dispose()
            self._store = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        if self.engine is not None:
            self.engine.dispose()

    def kill(self):
        self.stop()


# ------------------------------------------------------------------------ amqp glue


class _Subscription(NamekoConsumer):
    """nameko's reconnecting AMQP consumer, delivering raw (undecoded) messages and
    declaring the dead-letter queue on every (re)connection."""

    def __init__(self, amqp_uri, *, on_raw_message, extra_declarations, **kwargs):
        super().__init__(amqp_uri, **kwargs)
        self._on_raw_message = on_raw_message
        self._extra_declarations = extra_declarations

    def get_consumers(self, consumer_cls, channel):
        for entity in self._extra_declarations:
            entity(channel).declare()
        consumer = consumer_cls(queues=self.queues, on_message=self._deliver, **self.consumer_options)
        consumer.qos(prefetch_count=self.prefetch_count)
        return [consumer]

    def _deliver(self, message):
        if self.should_stop:
            self.requeue_message(message)
            return
        self._on_raw_message(message)

    def on_connection_error(self, exc, interval):
        _log.warning("consumer lost the broker (%s); reconnecting in %s s", exc, interval)


def _settle(message, action: str) -> None:
    """ack / reject(requeue=False) a message, unless its connection is gone (then the
    broker has already taken it back and will deliver it again: the dedupe absorbs it)."""
    try:
        if message.channel is None or not message.channel.connection:
            return
        if action == "ack":
            message.ack()
        else:
            message.reject(requeue=False)
    except Exception as e:  # a connection dropped under us: same as above
        _log.debug("could not %s message %s: %r", action, message.delivery_tag, e)


@dataclass
class _Item:
    """One message taken off the queue."""

    message: object
    envelope: object = None
    dead: bool = False  # its own event was dead-lettered: reject instead of ack
    redrive: bool = False  # it comes back from a dead-letter queue


def _is_redrive(message) -> bool:
    """A message moved back from a dead-letter queue: the broker's ``x-death`` header, or
    ours on a copy published from the store."""
    headers = message.headers or {}
    return bool(headers.get("x-death") or headers.get(HEADER_DEAD_LETTER_SOURCE))


@dataclass
class ConsumerStats:
    """Counters of one entrypoint (for tests, logs and metrics)."""

    applied: int = 0
    from_store: int = 0
    duplicates: int = 0
    skipped: int = 0
    retries: int = 0
    dead_lettered: int = 0
    undecodable: int = 0
    redriven: int = 0
    commits: int = 0
    infrastructure_errors: int = 0
    last_error: str = ""
    by_source: dict = field(default_factory=dict)


class OkrEventHandler(Entrypoint):
    """``@okr_event_handler(queue, event_types=..., ...)``: see the module docstring.

    ``queue``: durable queue name, also the consumer's name in its tables.
    ``event_types``: a type or a list of types (or topic patterns) bound to the exchange;
    default ``wire.ALL_EVENTS``. ``tenant``: apply only this tenant's events (others are
    acked and skipped). ``ordered``: single-active-consumer, offsets, gap filling
    (default) — or competing consumers deduped by event id. ``start_from``:
    ``"beginning"`` (a new ordered consumer fills the gap from position 1 with the first
    message: the whole history) or ``"now"`` (starts after the store's head at its first
    start). ``exchange`` / ``dead_letter_exchange``: names (tests use their own).
    ``database``: attribute name of the service's ConsumerDatabase (default: the only one).
    """

    def __init__(
        self,
        queue: str,
        event_types: str | Iterable[str] = wire.ALL_EVENTS,
        *,
        ordered: bool = True,
        tenant: str | None = None,
        exchange: str = wire.EXCHANGE,
        dead_letter_exchange: str = wire.DEAD_LETTER_EXCHANGE,
        max_retries: int = 5,
        retry_delay: float = 0.1,
        retry_max_delay: float = 5.0,
        prefetch_count: int | None = None,
        batch_size: int = 100,
        gap_chunk: int = 1000,
        start_from: str = "beginning",
        database: str | None = None,
        amqp_uri: str | None = None,
        **kwargs,
    ):
        if start_from not in ("beginning", "now"):
            raise ValueError(f"start_from must be 'beginning' or 'now', not {start_from!r}")
        self.queue_name = queue
        self.routing_keys = (event_types,) if isinstance(event_types, str) else tuple(event_types)
        if not self.routing_keys:
            raise ValueError("event_types must name at least one event type")
        self.ordered = ordered
        self.tenant = tenant
        self.exchange_name = exchange
        self.dead_letter_exchange_name = dead_letter_exchange
        self.max_retries = max_retries
        self.retry_delay = retry_delay
        self.retry_max_delay = retry_max_delay
        self.prefetch_count = prefetch_count
        self.batch_size = max(1, batch_size) if ordered else 1
        self.gap_chunk = max(1, gap_chunk)
        self.start_from = start_from
        self.database_attr = database
        self._amqp_uri = amqp_uri
        super().__init__(**kwargs)

    # -------------------------------------------------------------- nameko lifecycle

    def setup(self):
        self.stats = ConsumerStats()
        self._stopping = threading.Event()
        self._wildcards = any("*" in k or "#" in k for k in self.routing_keys)
        self._patterns = tuple(tuple(k.split(".")) for k in self.routing_keys)
        self._matched: dict[str, bool] = {}
        exchange = Exchange(self.exchange_name, type=wire.EXCHANGE_TYPE, durable=True)
        dlx = Exchange(self.dead_letter_exchange_name, type="direct", durable=True)
        arguments = {
            "x-dead-letter-exchange": self.dead_letter_exchange_name,
            "x-dead-letter-routing-key": self.queue_name,
        }
        if self.ordered:
            arguments["x-single-active-consumer"] = True
        self.queue = Queue(
            self.queue_name,
            bindings=[binding(exchange, routing_key=key) for key in self.routing_keys],
            durable=True,
            queue_arguments=arguments,
        )
        self.dead_letter_queue = Queue(
            dead_letter_queue_name(self.queue_name), exchange=dlx, routing_key=self.queue_name, durable=True
        )
        self.amqp_uri = self._amqp_uri or nameko_config.get(AMQP_URI_CONFIG_KEY, DEFAULT_AMQP_URI)
        default_prefetch = nameko_config.get(PREFETCH_COUNT_CONFIG_KEY, DEFAULT_PREFETCH_COUNT)
        prefetch = self.prefetch_count or (max(2 * self.batch_size, default_prefetch) if self.ordered else default_prefetch)
        self.consumer = _Subscription(
            self.amqp_uri,
            ssl=nameko_config.get(AMQP_SSL_CONFIG_KEY),
            login_method=nameko_config.get(LOGIN_METHOD_CONFIG_KEY),
            queues=[self.queue],
            heartbeat=nameko_config.get(HEARTBEAT_CONFIG_KEY, DEFAULT_HEARTBEAT),
            prefetch_count=prefetch,
            on_raw_message=self._on_message,
            extra_declarations=[self.dead_letter_queue],
        )
        self._inbox = eventlet.queue.LightQueue()
        self._workers = eventlet.GreenPool(max(1, prefetch))

    def start(self):
        self.db = self._find_database()
        if self.ordered:
            self._init_offset()
            self._processor = self.container.spawn_managed_thread(
                self._run_ordered, identifier=f"okr_event_handler.ordered[{self.queue_name}]"
            )
        # the consumer notices stop() within one drain timeout (kombu's default: 1 s; here 0.25 s)
        self._consuming = self.container.spawn_managed_thread(
            lambda: self.consumer.run(safety_interval=0.25), identifier=f"okr_event_handler[{self.queue_name}]")
        self.consumer.wait_until_consumer_ready()
        if self.ordered:  # okr_consumer_lag_* at scrape time (okr_shared.observability.lag)
            _lag.track_consumer(self.queue_name, self._committed_offset, self.db.event_store.engine)

    def stop(self):
        """Finish the transaction in hand (and ack it), then leave the queue: messages
        not yet applied go back to the queue, in order, when the connection closes."""
        self._stopping.set()
        _lag.untrack_consumer(self.queue_name)
        if self.ordered:
            self._inbox.put(None)
            self._processor.wait()
        else:
            self._workers.waitall()
        self.consumer.stop()
        # let it close the connection (≤ 0.25 s), so the broker hands the
        # queue to a standby at once instead of noticing a dead socket later
        with eventlet.Timeout(5, False):
            self._consuming.wait()

    def kill(self):
        self._stopping.set()
        self.consumer.should_stop = True

    def _find_database(self) -> ConsumerDatabase:
        found = [d for d in self.container.dependencies if isinstance(d, ConsumerDatabase)]
        if self.database_attr is not None:
            found = [d for d in found if d.attr_name == self.database_attr]
        if len(found) != 1:
            raise RuntimeError(
                f"okr_event_handler({self.queue_name!r}) needs exactly one ConsumerDatabase on "
                f"{self.container.service_name} (found {len(found)}; name it with database=...)"
            )
        return found[0]

    def _init_offset(self):
        with self.db.transaction() as conn:
            found = conn.execute(
                select(offsets.c.last_position).where(offsets.c.consumer == self.queue_name)
            ).first()
            if found is None:
                if self.start_from == "now":
                    # the queue is declared before the head is read: nothing after it is missed
                    with Connection(self.amqp_uri) as amqp:
                        self.queue(amqp.default_channel).declare()
                    start = self.db.event_store.head_position()
                else:
                    start = 0
                try:
                    with conn.begin_nested():
                        conn.execute(insert(offsets).values(consumer=self.queue_name, last_position=start,
                                                            updated_at_us=now_us()))
                except sa_exc.IntegrityError:  # another instance did it first
                    pass

    def _committed_offset(self) -> int:
        with self.db.engine.connect() as conn:
            return conn.execute(select(offsets.c.last_position).where(
                offsets.c.consumer == self.queue_name)).scalar() or 0

    # ------------------------------------------------------------------- receiving

    def _on_message(self, message):
        if self.ordered:
            self._inbox.put(message)
        else:
            self._workers.spawn_n(self._process_unordered, message)

    def _decode(self, message) -> _Item | None:
        item = _Item(message)
        try:
            if message.content_type not in (wire.CONTENT_TYPE, None, ""):
                raise ValueError(f"content type {message.content_type!r}, not {wire.CONTENT_TYPE}")
            item.envelope = wire.decode(message.body)
            item.redrive = _is_redrive(message)
        except Exception as e:
            self.stats.undecodable += 1
            metrics.dead_letters[(self.queue_name, "undecodable")].inc()
            _log.error("%s: undecodable message (message_id %s) dead-lettered to %s: %s", self.queue_name,
                       message.properties.get("message_id"), self.dead_letter_queue.name, e)
            _settle(message, "reject")
            return None
        return item

    def _wanted(self, event) -> bool:
        """Whether the consumer applies ``event`` (an envelope or a stored event): its
        tenant, and a type its bindings match (a durable queue keeps the bindings of an
        earlier version of the consumer: those types are skipped)."""
        if self.tenant is not None and event.tenant_id != self.tenant:
            return False
        matched = self._matched.get(event.event_type)
        if matched is None:
            words = tuple(event.event_type.split("."))
            matched = self._matched[event.event_type] = any(topic_matches(p, words) for p in self._patterns)
        return matched

    # ----------------------------------------------------------------- the handler

    def _call_handler(self, tx: "_Tx", envelope, source: str) -> None:
        result = eventlet.event.Event()

        def handle_result(worker_ctx, res=None, exc_info=None):
            result.send(exc_info)
            return res, exc_info

        self.container.spawn_worker(
            self, (envelope, tx.conn), {},
            context_data={"okr_source": source, "okr_queue": self.queue_name},
            handle_result=handle_result,
        )
        exc_info = result.wait()
        if exc_info is not None:
            raise _EventFailed(envelope, exc_info[1])
        tx.count("applied")
        tx.count(f"source:{source}")

    @contextlib.contextmanager
    def _transaction(self, dead: dict) -> Iterator["_Tx"]:
        """A write transaction on the consumer's database; its counts reach ``stats``
        only once it has committed."""
        with self.db.transaction() as conn:
            tx = _Tx(conn, dead)
            yield tx
        self.stats.commits += 1
        metrics.consumer_committed(self.queue_name, tx.tally)
        for name, n in tx.tally.items():
            if name.startswith("source:"):
                source = name.split(":", 1)[1]
                self.stats.by_source[source] = self.stats.by_source.get(source, 0) + n
            else:
                setattr(self.stats, name, getattr(self.stats, name) + n)

    # -------------------------------------------------------------- retry machinery

    def _backoff(self, attempt: int) -> float:
        return exponential_delay(max(1, attempt), self.retry_delay, self.retry_max_delay)

    def _run_with_retries(self, body, on_dead) -> bool:
        """Run ``body(dead)`` until it succeeds. A handler failure (``_EventFailed``) is
        retried with backoff up to ``max_retries`` times, then its event's position goes
        into ``dead`` (body then records it instead of applying it). Anything else
        (database, store, commit) is retried without limit. Returns False when stopping
        interrupted it (nothing settled: the broker redelivers)."""
        attempts: dict[int, int] = {}
        dead: dict[int, tuple] = {}
        infra_attempt = 0
        while True:
            try:
                body(dead)
                return True
            except ContainerBeingKilled:
                return False
            except _EventFailed as failed:
                position = failed.envelope.position
                if _is_infrastructure(failed.error):  # the database went away: not the event's fault
                    delay = self._infra_backoff(infra_attempt := infra_attempt + 1, failed.error)
                else:
                    attempts[position] = attempts.get(position, 0) + 1
                    if isinstance(failed.error, PoisonEvent) or attempts[position] > self.max_retries:
                        _log.error("%s: dead-lettering event %s at position %s after %d attempt(s): %r",
                                   self.queue_name, failed.envelope.event_id, position, attempts[position],
                                   failed.error, extra=_log_fields(failed.envelope))
                        dead[position] = (failed.envelope, failed.error, attempts[position])
                        on_dead(failed.envelope)
                        continue
                    self.stats.retries += 1
                    metrics.consumer_retries[(self.queue_name,)].inc()
                    delay = self._backoff(attempts[position])
                    _log.warning("%s: event at position %s failed (attempt %d of %d), retrying in %.2f s: %r",
                                 self.queue_name, position, attempts[position], self.max_retries + 1, delay,
                                 failed.error, extra=_log_fields(failed.envelope))
            except Exception as e:  # noqa: BLE001 - the layer's own database / store / commit
                delay = self._infra_backoff(infra_attempt := infra_attempt + 1, e)
            if self._stopping.wait(delay):
                return False

    def _infra_backoff(self, attempt: int, error: BaseException) -> float:
        self.stats.infrastructure_errors += 1
        self.stats.last_error = repr(error)
        delay = min(self.retry_max_delay, self.retry_delay * 2 ** min(attempt - 1, 16))
        _log.warning("%s: cannot apply events now (%r); retrying in %.2f s", self.queue_name, error, delay)
        return delay

    def _record_dead_letter(self, tx: "_Tx", envelope, publish: bool = False) -> None:
        _, error, attempts = tx.dead[envelope.position]
        values = dict(event_id=envelope.event_id, event_type=envelope.event_type, tenant_id=envelope.tenant_id,
                      attempts=attempts, error=repr(error)[:4000], dead_at_us=now_us())
        done = tx.conn.execute(update(dead_letters).values(**values).where(
            dead_letters.c.consumer == self.queue_name, dead_letters.c.position == envelope.position)).rowcount
        if not done:
            tx.conn.execute(insert(dead_letters).values(consumer=self.queue_name, position=envelope.position,
                                                        **values))
        if publish:
            # an event from the store, not a message of ours to reject: put a copy in the
            # dead-letter queue (before the commit: at least once there)
            self._publish_dead_letter(envelope, error)
        tx.count("dead_lettered")

    def _publish_dead_letter(self, envelope, error) -> None:
        properties = wire.message_properties(envelope)
        headers = dict(properties.pop("application_headers"), **{
            HEADER_DEAD_LETTER_REASON: repr(error)[:1000], HEADER_DEAD_LETTER_SOURCE: "store"})
        with Connection(self.amqp_uri, transport_options={"confirm_publish": True}) as conn:
            producer = conn.Producer()
            conn.ensure(producer, producer.publish, max_retries=3)(
                envelope.SerializeToString(), exchange=self.dead_letter_exchange_name,
                routing_key=self.queue_name, headers=headers, **properties)

    # ------------------------------------------------------------- ordered consumers

    def _run_ordered(self):
        while True:
            first = self._inbox.get()
            if first is None or self._stopping.is_set():
                return
            messages = [first]
            while len(messages) < self.batch_size:
                try:
                    more = self._inbox.get_nowait()
                except eventlet.queue.Empty:
                    break
                if more is None:
                    break
                messages.append(more)
            items = [item for item in map(self._decode, messages) if item is not None]
            if items:
                self._process_ordered(items)

    def _process_ordered(self, items: list[_Item]) -> None:
        pending = list(items)
        by_position = {}
        for item in pending:
            by_position.setdefault(item.envelope.position, item)

        def on_dead(envelope):
            item = by_position.get(envelope.position)
            if item is not None and item.envelope.event_id == envelope.event_id:
                item.dead = True

        def body(dead):
            while pending:
                with self._transaction(dead) as tx:
                    tx.rejected = {item.envelope.event_id for item in pending if item.dead}
                    done = self._apply_ordered(tx, pending)
                for item in pending[:done]:
                    _settle(item.message, "reject" if item.dead else "ack")
                del pending[:done]

        # False when stopping: unsettled messages return to the queue with the connection
        self._run_with_retries(body, on_dead)

    def _read_offset(self, conn) -> int:
        offset = dbapi.scalar(conn, dbapi.compiled(_READ_OFFSET, conn.dialect), {"consumer": self.queue_name})
        if offset is None:
            raise RuntimeError(f"{self.queue_name}: no offset row in okr_consumer_offsets")
        return offset

    def _apply_ordered(self, tx: "_Tx", pending: list[_Item]) -> int:
        """Apply as many of ``pending`` as one transaction takes; returns how many are
        done (the rest, after a large gap, go in the next transaction)."""
        start = last = self._read_offset(tx.conn)
        budget = self.gap_chunk
        done = 0
        for item in pending:
            envelope = item.envelope
            position = envelope.position
            if position <= last:
                self._duplicate_or_redrive(tx, item)
                done += 1
                continue
            if position > last + 1:
                last, budget, complete = self._fill_gap(tx, last, position - 1, budget)
                if not complete:
                    break
            if position in tx.dead:
                self._record_dead_letter(tx, envelope)
            elif self._wanted(envelope):
                self._call_handler(tx, envelope, "bus")
            else:
                tx.count("skipped")
            last = position
            budget -= 1
            done += 1
            if budget <= 0:
                break
        if last != start:
            dbapi.run(tx.conn, dbapi.compiled(_WRITE_OFFSET, tx.conn.dialect),
                      {"w_consumer": self.queue_name, "last_position": last, "updated_at_us": now_us()}).close()
        return done

    def _fill_gap(self, tx: "_Tx", last: int, to_position: int, budget: int) -> tuple[int, int, bool]:
        """Apply the consumer's events in (last, to_position] from the store, at most
        ``budget`` of them; returns (new last, budget left, whether the range is done)."""
        rows = self.db.event_store.read_all(
            last + 1, to_position=to_position, tenant_id=self.tenant,
            event_types=None if self._wildcards else self.routing_keys,
            batch_size=min(budget + 1, 1000),
        )
        # binding everything, every position of the range must be in the store
        check_contiguous = self.tenant is None and self._wildcards
        expected = last + 1
        for recorded in itertools.islice(rows, budget):
            if check_contiguous and recorded.position != expected:
                raise _GapNotInStore(f"position {expected} is not in the event store (next: {recorded.position})")
            expected = recorded.position + 1
            if recorded.position in tx.dead:
                envelope = tx.dead[recorded.position][0]
                # its own message, if it is in this batch, is rejected into the DLQ anyway
                self._record_dead_letter(tx, envelope, publish=envelope.event_id not in tx.rejected)
            elif self._wanted(recorded):
                self._call_handler(tx, envelope_of(recorded), "store")
                tx.count("from_store")
            last = recorded.position
            budget -= 1
            if budget <= 0 and last < to_position:
                return last, budget, False
        if check_contiguous and expected != to_position + 1:
            raise _GapNotInStore(f"positions {expected}..{to_position} are not in the event store")
        return to_position, budget, True

    def _duplicate_or_redrive(self, tx: "_Tx", item: _Item) -> None:
        envelope = item.envelope
        if item.redrive:
            row = tx.conn.execute(select(dead_letters.c.event_id).where(
                dead_letters.c.consumer == self.queue_name, dead_letters.c.position == envelope.position)).first()
            if row is not None and row.event_id == envelope.event_id:
                self._redrive(tx, envelope)
                return
        tx.count("duplicates")

    def _redrive(self, tx: "_Tx", envelope) -> None:
        """A dead letter brought back: apply it now (out of order: the operator's choice)."""
        if envelope.position in tx.dead:  # still failing
            self._record_dead_letter(tx, envelope)
            return
        if self._wanted(envelope):
            self._call_handler(tx, envelope, "redrive")
        tx.conn.execute(delete(dead_letters).where(
            dead_letters.c.consumer == self.queue_name, dead_letters.c.position == envelope.position))
        tx.count("redriven")

    # ----------------------------------------------------------- unordered consumers

    def _process_unordered(self, message) -> None:
        if self._stopping.is_set():
            return  # left unacked: back to the queue when the connection closes
        item = self._decode(message)
        if item is None:
            return

        def on_dead(_envelope):
            item.dead = True

        def body(dead):
            try:
                with self._transaction(dead) as tx:
                    self._apply_unordered(tx, item)
            except sa_exc.IntegrityError:
                # another instance applied the same event at the same time and committed first
                self.stats.duplicates += 1

        if self._run_with_retries(body, on_dead):
            _settle(message, "reject" if item.dead else "ack")

    def _apply_unordered(self, tx: "_Tx", item: _Item) -> None:
        envelope = item.envelope
        seen = tx.conn.execute(select(processed.c.position).where(
            processed.c.consumer == self.queue_name, processed.c.event_id == envelope.event_id)).first()
        if seen is not None:
            tx.count("duplicates")
            return
        if envelope.position in tx.dead:
            self._record_dead_letter(tx, envelope)
            return
        if item.redrive:
            self._redrive(tx, envelope)
        elif self._wanted(envelope):
            self._call_handler(tx, envelope, "bus")
        else:
            tx.count("skipped")
        tx.conn.execute(insert(processed).values(consumer=self.queue_name, event_id=envelope.event_id,
                                                 position=envelope.position, processed_at_us=now_us()))


class _Tx:
    """The transaction in hand: its connection, the events to dead-letter instead of
    applying, and counts that reach the stats only if it commits."""

    __slots__ = ("conn", "dead", "rejected", "tally")

    def __init__(self, conn, dead: dict):
        self.conn = conn
        self.dead = dead
        self.rejected: set[str] = set()  # event ids whose messages will be rejected (to the DLQ)
        self.tally: dict[str, int] = {}

    def count(self, name: str) -> None:
        self.tally[name] = self.tally.get(name, 0) + 1


def _log_fields(envelope) -> dict:
    """The event's correlation id and tenant for a log line written outside its worker."""
    return {"correlation_id": envelope.correlation_id, "tenant_id": envelope.tenant_id,
            "event_id": envelope.event_id}


def _is_infrastructure(error: BaseException) -> bool:
    """A database connection failed under the handler: retried without limit."""
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (sa_exc.DisconnectionError, sa_exc.TimeoutError))


#: ``@okr_event_handler(queue, event_types=..., ordered=True, tenant=None, ...)``
okr_event_handler = OkrEventHandler.decorator
