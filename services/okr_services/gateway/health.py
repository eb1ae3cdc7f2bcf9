"""The gateway's gRPC health (``grpc.health.v1.Health``): ``Check``, ``Watch`` and
``List``, with statuses that follow what each service needs.

A background thread probes the gateway's two dependencies every
``OKR_GATEWAY_HEALTH_INTERVAL_S`` seconds (default 2):

- **broker**: the RPC client's reply consumer is connected to RabbitMQ and its socket is
  open (``RpcClient.connected``; a lost connection is noticed at once, a silent one by
  the AMQP heartbeat);
- **store**: a ``SELECT`` on the event store's engine (``OKR_DATABASE_URL``); for a
  SQLite store the database file must also still be there (SQLite would otherwise answer
  from the open connection to a deleted file, or create an empty one).

A probe that raises or takes longer than the interval counts as down. Which service
needs what (``DEPENDENCIES``): everything that forwards over RPC — GoalService,
ProgressService, ReportingService, DirectoryService — needs the broker; AuditService reads the store and
forwards ``ReplayAsOf`` to the reporting service: both; EventStream reads the store and
follows the bus: both; the overall status (``""``) needs every dependency. A service is
``SERVING`` while all it needs is reachable, ``NOT_SERVING`` otherwise, and ``Watch``
streams see each change (docs/api.md "Health and reflection", ADR 0026).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent import futures
from typing import Callable, Iterable, Mapping

from grpc_health.v1 import health, health_pb2
from sqlalchemy import Engine, text

_log = logging.getLogger(__name__)

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

BROKER, STORE = "broker", "store"

#: Proto service -> the dependencies its RPCs use ("" = the whole server: all of them).
DEPENDENCIES: dict[str, frozenset[str]] = {
    "okr.v1.GoalService": frozenset({BROKER}),
    "okr.v1.ProgressService": frozenset({BROKER}),
    "okr.v1.ReportingService": frozenset({BROKER}),
    "okr.v1.DirectoryService": frozenset({BROKER}),
    "okr.v1.AuditService": frozenset({STORE, BROKER}),
    "okr.v1.EventStream": frozenset({STORE, BROKER}),
    "": frozenset({STORE, BROKER}),
}

DEFAULT_INTERVAL_S = 2.0


class HealthServicer(health.HealthServicer):
    """grpcio-health-checking's servicer (Check, Watch) plus ``List`` (grpc.health.v1 has
    it; the library's servicer answers it UNIMPLEMENTED): every registered service and
    its status, a snapshot taken under one lock."""

    def __init__(self):
        super().__init__()
        self._statuses: dict[str, int] = {"": SERVING}
        self._statuses_lock = threading.Lock()

    def set(self, service: str, status) -> None:
        with self._statuses_lock:
            self._statuses[service] = status
            super().set(service, status)

    def status(self, service: str):
        """The status set for ``service`` (None if it is not registered)."""
        with self._statuses_lock:
            return self._statuses.get(service)

    def List(self, request, context):  # noqa: N802 - the RPC's name
        with self._statuses_lock:
            snapshot = dict(self._statuses)
        return health_pb2.HealthListResponse(
            statuses={name: health_pb2.HealthCheckResponse(status=status) for name, status in snapshot.items()})


def store_probe(engine: Engine) -> Callable[[], None]:
    """A probe of the event store: raises unless a ``SELECT`` answers (and, for a SQLite
    file, unless the file is still there)."""
    path = engine.url.database if engine.url.get_backend_name() == "sqlite" else None
    if path in ("", ":memory:") or (path or "").startswith("file:"):
        path = None

    def probe() -> None:
        if path is not None and not os.path.isfile(path):
            raise FileNotFoundError(f"the SQLite event store {path} is gone")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar()

    return probe


def broker_probe(rpc) -> Callable[[], None]:
    """A probe of RabbitMQ: raises unless the RPC client's reply consumer is connected."""

    def probe() -> None:
        if not rpc.connected():
            raise ConnectionError("the RPC client is not connected to RabbitMQ")

    return probe


class DependencyChecker:
    """Probes the dependencies every ``interval`` seconds in a thread of its own and sets
    each service's status from them (see the module docstring)."""

    def __init__(self, servicer: HealthServicer, probes: Mapping[str, Callable[[], None]],
                 services: Iterable[str], interval: float = DEFAULT_INTERVAL_S,
                 dependencies: Mapping[str, frozenset[str]] = DEPENDENCIES):
        if not interval > 0:
            raise ValueError(f"OKR_GATEWAY_HEALTH_INTERVAL_S: a positive number of seconds, not {interval!r}")
        self.servicer = servicer
        self.probes = dict(probes)
        self.interval = interval
        #: service -> the probed dependencies it needs (a dependency without a probe —
        #: a gateway without an event store — is not held against anyone)
        self.needs = {name: frozenset(d for d in dependencies.get(name, self.probes) if d in self.probes)
                      for name in [*services, ""]}
        self.up: dict[str, bool] = {}
        self._running: dict[str, futures.Future] = {}
        self._pool = futures.ThreadPoolExecutor(max_workers=max(1, len(self.probes)),
                                                thread_name_prefix="okr-gateway-health-probe")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> dict[str, bool]:
        """Run every probe (in parallel, each bounded by the interval), set the statuses,
        and return which dependencies are up."""
        started = {}
        for name, probe in self.probes.items():
            running = self._running.get(name)
            # a probe still hanging from an earlier round is not started twice: it is down
            started[name] = running if running is not None and not running.done() else self._pool.submit(probe)
        deadline = time.monotonic() + self.interval
        up = {}
        for name, future in started.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                up[name] = True
            except futures.TimeoutError:
                up[name] = False
                self._running[name] = future
                self._report(name, f"no answer within {self.interval:g} s")
                continue
            except Exception as e:  # noqa: BLE001 - any failure means unreachable
                up[name] = False
                self._report(name, repr(e))
            self._running.pop(name, None)
        for name, ok in up.items():
            if ok and self.up.get(name) is False:
                _log.info("health: the %s is reachable again", name, extra={"dependency": name})
        self.up = up
        for service, needs in self.needs.items():
            status = SERVING if all(up[d] for d in needs) else NOT_SERVING
            if self.servicer.status(service) != status:
                self.servicer.set(service, status)
        return up

    def _report(self, name: str, reason: str) -> None:
        if self.up.get(name) is not False:  # once per outage
            _log.warning("health: the %s is unreachable (%s); its services are NOT_SERVING", name, reason,
                         extra={"dependency": name})

    def start(self) -> None:
        """Check once now (so the first answer is already true), then every interval."""
        self.check_once()
        self._thread = threading.Thread(target=self._run, name="okr-gateway-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - the checker must outlive any surprise
                _log.exception("health: the dependency check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["BROKER", "DEPENDENCIES", "DependencyChecker", "HealthServicer", "STORE", "broker_probe",
           "store_probe"]
