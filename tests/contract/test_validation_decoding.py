"""A request whose bytes do not decode as its message (docs/api.md, "Status codes") is
INVALID_ARGUMENT — for unary and streaming RPCs alike — and is counted in the gateway's
``okr_grpc_server_duration_seconds`` like every other refused call
(docs/observability.md). The bytes are sent as they are (no serializer)."""

from __future__ import annotations

import re

import grpc
import pytest

from .contract_suite import auth, refusal, trailers
from okr.v1 import goal_pb2, stream_pb2

UNDECODABLE = {
    "truncated": b"\x0a\xff",  # field 1, length 255, nothing after it
    "bad-utf8": b"\x0a\x02\xff\xfe",  # a string field that is not UTF-8
    "bad-wire-type": b"\x0f",  # field 1 with wire type 7, which does not exist
}


def _raw(suite, path: str, streaming: bool = False):
    make = suite.channel.unary_stream if streaming else suite.channel.unary_unary
    return make(path, request_serializer=None, response_deserializer=None)


def _count(text: str, service: str, method: str, code: str) -> float:
    pattern = re.compile(r'^okr_grpc_server_duration_seconds_count\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.M)
    for m in pattern.finditer(text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m["labels"]))
        if labels == {"grpc_service": service, "grpc_method": method, "grpc_code": code}:
            return float(m["value"])
    return 0.0


@pytest.mark.parametrize("data", UNDECODABLE.values(), ids=UNDECODABLE.keys())
def test_undecodable_bytes_of_a_unary_call_are_invalid_argument(suite, tenant, data):
    _, key = tenant
    error = refusal(_raw(suite, "/okr.v1.GoalService/GetCycle"), data, metadata=auth(key), timeout=10)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert "okr.v1.GetCycleRequest" in error.details()
    assert "Exception deserializing" not in error.details()
    assert trailers(error)["okr-kind"] == "invalid_argument"


def test_undecodable_bytes_of_a_streaming_call_are_invalid_argument(suite, tenant):
    _, key = tenant
    error = refusal(lambda: list(_raw(suite, "/okr.v1.EventStream/StreamEvents", streaming=True)(
        UNDECODABLE["truncated"], metadata=auth(key), timeout=10)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert "okr.v1.StreamEventsRequest" in error.details()


def test_valid_bytes_sent_raw_are_served_as_the_message(suite, tenant):
    _, key = tenant
    raw = goal_pb2.GetCycleRequest(cycle_id="no-such-cycle").SerializeToString()
    error = refusal(_raw(suite, "/okr.v1.GoalService/GetCycle"), raw, metadata=auth(key), timeout=10)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    messages = list(_raw(suite, "/okr.v1.EventStream/StreamEvents", streaming=True)(
        stream_pb2.StreamEventsRequest(from_position=1, follow=False).SerializeToString(), metadata=auth(key),
        timeout=30))
    assert messages == []  # a new tenant has no events


def test_an_undecodable_request_is_counted_in_the_gateway_metrics_by_its_code(suite, tenant):
    _, key = tenant
    before = suite.metrics("gateway")
    for data in UNDECODABLE.values():
        refusal(_raw(suite, "/okr.v1.GoalService/ActivateCycle"), data, metadata=auth(key), timeout=10)
    after = suite.metrics("gateway")
    counted = _count(after, "okr.v1.GoalService", "ActivateCycle", "INVALID_ARGUMENT") \
        - _count(before, "okr.v1.GoalService", "ActivateCycle", "INVALID_ARGUMENT")
    assert counted == len(UNDECODABLE)
    assert _count(after, "okr.v1.GoalService", "ActivateCycle", "INTERNAL") == 0


@pytest.mark.parametrize("data", [UNDECODABLE["truncated"], goal_pb2.GetCycleRequest(cycle_id="x" * 20_000)
                                  .SerializeToString()], ids=["undecodable", "over-a-limit"])
@pytest.mark.parametrize("credential", [None, "ApiKey not-a-key"], ids=["none", "unknown"])
def test_a_call_without_a_valid_credential_is_unauthenticated_whatever_its_bytes(suite, data, credential):
    """The credential is checked first (docs/api.md, "Limits"): bytes that would be
    INVALID_ARGUMENT tell an unauthenticated caller nothing."""
    metadata = (("authorization", credential),) if credential else ()
    error = refusal(_raw(suite, "/okr.v1.GoalService/GetCycle"), data, metadata=metadata, timeout=10)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
