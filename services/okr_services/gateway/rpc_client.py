"""A long-lived, thread-safe RPC client to the nameko services, for the gateway.

The gateway is a plain (not eventlet-patched) process whose grpcio server runs requests
on a thread pool; nameko's own ``ClusterRpcClient`` is single-threaded and costs ~10 ms
per call (docs/adr/0030-errors-travel-typed-eventlet-and-grpcio-traps.md). This client speaks nameko's RPC message
format over py-amqp directly:

- one consumer connection, owned by one background thread, consuming one exclusive
  reply queue ``rpc.reply-<name>-<uuid>`` bound to the RPC exchange with routing key
  ``<uuid>`` (nameko's responder publishes replies to the RPC exchange with
  ``routing_key = reply_to``); replies are routed to the waiting caller by
  ``correlation_id``;
- a small pool of publishing connections (one caller at a time each), with publisher
  confirms and ``mandatory=True``: a request no queue is bound for comes back as a
  ``basic.return`` before the confirm, so an unknown service fails at once.

Request (what ``nameko.rpc.Client`` sends): exchange ``nameko-rpc`` (topic, durable),
routing key ``<service>.<method>``, body ``{"args": [], "kwargs": {...}}`` as
``application/json`` (nameko's default serializer, kombu's json), properties
``reply_to`` and ``correlation_id``, headers ``nameko.<key>`` = context data (``None``
values dropped) plus ``nameko.call_id_stack`` = ``["<name>.<call id>"]`` unless the
caller gives one (the service's ``worker_ctx.call_id_stack[0]`` then names this call).
Requests are transient and expire (per-message TTL) when the caller's timeout has
passed, so a service that comes back later does not run requests nobody waits for.

Reply: ``{"result": ..., "error": null | {"exc_type", "exc_path", "exc_args",
"value", "details"?}}`` (``nameko.exceptions.serialize`` plus the services' ``details``).

Errors:
- ``RemoteError``: the service raised (``exc_type`` e.g. ``ValidationError``,
  ``NotFound``, ``PreconditionFailed``, ``ConcurrencyConflict``, or nameko's
  ``MethodNotFound`` / ``IncorrectSignature``; ``MalformedReply`` if the reply could
  not be decoded); ``value`` is the message,
  ``exc_args`` the exception's args; ``details`` the error's code and structured
  fields as the services send them (``okr_services.rpc.serialize_error``: e.g.
  ``{"code": "invalid_argument", "field": "title"}``; ``{}`` when the reply has none);
  ``field`` / ``rule`` those of a ValidationError / PreconditionFailed.
- ``RpcTimeout``: no reply in time although the service has consumers.
- ``ServiceUnavailable``: nothing listens (request returned unroutable, or the
  service queue ``rpc-<service>`` is missing or has no consumers: checked once early,
  after ``min(probe_after, timeout / 2)``, and at the timeout), or the broker is
  unreachable / the connection was lost while the call waited.

Reconnects: the consumer thread reconnects by itself with a short backoff (a new
reply queue each time; calls waiting on the old one fail with ServiceUnavailable at
once); a publishing connection found broken before a request is sent is replaced and
the request sent on the new one; a call that finds the broker down waits at most
``reconnect_wait`` seconds (and never past its timeout) before ServiceUnavailable.
"""

from __future__ import annotations

import logging
import queue
import select
import socket
import threading
import time
import uuid
from typing import Any

import amqp
import orjson
from amqp.exceptions import AMQPError, NotFound
from kombu import Connection as _KombuUrl
from kombu.utils import json as kombu_json

__all__ = ["RpcClient", "RpcError", "RemoteError", "RpcTimeout", "ServiceUnavailable"]

_log = logging.getLogger(__name__)

HEADER_PREFIX = "nameko"
CALL_ID_STACK = "call_id_stack"
CONTENT_TYPE = "application/json"

#: what a broken connection raises (socket errors, py-amqp connection/channel errors)
_BROKEN = (OSError, AMQPError, AttributeError)

#: The reply thread drains its connection in slices of this many seconds. With 1 s
#: slices, at 200 check-ins/s the gateway stalled for ~1 s in most benchmark runs (every
#: call in flight waited 1.00-1.14 s while the services, the broker and the machine were
#: idle): a reply that had reached the process was only read when the slice ran out.
#: Short slices bound such a wait; an idle wake-up costs ~20 us (bench/README.md, ADR 0014).
REPLY_POLL_S = 0.05


