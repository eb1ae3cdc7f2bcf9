"""Issue 18 point 3: every read RPC that names a cycle, objective, key result, initiative
or stream answers NOT_FOUND (``okr-entity``, ``okr-id``) when the caller's tenant has no
such thing — another tenant's id exactly like an id that exists nowhere — while team,
owner and person are filters that may select nothing (docs/api.md "Unknown ids and
filters"). ReplayAsOf: the entity must have existed at the instant replayed."""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.protobuf import json_format

from .contract_suite import auth, code_of, refusal, trailers
from okr.v1 import (audit_pb2, audit_pb2_grpc, goal_pb2, goal_pb2_grpc, progress_pb2_grpc, reporting_pb2,
                    reporting_pb2_grpc)
from .reads_plan import wait_for_read_models, write_plan

#: (service stub, method, request for an id, entity kind, the plan's id it names, okr-id of an id)
READS = [
    ("goal", "GetCycle", lambda i: goal_pb2.GetCycleRequest(cycle_id=i), "cycle", "cycle_id"),
    ("goal", "GetObjective", lambda i: goal_pb2.GetObjectiveRequest(objective_id=i), "objective", "objective_id"),
    ("goal", "GetKeyResult", lambda i: goal_pb2.GetKeyResultRequest(key_result_id=i), "key result",
     "key_result_id"),
    ("goal", "GetInitiative", lambda i: goal_pb2.GetInitiativeRequest(initiative_id=i), "initiative",
     "initiative_id"),
    ("progress", "GetKeyResult", lambda i: goal_pb2.GetKeyResultRequest(key_result_id=i), "key result",
     "key_result_id"),
    ("reporting", "GetBoard", lambda i: reporting_pb2.GetBoardRequest(cycle_id=i), "cycle", "cycle_id"),
    ("reporting", "GetTeamDashboard", lambda i: reporting_pb2.GetTeamDashboardRequest(team_id="t", cycle_id=i),
     "cycle", "cycle_id"),
    ("reporting", "GetPersonDashboard", lambda i: reporting_pb2.GetPersonDashboardRequest(person="p", cycle_id=i),
     "cycle", "cycle_id"),
    ("reporting", "GetScorecard", lambda i: reporting_pb2.GetScorecardRequest(cycle_id=i), "cycle", "cycle_id"),
    ("reporting", "GetKeyResultStatus", lambda i: reporting_pb2.GetKeyResultStatusRequest(key_result_id=i),
     "key result", "key_result_id"),
    ("reporting", "ListKeyResultStatuses", lambda i: reporting_pb2.ListKeyResultStatusesRequest(cycle_id=i),
     "cycle", "cycle_id"),
    ("reporting", "GetObjectiveRollup", lambda i: reporting_pb2.GetObjectiveRollupRequest(objective_id=i),
     "objective", "objective_id"),
    ("reporting", "GetAlignmentTree", lambda i: reporting_pb2.GetAlignmentTreeRequest(cycle_id=i), "cycle",
     "cycle_id"),
    ("audit", "GetHistory", lambda i: audit_pb2.GetHistoryRequest(key_result_id=i), "stream", "key_result_id"),
    ("audit", "GetHistory", lambda i: audit_pb2.GetHistoryRequest(stream_id=f"initiative-{i}"), "stream",
     "initiative_id"),
]

#: ReplayAsOf: (read model, params for an id, the plan's id it names, entity kind)
REPLAYS = [
    (audit_pb2.READ_MODEL_BOARD, lambda i: {"cycle_id": i}, "cycle_id", "cycle"),
    (audit_pb2.READ_MODEL_TEAM_DASHBOARD, lambda i: {"team_id": "t", "cycle_id": i}, "cycle_id", "cycle"),
    (audit_pb2.READ_MODEL_PERSON_DASHBOARD, lambda i: {"person": "p", "cycle_id": i}, "cycle_id", "cycle"),
    (audit_pb2.READ_MODEL_SCORECARD, lambda i: {"cycle_id": i}, "cycle_id", "cycle"),
    (audit_pb2.READ_MODEL_KR_HISTORY, lambda i: {"key_result_id": i}, "key_result_id", "key result"),
    (audit_pb2.READ_MODEL_KEY_RESULT_STATUS, lambda i: {"key_result_id": i}, "key_result_id", "key result"),
    (audit_pb2.READ_MODEL_KEY_RESULT_STATUSES, lambda i: {"cycle_id": i}, "cycle_id", "cycle"),
    (audit_pb2.READ_MODEL_OBJECTIVE_ROLLUP, lambda i: {"objective_id": i}, "objective_id", "objective"),
    (audit_pb2.READ_MODEL_ALIGNMENT_TREE, lambda i: {"cycle_id": i}, "cycle_id", "cycle"),
]


@pytest.fixture(scope="module")
def world(suite):
    """Two tenants with a plan each (ids of their own), the reporting read models caught up."""
    stubs = {"goal": goal_pb2_grpc.GoalServiceStub(suite.channel),
             "progress": progress_pb2_grpc.ProgressServiceStub(suite.channel),
             "reporting": reporting_pb2_grpc.ReportingServiceStub(suite.channel),
             "audit": audit_pb2_grpc.AuditServiceStub(suite.channel)}
    (_, mine), (_, theirs) = suite.new_tenant("admin"), suite.new_tenant("admin")
    plans = {key: write_plan(suite.channel, key, f"nf-{uuid.uuid4().hex[:8]}") for key in (mine, theirs)}
    for key, plan in plans.items():
        wait_for_read_models(suite.channel, key, plan)
    return stubs, mine, plans[mine], theirs, plans[theirs]


