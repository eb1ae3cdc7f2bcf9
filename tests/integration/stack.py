"""The whole platform inside one test process, as the gateway and observability tests
start it: its databases (event store, reporting, gateway keys, directory), names of the
test's own for the services, the exchanges and the read models' queues, the goal,
progress and reporting services (and the directory service, when asked) as nameko containers, the gateway's health check, and stopping
the processes it runs beside them."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import eventlet.tpool
import grpc
import nameko
from nameko.containers import get_container_cls

from okr_shared.bus.consumer import dead_letter_queue_name
from okr_shared.db import migrate as db_migrate
from okr_shared.eventstore import EventStore, make_engine, migrate
from okr_services.directory.service import make_service as make_directory
from okr_services.goal.service import GoalService
from okr_services.progress.service import ProgressService
from okr_services.reporting.service import make_service as make_reporting
from tests.infra import AMQP_URI, Databases
from tests.waiting import free_port


@dataclass
class StackDatabases:
    """The URLs of the four databases; the event store migrated and open (``engine``,
    ``store``), the gateway's key database migrated and open (``keys_engine``: the
    caller creates its keys, then disposes of it)."""

    store_url: str
    reporting_url: str
    keys_url: str
    engine: object
    store: EventStore
    keys_engine: object
    directory_url: str


def stack_databases(databases: Databases) -> StackDatabases:
    store_url, reporting_url, keys_url = databases.new("store"), databases.new("reporting"), databases.new("keys")
    engine = make_engine(store_url)
    migrate(engine)
    keys_engine = make_engine(keys_url)
    db_migrate(keys_engine, "gateway_keys")
    return StackDatabases(store_url, reporting_url, keys_url, engine, EventStore(engine), keys_engine,
                          databases.new("directory"))


@dataclass
class StackNames:
    """Names of one test module's own: the events exchange and its dead-letter exchange,
    the services (logical name -> nameko service name), the reporting queue and the
    directory's."""

    exchange: str
    dlx: str
    names: dict
    queue: str
    directory_queue: str

    @classmethod
    def new(cls, label: str) -> StackNames:
        suffix = uuid.uuid4().hex[:10]
        return cls(f"okr.events.{label}-{suffix}", f"okr.events.dlx.{label}-{suffix}",
                   {"goal": f"goal-{suffix}", "progress": f"progress-{suffix}", "reporting": f"reporting-{suffix}",
                    "directory": f"directory-{suffix}"},
                   f"reporting.read-models-{suffix}", f"directory.read-model-{suffix}")

    def bus_objects(self) -> tuple[list[str], tuple[str, str]]:
        """(queues, exchanges) the services declared, for ``delete_bus_objects``."""
        return ([self.queue, dead_letter_queue_name(self.queue), self.directory_queue,
                 dead_letter_queue_name(self.directory_queue)] + [f"rpc-{n}" for n in self.names.values()],
                (self.exchange, self.dlx))


def start_services(containers: dict, names: StackNames, store_url: str, reporting_url: str,
                   directory_url: str | None = None) -> None:
    """Start the goal, progress and reporting services (and the directory service on
    ``directory_url`` when given) as nameko containers, each added to ``containers`` by
    logical name as it starts (the caller's teardown stops those started before a
    failure). The goal and progress services read OKR_DATABASE_URL: the caller sets it."""
    directory = () if directory_url is None else (("directory", make_directory(
        names.names["directory"], queue=names.directory_queue, db_url=directory_url, event_store_url=store_url,
        exchange=names.exchange, dead_letter_exchange=names.dlx, retry_delay=0.01, retry_max_delay=0.1)),)
    with nameko.config.patch({"AMQP_URI": AMQP_URI, "WEB_SERVER_ADDRESS": f"127.0.0.1:{free_port()}"}):
        for logical, cls in (("goal", type("GoalService", (GoalService,), {"name": names.names["goal"]})),
                             ("progress", type("ProgressService", (ProgressService,),
                                               {"name": names.names["progress"]})),
                             ("reporting", make_reporting(names.names["reporting"], queue=names.queue,
                                                          db_url=reporting_url, event_store_url=store_url,
                                                          refresh_interval=3600, exchange=names.exchange,
                                                          dead_letter_exchange=names.dlx, retry_delay=0.01,
                                                          retry_max_delay=0.1)), *directory):
            container = get_container_cls()(cls)
            container.start()
            containers[logical] = container


def gateway_settings(keys_url: str, address: str, names: StackNames) -> dict:
    """The gateway process's own settings: where it serves, its key database, its RPC
    timeout, no key cache, and the services' names."""
    return dict(OKR_GATEWAY_ADDRESS=address, OKR_GATEWAY_DATABASE_URL=keys_url, OKR_GATEWAY_RPC_TIMEOUT="5",
                OKR_GATEWAY_KEY_CACHE_S="0",
                OKR_GATEWAY_SERVICES=",".join(f"{k}={v}" for k, v in names.names.items()))


def serving(channel) -> bool:
    """The gateway answers its health check (asked in a real thread, never on the hub;
    grpc.channel_ready_future would start a connectivity thread that, green in this
    process, blocks the channel's close)."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    def check():
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
            return response.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    return eventlet.tpool.execute(check)


def stop_process(process) -> int:
    """SIGTERM ``process`` (a subprocess.Popen), SIGKILL it if it has not exited within
    10 s; its exit status. Polls: eventlet's green ``wait(timeout=)`` is not relied on."""
    process.terminate()
    for _ in range(100):
        if process.poll() is not None:
            return process.returncode
        time.sleep(0.1)
    process.kill()
    return process.wait()
