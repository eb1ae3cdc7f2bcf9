"""Every limit of docs/api.md's "Limits" table, at the limit (accepted) and one past it
(INVALID_ARGUMENT naming the field in ``okr-field``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

import grpc
import pytest

from .contract_suite import auth, code_of, refusal, trailers
from okr.v1 import (audit_pb2, audit_pb2_grpc, directory_pb2, directory_pb2_grpc, events_pb2, goal_pb2, progress_pb2,
                    progress_pb2_grpc, stream_pb2, stream_pb2_grpc)
from .validation_world import make_plan, stubs


@pytest.fixture(scope="module")
def plan(suite):
    _, key = suite.new_tenant("admin")
    return make_plan(suite, key)


@dataclass
class Limit:
    field: str
    at_limit: object
    past_limit: object
    #: (suite, plan, value) -> (call, request)
    call: Callable
    #: the code of the call at the limit (OK, or NOT_FOUND for a read of an id that is
    #: well-formed but not there)
    accepted: grpc.StatusCode = grpc.StatusCode.OK


def _goals(suite):
    return stubs(suite.channel)[0]


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def plan_cycle(**fields):
    def call(suite, plan, value):
        request = goal_pb2.PlanCycleRequest(cadence=events_pb2.CADENCE_MONTHLY, name="Month",
                                            start_date="2030-01-01", end_date="2030-01-31")
        for name, v in fields.items():
            setattr(request, name, v(value) if callable(v) else v)
        return _goals(suite).PlanCycle, request
    return call


def create_objective(field):
    def call(suite, plan, value):
        request = goal_pb2.CreateObjectiveRequest(cycle_id=plan.cycle_id, level=events_pb2.OBJECTIVE_LEVEL_COMPANY,
                                                  title="Objective", owner="ceo")
        setattr(request, field, value)
        return _goals(suite).CreateObjective, request
    return call


def define_key_result(field):
    def call(suite, plan, value):
        request = goal_pb2.DefineKeyResultRequest(
            objective_id=plan.parent_id, title="KR", kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=0,
            target_value=10, owner="lead", due_date=_due(suite, plan))
        setattr(request, field, value)
        return _goals(suite).DefineKeyResult, request
    return call


def _due(suite, plan) -> str:
    cycle = _goals(suite).GetCycle(goal_pb2.GetCycleRequest(cycle_id=plan.cycle_id), metadata=auth(plan.key),
                                   timeout=30)
    return cycle.end_date


def record_check_in(field):
    def call(suite, plan, value):
        request = progress_pb2.RecordCheckInRequest(key_result_id=plan.child_kr_id, value=1, confidence=5)
        setattr(request, field, value)
        return progress_pb2_grpc.ProgressServiceStub(suite.channel).RecordCheckIn, request
    return call


def adjust_reason(suite, plan, value):
    return _goals(suite).AdjustKeyResult, goal_pb2.AdjustKeyResultRequest(
        key_result_id=plan.parent_kr_id, weight=1 + len(value) / 10_000, reason=value)


def get_history_page(suite, plan, value):
    return audit_pb2_grpc.AuditServiceStub(suite.channel).GetHistory, audit_pb2.GetHistoryRequest(
        key_result_id=plan.parent_kr_id, page_size=value)


def get_cycle(suite, plan, value):
    return _goals(suite).GetCycle, goal_pb2.GetCycleRequest(cycle_id=value)


def stream_types(suite, plan, value):
    stub = stream_pb2_grpc.EventStreamStub(suite.channel)
    return (lambda request, **kw: list(stub.StreamEvents(request, **kw))), stream_pb2.StreamEventsRequest(
        from_position=1, follow=False, event_types=["okr.v1.InitiativeSlipped"] * value)  # none in this tenant


def import_ref(suite, plan, value):
    """ImportRow.ref: a handle of the file, not stored, so only the limit of every string."""
    return _goals(suite).ImportPlan, goal_pb2.ImportPlanRequest(dry_run=True, rows=[goal_pb2.ImportRow(
        type=goal_pb2.IMPORT_ITEM_TYPE_OBJECTIVE, ref=value, cycle_id=plan.cycle_id,
        level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Objective", owner="ceo")])


def import_rows(suite, plan, value):
    rows = [goal_pb2.ImportRow(type=goal_pb2.IMPORT_ITEM_TYPE_OBJECTIVE, ref=f"o{i}", cycle_id=plan.cycle_id,
                               level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title=f"Objective {i}", owner="ceo")
            for i in range(value)]
    return _goals(suite).ImportPlan, goal_pb2.ImportPlanRequest(rows=rows, dry_run=True)


def add_person(field):
    def call(suite, plan, value):
        request = directory_pb2.AddPersonRequest(display_name="Person")  # a generated id each time
        setattr(request, field, value)
        return directory_pb2_grpc.DirectoryServiceStub(suite.channel).AddPerson, request
    return call


def list_people(field):
    def call(suite, plan, value):
        request = directory_pb2.ListPeopleRequest()
        setattr(request, field, value)
        return directory_pb2_grpc.DirectoryServiceStub(suite.channel).ListPeople, request
    return call


LIMITS = {
    "id length": Limit("cycle_id", lambda: "c" * 92 + _uid(), lambda: "c" * 93 + _uid(),
                       plan_cycle(cycle_id=lambda v: v)),
    "id characters": Limit("cycle_id", lambda: f"A-z_0.9:x@{_uid()}", lambda: f"a/{_uid()}",
                           plan_cycle(cycle_id=lambda v: v)),
    "id first character": Limit("cycle_id", lambda: f"0{_uid()}", lambda: f"-{_uid()}",
                                plan_cycle(cycle_id=lambda v: v)),
    "cycle name": Limit("name", "n" * 200, "n" * 201, plan_cycle(name=lambda v: v)),
    "objective title": Limit("title", "t" * 200, "t" * 201, create_objective("title")),
    "objective description": Limit("description", "d" * 4000, "d" * 4001, create_objective("description")),
    "objective owner": Limit("owner", "o" * 200, "o" * 201, create_objective("owner")),
    "team id": Limit("team_id", "t" * 100, "t" * 101, create_objective("team_id")),
    "key result unit": Limit("unit", "u" * 30, "u" * 31, define_key_result("unit")),
    "key result weight": Limit("weight", 1000.0, 1000.001, define_key_result("weight")),
    "key result weight low": Limit("weight", 0.0001, 0.0, define_key_result("weight")),
    "check-in comment": Limit("comment", "c" * 4000, "c" * 4001, record_check_in("comment")),
    "check-in confidence": Limit("confidence", 10, 11, record_check_in("confidence")),
    "check-in confidence low": Limit("confidence", 0, -1, record_check_in("confidence")),
    "command id": Limit("command_id", lambda: "k" * 192 + _uid(), lambda: "k" * 193 + _uid(),
                        record_check_in("command_id")),
    "command id characters": Limit("command_id", lambda: f"~!{_uid()}", lambda: f"a b{_uid()}",
                                   record_check_in("command_id")),
    "reason": Limit("reason", "r" * 2000, "r" * 2001, adjust_reason),
    "history page size": Limit("page_size", 1000, 1001, get_history_page),
    "read id length": Limit("cycle_id", "x" * 100, "x" * 101, get_cycle, grpc.StatusCode.NOT_FOUND),
    "any string": Limit("rows[0].ref", "r" * 10_000, "r" * 10_001, import_ref),
    "any repeated field": Limit("event_types", 1000, 1001, stream_types),
    "import rows": Limit("rows", 500, 501, import_rows),
    "person display name": Limit("display_name", "n" * 200, "n" * 201, add_person("display_name")),
    "person e-mail": Limit("email", lambda: f"{_uid()}{'e' * 56}@{'d' * 181}.example",
                           lambda: f"{_uid()}{'e' * 56}@{'d' * 182}.example", add_person("email")),
    "person user name": Limit("user_name", lambda: "u" * 192 + _uid(), lambda: "u" * 193 + _uid(),
                              add_person("user_name")),
    "directory page size": Limit("page_size", 500, 501, list_people("page_size")),
    "directory query": Limit("query", "q" * 200, "q" * 201, list_people("query")),
}


def _value(v):
    return v() if callable(v) else v


@pytest.mark.parametrize("limit", LIMITS.values(), ids=LIMITS.keys())
def test_a_value_at_the_limit_is_accepted(suite, plan, limit):
    call, request = limit.call(suite, plan, _value(limit.at_limit))
    assert code_of(call, request, metadata=auth(plan.key), timeout=60) == limit.accepted


@pytest.mark.parametrize("limit", LIMITS.values(), ids=LIMITS.keys())
def test_a_value_one_past_the_limit_is_invalid_argument_naming_the_field(suite, plan, limit):
    call, request = limit.call(suite, plan, _value(limit.past_limit))
    error = refusal(call, request, metadata=auth(plan.key), timeout=60)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert trailers(error).get("okr-field") == limit.field, (trailers(error), error.details())