class RpcError(Exception):
    """Base class of what ``RpcClient.call`` raises."""


class RemoteError(RpcError):
    """The service raised: ``exc_type`` (class name), ``value`` (its message),
    ``exc_path`` (dotted path of the class), ``exc_args`` (its args, made
    JSON-safe by nameko), ``details`` (its code and structured fields, ``{}`` if the
    reply carries none)."""

    def __init__(self, exc_type: str, value: str = "", exc_path: str = "", exc_args=(), details=None):
        self.exc_type = exc_type
        self.value = value
        self.exc_path = exc_path
        self.exc_args = list(exc_args or ())
        self.details = dict(details) if isinstance(details, dict) else {}
        super().__init__(f"{exc_type} {value}")

    @property
    def code(self) -> str | None:
        """The domain error's code (``invalid_argument``, ``not_found``,
        ``failed_precondition``, ``aborted``: okr_shared.domain.errors), else None."""
        return self.details.get("code")

    @property
    def field(self) -> str | None:
        """The field a ValidationError names (``"title"``), else None."""
        return self.details.get("field") if self.code == "invalid_argument" else None

    @property
    def rule(self) -> str | None:
        """The rule a PreconditionFailed names (e.g. ``objective_frozen``), else None."""
        return self.details.get("rule") if self.code == "failed_precondition" else None


class RpcTimeout(RpcError):
    """No reply within the timeout while the service had consumers."""


class ServiceUnavailable(RpcError):
    """No service listens, or the broker cannot be reached / the connection was lost."""


class _Waiter:
    __slots__ = ("event", "reply", "error")

    def __init__(self):
        self.event = threading.Event()
        self.reply = None
        self.error: Exception | None = None

    def fail(self, error: Exception) -> None:
        if not self.event.is_set():
            self.error = error
            self.event.set()


class _Publisher:
    """One publishing connection with a confirm-mode channel; used by one caller at a
    time (the client's pool hands it out)."""

    def __init__(self, client: "RpcClient", index: int):
        self.client = client
        self.index = index
        self.conn: amqp.Connection | None = None
        self.channel = None
        self.returned: set[str] = set()

    def _on_return(self, exc, exchange, routing_key, message) -> None:
        cid = message.properties.get("correlation_id")
        if cid:
            self.returned.add(cid)

    def close(self) -> None:
        conn, self.conn, self.channel = self.conn, None, None
        if conn is not None:
            try:
                conn.collect()  # drop the socket without a closing handshake
            except Exception:  # noqa: BLE001 - already broken
                pass

    def _healthy(self) -> bool:
        """False if the broker closed the connection (or it broke) while it was idle:
        read whatever waits on the socket without blocking."""
        try:
            sock = self.conn.transport.sock
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                try:
                    self.conn.drain_events(timeout=0)
                except socket.timeout:
                    pass
            return self.conn.connected and self.channel is not None and self.channel.is_open
        except _BROKEN:
            return False

    def ensure(self) -> None:
        if self.conn is not None and self._healthy():
            return
        self.close()
        conn = self.client._connect(f"publisher-{self.index}", heartbeat=0)
        try:
            channel = conn.channel()
            channel.exchange_declare(self.client.exchange, "topic", durable=True, auto_delete=False)
            channel.confirm_select()
            channel._confirm_selected = True
            channel.events["basic_return"].add(self._on_return)
        except BaseException:
            try:
                conn.collect()
            except Exception:  # noqa: BLE001
                pass
            raise
        self.conn, self.channel = conn, channel

    def publish(self, message: amqp.Message, routing_key: str) -> bool:
        """Publish and wait for the confirm; False if the broker returned the message
        as unroutable. A connection found broken before sending is replaced once."""
        try:
            self.ensure()
        except _BROKEN as e:
            self.close()
            raise ServiceUnavailable(f"RabbitMQ unreachable: {e}") from e
        cid = message.properties["correlation_id"]
        try:
            self.channel.basic_publish_confirm(message, exchange=self.client.exchange, routing_key=routing_key,
                                               mandatory=True, confirm_timeout=self.client.confirm_timeout)
        except _BROKEN as e:
            self.close()
            raise ServiceUnavailable(f"connection to RabbitMQ lost while publishing: {e!r}") from e
        if cid in self.returned:
            self.returned.discard(cid)
            return False
        return True

    def consumer_count(self, queue_name: str) -> int:
        """Consumers of ``queue_name`` (0 if it does not exist)."""
        try:
            self.ensure()
            channel = self.conn.channel()
        except _BROKEN as e:
            self.close()
            raise ServiceUnavailable(f"RabbitMQ unreachable: {e}") from e
        try:
            _, _, consumers = channel.queue_declare(queue_name, passive=True)
        except NotFound:
            return 0  # the broker closed the channel
        except _BROKEN as e:
            self.close()
            raise ServiceUnavailable(f"connection to RabbitMQ lost: {e!r}") from e
        try:
            channel.close()
        except _BROKEN:
            self.close()
        return consumers


