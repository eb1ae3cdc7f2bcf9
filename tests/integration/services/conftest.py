"""The goal and progress services running for real: nameko containers in this process
(monkey-patched by the top conftest) on the real RabbitMQ, over a fresh migrated event
store on SQLite and on PostgreSQL, called through nameko's ClusterRpcClient.

No vhost per test (that needs RabbitMQ's management plugin): each module's services get
names of their own (``goal-<suffix>``), hence RPC queues of their own on the shared
broker, deleted at the end, so concurrent test runs on one broker cannot steal each
other's calls.
"""

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone

import nameko
import pytest
from kombu import Connection
from nameko.containers import get_container_cls
from nameko.runners import ServiceRunner
from nameko.standalone.rpc import ClusterRpcClient

from okr_shared.eventstore import EventStore, make_engine, migrate
from okr_services.goal.service import GoalService
from okr_services.progress.service import ProgressService
from tests.infra import AMQP_URI, BACKENDS, Databases, require_broker

RPC_TIMEOUT = 30


@dataclass
class ServiceDatabase:
    backend: str
    url: str
    engine: object
    store: EventStore


@pytest.fixture(scope="module", params=BACKENDS)
def service_database(request, tmp_path_factory):
    """A fresh, migrated event store for one test module; ``url`` is what the services
    get as OKR_DATABASE_URL (on PostgreSQL a schema of its own, via search_path)."""
    databases = Databases(request.param, tmp_path_factory.mktemp("services"), prefix="svc_test")
    url = databases.new("okr")
    engine = make_engine(url)
    migrate(engine)
    store = EventStore(engine)
    yield ServiceDatabase(request.param, url, engine, store)
    store.close()
    engine.dispose()
    databases.drop()


@pytest.fixture(scope="session")
def broker():
    """The real RabbitMQ's URI (OKR_TEST_AMQP_URI), after checking that it answers."""
    require_broker()
    return AMQP_URI


@dataclass
class RunningServices:
    goal: str
    progress: str
    database: ServiceDatabase
    _containers: list = field(default_factory=list)
    _names: list = field(default_factory=list)

    def start_another(self, service_cls, name: str):
        """Start one more container of ``service_cls`` named ``name`` (e.g. a second
        progress instance: competing consumers on the same queue, as when scaled out)."""
        container = get_container_cls()(type(service_cls.__name__, (service_cls,), {"name": name}))
        self._names.append(name)
        container.start()
        self._containers.append(container)
        return container


@pytest.fixture(scope="module")
def services(service_database, broker):
    """Goal and progress services on the module's database and the real broker."""
    suffix = uuid.uuid4().hex[:10]
    goal, progress = f"goal-{suffix}", f"progress-{suffix}"
    mp = pytest.MonkeyPatch()
    mp.setenv("OKR_DATABASE_URL", service_database.url)
    with nameko.config.patch({"AMQP_URI": broker}):
        runner = ServiceRunner()
        runner.add_service(type("GoalService", (GoalService,), {"name": goal}))
        runner.add_service(type("ProgressService", (ProgressService,), {"name": progress}))
        runner.start()
        running = RunningServices(goal, progress, service_database, _names=[goal, progress])
        try:
            yield running
        finally:
            for container in running._containers:
                container.stop()
            runner.stop()
            mp.undo()
    with Connection(broker) as conn:
        for name in running._names:
            conn.default_channel.queue_delete(f"rpc-{name}")


@pytest.fixture
def rpc(broker):
    """``rpc(actor=..., tenant_id=..., **more_context)`` → a started ClusterRpcClient
    (``client[service].method(...)``); all stopped after the test."""
    started = []

    def client(**context_data):
        cluster = ClusterRpcClient(context_data=context_data, timeout=RPC_TIMEOUT, uri=broker)
        proxy = cluster.start()
        started.append(cluster)
        return proxy

    yield client
    for cluster in started:
        cluster.stop()


def current_quarter(today: date | None = None) -> tuple[str, str]:
    """(first day, last day) of the quarter the services' today (UTC) lies in."""
    today = today or datetime.now(timezone.utc).date()
    first_month = 3 * ((today.month - 1) // 3) + 1
    start = date(today.year, first_month, 1)
    end = date(today.year + (first_month == 10), 1 if first_month == 10 else first_month + 3, 1)
    return start.isoformat(), date.fromordinal(end.toordinal() - 1).isoformat()


@pytest.fixture
def okr(services, rpc):
    """An active cycle for this quarter with one objective and one key result, made
    through the goal service; their ids by name, plus the goal client."""
    goal = rpc(actor="ana", tenant_id="acme")[services.goal]
    start, end = current_quarter()
    cycle = goal.plan_cycle(cadence="QUARTERLY", name="this quarter", start_date=start, end_date=end)
    goal.activate_cycle(cycle_id=cycle["cycle_id"])
    objective = goal.create_objective(cycle_id=cycle["cycle_id"], level="COMPANY", title="Grow the community",
                                      owner="ana")
    kr = goal.define_key_result(objective_id=objective["objective_id"], title="Members", kind="INCREASE_TO",
                                start_value=100, target_value=500, owner="ana", due_date=end)
    return {"cycle_id": cycle["cycle_id"], "objective_id": objective["objective_id"],
            "key_result_id": kr["key_result_id"], "goal": goal}
