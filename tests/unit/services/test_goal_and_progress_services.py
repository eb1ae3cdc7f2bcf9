"""The goal, progress and directory services' entrypoints (worker_factory: no broker): one RPC per
command, domain errors expected (not crashes), the call context read from nameko's
context data, the store checked (not migrated) at start."""

import dataclasses
import inspect
from types import SimpleNamespace

import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR
from nameko.testing.services import worker_factory

from okr_shared.domain import commands as c
from okr_shared.domain.errors import DomainError, NotFound, ValidationError
from okr_shared.eventstore import make_engine, migrate
from okr_shared.service_layer import CallContext, SchemaNotCurrent
from okr_services.dependencies import Aggregates, Caller
from okr_services.directory.service import DirectoryService
from okr_services.goal.service import GoalService
from okr_services.progress.service import ProgressService

COMMAND_RPCS = [
    (GoalService, "plan_cycle", c.PlanCycle),
    (GoalService, "activate_cycle", c.ActivateCycle),
    (GoalService, "move_cycle_to_review", c.MoveCycleToReview),
    (GoalService, "close_cycle", c.CloseCycle),
    (GoalService, "create_objective", c.CreateObjective),
    (GoalService, "align_objective", c.AlignObjective),
    (GoalService, "realign_objective", c.RealignObjective),
    (GoalService, "restate_objective", c.RestateObjective),
    (GoalService, "archive_objective", c.ArchiveObjective),
    (GoalService, "define_key_result", c.DefineKeyResult),
    (GoalService, "adjust_key_result", c.AdjustKeyResult),
    (GoalService, "assign_key_result_owner", c.AssignKeyResultOwner),
    (GoalService, "archive_key_result", c.ArchiveKeyResult),
    (GoalService, "create_initiative", c.CreateInitiative),
    (GoalService, "start_initiative", c.StartInitiative),
    (GoalService, "complete_initiative", c.CompleteInitiative),
    (GoalService, "drop_initiative", c.DropInitiative),
    (GoalService, "slip_initiative", c.SlipInitiative),
    (ProgressService, "record_check_in", c.RecordCheckIn),
    (ProgressService, "correct_check_in", c.CorrectCheckIn),
    (DirectoryService, "add_person", c.AddPerson),
    (DirectoryService, "update_person", c.UpdatePerson),
    (DirectoryService, "assign_manager", c.AssignManager),
    (DirectoryService, "deactivate_person", c.DeactivatePerson),
    (DirectoryService, "reactivate_person", c.ReactivatePerson),
    (DirectoryService, "grant_role", c.GrantRole),
    (DirectoryService, "revoke_role", c.RevokeRole),
    (DirectoryService, "create_team", c.CreateTeam),
    (DirectoryService, "rename_team", c.RenameTeam),
    (DirectoryService, "move_team", c.MoveTeam),
    (DirectoryService, "archive_team", c.ArchiveTeam),
    (DirectoryService, "add_team_member", c.AddTeamMember),
    (DirectoryService, "remove_team_member", c.RemoveTeamMember),
    (DirectoryService, "assign_team_lead", c.AssignTeamLead),
    (DirectoryService, "remove_team_lead", c.RemoveTeamLead),
]
QUERY_RPCS = [
    (GoalService, "get_cycle", "cycle", "cycle_id"),
    (GoalService, "get_objective", "objective", "objective_id"),
    (GoalService, "get_key_result", "kr", "key_result_id"),
    (GoalService, "get_initiative", "initiative", "initiative_id"),
    (ProgressService, "get_key_result", "kr", "key_result_id"),
]


#: Queries of a read model rather than of one aggregate (tests/unit/services/test_directory_service.py).
READ_MODEL_RPCS = [(DirectoryService, name) for name in ("get_person", "list_people", "get_team", "list_teams",
                                                         "resolve_person")]

#: RPCs that are neither one command nor one read: the plan import (many commands), a
#: person's move between teams (two).
BULK_RPCS = [(GoalService, "import_plan"), (DirectoryService, "move_person_to_team")]

#: Entrypoints that are not RPCs: the read model's event consumer.
EVENT_HANDLERS = {DirectoryService: {"on_event"}}

SERVICES = (GoalService, ProgressService, DirectoryService)


def rpc_methods(service_cls):
    return {name for name, fn in inspect.getmembers(service_cls, inspect.isfunction)
            if getattr(fn, ENTRYPOINT_EXTENSIONS_ATTR, None)} - EVENT_HANDLERS.get(service_cls, set())


