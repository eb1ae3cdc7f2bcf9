"""Ids are per tenant (docs/api.md, "Authentication and tenant isolation"): two tenants
may use the same cycle, objective, key result, initiative and check-in ids, each reads
back its own, and nothing a tenant is answered tells an id another tenant uses from a
free one — a create succeeds exactly as with an unused id, a read is NOT_FOUND exactly
as for an id nobody has, and ImportPlan (dry run or not) accepts the same ids."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import grpc
import pytest

from .contract_suite import auth, refusal, trailers
from okr.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    events_pb2,
    goal_pb2,
    goal_pb2_grpc,
    progress_pb2,
    progress_pb2_grpc,
)

TIMEOUT = 30


class Client:
    """One tenant's calls, with its admin key (subject ``admin-<tenant>``)."""

    def __init__(self, suite, tenant: str, key: str):
        self.tenant, self.key, self.owner = tenant, key, f"admin-{tenant}"
        self.goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
        self.progress = progress_pb2_grpc.ProgressServiceStub(suite.channel)
        self.audit = audit_pb2_grpc.AuditServiceStub(suite.channel)

    def call(self, method, request):
        return method(request, metadata=auth(self.key), timeout=TIMEOUT)

    def refused(self, method, request) -> grpc.RpcError:
        return refusal(method, request, metadata=auth(self.key), timeout=TIMEOUT)


@pytest.fixture
def clients(suite):
    return [Client(suite, *suite.new_tenant("admin")) for _ in range(3)]


def _ids(tag: str) -> dict[str, str]:
    return {"cycle": f"q-{tag}", "objective": f"o-{tag}", "kr": f"k-{tag}", "initiative": f"i-{tag}",
            "check_in": f"c-{tag}"}


def _dates():
    start = date.today() - timedelta(days=30)
    return start, start + timedelta(days=89), date.today()


def _create(client: Client, ids: dict, label: str) -> dict:
    """A whole small plan with the given ids: a quarter, an objective, a key result, an
    initiative and a check-in; returns each CommandResult."""
    start, end, today = _dates()
    goals, out = client.goals, {}
    out["cycle"] = client.call(goals.PlanCycle, goal_pb2.PlanCycleRequest(
        cycle_id=ids["cycle"], cadence=events_pb2.CADENCE_QUARTERLY, name=f"{label} quarter",
        start_date=str(start), end_date=str(end)))
    client.call(goals.ActivateCycle, goal_pb2.ActivateCycleRequest(cycle_id=ids["cycle"]))
    out["objective"] = client.call(goals.CreateObjective, goal_pb2.CreateObjectiveRequest(
        objective_id=ids["objective"], cycle_id=ids["cycle"], level=events_pb2.OBJECTIVE_LEVEL_COMPANY,
        title=f"{label} grows", owner=client.owner))
    out["kr"] = client.call(goals.DefineKeyResult, goal_pb2.DefineKeyResultRequest(
        key_result_id=ids["kr"], objective_id=ids["objective"], title=f"{label} members",
        kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=0, target_value=100, owner=client.owner,
        due_date=str(end)))
    out["initiative"] = client.call(goals.CreateInitiative, goal_pb2.CreateInitiativeRequest(
        initiative_id=ids["initiative"], key_result_id=ids["kr"], title=f"{label} campaign",
        assignee=client.owner, start_date=str(start), due_date=str(end)))
    out["check_in"] = client.call(client.progress.RecordCheckIn, progress_pb2.RecordCheckInRequest(
        check_in_id=ids["check_in"], key_result_id=ids["kr"], value=10, confidence=7,
        effective_date=str(today), comment=f"{label} week"))
    return out


def _shape(result) -> tuple:
    """What a CommandResult says besides ids and positions."""
    return (result.stream_version, result.already_stored, tuple(result.event_types), result.created_id != "",
            result.first_position == result.last_position != 0)


