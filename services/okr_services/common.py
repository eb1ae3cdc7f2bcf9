"""What the goal and progress services share: their two dependencies and how their
RPC entrypoints report refusals.

- ``Aggregates``: the event store behind the service layer — one engine, store and
  CommandExecutor per container, on ``OKR_DATABASE_URL``. The schema is checked at start
  (a service never migrates; ``okr migrate`` does, once, before the services start).
- ``Caller``: who calls and why, from the call's nameko context data: ``actor``
  (required by commands), ``tenant_id`` (required), ``correlation_id`` (default: the id
  of the original call), ``causation_id`` (default: the command id, else this call).
- ``command`` / ``query``: ``@rpc`` whose DomainErrors are expected (logged as warnings,
  not as crashes). The caller gets nameko's RemoteError with ``exc_type`` =
  ``ValidationError`` / ``NotFound`` / ``PreconditionFailed`` / ``ConcurrencyConflict``
  and ``value`` = the message naming the field or rule, e.g. ``"title: must not be empty"``.
"""

from __future__ import annotations

import gc
import logging
import threading

import os

from nameko import config as nameko_config
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_SSL_CONFIG_KEY, DEFAULT_TRANSPORT_OPTIONS, LOGIN_METHOD_CONFIG_KEY
from nameko.extensions import DependencyProvider
from nameko.rpc import Responder, Rpc, RpcConsumer, get_rpc_exchange

from okr_shared.config import Settings
from okr_shared.domain.errors import DomainError
from okr_shared.eventstore import make_engine
from okr_shared.observability import lag
from okr_shared.observability.nameko import Observed  # noqa: F401 - every service class carries one
from okr_shared.service_layer import CallContext, check_schema, command_executor, today_in

_log = logging.getLogger(__name__)

#: ``OKR_RPC_REPLY_CONFIRMS`` (default 0): whether the services wait for the broker's
#: publisher confirm of each RPC reply (nameko's default) — ADR 0014.
REPLY_CONFIRMS = os.environ.get("OKR_RPC_REPLY_CONFIRMS", "0").strip() in ("1", "true", "yes", "on")


class _ReplyPublisher(Publisher):
    use_confirms = REPLY_CONFIRMS
    # its own dict: nameko's Publisher writes confirm_publish into a class-level one
    transport_options = {**DEFAULT_TRANSPORT_OPTIONS, "confirm_publish": REPLY_CONFIRMS}


class _Responder(Responder):
    publisher_cls = _ReplyPublisher


class _RpcConsumer(RpcConsumer):
    """nameko's RpcConsumer, replying through ``_ReplyPublisher``: a reply is written to
    the broker without waiting for its publisher confirm (a broker round trip and ~7 %
    of the progress service's CPU per command). The confirm bought the caller nothing:
    a reply the broker loses is a timeout for the caller either way, while the command's
    effect is already committed to the event store (and a retried call with the same
    command_id is stored once)."""

    def handle_result(self, message, result, exc_info):
        responder = _Responder(self.amqp_uri, get_rpc_exchange(), message,
                               ssl=nameko_config.get(AMQP_SSL_CONFIG_KEY),
                               login_method=nameko_config.get(LOGIN_METHOD_CONFIG_KEY))
        result, exc_info = responder.send_response(result, exc_info)
        self.consumer.ack_message(message)
        return result, exc_info


class _Rpc(Rpc):
    rpc_consumer = _RpcConsumer()


#: ``@command`` / ``@query``: an RPC entrypoint whose domain refusals are expected. Every
#: RPC entrypoint of a service must come from here (one RpcConsumer per service queue).
command = query = _Rpc.decorator(expected_exceptions=DomainError)

_frozen = threading.Event()


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, the containers) out of the
    garbage collector's reach, once per process: a full collection then no longer walks
    them, which otherwise stalls a request by ~30 ms now and then (bench/kr_load.py).
    Objects made later are collected as usual."""
    if not _frozen.is_set():
        _frozen.set()
        gc.collect()
        gc.freeze()


class Aggregates(DependencyProvider):
    """The event store behind the service layer: each worker gets the container's
    ``okr_shared.service_layer.CommandExecutor`` (``run`` a command, ``read`` a state).

    Configuration (environment): ``OKR_DATABASE_URL`` (okr_shared.config.Settings) and
    ``OKR_TIMEZONE`` (the organisation's calendar, IANA name, default ``UTC``: the "today"
    that effective dates and due dates are checked against).
    """

    def setup(self):
        settings = Settings.from_env()
        self.engine = make_engine(settings.database_url)
        try:
            check_schema(self.engine)
        except Exception:
            self.engine.dispose()
            raise
        self.executor = command_executor(self.engine, today=today_in(settings.timezone))
        # the relay lag gauges, from this store, even while no relay runs
        self._lag_key = settings.database_url
        lag.track_store(self._lag_key, self.engine)

    def start(self):
        freeze_startup_objects()

    def stop(self):
        if self._lag_key is not None:
            lag.untrack_store(self._lag_key)
            self._lag_key = None
        self.executor.store.close()
        self.engine.dispose()

    def kill(self):
        self.stop()

    def get_dependency(self, worker_ctx):
        return self.executor


class Caller(DependencyProvider):
    """Who calls and why, as an ``okr_shared.service_layer.CallContext`` built from the
    call's context data. Nothing is checked here (a raise while a worker is being set
    up would not reach the caller as a clean error): the service layer refuses a
    command without actor or tenant with a ValidationError naming it."""

    def get_dependency(self, worker_ctx):
        data = worker_ctx.data
        stack = worker_ctx.call_id_stack or []
        return CallContext(
            actor=data.get("actor"),
            tenant_id=data.get("tenant_id"),
            correlation_id=data.get("correlation_id") or (stack[0] if stack else ""),
            causation_id=data.get("causation_id") or "",
            call_id=worker_ctx.call_id or "",
        )
