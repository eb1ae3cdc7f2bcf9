"""A small plan written through the public API, for the contract tests of the read RPCs
(test_notfound_reads.py, test_diff_first_review.py): one active cycle around today, a
team objective, a key result, an initiative under it and one check-in today."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import grpc

from .contract_suite import auth
from okr.v1 import events_pb2, goal_pb2, goal_pb2_grpc, progress_pb2, progress_pb2_grpc, reporting_pb2, \
    reporting_pb2_grpc
from tests.waiting import wait_until


@dataclass(frozen=True)
class Plan:
    cycle_id: str
    objective_id: str
    key_result_id: str
    initiative_id: str
    check_in_id: str
    team_id: str
    owner: str
    #: CommandResult.last_position of each command, in order (cycle planned … check-in)
    positions: tuple[int, ...]


def write_plan(channel, key: str, prefix: str) -> Plan:
    """The plan of the module doc in the key's tenant; ids start with ``prefix``."""
    goals, progress = goal_pb2_grpc.GoalServiceStub(channel), progress_pb2_grpc.ProgressServiceStub(channel)
    today = date.today()
    p = Plan(f"{prefix}-cycle", f"{prefix}-objective", f"{prefix}-kr", f"{prefix}-initiative", f"{prefix}-ci",
             f"{prefix}-team", f"{prefix}-owner", ())
    md = dict(metadata=auth(key), timeout=30)
    results = [
        goals.PlanCycle(goal_pb2.PlanCycleRequest(
            cycle_id=p.cycle_id, cadence=events_pb2.CADENCE_QUARTERLY, name="This quarter",
            start_date=(today - timedelta(days=30)).isoformat(), end_date=(today + timedelta(days=60)).isoformat()),
            **md),
        goals.ActivateCycle(goal_pb2.ActivateCycleRequest(cycle_id=p.cycle_id), **md),
        goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
            objective_id=p.objective_id, cycle_id=p.cycle_id, level=events_pb2.OBJECTIVE_LEVEL_TEAM,
            title="Delight customers", owner=p.owner, team_id=p.team_id), **md),
        goals.DefineKeyResult(goal_pb2.DefineKeyResultRequest(
            key_result_id=p.key_result_id, objective_id=p.objective_id, title="NPS 20 → 40",
            kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=20, target_value=40, owner=p.owner,
            due_date=(today + timedelta(days=60)).isoformat()), **md),
        goals.CreateInitiative(goal_pb2.CreateInitiativeRequest(
            initiative_id=p.initiative_id, key_result_id=p.key_result_id, title="Call ten customers",
            assignee=p.owner, start_date=today.isoformat(), due_date=(today + timedelta(days=14)).isoformat()),
            **md),
        progress.RecordCheckIn(progress_pb2.RecordCheckInRequest(
            check_in_id=p.check_in_id, key_result_id=p.key_result_id, value=25, confidence=7,
            effective_date=today.isoformat(), comment="first survey"), **md),
    ]
    return Plan(**{**p.__dict__, "positions": tuple(r.last_position for r in results)})


def checked_in(channel, key: str, key_result_id: str) -> bool:
    """Whether the key result's status read model shows a check-in yet."""
    request = reporting_pb2.GetKeyResultStatusRequest(key_result_id=key_result_id)
    try:
        status = reporting_pb2_grpc.ReportingServiceStub(channel).GetKeyResultStatus(
            request, metadata=auth(key), timeout=10)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.NOT_FOUND:
            raise
        return False
    return status.HasField("current_value")


def wait_for_read_models(channel, key: str, plan: Plan) -> None:
    """Until the reporting read models hold the plan's check-in (its last event; the
    reporting consumer applies events in order): they are eventually consistent."""
    wait_until(lambda: checked_in(channel, key, plan.key_result_id), timeout=120, interval=0.2,
               message="the reporting read models to hold the plan's check-in")