def _read_back(client: Client, ids: dict) -> dict:
    goals = client.goals
    kr = client.call(goals.GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id=ids["kr"]))
    return {
        "cycle": client.call(goals.GetCycle, goal_pb2.GetCycleRequest(cycle_id=ids["cycle"])).name,
        "objective": client.call(goals.GetObjective, goal_pb2.GetObjectiveRequest(objective_id=ids["objective"])).title,
        "kr": kr.title,
        "check_ins": [(c.check_in_id, c.comment, c.author) for c in kr.check_ins],
        "initiative": client.call(goals.GetInitiative,
                                  goal_pb2.GetInitiativeRequest(initiative_id=ids["initiative"])).title,
    }


def test_two_tenants_create_the_same_ids_and_each_reads_back_its_own(clients):
    a, b, _ = clients
    ids = _ids("shared")
    made_a = _create(a, ids, "A")
    made_b = _create(b, ids, "B")
    for kind in made_a:
        assert made_b[kind].stream_id == made_a[kind].stream_id
        assert _shape(made_b[kind]) == _shape(made_a[kind]), kind  # as if nobody else had the id
    assert made_a["check_in"].created_id == made_b["check_in"].created_id == ids["check_in"]
    assert _read_back(a, ids) == {"cycle": "A quarter", "objective": "A grows", "kr": "A members",
                                  "check_ins": [(ids["check_in"], "A week", a.owner)], "initiative": "A campaign"}
    assert _read_back(b, ids) == {"cycle": "B quarter", "objective": "B grows", "kr": "B members",
                                  "check_ins": [(ids["check_in"], "B week", b.owner)], "initiative": "B campaign"}
    # each tenant's history of the stream is its own
    for client, label in ((a, "A"), (b, "B")):
        history = client.call(client.audit.GetHistory, audit_pb2.GetHistoryRequest(key_result_id=ids["kr"]))
        assert [e.payload["title"] for e in history.entries if "title" in e.payload] == [f"{label} members"]
        assert {e.actor for e in history.entries} == {client.owner}


def test_an_id_taken_elsewhere_answers_as_free_and_one_taken_in_mine_as_taken(clients):
    a, b, c = clients
    taken_in_a, never_used = _ids("x"), _ids(uuid.uuid4().hex[:8])
    _create(a, taken_in_a, "A")
    # B: an id A uses and one nobody uses get the same answers
    elsewhere, free = _create(b, taken_in_a, "B"), _create(b, never_used, "B")
    assert {k: _shape(r) for k, r in elsewhere.items()} == {k: _shape(r) for k, r in free.items()}
    # taken in one's own tenant: the same refusal for A and for B, whoever else has it
    start, end, _ = _dates()
    again = goal_pb2.PlanCycleRequest(cycle_id=taken_in_a["cycle"], cadence=events_pb2.CADENCE_QUARTERLY,
                                      name="again", start_date=str(start), end_date=str(end))
    refusals = [client.refused(client.goals.PlanCycle, again) for client in (a, b)]
    assert {(e.code(), e.details(), trailers(e).get("okr-rule")) for e in refusals} == {
        (grpc.StatusCode.FAILED_PRECONDITION, refusals[0].details(), "cycle_exists")}
    assert len({frozenset(trailers(e)) for e in refusals}) == 1
    # C, which has neither: every read of A's ids is NOT_FOUND exactly like a missing id
    for kind, method, request in (
        ("cycle", c.goals.GetCycle, lambda i: goal_pb2.GetCycleRequest(cycle_id=i)),
        ("objective", c.goals.GetObjective, lambda i: goal_pb2.GetObjectiveRequest(objective_id=i)),
        ("kr", c.goals.GetKeyResult, lambda i: goal_pb2.GetKeyResultRequest(key_result_id=i)),
        ("initiative", c.goals.GetInitiative, lambda i: goal_pb2.GetInitiativeRequest(initiative_id=i)),
        ("kr", c.audit.GetHistory, lambda i: audit_pb2.GetHistoryRequest(key_result_id=i)),
        ("objective", c.audit.GetHistory, lambda i: audit_pb2.GetHistoryRequest(stream_id=f"objective-{i}")),
    ):
        other, missing = c.refused(method, request(taken_in_a[kind])), c.refused(method, request(f"{kind}-nobody"))
        assert other.code() == missing.code() == grpc.StatusCode.NOT_FOUND, kind
        assert other.details().replace(taken_in_a[kind], "ID") == missing.details().replace(f"{kind}-nobody", "ID")
        t_other, t_missing = trailers(other), trailers(missing)
        assert "okr-entity" in t_other and set(t_other) == set(t_missing), kind
        assert {k: v.replace(taken_in_a[kind], "ID") for k, v in t_other.items()} == {
            k: v.replace(f"{kind}-nobody", "ID") for k, v in t_missing.items()}, kind


