"""Floating-point fields (docs/api.md, "Limits"): NaN and ±infinity anywhere in a request —
a plain field, a nested or repeated message, a google.protobuf.Struct — are
INVALID_ARGUMENT naming the field by its path (``okr-field``); GetObjectiveRollup's
``child_weight`` (and ReplayAsOf's ``params.child_weight``) must be > 0 and at most 1000."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import struct_pb2

from .contract_suite import auth, refusal, trailers
from okr.v1 import (audit_pb2, audit_pb2_grpc, common_pb2, events_pb2, goal_pb2, goal_pb2_grpc, progress_pb2,
                    progress_pb2_grpc, reporting_pb2)
from .validation_world import make_plan, stubs

NOT_FINITE = [math.nan, math.inf, -math.inf]


@pytest.fixture(scope="module")
def plan(suite):
    _, key = suite.new_tenant("admin")
    return make_plan(suite, key)


def _refused_naming(error: grpc.RpcError, field: str) -> None:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert trailers(error)["okr-field"] == field, trailers(error)
    assert error.details().startswith(f"{field}: "), error.details()


@pytest.mark.parametrize("weight", NOT_FINITE + [-1.0, -0.5, 0.0, 1000.5], ids=str)
def test_a_child_weight_that_is_not_a_positive_finite_number_is_invalid_argument(suite, plan, weight):
    _, reports = stubs(suite.channel)
    error = refusal(reports.GetObjectiveRollup, reporting_pb2.GetObjectiveRollupRequest(
        objective_id=plan.parent_id, include_children=True, child_weight=weight), metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "child_weight")


@pytest.mark.parametrize("weight", [0.001, 2.5, 1000.0], ids=str)
def test_a_child_weight_within_its_range_weighs_the_child(suite, plan, weight):
    _, reports = stubs(suite.channel)
    rollup = reports.GetObjectiveRollup(reporting_pb2.GetObjectiveRollupRequest(
        objective_id=plan.parent_id, include_children=True, child_weight=weight), metadata=auth(plan.key), timeout=30)
    assert [(c.id, c.weight) for c in rollup.children] == [(plan.child_id, weight)]


@pytest.mark.parametrize("weight", NOT_FINITE + [-2.0, 0.0], ids=str)
def test_replay_as_of_objective_rollup_refuses_a_child_weight_out_of_range(suite, plan, weight):
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    params = struct_pb2.Struct()
    params.update({"objective_id": plan.parent_id, "include_children": True})
    params.fields["child_weight"].number_value = weight
    error = refusal(audit.ReplayAsOf, audit_pb2.ReplayAsOfRequest(
        read_model=audit_pb2.READ_MODEL_OBJECTIVE_ROLLUP, at=common_pb2.Instant(position=10 ** 12), params=params),
        metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "params.child_weight")


@pytest.mark.parametrize("value", NOT_FINITE, ids=str)
def test_a_check_in_value_that_is_not_finite_is_invalid_argument(suite, plan, value):
    progress = progress_pb2_grpc.ProgressServiceStub(suite.channel)
    error = refusal(progress.RecordCheckIn, progress_pb2.RecordCheckInRequest(
        key_result_id=plan.child_kr_id, value=value, confidence=5), metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "value")


@pytest.mark.parametrize("field", ["start_value", "target_value", "weight"])
def test_a_key_result_number_that_is_not_finite_is_invalid_argument(suite, plan, field):
    goals, _ = stubs(suite.channel)
    request = goal_pb2.DefineKeyResultRequest(
        objective_id=plan.parent_id, title="Infinite", kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO,
        start_value=0, target_value=10, owner="lead", due_date="2000-01-01")
    setattr(request, field, math.inf)
    _refused_naming(refusal(goals.DefineKeyResult, request, metadata=auth(plan.key), timeout=30), field)


def test_a_number_in_a_repeated_nested_message_is_named_by_its_path(suite, plan):
    goals = goal_pb2_grpc.GoalServiceStub(suite.channel)
    rows = [goal_pb2.ImportRow(type=goal_pb2.IMPORT_ITEM_TYPE_OBJECTIVE, ref=f"o{i}", cycle_id=plan.cycle_id,
                               level=events_pb2.OBJECTIVE_LEVEL_COMPANY, title=f"O {i}", owner="ceo")
            for i in range(3)]
    rows.append(goal_pb2.ImportRow(type=goal_pb2.IMPORT_ITEM_TYPE_KEY_RESULT, ref="k", parent_ref="o0",
                                   kind=events_pb2.KEY_RESULT_KIND_INCREASE_TO, title="K", owner="ceo",
                                   start_value=0, target_value=math.nan, due_date="2000-01-01"))
    error = refusal(goals.ImportPlan, goal_pb2.ImportPlanRequest(rows=rows, dry_run=True),
                    metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "rows[3].target_value")


def test_a_number_nested_in_a_struct_list_is_named_by_its_path(suite, plan):
    audit = audit_pb2_grpc.AuditServiceStub(suite.channel)
    params = struct_pb2.Struct()
    params.update({"cycle_id": plan.cycle_id, "deep": {"list": [1, 2]}})
    params.fields["deep"].struct_value.fields["list"].list_value.values[1].number_value = -math.inf
    error = refusal(audit.ReplayAsOf, audit_pb2.ReplayAsOfRequest(
        read_model=audit_pb2.READ_MODEL_BOARD, at=common_pb2.Instant(position=1), params=params),
        metadata=auth(plan.key), timeout=30)
    _refused_naming(error, "params.deep.list[1]")


def test_the_checks_come_from_the_descriptor_so_every_float_field_of_every_request_is_covered(suite, plan):
    """Every double/float field of every request message of every RPC, set to NaN alone,
    is refused naming that field (a new RPC or field is covered without a change)."""
    from okr.v1 import stream_pb2  # noqa: F401 - its services are part of the API too

    import importlib

    checked = []
    for name in ("goal", "progress", "reporting", "audit", "stream"):
        module = importlib.import_module(f"okr.v1.{name}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                floats = [f for f in method.input_type.fields if f.type in (f.TYPE_DOUBLE, f.TYPE_FLOAT)]
                for field in floats:
                    request = _request_class(method.input_type)()
                    setattr(request, field.name, math.nan)
                    call = suite.channel.unary_unary(f"/{service.full_name}/{method.name}",
                                                     request_serializer=lambda m: m.SerializeToString(),
                                                     response_deserializer=None) \
                        if not method.server_streaming else suite.channel.unary_stream(
                            f"/{service.full_name}/{method.name}", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=None)
                    try:
                        result = call(request, metadata=auth(plan.key), timeout=30)
                        if method.server_streaming:
                            list(result)
                        pytest.fail(f"{method.full_name} accepted {field.name} = NaN")
                    except grpc.RpcError as e:
                        _refused_naming(e, field.name)
                    checked.append(f"{method.name}.{field.name}")
    assert {"RecordCheckIn.value", "DefineKeyResult.weight", "GetObjectiveRollup.child_weight",
            "AdjustKeyResult.target_value"} <= set(checked), checked


def _request_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)
