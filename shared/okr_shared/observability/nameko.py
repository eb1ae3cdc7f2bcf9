"""``Observed``: the dependency every nameko service class carries (one line,
``observed = Observed()``).

For every worker (RPC call, event handler, timer, HTTP request) it

- sets the log context (``context``): the correlation id — of the call's context data
  (the gateway puts it there), else of the event being handled (``EventEnvelope``'s
  ``correlation_id``), else nameko's call id —, the tenant (context data ``tenant_id``
  or the event's), the service and the entrypoint; every record logged while the worker
  runs carries them;
- times it into ``okr_entrypoint_duration_seconds{service, entrypoint, kind, outcome}``
  (outcome ``ok``, ``refused`` for the entrypoint's expected exceptions — the domain's
  refusals —, ``error``);
- writes one access log line (logger ``okr.access``, INFO; ``OKR_ACCESS_LOG=0`` turns
  it off) for RPC calls and events: entrypoint, outcome, ``duration_ms``.

It also starts the process's metrics endpoint when its container starts
(``server.serve_from_env("services")``, once per process).
"""

from __future__ import annotations

import logging
import time

from nameko.extensions import DependencyProvider
from nameko.rpc import Rpc

from .. import config
from . import context, metrics, server

_access = logging.getLogger("okr.access")


def entrypoint_kind(entrypoint) -> str:
    """The ``kind`` label of an entrypoint's metrics: rpc, event, timer, ... ."""
    if isinstance(entrypoint, Rpc):  # also okr_services.rpc's _Rpc (replies without confirms)
        return "rpc"
    name = type(entrypoint).__name__
    if name == "OkrEventHandler":
        return "event"
    if name == "Timer":
        return "timer"
    if name == "HttpRequestHandler":
        return "http"
    return name.lower()


class Observed(DependencyProvider):
    """See the module docstring. The service's code never uses the injected value
    (``None``)."""

    def setup(self):
        server.serve_from_env("services")
        self._access = config.access_log_enabled()
        self._service = self.container.service_name
        self._started: dict[int, tuple[float, object, str, str]] = {}
        self._kinds: dict[object, str] = {}

    def get_dependency(self, worker_ctx):
        return None

    def worker_setup(self, worker_ctx):
        entrypoint = worker_ctx.entrypoint
        kind = self._kinds.get(entrypoint)
        if kind is None:
            kind = self._kinds[entrypoint] = entrypoint_kind(entrypoint)
        data = worker_ctx.data
        correlation_id = data.get("correlation_id")
        tenant = data.get("tenant_id")
        if kind == "event" and worker_ctx.args:
            envelope = worker_ctx.args[0]
            correlation_id = correlation_id or getattr(envelope, "correlation_id", "")
            tenant = tenant or getattr(envelope, "tenant_id", "")
        if not correlation_id:
            stack = worker_ctx.call_id_stack
            correlation_id = stack[0] if stack else ""
        token = context.bind(correlation_id, tenant or "", self._service, entrypoint.method_name)
        self._started[id(worker_ctx)] = (time.perf_counter(), token, kind, entrypoint.method_name)

    def worker_result(self, worker_ctx, result=None, exc_info=None):
        started = self._started.get(id(worker_ctx))
        if started is None:
            return
        t0, _, kind, method = started
        elapsed = time.perf_counter() - t0
        if exc_info is None:
            outcome = "ok"
        elif isinstance(exc_info[1], worker_ctx.entrypoint.expected_exceptions):
            outcome = "refused"
        else:
            outcome = "error"
        metrics.entrypoint_duration[(self._service, method, kind, outcome)].observe(elapsed)
        if self._access and kind in ("rpc", "event"):
            extra = {"kind": kind, "outcome": outcome, "duration_ms": round(elapsed * 1000, 3)}
            if kind == "event":
                envelope = worker_ctx.args[0]
                extra.update(event_type=getattr(envelope, "event_type", ""), position=getattr(envelope, "position", 0))
            _access.info("%s %s.%s %s", kind, self._service, method, outcome, extra=extra)

    def worker_teardown(self, worker_ctx):
        started = self._started.pop(id(worker_ctx), None)
        if started is not None:
            context.reset(started[1])