class RpcClient:
    """Thread-safe RPC client to nameko services (see the module docstring).

    ``start()`` before the first call, ``stop()`` at the end; ``call()`` from any
    number of threads.
    """

    def __init__(self, amqp_uri: str, *, exchange: str = "nameko-rpc", default_timeout: float = 10.0,
                 name: str = "gateway", pool_size: int = 4, connect_timeout: float = 2.0,
                 reconnect_wait: float = 2.0, probe_after: float = 1.0, confirm_timeout: float = 5.0,
                 heartbeat: int = 30):
        url = _KombuUrl(amqp_uri)
        self._conn_params = dict(host=f"{url.hostname or 'localhost'}:{url.port or 5672}",
                                 userid=url.userid or "guest", password=url.password or "guest",
                                 virtual_host=url.virtual_host or "/")
        self.amqp_uri = amqp_uri
        self.exchange = exchange
        self.default_timeout = default_timeout
        self.name = name
        self.pool_size = max(1, pool_size)
        self.connect_timeout = connect_timeout
        self.reconnect_wait = reconnect_wait
        self.probe_after = probe_after
        self.confirm_timeout = confirm_timeout
        self.heartbeat = heartbeat

        self._lock = threading.Lock()  # guards the fields below
        self._pending: dict[str, _Waiter] = {}
        self._reply_to: str | None = None
        self._ready = threading.Event()
        self._attempted = threading.Event()  # the consumer's first connection attempt ended
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._consumer_conn: amqp.Connection | None = None
        self._thread: threading.Thread | None = None

        self._pool: queue.LifoQueue[_Publisher] = queue.LifoQueue()
        self._publishers: list[_Publisher] = []

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the reply consumer and wait (up to ``connect_timeout`` + 1 s) until
        it consumes or its first connection attempt failed; if the broker is down it
        keeps retrying in the background (calls then fail with ServiceUnavailable until
        it is back)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        self._attempted.clear()
        self._thread = threading.Thread(target=self._consume_forever, name=f"{self.name}-rpc-replies", daemon=True)
        self._thread.start()
        self._attempted.wait(self.connect_timeout + 1.0)

    def stop(self) -> None:
        """Stop consuming, fail calls still waiting, close every connection."""
        if self._thread is None:
            return
        self._stopping.set()
        self._wake.set()
        conn = self._consumer_conn
        if conn is not None:
            _shutdown(conn)
        self._thread.join(5)
        self._thread = None
        self._fail_pending(ServiceUnavailable("the RPC client was stopped"))
        with self._lock:
            publishers, self._publishers = self._publishers, []
            self._pool = queue.LifoQueue()
        for p in publishers:
            p.close()

    def connected(self) -> bool:
        """Whether the reply consumer is connected to RabbitMQ with its socket open (what
        the gateway's health reports; a call needs it). When it is not, the consumer is
        woken to reconnect now rather than after its backoff."""
        with self._lock:
            ready = self._ready.is_set() and self._reply_to is not None
            conn = self._consumer_conn
        if ready and _peer_alive(conn):
            return True
        self._wake.set()
        return False

    def __enter__(self) -> "RpcClient":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- calls -------------------------------------------------------------------

    def call(self, service: str, method: str, kwargs: dict | None = None, *, context_data: dict | None = None,
             timeout: float | None = None) -> Any:
        """Call ``service.method(**kwargs)`` and return its result.

        ``context_data`` becomes the worker's context data (``tenant_id``, ``actor``,
        ``correlation_id``, ``causation_id``, ...). Raises RemoteError, RpcTimeout or
        ServiceUnavailable (never blocks much past ``timeout``)."""
        if self._thread is None:
            raise RuntimeError("RpcClient.call before start()")
        timeout = self.default_timeout if timeout is None else timeout
        started = time.monotonic()
        deadline = started + timeout
        cid = uuid.uuid4().hex

        headers = {f"{HEADER_PREFIX}.{k}": v for k, v in (context_data or {}).items() if v is not None}
        headers.setdefault(f"{HEADER_PREFIX}.{CALL_ID_STACK}", [f"{self.name}.{cid}"])
        body = kombu_json.dumps({"args": [], "kwargs": kwargs or {}})

        waiter, reply_to = self._register(cid, deadline)
        try:
            message = amqp.Message(body, content_type=CONTENT_TYPE, content_encoding="utf-8",
                                   application_headers=headers, reply_to=reply_to, correlation_id=cid,
                                   delivery_mode=1, expiration=str(max(1, int(timeout * 1000))))
            publisher = self._acquire(deadline)
            try:
                routed = publisher.publish(message, f"{service}.{method}")
            finally:
                self._pool.put(publisher)
            if not routed:
                raise ServiceUnavailable(f"no service {service!r} is listening (request returned unroutable)")
            reply = self._await(waiter, service, started, deadline)
        finally:
            with self._lock:
                self._pending.pop(cid, None)
        return _unpack(reply)

    def _register(self, cid: str, deadline: float) -> tuple[_Waiter, str]:
        """Register a waiter for ``cid`` on the current reply queue (waiting a bounded
        time for the consumer if it is reconnecting)."""
        give_up = min(deadline, time.monotonic() + self.reconnect_wait)
        while True:
            with self._lock:
                if self._ready.is_set() and self._reply_to is not None:
                    if _peer_alive(self._consumer_conn):
                        waiter = _Waiter()
                        self._pending[cid] = waiter
                        return waiter, self._reply_to
                    dead = True  # the consumer thread has not noticed yet: let it reconnect
                else:
                    dead = False
            self._wake.set()  # retry connecting now rather than after the backoff
            wait = give_up - time.monotonic()
            if wait <= 0:
                raise ServiceUnavailable("RabbitMQ unreachable: the RPC reply consumer is not connected")
            if dead:
                time.sleep(min(wait, 0.002))
            else:
                self._ready.wait(wait)

    def _acquire(self, deadline: float) -> _Publisher:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._lock:
            if len(self._publishers) < self.pool_size:
                p = _Publisher(self, len(self._publishers))
                self._publishers.append(p)
                return p
            pool = self._pool
        try:
            return pool.get(timeout=max(0.001, deadline - time.monotonic()))
        except queue.Empty:
            raise RpcTimeout("no publishing connection became free before the timeout") from None

    def _await(self, waiter: _Waiter, service: str, started: float, deadline: float):
        probe_at = started + min(self.probe_after, (deadline - started) / 2)
        probed = False
        while True:
            now = time.monotonic()
            until = deadline if probed else min(probe_at, deadline)
            if waiter.event.wait(max(0.0, until - now)):
                if waiter.error is not None:
                    raise waiter.error
                return waiter.reply
            consumers = self._consumer_count(service)
            if waiter.event.is_set():  # answered meanwhile
                continue
            if consumers == 0:
                raise ServiceUnavailable(f"no service {service!r} is listening (queue rpc-{service} has no consumers)")
            if time.monotonic() >= deadline:
                raise RpcTimeout(f"{service}: no reply within {deadline - started:g} s")
            probed = True

    def _consumer_count(self, service: str) -> int:
        publisher = self._acquire(time.monotonic() + self.confirm_timeout)
        try:
            return publisher.consumer_count(f"rpc-{service}")
        finally:
            self._pool.put(publisher)

    # -- the reply consumer ------------------------------------------------------

    def _connect(self, role: str, heartbeat: int) -> amqp.Connection:
        conn = amqp.Connection(**self._conn_params, heartbeat=heartbeat, connect_timeout=self.connect_timeout,
                               read_timeout=self.confirm_timeout, write_timeout=self.confirm_timeout,
                               client_properties={"connection_name": f"{self.name}-rpc-{role}"})
        conn.connect()
        return conn

    def _consume_forever(self) -> None:
        backoff = 0.0
        while not self._stopping.is_set():
            try:
                self._consume_once()
                backoff = 0.0
            except _BROKEN as e:
                if not self._stopping.is_set():
                    _log.warning("RPC reply consumer lost its connection (%r); reconnecting", e)
            except Exception:  # noqa: BLE001 - keep the consumer alive
                _log.exception("RPC reply consumer failed; reconnecting")
            finally:
                self._attempted.set()
            if self._stopping.is_set():
                break
            self._wake.wait(backoff)
            self._wake.clear()
            backoff = min(max(0.1, backoff * 2), 2.0)

    def _consume_once(self) -> None:
        conn = self._connect("replies", heartbeat=self.heartbeat)
        self._consumer_conn = conn
        try:
            if self._stopping.is_set():
                return
            key = uuid.uuid4().hex
            channel = conn.channel()
            channel.exchange_declare(self.exchange, "topic", durable=True, auto_delete=False)
            queue_name = f"rpc.reply-{self.name}-{key}"
            channel.queue_declare(queue_name, exclusive=True, auto_delete=True)
            channel.queue_bind(queue_name, self.exchange, routing_key=key)
            channel.basic_consume(queue_name, callback=self._on_reply, no_ack=True)
            with self._lock:
                self._reply_to = key
                self._ready.set()
            self._attempted.set()
            last_tick = time.monotonic()
            while not self._stopping.is_set():
                try:
                    conn.drain_events(timeout=REPLY_POLL_S)
                except socket.timeout:
                    pass
                if self.heartbeat and time.monotonic() - last_tick >= 1.0:
                    conn.heartbeat_tick()
                    last_tick = time.monotonic()
        finally:
            with self._lock:
                self._ready.clear()
                self._reply_to = None
            self._consumer_conn = None
            self._fail_pending(ServiceUnavailable("connection to RabbitMQ lost while waiting for the reply"))
            try:
                conn.collect()
            except Exception:  # noqa: BLE001
                pass

    def _on_reply(self, message) -> None:
        cid = message.properties.get("correlation_id")
        with self._lock:
            waiter = self._pending.get(cid)
        if waiter is None:
            _log.debug("reply to an unknown (timed out?) call %s", cid)
            return
        try:
            body = message.body
            if isinstance(body, (bytes, bytearray)):
                body = body.decode(message.properties.get("content_encoding") or "utf-8")
            waiter.reply = decode_reply(body)
        except Exception as e:  # noqa: BLE001
            waiter.error = RemoteError("MalformedReply", f"undecodable reply: {e!r}")
        waiter.event.set()

    def _fail_pending(self, error: Exception) -> None:
        with self._lock:
            waiters = list(self._pending.values())
        for w in waiters:
            w.fail(error)

    # -- tests only --------------------------------------------------------------

    def _sever_connections(self) -> None:
        """Cut every connection's socket as a network failure would (tests only)."""
        conns = [self._consumer_conn] + [p.conn for p in list(self._publishers)]
        for conn in conns:
            if conn is not None:
                _shutdown(conn)


