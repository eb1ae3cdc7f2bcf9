"""The nameko dependency providers the services share, and the base class of the two
services that run commands on the event store (goal, progress).

- ``Aggregates``: the event store behind the service layer — one engine, store and
  CommandExecutor per container, on ``OKR_DATABASE_URL``. The schema is checked at start
  (a service never migrates; ``okr migrate`` does, once, before the services start).
- ``Caller``: who calls and why, from the call's nameko context data: ``actor``
  (required by commands), ``tenant_id`` (required), ``correlation_id`` (default: the id
  of the original call), ``causation_id`` (default: the command id, else this call).
- ``AggregateService``: ``aggregates``, ``caller`` and ``observed`` declared once for
  the services whose commands run on the event store (nameko binds a subclass's
  inherited dependencies as its own, one copy per container).
"""

from __future__ import annotations

from nameko.extensions import DependencyProvider

from okr_shared.config import Settings
from okr_shared.eventstore.engine import background_checkpoints
from okr_shared.observability import lag
from okr_shared.observability.nameko import Observed
from okr_shared.runtime import freeze_startup_objects
from okr_shared.service_layer import CallContext, check_schema, command_executor, today_in
from okr_shared.service_layer.repository import BackgroundSnapshots


class Aggregates(DependencyProvider):
    """The event store behind the service layer: each worker gets the container's
    ``okr_shared.service_layer.CommandExecutor`` (``run`` a command, ``read`` a state).

    Configuration (environment): ``OKR_DATABASE_URL`` (okr_shared.config.Settings) and
    ``OKR_TIMEZONE`` (the organisation's calendar, IANA name, default ``UTC``: the "today"
    that effective dates and due dates are checked against).
    """

    def setup(self):
        settings = Settings.from_env()
        # SQLite: the WAL is checkpointed by a thread of its own, not by an append's
        # COMMIT with the append lock held (ADR 0018)
        self.engine, self._checkpointer = background_checkpoints(settings.database_url)
        try:
            check_schema(self.engine)
        except Exception:
            self._stop_checkpoints()
            self.engine.dispose()
            raise
        self.executor = command_executor(self.engine, today=today_in(settings.timezone))
        # due snapshots are written by a green thread, off the commands' path (ADR 0018)
        repository = self.executor.repository
        repository.snapshot_writer = self.snapshots = BackgroundSnapshots(repository.save_snapshot)
        # the relay lag gauges, from this store, even while no relay runs
        self._lag_key = settings.database_url
        lag.track_store(self._lag_key, self.engine)

    def start(self):
        freeze_startup_objects()
        self.snapshots.start()

    def stop(self):
        self.snapshots.stop()
        if self._lag_key is not None:
            lag.untrack_store(self._lag_key)
            self._lag_key = None
        self.executor.store.close()
        self._stop_checkpoints()
        self.engine.dispose()

    def _stop_checkpoints(self):
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

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


class AggregateService:
    """The dependencies of a service whose commands run on the event store: its RPC
    methods call ``self.aggregates.run(Command, fields, self.caller)`` (or ``read``).
    A subclass sets ``name``."""

    aggregates = Aggregates()
    caller = Caller()
    observed = Observed()  # log context, latency metrics, the /metrics endpoint