def test_every_command_has_exactly_one_rpc():
    commands = {cls for _, cls in inspect.getmembers(c, inspect.isclass)
                if dataclasses.is_dataclass(cls) and cls.__module__ == c.__name__}
    assert sorted(cls.__name__ for _, _, cls in COMMAND_RPCS) == sorted(cls.__name__ for cls in commands)
    for service_cls in SERVICES:
        commands = {m for s, m, _ in COMMAND_RPCS if s is service_cls}
        queries = {m for s, m, *_ in QUERY_RPCS + READ_MODEL_RPCS if s is service_cls}
        bulk = {m for s, m in BULK_RPCS if s is service_cls}
        assert rpc_methods(service_cls) == commands | queries | bulk


@pytest.mark.parametrize("service_cls, method, command_cls", COMMAND_RPCS)
def test_a_command_rpc_runs_its_command_with_the_callers_context(service_cls, method, command_cls):
    service = worker_factory(service_cls)
    reply = getattr(service, method)(some_field=1)
    service.aggregates.run.assert_called_once_with(command_cls, {"some_field": 1}, service.caller)
    assert reply is service.aggregates.run.return_value


@pytest.mark.parametrize("service_cls, method, category, id_field", QUERY_RPCS)
def test_a_query_rpc_reads_one_aggregate(service_cls, method, category, id_field):
    service = worker_factory(service_cls)
    getattr(service, method)(**{id_field: "x1"})
    service.aggregates.read.assert_called_once_with(category, "x1", service.caller)


@pytest.mark.parametrize("service_cls", SERVICES)
def test_domain_errors_are_expected_by_every_entrypoint(service_cls):
    for name in rpc_methods(service_cls):
        [entrypoint] = getattr(getattr(service_cls, name), ENTRYPOINT_EXTENSIONS_ATTR)
        assert entrypoint.expected_exceptions is DomainError, name


def test_a_check_in_through_the_progress_service(executor, call, world):
    service = worker_factory(ProgressService, aggregates=executor, caller=call)
    reply = service.record_check_in(key_result_id="members", value=120, confidence=6, comment="good week")
    assert reply["stream_id"] == "kr-members" and reply["version"] == 2
    state = service.get_key_result(key_result_id="members")
    assert [(ci["check_in_id"], ci["author"], ci["comment"]) for ci in state["check_ins"]] == [
        (reply["check_in_id"], "ana", "good week")]


def test_the_goal_service_reports_what_is_missing(executor, call, world):
    service = worker_factory(GoalService, aggregates=executor, caller=call)
    with pytest.raises(NotFound, match="initiative 'nope' not found"):
        service.get_initiative(initiative_id="nope")
    with pytest.raises(ValidationError) as refused:
        service.get_cycle()
    assert refused.value.field == "cycle_id"


def test_the_caller_comes_from_the_context_data():
    worker_ctx = SimpleNamespace(
        data={"actor": "ana", "tenant_id": "acme", "correlation_id": "corr-7", "causation_id": "event-3"},
        call_id_stack=["gateway.check_in.1", "progress.record_check_in.2"], call_id="progress.record_check_in.2")
    assert Caller().get_dependency(worker_ctx) == CallContext(
        actor="ana", tenant_id="acme", correlation_id="corr-7", causation_id="event-3",
        call_id="progress.record_check_in.2")


def test_the_correlation_id_defaults_to_the_original_call():
    worker_ctx = SimpleNamespace(data={}, call_id_stack=["gateway.check_in.1", "progress.record_check_in.2"],
                                 call_id="progress.record_check_in.2")
    caller = Caller().get_dependency(worker_ctx)
    assert (caller.actor, caller.tenant_id, caller.correlation_id) == (None, None, "gateway.check_in.1")


def test_the_store_is_checked_not_migrated_at_start(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/okr.db"
    monkeypatch.setenv("OKR_DATABASE_URL", url)
    provider = Aggregates()
    with pytest.raises(SchemaNotCurrent, match="run `okr migrate`"):
        provider.setup()
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    provider.setup()
    try:
        assert provider.get_dependency(None) is provider.executor
    finally:
        provider.stop()


def test_import_plan_runs_the_importer_with_the_callers_context():
    service = worker_factory(GoalService)
    service.caller = CallContext(actor="ann", tenant_id="acme")
    with pytest.raises(ValidationError, match="no rows"):
        service.import_plan(rows=[])