def _plan_rows(client: Client, ids: dict, label: str) -> list:
    start, end, _ = _dates()
    t = goal_pb2
    return [
        t.ImportRow(line=2, type=t.IMPORT_ITEM_TYPE_OBJECTIVE, ref="o", id=ids["objective"], cycle_id=ids["cycle"],
                    level=events_pb2.OBJECTIVE_LEVEL_COMPANY, owner=client.owner, title=f"{label} imports"),
        t.ImportRow(line=3, type=t.IMPORT_ITEM_TYPE_KEY_RESULT, ref="k", id=ids["kr"], parent_ref="o",
                    title=f"{label} imported members", kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, start_value=0,
                    target_value=10, owner=client.owner, due_date=str(end)),
        t.ImportRow(line=4, type=t.IMPORT_ITEM_TYPE_INITIATIVE, ref="i", id=ids["initiative"], parent_ref="k",
                    title=f"{label} imported campaign", owner=client.owner, start_date=str(start),
                    due_date=str(end)),
    ]


def test_import_plan_accepts_ids_another_tenant_uses_in_a_dry_run_and_for_real(clients):
    a, b, _ = clients
    cycles, ids = _ids("cyc"), _ids("imported")
    for client in (a, b):  # each tenant's own quarter of the same id
        start, end, _ = _dates()
        client.call(client.goals.PlanCycle, goal_pb2.PlanCycleRequest(
            cycle_id=cycles["cycle"], cadence=events_pb2.CADENCE_QUARTERLY, name="Q", start_date=str(start),
            end_date=str(end)))
        client.call(client.goals.ActivateCycle, goal_pb2.ActivateCycleRequest(cycle_id=cycles["cycle"]))
    ids["cycle"] = cycles["cycle"]
    answers = {}
    for client, label in ((a, "A"), (b, "B")):
        request = goal_pb2.ImportPlanRequest(rows=_plan_rows(client, ids, label))
        request.dry_run = True
        dry = client.call(client.goals.ImportPlan, request)
        request.dry_run = False
        real = client.call(client.goals.ImportPlan, request)
        answers[label] = (dry, real)
        assert list(dry.errors) == [] and not dry.committed, dry.errors
        assert list(real.errors) == [] and real.committed, real.errors
        assert [i.id for i in real.items] == [i.id for i in dry.items] == [
            ids["objective"], ids["kr"], ids["initiative"]]
    (dry_a, real_a), (dry_b, real_b) = answers["A"], answers["B"]
    strip = lambda r: (r.dry_run, r.committed, r.already_stored, r.rows, r.objectives,  # noqa: E731
                       r.key_results, r.initiatives, [(i.line, i.type, i.ref, i.id) for i in r.items])
    assert strip(dry_b) == strip(dry_a) and strip(real_b) == strip(real_a)
    for client, label in ((a, "A"), (b, "B")):
        kr = client.call(client.goals.GetKeyResult, goal_pb2.GetKeyResultRequest(key_result_id=ids["kr"]))
        assert (kr.title, kr.objective_id, kr.cycle_id) == (f"{label} imported members", ids["objective"],
                                                           ids["cycle"])
        # importing again in one's own tenant: the ids are taken there now (row errors)
        request = goal_pb2.ImportPlanRequest(rows=_plan_rows(client, ids, f"{label} again"), dry_run=True)
        again = client.call(client.goals.ImportPlan, request)
        assert [(e.line, e.field) for e in again.errors][:1] == [(2, "objective_exists")]
