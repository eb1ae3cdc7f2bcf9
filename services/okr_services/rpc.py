"""The services' RPC entrypoints and how they reply.

- ``command`` / ``query``: ``@rpc`` whose DomainErrors are expected (logged as warnings,
  not as crashes). Every RPC entrypoint of a service comes from here (one RpcConsumer per
  service queue). The caller gets nameko's RemoteError with ``exc_type`` =
  ``ValidationError`` / ``NotFound`` / ``PreconditionFailed`` / ``ConcurrencyConflict``
  and ``value`` = the message naming the field or rule, e.g. ``"title: must not be empty"``;
  the reply's error also carries ``details``, the error's code and structured fields
  (``{"code": "invalid_argument", "field": "title"}``: ``serialize_error``), which the
  gateway maps by (docs/adr/0030-errors-travel-typed-eventlet-and-grpcio-traps.md).
- The replies go out on one long-lived channel per process without publisher confirms
  (``_DirectReplies``), or with them when ``OKR_RPC_REPLY_CONFIRMS=1`` (ADR 0014).
"""

from __future__ import annotations

import inspect
import logging
import sys
import threading

import amqp
import kombu.serialization
from kombu import Connection
from kombu.utils import json as kombu_json
from nameko import config as nameko_config
from nameko.exceptions import IncorrectSignature, UnserializableValueError, serialize
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_SSL_CONFIG_KEY, DEFAULT_TRANSPORT_OPTIONS, LOGIN_METHOD_CONFIG_KEY, PERSISTENT
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

from okr_shared.config import rpc_reply_confirms
from okr_shared.domain.errors import DomainError

_log = logging.getLogger(__name__)

#: ``OKR_RPC_REPLY_CONFIRMS`` (default 0): whether the services wait for the broker's
#: publisher confirm of each RPC reply (nameko's default) — ADR 0014.
REPLY_CONFIRMS = rpc_reply_confirms()


class _ReplyPublisher(Publisher):
    use_confirms = REPLY_CONFIRMS
    # its own dict: nameko's Publisher writes confirm_publish into a class-level one
    transport_options = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": REPLY_CONFIRMS}


def serialize_error(exc: BaseException) -> dict:
    """An exception as a reply's ``error``: nameko's form (``exc_type``, ``exc_path``,
    ``exc_args``, ``value``: what nameko's own clients read) plus ``details`` when the
    exception has them — a DomainError's code and fields, or the missing argument of an
    IncorrectSignature (``_Rpc.check_signature``)."""
    error = serialize(exc)
    details = getattr(exc, "details", None)
    if details:
        error["details"] = details
    return error


def _reply(result, exc_info, dumps):
    """A reply's payload and its encoding by ``dumps``, and the (result, exc_info) the
    worker reports. A result that cannot be encoded becomes an error for the caller (as
    nameko does: the worker lives)."""
    payload = {"result": result, "error": None if exc_info is None else serialize_error(exc_info[1])}
    try:
        return payload, dumps(payload), result, exc_info
    except Exception:  # noqa: BLE001 - any encoder failure
        exc_info = sys.exc_info()
        payload = {"result": None, "error": serialize_error(UnserializableValueError(result))}
        return payload, dumps(payload), None, exc_info


class _Responder(Responder):
    """nameko's Responder publishing with ``_ReplyPublisher``, its errors with their
    ``details`` (``serialize_error``)."""

    publisher_cls = _ReplyPublisher

    def send_response(self, result, exc_info):
        props = self.message.properties
        serializer = kombu.serialization.registry.type_to_name[props["content_type"]]
        payload, _, result, exc_info = _reply(result, exc_info,
                                              lambda p: kombu.serialization.dumps(p, serializer))
        publisher = self.publisher_cls(self.amqp_uri, ssl=self.ssl, login_method=self.login_method)
        publisher.publish(payload, serializer=serializer, exchange=self.exchange, routing_key=props["reply_to"],
                          correlation_id=props.get("correlation_id"))
        return result, exc_info


_JSON = "application/json"
_RPC_EXCHANGE = get_rpc_exchange().name


