"""Fixtures of the service layer and service tests: a migrated SQLite event store in a
temporary file, a fixed date, and a small world (an active quarter with an objective
and a key result) to run commands in."""

import shutil
from datetime import date

import pytest

from okr_shared.domain import commands as c
from okr_shared.eventstore import EventStore, make_engine, migrate
from okr_shared.service_layer import CallContext, RetryPolicy, command_executor

TODAY = date(2026, 8, 10)


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("template") / "eventstore.db"
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    engine.dispose()
    return path


@pytest.fixture
def engine(migrated_sqlite_file, tmp_path):
    path = tmp_path / "eventstore.db"
    shutil.copy(migrated_sqlite_file, path)
    engine = make_engine(f"sqlite:///{path}")
    yield engine
    engine.dispose()


@pytest.fixture
def sleeps():
    """The back-off delays the executor asked for (it never really sleeps in unit tests)."""
    return []


@pytest.fixture
def executor(engine, sleeps):
    executor = command_executor(engine, today=lambda: TODAY, retry=RetryPolicy(sleep=sleeps.append))
    yield executor
    executor.store.close()


@pytest.fixture
def other_executor(engine):
    """Another process's executor on the same store (its own locks and cache)."""
    executor = command_executor(engine, today=lambda: TODAY)
    yield executor
    executor.store.close()


@pytest.fixture
def store(engine):
    """A second, independent handle on the same store (to look at what was written)."""
    store = EventStore(engine)
    yield store
    store.close()


@pytest.fixture
def call():
    return CallContext(actor="ana", tenant_id="acme", correlation_id="corr-1", call_id="progress.record_check_in.1")


@pytest.fixture
def world(executor, call):
    """An active Q3 2026 cycle, a company objective and an increase-to key result; the
    ids by name."""
    cycle = executor.run(c.PlanCycle, dict(cycle_id="2026-q3", cadence="QUARTERLY", name="2026 Q3",
                                           start_date="2026-07-01", end_date="2026-09-30"), call)
    executor.run(c.ActivateCycle, dict(cycle_id=cycle["cycle_id"]), call)
    objective = executor.run(c.CreateObjective, dict(objective_id="grow", cycle_id="2026-q3", level="COMPANY",
                                                     title="Grow the community", owner="ana"), call)
    kr = executor.run(c.DefineKeyResult, dict(key_result_id="members", objective_id="grow", title="Members",
                                              kind="INCREASE_TO", start_value=100, target_value=500,
                                              owner="ana", due_date="2026-09-30"), call)
    return {"cycle_id": cycle["cycle_id"], "objective_id": objective["objective_id"],
            "key_result_id": kr["key_result_id"]}
