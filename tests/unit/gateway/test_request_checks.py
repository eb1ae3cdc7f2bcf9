"""The gateway's generic request checks (request_checks.py): every rule from the
descriptor, the first problem named by its path."""

from __future__ import annotations

import math

import pytest
from google.protobuf import struct_pb2

from okr.v1 import audit_pb2, common_pb2, goal_pb2, reporting_pb2, stream_pb2
from okr_services.gateway import request_checks
from okr_services.gateway.request_checks import MAX_REPEATED, MAX_STRING, RequestError, check, decode


def _field_of(message) -> str:
    with pytest.raises(RequestError) as caught:
        check(message)
    return caught.value.field


def test_a_valid_request_passes():
    check(goal_pb2.DefineKeyResultRequest(objective_id="o", title="t", start_value=-1e300, target_value=1e300,
                                          weight=0.5))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf], ids=str)
def test_a_float_that_is_not_finite_is_named(value):
    assert _field_of(reporting_pb2.GetObjectiveRollupRequest(child_weight=value)) == "child_weight"


def test_a_float_in_a_repeated_message_is_named_by_index():
    rows = [goal_pb2.ImportRow(ref="a"), goal_pb2.ImportRow(ref="b", weight=math.nan)]
    assert _field_of(goal_pb2.ImportPlanRequest(rows=rows)) == "rows[1].weight"


def test_numbers_in_a_struct_are_named_by_key_and_index():
    params = struct_pb2.Struct()
    params.update({"a": {"b": [1, 2, 3]}})
    params.fields["a"].struct_value.fields["b"].list_value.values[2].number_value = math.inf
    assert _field_of(audit_pb2.ReplayAsOfRequest(params=params)) == "params.a.b[2]"


@pytest.mark.parametrize("seconds,nanos", [(0, -1), (0, 1_000_000_000), (request_checks.MAX_TIMESTAMP_SECONDS + 1, 0),
                                           (request_checks.MIN_TIMESTAMP_SECONDS - 1, 0)])
def test_a_timestamp_out_of_its_range_is_named_by_its_path(seconds, nanos):
    request = reporting_pb2.GetDiffRequest(since=common_pb2.Instant())
    request.since.time.seconds, request.since.time.nanos = seconds, nanos
    assert _field_of(request) == "since.time"


def test_the_edges_of_the_timestamp_range_pass():
    for seconds, nanos in ((request_checks.MIN_TIMESTAMP_SECONDS, 0), (request_checks.MAX_TIMESTAMP_SECONDS, 999_999_999)):
        request = audit_pb2.ReplayAsOfRequest()
        request.at.time.seconds, request.at.time.nanos = seconds, nanos
        check(request)


def test_strings_and_repeated_fields_have_a_limit_at_which_they_pass():
    check(goal_pb2.GetCycleRequest(cycle_id="x" * MAX_STRING))
    assert _field_of(goal_pb2.GetCycleRequest(cycle_id="x" * (MAX_STRING + 1))) == "cycle_id"
    check(stream_pb2.StreamEventsRequest(event_types=["t"] * MAX_REPEATED))
    assert _field_of(stream_pb2.StreamEventsRequest(event_types=["t"] * (MAX_REPEATED + 1))) == "event_types"
    params = struct_pb2.Struct()
    params.update({"s": "y" * (MAX_STRING + 1)})
    assert _field_of(audit_pb2.ReplayAsOfRequest(params=params)) == "params.s"


@pytest.mark.parametrize("data", [b"\x0a\xff", b"\x0a\x02\xff\xfe", b"\x0f"])
def test_bytes_that_do_not_decode_are_a_request_error_without_a_field(data):
    with pytest.raises(RequestError) as caught:
        decode(goal_pb2.GetCycleRequest, data)
    assert caught.value.field == ""
    assert "okr.v1.GetCycleRequest" in str(caught.value)


def test_bytes_that_decode_give_the_message():
    raw = goal_pb2.GetCycleRequest(cycle_id="q3").SerializeToString()
    assert decode(goal_pb2.GetCycleRequest, raw).cycle_id == "q3"