class _DirectReplies:
    """The RPC replies of this process, written to the broker on ONE long-lived AMQP
    channel per AMQP URI (a green lock orders the writes), without publisher confirms.

    nameko's ``Responder`` builds a ``Publisher``, a kombu ``Connection`` (to look its
    pool up), a ``Producer`` and the retry wrapper per reply and serialises the result
    twice: ~25 % of the progress service's CPU per check-in (bench/README.md). Here a
    reply is one JSON encoding and one ``basic_publish`` with the same properties as
    nameko's (content type and encoding of the request, ``correlation_id``, persistent)
    to the same exchange and routing key (the caller's ``reply_to``). A lost connection
    is reopened and the reply written once more (a caller ignores a second reply with
    the same correlation id); a failing second attempt raises as nameko's would.
    Requests in another content type than JSON, and ``OKR_RPC_REPLY_CONFIRMS=1``, take
    nameko's own path."""

    _by_uri: dict = {}
    _registry_lock = threading.Lock()

    @classmethod
    def of(cls, amqp_uri: str, ssl, login_method) -> "_DirectReplies":
        key = (amqp_uri, repr(ssl), login_method)
        with cls._registry_lock:
            replies = cls._by_uri.get(key)
            if replies is None:
                replies = cls._by_uri[key] = cls(amqp_uri, ssl, login_method)
            return replies

    def __init__(self, amqp_uri: str, ssl, login_method):
        self._amqp_uri, self._ssl, self._login_method = amqp_uri, ssl, login_method
        self._lock = threading.Lock()
        self._conn = None
        self._channel = None

    def _connect(self):
        conn = Connection(self._amqp_uri, ssl=self._ssl, login_method=self._login_method, heartbeat=0)
        conn.connect()
        self._conn, self._channel = conn, conn.channel()
        return conn

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        if conn is not None:
            try:
                conn.release()
            except Exception:  # noqa: BLE001 - a dead connection may refuse a clean close
                pass

    def publish(self, body: str, *, exchange: str, routing_key: str, correlation_id, content_type: str,
                content_encoding: str) -> None:
        message = amqp.Message(body, content_type=content_type, content_encoding=content_encoding,
                               correlation_id=correlation_id, delivery_mode=PERSISTENT)
        with self._lock:
            for attempt in (1, 2):
                try:
                    if self._channel is None:
                        self._connect()
                    self._channel.basic_publish(message, exchange=exchange, routing_key=routing_key)
                    return
                except (OSError, amqp.exceptions.AMQPError) as e:
                    self._close()
                    if attempt == 2:
                        raise
                    _log.warning("RPC reply connection lost (%r); reconnecting", e)


class _RpcConsumer(RpcConsumer):
    """nameko's RpcConsumer, replying through ``_DirectReplies`` (or, with
    ``OKR_RPC_REPLY_CONFIRMS=1`` or a request in another content type than JSON,
    through nameko's ``Responder`` with ``_ReplyPublisher``). Either way a reply is
    written to the broker without waiting for its publisher confirm (a broker round trip
    and ~7 % of the progress service's CPU per command) unless asked: the confirm
    bought the caller nothing — a reply the broker loses is a timeout for the caller
    either way, while the command's effect is already committed to the event store (and
    a retried call with the same command_id is stored once)."""

    def handle_result(self, message, result, exc_info):
        props = message.properties
        if REPLY_CONFIRMS or props.get("content_type") != _JSON:
            responder = _Responder(self.amqp_uri, get_rpc_exchange(), message,
                                   ssl=nameko_config.get(AMQP_SSL_CONFIG_KEY),
                                   login_method=nameko_config.get(LOGIN_METHOD_CONFIG_KEY))
            result, exc_info = responder.send_response(result, exc_info)
        else:
            _, body, result, exc_info = _reply(result, exc_info, kombu_json.dumps)
            _DirectReplies.of(self.amqp_uri, nameko_config.get(AMQP_SSL_CONFIG_KEY),
                              nameko_config.get(LOGIN_METHOD_CONFIG_KEY)).publish(
                body, exchange=_RPC_EXCHANGE, routing_key=props["reply_to"],
                correlation_id=props.get("correlation_id"), content_type=_JSON,
                content_encoding=props.get("content_encoding") or "utf-8")
        self.consumer.ack_message(message)
        return result, exc_info


class _Rpc(Rpc):
    rpc_consumer = _RpcConsumer()
    _takes_any_keywords = None

    def check_signature(self, args, kwargs):
        """nameko binds every call's arguments to the method's signature
        (``inspect.getcallargs``, ~5 % of the progress service's CPU per check-in). A
        method of ``(self, **fields)`` (the commands) takes any keywords, so only
        positional arguments are checked there; the rest as nameko does."""
        if self._takes_any_keywords is None:
            params = list(inspect.signature(getattr(self.container.service_cls, self.method_name)).parameters.values())
            self._takes_any_keywords = (len(params) == 2 and params[1].kind is inspect.Parameter.VAR_KEYWORD)
        if self._takes_any_keywords and not args:
            return
        try:
            super().check_signature(args, kwargs)
        except IncorrectSignature as e:
            missing = self._missing(args, kwargs)
            if missing is not None:
                e.details = {"missing": missing}
            raise

    def _missing(self, args, kwargs) -> str | None:
        """The one required parameter a keywords-only call left out, if that is all that
        is wrong with it (no positional argument, no unknown keyword, one missing)."""
        params = list(inspect.signature(getattr(self.container.service_cls, self.method_name)).parameters.values())[1:]
        named = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        any_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
        if args or not (any_keyword or set(kwargs) <= named):
            return None
        missing = [p.name for p in params if p.name in named and p.default is p.empty and p.name not in kwargs]
        return missing[0] if len(missing) == 1 else None


#: ``@command`` / ``@query``: an RPC entrypoint whose domain refusals are expected. Every
#: RPC entrypoint of a service must come from here (one RpcConsumer per service queue).
command = query = _Rpc.decorator(expected_exceptions=DomainError)