def _peer_alive(conn: amqp.Connection | None) -> bool:
    """False if the connection's socket is at end of file or failed (peeks, reads
    nothing: safe while the consumer thread reads it)."""
    try:
        sock = conn.transport.sock
        sock = getattr(sock, "fd", sock)  # the real socket under an eventlet GreenSocket
        # A socket with a timeout waits for readability before recv even with
        # MSG_DONTWAIT: check it first (plain process; eventlet's real sockets are
        # non-blocking, and a green select would clash with the consumer's read).
        if sock.gettimeout() != 0.0 and not select.select([sock], [], [], 0)[0]:
            return True  # nothing to read: open
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except (BlockingIOError, InterruptedError, socket.timeout):
        return True
    except (OSError, AttributeError):
        return False


def _shutdown(conn: amqp.Connection) -> None:
    try:
        conn.transport.sock.shutdown(socket.SHUT_RDWR)
    except Exception:  # noqa: BLE001 - already closed
        pass


def decode_reply(body: str) -> Any:
    """A reply's JSON: orjson (several times faster than kombu's ``json.loads`` with its
    object hook), kombu's decoder for what only it reads back — its tagged values
    (``{"__type__": "datetime", ...}``) and the NaN / Infinity literals Python's json
    writes."""
    if '"__type__"' not in body:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    return kombu_json.loads(body)


def _unpack(reply) -> Any:
    if not isinstance(reply, dict):
        raise RemoteError("MalformedReply", f"malformed reply: {reply!r}")
    error = reply.get("error")
    if error:
        raise RemoteError(error.get("exc_type") or "Exception", error.get("value") or "",
                          error.get("exc_path") or "", error.get("exc_args") or (), error.get("details"))
    return reply.get("result")
