"""docs/api.md, "Idempotency": a command_id names one request. The same request again
answers the first outcome (already_stored) and stores nothing; the id reused for a
different request — other fields, another RPC, another principal, an import — is
FAILED_PRECONDITION with okr-rule `command_id_reused` and stores nothing."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import grpc
import pytest

from .contract_suite import auth, refusal, trailers
from okr.v1 import audit_pb2, audit_pb2_grpc, events_pb2, goal_pb2, goal_pb2_grpc, progress_pb2, progress_pb2_grpc

T = 30  # seconds: a deadline on every call, never an assertion on time


class Plan:
    """A fresh tenant with an active cycle around today, an objective and a key result,
    made through the API by its admin ``ann``; ``bob`` is a second admin. (Ids are made
    unique: whether two tenants may use one id is not what these tests are about.)"""

    def __init__(self, suite):
        self.tenant = f"t-{uuid.uuid4().hex[:10]}"
        self.c1, self.o1, self.k1 = (f"{name}-{self.tenant}" for name in ("c1", "o1", "k1"))
        self.ann = auth(suite.key(self.tenant, "admin", subject="ann"))
        self.bob = auth(suite.key(self.tenant, "admin", subject="bob"))
        self.goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
        self.progress = progress_pb2_grpc.ProgressServiceStub(suite.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
        start = date.today() - timedelta(days=45)
        self.goals.PlanCycle(goal_pb2.PlanCycleRequest(
            cycle_id=self.c1, cadence=events_pb2.CADENCE_QUARTERLY, name="This quarter", start_date=start.isoformat(),
            end_date=(start + timedelta(days=90)).isoformat()), metadata=self.ann, timeout=T)
        self.goals.CreateObjective(goal_pb2.CreateObjectiveRequest(
            objective_id=self.o1, cycle_id=self.c1, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Grow",
            owner="ann"), metadata=self.ann, timeout=T)
        self.goals.DefineKeyResult(goal_pb2.DefineKeyResultRequest(
            key_result_id=self.k1, objective_id=self.o1, title="Members 100 to 500",
            kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=100, target_value=500, owner="ann",
            due_date=(start + timedelta(days=90)).isoformat()), metadata=self.ann, timeout=T)
        self.goals.ActivateCycle(goal_pb2.ActivateCycleRequest(cycle_id=self.c1), metadata=self.ann, timeout=T)

    def check_in(self, who=None, **fields):
        request = progress_pb2.RecordCheckInRequest(**{"key_result_id": self.k1, "value": 150, "confidence": 7,
                                                       **fields})
        return self.progress.RecordCheckIn(request, metadata=who or self.ann, timeout=T)

    def history(self, stream_id=None) -> list[tuple]:
        page = self.audit.GetHistory(audit_pb2.GetHistoryRequest(stream_id=stream_id or f"kr-{self.k1}",
                                                                  page_size=1000),
                                     metadata=self.ann, timeout=T)
        return [(e.position, e.event_type, e.actor) for e in page.entries]

    def key_result(self) -> goal_pb2.KeyResult:
        return self.goals.GetKeyResult(goal_pb2.GetKeyResultRequest(key_result_id=self.k1), metadata=self.ann,
                                       timeout=T)


@pytest.fixture
def plan(suite):
    return Plan(suite)


def assert_reused(error: grpc.RpcError, command_id: str) -> None:
    """The documented refusal: FAILED_PRECONDITION, okr-rule command_id_reused, a message
    naming the id and saying it was used for a different request."""
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error.details()
    assert trailers(error).get("okr-rule") == "command_id_reused"
    assert trailers(error).get("okr-kind") == "failed_precondition"
    assert f"command_id {command_id!r} was already used for a different request" in error.details()


def test_the_same_request_twice_answers_the_first_outcome_and_stores_one_event(plan):
    first = plan.check_in(check_in_id="ci-1", comment="week 1", command_id="cmd-same")
    history = plan.history()
    again = plan.check_in(check_in_id="ci-1", comment="week 1", command_id="cmd-same")
    assert not first.already_stored and again.already_stored
    assert (again.stream_id, again.stream_version, again.first_position, again.last_position,
            list(again.event_types), again.created_id) == (
        first.stream_id, first.stream_version, first.first_position, first.last_position,
        list(first.event_types), first.created_id)
    assert plan.history() == history
    assert [e for e in history if e[1] == "okr.v1.CheckInRecorded"] == [
        (first.first_position, "okr.v1.CheckInRecorded", "ann")]


def test_a_generated_id_is_the_same_on_a_retry(plan):
    first = plan.check_in(command_id="cmd-generated")  # no check_in_id: the server makes one
    again = plan.check_in(command_id="cmd-generated")
    assert again.already_stored and again.created_id == first.created_id and first.created_id


def test_a_different_request_with_the_same_id_is_refused_and_stores_nothing(plan):
    plan.check_in(check_in_id="ci-1", value=150, command_id="cmd-diff")
    history, before = plan.history(), plan.key_result()
    error = refusal(plan.check_in, check_in_id="ci-1", value=160, command_id="cmd-diff")
    assert_reused(error, "cmd-diff")
    assert plan.history() == history and plan.key_result() == before


def test_the_same_request_by_another_principal_of_the_tenant_is_refused(plan):
    plan.check_in(check_in_id="ci-1", command_id="cmd-ann")
    history = plan.history()
    assert_reused(refusal(plan.check_in, who=plan.bob, check_in_id="ci-1", command_id="cmd-ann"), "cmd-ann")
    assert plan.history() == history


def test_an_adjustment_reusing_a_check_ins_id_is_refused_and_not_applied(plan):
    plan.check_in(command_id="cmd-cross")
    history = plan.history()
    error = refusal(plan.goals.AdjustKeyResult, goal_pb2.AdjustKeyResultRequest(
        key_result_id=plan.k1, target_value=900, reason="more ambition", command_id="cmd-cross"),
        metadata=plan.ann, timeout=T)
    assert_reused(error, "cmd-cross")
    assert plan.key_result().target_value == 500
    assert plan.history() == history


def test_a_command_on_another_aggregate_reusing_an_id_is_refused(plan):
    plan.check_in(command_id="cmd-other-stream")
    error = refusal(plan.goals.CreateObjective, goal_pb2.CreateObjectiveRequest(
        objective_id=f"o2-{plan.tenant}", cycle_id=plan.c1, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title="Another",
        owner="ann", command_id="cmd-other-stream"), metadata=plan.ann, timeout=T)
    assert_reused(error, "cmd-other-stream")
    assert refusal(plan.goals.GetObjective, goal_pb2.GetObjectiveRequest(objective_id=f"o2-{plan.tenant}"), metadata=plan.ann,
                   timeout=T).code() == grpc.StatusCode.NOT_FOUND


def rows(plan, title):
    return [goal_pb2.ImportRow(line=2, type=goal_pb2.IMPORT_ITEM_TYPE_OBJECTIVE, ref="o-imp", id=f"o-imp-{plan.tenant}",
                               cycle_id=plan.c1, level=events_pb2.OBJECTIVE_LEVEL_COMPANY, owner="ann", title=title)]


def import_plan(plan, command_id, title="Imported objective", who=None):
    return plan.goals.ImportPlan(goal_pb2.ImportPlanRequest(rows=rows(plan, title), command_id=command_id),
                                 metadata=who or plan.ann, timeout=T)


def test_an_import_resent_is_idempotent_and_other_rows_with_its_id_are_refused(plan):
    first = import_plan(plan, "imp-1")
    assert first.committed and not first.already_stored
    again = import_plan(plan, "imp-1")
    assert again.already_stored and (again.first_position, again.last_position) == (
        first.first_position, first.last_position)
    history = plan.history(f"objective-o-imp-{plan.tenant}")
    assert len(history) == 1
    assert_reused(refusal(import_plan, plan, "imp-1", title="Another title"), "imp-1")
    assert plan.history(f"objective-o-imp-{plan.tenant}") == history


def test_an_import_and_a_command_never_share_a_command_id(plan):
    plan.check_in(command_id="cmd-then-import")
    assert_reused(refusal(import_plan, plan, "cmd-then-import"), "cmd-then-import")
    assert refusal(plan.goals.GetObjective, goal_pb2.GetObjectiveRequest(objective_id=f"o-imp-{plan.tenant}"), metadata=plan.ann,
                   timeout=T).code() == grpc.StatusCode.NOT_FOUND

    import_plan(plan, "import-then-cmd")
    history = plan.history()
    assert_reused(refusal(plan.check_in, command_id="import-then-cmd"), "import-then-cmd")
    assert plan.history() == history


def test_command_ids_are_per_tenant(plan, suite):
    plan.check_in(command_id="cmd-tenant")
    other = Plan(suite)
    assert not other.check_in(command_id="cmd-tenant").already_stored