def replay(stubs, key, read_model, params, position):
    request = audit_pb2.ReplayAsOfRequest(read_model=read_model, at={"position": position})
    request.params.update(params)
    return stubs["audit"].ReplayAsOf(request, metadata=auth(key), timeout=30)


def seen(error: grpc.RpcError, the_id: str) -> tuple:
    """What a caller sees of a refusal, with the id it named replaced by a placeholder."""
    return (error.code(), error.details().replace(the_id, "<id>"),
            {k: v.replace(the_id, "<id>") for k, v in trailers(error).items()})


@pytest.mark.parametrize("service, method, request_for, kind, field", READS,
                         ids=[f"{r[1]}-{r[4]}" if r[1] == "GetHistory" else f"{r[0]}.{r[1]}" for r in READS])
def test_an_id_the_tenant_does_not_have_is_not_found_another_tenants_exactly_like_a_missing_one(
        world, service, method, request_for, kind, field):
    stubs, mine, my_plan, theirs, _ = world
    call = getattr(stubs[service], method)
    own_id, missing_id = getattr(my_plan, field), f"no-such-{uuid.uuid4().hex[:8]}"
    assert code_of(call, request_for(own_id), metadata=auth(mine), timeout=30) == grpc.StatusCode.OK
    other = refusal(call, request_for(own_id), metadata=auth(theirs), timeout=30)
    missing = refusal(call, request_for(missing_id), metadata=auth(theirs), timeout=30)
    assert missing.code() == grpc.StatusCode.NOT_FOUND, missing.details()
    stream = {"GetHistory": f"{'kr' if field == 'key_result_id' else 'initiative'}-{missing_id}"}.get(method)
    assert trailers(missing) == {"okr-kind": "not_found", "okr-entity": kind, "okr-id": stream or missing_id}
    assert missing.details() == f"{kind} {stream or missing_id!r} not found"
    assert seen(other, own_id) == seen(missing, missing_id)


@pytest.mark.parametrize("read_model, params_for, field, kind", REPLAYS,
                         ids=[audit_pb2.ReadModel.Name(r[0]) for r in REPLAYS])
def test_replay_as_of_is_not_found_for_an_entity_that_did_not_exist_at_the_instant(
        world, read_model, params_for, field, kind):
    stubs, mine, my_plan, theirs, their_plan = world
    own_id, missing_id = getattr(my_plan, field), f"no-such-{uuid.uuid4().hex[:8]}"
    created = {"cycle_id": 0, "objective_id": 2, "key_result_id": 3}[field]  # index in Plan.positions
    at_created, before = my_plan.positions[created], my_plan.positions[created] - 1
    # exists at the instant (and after): OK
    assert replay(stubs, mine, read_model, params_for(own_id), at_created).HasField("result")
    assert replay(stubs, mine, read_model, params_for(own_id), my_plan.positions[-1]).HasField("result")
    # the instant before it was created: NOT_FOUND, saying so
    error = refusal(replay, stubs, mine, read_model, params_for(own_id), before)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"{kind} {own_id!r} not found as of position {before}: it did not exist then"
    assert trailers(error) == {"okr-kind": "not_found", "okr-entity": kind, "okr-id": own_id}
    # another tenant's id, at an instant where it exists, exactly like an id that exists nowhere
    at = max(my_plan.positions[-1], their_plan.positions[-1])
    other = refusal(replay, stubs, theirs, read_model, params_for(own_id), at)
    missing = refusal(replay, stubs, theirs, read_model, params_for(missing_id), at)
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    assert trailers(missing) == {"okr-kind": "not_found", "okr-entity": kind, "okr-id": missing_id}
    assert seen(other, own_id) == seen(missing, missing_id)


def test_team_owner_and_person_are_filters_a_value_that_names_nothing_selects_nothing(world):
    stubs, mine, my_plan, _, _ = world
    reporting, md = stubs["reporting"], dict(metadata=auth(mine), timeout=30)
    board = reporting.GetBoard(reporting_pb2.GetBoardRequest(cycle_id=my_plan.cycle_id), **md)
    assert [c.id for col in board.key_results for c in col.cards] == [my_plan.key_result_id]
    for request in (reporting_pb2.GetBoardRequest(team_id="no-such-team"),
                    reporting_pb2.GetBoardRequest(owner="nobody"),
                    reporting_pb2.GetBoardRequest(cycle_id=my_plan.cycle_id, team_id="no-such-team")):
        board = reporting.GetBoard(request, **md)
        assert not [c for col in list(board.key_results) + list(board.initiatives) for c in col.cards]
    team = reporting.GetTeamDashboard(reporting_pb2.GetTeamDashboardRequest(team_id="no-such-team"), **md)
    person = reporting.GetPersonDashboard(reporting_pb2.GetPersonDashboardRequest(person="nobody"), **md)
    for dashboard in (team, person):
        assert not dashboard.objectives and not dashboard.key_results and not dashboard.initiatives
    own = reporting.GetTeamDashboard(reporting_pb2.GetTeamDashboardRequest(team_id=my_plan.team_id), **md)
    assert [o.objective_id for o in own.objectives] == [my_plan.objective_id]
    result = replay(stubs, mine, audit_pb2.READ_MODEL_BOARD, {"team_id": "no-such-team"}, my_plan.positions[-1])
    columns = json_format.MessageToDict(result.result)["key_results"]
    assert columns and not any(column["cards"] for column in columns)
