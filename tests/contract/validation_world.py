"""A small plan for the validation contract tests (test_validation_*.py), made through
the public API only: a cycle around today, a company objective with a key result, a
team objective aligned to it with a key result of its own."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

import grpc

from .contract_suite import auth
from okr.v1 import events_pb2, goal_pb2, goal_pb2_grpc, reporting_pb2, reporting_pb2_grpc
from tests.waiting import wait_until


@dataclass
class Plan:
    key: str
    cycle_id: str
    parent_id: str
    child_id: str
    parent_kr_id: str
    child_kr_id: str


def stubs(channel) -> tuple[goal_pb2_grpc.GoalServiceStub, reporting_pb2_grpc.ReportingServiceStub]:
    return goal_pb2_grpc.GoalServiceStub(channel), reporting_pb2_grpc.ReportingServiceStub(channel)


def make_plan(suite, key: str) -> Plan:
    """The plan of the module doc in a tenant of ``key``; returns once the reporting read
    model shows the child objective under its parent."""
    goals, reports = stubs(suite.channel)
    md = auth(key)
    tag = uuid.uuid4().hex[:8]
    today = date.today()
    plan = Plan(key, f"cyc-{tag}", f"obj-{tag}", f"child-{tag}", f"kr-{tag}", f"ckr-{tag}")
    goals.PlanCycle(goal_pb2.PlanCycleRequest(
        cycle_id=plan.cycle_id, cadence=events_pb2.CADENCE_QUARTERLY, name=f"Q {tag}",
        start_date=(today - timedelta(days=30)).isoformat(), end_date=(today + timedelta(days=60)).isoformat()),
        metadata=md, timeout=30)
    goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
        objective_id=plan.parent_id, cycle_id=plan.cycle_id, level=events_pb2.OBJECTIVE_LEVEL_COMPANY,
        title="Grow", owner="ceo"), metadata=md, timeout=30)
    goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
        objective_id=plan.child_id, cycle_id=plan.cycle_id, level=events_pb2.OBJECTIVE_LEVEL_TEAM,
        title="Sell more", owner="lead", team_id="sales", parent_objective_id=plan.parent_id),
        metadata=md, timeout=30)
    for kr_id, objective_id in ((plan.parent_kr_id, plan.parent_id), (plan.child_kr_id, plan.child_id)):
        goals.DefineKeyResult(goal_pb2.DefineKeyResultRequest(
            key_result_id=kr_id, objective_id=objective_id, title="Customers", start_value=0, target_value=100,
            kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, owner="lead",
            due_date=(today + timedelta(days=50)).isoformat()), metadata=md, timeout=30)

    def child_rolled_up():
        try:
            rollup = reports.GetObjectiveRollup(reporting_pb2.GetObjectiveRollupRequest(
                objective_id=plan.parent_id, include_children=True), metadata=md, timeout=10)
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.NOT_FOUND:
                return False
            raise
        return [c.id for c in rollup.children] == [plan.child_id]

    wait_until(child_rolled_up, timeout=60, interval=0.1, message="the child objective in the roll-up")
    return plan
